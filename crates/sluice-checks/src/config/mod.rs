//! The check file: `[[check]]` tables parsed into a [`CheckSuite`].
//!
//! This module reads what every check has (`kind`, `name`, `severity`, `where`, `description`,
//! `mostly`); the kind's own fields are read by the kind (see [`Fields`]).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use toml::{Spanned, Value};

use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::kinds::{CheckKind, ParsedCheck};

mod column_types;
mod fields;

pub(crate) use column_types::TypeSpec;
pub use column_types::type_name;
pub(crate) use fields::{ConfigProblem, Fields, column_list};

/// How bad a failing check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure blocks publishing.
    #[default]
    Error,
    /// A failure is reported but does not block publishing.
    Warn,
}

impl Severity {
    /// The name used in check files and reports: `error` or `warn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

/// The fields every check may have, whatever its kind.
const COMMON_FIELDS: &[&str] = &["name", "severity", "on_fail", "where", "description"];

/// What a failing row-level check does with its failing rows when `on_fail = "quarantine"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuarantineRule {
    /// Fail the run when more than this fraction of the rows would be set aside.
    pub(crate) max_fraction: Option<f64>,
}

/// The `[quarantine]` table of a checks file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct QuarantineSettings {
    /// Where set-aside rows go (default `<table>__quarantine`).
    pub(crate) table: Option<String>,
    /// Fail the run when more than this fraction of all rows would be set aside.
    pub(crate) max_fraction: Option<f64>,
}

/// One check of a suite, validated.
#[derive(Debug, Clone)]
pub struct CheckDef {
    pub(crate) name: String,
    pub(crate) kind: CheckKind,
    pub(crate) severity: Severity,
    pub(crate) mostly: f64,
    pub(crate) filter: Option<(Expr, String)>,
    pub(crate) spec: Arc<dyn ParsedCheck>,
    /// `on_fail = "quarantine"`: failing rows are set aside instead of failing the batch.
    pub(crate) quarantine: Option<QuarantineRule>,
}

impl CheckDef {
    /// The check's name: the `name` field, or one derived from kind and columns.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The check's kind.
    pub fn kind(&self) -> CheckKind {
        self.kind
    }

    /// The check's severity.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The fraction of checked rows that must pass (1.0 unless `mostly` is set).
    pub fn mostly(&self) -> f64 {
        self.mostly
    }

    /// The `where` filter as written, if any.
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_ref().map(|(_, text)| text.as_str())
    }

    /// The query of a `sql` check (with its `{{ this }}` placeholders as written), which the
    /// caller runs and reports with [`crate::CheckResult::from_query`]; `None` for other kinds.
    pub fn sql_query(&self) -> Option<&str> {
        self.spec.sql_query()
    }

    /// Whether the check sets its failing rows aside (`on_fail = "quarantine"`).
    pub fn quarantines(&self) -> bool {
        self.quarantine.is_some()
    }

    /// The columns the check reads, including those of its `where` filter.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = self.spec.columns();
        if let Some((filter, _)) = &self.filter {
            for c in filter.columns() {
                if !columns.contains(&c) {
                    columns.push(c);
                }
            }
        }
        columns
    }
}

/// A validated set of checks, read from a TOML check file.
///
/// ```
/// use sluice_checks::CheckSuite;
/// let suite = CheckSuite::from_toml_str(r#"
///     [[check]]
///     kind = "not_null"
///     columns = ["user_id"]
/// "#)?;
/// assert_eq!(suite.checks()[0].name(), "not_null(user_id)");
/// # Ok::<(), sluice_checks::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CheckSuite {
    pub(crate) checks: Vec<CheckDef>,
    pub(crate) quarantine: QuarantineSettings,
}

impl CheckSuite {
    /// The other tables the suite's `relationships` checks read, as `namespace.table`, each
    /// once, in the order of the checks.
    pub fn referenced_tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for def in &self.checks {
            if let Some((table, _)) = def.spec.reference()
                && !out.contains(&table)
            {
                out.push(table);
            }
        }
        out
    }

    /// Whether some check sets failing rows aside (`on_fail = "quarantine"`).
    pub fn quarantines(&self) -> bool {
        self.checks.iter().any(CheckDef::quarantines)
    }

    /// Whether some check's verdict depends on what `table` (`namespace.table`) already
    /// holds, not only on the new rows: a table-scoped `unique` (the rows in `main`), an
    /// `anomaly` (the runs published before), a `sql` check (it queries the branch, `main`'s
    /// rows included) or a `relationships` check that references `table` itself. When
    /// another writer moved `main`, only such a suite has to be evaluated again.
    pub fn depends_on_table(&self, table: &str) -> bool {
        self.checks.iter().any(|c| {
            !c.spec.existing_columns().is_empty()
                || c.kind == CheckKind::Anomaly
                || c.sql_query().is_some()
                || c.spec.reference().is_some_and(|(t, _)| t == table)
        })
    }

    /// The table set-aside rows of `table` go to: `[quarantine] table`, else
    /// `<table>__quarantine`.
    pub fn quarantine_table(&self, table: &str) -> String {
        self.quarantine
            .table
            .clone()
            .unwrap_or_else(|| format!("{table}__quarantine"))
    }

    /// Whether a quarantining check needs to see every row in one pass (`unique`: a key
    /// repeated in two parallel partitions is only found when they merge, too late to set the
    /// row aside).
    pub fn quarantine_needs_one_pass(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.quarantines() && c.kind == CheckKind::Unique)
    }

    /// The `sql` checks, in file order.
    pub fn sql_checks(&self) -> impl Iterator<Item = &CheckDef> {
        self.checks.iter().filter(|c| c.sql_query().is_some())
    }

    /// Parses and validates a check file's text.
    ///
    /// Errors carry the line and column of the problem: TOML syntax, an unknown `kind`, an unknown
    /// or misplaced field, a field of the wrong type, an unparsable expression or duration.
    pub fn from_toml_str(text: &str) -> Result<CheckSuite> {
        parse_suite(text, None)
    }

    /// Reads, parses and validates a check file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<CheckSuite> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse_suite(&text, Some(path.to_path_buf()))
    }

    /// The checks, in file order.
    pub fn checks(&self) -> &[CheckDef] {
        &self.checks
    }

    /// The check with this name.
    pub fn check(&self, name: &str) -> Option<&CheckDef> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// A check table as written: its fields with their positions.
type RawCheck = BTreeMap<String, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    quarantine: Option<RawQuarantine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuarantine {
    table: Option<String>,
    max_fraction: Option<f64>,
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn parse_suite(text: &str, source_name: Option<PathBuf>) -> Result<CheckSuite> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let (line, column) = line_column(text, e.span().map(|s| s.start).unwrap_or(0));
        Error::InvalidConfig {
            source_name: source_name.clone(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    let mut checks = Vec::with_capacity(raw.check.len());
    let mut names: HashSet<String> = HashSet::new();
    for spanned in raw.check {
        let check_start = spanned.span().start;
        let at = |problem: ConfigProblem| {
            let offset = problem.span.map_or(check_start, |s| s.start);
            let (line, column) = line_column(text, offset);
            Error::InvalidConfig {
                source_name: source_name.clone(),
                line,
                column,
                message: problem.message,
            }
        };
        let (mut def, explicit_name) = validate(spanned.into_inner()).map_err(at)?;
        if explicit_name {
            if !names.insert(def.name.clone()) {
                return Err(at(format!(
                    "two checks are named `{}`; check names must be unique",
                    def.name
                )
                .into()));
            }
        } else {
            // Derived names may collide (two ranges on one column): number the later ones.
            let base = def.name.clone();
            let mut n = 2;
            while !names.insert(def.name.clone()) {
                def.name = format!("{base}#{n}");
                n += 1;
            }
        }
        checks.push(def);
    }
    let quarantine = match raw.quarantine {
        None => QuarantineSettings::default(),
        Some(q) => {
            let invalid = |message: String| Error::InvalidConfig {
                source_name: source_name.clone(),
                line: 1,
                column: 1,
                message,
            };
            if let Some(f) = q.max_fraction
                && !(0.0..=1.0).contains(&f)
            {
                return Err(invalid(format!(
                    "[quarantine] max_fraction must be between 0 and 1, got {f}"
                )));
            }
            if let Some(t) = &q.table
                && !t.contains('.')
            {
                return Err(invalid(format!(
                    "[quarantine] table must be NAMESPACE.TABLE, got `{t}`"
                )));
            }
            if !checks.iter().any(CheckDef::quarantines) {
                return Err(invalid(
                    "[quarantine] is set but no check has on_fail = \"quarantine\"".to_string(),
                ));
            }
            QuarantineSettings {
                table: q.table,
                max_fraction: q.max_fraction,
            }
        }
    };
    Ok(CheckSuite { checks, quarantine })
}

/// Reads one check: the common fields here, the kind's own fields by the kind. Returns whether
/// the name was given explicitly.
fn validate(raw: RawCheck) -> std::result::Result<(CheckDef, bool), ConfigProblem> {
    let mut raw = raw;
    let kind_value = raw
        .remove("kind")
        .ok_or_else(|| ConfigProblem::from("missing field `kind`"))?;
    let kind_span = kind_value.span();
    let kind: CheckKind = kind_value
        .into_inner()
        .try_into()
        .map_err(|e: toml::de::Error| ConfigProblem {
            span: Some(kind_span),
            message: e.message().trim().to_string(),
        })?;
    let mut fields = Fields::new(kind, raw);
    let name: Option<String> = fields.take("name")?;
    let _description: Option<String> = fields.take("description")?;
    let severity: Option<Severity> = fields.take("severity")?;
    let on_fail: Option<String> = fields.take("on_fail")?;
    let max_quarantined: Option<f64> = fields.take("max_quarantined_fraction")?;
    let filter_text: Option<String> = fields.take("where")?;
    let (severity, quarantine) = match (on_fail.as_deref(), severity) {
        (None, severity) => (severity, false),
        (Some("fail"), None | Some(Severity::Error)) => (Some(Severity::Error), false),
        (Some("warn"), None | Some(Severity::Warn)) => (Some(Severity::Warn), false),
        (Some("quarantine"), None | Some(Severity::Error)) => (Some(Severity::Error), true),
        (Some(other @ ("fail" | "warn" | "quarantine")), Some(s)) => {
            return Err(format!(
                "`on_fail = \"{other}\"` contradicts `severity = \"{}\"`; give one of them",
                s.as_str()
            )
            .into());
        }
        (Some(other), _) => {
            return Err(format!(
                "unknown `on_fail = \"{other}\"`; expected \"fail\", \"warn\" or \"quarantine\""
            )
            .into());
        }
    };
    if quarantine && !kind.is_row_level() {
        return Err(format!(
            "`on_fail = \"quarantine\"` sets failing rows aside, so it applies to row-level checks \
             (not_null, unique, accepted_values, range, regex, length, expression); a `{kind}` \
             check judges the batch as a whole"
        )
        .into());
    }
    if max_quarantined.is_some() && !quarantine {
        return Err(
            "`max_quarantined_fraction` applies only with `on_fail = \"quarantine\"`".into(),
        );
    }
    if let Some(f) = max_quarantined
        && !(0.0..=1.0).contains(&f)
    {
        return Err(format!("`max_quarantined_fraction` must be between 0 and 1, got {f}").into());
    }

    let mut allowed: Vec<&str> = kind.fields().to_vec();
    if kind.is_row_level() {
        allowed.push("mostly");
    }
    for (field, span) in fields.remaining() {
        if !allowed.contains(&field.as_str()) {
            return Err(misplaced(kind, &field, span, &allowed));
        }
    }

    if quarantine && fields.remaining().iter().any(|(f, _)| f == "mostly") {
        return Err(
            "`mostly` does not apply with `on_fail = \"quarantine\"`: every failing row is set \
             aside; bound how many with `max_quarantined_fraction`"
                .into(),
        );
    }
    let mostly = match fields.take::<f64>("mostly")? {
        None => 1.0,
        Some(m) if (0.0..=1.0).contains(&m) => m,
        Some(m) => return Err(format!("`mostly` must be between 0 and 1, got {m}").into()),
    };
    if kind == CheckKind::Sql && filter_text.is_some() {
        return Err(
            "field `where` does not apply to a `sql` check: filter in its query's WHERE".into(),
        );
    }
    if kind == CheckKind::Anomaly && filter_text.is_some() {
        return Err(
            "field `where` does not apply to an `anomaly` check: it compares a metric of \
                    all the new rows with the same metric recorded by earlier runs"
                .into(),
        );
    }
    let filter = match filter_text {
        None => None,
        Some(text) => Some((parse_expr(&text, "where")?, text)),
    };
    let spec = kind.parse(&mut fields)?;
    // A field the kind declares but did not read would otherwise be ignored silently.
    if let Some((field, span)) = fields.remaining().into_iter().next() {
        return Err(misplaced(kind, &field, span, &allowed));
    }
    let explicit = name.is_some();
    let name = name.unwrap_or_else(|| spec.default_name());
    let def = CheckDef {
        name,
        kind,
        severity: severity.unwrap_or_default(),
        mostly,
        filter,
        spec,
        quarantine: quarantine.then_some(QuarantineRule {
            max_fraction: max_quarantined,
        }),
    };
    Ok((def, explicit))
}

/// The error for a field the kind does not take: misplaced (another kind's field) or unknown.
fn misplaced(kind: CheckKind, field: &str, span: Range<usize>, allowed: &[&str]) -> ConfigProblem {
    let known_elsewhere = field == "mostly"
        || CheckKind::ALL
            .iter()
            .any(|other| other.fields().contains(&field));
    let message = if known_elsewhere {
        format!(
            "field `{field}` does not apply to a `{kind}` check (its fields: {}, and {})",
            allowed.join(", "),
            COMMON_FIELDS.join(", ")
        )
    } else {
        format!(
            "unknown field `{field}`; a `{kind}` check takes {}, and {}",
            allowed.join(", "),
            COMMON_FIELDS.join(", ")
        )
    };
    ConfigProblem {
        span: Some(span),
        message,
    }
}

/// Parses the expression of field `field`.
pub(crate) fn parse_expr(text: &str, field: &str) -> std::result::Result<Expr, String> {
    Expr::parse(text).map_err(|e| match e {
        Error::InvalidExpression {
            position, message, ..
        } => {
            format!("cannot parse `{field}` expression `{text}` at character {position}: {message}")
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let text = "a\nbé = 1\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (2, 4));
    }

    #[test]
    fn only_checks_that_read_the_table_depend_on_it() {
        let depends = |toml: &str| {
            CheckSuite::from_toml_str(toml)
                .unwrap()
                .depends_on_table("ns.events")
        };
        let batch_only = r#"
[[check]]
kind = "not_null"
columns = ["id"]

[[check]]
kind = "unique"
columns = ["id"]

[[check]]
kind = "row_count"
min = 1

[[check]]
kind = "relationships"
column = "user_id"
to_table = "ns.users"
to_column = "id"
"#;
        assert!(!depends(batch_only));
        assert!(!depends(""));
        for reads in [
            "[[check]]\nkind = \"unique\"\ncolumns = [\"id\"]\nscope = \"table\"\n",
            "[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\n",
            "[[check]]\nkind = \"sql\"\nquery = \"SELECT * FROM events WHERE id < 0\"\n",
            "[[check]]\nkind = \"relationships\"\ncolumn = \"parent\"\nto_table = \"ns.events\"\nto_column = \"id\"\n",
        ] {
            assert!(depends(&format!("{batch_only}\n{reads}")), "{reads}");
        }
    }
}

//! The check file: `[[check]]` tables parsed into a [`CheckSuite`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use arrow_schema::{DataType, TimeUnit};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::expr::{Expr, Literal};

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

/// The kind of a check, as written in `kind = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Columns hold no nulls.
    NotNull,
    /// A column or a combination of columns holds no duplicate.
    Unique,
    /// A column only holds values from a set.
    AcceptedValues,
    /// A column's values lie between bounds.
    Range,
    /// A string column's values match a regular expression.
    Regex,
    /// A string column's values have a length between bounds.
    Length,
    /// The number of new rows lies between bounds.
    RowCount,
    /// The newest timestamp is no older than a duration before the run time.
    Freshness,
    /// Required columns exist with the given types.
    Schema,
    /// A boolean predicate holds for every row.
    Expression,
}

impl CheckKind {
    /// The name used in check files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::NotNull => "not_null",
            CheckKind::Unique => "unique",
            CheckKind::AcceptedValues => "accepted_values",
            CheckKind::Range => "range",
            CheckKind::Regex => "regex",
            CheckKind::Length => "length",
            CheckKind::RowCount => "row_count",
            CheckKind::Freshness => "freshness",
            CheckKind::Schema => "schema",
            CheckKind::Expression => "expression",
        }
    }

    /// Whether the check judges rows one by one (and so accepts `mostly` and yields samples).
    pub fn is_row_level(self) -> bool {
        !matches!(
            self,
            CheckKind::RowCount | CheckKind::Freshness | CheckKind::Schema
        )
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which rows a `unique` check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UniqueScope {
    /// Only the new rows, among themselves.
    #[default]
    Batch,
    /// The new rows among themselves and against the rows already in the target ref
    /// (fed with [`Evaluator::observe_existing`](crate::Evaluator::observe_existing)).
    Table,
}

/// A column type required by a `schema` check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TypeSpec {
    Any,
    Bool,
    Int {
        signed: bool,
        bits: u8,
    },
    Float {
        bits: u8,
    },
    String,
    Binary,
    Date,
    Timestamp {
        unit: Option<TimeUnit>,
        tz: Option<Option<String>>,
    },
    Decimal,
}

impl TypeSpec {
    fn parse(text: &str) -> Option<TypeSpec> {
        let t = text.trim().to_ascii_lowercase();
        let spec = match t.as_str() {
            "any" => TypeSpec::Any,
            "bool" | "boolean" => TypeSpec::Bool,
            "int8" => TypeSpec::Int {
                signed: true,
                bits: 8,
            },
            "int16" => TypeSpec::Int {
                signed: true,
                bits: 16,
            },
            "int32" | "int" => TypeSpec::Int {
                signed: true,
                bits: 32,
            },
            "int64" | "long" | "bigint" => TypeSpec::Int {
                signed: true,
                bits: 64,
            },
            "uint8" => TypeSpec::Int {
                signed: false,
                bits: 8,
            },
            "uint16" => TypeSpec::Int {
                signed: false,
                bits: 16,
            },
            "uint32" => TypeSpec::Int {
                signed: false,
                bits: 32,
            },
            "uint64" => TypeSpec::Int {
                signed: false,
                bits: 64,
            },
            "float16" => TypeSpec::Float { bits: 16 },
            "float32" | "float" => TypeSpec::Float { bits: 32 },
            "float64" | "double" => TypeSpec::Float { bits: 64 },
            "string" | "utf8" | "str" => TypeSpec::String,
            "binary" | "bytes" => TypeSpec::Binary,
            "date" | "date32" => TypeSpec::Date,
            "decimal" => TypeSpec::Decimal,
            "timestamp" => TypeSpec::Timestamp {
                unit: None,
                tz: None,
            },
            // Iceberg's names: microseconds, with or without a zone (stored as UTC).
            "timestamptz" => TypeSpec::Timestamp {
                unit: Some(TimeUnit::Microsecond),
                tz: Some(Some("UTC".to_string())),
            },
            "timestamptz_ns" => TypeSpec::Timestamp {
                unit: Some(TimeUnit::Nanosecond),
                tz: Some(Some("UTC".to_string())),
            },
            "timestamp_ns" => TypeSpec::Timestamp {
                unit: Some(TimeUnit::Nanosecond),
                tz: Some(None),
            },
            other => {
                let inner = other.strip_prefix("timestamp(")?.strip_suffix(')')?;
                let mut parts = inner.splitn(2, ',');
                let unit = match parts.next()?.trim() {
                    "s" => TimeUnit::Second,
                    "ms" => TimeUnit::Millisecond,
                    "us" => TimeUnit::Microsecond,
                    "ns" => TimeUnit::Nanosecond,
                    _ => return None,
                };
                // Keep the time zone's original spelling: "UTC" and "Europe/Rome" are case-sensitive.
                let tz = parts.next().map(|_| {
                    let original = text.trim();
                    let open = original.find(',').map(|i| i + 1).unwrap_or(0);
                    let zone = original[open..].trim().trim_end_matches(')').trim();
                    if zone.eq_ignore_ascii_case("none") || zone.is_empty() {
                        None
                    } else {
                        Some(zone.to_string())
                    }
                });
                TypeSpec::Timestamp {
                    unit: Some(unit),
                    tz,
                }
            }
        };
        Some(spec)
    }

    pub(crate) fn matches(&self, data_type: &DataType) -> bool {
        if let DataType::Dictionary(_, value) = data_type {
            return self.matches(value);
        }
        match self {
            TypeSpec::Any => true,
            TypeSpec::Bool => matches!(data_type, DataType::Boolean),
            TypeSpec::Int { signed, bits } => matches!(
                (signed, bits, data_type),
                (true, 8, DataType::Int8)
                    | (true, 16, DataType::Int16)
                    | (true, 32, DataType::Int32)
                    | (true, 64, DataType::Int64)
                    | (false, 8, DataType::UInt8)
                    | (false, 16, DataType::UInt16)
                    | (false, 32, DataType::UInt32)
                    | (false, 64, DataType::UInt64)
            ),
            TypeSpec::Float { bits } => matches!(
                (bits, data_type),
                (16, DataType::Float16) | (32, DataType::Float32) | (64, DataType::Float64)
            ),
            TypeSpec::String => matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            TypeSpec::Binary => matches!(
                data_type,
                DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::FixedSizeBinary(_)
            ),
            TypeSpec::Date => matches!(data_type, DataType::Date32 | DataType::Date64),
            TypeSpec::Decimal => matches!(
                data_type,
                DataType::Decimal32(..)
                    | DataType::Decimal64(..)
                    | DataType::Decimal128(..)
                    | DataType::Decimal256(..)
            ),
            TypeSpec::Timestamp { unit, tz } => match data_type {
                DataType::Timestamp(actual_unit, actual_tz) => {
                    unit.as_ref().is_none_or(|u| u == actual_unit)
                        && tz
                            .as_ref()
                            .is_none_or(|z| same_zone(z.as_deref(), actual_tz.as_deref()))
                }
                _ => false,
            },
        }
    }
}

/// Whether two time zones of timestamps are the same zone; the spellings of UTC that writers
/// use (`UTC`, `+00:00`, `Z`, `Etc/UTC`, …) are one zone.
fn same_zone(a: Option<&str>, b: Option<&str>) -> bool {
    fn is_utc(zone: &str) -> bool {
        [
            "UTC", "Z", "+00:00", "+0000", "+00", "Etc/UTC", "GMT", "Etc/GMT",
        ]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(zone))
    }
    match (a, b) {
        (Some(a), Some(b)) => a == b || (is_utc(a) && is_utc(b)),
        (None, None) => true,
        _ => false,
    }
}

/// An Arrow type in the notation of checks files and the docs (`int64`, `string`,
/// `timestamp(us, UTC)`), for every message that names a column's type.
pub fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::FixedSizeBinary(n) => format!("binary({n})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p}, {s})"),
        DataType::Timestamp(unit, tz) => {
            let unit = unit_name(*unit);
            match tz {
                Some(zone) if same_zone(Some(zone), Some("UTC")) => {
                    format!("timestamp({unit}, UTC)")
                }
                Some(zone) => format!("timestamp({unit}, {zone})"),
                None => format!("timestamp({unit})"),
            }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => format!("time({})", unit_name(*unit)),
        DataType::Dictionary(_, value) => type_name(value),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("list<{}>", type_name(f.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Null => "null".into(),
        other => other.to_string().to_lowercase(),
    }
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

/// The parameters of one check, by kind.
#[derive(Debug, Clone)]
pub(crate) enum CheckSpec {
    NotNull {
        columns: Vec<String>,
    },
    Unique {
        columns: Vec<String>,
        scope: UniqueScope,
    },
    AcceptedValues {
        column: String,
        values: Vec<Literal>,
    },
    Range {
        column: String,
        min: Option<Literal>,
        max: Option<Literal>,
        min_inclusive: bool,
        max_inclusive: bool,
    },
    Regex {
        column: String,
        pattern: regex::Regex,
    },
    Length {
        column: String,
        min: Option<u64>,
        max: Option<u64>,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    Freshness {
        column: String,
        max_age: TimeDelta,
        max_age_text: String,
    },
    Schema {
        columns: Vec<(String, String, TypeSpec)>,
        forbid_extra: bool,
    },
    Expression {
        expr: Expr,
        text: String,
    },
}

impl CheckSpec {
    pub(crate) fn kind(&self) -> CheckKind {
        match self {
            CheckSpec::NotNull { .. } => CheckKind::NotNull,
            CheckSpec::Unique { .. } => CheckKind::Unique,
            CheckSpec::AcceptedValues { .. } => CheckKind::AcceptedValues,
            CheckSpec::Range { .. } => CheckKind::Range,
            CheckSpec::Regex { .. } => CheckKind::Regex,
            CheckSpec::Length { .. } => CheckKind::Length,
            CheckSpec::RowCount { .. } => CheckKind::RowCount,
            CheckSpec::Freshness { .. } => CheckKind::Freshness,
            CheckSpec::Schema { .. } => CheckKind::Schema,
            CheckSpec::Expression { .. } => CheckKind::Expression,
        }
    }

    /// The columns whose values the check reads (without its `where` filter).
    pub(crate) fn columns(&self) -> Vec<String> {
        match self {
            CheckSpec::NotNull { columns } | CheckSpec::Unique { columns, .. } => columns.clone(),
            CheckSpec::AcceptedValues { column, .. }
            | CheckSpec::Range { column, .. }
            | CheckSpec::Regex { column, .. }
            | CheckSpec::Length { column, .. }
            | CheckSpec::Freshness { column, .. } => vec![column.clone()],
            CheckSpec::RowCount { .. } | CheckSpec::Schema { .. } => Vec::new(),
            CheckSpec::Expression { expr, .. } => expr.columns(),
        }
    }
}

/// One check of a suite, validated.
#[derive(Debug, Clone)]
pub struct CheckDef {
    pub(crate) name: String,
    pub(crate) severity: Severity,
    pub(crate) mostly: f64,
    pub(crate) filter: Option<(Expr, String)>,
    pub(crate) spec: CheckSpec,
}

impl CheckDef {
    /// The check's name: the `name` field, or one derived from kind and columns.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The check's kind.
    pub fn kind(&self) -> CheckKind {
        self.spec.kind()
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
}

impl CheckSuite {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    check: Vec<toml::Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: CheckKind,
    name: Option<String>,
    description: Option<String>,
    severity: Option<Severity>,
    #[serde(rename = "where")]
    filter: Option<String>,
    mostly: Option<f64>,
    column: Option<String>,
    columns: Option<toml::Value>,
    scope: Option<UniqueScope>,
    values: Option<Vec<toml::Value>>,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    min_inclusive: Option<bool>,
    max_inclusive: Option<bool>,
    pattern: Option<String>,
    max_age: Option<String>,
    forbid_extra: Option<bool>,
    expr: Option<String>,
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
        let (line, column) = line_column(text, spanned.span().start);
        let at = |message: String| Error::InvalidConfig {
            source_name: source_name.clone(),
            line,
            column,
            message,
        };
        let raw = spanned.into_inner();
        let explicit_name = raw.name.clone();
        let mut def = validate(raw).map_err(&at)?;
        match explicit_name {
            Some(name) => {
                if !names.insert(name.clone()) {
                    return Err(at(format!(
                        "two checks are named `{name}`; check names must be unique"
                    )));
                }
            }
            None => {
                // Derived names may collide (two ranges on one column): number the later ones.
                let base = def.name.clone();
                let mut n = 2;
                while !names.insert(def.name.clone()) {
                    def.name = format!("{base}#{n}");
                    n += 1;
                }
            }
        }
        checks.push(def);
    }
    Ok(CheckSuite { checks })
}

type FieldCheck = std::result::Result<(), String>;

fn validate(raw: RawCheck) -> std::result::Result<CheckDef, String> {
    let kind = raw.kind;
    let allowed: &[&str] = match kind {
        CheckKind::NotNull => &["column", "columns", "mostly"],
        CheckKind::Unique => &["column", "columns", "scope", "mostly"],
        CheckKind::AcceptedValues => &["column", "values", "mostly"],
        CheckKind::Range => &[
            "column",
            "min",
            "max",
            "min_inclusive",
            "max_inclusive",
            "mostly",
        ],
        CheckKind::Regex => &["column", "pattern", "mostly"],
        CheckKind::Length => &["column", "min", "max", "mostly"],
        CheckKind::RowCount => &["min", "max"],
        CheckKind::Freshness => &["column", "max_age"],
        CheckKind::Schema => &["columns", "forbid_extra"],
        CheckKind::Expression => &["expr", "mostly"],
    };
    let present: [(&str, bool); 14] = [
        ("mostly", raw.mostly.is_some()),
        ("column", raw.column.is_some()),
        ("columns", raw.columns.is_some()),
        ("scope", raw.scope.is_some()),
        ("values", raw.values.is_some()),
        ("min", raw.min.is_some()),
        ("max", raw.max.is_some()),
        ("min_inclusive", raw.min_inclusive.is_some()),
        ("max_inclusive", raw.max_inclusive.is_some()),
        ("pattern", raw.pattern.is_some()),
        ("max_age", raw.max_age.is_some()),
        ("forbid_extra", raw.forbid_extra.is_some()),
        ("expr", raw.expr.is_some()),
        ("where", false),
    ];
    for (field, is_present) in present {
        if is_present && !allowed.contains(&field) {
            return Err(format!(
                "field `{field}` does not apply to a `{kind}` check (its fields: {}, and name, severity, where, description)",
                allowed.join(", ")
            ));
        }
    }
    let _ = raw.description;

    let mostly = match raw.mostly {
        None => 1.0,
        Some(m) if (0.0..=1.0).contains(&m) => m,
        Some(m) => return Err(format!("`mostly` must be between 0 and 1, got {m}")),
    };
    let filter = match raw.filter {
        None => None,
        Some(text) => Some((parse_expr(&text, "where")?, text)),
    };
    let need_column = |c: Option<String>| -> std::result::Result<String, String> {
        match c {
            Some(c) if !c.is_empty() => Ok(c),
            _ => Err(format!("a `{kind}` check needs `column = \"...\"`")),
        }
    };

    let spec = match kind {
        CheckKind::NotNull | CheckKind::Unique => {
            let columns = match (raw.column, raw.columns) {
                (Some(_), Some(_)) => {
                    return Err("give either `column` or `columns`, not both".to_string());
                }
                (Some(c), None) => vec![c],
                (None, Some(v)) => string_list(&v, "columns")?,
                (None, None) => {
                    return Err(format!("a `{kind}` check needs `columns = [\"...\"]`"));
                }
            };
            if columns.is_empty() {
                return Err("`columns` must name at least one column".to_string());
            }
            if kind == CheckKind::NotNull {
                CheckSpec::NotNull { columns }
            } else {
                CheckSpec::Unique {
                    columns,
                    scope: raw.scope.unwrap_or_default(),
                }
            }
        }
        CheckKind::AcceptedValues => {
            let column = need_column(raw.column)?;
            let values = raw
                .values
                .ok_or_else(|| "an `accepted_values` check needs `values = [...]`".to_string())?
                .iter()
                .map(|v| literal(v, "values"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            CheckSpec::AcceptedValues { column, values }
        }
        CheckKind::Range => {
            let column = need_column(raw.column)?;
            let min = raw.min.as_ref().map(|v| literal(v, "min")).transpose()?;
            let max = raw.max.as_ref().map(|v| literal(v, "max")).transpose()?;
            if min.is_none() && max.is_none() {
                return Err("a `range` check needs `min`, `max` or both".to_string());
            }
            CheckSpec::Range {
                column,
                min,
                max,
                min_inclusive: raw.min_inclusive.unwrap_or(true),
                max_inclusive: raw.max_inclusive.unwrap_or(true),
            }
        }
        CheckKind::Regex => {
            let column = need_column(raw.column)?;
            let text = raw
                .pattern
                .ok_or_else(|| "a `regex` check needs `pattern = \"...\"`".to_string())?;
            let pattern = regex::Regex::new(&text)
                .map_err(|e| format!("invalid regular expression `{text}`: {e}"))?;
            CheckSpec::Regex { column, pattern }
        }
        CheckKind::Length | CheckKind::RowCount => {
            let min = raw.min.as_ref().map(|v| count(v, "min")).transpose()?;
            let max = raw.max.as_ref().map(|v| count(v, "max")).transpose()?;
            if min.is_none() && max.is_none() {
                return Err(format!("a `{kind}` check needs `min`, `max` or both"));
            }
            bounds_ordered(min, max)?;
            if kind == CheckKind::Length {
                CheckSpec::Length {
                    column: need_column(raw.column)?,
                    min,
                    max,
                }
            } else {
                CheckSpec::RowCount { min, max }
            }
        }
        CheckKind::Freshness => {
            let column = need_column(raw.column)?;
            let text = raw.max_age.ok_or_else(|| {
                "a `freshness` check needs `max_age = \"...\"` (e.g. \"2h\")".to_string()
            })?;
            let max_age = parse_duration(&text)?;
            CheckSpec::Freshness {
                column,
                max_age,
                max_age_text: text,
            }
        }
        CheckKind::Schema => {
            let columns = match raw.columns {
                None => {
                    return Err(
                        "a `schema` check needs `columns = { name = \"type\", ... }`".to_string()
                    );
                }
                Some(toml::Value::Table(table)) => table
                    .iter()
                    .map(|(name, ty)| {
                        let text = ty.as_str().ok_or_else(|| {
                            format!("the type of column `{name}` must be a string such as \"int64\"")
                        })?;
                        let spec = TypeSpec::parse(text).ok_or_else(|| {
                            format!(
                                "unknown type `{text}` for column `{name}`; use one of any, bool, \
                                 int8..int64, uint8..uint64, float32, float64, string, binary, date, \
                                 decimal, timestamp, timestamp(us), timestamp(us, UTC)"
                            )
                        })?;
                        Ok((name.clone(), text.to_string(), spec))
                    })
                    .collect::<std::result::Result<Vec<_>, String>>()?,
                Some(other) => string_list(&other, "columns")?
                    .into_iter()
                    .map(|name| (name, "any".to_string(), TypeSpec::Any))
                    .collect(),
            };
            CheckSpec::Schema {
                columns,
                forbid_extra: raw.forbid_extra.unwrap_or(false),
            }
        }
        CheckKind::Expression => {
            let text = raw
                .expr
                .ok_or_else(|| "an `expression` check needs `expr = \"...\"`".to_string())?;
            CheckSpec::Expression {
                expr: parse_expr(&text, "expr")?,
                text,
            }
        }
    };
    let name = raw.name.unwrap_or_else(|| default_name(&spec));
    Ok(CheckDef {
        name,
        severity: raw.severity.unwrap_or_default(),
        mostly,
        filter,
        spec,
    })
}

fn bounds_ordered(min: Option<u64>, max: Option<u64>) -> FieldCheck {
    match (min, max) {
        (Some(a), Some(b)) if a > b => Err(format!("`min` ({a}) is greater than `max` ({b})")),
        _ => Ok(()),
    }
}

fn parse_expr(text: &str, field: &str) -> std::result::Result<Expr, String> {
    Expr::parse(text).map_err(|e| match e {
        Error::InvalidExpression {
            position, message, ..
        } => {
            format!("cannot parse `{field}` expression `{text}` at character {position}: {message}")
        }
        other => other.to_string(),
    })
}

fn default_name(spec: &CheckSpec) -> String {
    let kind = spec.kind();
    match spec {
        CheckSpec::RowCount { .. } | CheckSpec::Schema { .. } => kind.to_string(),
        CheckSpec::Expression { text, .. } => format!("expression({text})"),
        other => format!("{kind}({})", other.columns().join(", ")),
    }
}

fn string_list(value: &toml::Value, field: &str) -> std::result::Result<Vec<String>, String> {
    let err = || format!("`{field}` must be a list of column names, such as [\"user_id\"]");
    value
        .as_array()
        .ok_or_else(err)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(err))
        .collect()
}

fn literal(value: &toml::Value, field: &str) -> std::result::Result<Literal, String> {
    Ok(match value {
        toml::Value::String(s) => Literal::Str(s.clone()),
        toml::Value::Integer(i) => Literal::Int(*i),
        toml::Value::Float(f) => Literal::Float(*f),
        toml::Value::Boolean(b) => Literal::Bool(*b),
        toml::Value::Datetime(d) => Literal::Str(d.to_string()),
        _ => {
            return Err(format!(
                "`{field}` must hold strings, numbers, booleans or dates"
            ));
        }
    })
}

fn count(value: &toml::Value, field: &str) -> std::result::Result<u64, String> {
    match value {
        toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        _ => Err(format!("`{field}` must be a non-negative integer")),
    }
}

/// Parses durations such as `"90s"`, `"15m"`, `"2h"`, `"1d"`, `"1h30m"`, `"500ms"`, `"1w"`.
pub(crate) fn parse_duration(text: &str) -> std::result::Result<TimeDelta, String> {
    let bad = || {
        format!(
            "invalid duration `{text}`: write a number and a unit (ms, s, m, h, d, w), e.g. \"2h\" or \"1h30m\""
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = TimeDelta::zero();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => TimeDelta::try_milliseconds(n),
            "s" | "sec" => TimeDelta::try_seconds(n),
            "m" | "min" => TimeDelta::try_minutes(n),
            "h" => TimeDelta::try_hours(n),
            "d" => TimeDelta::try_days(n),
            "w" => TimeDelta::try_weeks(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        total = total.checked_add(&part).ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_combine() {
        assert_eq!(parse_duration("2h").unwrap(), TimeDelta::hours(2));
        assert_eq!(parse_duration("1h30m").unwrap(), TimeDelta::minutes(90));
        assert_eq!(
            parse_duration("500ms").unwrap(),
            TimeDelta::milliseconds(500)
        );
        assert_eq!(parse_duration("1d").unwrap(), TimeDelta::days(1));
        assert!(parse_duration("2 hours").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn type_specs_match_arrow_types() {
        let ts = TypeSpec::parse("timestamp(us, UTC)").unwrap();
        assert!(ts.matches(&DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into())
        )));
        assert!(!ts.matches(&DataType::Timestamp(TimeUnit::Microsecond, None)));
        assert!(!ts.matches(&DataType::Timestamp(
            TimeUnit::Nanosecond,
            Some("UTC".into())
        )));
        let any_ts = TypeSpec::parse("timestamp").unwrap();
        assert!(any_ts.matches(&DataType::Timestamp(TimeUnit::Second, None)));
        let s = TypeSpec::parse("string").unwrap();
        assert!(s.matches(&DataType::Utf8View));
        assert!(s.matches(&DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Utf8)
        )));
        assert!(!s.matches(&DataType::Int64));
        assert!(TypeSpec::parse("int64").unwrap().matches(&DataType::Int64));
        assert!(TypeSpec::parse("varchar").is_none());
    }

    #[test]
    fn every_spelling_of_utc_is_one_zone_and_types_print_as_in_the_docs() {
        let utc = |zone: &str| DataType::Timestamp(TimeUnit::Microsecond, Some(zone.into()));
        for spec in ["timestamp(us, UTC)", "timestamp(us, +00:00)", "timestamptz"] {
            let spec = TypeSpec::parse(spec).unwrap();
            for zone in ["UTC", "+00:00", "Z", "Etc/UTC"] {
                assert!(spec.matches(&utc(zone)), "{spec:?} vs {zone}");
            }
            assert!(!spec.matches(&utc("Europe/Rome")));
        }
        assert_eq!(type_name(&utc("+00:00")), "timestamp(us, UTC)");
        assert_eq!(type_name(&utc("Europe/Rome")), "timestamp(us, Europe/Rome)");
        assert_eq!(
            type_name(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
            "timestamp(ns)"
        );
        assert_eq!(type_name(&DataType::LargeUtf8), "string");
        assert_eq!(type_name(&DataType::Decimal128(10, 2)), "decimal(10, 2)");
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "a\nbé = 1\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (2, 4));
    }
}

//! The audit report: one result per check and the overall verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Severity;
use crate::kinds::CheckKind;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check holds.
    Pass,
    /// The check does not hold and its severity is `warn`.
    Warn,
    /// The check does not hold and its severity is `error`.
    Fail,
    /// The check could not run (unknown column, wrong type, evaluation failure).
    Error,
}

impl Status {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// Where a check's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// A scan of the rows.
    Data,
    /// Exact column statistics, without reading rows.
    Statistics,
    /// The schema alone.
    Schema,
    /// A SQL query over the audited ref (`sql` checks).
    Query,
    /// Nothing: the check could not run.
    None,
}

/// One failing row: the checked columns' values and the configured key columns' values.
pub type Sample = BTreeMap<String, serde_json::Value>;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// The check's kind.
    pub kind: CheckKind,
    /// The check's severity.
    pub severity: Severity,
    /// The outcome.
    pub status: Status,
    /// Rows the check judged (after the `where` filter; rows with NULL in the checked column are
    /// not judged except by `not_null`). Aggregate checks count the rows they aggregated.
    pub rows_checked: u64,
    /// Rows that broke the check (0 for aggregate checks: row_count, freshness, schema).
    pub rows_failing: u64,
    /// What was measured, by kind (for example `null_fraction`, `min`/`max`, `newest`).
    pub observed: serde_json::Value,
    /// What was required (for example `mostly`, bounds, `max_age`).
    pub threshold: serde_json::Value,
    /// Up to `sample_size` failing rows.
    pub samples: Vec<Sample>,
    /// Partitioned tables: the partitions the sampled failing rows fall in (filled by the
    /// caller, which knows the table's partition spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// A sentence for people.
    pub message: String,
    /// Where the answer came from.
    pub evidence: Evidence,
    /// `on_fail = "quarantine"`: the failing rows set aside (in the quarantine table) instead
    /// of failing the batch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_quarantined: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What running a `sql` check's query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryAnswer {
    /// The query ran: how many rows it returned (the failing rows) and the first of them.
    Rows {
        /// Rows returned.
        failing: u64,
        /// The first rows, at most the sample size, every column.
        samples: Vec<Sample>,
    },
    /// The query could not be planned or run; the engine's message.
    Failed(String),
}

impl CheckResult {
    /// The result of a `sql` check from its query's answer: it passes when the query returned
    /// no row; a query that failed is `error`.
    pub fn from_query(def: &crate::CheckDef, answer: QueryAnswer) -> CheckResult {
        let mut result = CheckResult {
            name: def.name().to_string(),
            kind: def.kind(),
            severity: def.severity(),
            status: Status::Pass,
            rows_checked: 0,
            rows_failing: 0,
            observed: serde_json::Value::Null,
            threshold: serde_json::json!({ "failing_rows": 0 }),
            samples: Vec::new(),
            partitions: Vec::new(),
            message: String::new(),
            evidence: Evidence::Query,
            rows_quarantined: 0,
        };
        match answer {
            QueryAnswer::Rows { failing, samples } => {
                result.rows_failing = failing;
                result.observed = serde_json::json!({ "failing_rows": failing });
                if failing == 0 {
                    result.message = "the query returned no rows".to_string();
                } else {
                    result.status = match def.severity() {
                        crate::Severity::Error => Status::Fail,
                        crate::Severity::Warn => Status::Warn,
                    };
                    result.message = format!("the query returned {failing} failing row(s)");
                    result.samples = samples;
                }
            }
            QueryAnswer::Failed(message) => {
                result.status = Status::Error;
                result.evidence = Evidence::None;
                result.message = format!("check could not run: {message}");
            }
        }
        result
    }
}

/// The report of one audit: every check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The run time freshness was measured against.
    pub run_time: DateTime<Utc>,
    /// Results in the order of the check file.
    pub checks: Vec<CheckResult>,
}

impl AuditReport {
    /// True iff no error-severity check failed or errored: the data may be published.
    pub fn publishable(&self) -> bool {
        !self.checks.iter().any(|c| {
            c.severity == Severity::Error && matches!(c.status, Status::Fail | Status::Error)
        })
    }

    /// The result of the check with this name.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Checks whose status is not `pass`.
    pub fn problems(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.status != Status::Pass)
    }

    /// Pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data into a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The header and the rows of the results table: one row per check, full values.
    /// Columns 4 and 5 (`CHECKED`, `FAILING`) are numbers.
    pub fn table_cells(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let header = vec![
            "STATUS",
            "CHECK",
            "KIND",
            "SEVERITY",
            "CHECKED",
            "FAILING",
            "OBSERVED",
            "THRESHOLD",
        ];
        let rows = self
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.status.as_str().to_uppercase(),
                    c.name.clone(),
                    c.kind.as_str().to_string(),
                    c.severity.as_str().to_string(),
                    c.rows_checked.to_string(),
                    c.rows_failing.to_string(),
                    compact(&c.observed),
                    compact(&c.threshold),
                ]
            })
            .collect();
        (header, rows)
    }

    /// The messages and failing-row samples of the checks that did not pass, and the verdict.
    pub fn render_details(&self) -> String {
        let mut out = String::new();
        for c in self.problems() {
            let _ = writeln!(out, "\n{} [{}]: {}", c.name, c.status.as_str(), c.message);
            for s in &c.samples {
                let fields: Vec<String> = s
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::Null => format!("{k}=null"),
                        v => format!("{k}={}", compact(v)),
                    })
                    .collect();
                let _ = writeln!(out, "    {}", fields.join(", "));
            }
            if !c.partitions.is_empty() {
                let _ = writeln!(out, "    in partition(s): {}", c.partitions.join(", "));
            }
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let _ = writeln!(
            out,
            "\n{}: {} checks, {} pass, {} warn, {} fail, {} error",
            if self.publishable() {
                "PUBLISHABLE"
            } else {
                "NOT PUBLISHABLE"
            },
            self.checks.len(),
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Error)
        );
        out
    }

    /// A plain-text table (no colour codes, every value whole), followed by
    /// [`AuditReport::render_details`].
    pub fn render_table(&self) -> String {
        let (header, rows) = self.table_cells();
        let numeric = [4, 5];
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(v.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, values: &[String]| {
            let mut text = String::new();
            for (i, v) in values.iter().enumerate() {
                let pad = widths[i].saturating_sub(v.chars().count());
                if i > 0 {
                    text.push_str("  ");
                }
                if numeric.contains(&i) {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(v);
                } else {
                    text.push_str(v);
                    text.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(
            &mut out,
            &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        );
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule);
        for row in &rows {
            line(&mut out, row);
        }
        out.push_str(&self.render_details());
        out
    }
}

/// A short single-line rendering of a JSON value: strings bare, objects as `k=v`.
fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={}", compact(v)))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(compact).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

//! `row_count`: the number of new rows (after `where`) lies between bounds.

use arrow_schema::Schema;
use serde_json::json;

use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::stats::TableStats;

/// `kind = "row_count"`.
#[derive(Debug)]
pub(crate) struct RowCount {
    min: Option<u64>,
    max: Option<u64>,
}

impl Check for RowCount {
    const NAME: &'static str = "row_count";
    const FIELDS: &'static [&'static str] = &["min", "max"];
    const ROW_LEVEL: bool = false;
    type Bound = ();
    /// The rows counted.
    type State = u64;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let (min, max) = fields.count_bounds()?;
        Ok(RowCount { min, max })
    }

    fn columns(&self) -> Vec<String> {
        Vec::new()
    }

    fn default_name(&self) -> String {
        Self::NAME.to_string()
    }

    fn bind(&self, _: &Schema) -> Result<(), String> {
        Ok(())
    }

    fn new_state(&self, _: &()) -> u64 {
        0
    }

    fn state_from_stats(&self, _: &(), stats: &TableStats) -> Option<u64> {
        Some(stats.row_count)
    }

    fn update(&self, _: &(), rows: &mut u64, input: &Input<'_>) -> Result<(), String> {
        *rows += input.selected();
        Ok(())
    }

    fn merge(&self, _: &(), rows: &mut u64, other: u64, _: usize) -> Result<(), String> {
        *rows += other;
        Ok(())
    }

    fn finish(&self, _: &(), n: u64, _: &Judge) -> Outcome {
        let (min, max) = (self.min, self.max);
        let passed = min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
        let message = if passed {
            format!("{n} rows")
        } else {
            format!(
                "{n} rows, expected {}",
                match (min, max) {
                    (Some(a), Some(b)) => format!("between {a} and {b}"),
                    (Some(a), None) => format!("at least {a}"),
                    (None, Some(b)) => format!("at most {b}"),
                    (None, None) => String::new(),
                }
            )
        };
        Outcome {
            passed,
            rows_checked: n,
            rows_failing: 0,
            observed: json!({ "rows": n }),
            threshold: json!({ "min": min, "max": max }),
            samples: Vec::new(),
            message,
        }
    }
}

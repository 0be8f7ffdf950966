//! `freshness`: the newest timestamp (or date) is no older than `max_age` before the run time.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_cast::cast;
use arrow_schema::{DataType, Schema, TimeUnit};
use chrono::TimeDelta;
use serde_json::{Value as Json, json};

use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::stats::TableStats;
use crate::time::{format_age, instant_from_unit, parse_duration};

/// `kind = "freshness"`.
#[derive(Debug)]
pub(crate) struct Freshness {
    column: String,
    max_age: TimeDelta,
    max_age_text: String,
}

/// How the column's values count time: timestamps in their own unit, dates in milliseconds.
#[derive(Debug)]
pub(crate) struct Clock {
    unit: TimeUnit,
    /// Days, which statistics give as days and are converted to milliseconds.
    is_date32: bool,
}

/// The non-null values seen and the newest of them, in the [`Clock`]'s unit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Newest {
    checked: u64,
    newest: Option<i64>,
}

impl Check for Freshness {
    const NAME: &'static str = "freshness";
    const FIELDS: &'static [&'static str] = &["column", "max_age"];
    const ROW_LEVEL: bool = false;
    type Bound = Clock;
    type State = Newest;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let column = fields.column()?;
        let text: String = fields
            .take("max_age")?
            .ok_or("a `freshness` check needs `max_age = \"...\"` (e.g. \"2h\")")?;
        let max_age = parse_duration(&text)?;
        Ok(Freshness {
            column,
            max_age,
            max_age_text: text,
        })
    }

    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }

    fn bind(&self, schema: &Schema) -> Result<Clock, String> {
        match super::column_type(schema, &self.column)? {
            DataType::Timestamp(unit, _) => Ok(Clock {
                unit: *unit,
                is_date32: false,
            }),
            t @ (DataType::Date32 | DataType::Date64) => Ok(Clock {
                unit: TimeUnit::Millisecond,
                is_date32: *t == DataType::Date32,
            }),
            other => Err(format!(
                "column `{}` is {other}; a `freshness` check needs a timestamp or date column",
                self.column
            )),
        }
    }

    fn new_state(&self, _: &Clock) -> Newest {
        Newest::default()
    }

    fn state_from_stats(&self, clock: &Clock, stats: &TableStats) -> Option<Newest> {
        let cs = stats.columns.get(&self.column)?;
        let nulls = cs.null_count;
        if nulls == Some(stats.row_count) {
            return Some(Newest::default());
        }
        let max = cs.max.as_ref()?.as_i64()?;
        let newest = if clock.is_date32 {
            max.checked_mul(86_400_000)?
        } else {
            max
        };
        Some(Newest {
            checked: stats.row_count - nulls.unwrap_or(0),
            newest: Some(newest),
        })
    }

    fn update(&self, _: &Clock, state: &mut Newest, input: &Input<'_>) -> Result<(), String> {
        let array = input.column(&self.column)?;
        let array = match input.filter {
            Some(f) => {
                arrow_select::filter::filter(array.as_ref(), f).map_err(|e| e.to_string())?
            }
            None => array.clone(),
        };
        let seen = (array.len() - array.logical_null_count()) as u64;
        // Dates are compared in milliseconds, timestamps in their own unit.
        let values = match array.data_type() {
            DataType::Date32 => {
                let days = cast(&array, &DataType::Int64).map_err(|e| e.to_string())?;
                arrow_arith::numeric::mul(&days, &arrow_array::Int64Array::new_scalar(86_400_000))
                    .map_err(|e| e.to_string())?
            }
            _ => cast(&array, &DataType::Int64).map_err(|e| e.to_string())?,
        };
        let max = arrow_arith::aggregate::max(values.as_primitive::<Int64Type>());
        state.add(seen, max);
        Ok(())
    }

    fn merge(&self, _: &Clock, state: &mut Newest, other: Newest, _: usize) -> Result<(), String> {
        state.add(other.checked, other.newest);
        Ok(())
    }

    fn finish(&self, clock: &Clock, state: Newest, judge: &Judge) -> Outcome {
        let column = &self.column;
        let mut outcome = Outcome {
            rows_checked: state.checked,
            threshold: json!({ "max_age": self.max_age_text }),
            ..Outcome::default()
        };
        match state.newest.and_then(|v| instant_from_unit(v, clock.unit)) {
            None => {
                outcome.passed = false;
                outcome.observed = json!({ "newest": Json::Null });
                outcome.message = format!("no non-null value in {column}: freshness unknown");
            }
            Some(instant) => {
                let age = judge.run_time.signed_duration_since(instant);
                outcome.observed = json!({
                    "newest": instant.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    "age": format_age(age),
                });
                outcome.passed = age <= self.max_age;
                outcome.message = format!(
                    "newest {column} is {} old{}",
                    format_age(age),
                    if outcome.passed {
                        String::new()
                    } else {
                        format!(", more than {}", self.max_age_text)
                    }
                );
            }
        }
        outcome
    }
}

impl Newest {
    fn add(&mut self, checked: u64, newest: Option<i64>) {
        self.checked += checked;
        self.newest = match (self.newest, newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

//! `anomaly`: this run's metric (row count, a column's null fraction, mean, …) is in line with
//! the same metric of the last published runs, which their commits recorded. The history is
//! handed to the evaluator ([`crate::Evaluator::set_history`]); the check itself only measures
//! the new rows, with the same code that records the metric.

use arrow_schema::Schema;
use serde::Deserialize;
use serde_json::json;

use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::profile::{ColumnProfile, Metric};
use crate::stats::TableStats;

/// How far from the history a value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Method {
    /// `|value - mean| / |mean|`, the history's mean.
    Relative,
    /// `|value - mean| / standard deviation`.
    Zscore,
    /// `|value - median| / (1.4826 × median absolute deviation)`: robust to past outliers.
    Mad,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Relative => "relative",
            Method::Zscore => "zscore",
            Method::Mad => "mad",
        }
    }

    fn default_threshold(self) -> f64 {
        match self {
            Method::Relative => 0.5,
            Method::Zscore => 3.0,
            Method::Mad => 3.5,
        }
    }
}

/// Which side of the history fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    Both,
    Up,
    Down,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// `kind = "anomaly"`.
#[derive(Debug)]
pub(crate) struct Anomaly {
    metric: Metric,
    column: Option<String>,
    method: Method,
    threshold: f64,
    direction: Direction,
    /// Published runs compared with, newest first.
    history: usize,
    /// Fewer runs with the metric than this: the check passes with a note.
    min_history: usize,
}

/// What the check measured of the new rows.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    rows: u64,
    column: Option<ColumnProfile>,
}

/// The center, spread and score of a value against the history, by method.
pub(crate) fn score(method: Method, value: f64, history: &[f64]) -> (f64, f64) {
    let n = history.len() as f64;
    let mean = history.iter().sum::<f64>() / n;
    let (center, scale) = match method {
        Method::Relative => (mean, mean.abs()),
        Method::Zscore => {
            let var = if history.len() > 1 {
                history.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            (mean, var.sqrt())
        }
        Method::Mad => {
            let median = median(history.to_vec());
            let mad = median_abs(history, median);
            (median, 1.4826 * mad)
        }
    };
    let diff = value - center;
    let score = if diff == 0.0 {
        0.0
    } else if scale == 0.0 {
        diff.signum() * f64::INFINITY
    } else {
        diff / scale
    };
    (center, score)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn median_abs(values: &[f64], center: f64) -> f64 {
    median(values.iter().map(|v| (v - center).abs()).collect())
}

fn show(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

impl Check for Anomaly {
    const NAME: &'static str = "anomaly";
    const FIELDS: &'static [&'static str] = &[
        "metric",
        "column",
        "method",
        "threshold",
        "direction",
        "history",
        "min_history",
    ];
    const ROW_LEVEL: bool = false;
    type Bound = ();
    type State = Measured;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let metric: Metric = match fields.take::<String>("metric")? {
            Some(name) => name.parse()?,
            None => return Err("an `anomaly` check needs `metric = \"row_count\"` (or null_fraction, min, max, mean, distinct with a `column`)".into()),
        };
        let column: Option<String> = fields.take("column")?;
        match (metric.per_column(), &column) {
            (true, None) => {
                return Err(
                    format!("metric `{metric}` is of a column: add `column = \"...\"`").into(),
                );
            }
            (false, Some(_)) => {
                return Err("metric `row_count` is of the whole batch: remove `column`".into());
            }
            _ => {}
        }
        let method: Method = fields.take("method")?.unwrap_or(Method::Relative);
        let threshold = match fields.take::<f64>("threshold")? {
            None => method.default_threshold(),
            Some(t) if t > 0.0 && t.is_finite() => t,
            Some(t) => return Err(format!("`threshold` must be above 0, got {t}").into()),
        };
        let direction: Direction = fields.take("direction")?.unwrap_or(Direction::Both);
        let history = fields.count("history")?.unwrap_or(20);
        let min_history = fields.count("min_history")?.unwrap_or(5);
        if history == 0 {
            return Err("`history` must be at least 1".into());
        }
        if min_history > history {
            return Err(format!(
                "`min_history` ({min_history}) is greater than `history` ({history})"
            )
            .into());
        }
        Ok(Anomaly {
            metric,
            column,
            method,
            threshold,
            direction,
            history: usize::try_from(history).unwrap_or(usize::MAX),
            min_history: usize::try_from(min_history).unwrap_or(usize::MAX),
        })
    }

    fn columns(&self) -> Vec<String> {
        self.column.iter().cloned().collect()
    }

    fn history_depth(&self) -> Option<usize> {
        Some(self.history)
    }

    fn default_name(&self) -> String {
        match &self.column {
            Some(c) => format!("anomaly({}({c}))", self.metric),
            None => format!("anomaly({})", self.metric),
        }
    }

    fn bind(&self, schema: &Schema) -> Result<(), String> {
        let Some(column) = &self.column else {
            return Ok(());
        };
        let t = super::column_type(schema, column)?;
        if crate::profile::measures(t, self.metric) {
            Ok(())
        } else {
            Err(format!(
                "column `{column}` is {t}; metric `{}` needs {}",
                self.metric,
                if self.metric == Metric::Distinct {
                    "a column of numbers, strings, booleans, dates or times"
                } else {
                    "a numeric column"
                }
            ))
        }
    }

    fn new_state(&self, _: &()) -> Measured {
        Measured {
            rows: 0,
            column: None,
        }
    }

    fn state_from_stats(&self, _: &(), stats: &TableStats) -> Option<Measured> {
        (self.metric == Metric::RowCount).then_some(Measured {
            rows: stats.row_count,
            column: None,
        })
    }

    fn update(&self, _: &(), state: &mut Measured, input: &Input<'_>) -> Result<(), String> {
        state.rows += input.batch.num_rows() as u64;
        if let Some(column) = &self.column {
            let array = input.column(column)?;
            state
                .column
                .get_or_insert_with(|| ColumnProfile::new(array.data_type()))
                .update(array)?;
        }
        Ok(())
    }

    fn merge(&self, _: &(), state: &mut Measured, other: Measured, _: usize) -> Result<(), String> {
        state.rows += other.rows;
        match (&mut state.column, other.column) {
            (Some(mine), Some(theirs)) => mine.merge(&theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        Ok(())
    }

    fn finish(&self, _: &(), state: Measured, judge: &Judge) -> Outcome {
        let metric = self.metric;
        let column = self.column.as_deref();
        let what = match column {
            Some(c) => format!("{metric} of {c}"),
            None => metric.to_string(),
        };
        let value = match (&state.column, metric) {
            (_, Metric::RowCount) => Some(state.rows as f64),
            (Some(profile), _) => profile.finish().value(metric),
            // No row at all: nothing to compare.
            (None, _) => None,
        };
        let history: Vec<f64> = judge
            .history
            .iter()
            .filter_map(|m| m.value(metric, column))
            .take(self.history)
            .collect();
        let threshold = json!({
            "method": self.method.as_str(),
            "threshold": self.threshold,
            "direction": self.direction.as_str(),
            "history": self.history,
            "min_history": self.min_history,
        });
        let Some(value) = value else {
            return Outcome {
                passed: true,
                rows_checked: state.rows,
                observed: json!({ "value": null, "history": history.len() }),
                threshold,
                message: format!("no {what} to compare (no value in the new rows)"),
                ..Outcome::default()
            };
        };
        if history.len() < self.min_history {
            return Outcome {
                passed: true,
                rows_checked: state.rows,
                observed: json!({ "value": value, "history": history.len() }),
                threshold,
                message: format!(
                    "{what} {}; not judged: {} earlier published run(s) recorded it, fewer than \
                     min_history = {}",
                    show(value),
                    history.len(),
                    self.min_history
                ),
                ..Outcome::default()
            };
        }
        let (center, score) = score(self.method, value, &history);
        let passed = match self.direction {
            Direction::Both => score.abs() <= self.threshold,
            Direction::Up => score <= self.threshold,
            Direction::Down => score >= -self.threshold,
        };
        let center_name = match self.method {
            Method::Mad => "median",
            _ => "mean",
        };
        let deviation = match self.method {
            Method::Relative if score.is_finite() => format!("{:+.1}%", score * 100.0),
            Method::Relative => "any change from 0".to_string(),
            _ if score.is_finite() => format!("score {score:+.2}"),
            _ => "any change from a history without spread".to_string(),
        };
        let limit = match self.method {
            Method::Relative => format!("{}%", show(self.threshold * 100.0)),
            Method::Zscore => format!("{} standard deviations", show(self.threshold)),
            Method::Mad => format!("{} scaled MADs", show(self.threshold)),
        };
        let side = match self.direction {
            Direction::Both => "±",
            Direction::Up => "+",
            Direction::Down => "-",
        };
        let message = format!(
            "{what} {} vs {} expected ({center_name} of the last {} published runs): {deviation}, {} {side}{limit}",
            show(value),
            show(center),
            history.len(),
            if passed { "within" } else { "beyond" },
        );
        Outcome {
            passed,
            rows_checked: state.rows,
            rows_failing: 0,
            observed: json!({
                "value": value,
                "expected": center,
                // Infinite (a history without spread) has no JSON number: null.
                "score": if score.is_finite() { json!(score) } else { json!(null) },
                "history": history.len(),
            }),
            threshold,
            samples: Vec::new(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn scores_by_method() {
        let h = [10.0, 12.0, 8.0, 10.0];
        assert_eq!(score(Method::Relative, 5.0, &h), (10.0, -0.5));
        let (c, z) = score(Method::Zscore, 10.0 + 2.0 * (8.0f64 / 3.0).sqrt(), &h);
        assert_eq!(c, 10.0);
        assert!((z - 2.0).abs() < 1e-9, "{z}");
        // median 10, deviations 0, 2, 2, 0 → MAD 1.
        let (c, m) = score(Method::Mad, 10.0 + 1.4826 * 4.0, &h);
        assert_eq!(c, 10.0);
        assert!((m - 4.0).abs() < 1e-9, "{m}");
        // No spread: any change is infinitely far, no change is 0.
        assert_eq!(score(Method::Zscore, 3.0, &[3.0, 3.0]).1, 0.0);
        assert_eq!(score(Method::Zscore, 4.0, &[3.0, 3.0]).1, f64::INFINITY);
        assert_eq!(score(Method::Relative, 0.3, &[0.0, 0.0]).1, f64::INFINITY);
    }

    proptest! {
        #[test]
        fn the_history_mean_never_fails_relative_or_zscore(
            history in proptest::collection::vec(-1e6f64..1e6, 1..40),
        ) {
            let mean = history.iter().sum::<f64>() / history.len() as f64;
            for method in [Method::Relative, Method::Zscore] {
                let (_, s) = score(method, mean, &history);
                prop_assert_eq!(s, 0.0);
            }
        }

        #[test]
        fn the_history_median_never_fails_mad(
            history in proptest::collection::vec(-1e6f64..1e6, 1..40),
        ) {
            let center = median(history.clone());
            prop_assert_eq!(score(Method::Mad, center, &history).1, 0.0);
        }
    }
}

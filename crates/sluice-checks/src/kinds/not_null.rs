//! `not_null`: columns hold no nulls. A row fails when any of the columns is null in it.

use arrow_arith::boolean::{and, is_null, or};
use arrow_array::{Array, BooleanArray};
use arrow_schema::Schema;
use serde_json::json;

use super::rows::RowTally;
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::stats::TableStats;

/// `kind = "not_null"`.
#[derive(Debug)]
pub(crate) struct NotNull {
    columns: Vec<String>,
}

impl Check for NotNull {
    const NAME: &'static str = "not_null";
    const FIELDS: &'static [&'static str] = &["column", "columns"];
    const ROW_LEVEL: bool = true;
    type Bound = ();
    type State = RowTally;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        Ok(NotNull {
            columns: fields.column_or_columns()?,
        })
    }

    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn bind(&self, schema: &Schema) -> Result<(), String> {
        for c in &self.columns {
            super::column_type(schema, c)?;
        }
        Ok(())
    }

    fn new_state(&self, _: &()) -> RowTally {
        RowTally::default()
    }

    /// Exact when at most one column has nulls: then the failing rows are its nulls. With nulls
    /// in several columns, rows may have more than one and the sum would overcount.
    fn state_from_stats(&self, _: &(), stats: &TableStats) -> Option<RowTally> {
        let counts: Vec<u64> = self
            .columns
            .iter()
            .map(|c| stats.columns.get(c).and_then(|s| s.null_count))
            .collect::<Option<_>>()?;
        let with_nulls = counts.iter().filter(|n| **n > 0).count();
        (with_nulls <= 1).then(|| RowTally {
            checked: stats.row_count,
            failing: counts.iter().sum(),
            ..RowTally::default()
        })
    }

    fn update(&self, _: &(), state: &mut RowTally, input: &Input<'_>) -> Result<(), String> {
        let room = input.room(state.samples.len());
        let mut fails = input.failures(room);
        let arrays = self
            .columns
            .iter()
            .map(|c| input.column(c))
            .collect::<Result<Vec<_>, _>>()?;
        if input.filter.is_none()
            && arrays.len() == 1
            && !fails.collecting()
            && (room == 0 || arrays[0].logical_null_count() == 0)
        {
            // Nothing to sample: the null count is the answer.
            fails.count = arrays[0].logical_null_count() as u64;
        } else {
            let mut mask: Option<BooleanArray> = None;
            for a in arrays {
                if a.logical_null_count() == 0 {
                    continue;
                }
                let nulls = is_null(a.as_ref()).map_err(|e| e.to_string())?;
                mask = Some(match mask {
                    None => nulls,
                    Some(m) => or(&m, &nulls).map_err(|e| e.to_string())?,
                });
            }
            if let Some(mut mask) = mask {
                if let Some(f) = input.filter {
                    mask = and(&mask, f).map_err(|e| e.to_string())?;
                }
                fails.record_mask(&mask);
            }
        }
        state.add(input, input.selected(), fails, &self.columns);
        Ok(())
    }

    fn merge(
        &self,
        _: &(),
        state: &mut RowTally,
        other: RowTally,
        sample_size: usize,
    ) -> Result<(), String> {
        state.merge(other, sample_size);
        Ok(())
    }

    fn finish(&self, _: &(), state: RowTally, judge: &Judge) -> Outcome {
        let fraction = Judge::fraction(state.failing, state.checked);
        let observed = json!({ "null_rows": state.failing, "null_fraction": fraction });
        let threshold = json!({ "max_null_fraction": complement(judge.mostly) });
        let noun = format!("with a null in {}", self.columns.join(", "));
        state.outcome(judge, &noun, observed, threshold)
    }
}

/// `1 - fraction` without binary floating-point noise (`1 - 0.999` is 0.001, not
/// 0.0010000000000000009): fractions are given in decimal, so they are shown in decimal.
fn complement(fraction: f64) -> f64 {
    let exact = 1.0 - fraction;
    let rounded = (exact * 1e12).round() / 1e12;
    if rounded.is_finite() { rounded } else { exact }
}

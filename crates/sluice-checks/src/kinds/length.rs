//! `length`: a string column's values have a length, in characters, between bounds. Nulls are
//! not checked.

use arrow_array::StringArray;
use arrow_schema::Schema;
use serde_json::json;

use super::rows::{Num, RowTally, extent_json, plain_json};
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::keys::as_utf8;

/// `kind = "length"`.
#[derive(Debug)]
pub(crate) struct Length {
    column: String,
    min: Option<u64>,
    max: Option<u64>,
}

impl Check for Length {
    const NAME: &'static str = "length";
    const FIELDS: &'static [&'static str] = &["column", "min", "max"];
    const ROW_LEVEL: bool = true;
    type Bound = ();
    type State = RowTally;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let (min, max) = fields.count_bounds()?;
        Ok(Length {
            column: fields.column()?,
            min,
            max,
        })
    }

    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }

    fn bind(&self, schema: &Schema) -> Result<(), String> {
        let t = super::column_type(schema, &self.column)?;
        super::require_strings(Self::NAME, &self.column, t)
    }

    fn new_state(&self, _: &()) -> RowTally {
        RowTally::default()
    }

    fn update(&self, _: &(), state: &mut RowTally, input: &Input<'_>) -> Result<(), String> {
        let array = input.column(&self.column)?;
        let rows = input.rows(Some(array.as_ref()))?;
        let checked = rows.count();
        let mut fails = input.failures(input.room(state.samples.len()));
        let strings: StringArray = as_utf8(array)?;
        let ascii = strings.value_data().is_ascii();
        let (lo, hi) = (self.min.unwrap_or(0), self.max.unwrap_or(u64::MAX));
        let (mut shortest, mut longest) = (i64::MAX, i64::MIN);
        rows.for_each(|i| {
            let s = strings.value(i);
            let n = if ascii { s.len() } else { s.chars().count() } as u64;
            shortest = shortest.min(n as i64);
            longest = longest.max(n as i64);
            if n < lo || n > hi {
                fails.record(i);
            }
        });
        if checked > 0 {
            state.widen(Num::I(shortest), Num::I(longest));
        }
        state.add(input, checked, fails, &self.columns());
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
        let (lo, hi) = extent_json(state.extent, plain_json);
        let observed =
            json!({ "min_length": lo, "max_length": hi, "out_of_bounds_rows": state.failing });
        let threshold = judge.with_mostly(json!({ "min": self.min, "max": self.max }));
        let noun = format!("with a length of {} out of bounds", self.column);
        state.outcome(judge, &noun, observed, threshold)
    }
}

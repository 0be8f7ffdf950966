//! `regex`: a string column's values match a regular expression. Nulls are not checked.

use arrow_schema::Schema;
use serde_json::json;

use super::rows::RowTally;
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::keys::as_utf8;

/// `kind = "regex"`.
#[derive(Debug)]
pub(crate) struct Regex {
    column: String,
    pattern: regex::Regex,
}

impl Check for Regex {
    const NAME: &'static str = "regex";
    const FIELDS: &'static [&'static str] = &["column", "pattern"];
    const ROW_LEVEL: bool = true;
    type Bound = ();
    type State = RowTally;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let column = fields.column()?;
        let text: String = fields
            .take("pattern")?
            .ok_or("a `regex` check needs `pattern = \"...\"`")?;
        let pattern = regex::Regex::new(&text)
            .map_err(|e| format!("invalid regular expression `{text}`: {e}"))?;
        Ok(Regex { column, pattern })
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
        let mut fails = input.failures(input.room(state.samples.len()));
        let strings = as_utf8(array)?;
        rows.for_each(|i| {
            if !self.pattern.is_match(strings.value(i)) {
                fails.record(i);
            }
        });
        state.add(input, rows.count(), fails, &self.columns());
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
        let observed =
            json!({ "non_matching_rows": state.failing, "non_matching_fraction": fraction });
        let threshold = judge.with_mostly(json!({ "pattern": self.pattern.as_str() }));
        let noun = format!("with {} not matching the pattern", self.column);
        state.outcome(judge, &noun, observed, threshold)
    }
}

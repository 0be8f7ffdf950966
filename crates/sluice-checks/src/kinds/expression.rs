//! `expression`: a boolean predicate holds for every row. Only FALSE fails: NULL (unknown)
//! passes, as in SQL `CHECK` constraints.

use arrow_arith::boolean::{and, not};
use arrow_schema::Schema;
use serde_json::json;

use super::rows::{RowTally, definite};
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields, parse_expr};
use crate::expr::Expr;

/// `kind = "expression"`.
#[derive(Debug)]
pub(crate) struct Expression {
    expr: Expr,
    text: String,
}

impl Check for Expression {
    const NAME: &'static str = "expression";
    const FIELDS: &'static [&'static str] = &["expr"];
    const ROW_LEVEL: bool = true;
    type Bound = ();
    type State = RowTally;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let text: String = fields
            .take("expr")?
            .ok_or("an `expression` check needs `expr = \"...\"`")?;
        Ok(Expression {
            expr: parse_expr(&text, "expr")?,
            text,
        })
    }

    fn columns(&self) -> Vec<String> {
        self.expr.columns()
    }

    fn default_name(&self) -> String {
        format!("expression({})", self.text)
    }

    fn bind(&self, schema: &Schema) -> Result<(), String> {
        self.expr.check_schema(schema)
    }

    fn new_state(&self, _: &()) -> RowTally {
        RowTally::default()
    }

    fn update(&self, _: &(), state: &mut RowTally, input: &Input<'_>) -> Result<(), String> {
        let result = self.expr.eval_predicate(input.batch)?;
        let falsy = definite(&not(&result).map_err(|e| e.to_string())?);
        let falsy = match input.filter {
            Some(f) => and(&falsy, f).map_err(|e| e.to_string())?,
            None => falsy,
        };
        let mut fails = input.failures(input.room(state.samples.len()));
        fails.record_mask(&falsy);
        state.add(input, input.selected(), fails, &self.columns());
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
        let observed = json!({ "false_rows": state.failing, "false_fraction": fraction });
        let threshold = judge.with_mostly(json!({ "expr": self.text }));
        let noun = format!("for which `{}` is false", self.text);
        state.outcome(judge, &noun, observed, threshold)
    }
}

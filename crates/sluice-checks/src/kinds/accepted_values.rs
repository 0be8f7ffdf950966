//! `accepted_values`: a column only holds values from a set. Nulls are not checked.

use arrow_arith::boolean::not;
use arrow_array::Array;
use arrow_schema::{DataType, Schema};
use serde_json::json;

use super::rows::{RowTally, definite};
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::expr::{Expr, Literal};
use crate::keys::{FastSet, as_int64, as_utf8, le_word, string_dictionary, string_like};

/// `kind = "accepted_values"`.
#[derive(Debug)]
pub(crate) struct AcceptedValues {
    column: String,
    values: Vec<Literal>,
}

/// The accepted values in the form fastest to test against the column's type.
#[derive(Debug)]
pub(crate) enum ValueSet {
    /// Few string values: compared one by one, faster than hashing.
    FewStr(Vec<ShortValue>),
    ManyStr(FastSet<Box<[u8]>>),
    Int(FastSet<i64>),
    /// Anything else: `column IN (...)` evaluated with comparison kernels.
    Generic(Expr),
}

/// An accepted string with its length and first eight bytes at hand: most rows are told apart
/// by two integer comparisons, without a call to compare bytes.
#[derive(Debug)]
pub(crate) struct ShortValue {
    bytes: Box<[u8]>,
    head: u64,
}

impl ShortValue {
    fn new(bytes: Box<[u8]>) -> Self {
        ShortValue {
            head: le_word(&bytes),
            bytes,
        }
    }

    /// Whether `v`, whose first eight bytes are `head`, is this value.
    #[inline]
    fn matches(&self, v: &[u8], head: u64) -> bool {
        self.bytes.len() == v.len()
            && self.head == head
            && (v.len() <= 8 || self.bytes[8..] == v[8..])
    }
}

impl ValueSet {
    /// Whether the string `v` is accepted (string sets only).
    fn accepts(&self, v: &[u8]) -> bool {
        match self {
            ValueSet::FewStr(values) => {
                let head = le_word(v);
                values.iter().any(|a| a.matches(v, head))
            }
            ValueSet::ManyStr(values) => values.contains(v),
            ValueSet::Int(_) | ValueSet::Generic(_) => false,
        }
    }
}

impl Check for AcceptedValues {
    const NAME: &'static str = "accepted_values";
    const FIELDS: &'static [&'static str] = &["column", "values"];
    const ROW_LEVEL: bool = true;
    const READS_DICTIONARIES: bool = true;
    type Bound = ValueSet;
    type State = RowTally;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let column = fields.column()?;
        let values = fields
            .literals("values")?
            .ok_or("an `accepted_values` check needs `values = [...]`")?;
        Ok(AcceptedValues { column, values })
    }

    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }

    fn bind(&self, schema: &Schema) -> Result<ValueSet, String> {
        let column = &self.column;
        let t = super::column_type(schema, column)?;
        if string_like(t) {
            let mut strings = Vec::with_capacity(self.values.len());
            for v in &self.values {
                match v {
                    Literal::Str(s) => strings.push(s.as_bytes().to_vec().into_boxed_slice()),
                    Literal::Int(_) | Literal::Float(_) | Literal::Bool(_) | Literal::Null => {
                        return Err(format!(
                            "column `{column}` holds strings, but the accepted value {} is not a string",
                            v.to_json()
                        ));
                    }
                }
            }
            return Ok(if strings.len() <= 8 {
                ValueSet::FewStr(strings.into_iter().map(ShortValue::new).collect())
            } else {
                ValueSet::ManyStr(strings.into_iter().collect())
            });
        }
        let small_int = matches!(
            t,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
        );
        let ints: Option<FastSet<i64>> = self
            .values
            .iter()
            .map(|v| match v {
                Literal::Int(i) => Some(*i),
                Literal::Null | Literal::Bool(_) | Literal::Float(_) | Literal::Str(_) => None,
            })
            .collect();
        if small_int && let Some(ints) = ints {
            return Ok(ValueSet::Int(ints));
        }
        if self.values.is_empty() {
            return Err("`values` is empty: no value could pass".to_string());
        }
        let expr = Expr::InList(
            Box::new(Expr::Column(column.clone())),
            self.values.iter().cloned().map(Expr::Literal).collect(),
            false,
        );
        expr.check_schema(schema)
            .map_err(|e| format!("accepted values do not fit column `{column}`: {e}"))?;
        Ok(ValueSet::Generic(expr))
    }

    fn new_state(&self, _: &ValueSet) -> RowTally {
        RowTally::default()
    }

    fn update(
        &self,
        set: &ValueSet,
        state: &mut RowTally,
        input: &Input<'_>,
    ) -> Result<(), String> {
        let array = input.column(&self.column)?;
        let rows = input.rows(Some(array.as_ref()))?;
        let mut fails = input.failures(input.room(state.samples.len()));
        let dictionary = match set {
            ValueSet::FewStr(_) | ValueSet::ManyStr(_) => string_dictionary(array.as_ref()),
            ValueSet::Int(_) | ValueSet::Generic(_) => None,
        };
        if let Some((values, keys)) = dictionary {
            // Each distinct string is judged once; a null among the values is a null row.
            let accepted: Vec<bool> = (0..values.len())
                .map(|k| values.is_null(k) || set.accepts(values.value(k).as_bytes()))
                .collect();
            rows.for_each(|i| {
                if !accepted[keys[i]] {
                    fails.record(i);
                }
            });
            state.add(input, rows.count(), fails, &self.columns());
            return Ok(());
        }
        match set {
            ValueSet::FewStr(values) => {
                let strings = as_utf8(array)?;
                rows.for_each(|i| {
                    let v = strings.value(i).as_bytes();
                    let head = le_word(v);
                    if !values.iter().any(|a| a.matches(v, head)) {
                        fails.record(i);
                    }
                });
            }
            ValueSet::ManyStr(values) => {
                let strings = as_utf8(array)?;
                rows.for_each(|i| {
                    if !values.contains(strings.value(i).as_bytes()) {
                        fails.record(i);
                    }
                });
            }
            ValueSet::Int(values) => {
                let ints = as_int64(array)?;
                let ints = ints.values();
                rows.for_each(|i| {
                    if !values.contains(&ints[i]) {
                        fails.record(i);
                    }
                });
            }
            ValueSet::Generic(expr) => {
                let inside = expr.eval_predicate(input.batch)?;
                let outside = definite(&not(&inside).map_err(|e| e.to_string())?);
                rows.for_each(|i| {
                    if outside.value(i) {
                        fails.record(i);
                    }
                });
            }
        }
        state.add(input, rows.count(), fails, &self.columns());
        Ok(())
    }

    fn merge(
        &self,
        _: &ValueSet,
        state: &mut RowTally,
        other: RowTally,
        sample_size: usize,
    ) -> Result<(), String> {
        state.merge(other, sample_size);
        Ok(())
    }

    fn finish(&self, _: &ValueSet, state: RowTally, judge: &Judge) -> Outcome {
        let fraction = Judge::fraction(state.failing, state.checked);
        let observed = json!({ "unexpected_rows": state.failing, "unexpected_fraction": fraction });
        let values: Vec<_> = self.values.iter().map(Literal::to_json).collect();
        let threshold = judge.with_mostly(json!({ "values": values }));
        let noun = format!("with a value of {} outside the accepted set", self.column);
        state.outcome(judge, &noun, observed, threshold)
    }
}

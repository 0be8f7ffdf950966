//! `relationships`: every value of `column` exists in `to_column` of another table (dbt's
//! `relationships` test). The other table's values are fed by the caller through
//! [`crate::Evaluator::observe_reference`] (in a WAP job: that table as it is on the same
//! branch); nulls are not checked.

use std::collections::{HashMap, HashSet};

use arrow_array::{Array, ArrayRef};
use arrow_schema::Schema;
use serde_json::json;

use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::keys::{as_int64, as_utf8, int_like, string_like};
use crate::report::Sample;

/// `kind = "relationships"`.
#[derive(Debug)]
pub(crate) struct Relationships {
    column: String,
    to_table: String,
    to_column: String,
}

/// How the values are compared: as integers or as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Int,
    Str,
    /// Only for the referenced side: a type no key can be read from.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Int(i64),
    Str(String),
}

impl Key {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Key::Int(v) => json!(v),
            Key::Str(s) => json!(s),
        }
    }
}

/// The values seen on both sides.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// Each distinct value of `column` in the new rows, with its number of rows.
    children: HashMap<Key, u64>,
    /// The values of `to_column` in the referenced table.
    parents: HashSet<Key>,
    /// Rows with a value (nulls are not checked).
    checked: u64,
    /// Whether any referenced value was fed at all.
    referenced: bool,
}

fn keys_of(array: &ArrayRef, layout: Layout, mut each: impl FnMut(Key)) -> Result<(), String> {
    match layout {
        Layout::Int => {
            let values = as_int64(array)?;
            for v in values.iter().flatten() {
                each(Key::Int(v));
            }
        }
        Layout::Str => {
            let values = as_utf8(array)?;
            for v in values.iter().flatten() {
                each(Key::Str(v.to_string()));
            }
        }
        Layout::Other => return Err("values of this type cannot be compared".to_string()),
    }
    Ok(())
}

impl Check for Relationships {
    const NAME: &'static str = "relationships";
    const FIELDS: &'static [&'static str] = &["column", "to_table", "to_column"];
    const ROW_LEVEL: bool = false;
    type Bound = Layout;
    type State = State;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let column = fields.column()?;
        let to_table: Option<String> = fields.take("to_table")?;
        let to_table = to_table.filter(|t| t.contains('.')).ok_or_else(|| {
            ConfigProblem::from(
                "a `relationships` check needs `to_table = \"namespace.table\"`".to_string(),
            )
        })?;
        let to_column: Option<String> = fields.take("to_column")?;
        let to_column = to_column.filter(|c| !c.is_empty()).ok_or_else(|| {
            ConfigProblem::from("a `relationships` check needs `to_column = \"...\"`".to_string())
        })?;
        Ok(Relationships {
            column,
            to_table,
            to_column,
        })
    }

    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }

    fn default_name(&self) -> String {
        format!(
            "relationships({} -> {}.{})",
            self.column, self.to_table, self.to_column
        )
    }

    fn bind(&self, schema: &Schema) -> Result<Layout, String> {
        let t = super::column_type(schema, &self.column)?;
        if int_like(t) {
            Ok(Layout::Int)
        } else if string_like(t) {
            Ok(Layout::Str)
        } else {
            Err(format!(
                "column `{}` is {t}; a `relationships` check compares integer or string columns",
                self.column
            ))
        }
    }

    fn new_state(&self, _: &Layout) -> State {
        State::default()
    }

    fn reference(&self) -> Option<(String, String)> {
        Some((self.to_table.clone(), self.to_column.clone()))
    }

    fn observe_reference(
        &self,
        layout: &Layout,
        state: &mut State,
        column: &ArrayRef,
    ) -> Result<(), String> {
        let t = column.data_type();
        let theirs = if int_like(t) {
            Layout::Int
        } else if string_like(t) {
            Layout::Str
        } else {
            Layout::Other
        };
        if theirs != *layout {
            return Err(format!(
                "`{}` of {} is {t}, which cannot be compared with `{}`",
                self.to_column, self.to_table, self.column
            ));
        }
        state.referenced = true;
        let parents = &mut state.parents;
        keys_of(column, *layout, |k| {
            parents.insert(k);
        })
    }

    fn update(&self, layout: &Layout, state: &mut State, input: &Input<'_>) -> Result<(), String> {
        let array = input.column(&self.column)?;
        let array: ArrayRef = match input.filter {
            Some(f) => {
                arrow_select::filter::filter(array.as_ref(), f).map_err(|e| e.to_string())?
            }
            None => array.clone(),
        };
        state.checked += (array.len() - array.logical_null_count()) as u64;
        let children = &mut state.children;
        keys_of(&array, *layout, |k| *children.entry(k).or_default() += 1)
    }

    fn merge(&self, _: &Layout, state: &mut State, other: State, _: usize) -> Result<(), String> {
        for (k, n) in other.children {
            *state.children.entry(k).or_default() += n;
        }
        state.parents.extend(other.parents);
        state.checked += other.checked;
        state.referenced |= other.referenced;
        Ok(())
    }

    fn finish(&self, _: &Layout, state: State, judge: &Judge) -> Outcome {
        let mut missing: Vec<(&Key, &u64)> = state
            .children
            .iter()
            .filter(|(k, _)| !state.parents.contains(*k))
            .collect();
        missing.sort_by(|a, b| {
            b.1.cmp(a.1)
                .then_with(|| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)))
        });
        let failing: u64 = missing.iter().map(|(_, n)| **n).sum();
        let samples: Vec<Sample> = missing
            .iter()
            .take(judge.sample_size)
            .map(|(k, n)| {
                Sample::from([
                    (self.column.clone(), k.to_json()),
                    ("rows".to_string(), json!(n)),
                ])
            })
            .collect();
        let target = format!("{}.{}", self.to_table, self.to_column);
        let passed = failing == 0;
        let message = if passed {
            format!(
                "all {} value(s) of {} exist in {target}",
                state.children.len(),
                self.column
            )
        } else {
            format!(
                "{} value(s) of {} in {failing} row(s) do not exist in {target}",
                missing.len(),
                self.column
            )
        };
        Outcome {
            passed,
            rows_checked: state.checked,
            rows_failing: failing,
            observed: json!({
                "distinct_values": state.children.len(),
                "missing_values": missing.len(),
                "referenced_values": state.parents.len(),
            }),
            threshold: json!({ "to_table": self.to_table, "to_column": self.to_column }),
            samples,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use crate::{CheckSuite, EvalOptions, Status};

    const CHECK: &str = "[[check]]\nkind = \"relationships\"\ncolumn = \"order_id\"\nto_table = \"shop.orders\"\nto_column = \"id\"\n";

    fn lines(ids: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "order_id",
            DataType::Int64,
            true,
        )]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
    }

    #[test]
    fn values_missing_from_the_other_table_fail_with_samples_however_the_rows_are_split() {
        let suite = CheckSuite::from_toml_str(CHECK).unwrap();
        let batch = lines(&[Some(1), Some(2), None, Some(7), Some(7), Some(9)]);
        assert_eq!(suite.referenced_tables(), ["shop.orders"]);
        // Whole: one evaluator sees every row, the orders' ids arrive as Int32.
        let mut whole = suite.evaluator(&batch.schema(), EvalOptions::default());
        assert_eq!(
            whole.references(),
            [("shop.orders".to_string(), "id".to_string())]
        );
        let orders: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
        whole.observe_reference("shop.orders", "id", &orders);
        whole.update(&batch).unwrap();
        let report = whole.finish();
        let result = &report.checks[0];
        assert_eq!(result.status, Status::Fail);
        assert_eq!((result.rows_checked, result.rows_failing), (5, 3));
        assert_eq!(result.samples[0]["order_id"], 7, "most frequent first");
        assert_eq!(result.samples[0]["rows"], 2);

        // Split in two partitions, the references fed to one of them only: the same verdict.
        let mut a = suite.evaluator(&batch.schema(), EvalOptions::default());
        let mut b = a.fork();
        b.observe_reference("shop.orders", "id", &orders);
        a.update(&batch.slice(0, 3)).unwrap();
        b.update(&batch.slice(3, 3)).unwrap();
        a.merge(b).unwrap();
        let merged = a.finish();
        assert_eq!(merged.checks[0].rows_failing, 3);

        // Strings cannot be compared with integers: the check errors, naming both columns.
        let mut ev = suite.evaluator(&batch.schema(), EvalOptions::default());
        let names: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        ev.observe_reference("shop.orders", "id", &names);
        ev.update(&batch).unwrap();
        let report = ev.finish();
        assert_eq!(report.checks[0].status, Status::Error);
        assert!(
            report.checks[0].message.contains("`id` of shop.orders"),
            "{:?}",
            report.checks[0]
        );
    }

    #[test]
    fn a_relationships_check_says_which_field_is_missing() {
        let err = CheckSuite::from_toml_str(
            "[[check]]\nkind = \"relationships\"\ncolumn = \"order_id\"\nto_column = \"id\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("to_table"), "{err}");
    }
}

//! The fields of one `[[check]]` table, handed to its kind to read.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::{Spanned, Value};

use crate::expr::Literal;
use crate::kinds::CheckKind;

/// Why a check's fields are not valid: a message and, when one field is at fault, where it is
/// in the file (otherwise the problem is shown at the start of the check).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConfigProblem {
    /// Byte range of the offending value in the check file.
    pub span: Option<Range<usize>>,
    /// What is wrong and what is expected instead.
    pub message: String,
}

impl From<String> for ConfigProblem {
    fn from(message: String) -> ConfigProblem {
        ConfigProblem {
            span: None,
            message,
        }
    }
}

impl From<&str> for ConfigProblem {
    fn from(message: &str) -> ConfigProblem {
        ConfigProblem::from(message.to_string())
    }
}

/// The fields of one `[[check]]` table not read yet. A kind's [`Check::parse`] takes the fields
/// it knows; each getter removes the field, and reports a value of the wrong type at the value.
///
/// [`Check::parse`]: crate::kinds::Check::parse
#[derive(Debug)]
pub(crate) struct Fields {
    kind: CheckKind,
    values: BTreeMap<String, Spanned<Value>>,
}

impl Fields {
    pub(crate) fn new(kind: CheckKind, values: BTreeMap<String, Spanned<Value>>) -> Fields {
        Fields { kind, values }
    }

    /// Names and positions of the fields not read yet, in file order.
    pub(crate) fn remaining(&self) -> Vec<(String, Range<usize>)> {
        let mut left: Vec<(String, Range<usize>)> = self
            .values
            .iter()
            .map(|(name, value)| (name.clone(), value.span()))
            .collect();
        left.sort_by_key(|(_, span)| span.start);
        left
    }

    /// Takes field `name` as it is written, with its position.
    pub fn take_value(&mut self, name: &str) -> Option<Spanned<Value>> {
        self.values.remove(name)
    }

    /// Takes field `name` as a `T` (a string, a number, a boolean, an enum written as a string).
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, ConfigProblem> {
        let Some(value) = self.take_value(name) else {
            return Ok(None);
        };
        let span = value.span();
        value
            .into_inner()
            .try_into::<T>()
            .map(Some)
            .map_err(|e| ConfigProblem {
                span: Some(span),
                message: e.message().trim().to_string(),
            })
    }

    /// Takes the required `column` field: a non-empty column name.
    pub fn column(&mut self) -> Result<String, ConfigProblem> {
        match self.take::<String>("column")? {
            Some(c) if !c.is_empty() => Ok(c),
            _ => Err(format!("a `{}` check needs `column = \"...\"`", self.kind).into()),
        }
    }

    /// Takes `column = "..."` or `columns = [...]` (one of them, naming at least one column).
    pub fn column_or_columns(&mut self) -> Result<Vec<String>, ConfigProblem> {
        let column: Option<String> = self.take("column")?;
        let columns = match (column, self.column_list("columns")?) {
            (Some(_), Some(_)) => {
                return Err("give either `column` or `columns`, not both".into());
            }
            (Some(c), None) => vec![c],
            (None, Some(v)) => v,
            (None, None) => {
                return Err(format!("a `{}` check needs `columns = [\"...\"]`", self.kind).into());
            }
        };
        if columns.is_empty() {
            return Err("`columns` must name at least one column".into());
        }
        Ok(columns)
    }

    /// Takes field `name` as a list of column names.
    pub fn column_list(&mut self, name: &str) -> Result<Option<Vec<String>>, ConfigProblem> {
        self.take_value(name)
            .map(|v| at(v.span(), column_list(v.get_ref(), name)))
            .transpose()
    }

    /// Takes field `name` as a constant: a string, number, boolean or date.
    pub fn literal(&mut self, name: &str) -> Result<Option<Literal>, ConfigProblem> {
        self.take_value(name)
            .map(|v| at(v.span(), literal(v.get_ref(), name)))
            .transpose()
    }

    /// Takes field `name` as a list of constants.
    pub fn literals(&mut self, name: &str) -> Result<Option<Vec<Literal>>, ConfigProblem> {
        let Some(value) = self.take_value(name) else {
            return Ok(None);
        };
        let span = value.span();
        let Value::Array(items) = value.into_inner() else {
            return Err(ConfigProblem {
                span: Some(span),
                message: format!("`{name}` must be a list, such as [\"a\", \"b\"]"),
            });
        };
        items
            .iter()
            .map(|v| at(span.clone(), literal(v, name)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Takes field `name` as a non-negative integer.
    pub fn count(&mut self, name: &str) -> Result<Option<u64>, ConfigProblem> {
        self.take_value(name)
            .map(|v| {
                let n = match v.get_ref() {
                    Value::Integer(i) if *i >= 0 => Ok(*i as u64),
                    _ => Err(format!("`{name}` must be a non-negative integer")),
                };
                at(v.span(), n)
            })
            .transpose()
    }

    /// Takes `min` and `max` as non-negative integers: at least one of them, `min <= max`.
    pub fn count_bounds(&mut self) -> Result<(Option<u64>, Option<u64>), ConfigProblem> {
        let min = self.count("min")?;
        let max = self.count("max")?;
        match (min, max) {
            (None, None) => {
                Err(format!("a `{}` check needs `min`, `max` or both", self.kind).into())
            }
            (Some(a), Some(b)) if a > b => {
                Err(format!("`min` ({a}) is greater than `max` ({b})").into())
            }
            _ => Ok((min, max)),
        }
    }
}

fn at<T>(span: Range<usize>, result: Result<T, String>) -> Result<T, ConfigProblem> {
    result.map_err(|message| ConfigProblem {
        span: Some(span),
        message,
    })
}

/// A list of column names.
pub(crate) fn column_list(value: &Value, field: &str) -> Result<Vec<String>, String> {
    let err = || format!("`{field}` must be a list of column names, such as [\"user_id\"]");
    value
        .as_array()
        .ok_or_else(err)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(err))
        .collect()
}

fn literal(value: &Value, field: &str) -> Result<Literal, String> {
    Ok(match value {
        Value::String(s) => Literal::Str(s.clone()),
        Value::Integer(i) => Literal::Int(*i),
        Value::Float(f) => Literal::Float(*f),
        Value::Boolean(b) => Literal::Bool(*b),
        Value::Datetime(d) => Literal::Str(d.to_string()),
        Value::Array(_) | Value::Table(_) => {
            return Err(format!(
                "`{field}` must hold strings, numbers, booleans or dates"
            ));
        }
    })
}

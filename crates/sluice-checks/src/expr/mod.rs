//! The SQL-like predicate language of `expression` checks and `where` filters: the expression
//! tree and its evaluation over record batches. The grammar is in `parse.rs`.
//!
//! Keywords are case-insensitive. Evaluation uses Arrow kernels over whole columns, with SQL's
//! three-valued logic: a comparison with NULL is NULL, `NULL AND FALSE` is FALSE, `NULL OR TRUE`
//! is TRUE.

mod parse;

use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, NullArray, RecordBatch,
    StringArray, UInt32Array,
};
use arrow_cast::{CastOptions, can_cast_types, cast, cast_with_options};
use arrow_schema::{DataType, Schema};

use crate::config::type_name;
use crate::error::Result;

/// A literal value in a check file or an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// SQL NULL.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (also dates and timestamps, which are cast to the column's type).
    Str(String),
}

impl Literal {
    pub(crate) fn to_array(&self) -> ArrayRef {
        match self {
            Literal::Null => Arc::new(NullArray::new(1)),
            Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
            Literal::Int(i) => Arc::new(Int64Array::from(vec![*i])),
            Literal::Float(f) => Arc::new(Float64Array::from(vec![*f])),
            Literal::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Literal::Null => serde_json::Value::Null,
            Literal::Bool(b) => (*b).into(),
            Literal::Int(i) => (*i).into(),
            Literal::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Literal::Str(s) => s.clone().into(),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Column(String),
    Literal(Literal),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>, bool),
    InList(Box<Expr>, Vec<Expr>, bool),
}

impl Expr {
    /// Parses an expression.
    pub(crate) fn parse(text: &str) -> Result<Expr> {
        parse::parse(text)
    }

    /// Column names the expression reads, in order of first appearance.
    pub(crate) fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Column(c) => {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
            Expr::Literal(_) => {}
            Expr::Cmp(_, a, b) | Expr::Arith(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
            Expr::Neg(a) | Expr::Not(a) | Expr::IsNull(a, _) => a.collect_columns(out),
            Expr::InList(a, list, _) => {
                a.collect_columns(out);
                for e in list {
                    e.collect_columns(out);
                }
            }
        }
    }

    /// Checks that the expression can be evaluated over `schema` and yields a boolean.
    pub(crate) fn check_schema(&self, schema: &Schema) -> std::result::Result<(), String> {
        for c in self.columns() {
            if schema.column_with_name(&c).is_none() {
                return Err(format!("unknown column `{c}`"));
            }
        }
        // Evaluate over an empty batch of the schema: this runs the same type coercion as real data.
        let batch = RecordBatch::new_empty(Arc::new(schema.clone()));
        let value = self.eval(&batch)?;
        match value.array.data_type() {
            DataType::Boolean | DataType::Null => Ok(()),
            other => Err(format!(
                "the expression yields {}, not a boolean; compare it with something",
                type_name(other)
            )),
        }
    }

    /// Evaluates the expression as a predicate: one boolean (or NULL) per row of `batch`.
    pub(crate) fn eval_predicate(
        &self,
        batch: &RecordBatch,
    ) -> std::result::Result<BooleanArray, String> {
        let value = self.eval(batch)?;
        let value = value.broadcast(batch.num_rows())?;
        match value.data_type() {
            DataType::Boolean => Ok(value
                .as_any()
                .downcast_ref::<BooleanArray>()
                .cloned()
                .ok_or("internal: boolean array of unexpected layout")?),
            DataType::Null => Ok(BooleanArray::new_null(batch.num_rows())),
            other => Err(format!(
                "the expression yields {}, not a boolean",
                type_name(other)
            )),
        }
    }

    fn eval(&self, batch: &RecordBatch) -> std::result::Result<Value, String> {
        match self {
            Expr::Column(name) => {
                let array = batch
                    .column_by_name(name)
                    .ok_or_else(|| format!("unknown column `{name}`"))?;
                let array = match array.data_type() {
                    DataType::Dictionary(_, value_type) => cast(array, value_type)
                        .map_err(|e| format!("cannot decode dictionary column `{name}`: {e}"))?,
                    _ => array.clone(),
                };
                Ok(Value {
                    array,
                    scalar: false,
                })
            }
            Expr::Literal(l) => Ok(Value {
                array: l.to_array(),
                scalar: true,
            }),
            Expr::Cmp(op, a, b) => {
                let (a, b) = coerce(a.eval(batch)?, b.eval(batch)?)?;
                let kernel = match op {
                    CmpOp::Eq => arrow_ord::cmp::eq,
                    CmpOp::NotEq => arrow_ord::cmp::neq,
                    CmpOp::Lt => arrow_ord::cmp::lt,
                    CmpOp::LtEq => arrow_ord::cmp::lt_eq,
                    CmpOp::Gt => arrow_ord::cmp::gt,
                    CmpOp::GtEq => arrow_ord::cmp::gt_eq,
                };
                let out = kernel(&a, &b).map_err(|e| e.to_string())?;
                Ok(Value {
                    array: Arc::new(out),
                    scalar: a.scalar && b.scalar,
                })
            }
            Expr::Arith(op, a, b) => {
                let (a, b) = coerce(a.eval(batch)?, b.eval(batch)?)?;
                if !is_numeric(a.array.data_type()) {
                    return Err(format!(
                        "arithmetic needs numbers, got {}",
                        type_name(a.array.data_type())
                    ));
                }
                let kernel = match op {
                    ArithOp::Add => arrow_arith::numeric::add,
                    ArithOp::Sub => arrow_arith::numeric::sub,
                    ArithOp::Mul => arrow_arith::numeric::mul,
                    ArithOp::Div => arrow_arith::numeric::div,
                    ArithOp::Rem => arrow_arith::numeric::rem,
                };
                let out = kernel(&a, &b).map_err(|e| e.to_string())?;
                Ok(Value {
                    array: out,
                    scalar: a.scalar && b.scalar,
                })
            }
            Expr::Neg(a) => {
                let a = a.eval(batch)?;
                let out = arrow_arith::numeric::neg(a.array.as_ref()).map_err(|e| e.to_string())?;
                Ok(Value {
                    array: out,
                    scalar: a.scalar,
                })
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                let a = a.eval(batch)?;
                let b = b.eval(batch)?;
                let scalar = a.scalar && b.scalar;
                let len = if scalar { 1 } else { batch.num_rows() };
                let a = a.boolean(len)?;
                let b = b.boolean(len)?;
                let out = if matches!(self, Expr::And(..)) {
                    and_kleene(&a, &b)
                } else {
                    or_kleene(&a, &b)
                }
                .map_err(|e| e.to_string())?;
                Ok(Value {
                    array: Arc::new(out),
                    scalar,
                })
            }
            Expr::Not(a) => {
                let a = a.eval(batch)?;
                let (len, scalar) = (a.array.len(), a.scalar);
                let out = not(&a.boolean(len)?).map_err(|e| e.to_string())?;
                Ok(Value {
                    array: Arc::new(out),
                    scalar,
                })
            }
            Expr::IsNull(a, negated) => {
                let a = a.eval(batch)?;
                let out = if *negated {
                    is_not_null(a.array.as_ref())
                } else {
                    is_null(a.array.as_ref())
                }
                .map_err(|e| e.to_string())?;
                Ok(Value {
                    array: Arc::new(out),
                    scalar: a.scalar,
                })
            }
            Expr::InList(a, list, negated) => {
                let mut acc: Option<Expr> = None;
                for item in list {
                    let eq = Expr::Cmp(CmpOp::Eq, a.clone(), Box::new(item.clone()));
                    acc = Some(match acc {
                        None => eq,
                        Some(prev) => Expr::Or(Box::new(prev), Box::new(eq)),
                    });
                }
                let any = acc.ok_or("IN needs at least one value")?;
                if *negated {
                    Expr::Not(Box::new(any)).eval(batch)
                } else {
                    any.eval(batch)
                }
            }
        }
    }
}

/// An evaluated sub-expression: a column-length array, or a one-element array standing for a
/// constant.
struct Value {
    array: ArrayRef,
    scalar: bool,
}

impl Datum for Value {
    fn get(&self) -> (&dyn Array, bool) {
        (self.array.as_ref(), self.scalar)
    }
}

impl Value {
    fn broadcast(self, len: usize) -> std::result::Result<ArrayRef, String> {
        if !self.scalar || len == 1 {
            return Ok(self.array);
        }
        let indices = UInt32Array::from(vec![0u32; len]);
        arrow_select::take::take(self.array.as_ref(), &indices, None).map_err(|e| e.to_string())
    }

    fn boolean(self, len: usize) -> std::result::Result<BooleanArray, String> {
        let ty = self.array.data_type().clone();
        let array = self.broadcast(len)?;
        match ty {
            DataType::Boolean => array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .cloned()
                .ok_or_else(|| "internal: boolean array of unexpected layout".to_string()),
            DataType::Null => Ok(BooleanArray::new_null(array.len())),
            other => Err(format!(
                "AND, OR and NOT need booleans, got {}",
                type_name(&other)
            )),
        }
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric()
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn cast_value(v: Value, to: &DataType) -> std::result::Result<Value, String> {
    if v.array.data_type() == to {
        return Ok(v);
    }
    // A constant that cannot be converted is a mistake in the check file: say so rather than
    // comparing with NULL.
    let options = CastOptions {
        safe: !v.scalar,
        ..Default::default()
    };
    let array = cast_with_options(v.array.as_ref(), to, &options).map_err(|e| {
        format!(
            "cannot convert {} to {} for comparison: {e}",
            type_name(v.array.data_type()),
            type_name(to)
        )
    })?;
    Ok(Value {
        array,
        scalar: v.scalar,
    })
}

/// Brings both sides of a binary operator to one type.
fn coerce(a: Value, b: Value) -> std::result::Result<(Value, Value), String> {
    let (ta, tb) = (a.array.data_type().clone(), b.array.data_type().clone());
    if ta == tb {
        return Ok((a, b));
    }
    if ta == DataType::Null {
        return Ok((cast_value(a, &tb)?, b));
    }
    if tb == DataType::Null {
        return Ok((a, cast_value(b, &ta)?));
    }
    if is_numeric(&ta) && is_numeric(&tb) {
        let float = |t: &DataType| {
            t.is_floating()
                || matches!(
                    t,
                    DataType::Decimal128(..)
                        | DataType::Decimal256(..)
                        | DataType::Decimal32(..)
                        | DataType::Decimal64(..)
                )
        };
        let target = if float(&ta) || float(&tb) {
            DataType::Float64
        } else if ta.is_unsigned_integer() && tb.is_unsigned_integer() {
            DataType::UInt64
        } else {
            DataType::Int64
        };
        return Ok((cast_value(a, &target)?, cast_value(b, &target)?));
    }
    if is_string(&ta) && is_string(&tb) {
        // Convert the constant (if any) to the column's string layout; otherwise to Utf8.
        return if b.scalar {
            Ok((a, cast_value(b, &ta)?))
        } else if a.scalar {
            Ok((cast_value(a, &tb)?, b))
        } else {
            Ok((
                cast_value(a, &DataType::Utf8)?,
                cast_value(b, &DataType::Utf8)?,
            ))
        };
    }
    // A string and a number are never compared as text: `country > 1` is as much a mistake as
    // `event_id = 'abc'`.
    if (is_string(&ta) && is_numeric(&tb)) || (is_numeric(&ta) && is_string(&tb)) {
        return Err(format!(
            "cannot compare {} with {}; quote a string constant ('1') or compare a number column",
            type_name(&ta),
            type_name(&tb)
        ));
    }
    // Mixed types: convert the constant side to the column side (a date string to a timestamp).
    let (to_b, to_a) = if b.scalar || (!a.scalar && is_string(&tb)) {
        (true, false)
    } else {
        (false, true)
    };
    if to_b && can_cast_types(&tb, &ta) {
        let b = cast_value(b, &ta)?;
        return Ok((a, b));
    }
    if to_a && can_cast_types(&ta, &tb) {
        let a = cast_value(a, &tb)?;
        return Ok((a, b));
    }
    Err(format!(
        "cannot compare {} with {}",
        type_name(&ta),
        type_name(&tb)
    ))
}
#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use arrow_schema::Field;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("amount", DataType::Float64, true),
            Field::new("event_type", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(5.0),
                    Some(-1.0),
                    None,
                    Some(-2.0),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("purchase"),
                    Some("purchase"),
                    Some("view"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3), None])),
            ],
        )
        .unwrap()
    }

    fn eval(text: &str) -> Vec<Option<bool>> {
        let e = Expr::parse(text).unwrap();
        e.eval_predicate(&batch()).unwrap().iter().collect()
    }

    #[test]
    fn comparisons_and_three_valued_logic() {
        assert_eq!(
            eval("amount >= 0 OR event_type <> 'purchase'"),
            vec![Some(true), Some(false), Some(true), None]
        );
        assert_eq!(
            eval("amount IS NULL"),
            vec![Some(false), Some(false), Some(true), Some(false)]
        );
        assert_eq!(
            eval("NOT (n IS NOT NULL)"),
            vec![Some(false), Some(false), Some(false), Some(true)]
        );
        assert_eq!(
            eval("n IN (1, 3)"),
            vec![Some(true), Some(false), Some(true), None]
        );
        assert_eq!(
            eval("n NOT IN (1, 3)"),
            vec![Some(false), Some(true), Some(false), None]
        );
        assert_eq!(
            eval("n between 2 and 3"),
            vec![Some(false), Some(true), Some(true), None]
        );
        assert_eq!(
            eval("n * 2 + 1 = 5"),
            vec![Some(false), Some(true), Some(false), None]
        );
        assert_eq!(
            eval("amount > -1.5"),
            vec![Some(true), Some(true), None, Some(false)]
        );
        assert_eq!(eval("TRUE"), vec![Some(true); 4]);
        assert_eq!(eval("n = NULL"), vec![None; 4]);
        assert_eq!(eval("FALSE AND n = NULL"), vec![Some(false); 4]);
        assert_eq!(
            eval("\"event_type\" = 'view'"),
            vec![Some(false), Some(false), Some(true), None]
        );
    }

    #[test]
    fn schema_check_reports_unknown_columns_and_type_errors() {
        let schema = batch().schema();
        assert!(
            Expr::parse("amount > 0")
                .unwrap()
                .check_schema(&schema)
                .is_ok()
        );
        let e = Expr::parse("missing > 0")
            .unwrap()
            .check_schema(&schema)
            .unwrap_err();
        assert!(e.contains("unknown column `missing`"), "{e}");
        let e = Expr::parse("amount + 1")
            .unwrap()
            .check_schema(&schema)
            .unwrap_err();
        assert!(e.contains("not a boolean"), "{e}");
        let e = Expr::parse("event_type AND TRUE")
            .unwrap()
            .check_schema(&schema)
            .unwrap_err();
        assert!(e.contains("need booleans"), "{e}");
        assert_eq!(
            Expr::parse("amount > n AND event_type = 'x'")
                .unwrap()
                .columns(),
            vec!["amount", "n", "event_type"]
        );
    }
}

//! Every check kind: pass, fail, threshold edge, nulls, empty input. One module per kind or
//! family of kinds; the helpers here build their columns.

mod accepted_values;
mod aggregates;
mod anomaly;
mod expression;
mod not_null;
mod outcomes;
mod range;
mod strings;
mod unique;

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use serde_json::json;
use sluice_checks::{CheckSuite, EvalOptions, Evidence, Status};

use crate::{audit, batch, first, run_time};

fn ints(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
fn strs(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
fn floats(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}
fn micros(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}
fn empty_like(b: &RecordBatch) -> RecordBatch {
    RecordBatch::new_empty(b.schema())
}

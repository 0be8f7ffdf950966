//! Samples of failing rows: the values of a few columns of a row, as JSON.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_cast::cast;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use serde_json::Value as Json;

use crate::report::Sample;

/// The value of one cell as JSON: numbers, strings and booleans as themselves, other types in
/// Arrow's display form.
fn json_cell(array: &dyn Array, row: usize) -> Json {
    if array.is_null(row) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Boolean => array.as_boolean().value(row).into(),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => match cast(&array.slice(row, 1), &DataType::Int64) {
            Ok(a) => a.as_primitive::<Int64Type>().value(0).into(),
            Err(_) => Json::Null,
        },
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            match cast(&array.slice(row, 1), &DataType::Float64) {
                Ok(a) => {
                    let v = a.as_primitive::<Float64Type>().value(0);
                    serde_json::Number::from_f64(v)
                        .map(Json::Number)
                        .unwrap_or_else(|| v.to_string().into())
                }
                Err(_) => Json::Null,
            }
        }
        DataType::Utf8 => array.as_string::<i32>().value(row).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).into(),
        DataType::Utf8View => array.as_string_view().value(row).into(),
        _ => match ArrayFormatter::try_new(array, &FormatOptions::default()) {
            Ok(f) => f.value(row).to_string().into(),
            Err(_) => Json::Null,
        },
    }
}

/// Samples of `rows` of `batch`: the values of `key_columns`, then of `columns`.
pub(crate) fn sample_rows(
    batch: &RecordBatch,
    rows: &[usize],
    columns: &[String],
    key_columns: &[String],
) -> Vec<Sample> {
    rows.iter()
        .map(|&row| {
            let mut sample = Sample::new();
            for c in key_columns.iter().chain(columns) {
                if let Some(array) = batch.column_by_name(c) {
                    sample.insert(c.clone(), json_cell(array.as_ref(), row));
                }
            }
            sample
        })
        .collect()
}

/// Rows `rows` of `batch` as samples, every column.
pub fn samples_of(batch: &RecordBatch, rows: std::ops::Range<usize>) -> Vec<Sample> {
    let schema = batch.schema();
    rows.map(|row| {
        schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| (field.name().clone(), json_cell(array.as_ref(), row)))
            .collect()
    })
    .collect()
}

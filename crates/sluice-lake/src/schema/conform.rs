//! Conforming incoming batches to a table's schema: columns matched by name (nested ones
//! too), reordered, cast where the value is the same, missing nullable ones filled with nulls.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, ListArray, MapArray, RecordBatch, StructArray, TimestampNanosecondArray,
    new_null_array,
};
use arrow_schema::{DataType, SchemaRef as ArrowSchemaRef, TimeUnit};

use crate::error::{Error, Result};

use super::{diff_schemas, is_nested, list_element};

/// What becomes of a nanosecond timestamp written to a column that stores microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NanosToMicros {
    /// A value with a non-zero sub-microsecond part is an error naming the column: nothing
    /// is silently lost.
    #[default]
    Refuse,
    /// Sub-microsecond parts are dropped (rounded towards negative infinity).
    Truncate,
}

/// Nanosecond timestamps as microseconds, refusing (per `policy`) any value that would lose
/// precision. `column` and `source` name the values in the error.
pub fn timestamps_to_micros(
    values: &ArrayRef,
    target: &DataType,
    policy: NanosToMicros,
    table_name: &str,
    source: &str,
    column: &str,
) -> Result<ArrayRef> {
    if policy == NanosToMicros::Refuse
        && let Some(nanos) = values.as_any().downcast_ref::<TimestampNanosecondArray>()
        && let Some(row) = nanos.iter().position(|v| v.is_some_and(|v| v % 1000 != 0))
    {
        return Err(Error::SchemaMismatch {
            table: table_name.to_string(),
            path: source.to_string(),
            diff: format!(
                "column `{column}` holds nanosecond timestamps (row {row} has a sub-microsecond part) and the table stores microseconds; pass --truncate-timestamps to drop the nanoseconds"
            ),
        });
    }
    // Arrow's cast divides, which rounds towards zero; flooring keeps times before 1970 in the
    // microsecond they fall in.
    let floored: ArrayRef = match values.as_any().downcast_ref::<TimestampNanosecondArray>() {
        Some(nanos) => Arc::new(
            nanos
                .unary::<_, arrow_array::types::TimestampNanosecondType>(|v| {
                    v.div_euclid(1000) * 1000
                })
                .with_timezone_opt(nanos.timezone().map(str::to_string)),
        ),
        None => values.clone(),
    };
    Ok(arrow_cast::cast(&floored, target)?)
}

/// Rebuilds a batch with the table's Arrow schema: columns by name, in table order, missing
/// optional columns (and struct fields) as nulls, time zone and string-encoding differences
/// cast away, nested fields relabelled with the table's names and field ids, top-level
/// nanosecond timestamps refused unless they are whole microseconds.
pub fn conform_batch(
    table_name: &str,
    source: &str,
    table_schema: &ArrowSchemaRef,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
    conform_batch_with(
        table_name,
        source,
        table_schema,
        batch,
        NanosToMicros::Refuse,
    )
}

/// [`conform_batch`] with a choice of what happens to nanosecond timestamps.
pub fn conform_batch_with(
    table_name: &str,
    source: &str,
    table_schema: &ArrowSchemaRef,
    batch: &RecordBatch,
    nanos: NanosToMicros,
) -> Result<RecordBatch> {
    if batch.schema().fields().len() == table_schema.fields().len()
        && batch
            .schema()
            .fields()
            .iter()
            .zip(table_schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
    {
        return with_rows(table_schema, batch.columns().to_vec(), batch.num_rows());
    }
    let diff = diff_schemas(table_schema, &batch.schema());
    if !diff.is_compatible() {
        return Err(Error::SchemaMismatch {
            table: table_name.to_string(),
            path: source.to_string(),
            diff: diff.describe(),
        });
    }
    let input_schema = batch.schema();
    let mut columns = Vec::with_capacity(table_schema.fields().len());
    for field in table_schema.fields() {
        match input_schema.index_of(field.name()) {
            Ok(i) => {
                let column = batch.column(i);
                if matches!(
                    column.data_type(),
                    DataType::Timestamp(TimeUnit::Nanosecond, _)
                ) && column.data_type() != field.data_type()
                {
                    columns.push(timestamps_to_micros(
                        column,
                        field.data_type(),
                        nanos,
                        table_name,
                        source,
                        field.name(),
                    )?);
                } else {
                    columns.push(conform_array(column, field.data_type())?);
                }
            }
            Err(_) => columns.push(new_null_array(field.data_type(), batch.num_rows())),
        }
    }
    with_rows(table_schema, columns, batch.num_rows())
}

/// A batch of `columns` that keeps its row count when it has no column (a reader that only
/// counts rows projects none).
fn with_rows(schema: &ArrowSchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

/// An array of type `target` holding the values of `array`, whose type [`compare_types`]
/// found compatible: struct fields matched by name (missing ones null), list elements and map
/// entries relabelled, leaves cast.
fn conform_array(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    let array = match array.data_type() {
        DataType::Dictionary(_, v) if is_nested(v) => arrow_cast::cast(array, v)?,
        _ => array.clone(),
    };
    match target {
        DataType::Struct(fields) => {
            let Some(input) = array.as_struct_opt() else {
                return Ok(arrow_cast::cast(&array, target)?);
            };
            let children = fields
                .iter()
                .map(|f| match input.column_by_name(f.name()) {
                    Some(child) => conform_array(child, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), input.len())),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                input.nulls().cloned(),
            )?))
        }
        DataType::List(element) => {
            let list = match array.data_type() {
                DataType::List(_) => array.clone(),
                other => {
                    let from = list_element(other).cloned().ok_or_else(|| {
                        arrow_schema::ArrowError::CastError(format!(
                            "cannot store {other} as {target}"
                        ))
                    })?;
                    arrow_cast::cast(&array, &DataType::List(from))?
                }
            };
            let list = list.as_list::<i32>();
            let values = conform_array(list.values(), element.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                element.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        DataType::Map(entries, sorted) => {
            let (Some(map), DataType::Struct(kv)) = (array.as_map_opt(), entries.data_type())
            else {
                return Ok(arrow_cast::cast(&array, target)?);
            };
            let keys = conform_array(map.keys(), kv[0].data_type())?;
            let values = conform_array(map.values(), kv[1].data_type())?;
            let pairs = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
            Ok(Arc::new(MapArray::try_new(
                entries.clone(),
                map.offsets().clone(),
                pairs,
                map.nulls().cloned(),
                *sorted,
            )?))
        }
        _ => Ok(arrow_cast::cast(&array, target)?),
    }
}

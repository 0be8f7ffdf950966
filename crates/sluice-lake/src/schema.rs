//! Arrow ↔ Iceberg schemas: creating a table's schema from an Arrow schema, checking that
//! incoming batches or files fit the table, and the schema changes sluice makes (rename a
//! column, add nullable columns).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, TimestampNanosecondArray, new_null_array};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef as ArrowSchemaRef, TimeUnit};
use iceberg::arrow::{
    arrow_schema_to_schema_auto_assign_ids, arrow_type_to_type, schema_to_arrow_schema,
};
use iceberg::spec::{MappedField, NameMapping, NestedField, NestedFieldRef, Schema, Type};

use crate::error::{Error, Result};

/// Table property holding the default name mapping (for files written without field ids, such
/// as files registered in place).
pub const NAME_MAPPING_PROPERTY: &str = "schema.name-mapping.default";

/// An Iceberg schema (field ids assigned from 1) for an Arrow schema.
pub fn iceberg_schema_from_arrow(schema: &ArrowSchema) -> Result<Schema> {
    // Metadata such as pandas or field-id hints from the source file must not leak in.
    let clean = ArrowSchema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), normalize_type(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    );
    Ok(arrow_schema_to_schema_auto_assign_ids(&clean)?)
}

/// Types that sluice stores as their canonical Iceberg equivalent. Nanosecond timestamps are
/// stored as microseconds: Iceberg's `timestamp_ns` exists only in format version 3, which
/// most engines cannot read yet (see [`NanosToMicros`]).
fn normalize_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => normalize_type(value),
        other => other.clone(),
    }
}

/// The name mapping JSON for a schema: every field id with the names it has had.
pub(crate) fn name_mapping_json(schema: &Schema, previous: Option<&str>) -> Result<String> {
    let mut aliases: HashMap<i32, Vec<String>> = HashMap::new();
    if let Some(previous) = previous
        && let Ok(mapping) = serde_json::from_str::<NameMapping>(previous)
    {
        collect_aliases(mapping.fields(), &mut aliases);
    }
    let fields = mapped_fields(schema.as_struct().fields(), &aliases);
    serde_json::to_string(&NameMapping::new(fields))
        .map_err(|e| Error::Config(format!("cannot serialise the table's name mapping: {e}")))
}

fn collect_aliases(fields: &[MappedField], out: &mut HashMap<i32, Vec<String>>) {
    for f in fields {
        if let Some(id) = f.field_id() {
            out.entry(id).or_default().extend(f.names().iter().cloned());
        }
        let nested: Vec<MappedField> = f.fields().iter().map(|n| n.as_ref().clone()).collect();
        collect_aliases(&nested, out);
    }
}

fn mapped_fields(
    fields: &[NestedFieldRef],
    aliases: &HashMap<i32, Vec<String>>,
) -> Vec<MappedField> {
    fields
        .iter()
        .map(|f| {
            let mut names = vec![f.name.clone()];
            for alias in aliases.get(&f.id).into_iter().flatten() {
                if !names.contains(alias) {
                    names.push(alias.clone());
                }
            }
            let nested = match f.field_type.as_ref() {
                Type::Struct(s) => mapped_fields(s.fields(), aliases),
                Type::List(l) => mapped_fields(std::slice::from_ref(&l.element_field), aliases),
                Type::Map(m) => {
                    mapped_fields(&[m.key_field.clone(), m.value_field.clone()], aliases)
                }
                Type::Primitive(_) => Vec::new(),
            };
            MappedField::new(Some(f.id), names, nested)
        })
        .collect()
}

/// The Arrow schema that data files of this table are written with (field ids in metadata).
pub fn arrow_schema_for(schema: &Schema) -> Result<ArrowSchemaRef> {
    Ok(Arc::new(schema_to_arrow_schema(schema)?))
}

/// Whether a value of type `from` is stored unchanged as `to` (names of time zones, string
/// and binary encodings, dictionary encoding); these differences are bridged by a cheap cast.
fn same_logical_type(from: &DataType, to: &DataType) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (DataType::Timestamp(u1, tz1), DataType::Timestamp(u2, tz2)) => {
            (u1 == u2 || (*u1 == TimeUnit::Nanosecond && *u2 == TimeUnit::Microsecond))
                && tz1.is_some() == tz2.is_some()
                && tz_is_utc(tz1.as_deref()) == tz_is_utc(tz2.as_deref())
        }
        (DataType::Dictionary(_, v), t) => same_logical_type(v, t),
        (a, b) => normalize_type(a) == normalize_type(b),
    }
}

fn tz_is_utc(tz: Option<&str>) -> bool {
    matches!(tz, None | Some("UTC" | "+00:00" | "Z" | "Etc/UTC" | "utc"))
}

/// How an incoming schema differs from the table's, for error messages and schema evolution.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SchemaDiff {
    /// Columns in the input that the table does not have.
    pub extra: Vec<Field>,
    /// Required table columns the input lacks.
    pub missing_required: Vec<String>,
    /// Optional table columns the input lacks (filled with nulls).
    pub missing_optional: Vec<String>,
    /// Columns whose types differ: (name, table type, input type).
    pub type_changes: Vec<(String, DataType, DataType)>,
}

impl SchemaDiff {
    /// Whether the input can be written to the table as it is.
    pub fn is_compatible(&self) -> bool {
        self.extra.is_empty() && self.missing_required.is_empty() && self.type_changes.is_empty()
    }

    /// A readable description.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for f in &self.extra {
            parts.push(format!(
                "column `{}` ({}) is not in the table (evolve it with --on-schema-change add-columns)",
                f.name(),
                f.data_type()
            ));
        }
        for c in &self.missing_required {
            parts.push(format!("required column `{c}` is missing"));
        }
        for (c, table, input) in &self.type_changes {
            parts.push(format!(
                "column `{c}` is {input} in the input but {table} in the table"
            ));
        }
        parts.join("; ")
    }
}

/// Compares an input schema with the table's Arrow schema.
pub fn diff_schemas(table: &ArrowSchema, input: &ArrowSchema) -> SchemaDiff {
    let mut diff = SchemaDiff::default();
    for field in table.fields() {
        match input.field_with_name(field.name()) {
            Ok(input_field) => {
                if !same_logical_type(input_field.data_type(), field.data_type()) {
                    diff.type_changes.push((
                        field.name().clone(),
                        field.data_type().clone(),
                        input_field.data_type().clone(),
                    ));
                }
            }
            Err(_) if field.is_nullable() => diff.missing_optional.push(field.name().clone()),
            Err(_) => diff.missing_required.push(field.name().clone()),
        }
    }
    for field in input.fields() {
        if table.field_with_name(field.name()).is_err() {
            diff.extra.push(field.as_ref().clone());
        }
    }
    diff
}

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
/// optional columns as nulls, time zone and string-encoding differences cast away, nanosecond
/// timestamps refused unless they are whole microseconds.
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
        return Ok(RecordBatch::try_new(
            table_schema.clone(),
            batch.columns().to_vec(),
        )?);
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
                if column.data_type() == field.data_type() {
                    columns.push(column.clone());
                } else if matches!(
                    column.data_type(),
                    DataType::Timestamp(TimeUnit::Nanosecond, _)
                ) {
                    columns.push(timestamps_to_micros(
                        column,
                        field.data_type(),
                        nanos,
                        table_name,
                        source,
                        field.name(),
                    )?);
                } else {
                    columns.push(arrow_cast::cast(column, field.data_type())?);
                }
            }
            Err(_) => columns.push(new_null_array(field.data_type(), batch.num_rows())),
        }
    }
    Ok(RecordBatch::try_new(table_schema.clone(), columns)?)
}

/// A new schema with one top-level column renamed (same field id).
pub(crate) fn renamed(schema: &Schema, table: &str, old: &str, new: &str) -> Result<Schema> {
    if schema.field_by_name(new).is_some() {
        return Err(Error::SchemaMismatch {
            table: table.to_string(),
            path: "<rename>".to_string(),
            diff: format!("column `{new}` already exists"),
        });
    }
    let mut found = false;
    let fields: Vec<NestedFieldRef> = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            if f.name == old {
                found = true;
                let mut renamed = f.as_ref().clone();
                renamed.name = new.to_string();
                Arc::new(renamed)
            } else {
                f.clone()
            }
        })
        .collect();
    if !found {
        return Err(Error::ColumnNotFound {
            table: table.to_string(),
            column: old.to_string(),
        });
    }
    Ok(Schema::builder()
        .with_schema_id(schema.schema_id() + 1)
        .with_fields(fields)
        .with_identifier_field_ids(schema.identifier_field_ids())
        .build()?)
}

/// A new schema with nullable columns appended (ids after `last_column_id`).
pub(crate) fn with_added_columns(
    schema: &Schema,
    last_column_id: i32,
    table: &str,
    new_fields: &[Field],
) -> Result<Schema> {
    let mut next_id = last_column_id;
    let mut fields: Vec<NestedFieldRef> = schema.as_struct().fields().to_vec();
    for field in new_fields {
        if schema.field_by_name(field.name()).is_some() {
            continue;
        }
        let ty = arrow_type_to_type(&normalize_type(field.data_type()))?;
        if !matches!(ty, Type::Primitive(_)) {
            return Err(Error::SchemaMismatch {
                table: table.to_string(),
                path: "<add-columns>".to_string(),
                diff: format!(
                    "column `{}` has nested type {}; only primitive columns can be added automatically",
                    field.name(),
                    field.data_type()
                ),
            });
        }
        next_id += 1;
        fields.push(Arc::new(NestedField::optional(next_id, field.name(), ty)));
    }
    Ok(Schema::builder()
        .with_schema_id(schema.schema_id() + 1)
        .with_fields(fields)
        .with_identifier_field_ids(schema.identifier_field_ids())
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, Int64Array, StringArray};
    use arrow_schema::TimeUnit;

    fn table_schema() -> ArrowSchemaRef {
        let arrow = ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        arrow_schema_for(&iceberg_schema_from_arrow(&arrow).unwrap()).unwrap()
    }

    #[test]
    fn conform_reorders_fills_and_rejects() {
        let schema = table_schema();
        let input = Arc::new(ArrowSchema::new(vec![
            Field::new("name", DataType::LargeUtf8, true),
            Field::new("id", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            input,
            vec![
                Arc::new(arrow_array::LargeStringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let out = conform_batch("ns.t", "f.parquet", &schema, &batch).unwrap();
        assert_eq!(out.schema(), schema);
        assert_eq!(out.column(2).null_count(), 2);
        let names = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(names.value(1), "b");

        let wrong = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![Field::new(
                "id",
                DataType::Int32,
                false,
            )])),
            vec![Arc::new(Int32Array::from(vec![1]))],
        )
        .unwrap();
        let err = conform_batch("ns.t", "bad.parquet", &schema, &wrong)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.parquet") && err.contains("`id` is Int32"),
            "{err}"
        );
    }

    #[test]
    fn rename_keeps_ids_and_mapping_keeps_old_names() {
        let schema = iceberg_schema_from_arrow(&ArrowSchema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]))
        .unwrap();
        let mapping = name_mapping_json(&schema, None).unwrap();
        let renamed = renamed(&schema, "ns.t", "b", "c").unwrap();
        assert_eq!(
            renamed.field_by_name("c").unwrap().id,
            schema.field_by_name("b").unwrap().id
        );
        let mapping2 = name_mapping_json(&renamed, Some(&mapping)).unwrap();
        assert!(
            mapping2.contains("\"c\"") && mapping2.contains("\"b\""),
            "{mapping2}"
        );
        assert!(matches!(renamed_err(&schema), Error::ColumnNotFound { .. }));
    }

    fn renamed_err(schema: &Schema) -> Error {
        renamed(schema, "ns.t", "zz", "y").unwrap_err()
    }
}

//! Arrow ↔ Iceberg schemas: creating a table's schema from an Arrow schema, checking that
//! incoming batches or files fit the table, and the schema changes sluice makes (rename a
//! column, add nullable columns).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{
    DataType, Field, FieldRef, Schema as ArrowSchema, SchemaRef as ArrowSchemaRef, TimeUnit,
};
use iceberg::arrow::{
    arrow_schema_to_schema_auto_assign_ids, arrow_type_to_type, schema_to_arrow_schema,
};
use iceberg::spec::{
    ListType, MapType, MappedField, NameMapping, NestedField, NestedFieldRef, Schema, StructType,
    Type,
};

use crate::error::{Error, Result};

/// Table property holding the default name mapping (for files written without field ids, such
/// as files registered in place).
pub const NAME_MAPPING_PROPERTY: &str = "schema.name-mapping.default";

/// An Iceberg schema (field ids assigned from 1) for an Arrow schema.
///
/// A column of a type Iceberg cannot store is an [`Error::UnsupportedColumns`] naming every
/// such column (nested ones by their path).
pub fn iceberg_schema_from_arrow(schema: &ArrowSchema) -> Result<Schema> {
    let problems = unsupported_columns(schema);
    if !problems.is_empty() {
        return Err(Error::UnsupportedColumns {
            path: "the input".to_string(),
            problems: problems.join("; "),
        });
    }
    // Metadata such as pandas or field-id hints from the source file must not leak in, at any
    // depth: nested fields carry them too.
    let clean = ArrowSchema::new(
        schema
            .fields()
            .iter()
            .map(|f| normalize_field(f))
            .collect::<Vec<_>>(),
    );
    Ok(arrow_schema_to_schema_auto_assign_ids(&clean)?)
}

/// Every column of `schema` (nested ones by their dotted path) whose type Iceberg cannot
/// store, each with the reason and what to use instead; empty when all of them fit.
pub fn unsupported_columns(schema: &ArrowSchema) -> Vec<String> {
    let mut problems = Vec::new();
    for field in schema.fields() {
        collect_unsupported(field.name(), field.data_type(), &mut problems);
    }
    problems
}

fn collect_unsupported(path: &str, ty: &DataType, out: &mut Vec<String>) {
    match ty {
        DataType::Struct(fields) => {
            for f in fields {
                collect_unsupported(&format!("{path}.{}", f.name()), f.data_type(), out);
            }
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            collect_unsupported(&format!("{path}.element"), f.data_type(), out)
        }
        DataType::FixedSizeList(f, _) => {
            collect_unsupported(&format!("{path}.element"), f.data_type(), out)
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                collect_unsupported(&format!("{path}.key"), kv[0].data_type(), out);
                collect_unsupported(&format!("{path}.value"), kv[1].data_type(), out);
            }
            other => out.push(format!(
                "column `{path}` is a map whose entries are {other}, not key-value pairs"
            )),
        },
        DataType::Dictionary(_, value) => collect_unsupported(path, value, out),
        // pandas writes a column whose values are all None (in this file) without a type.
        DataType::Null => out.push(format!(
            "column `{path}` has no type (Arrow null: every value is null in this file, as \
             pandas writes an all-None column); give it one in the producer, e.g. \
             `df[\"{leaf_name}\"].astype(\"string\")` or an explicit pyarrow schema",
            leaf_name = path.rsplit('.').next().unwrap_or(path)
        )),
        leaf => {
            if let Err(e) = arrow_type_to_type(&normalize_type(leaf)) {
                // The iceberg crate's message carries the hint (e.g. what to use for uint64);
                // its error kind means nothing to a user.
                out.push(format!("column `{path}` is {leaf}: {}", e.message()));
            }
        }
    }
}

/// Types that sluice stores as their canonical Iceberg equivalent, at every depth, without
/// field metadata. Nanosecond timestamps are stored as microseconds: Iceberg's `timestamp_ns`
/// exists only in format version 3, which most engines cannot read yet (see [`NanosToMicros`]).
fn normalize_type(t: &DataType) -> DataType {
    match t {
        // Every spelling of UTC (`Z`, `Etc/UTC`, …) is Iceberg's `timestamptz`; nanoseconds are
        // stored as microseconds.
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Nanosecond => TimeUnit::Microsecond,
                other => *other,
            };
            let tz = match tz.as_deref() {
                Some(zone) if tz_is_utc(Some(zone)) => Some("+00:00".into()),
                _ => tz.clone(),
            };
            DataType::Timestamp(unit, tz)
        }
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => normalize_type(value),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            DataType::List(Arc::new(normalize_field(f)))
        }
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| normalize_field(f))
                .collect::<Vec<_>>()
                .into(),
        ),
        DataType::Map(entries, sorted) => {
            DataType::Map(Arc::new(normalize_field(entries)), *sorted)
        }
        other => other.clone(),
    }
}

fn normalize_field(f: &Field) -> Field {
    Field::new(f.name(), normalize_type(f.data_type()), f.is_nullable())
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

/// Whether two leaf (non-nested) types hold the same values: names of time zones, string
/// and binary encodings and dictionary encoding aside; these differences are bridged by a cheap
/// cast.
fn same_leaf_type(from: &DataType, to: &DataType) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (DataType::Timestamp(u1, tz1), DataType::Timestamp(u2, tz2)) => {
            (u1 == u2 || (*u1 == TimeUnit::Nanosecond && *u2 == TimeUnit::Microsecond))
                && tz1.is_some() == tz2.is_some()
                && tz_is_utc(tz1.as_deref()) == tz_is_utc(tz2.as_deref())
        }
        (DataType::Dictionary(_, v), t) => same_leaf_type(v, t),
        (a, b) => normalize_type(a) == normalize_type(b),
    }
}

fn tz_is_utc(tz: Option<&str>) -> bool {
    matches!(tz, None | Some("UTC" | "+00:00" | "Z" | "Etc/UTC" | "utc"))
}

/// The element field of a list type of any encoding.
fn list_element(ty: &DataType) -> Option<&FieldRef> {
    match ty {
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => Some(f),
        _ => None,
    }
}

/// The key and value fields of a map type.
fn map_entries(ty: &DataType) -> Option<(&FieldRef, &FieldRef)> {
    match ty {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Some((&kv[0], &kv[1])),
            _ => None,
        },
        _ => None,
    }
}

fn is_nested(ty: &DataType) -> bool {
    list_element(ty).is_some() || matches!(ty, DataType::Struct(_) | DataType::Map(..))
}

/// How an incoming schema differs from the table's, for error messages and schema evolution.
///
/// Nested columns are compared field by field: names of list elements and map entries and
/// field metadata (such as parquet field ids) are not differences.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SchemaDiff {
    /// Columns in the input that the table does not have.
    pub extra: Vec<Field>,
    /// Fields inside struct columns (by dotted path) that the input has and the table lacks,
    /// each with the input's top-level column that holds it.
    pub extra_nested: Vec<(String, Field)>,
    /// Required table columns the input lacks (nested ones by dotted path).
    pub missing_required: Vec<String>,
    /// Optional table columns the input lacks (filled with nulls).
    pub missing_optional: Vec<String>,
    /// Columns whose types differ: (name or dotted path, table type, input type).
    pub type_changes: Vec<(String, DataType, DataType)>,
}

impl SchemaDiff {
    /// Whether the input can be written to the table as it is.
    pub fn is_compatible(&self) -> bool {
        self.extra.is_empty()
            && self.extra_nested.is_empty()
            && self.missing_required.is_empty()
            && self.type_changes.is_empty()
    }

    /// Whether the only differences are columns or struct fields the table could add.
    pub fn only_additions(&self) -> bool {
        self.missing_required.is_empty() && self.type_changes.is_empty()
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
        for (path, _) in &self.extra_nested {
            parts.push(format!(
                "field `{path}` is not in the table (evolve it with --on-schema-change add-columns)"
            ));
        }
        for c in &self.missing_required {
            parts.push(format!("required column `{c}` is missing"));
        }
        for (c, table, input) in &self.type_changes {
            let (table, input) = (type_name(table), type_name(input));
            parts.push(format!(
                "column `{c}` is {input} in the file but {table} in the table (write it as \
                 {table}, or load the file into a table of its own)"
            ));
        }
        parts.join("; ")
    }
}

/// The name users know a column's type by: Iceberg's (`string`, `double`, `timestamptz`,
/// `list`), whatever Arrow encoding a file chose for it (`LargeUtf8`, `Utf8View` and
/// dictionaries of strings are all `string`); Arrow's own name for a type Iceberg lacks.
pub fn type_name(ty: &DataType) -> String {
    match ty {
        DataType::Dictionary(_, value) => type_name(value),
        DataType::Struct(_) => "struct".to_string(),
        DataType::Map(..) => "map".to_string(),
        other if list_element(other).is_some() => "list".to_string(),
        DataType::FixedSizeList(..) => "list".to_string(),
        other => match iceberg::arrow::arrow_type_to_type(other) {
            Ok(iceberg_type) => iceberg_type.to_string(),
            Err(_) => other.to_string(),
        },
    }
}

/// Compares an input schema with the table's Arrow schema.
pub fn diff_schemas(table: &ArrowSchema, input: &ArrowSchema) -> SchemaDiff {
    let mut diff = SchemaDiff::default();
    for field in table.fields() {
        match input.field_with_name(field.name()) {
            Ok(input_field) => compare_types(
                field.name(),
                input_field,
                input_field.data_type(),
                field.data_type(),
                &mut diff,
            ),
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

/// Records how `input` (a type inside the input's column `top`) differs from `table` at `path`.
fn compare_types(
    path: &str,
    top: &Field,
    input: &DataType,
    table: &DataType,
    diff: &mut SchemaDiff,
) {
    let input = match input {
        DataType::Dictionary(_, v) if is_nested(v) => v.as_ref(),
        other => other,
    };
    if let (DataType::Struct(input_fields), DataType::Struct(table_fields)) = (input, table) {
        for tf in table_fields {
            let nested = format!("{path}.{}", tf.name());
            match input_fields.find(tf.name()) {
                Some((_, f)) => compare_types(&nested, top, f.data_type(), tf.data_type(), diff),
                None if tf.is_nullable() => diff.missing_optional.push(nested),
                None => diff.missing_required.push(nested),
            }
        }
        for f in input_fields {
            if table_fields.find(f.name()).is_none() {
                diff.extra_nested
                    .push((format!("{path}.{}", f.name()), top.clone()));
            }
        }
    } else if let (Some(ie), Some(te)) = (list_element(input), list_element(table)) {
        let path = format!("{path}.element");
        compare_types(&path, top, ie.data_type(), te.data_type(), diff);
    } else if let (Some((ik, iv)), Some((tk, tv))) = (map_entries(input), map_entries(table)) {
        compare_types(
            &format!("{path}.key"),
            top,
            ik.data_type(),
            tk.data_type(),
            diff,
        );
        compare_types(
            &format!("{path}.value"),
            top,
            iv.data_type(),
            tv.data_type(),
            diff,
        );
    } else if is_nested(input) || is_nested(table) || !same_leaf_type(input, table) {
        diff.type_changes
            .push((path.to_string(), table.clone(), input.clone()));
    }
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

/// A new schema with nullable columns appended and nullable fields added to existing struct
/// columns (ids after `last_column_id`). `new_fields` are input columns: a name the table lacks
/// is a new column; a name it has contributes the struct fields the table's column lacks.
pub(crate) fn with_added_columns(
    schema: &Schema,
    last_column_id: i32,
    table: &str,
    new_fields: &[Field],
) -> Result<Schema> {
    let problems: Vec<String> = new_fields
        .iter()
        .flat_map(|f| {
            let mut out = Vec::new();
            collect_unsupported(f.name(), f.data_type(), &mut out);
            out
        })
        .collect();
    if !problems.is_empty() {
        return Err(Error::UnsupportedColumns {
            path: format!("the columns added to {table}"),
            problems: problems.join("; "),
        });
    }
    let mut next_id = last_column_id;
    let mut fields: Vec<NestedFieldRef> = schema.as_struct().fields().to_vec();
    for field in new_fields {
        match fields.iter().position(|f| f.name == *field.name()) {
            Some(i) => {
                let mut merged = fields[i].as_ref().clone();
                merged.field_type = Box::new(with_added_fields(
                    &merged.field_type,
                    field.data_type(),
                    &mut next_id,
                )?);
                fields[i] = Arc::new(merged);
            }
            None => {
                let ty = iceberg_type(field.data_type(), &mut next_id)?;
                let id = fresh_id(&mut next_id);
                fields.push(Arc::new(NestedField::optional(id, field.name(), ty)));
            }
        }
    }
    Ok(Schema::builder()
        .with_schema_id(schema.schema_id() + 1)
        .with_fields(fields)
        .with_identifier_field_ids(schema.identifier_field_ids())
        .build()?)
}

fn fresh_id(next_id: &mut i32) -> i32 {
    *next_id += 1;
    *next_id
}

/// `existing` with the struct fields of `input` it lacks added as optional fields, at any depth.
fn with_added_fields(existing: &Type, input: &DataType, next_id: &mut i32) -> Result<Type> {
    let input = match input {
        DataType::Dictionary(_, v) => v.as_ref(),
        other => other,
    };
    Ok(match (existing, input) {
        (Type::Struct(s), DataType::Struct(input_fields)) => {
            let mut fields: Vec<NestedFieldRef> = s.fields().to_vec();
            for f in input_fields {
                match fields.iter().position(|e| e.name == *f.name()) {
                    Some(i) => {
                        let mut merged = fields[i].as_ref().clone();
                        merged.field_type = Box::new(with_added_fields(
                            &merged.field_type,
                            f.data_type(),
                            next_id,
                        )?);
                        fields[i] = Arc::new(merged);
                    }
                    None => {
                        let ty = iceberg_type(f.data_type(), next_id)?;
                        let id = fresh_id(next_id);
                        fields.push(Arc::new(NestedField::optional(id, f.name(), ty)));
                    }
                }
            }
            Type::Struct(StructType::new(fields))
        }
        (Type::List(l), input) if list_element(input).is_some() => {
            let element = list_element(input).map(|e| e.data_type().clone());
            let mut field = l.element_field.as_ref().clone();
            if let Some(element) = element {
                field.field_type =
                    Box::new(with_added_fields(&field.field_type, &element, next_id)?);
            }
            Type::List(ListType::new(Arc::new(field)))
        }
        (Type::Map(m), input) if map_entries(input).is_some() => {
            let value = map_entries(input).map(|(_, v)| v.data_type().clone());
            let mut field = m.value_field.as_ref().clone();
            if let Some(value) = value {
                field.field_type = Box::new(with_added_fields(&field.field_type, &value, next_id)?);
            }
            Type::Map(MapType::new(m.key_field.clone(), Arc::new(field)))
        }
        (existing, _) => existing.clone(),
    })
}

/// The Iceberg type of an Arrow type, nested fields numbered from `next_id` on (the nested
/// fields keep the input's nullability; a new column itself is always optional).
fn iceberg_type(ty: &DataType, next_id: &mut i32) -> Result<Type> {
    let ty = normalize_type(ty);
    let nested_field = |f: &Field, next_id: &mut i32| -> Result<NestedFieldRef> {
        let ty = iceberg_type(f.data_type(), next_id)?;
        let id = fresh_id(next_id);
        Ok(Arc::new(if f.is_nullable() {
            NestedField::optional(id, f.name(), ty)
        } else {
            NestedField::required(id, f.name(), ty)
        }))
    };
    Ok(match &ty {
        DataType::Struct(fields) => Type::Struct(StructType::new(
            fields
                .iter()
                .map(|f| nested_field(f, next_id))
                .collect::<Result<Vec<_>>>()?,
        )),
        DataType::List(element) => {
            let element_type = iceberg_type(element.data_type(), next_id)?;
            let id = fresh_id(next_id);
            Type::List(ListType::new(Arc::new(NestedField::list_element(
                id,
                element_type,
                !element.is_nullable(),
            ))))
        }
        DataType::Map(..) => {
            let Some((key, value)) = map_entries(&ty) else {
                return Ok(arrow_type_to_type(&ty)?);
            };
            let key_type = iceberg_type(key.data_type(), next_id)?;
            let key_id = fresh_id(next_id);
            let value_type = iceberg_type(value.data_type(), next_id)?;
            let value_id = fresh_id(next_id);
            Type::Map(MapType::new(
                Arc::new(NestedField::map_key_element(key_id, key_type)),
                Arc::new(NestedField::map_value_element(
                    value_id,
                    value_type,
                    !value.is_nullable(),
                )),
            ))
        }
        other => arrow_type_to_type(other)?,
    })
}

mod conform;
pub use conform::{NanosToMicros, conform_batch, conform_batch_with, timestamps_to_micros};

#[cfg(test)]
mod tests;

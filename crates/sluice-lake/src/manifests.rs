//! Manifests and manifest lists of format version 2, written field for field as the Iceberg
//! spec defines them.
//!
//! The iceberg crate's writers put fields of format version 3 (`first_row_id`,
//! `content_offset`, `content_size_in_bytes`) into version 2 files, leave them uncompressed and
//! omit the `iceberg.schema` metadata. Readers that validate files against the version 2 schema
//! (or compare them with what Iceberg's Java writer produces) need exactly the spec's layout:
//!
//! ```text
//!  manifest (one per commit)                manifest list (one per snapshot)
//!  ├─ avro.codec = deflate                  ├─ avro.codec = deflate
//!  ├─ schema, schema-id, partition-spec,    ├─ snapshot-id, parent-snapshot-id,
//!  │  partition-spec-id, format-version,    │  sequence-number, format-version,
//!  │  content, iceberg.schema               │  iceberg.schema
//!  └─ manifest_entry records                └─ manifest_file records
//! ```
//!
//! Both writers take the location to write to, so where files go is the caller's decision.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema as AvroSchema, Writer};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, Datum, FieldSummary, Literal, ManifestContentType, ManifestFile, NestedField,
    PartitionSpec, PrimitiveLiteral, PrimitiveType, Schema, StructType, TableMetadata, Type,
};
use iceberg::spec::{ListType, MapType};
use serde_bytes::ByteBuf;
use serde_json::json;

use crate::error::{Error, Result};

/// A sequence number that the manifest list assigns (the snapshot's) when it is written.
pub(crate) const UNASSIGNED_SEQUENCE_NUMBER: i64 = -1;

fn map_field(id: i32, name: &str, key_id: i32, value_id: i32, value: &str) -> serde_json::Value {
    json!({
        "name": name,
        "type": ["null", {
            "type": "array",
            "logicalType": "map",
            "items": {
                "type": "record",
                "name": format!("k{key_id}_v{value_id}"),
                "fields": [
                    {"name": "key", "type": "int", "field-id": key_id},
                    {"name": "value", "type": value, "field-id": value_id},
                ],
            },
        }],
        "default": null,
        "field-id": id,
    })
}

fn optional(id: i32, name: &str, ty: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "type": ["null", ty], "default": null, "field-id": id})
}

fn required(id: i32, name: &str, ty: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "type": ty, "field-id": id})
}

/// The Avro schema of a version 2 manifest (the spec's `manifest_entry` with `data_file`,
/// whose `partition` record has one optional field per partition field).
pub(crate) fn manifest_entry_avro_schema_v2(partition: &StructType) -> Result<serde_json::Value> {
    let partition_fields = partition
        .fields()
        .iter()
        .map(|f| {
            Ok(optional(
                f.id,
                &f.name,
                partition_avro_type(f.id, &f.field_type)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "type": "record",
        "name": "manifest_entry",
        "fields": [
            required(0, "status", json!("int")),
            optional(1, "snapshot_id", json!("long")),
            optional(3, "sequence_number", json!("long")),
            optional(4, "file_sequence_number", json!("long")),
            required(2, "data_file", json!({
                "type": "record",
                "name": "r2",
                "fields": [
                    required(134, "content", json!("int")),
                    required(100, "file_path", json!("string")),
                    required(101, "file_format", json!("string")),
                    required(102, "partition", json!({"type": "record", "name": "r102", "fields": partition_fields})),
                    required(103, "record_count", json!("long")),
                    required(104, "file_size_in_bytes", json!("long")),
                    map_field(108, "column_sizes", 117, 118, "long"),
                    map_field(109, "value_counts", 119, 120, "long"),
                    map_field(110, "null_value_counts", 121, 122, "long"),
                    map_field(137, "nan_value_counts", 138, 139, "long"),
                    map_field(125, "lower_bounds", 126, 127, "bytes"),
                    map_field(128, "upper_bounds", 129, 130, "bytes"),
                    optional(131, "key_metadata", json!("bytes")),
                    optional(132, "split_offsets", json!({"type": "array", "items": "long", "element-id": 133})),
                    optional(135, "equality_ids", json!({"type": "array", "items": "int", "element-id": 136})),
                    optional(140, "sort_order_id", json!("int")),
                    optional(143, "referenced_data_file", json!("string")),
                ],
            })),
        ],
    }))
}

/// The Avro type of a partition field's values, as Iceberg's writers declare it.
fn partition_avro_type(id: i32, ty: &Type) -> Result<serde_json::Value> {
    let Type::Primitive(p) = ty else {
        return Err(Error::Config(format!(
            "partition field {id} is not of a primitive type"
        )));
    };
    Ok(match p {
        PrimitiveType::Boolean => json!("boolean"),
        PrimitiveType::Int => json!("int"),
        PrimitiveType::Long => json!("long"),
        PrimitiveType::Float => json!("float"),
        PrimitiveType::Double => json!("double"),
        PrimitiveType::Date => json!({"type": "int", "logicalType": "date"}),
        PrimitiveType::Time => json!({"type": "long", "logicalType": "time-micros"}),
        PrimitiveType::Timestamp => {
            json!({"type": "long", "logicalType": "timestamp-micros", "adjust-to-utc": false})
        }
        PrimitiveType::Timestamptz => {
            json!({"type": "long", "logicalType": "timestamp-micros", "adjust-to-utc": true})
        }
        PrimitiveType::String => json!("string"),
        PrimitiveType::Binary => json!("bytes"),
        PrimitiveType::Uuid => json!({"type": "fixed", "name": format!("uuid_{id}"), "size": 16}),
        PrimitiveType::Fixed(n) => {
            json!({"type": "fixed", "name": format!("fixed_{id}"), "size": n})
        }
        PrimitiveType::Decimal { precision, scale } => json!({
            "type": "fixed",
            "name": format!("decimal_{id}"),
            "size": decimal_bytes(*precision),
            "logicalType": "decimal",
            "precision": precision,
            "scale": scale,
        }),
        other => {
            return Err(Error::Config(format!(
                "partition values of type {other} cannot be written to a manifest"
            )));
        }
    })
}

/// The bytes a fixed holding a decimal of `precision` digits needs.
fn decimal_bytes(precision: u32) -> usize {
    (1..=16)
        .find(|n| {
            let bits = 8 * n - 1;
            (precision as f64) <= (bits as f64) * std::f64::consts::LOG10_2
        })
        .unwrap_or(16)
}

/// A partition value as the Avro value of its [`partition_avro_type`].
fn partition_avro_value(ty: &Type, value: Option<&Literal>) -> Result<Value> {
    let Some(literal) = value else {
        return Ok(nullable(None));
    };
    let (Type::Primitive(p), Literal::Primitive(v)) = (ty, literal) else {
        return Err(Error::Config(format!(
            "partition value {literal:?} is not of type {ty}"
        )));
    };
    let avro = match (p, v) {
        (PrimitiveType::Boolean, PrimitiveLiteral::Boolean(b)) => Value::Boolean(*b),
        (PrimitiveType::Int | PrimitiveType::Date, PrimitiveLiteral::Int(i)) => Value::Int(*i),
        (
            PrimitiveType::Long
            | PrimitiveType::Time
            | PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz,
            PrimitiveLiteral::Long(l),
        ) => Value::Long(*l),
        (PrimitiveType::Float, PrimitiveLiteral::Float(f)) => Value::Float(f.0),
        (PrimitiveType::Double, PrimitiveLiteral::Double(d)) => Value::Double(d.0),
        (PrimitiveType::String, PrimitiveLiteral::String(s)) => Value::String(s.clone()),
        (PrimitiveType::Binary, PrimitiveLiteral::Binary(b)) => Value::Bytes(b.clone()),
        (PrimitiveType::Fixed(n), PrimitiveLiteral::Binary(b)) => {
            Value::Fixed(*n as usize, b.clone())
        }
        (PrimitiveType::Uuid, PrimitiveLiteral::UInt128(u)) => {
            Value::Fixed(16, u.to_be_bytes().to_vec())
        }
        (PrimitiveType::Decimal { precision, .. }, PrimitiveLiteral::Int128(i)) => {
            let size = decimal_bytes(*precision);
            let bytes = i.to_be_bytes();
            Value::Fixed(size, bytes[16 - size..].to_vec())
        }
        _ => {
            return Err(Error::Config(format!(
                "partition value {v:?} is not of type {p}"
            )));
        }
    };
    Ok(nullable(Some(avro)))
}

/// The Avro schema of a version 2 manifest list (the spec's `manifest_file`).
pub(crate) fn manifest_file_avro_schema_v2() -> serde_json::Value {
    json!({
        "type": "record",
        "name": "manifest_file",
        "fields": [
            required(500, "manifest_path", json!("string")),
            required(501, "manifest_length", json!("long")),
            required(502, "partition_spec_id", json!("int")),
            required(517, "content", json!("int")),
            required(515, "sequence_number", json!("long")),
            required(516, "min_sequence_number", json!("long")),
            required(503, "added_snapshot_id", json!("long")),
            required(504, "added_files_count", json!("int")),
            required(505, "existing_files_count", json!("int")),
            required(506, "deleted_files_count", json!("int")),
            required(512, "added_rows_count", json!("long")),
            required(513, "existing_rows_count", json!("long")),
            required(514, "deleted_rows_count", json!("long")),
            optional(507, "partitions", json!({
                "type": "array",
                "element-id": 508,
                "items": {
                    "type": "record",
                    "name": "r508",
                    "fields": [
                        required(509, "contains_null", json!("boolean")),
                        optional(518, "contains_nan", json!("boolean")),
                        optional(510, "lower_bound", json!("bytes")),
                        optional(511, "upper_bound", json!("bytes")),
                    ],
                },
            })),
            optional(519, "key_metadata", json!("bytes")),
        ],
    })
}

static MANIFEST_FILE_V2: LazyLock<std::result::Result<AvroSchema, String>> =
    LazyLock::new(|| AvroSchema::parse(&manifest_file_avro_schema_v2()).map_err(|e| e.to_string()));

fn avro_schema(
    schema: &'static LazyLock<std::result::Result<AvroSchema, String>>,
) -> Result<&'static AvroSchema> {
    schema
        .as_ref()
        .map_err(|e| Error::Config(format!("the manifest schema does not parse: {e}")))
}

/// The Iceberg schema of a manifest entry, for the `iceberg.schema` metadata key (Java's
/// readers take field ids and types from it).
fn manifest_entry_iceberg_schema(partition: &StructType) -> Result<Schema> {
    let map = |id: i32, name: &str, key: i32, value: i32, ty: PrimitiveType| {
        NestedField::optional(
            id,
            name,
            Type::Map(MapType::new(
                NestedField::map_key_element(key, Type::Primitive(PrimitiveType::Int)).into(),
                NestedField::map_value_element(value, Type::Primitive(ty), true).into(),
            )),
        )
        .into()
    };
    let long = || Type::Primitive(PrimitiveType::Long);
    let int = || Type::Primitive(PrimitiveType::Int);
    let data_file = StructType::new(vec![
        NestedField::required(134, "content", int()).into(),
        NestedField::required(100, "file_path", Type::Primitive(PrimitiveType::String)).into(),
        NestedField::required(101, "file_format", Type::Primitive(PrimitiveType::String)).into(),
        NestedField::required(102, "partition", Type::Struct(partition.clone())).into(),
        NestedField::required(103, "record_count", long()).into(),
        NestedField::required(104, "file_size_in_bytes", long()).into(),
        map(108, "column_sizes", 117, 118, PrimitiveType::Long),
        map(109, "value_counts", 119, 120, PrimitiveType::Long),
        map(110, "null_value_counts", 121, 122, PrimitiveType::Long),
        map(137, "nan_value_counts", 138, 139, PrimitiveType::Long),
        map(125, "lower_bounds", 126, 127, PrimitiveType::Binary),
        map(128, "upper_bounds", 129, 130, PrimitiveType::Binary),
        NestedField::optional(131, "key_metadata", Type::Primitive(PrimitiveType::Binary)).into(),
        NestedField::optional(
            132,
            "split_offsets",
            Type::List(ListType::new(
                NestedField::list_element(133, long(), true).into(),
            )),
        )
        .into(),
        NestedField::optional(
            135,
            "equality_ids",
            Type::List(ListType::new(
                NestedField::list_element(136, int(), true).into(),
            )),
        )
        .into(),
        NestedField::optional(140, "sort_order_id", int()).into(),
        NestedField::optional(
            143,
            "referenced_data_file",
            Type::Primitive(PrimitiveType::String),
        )
        .into(),
    ]);
    Ok(Schema::builder()
        .with_fields(vec![
            NestedField::required(0, "status", int()).into(),
            NestedField::optional(1, "snapshot_id", long()).into(),
            NestedField::optional(3, "sequence_number", long()).into(),
            NestedField::optional(4, "file_sequence_number", long()).into(),
            NestedField::required(2, "data_file", Type::Struct(data_file)).into(),
        ])
        .build()?)
}

/// The Iceberg schema of a manifest list entry, for the `iceberg.schema` metadata key.
fn manifest_file_iceberg_schema() -> Result<Schema> {
    let long = || Type::Primitive(PrimitiveType::Long);
    let int = || Type::Primitive(PrimitiveType::Int);
    let binary = || Type::Primitive(PrimitiveType::Binary);
    let summary = StructType::new(vec![
        NestedField::required(
            509,
            "contains_null",
            Type::Primitive(PrimitiveType::Boolean),
        )
        .into(),
        NestedField::optional(518, "contains_nan", Type::Primitive(PrimitiveType::Boolean)).into(),
        NestedField::optional(510, "lower_bound", binary()).into(),
        NestedField::optional(511, "upper_bound", binary()).into(),
    ]);
    Ok(Schema::builder()
        .with_fields(vec![
            NestedField::required(500, "manifest_path", Type::Primitive(PrimitiveType::String))
                .into(),
            NestedField::required(501, "manifest_length", long()).into(),
            NestedField::required(502, "partition_spec_id", int()).into(),
            NestedField::required(517, "content", int()).into(),
            NestedField::required(515, "sequence_number", long()).into(),
            NestedField::required(516, "min_sequence_number", long()).into(),
            NestedField::required(503, "added_snapshot_id", long()).into(),
            NestedField::required(504, "added_files_count", int()).into(),
            NestedField::required(505, "existing_files_count", int()).into(),
            NestedField::required(506, "deleted_files_count", int()).into(),
            NestedField::required(512, "added_rows_count", long()).into(),
            NestedField::required(513, "existing_rows_count", long()).into(),
            NestedField::required(514, "deleted_rows_count", long()).into(),
            NestedField::optional(
                507,
                "partitions",
                Type::List(ListType::new(
                    NestedField::list_element(508, Type::Struct(summary), true).into(),
                )),
            )
            .into(),
            NestedField::optional(519, "key_metadata", binary()).into(),
        ])
        .build()?)
}

fn json_text(value: &impl serde::Serialize, what: &str) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Config(format!("cannot serialise {what} for a manifest: {e}")))
}

fn nullable(value: Option<Value>) -> Value {
    match value {
        Some(v) => Value::Union(1, Box::new(v)),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn int_map<V>(map: &HashMap<i32, V>, value: impl Fn(&V) -> Result<Value>) -> Result<Value> {
    let mut keys: Vec<&i32> = map.keys().collect();
    keys.sort_unstable();
    let entries = keys
        .into_iter()
        .map(|k| {
            Ok(Value::Record(vec![
                ("key".to_string(), Value::Int(*k)),
                ("value".to_string(), value(&map[k])?),
            ]))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(nullable(Some(Value::Array(entries))))
}

fn count(n: &u64) -> Result<Value> {
    Ok(Value::Long(i64::try_from(*n).unwrap_or(i64::MAX)))
}

fn bound(datum: &Datum) -> Result<Value> {
    Ok(Value::Bytes(datum.to_bytes()?.to_vec()))
}

fn data_file_record(file: &DataFile, partition: &StructType) -> Result<Value> {
    let values = file.partition();
    let partition_record = partition
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let value = values.fields().get(i).and_then(Option::as_ref);
            Ok((f.name.clone(), partition_avro_value(&f.field_type, value)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::Record(vec![
        ("content".into(), Value::Int(file.content_type() as i32)),
        (
            "file_path".into(),
            Value::String(file.file_path().to_string()),
        ),
        (
            "file_format".into(),
            Value::String(file.file_format().to_string().to_uppercase()),
        ),
        ("partition".into(), Value::Record(partition_record)),
        ("record_count".into(), count(&file.record_count())?),
        (
            "file_size_in_bytes".into(),
            count(&file.file_size_in_bytes())?,
        ),
        ("column_sizes".into(), int_map(file.column_sizes(), count)?),
        ("value_counts".into(), int_map(file.value_counts(), count)?),
        (
            "null_value_counts".into(),
            int_map(file.null_value_counts(), count)?,
        ),
        (
            "nan_value_counts".into(),
            int_map(file.nan_value_counts(), count)?,
        ),
        ("lower_bounds".into(), int_map(file.lower_bounds(), bound)?),
        ("upper_bounds".into(), int_map(file.upper_bounds(), bound)?),
        (
            "key_metadata".into(),
            nullable(file.key_metadata().map(|k| Value::Bytes(k.to_vec()))),
        ),
        (
            "split_offsets".into(),
            nullable(
                file.split_offsets()
                    .map(|s| Value::Array(s.iter().map(|o| Value::Long(*o)).collect())),
            ),
        ),
        (
            "equality_ids".into(),
            nullable(
                file.equality_ids()
                    .map(|ids| Value::Array(ids.into_iter().map(Value::Int).collect())),
            ),
        ),
        // Files sluice writes are not sorted: the unsorted order, whose id is 0.
        (
            "sort_order_id".into(),
            nullable(Some(Value::Int(file.sort_order_id().unwrap_or(0)))),
        ),
        (
            "referenced_data_file".into(),
            nullable(file.referenced_data_file().map(Value::String)),
        ),
    ]))
}

fn deflate_writer(schema: &AvroSchema) -> Writer<'_, Vec<u8>> {
    Writer::with_codec(
        schema,
        Vec::new(),
        Codec::Deflate(DeflateSettings::default()),
    )
}

fn avro_error(path: &str, e: apache_avro::Error) -> Error {
    Error::CorruptFile {
        path: path.to_string(),
        reason: format!("cannot write the manifest: {e}"),
    }
}

/// Where an entry of a manifest being written comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryOrigin {
    /// Added by the snapshot the manifest belongs to: its snapshot id and sequence numbers
    /// are inherited from it.
    Added,
    /// Added by an earlier snapshot and carried over (a merged manifest): it keeps the
    /// snapshot and the sequence numbers it was added with.
    Existing {
        /// The snapshot that added the file.
        snapshot_id: i64,
        /// The data sequence number it was added with.
        data_sequence_number: i64,
        /// The file sequence number it was added with.
        file_sequence_number: Option<i64>,
    },
    /// Removed by the snapshot the manifest belongs to (a rewrite replaced it): it keeps the
    /// sequence numbers it was added with.
    Deleted {
        /// The data sequence number it was added with.
        data_sequence_number: i64,
        /// The file sequence number it was added with.
        file_sequence_number: Option<i64>,
    },
}

/// One entry of a manifest being written.
pub(crate) struct ManifestEntryOut<'a> {
    pub(crate) file: &'a DataFile,
    pub(crate) origin: EntryOrigin,
}

/// Writes a format version 2 data manifest at `path` for snapshot `snapshot_id` with
/// `entries` (added ones and ones carried over from earlier snapshots), all under `spec`, and
/// returns its manifest list entry with counts and partition summaries.
pub(crate) async fn write_manifest_entries_v2(
    file_io: &FileIO,
    metadata: &TableMetadata,
    spec: &PartitionSpec,
    path: &str,
    snapshot_id: i64,
    entries: &[ManifestEntryOut<'_>],
) -> Result<ManifestFile> {
    let schema = metadata.current_schema();
    let partition = spec.partition_type(schema)?;
    let avro = AvroSchema::parse(&manifest_entry_avro_schema_v2(&partition)?)
        .map_err(|e| Error::Config(format!("the manifest schema does not parse: {e}")))?;
    let mut writer = deflate_writer(&avro);
    let meta = [
        ("schema", json_text(schema.as_ref(), "the table schema")?),
        ("schema-id", schema.schema_id().to_string()),
        (
            "partition-spec",
            json_text(&spec.fields(), "the partition spec")?,
        ),
        ("partition-spec-id", spec.spec_id().to_string()),
        ("format-version", "2".to_string()),
        ("content", "data".to_string()),
        (
            "iceberg.schema",
            json_text(
                &manifest_entry_iceberg_schema(&partition)?,
                "the manifest schema",
            )?,
        ),
    ];
    for (key, value) in meta {
        writer
            .add_user_metadata(key.to_string(), value)
            .map_err(|e| avro_error(path, e))?;
    }
    let (mut added_files, mut existing_files, mut deleted_files) = (0u32, 0u32, 0u32);
    let (mut added_rows, mut existing_rows, mut deleted_rows) = (0u64, 0u64, 0u64);
    let mut min_sequence_number = UNASSIGNED_SEQUENCE_NUMBER;
    for entry in entries {
        let (status, entry_snapshot, data_sequence, file_sequence) = match entry.origin {
            EntryOrigin::Added => {
                added_files += 1;
                added_rows += entry.file.record_count();
                (1, snapshot_id, None, None)
            }
            EntryOrigin::Existing {
                snapshot_id,
                data_sequence_number,
                file_sequence_number,
            } => {
                existing_files += 1;
                existing_rows += entry.file.record_count();
                (
                    0,
                    snapshot_id,
                    Some(data_sequence_number),
                    file_sequence_number,
                )
            }
            EntryOrigin::Deleted {
                data_sequence_number,
                file_sequence_number,
            } => {
                deleted_files += 1;
                deleted_rows += entry.file.record_count();
                (
                    2,
                    snapshot_id,
                    Some(data_sequence_number),
                    file_sequence_number,
                )
            }
        };
        // Carried-over entries keep their sequence numbers: the lowest is the manifest's.
        if let Some(data_sequence_number) = data_sequence
            && (min_sequence_number == UNASSIGNED_SEQUENCE_NUMBER
                || data_sequence_number < min_sequence_number)
        {
            min_sequence_number = data_sequence_number;
        }
        let record = Value::Record(vec![
            // 0: existing, 1: added, 2: deleted
            ("status".into(), Value::Int(status)),
            (
                "snapshot_id".into(),
                nullable(Some(Value::Long(entry_snapshot))),
            ),
            (
                "sequence_number".into(),
                nullable(data_sequence.map(Value::Long)),
            ),
            (
                "file_sequence_number".into(),
                nullable(file_sequence.map(Value::Long)),
            ),
            (
                "data_file".into(),
                data_file_record(entry.file, &partition)?,
            ),
        ]);
        writer.append(record).map_err(|e| avro_error(path, e))?;
    }
    let bytes = writer.into_inner().map_err(|e| avro_error(path, e))?;
    let length = bytes.len() as i64;
    file_io.new_output(path)?.write(bytes.into()).await?;
    let files: Vec<&DataFile> = entries.iter().map(|e| e.file).collect();
    Ok(ManifestFile {
        manifest_path: path.to_string(),
        manifest_length: length,
        partition_spec_id: spec.spec_id(),
        content: ManifestContentType::Data,
        sequence_number: UNASSIGNED_SEQUENCE_NUMBER,
        // Added entries take the snapshot's sequence number, the highest of all.
        min_sequence_number,
        added_snapshot_id: snapshot_id,
        added_files_count: Some(added_files),
        existing_files_count: Some(existing_files),
        deleted_files_count: Some(deleted_files),
        added_rows_count: Some(added_rows),
        existing_rows_count: Some(existing_rows),
        deleted_rows_count: Some(deleted_rows),
        partitions: Some(partition_summaries(&partition, &files)),
        key_metadata: None,
        first_row_id: None,
    })
}

/// Per partition field: whether any file's value is null (or NaN), and the lowest and
/// highest values.
pub(crate) fn partition_summaries(
    partition: &StructType,
    files: &[&DataFile],
) -> Vec<FieldSummary> {
    partition
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let ty = crate::partition::primitive_type(&field.field_type);
            let (mut contains_null, mut contains_nan) = (false, false);
            let (mut lower, mut upper): (Option<&PrimitiveLiteral>, Option<&PrimitiveLiteral>) =
                (None, None);
            for file in files {
                let value = file.partition().fields().get(i).and_then(Option::as_ref);
                let Some(v) = crate::partition::primitive(value) else {
                    contains_null = true;
                    continue;
                };
                let nan = match v {
                    PrimitiveLiteral::Float(f) => f.0.is_nan(),
                    PrimitiveLiteral::Double(d) => d.0.is_nan(),
                    _ => false,
                };
                if nan {
                    contains_nan = true;
                    continue;
                }
                if lower.is_none_or(|l| v < l) {
                    lower = Some(v);
                }
                if upper.is_none_or(|u| v > u) {
                    upper = Some(v);
                }
            }
            let is_float = matches!(ty, Some(PrimitiveType::Float | PrimitiveType::Double));
            let bytes = |v: Option<&PrimitiveLiteral>| {
                ty.zip(v)
                    .and_then(|(t, v)| crate::partition::literal_bytes(t, v))
                    .map(ByteBuf::from)
            };
            FieldSummary {
                contains_null,
                contains_nan: is_float.then_some(contains_nan),
                lower_bound: bytes(lower),
                upper_bound: bytes(upper),
            }
        })
        .collect()
}

/// What a version 2 manifest list records about the snapshot it belongs to.
pub(crate) struct ManifestListHeader {
    /// The snapshot.
    pub snapshot_id: i64,
    /// Its parent, if any.
    pub parent_snapshot_id: Option<i64>,
    /// Its sequence number (given to manifests it adds).
    pub sequence_number: i64,
}

/// Writes a format version 2 manifest list at `path`. Manifests added by this snapshot (with
/// unassigned sequence numbers) get the snapshot's.
pub(crate) async fn write_manifest_list_v2(
    file_io: &FileIO,
    path: &str,
    header: &ManifestListHeader,
    manifests: &[ManifestFile],
) -> Result<()> {
    let avro = avro_schema(&MANIFEST_FILE_V2)?;
    let mut writer = deflate_writer(avro);
    let meta = [
        ("snapshot-id", header.snapshot_id.to_string()),
        (
            "parent-snapshot-id",
            header
                .parent_snapshot_id
                .map(|p| p.to_string())
                .unwrap_or_else(|| "null".to_string()),
        ),
        ("sequence-number", header.sequence_number.to_string()),
        ("format-version", "2".to_string()),
        (
            "iceberg.schema",
            json_text(&manifest_file_iceberg_schema()?, "the manifest list schema")?,
        ),
    ];
    for (key, value) in meta {
        writer
            .add_user_metadata(key.to_string(), value)
            .map_err(|e| avro_error(path, e))?;
    }
    for manifest in manifests {
        let sequence = |n: i64| {
            if n == UNASSIGNED_SEQUENCE_NUMBER {
                header.sequence_number
            } else {
                n
            }
        };
        let partitions = manifest.partitions.as_ref().map(|summaries| {
            Value::Array(
                summaries
                    .iter()
                    .map(|s| {
                        Value::Record(vec![
                            ("contains_null".into(), Value::Boolean(s.contains_null)),
                            (
                                "contains_nan".into(),
                                nullable(s.contains_nan.map(Value::Boolean)),
                            ),
                            (
                                "lower_bound".into(),
                                nullable(s.lower_bound.as_ref().map(|b| Value::Bytes(b.to_vec()))),
                            ),
                            (
                                "upper_bound".into(),
                                nullable(s.upper_bound.as_ref().map(|b| Value::Bytes(b.to_vec()))),
                            ),
                        ])
                    })
                    .collect(),
            )
        });
        let int = |n: Option<u32>| Value::Int(n.map(|v| v as i32).unwrap_or(0));
        let long = |n: Option<u64>| Value::Long(n.map(|v| v as i64).unwrap_or(0));
        let record = Value::Record(vec![
            (
                "manifest_path".into(),
                Value::String(manifest.manifest_path.clone()),
            ),
            (
                "manifest_length".into(),
                Value::Long(manifest.manifest_length),
            ),
            (
                "partition_spec_id".into(),
                Value::Int(manifest.partition_spec_id),
            ),
            (
                "content".into(),
                Value::Int(match manifest.content {
                    ManifestContentType::Data => 0,
                    ManifestContentType::Deletes => 1,
                }),
            ),
            (
                "sequence_number".into(),
                Value::Long(sequence(manifest.sequence_number)),
            ),
            (
                "min_sequence_number".into(),
                Value::Long(sequence(manifest.min_sequence_number)),
            ),
            (
                "added_snapshot_id".into(),
                Value::Long(manifest.added_snapshot_id),
            ),
            ("added_files_count".into(), int(manifest.added_files_count)),
            (
                "existing_files_count".into(),
                int(manifest.existing_files_count),
            ),
            (
                "deleted_files_count".into(),
                int(manifest.deleted_files_count),
            ),
            ("added_rows_count".into(), long(manifest.added_rows_count)),
            (
                "existing_rows_count".into(),
                long(manifest.existing_rows_count),
            ),
            (
                "deleted_rows_count".into(),
                long(manifest.deleted_rows_count),
            ),
            ("partitions".into(), nullable(partitions)),
            (
                "key_metadata".into(),
                nullable(
                    manifest
                        .key_metadata
                        .as_ref()
                        .map(|k| Value::Bytes(k.clone())),
                ),
            ),
        ]);
        writer.append(record).map_err(|e| avro_error(path, e))?;
    }
    let bytes = writer.into_inner().map_err(|e| avro_error(path, e))?;
    file_io.new_output(path)?.write(bytes.into()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemas_parse_and_agree_with_their_iceberg_descriptions() {
        AvroSchema::parse(&manifest_entry_avro_schema_v2(&StructType::new(vec![])).unwrap())
            .unwrap();
        avro_schema(&MANIFEST_FILE_V2).unwrap();
        let entry = manifest_entry_iceberg_schema(&StructType::new(vec![])).unwrap();
        for id in [0, 1, 2, 3, 4, 134, 137, 138, 139, 140, 143] {
            assert!(entry.field_by_id(id).is_some(), "field {id}");
        }
        // Fields of format version 3 stay out of version 2 files.
        for id in [142, 144, 145] {
            assert!(entry.field_by_id(id).is_none(), "field {id}");
        }
        let list = manifest_file_iceberg_schema().unwrap();
        assert!(list.field_by_id(520).is_none());
        assert!(list.field_by_id(519).is_some());
    }
}

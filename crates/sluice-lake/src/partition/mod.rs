//! Partitioned tables: the `--partition-by` syntax, splitting rows by partition, and proving a
//! whole file's partition from its footer statistics.
//!
//! ```text
//!  "day(ts), bucket(16, user_id)" ──parse──► PartitionTerm[] ──bind──► UnboundPartitionSpec
//!
//!  copy mode:      batch ──Partitioner::split──► (partition tuple, rows)… ──► one writer each
//!  register mode,  footer min/max/null counts ──transform──► one tuple, or "spans partitions"
//!  chunk copy:
//! ```

mod parse;
mod split;
mod stats;
#[cfg(test)]
mod tests;

use iceberg::spec::{
    Literal, PartitionKey, PartitionSpec, PrimitiveLiteral, PrimitiveType, Schema, Struct,
    Transform, Type,
};

use iceberg::writer::file_writer::location_generator::LocationGenerator;

pub use parse::{PartitionTerm, describe_spec, parse_partition_by, spec_matches, unbound_spec};
pub(crate) use split::Partitioner;
pub(crate) use stats::partition_from_stats;

/// The partition path of a tuple (`ts_day=2024-05-01/user_id_bucket=3`), as shown in run
/// reports and errors.
pub fn partition_path(spec: &PartitionSpec, schema: &Schema, data: &Struct) -> String {
    path_with(spec, schema, data, |v| v)
}

fn path_with(
    spec: &PartitionSpec,
    schema: &Schema,
    data: &Struct,
    escape: impl Fn(String) -> String,
) -> String {
    let Ok(partition_type) = spec.partition_type(schema) else {
        return String::new();
    };
    spec.fields()
        .iter()
        .zip(partition_type.fields())
        .enumerate()
        .map(|(i, (field, ty))| {
            let value = data.fields().get(i).and_then(Option::as_ref);
            format!(
                "{}={}",
                field.name,
                escape(human_value(&field.transform, &ty.field_type, value))
            )
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A partition value as people read it: `2024` for a year, `2024-05` for a month,
/// `2024-05-01` for a day, `2024-05-01-13` for an hour, `null` for null.
pub fn human_value(transform: &Transform, ty: &Type, value: Option<&Literal>) -> String {
    let ordinal = match primitive(value) {
        None => return "null".to_string(),
        Some(PrimitiveLiteral::Int(v)) => *v,
        Some(_) => return transform.to_human_string(ty, value),
    };
    match transform {
        Transform::Year => format!("{:04}", 1970 + ordinal),
        Transform::Month => format!(
            "{:04}-{:02}",
            1970 + ordinal.div_euclid(12),
            ordinal.rem_euclid(12) + 1
        ),
        Transform::Hour => chrono::DateTime::from_timestamp(i64::from(ordinal) * 3600, 0)
            .map(|t| t.format("%Y-%m-%d-%H").to_string())
            .unwrap_or_else(|| ordinal.to_string()),
        _ => transform.to_human_string(ty, value),
    }
}

/// Where copy mode puts data files: `<dir>/<partition path>/<file>`, the partition values made
/// safe for object store keys (the values themselves live in the manifests).
#[derive(Clone, Debug)]
pub(crate) struct DataLocations {
    dir: String,
}

impl DataLocations {
    pub(crate) fn new(dir: String) -> Self {
        Self { dir }
    }
}

impl LocationGenerator for DataLocations {
    fn generate_location(&self, key: Option<&PartitionKey>, file_name: &str) -> String {
        match key.filter(|k| !k.spec().fields().is_empty()) {
            Some(k) => format!(
                "{}/{}/{file_name}",
                self.dir,
                path_with(k.spec(), k.schema(), k.data(), |v| {
                    v.chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect()
                })
            ),
            None => format!("{}/{file_name}", self.dir),
        }
    }
}

/// The Iceberg single-value serialisation of a partition value (for manifest list bounds), or
/// `None` for a type sluice does not write bounds of.
pub(crate) fn literal_bytes(ty: &PrimitiveType, literal: &PrimitiveLiteral) -> Option<Vec<u8>> {
    Some(match (ty, literal) {
        (PrimitiveType::Boolean, PrimitiveLiteral::Boolean(b)) => vec![u8::from(*b)],
        (PrimitiveType::Int | PrimitiveType::Date, PrimitiveLiteral::Int(v)) => {
            v.to_le_bytes().to_vec()
        }
        (
            PrimitiveType::Long
            | PrimitiveType::Time
            | PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz,
            PrimitiveLiteral::Long(v),
        ) => v.to_le_bytes().to_vec(),
        (PrimitiveType::Float, PrimitiveLiteral::Float(v)) => v.0.to_le_bytes().to_vec(),
        (PrimitiveType::Double, PrimitiveLiteral::Double(v)) => v.0.to_le_bytes().to_vec(),
        (PrimitiveType::String, PrimitiveLiteral::String(s)) => s.as_bytes().to_vec(),
        (PrimitiveType::Binary | PrimitiveType::Fixed(_), PrimitiveLiteral::Binary(b)) => b.clone(),
        (PrimitiveType::Uuid, PrimitiveLiteral::UInt128(v)) => v.to_be_bytes().to_vec(),
        (PrimitiveType::Decimal { .. }, PrimitiveLiteral::Int128(v)) => minimal_be(*v),
        _ => return None,
    })
}

/// A two's-complement big-endian integer in the fewest bytes that keep its sign.
fn minimal_be(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// The primitive literal of a partition value, if it has one.
pub(crate) fn primitive(value: Option<&Literal>) -> Option<&PrimitiveLiteral> {
    match value {
        Some(Literal::Primitive(p)) => Some(p),
        _ => None,
    }
}

/// The primitive type of a partition field, if it is one (every transform's result is).
pub(crate) fn primitive_type(ty: &Type) -> Option<&PrimitiveType> {
    match ty {
        Type::Primitive(p) => Some(p),
        _ => None,
    }
}

/// Whether sluice can compute `transform` (every transform the spec defines; not a transform
/// written by a newer engine that this version does not know).
pub(crate) fn known_transform(transform: &Transform) -> bool {
    !matches!(transform, Transform::Unknown)
}

/// Rows and data files per partition among `files` (written under `table`'s default spec),
/// sorted by partition path; empty for an unpartitioned table.
pub fn rows_per_partition(
    table: &crate::LoadedTable,
    files: &[iceberg::spec::DataFile],
) -> Vec<PartitionRows> {
    let metadata = table.metadata();
    let spec = metadata.default_partition_spec();
    if spec.fields().is_empty() {
        return Vec::new();
    }
    let schema = metadata.current_schema();
    let mut by_path: std::collections::BTreeMap<String, PartitionRows> = Default::default();
    for file in files {
        let path = partition_path(spec, schema, file.partition());
        let entry = by_path
            .entry(path.clone())
            .or_insert_with(|| PartitionRows {
                partition: path,
                rows: 0,
                files: 0,
            });
        entry.rows += file.record_count();
        entry.files += 1;
    }
    by_path.into_values().collect()
}

/// The rows and data files a run wrote to one partition.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionRows {
    /// The partition path (`ts_day=2024-05-01/user_id_bucket=3`).
    pub partition: String,
    /// Rows written to it.
    pub rows: u64,
    /// Data files written to it.
    pub files: usize,
}

/// The partition path of a row given as column values in JSON (a failing-row sample: numbers,
/// strings, timestamps and dates in RFC 3339 form), under `table`'s default spec; `None` when
/// the table is unpartitioned or a source column's value is missing or not convertible.
pub fn partition_of_sample(
    table: &crate::LoadedTable,
    values: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Option<String> {
    let metadata = table.metadata();
    let spec = metadata.default_partition_spec();
    let schema = metadata.current_schema();
    if spec.fields().is_empty() {
        return None;
    }
    let mut tuple = Vec::with_capacity(spec.fields().len());
    for field in spec.fields() {
        if field.transform == Transform::Void {
            tuple.push(None);
            continue;
        }
        let source = schema.field_by_id(field.source_id)?;
        let value = values.get(&source.name)?;
        let datum = match value {
            serde_json::Value::Null => {
                tuple.push(None);
                continue;
            }
            v => json_datum(primitive_type(&source.field_type)?, v)?,
        };
        let function = iceberg::transform::create_transform_function(&field.transform).ok()?;
        let out = function.transform_literal(&datum).ok()?;
        tuple.push(out.map(|d| Literal::Primitive(d.literal().clone())));
    }
    Some(partition_path(spec, schema, &Struct::from_iter(tuple)))
}

fn json_datum(ty: &PrimitiveType, value: &serde_json::Value) -> Option<iceberg::spec::Datum> {
    use iceberg::spec::Datum;
    Some(match (ty, value) {
        (PrimitiveType::Boolean, serde_json::Value::Bool(b)) => Datum::bool(*b),
        (PrimitiveType::Int, v) => Datum::int(i32::try_from(v.as_i64()?).ok()?),
        (PrimitiveType::Long, v) => Datum::long(v.as_i64()?),
        (PrimitiveType::Float, v) => Datum::float(v.as_f64()? as f32),
        (PrimitiveType::Double, v) => Datum::double(v.as_f64()?),
        (PrimitiveType::String, serde_json::Value::String(s)) => Datum::string(s),
        (PrimitiveType::Date, serde_json::Value::String(s)) => Datum::date_from_str(s).ok()?,
        (PrimitiveType::Timestamp, serde_json::Value::String(s)) => {
            Datum::timestamp_from_str(s.trim_end_matches('Z')).ok()?
        }
        (PrimitiveType::Timestamptz, serde_json::Value::String(s)) => {
            Datum::timestamptz_from_str(s).ok()?
        }
        _ => return None,
    })
}

/// The source columns of `table`'s partition fields (to show with failing rows, so their
/// partitions can be named).
pub fn partition_source_columns(table: &crate::LoadedTable) -> Vec<String> {
    let metadata = table.metadata();
    let schema = metadata.current_schema();
    let mut columns = Vec::new();
    for field in metadata.default_partition_spec().fields() {
        if field.transform == Transform::Void {
            continue;
        }
        if let Some(name) = schema.name_by_field_id(field.source_id)
            && !columns.iter().any(|c| c == name)
        {
            columns.push(name.to_string());
        }
    }
    columns
}

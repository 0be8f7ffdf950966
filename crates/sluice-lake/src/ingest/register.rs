//! Register mode: add existing parquet files to a table in place, reading only their footers.

use std::collections::HashMap;

use arrow_schema::{DataType, Schema as ArrowSchema, TimeUnit};
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, PrimitiveType, Struct, Type,
};
use parquet::file::statistics::Statistics;

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::parquet::ParquetFooter;
use crate::partition::partition_from_stats;
use crate::schema::{arrow_schema_for, diff_schemas};
use crate::snapshot_producer::ensure_writable;

/// Builds the `DataFile` entries for existing parquet files without rewriting them.
///
/// Every file's schema must match the table's (same column names, same types; time-zone and
/// string-encoding spellings aside), otherwise [`Error::SchemaMismatch`] names the file and the
/// differences. Statistics (value and null counts, exact lower/upper bounds) come from the footer.
pub async fn data_files_for(
    table: &LoadedTable,
    footers: &[ParquetFooter],
) -> Result<Vec<DataFile>> {
    ensure_writable(table)?;
    let schema = table.metadata().current_schema();
    let arrow_schema = arrow_schema_for(schema)?;
    let mut files = Vec::with_capacity(footers.len());
    for footer in footers {
        check_registrable(table.name(), &arrow_schema, footer)?;
        files.push(data_file(table, footer)?);
    }
    Ok(files)
}

/// Whether a file can be registered as it is in a table of `table_schema` (the Arrow form of
/// the table's schema): its columns fit ([`Error::SchemaMismatch`] otherwise) and each is
/// stored as the table stores it, for registered files are read as they are
/// ([`Error::StoredDifferently`] otherwise). A run can check this before it creates a table.
pub fn check_registrable(
    table_name: &crate::TableName,
    table_schema: &ArrowSchema,
    footer: &ParquetFooter,
) -> Result<()> {
    let diff = diff_schemas(table_schema, &footer.schema);
    if !diff.is_compatible() {
        return Err(Error::SchemaMismatch {
            table: table_name.to_string(),
            path: footer.location.clone(),
            diff: diff.describe(),
        });
    }
    // Register mode cannot convert values: a type the file stores differently than the
    // table (e.g. int32 for long) must be rejected even where copy mode could cast it.
    for field in footer.schema.fields() {
        let table_field = table_schema.field_with_name(field.name())?;
        if !stored_identically(field.data_type(), table_field.data_type()) {
            return Err(Error::StoredDifferently {
                path: footer.location.clone(),
                table: table_name.to_string(),
                difference: format!(
                    "column `{}` is stored as {} but the table has {}",
                    field.name(),
                    stored_type_name(field.data_type()),
                    stored_type_name(table_field.data_type())
                ),
                nanoseconds: holds_nanoseconds(field.data_type()),
            });
        }
    }
    Ok(())
}

/// How a column is stored, in Iceberg's words and, where that hides the difference register
/// mode cares about (`int32` and `int64` are both integers to a reader), parquet's width too.
fn stored_type_name(ty: &DataType) -> String {
    let name = match ty {
        DataType::Timestamp(_, Some(_)) => "timestamptz".to_string(),
        DataType::Timestamp(_, None) => "timestamp".to_string(),
        other => crate::schema::type_name(other),
    };
    let width = match ty {
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "32-bit",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => "unsigned 32-bit",
        DataType::Int64 => "64-bit",
        DataType::UInt64 => "unsigned 64-bit",
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => "seconds",
            TimeUnit::Millisecond => "milliseconds",
            TimeUnit::Microsecond => "microseconds",
            TimeUnit::Nanosecond => "nanoseconds",
        },
        _ => return name,
    };
    format!("{name} ({width})")
}

/// Whether a column holds nanosecond timestamps, at any depth.
fn holds_nanoseconds(ty: &DataType) -> bool {
    match ty {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::Map(f, _) => holds_nanoseconds(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| holds_nanoseconds(f.data_type())),
        _ => false,
    }
}

fn stored_identically(file: &DataType, table: &DataType) -> bool {
    match (file, table) {
        // Nested types: element, entry and field names and metadata are not stored values.
        (DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f), DataType::List(t)) => {
            stored_identically(f.data_type(), t.data_type())
        }
        (DataType::Map(f, _), DataType::Map(t, _)) => match (f.data_type(), t.data_type()) {
            (DataType::Struct(fkv), DataType::Struct(tkv)) => {
                fkv.len() == tkv.len()
                    && fkv
                        .iter()
                        .zip(tkv.iter())
                        .all(|(a, b)| stored_identically(a.data_type(), b.data_type()))
            }
            _ => false,
        },
        // Fields the table lacks were refused by the schema comparison; fields the file
        // lacks read as nulls.
        (DataType::Struct(ff), DataType::Struct(tf)) => ff.iter().all(|f| {
            tf.find(f.name())
                .is_some_and(|(_, t)| stored_identically(f.data_type(), t.data_type()))
        }),
        (DataType::Timestamp(u1, _), DataType::Timestamp(u2, _)) => u1 == u2,
        (
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
            DataType::Utf8 | DataType::LargeUtf8,
        ) => true,
        (
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView,
            DataType::Binary | DataType::LargeBinary,
        ) => true,
        (DataType::Dictionary(_, v), t) => stored_identically(v, t),
        (a, b) => a == b,
    }
}

pub(crate) fn data_file(table: &LoadedTable, footer: &ParquetFooter) -> Result<DataFile> {
    described(table, footer, true)
}

/// The exact range of each of `columns` over all rows of the given files, from their footers:
/// a column is left out when a file lacks exact bounds for it (or stores it in a type other
/// than the table's), so a range given covers every non-null value.
pub fn column_ranges(
    table: &LoadedTable,
    footers: &[ParquetFooter],
    columns: &[String],
) -> HashMap<String, (Datum, Datum)> {
    let schema = table.metadata().current_schema();
    let mut ranges: HashMap<String, Option<(Datum, Datum)>> = HashMap::new();
    let files: Vec<DataFile> = footers
        .iter()
        .filter_map(|f| described(table, f, false).ok())
        .collect();
    if files.len() != footers.len() {
        return HashMap::new();
    }
    for column in columns {
        let Some(field) = schema.field_by_name(column) else {
            continue;
        };
        let mut range: Option<(Datum, Datum)> = None;
        let mut known = true;
        for file in &files {
            let nulls = file.null_value_counts().get(&field.id).copied();
            if nulls == Some(file.record_count()) {
                continue;
            }
            let (Some(lo), Some(hi)) = (
                file.lower_bounds().get(&field.id),
                file.upper_bounds().get(&field.id),
            ) else {
                known = false;
                break;
            };
            range = Some(match range {
                None => (lo.clone(), hi.clone()),
                Some((a, b)) => (
                    if lo < &a { lo.clone() } else { a },
                    if hi > &b { hi.clone() } else { b },
                ),
            });
        }
        ranges.insert(column.clone(), if known { range } else { None });
    }
    ranges
        .into_iter()
        .filter_map(|(c, r)| r.map(|r| (c, r)))
        .collect()
}

fn described(
    table: &LoadedTable,
    footer: &ParquetFooter,
    prove_partition: bool,
) -> Result<DataFile> {
    let schema = table.metadata().current_schema();
    let metadata = &footer.metadata;
    let mut column_sizes: HashMap<i32, u64> = HashMap::new();
    let mut value_counts: HashMap<i32, u64> = HashMap::new();
    let mut null_counts: HashMap<i32, u64> = HashMap::new();
    let mut lower: HashMap<i32, Datum> = HashMap::new();
    let mut upper: HashMap<i32, Datum> = HashMap::new();
    let mut stats_complete: HashMap<i32, bool> = HashMap::new();

    for row_group in metadata.row_groups() {
        for column in row_group.columns() {
            let path = column.column_descr().path().parts();
            // Only top-level primitive columns carry statistics we can map by name.
            if path.len() != 1 {
                continue;
            }
            let Some(field) = schema.field_by_name(&path[0]) else {
                continue;
            };
            let Type::Primitive(primitive) = field.field_type.as_ref() else {
                continue;
            };
            let id = field.id;
            *column_sizes.entry(id).or_default() += column.compressed_size() as u64;
            *value_counts.entry(id).or_default() += column.num_values() as u64;
            let complete = stats_complete.entry(id).or_insert(true);
            match column.statistics() {
                Some(stats) => {
                    match stats.null_count_opt() {
                        Some(n) => *null_counts.entry(id).or_default() += n,
                        None => *complete = false,
                    }
                    match bounds(stats, primitive, file_unit(&footer.schema, &path[0])) {
                        Some((lo, hi)) => {
                            merge_bound(&mut lower, id, lo, true);
                            merge_bound(&mut upper, id, hi, false);
                        }
                        // A row group with only nulls has no bounds and does not widen them.
                        None if stats.null_count_opt() == Some(row_group.num_rows() as u64) => {}
                        None => *complete = false,
                    }
                }
                None => *complete = false,
            }
        }
    }
    // Bounds or null counts known for only some row groups would be wrong for the file.
    for (id, complete) in stats_complete {
        if !complete {
            lower.remove(&id);
            upper.remove(&id);
            null_counts.remove(&id);
        }
    }
    let split_offsets: Vec<i64> = metadata
        .row_groups()
        .iter()
        .filter_map(|rg| rg.file_offset())
        .collect();
    let spec = table.metadata().default_partition_spec();
    let mut builder = DataFileBuilder::default();
    builder
        .content(DataContentType::Data)
        .file_path(footer.location.clone())
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::empty())
        .partition_spec_id(table.metadata().default_partition_spec_id())
        .record_count(metadata.file_metadata().num_rows() as u64)
        .file_size_in_bytes(footer.size)
        .column_sizes(column_sizes)
        .value_counts(value_counts)
        .null_value_counts(null_counts)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .split_offsets(Some(split_offsets));
    let describe = |e: iceberg::spec::DataFileBuilderError| Error::CorruptFile {
        path: footer.location.clone(),
        reason: format!("cannot describe the file as an Iceberg data file: {e}"),
    };
    if prove_partition && !spec.fields().is_empty() {
        // Every row must fall into one partition, proved from the statistics just gathered.
        let unpartitioned = builder.clone().build().map_err(describe)?;
        let tuple = partition_from_stats(spec, schema, &unpartitioned).map_err(|reason| {
            Error::SpansPartitions {
                path: footer.location.clone(),
                table: table.name().to_string(),
                reason,
            }
        })?;
        builder.partition(tuple);
    }
    builder.build().map_err(|e| Error::CorruptFile {
        path: footer.location.clone(),
        reason: format!("cannot describe the file as an Iceberg data file: {e}"),
    })
}

fn file_unit(schema: &ArrowSchema, column: &str) -> Option<TimeUnit> {
    match schema.field_with_name(column).ok()?.data_type() {
        DataType::Timestamp(unit, _) => Some(*unit),
        _ => None,
    }
}

fn merge_bound(map: &mut HashMap<i32, Datum>, id: i32, value: Datum, lower: bool) {
    match map.get(&id) {
        Some(existing) => {
            let replace = match existing.partial_cmp(&value) {
                Some(std::cmp::Ordering::Greater) => lower,
                Some(std::cmp::Ordering::Less) => !lower,
                _ => false,
            };
            if replace {
                map.insert(id, value);
            }
        }
        None => {
            map.insert(id, value);
        }
    }
}

/// Exact (min, max) of a column chunk as Iceberg values, when the statistics give them.
fn bounds(
    stats: &Statistics,
    ty: &PrimitiveType,
    unit: Option<TimeUnit>,
) -> Option<(Datum, Datum)> {
    if !stats.min_is_exact() || !stats.max_is_exact() {
        return None;
    }
    match (stats, ty) {
        (Statistics::Boolean(s), PrimitiveType::Boolean) => {
            Some((Datum::bool(*s.min_opt()?), Datum::bool(*s.max_opt()?)))
        }
        (Statistics::Int32(s), PrimitiveType::Int) => {
            Some((Datum::int(*s.min_opt()?), Datum::int(*s.max_opt()?)))
        }
        (Statistics::Int32(s), PrimitiveType::Date) => {
            Some((Datum::date(*s.min_opt()?), Datum::date(*s.max_opt()?)))
        }
        (Statistics::Int64(s), PrimitiveType::Long) => {
            Some((Datum::long(*s.min_opt()?), Datum::long(*s.max_opt()?)))
        }
        (Statistics::Int64(s), PrimitiveType::Timestamp) if unit == Some(TimeUnit::Microsecond) => {
            Some((
                Datum::timestamp_micros(*s.min_opt()?),
                Datum::timestamp_micros(*s.max_opt()?),
            ))
        }
        (Statistics::Int64(s), PrimitiveType::Timestamptz)
            if unit == Some(TimeUnit::Microsecond) =>
        {
            Some((
                Datum::timestamptz_micros(*s.min_opt()?),
                Datum::timestamptz_micros(*s.max_opt()?),
            ))
        }
        (Statistics::Float(s), PrimitiveType::Float) => {
            let (lo, hi) = (*s.min_opt()?, *s.max_opt()?);
            (!lo.is_nan() && !hi.is_nan()).then(|| (Datum::float(lo), Datum::float(hi)))
        }
        (Statistics::Double(s), PrimitiveType::Double) => {
            let (lo, hi) = (*s.min_opt()?, *s.max_opt()?);
            (!lo.is_nan() && !hi.is_nan()).then(|| (Datum::double(lo), Datum::double(hi)))
        }
        (Statistics::ByteArray(s), PrimitiveType::String) => {
            let lo = std::str::from_utf8(s.min_opt()?.data()).ok()?;
            let hi = std::str::from_utf8(s.max_opt()?.data()).ok()?;
            Some((Datum::string(lo), Datum::string(hi)))
        }
        _ => None,
    }
}

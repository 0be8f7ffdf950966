//! Copy mode's fast path: a source file whose column chunks are already what the table stores
//! is copied chunk by chunk, its pages untouched, under a new footer that carries the table's
//! field ids.
//!
//! ```text
//!  source row group ──get_range──► bytes in memory ──► new file (same pages, field ids)
//!                                        └──► decoded by the caller (the audit), same bytes
//! ```
//!
//! Re-encoding a file costs decompression, dictionary encoding and compression of every value;
//! copying its chunks costs a read and a write. The copy is only taken when nothing would change
//! by re-encoding that matters to readers: see [`chunk_copy_blocker`] for the conditions. The
//! data file's metrics come from the column chunk statistics, which are copied with the chunks.

use std::sync::Arc;

use arrow_schema::DataType;
use bytes::Bytes;
use iceberg::spec::{DataFile, DataFileFormat, PartitionKey};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, FileNameGenerator, LocationGenerator,
};
use object_store::ObjectStoreExt;
use parquet::basic::ColumnOrder;
use parquet::basic::{Compression, Repetition, Type as PhysicalType};
use parquet::file::metadata::{
    ColumnChunkMetaData, FileMetaData, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::DEFAULT_CREATED_BY;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::{SchemaDescriptor, Type as ParquetType, TypePtr};

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::ingest::register::data_file;
use crate::parquet::ParquetFooter;
use crate::schema::arrow_schema_for;
use crate::snapshot_producer::{WriteOptions, ensure_writable};
use crate::storage::{ObjectStores, Upload};

/// What a parquet file starts and ends with.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// The default of [`WriteOptions::min_copied_row_group_bytes`]: 1 MiB.
pub const MIN_COPIED_ROW_GROUP_BYTES: u64 = 1024 * 1024;

/// A row group is held in memory while it is copied; larger ones are re-encoded, which streams.
pub const MAX_COPIED_ROW_GROUP_BYTES: u64 = 256 * 1024 * 1024;

/// Why a source file's column chunks cannot be copied into the table as they are, or `None`
/// when they can. A file can be copied as it is when:
///
/// * every column is a top-level primitive column of the table, stored with the type and the
///   nullability the table's own writer would use (no `INT96`, decimals or fixed-size binaries);
/// * every column chunk is compressed with a codec every Iceberg reader decodes (zstd, snappy,
///   gzip or lz4_raw; see [`keeps_codec`]) or with the table's own codec, and carries statistics
///   (null count, and exact bounds unless it holds only nulls) that Iceberg's metrics come from,
///   and its page offsets agree with its size and the file's;
/// * its row groups are no larger than [`WriteOptions::max_row_group_rows`] and average at least
///   [`WriteOptions::min_copied_row_group_bytes`], none over [`MAX_COPIED_ROW_GROUP_BYTES`].
///
/// Any other file is re-encoded with [`crate::TableWriter`] (see [`crate::Lake::ingest`]); the rows are the same either way.
pub fn chunk_copy_blocker(
    table: &LoadedTable,
    footer: &ParquetFooter,
    options: &WriteOptions,
) -> Option<String> {
    blocker(table, footer, options).err()
}

fn blocker(
    table: &LoadedTable,
    footer: &ParquetFooter,
    options: &WriteOptions,
) -> std::result::Result<(), String> {
    let schema = table.metadata().current_schema();
    let table_arrow = arrow_schema_for(schema).map_err(|e| e.to_string())?;
    let metadata = &footer.metadata;
    let descr = metadata.file_metadata().schema_descr();
    let root = descr.root_schema();
    let file_arrow = parquet::arrow::parquet_to_arrow_schema(descr, None)
        .map_err(|e| format!("its schema has no Arrow equivalent ({e})"))?;
    for (field, arrow_field) in root.get_fields().iter().zip(file_arrow.fields()) {
        let name = field.name();
        if !field.is_primitive() {
            return Err(format!("column `{name}` is nested"));
        }
        let Some(table_field) = schema.field_by_name(name) else {
            return Err(format!("column `{name}` is not in the table"));
        };
        let table_type = table_arrow
            .field_with_name(name)
            .map_err(|e| e.to_string())?
            .data_type();
        if !stored_as_table_stores(field, arrow_field.data_type(), table_type) {
            return Err(format!(
                "column `{name}` is stored as {:?} {} where the table stores {table_type}",
                field.get_physical_type(),
                arrow_field.data_type()
            ));
        }
        let required = field.get_basic_info().repetition() == Repetition::REQUIRED;
        if required != table_field.required {
            return Err(format!(
                "column `{name}` is {} in the file and {} in the table",
                if required { "required" } else { "optional" },
                if table_field.required {
                    "required"
                } else {
                    "optional"
                },
            ));
        }
    }
    let table_codec = crate::writer::table_codec(table, options).map_err(|e| e.to_string())?;
    let row_groups = metadata.row_groups();
    if row_groups.is_empty() {
        return Err("it has no row groups".to_string());
    }
    // A copied file is one data file, so it must hold one partition, proved from its footer.
    if let Err(Error::SpansPartitions { reason, .. }) = data_file(table, footer) {
        return Err(format!(
            "its rows may fall into several partitions: {reason}"
        ));
    }
    let total: i64 = row_groups.iter().map(|rg| rg.compressed_size()).sum();
    let average = total.max(0) as u64 / row_groups.len() as u64;
    if average < options.min_copied_row_group_bytes {
        return Err(format!(
            "its row groups average {average} bytes, fewer than {}",
            options.min_copied_row_group_bytes
        ));
    }
    for (index, row_group) in row_groups.iter().enumerate() {
        if row_group.compressed_size().max(0) as u64 > MAX_COPIED_ROW_GROUP_BYTES {
            return Err(format!(
                "row group {index} holds {} bytes, more than {MAX_COPIED_ROW_GROUP_BYTES} \
                 (it would be held in memory)",
                row_group.compressed_size()
            ));
        }
        if row_group.num_rows() as usize > options.max_row_group_rows {
            return Err(format!(
                "row group {index} holds {} rows, more than the table's {}",
                row_group.num_rows(),
                options.max_row_group_rows
            ));
        }
        for column in row_group.columns() {
            let name = column.column_path().string();
            if !keeps_codec(column.compression(), table_codec) {
                return Err(format!(
                    "column `{name}` is compressed with {}, which copy mode re-encodes (it keeps \
                     zstd, snappy, gzip and lz4_raw chunks, and the table's {table_codec})",
                    column.compression()
                ));
            }
            if column.file_path().is_some() {
                return Err(format!("column `{name}` is stored in another file"));
            }
            // Some writers record a dictionary offset of 0 for chunks without a dictionary; the
            // bytes to copy must be exactly the chunk's, inside the file.
            let data = column.data_page_offset();
            let first = column.dictionary_page_offset().unwrap_or(data);
            let end = first.checked_add(column.compressed_size());
            if first < 4 || first > data || end.is_none_or(|e| e as u64 > footer.size) {
                return Err(format!(
                    "column `{name}` of row group {index} has inconsistent page offsets"
                ));
            }
            let Some(stats) = column.statistics() else {
                return Err(format!("column `{name}` has no statistics"));
            };
            let Some(nulls) = stats.null_count_opt() else {
                return Err(format!("column `{name}` has no null count"));
            };
            let all_null = nulls == row_group.num_rows() as u64;
            let exact = stats.min_is_exact()
                && stats.max_is_exact()
                && stats.min_bytes_opt().is_some()
                && stats.max_bytes_opt().is_some()
                && !stats.is_min_max_deprecated();
            if !all_null && !exact {
                return Err(format!("column `{name}` has no exact bounds"));
            }
        }
    }
    Ok(())
}

/// Whether copy mode keeps column chunks compressed with `source` as they are, in a table whose
/// new files are written with `table`. Kept: zstd, snappy, gzip and lz4_raw at any level, the
/// codecs every Iceberg reader decodes (Java's parquet reader, PyIceberg/pyarrow, DuckDB, Trino,
/// Spark), and the table's own codec. Re-encoded: uncompressed chunks (a table asks for
/// compression), the Hadoop-framed `LZ4` that parquet deprecated, LZO and brotli, which some
/// readers cannot decode, unless the table itself is written with that codec.
pub fn keeps_codec(source: Compression, table: Compression) -> bool {
    matches!(
        source,
        Compression::ZSTD(_) | Compression::SNAPPY | Compression::GZIP(_) | Compression::LZ4_RAW
    ) || std::mem::discriminant(&source) == std::mem::discriminant(&table)
}

/// Whether a column is stored the way the table's writer stores its type.
fn stored_as_table_stores(field: &ParquetType, file: &DataType, table: &DataType) -> bool {
    let physical = field.get_physical_type();
    let physical_ok = match table {
        DataType::Boolean => physical == PhysicalType::BOOLEAN,
        DataType::Int32 | DataType::Date32 => physical == PhysicalType::INT32,
        DataType::Int64
        | DataType::Time64(_)
        | DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _)
        | DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, _) => {
            physical == PhysicalType::INT64
        }
        DataType::Float32 => physical == PhysicalType::FLOAT,
        DataType::Float64 => physical == PhysicalType::DOUBLE,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => {
            physical == PhysicalType::BYTE_ARRAY
        }
        _ => false,
    };
    let logical_ok = match (file, table) {
        (DataType::Timestamp(u1, tz1), DataType::Timestamp(u2, tz2)) => {
            u1 == u2 && tz1.is_some() == tz2.is_some()
        }
        (DataType::Utf8 | DataType::LargeUtf8, DataType::Utf8 | DataType::LargeUtf8) => true,
        (DataType::Binary | DataType::LargeBinary, DataType::Binary | DataType::LargeBinary) => {
            true
        }
        (a, b) => a == b,
    };
    physical_ok && logical_ok
}

/// One row group of a source file, held in memory while it is copied. It reads as the parquet
/// file it came from, for the offsets of that row group's column chunks, so the caller can
/// decode columns from it without reading the file again.
#[derive(Clone, Debug)]
pub(crate) struct RowGroupBytes {
    start: u64,
    data: Bytes,
    file_len: u64,
}

impl RowGroupBytes {
    fn range(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let offset = start
            .checked_sub(self.start)
            .map(|o| o as usize)
            .filter(|o| o + length <= self.data.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "bytes {start}..{} are outside the row group held in memory ({}..{})",
                    start + length as u64,
                    self.start,
                    self.start + self.data.len() as u64
                ))
            })?;
        Ok(self.data.slice(offset..offset + length))
    }
}

impl Length for RowGroupBytes {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for RowGroupBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let end = self.start + self.data.len() as u64;
        let length = end.saturating_sub(start) as usize;
        Ok(bytes::Buf::reader(self.range(start, length)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.range(start, length)
    }
}

/// Copies eligible source files into a table's data directory chunk by chunk (see the module
/// docs). Each source file becomes one data file; nothing is visible in the table until the
/// files are committed with [`crate::Lake::commit_append`].
pub(crate) struct ChunkCopier {
    table: LoadedTable,
    stores: ObjectStores,
    locations: crate::partition::DataLocations,
    file_names: DefaultFileNameGenerator,
    options: WriteOptions,
}

impl std::fmt::Debug for ChunkCopier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCopier")
            .field("table", self.table.name())
            .finish_non_exhaustive()
    }
}

impl ChunkCopier {
    pub(crate) fn new(
        table: &LoadedTable,
        stores: &ObjectStores,
        options: &WriteOptions,
    ) -> Result<Self> {
        ensure_writable(table)?;
        Ok(Self {
            table: table.clone(),
            stores: stores.clone(),
            locations: crate::partition::DataLocations::new(crate::snapshot_producer::data_dir(
                table.metadata(),
                options.run_id.as_deref(),
            )),
            file_names: DefaultFileNameGenerator::new(
                uuid::Uuid::now_v7().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
            options: options.clone(),
        })
    }

    /// Copies one source file, which must have passed [`chunk_copy_blocker`]. `each_row_group`
    /// is called with every row group's index and bytes before they are written, so the caller
    /// can decode what it needs (an error from it stops the copy). Returns the new data file; on
    /// error nothing is left behind.
    pub(crate) async fn copy_file<E: From<Error>>(
        &self,
        footer: &ParquetFooter,
        mut each_row_group: impl FnMut(usize, &RowGroupBytes) -> std::result::Result<(), E>,
    ) -> std::result::Result<DataFile, E> {
        if let Some(reason) = chunk_copy_blocker(&self.table, footer, &self.options) {
            return Err(E::from(Error::SchemaMismatch {
                table: self.table.name().to_string(),
                path: footer.location.clone(),
                diff: format!("its column chunks cannot be copied as they are: {reason}"),
            }));
        }
        // The file's partition (proved by `chunk_copy_blocker`) names its directory.
        let partition = data_file(&self.table, footer).map_err(E::from)?;
        let metadata = self.table.metadata();
        let spec = metadata.default_partition_spec();
        let key = (!spec.fields().is_empty()).then(|| {
            PartitionKey::new(
                spec.as_ref().clone(),
                metadata.current_schema().clone(),
                partition.partition().clone(),
            )
        });
        let location = self
            .locations
            .generate_location(key.as_ref(), &self.file_names.generate_file_name());
        let (store, path) = self.stores.resolve(&location).map_err(E::from)?;
        let mut upload = Upload::new(store, path);
        match self
            .write(footer, &location, &mut upload, &mut each_row_group)
            .await
        {
            Ok(file) => Ok(file),
            Err(stop) => {
                let _ = upload.abort().await;
                if let Ok((store, path)) = self.stores.resolve(&location) {
                    let _ = store.delete(&path).await;
                }
                Err(match stop {
                    Stop::Lake(e) => E::from(e),
                    Stop::Caller(e) => e,
                })
            }
        }
    }

    async fn write<E>(
        &self,
        footer: &ParquetFooter,
        location: &str,
        upload: &mut Upload,
        each_row_group: &mut impl FnMut(usize, &RowGroupBytes) -> std::result::Result<(), E>,
    ) -> std::result::Result<DataFile, Stop<E>> {
        let source = &footer.metadata;
        let schema = Arc::new(SchemaDescriptor::new(self.schema_with_ids(footer)?));
        let (store, path) = self.stores.resolve(&footer.location)?;
        // The new file is the magic, the source's column chunks one after the other, and a
        // footer that says where they now are. Chunks are handed to the upload as slices of
        // the bytes read, never copied into a writer's buffer.
        send(upload, Bytes::from_static(PARQUET_MAGIC), location).await?;
        let mut written = PARQUET_MAGIC.len() as u64;
        let mut row_groups = Vec::with_capacity(source.num_row_groups());
        for (index, row_group) in source.row_groups().iter().enumerate() {
            let (start, end) = chunk_range(row_group.columns());
            let data =
                store
                    .get_range(&path, start..end)
                    .await
                    .map_err(|source| Error::Storage {
                        location: footer.location.clone(),
                        source,
                    })?;
            let bytes = RowGroupBytes {
                start,
                data,
                file_len: footer.size,
            };
            each_row_group(index, &bytes).map_err(Stop::Caller)?;
            let file_offset = written;
            let mut columns = Vec::with_capacity(row_group.num_columns());
            // Chunks that follow each other in the source are sent as one slice.
            let mut run: Option<(u64, u64)> = None;
            for (column, target) in row_group.columns().iter().zip(schema.columns()) {
                let (offset, length) = column.byte_range();
                columns.push(retarget(
                    column,
                    target.clone(),
                    written as i64 - offset as i64,
                )?);
                written += length;
                run = match run {
                    Some((from, to)) if to == offset => Some((from, offset + length)),
                    Some((from, to)) => {
                        send(upload, bytes.range(from, (to - from) as usize)?, location).await?;
                        Some((offset, offset + length))
                    }
                    None => Some((offset, offset + length)),
                };
            }
            if let Some((from, to)) = run {
                send(upload, bytes.range(from, (to - from) as usize)?, location).await?;
            }
            let uncompressed = columns.iter().map(|c| c.uncompressed_size()).sum();
            row_groups.push(
                RowGroupMetaData::builder(schema.clone())
                    .set_column_metadata(columns)
                    .set_total_byte_size(uncompressed)
                    .set_num_rows(row_group.num_rows())
                    .set_ordinal(i16::try_from(index).unwrap_or(i16::MAX))
                    .set_file_offset(file_offset as i64)
                    .build()?,
            );
        }
        let column_orders = schema
            .columns()
            .iter()
            .map(|c| {
                ColumnOrder::TYPE_DEFINED_ORDER(ColumnOrder::sort_order_for_type(
                    c.logical_type_ref(),
                    c.converted_type(),
                    c.physical_type(),
                ))
            })
            .collect();
        let file_metadata = FileMetaData::new(
            source.file_metadata().version(),
            row_groups.iter().map(RowGroupMetaData::num_rows).sum(),
            Some(DEFAULT_CREATED_BY.to_string()),
            None,
            schema,
            Some(column_orders),
        );
        let metadata = ParquetMetaData::new(file_metadata, row_groups);
        let mut tail = Vec::new();
        ParquetMetaDataWriter::new(&mut tail, &metadata).finish()?;
        written += tail.len() as u64;
        send(upload, Bytes::from(tail), location).await?;
        upload.finish().await.map_err(|e| Error::Storage {
            location: location.to_string(),
            source: object_store::Error::Generic {
                store: "data file upload",
                source: Box::new(e),
            },
        })?;
        let copied = ParquetFooter {
            location: location.to_string(),
            size: written,
            schema: footer.schema.clone(),
            metadata: Arc::new(metadata),
        };
        Ok(data_file(&self.table, &copied)?)
    }

    /// The source file's schema with every top-level column carrying its table field id.
    fn schema_with_ids(&self, footer: &ParquetFooter) -> Result<TypePtr> {
        let table_schema = self.table.metadata().current_schema();
        let root = footer.metadata.file_metadata().schema_descr().root_schema();
        let mut fields = Vec::with_capacity(root.get_fields().len());
        for field in root.get_fields() {
            let info = field.get_basic_info();
            let id = table_schema
                .field_by_name(field.name())
                .map(|f| f.id)
                .ok_or_else(|| Error::ColumnNotFound {
                    table: self.table.name().to_string(),
                    column: field.name().to_string(),
                })?;
            let ParquetType::PrimitiveType {
                physical_type,
                type_length,
                scale,
                precision,
                ..
            } = field.as_ref()
            else {
                return Err(Error::SchemaMismatch {
                    table: self.table.name().to_string(),
                    path: footer.location.clone(),
                    diff: format!("column `{}` is nested", field.name()),
                });
            };
            let typed = ParquetType::primitive_type_builder(field.name(), *physical_type)
                .with_repetition(info.repetition())
                .with_converted_type(info.converted_type())
                .with_logical_type(info.logical_type_ref().cloned())
                .with_length(*type_length)
                .with_precision(*precision)
                .with_scale(*scale)
                .with_id(Some(id))
                .build()?;
            fields.push(Arc::new(typed));
        }
        Ok(Arc::new(
            ParquetType::group_type_builder(root.name())
                .with_fields(fields)
                .build()?,
        ))
    }
}

/// Appends `bytes` to the new file.
async fn send(upload: &mut Upload, bytes: Bytes, location: &str) -> Result<()> {
    upload.put(bytes).await.map_err(|source| Error::Storage {
        location: location.to_string(),
        source,
    })
}

/// Why a copy stopped: its own failure, or the caller's callback.
enum Stop<E> {
    Lake(Error),
    Caller(E),
}

impl<E> From<Error> for Stop<E> {
    fn from(e: Error) -> Self {
        Stop::Lake(e)
    }
}

impl<E> From<parquet::errors::ParquetError> for Stop<E> {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Stop::Lake(e.into())
    }
}

/// The byte range of a row group's column chunks.
fn chunk_range(columns: &[ColumnChunkMetaData]) -> (u64, u64) {
    let mut start = u64::MAX;
    let mut end = 0u64;
    for column in columns {
        let (offset, length) = column.byte_range();
        start = start.min(offset);
        end = end.max(offset + length);
    }
    (start, end)
}

/// A column chunk's metadata under the target file's column descriptor (which carries the
/// field id), its pages `shift` bytes further into the file; everything the copy keeps is
/// carried over.
fn retarget(
    column: &ColumnChunkMetaData,
    descr: parquet::schema::types::ColumnDescPtr,
    shift: i64,
) -> Result<ColumnChunkMetaData> {
    let mut builder = ColumnChunkMetaData::builder(descr)
        .set_compression(column.compression())
        .set_encodings_mask(*column.encodings_mask())
        .set_total_compressed_size(column.compressed_size())
        .set_total_uncompressed_size(column.uncompressed_size())
        .set_num_values(column.num_values())
        .set_data_page_offset(column.data_page_offset() + shift)
        .set_dictionary_page_offset(column.dictionary_page_offset().map(|o| o + shift))
        .set_unencoded_byte_array_data_bytes(column.unencoded_byte_array_data_bytes())
        .set_repetition_level_histogram(column.repetition_level_histogram().cloned())
        .set_definition_level_histogram(column.definition_level_histogram().cloned());
    if let Some(stats) = column.statistics() {
        builder = builder.set_statistics(stats.clone());
    }
    if let Some(stats) = column.page_encoding_stats() {
        builder = builder.set_page_encoding_stats(stats.clone());
    }
    Ok(builder.build()?)
}

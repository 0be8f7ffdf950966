//! Writing record batches as parquet data files of a table (copy mode).
//!
//! ```text
//!  batch ─► conform to the table ─┬─ unpartitioned: one rolling writer
//!                                 └─ partitioned:   split by partition ─► one rolling writer per
//!                                    partition, at most `max_open_writers` open and about
//!                                    `memory_budget` bytes buffered; over either, the writer
//!                                    holding the most (then the least recently used) is closed
//! ```
//!
//! A partition whose writer was closed gets a new file when more of its rows arrive, so a
//! partition may have several files; every file holds one partition only.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::spec::{DataFile, DataFileFormat, PartitionKey, Struct};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::DefaultFileNameGenerator;
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::partition::Partitioner;
use crate::schema::{NanosToMicros, arrow_schema_for, conform_batch_with};
use crate::snapshot_producer::{WriteOptions, data_dir, ensure_writable};

type Builder = DataFileWriterBuilder<
    ParquetWriterBuilder,
    crate::partition::DataLocations,
    DefaultFileNameGenerator,
>;
type InnerWriter =
    DataFileWriter<ParquetWriterBuilder, crate::partition::DataLocations, DefaultFileNameGenerator>;

/// The table property naming the size data files roll over at.
pub const TARGET_FILE_SIZE_PROPERTY: &str = "write.target-file-size-bytes";

/// The table property bounding a column chunk's dictionary, in bytes.
pub const DICTIONARY_SIZE_PROPERTY: &str = "write.parquet.dict-size-bytes";

/// The table property naming the codec new data files are compressed with.
pub const COMPRESSION_CODEC_PROPERTY: &str = "write.parquet.compression-codec";

/// The table property giving the codec's level (zstd, gzip and brotli have levels).
pub const COMPRESSION_LEVEL_PROPERTY: &str = "write.parquet.compression-level";

/// The codec new data files of `table` are written with: the table's
/// `write.parquet.compression-codec` (`zstd`, `snappy`, `gzip`, `lz4`, `brotli` or
/// `uncompressed`, as Iceberg names them) at its `write.parquet.compression-level`, else zstd at
/// `options.zstd_level`. Iceberg's `lz4` is written as parquet's `LZ4_RAW`, the framing every
/// current reader decodes.
pub fn table_codec(table: &LoadedTable, options: &WriteOptions) -> Result<Compression> {
    let properties = table.metadata().properties();
    let codec = properties
        .get(COMPRESSION_CODEC_PROPERTY)
        .map(|c| c.trim().to_ascii_lowercase());
    let level = match properties.get(COMPRESSION_LEVEL_PROPERTY) {
        None => None,
        Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
            Error::Config(format!(
                "table {}: {COMPRESSION_LEVEL_PROPERTY} = {text:?} is not a whole number; set \
                 it to the codec's level or remove it",
                table.name()
            ))
        })?),
    };
    let bad_level = |codec: &str, e: parquet::errors::ParquetError| {
        Error::Config(format!(
            "table {}: {COMPRESSION_LEVEL_PROPERTY} is not a level of {codec} ({e})",
            table.name()
        ))
    };
    Ok(match codec.as_deref() {
        None | Some("zstd") => {
            let level = level.map_or(options.zstd_level, |l| l as i32);
            Compression::ZSTD(ZstdLevel::try_new(level).map_err(|e| bad_level("zstd", e))?)
        }
        Some("snappy") => Compression::SNAPPY,
        Some("gzip") => Compression::GZIP(match level {
            Some(l) => GzipLevel::try_new(l).map_err(|e| bad_level("gzip", e))?,
            None => GzipLevel::default(),
        }),
        Some("lz4") | Some("lz4_raw") => Compression::LZ4_RAW,
        Some("brotli") => Compression::BROTLI(match level {
            Some(l) => BrotliLevel::try_new(l).map_err(|e| bad_level("brotli", e))?,
            None => BrotliLevel::default(),
        }),
        Some("uncompressed") | Some("none") => Compression::UNCOMPRESSED,
        Some(other) => {
            return Err(Error::Config(format!(
                "table {}: {COMPRESSION_CODEC_PROPERTY} = {other:?} is not a codec sluice \
                 writes; use zstd, snappy, gzip, lz4, brotli or uncompressed",
                table.name()
            )));
        }
    })
}

/// The size data files roll over at: the table's `write.target-file-size-bytes` when set,
/// otherwise `options.target_file_size`.
pub(crate) fn target_file_size(table: &LoadedTable, options: &WriteOptions) -> usize {
    size_property(
        table.metadata().properties(),
        TARGET_FILE_SIZE_PROPERTY,
        options.target_file_size,
    )
}

/// A positive byte size from a table property, or `default` when it is unset or not one.
fn size_property(properties: &HashMap<String, String>, name: &str, default: usize) -> usize {
    properties
        .get(name)
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// Writes record batches as parquet data files of a table (copy mode), with Iceberg field ids
/// and column statistics, one partition per file. Nothing is visible in the table until the
/// files are committed with [`crate::Lake::commit_append`].
pub struct TableWriter {
    table: String,
    arrow_schema: ArrowSchemaRef,
    sink: Sink,
    rows: u64,
    nanos: NanosToMicros,
}

enum Sink {
    Single(Box<InnerWriter>),
    Fanout(Box<Fanout>),
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl TableWriter {
    pub(crate) async fn new(table: &LoadedTable, options: &WriteOptions) -> Result<Self> {
        ensure_writable(table)?;
        let metadata = table.metadata();
        let schema = metadata.current_schema().clone();
        let props = WriterProperties::builder()
            .set_compression(table_codec(table, options)?)
            .set_max_row_group_row_count(Some(options.max_row_group_rows))
            // A column whose distinct values outgrow the dictionary falls back to plain
            // encoding; a small bound stops early on such columns (ids, timestamps, session
            // keys), which costs time and bytes in every open file of a partitioned write.
            .set_dictionary_page_size_limit(size_property(
                metadata.properties(),
                DICTIONARY_SIZE_PROPERTY,
                options.dictionary_page_size,
            ))
            // Iceberg keeps column bounds per file; page-level statistics would only cost time.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let parquet = ParquetWriterBuilder::new(props, schema.clone());
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            target_file_size(table, options),
            table.file_io().clone(),
            crate::partition::DataLocations::new(data_dir(metadata, options.run_id.as_deref())),
            DefaultFileNameGenerator::new(
                uuid::Uuid::now_v7().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let spec = metadata.default_partition_spec();
        let sink = match Partitioner::new(spec.clone(), schema.clone())? {
            None => Sink::Single(Box::new(builder.build(None).await?)),
            Some(partitioner) => Sink::Fanout(Box::new(Fanout {
                builder,
                partitioner,
                open: HashMap::new(),
                done: Vec::new(),
                tick: 0,
                buffered: 0,
                memory_budget: options.memory_budget.max(1),
                max_open: options.max_open_writers.max(1),
            })),
        };
        Ok(Self {
            table: table.name().to_string(),
            arrow_schema: arrow_schema_for(&schema)?,
            sink,
            rows: 0,
            nanos: options.nanos,
        })
    }

    /// The Arrow schema batches are conformed to (the table's current schema).
    pub fn arrow_schema(&self) -> &ArrowSchemaRef {
        &self.arrow_schema
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes one batch. `source` names where it came from, for error messages. Columns are
    /// matched by name; a batch that does not fit the table is a [`Error::SchemaMismatch`].
    pub async fn write(&mut self, batch: &RecordBatch, source: &str) -> Result<()> {
        let batch = conform_batch_with(&self.table, source, &self.arrow_schema, batch, self.nanos)?;
        self.write_conformed(batch).await
    }

    /// Writes a batch already in the table's schema.
    pub(crate) async fn write_conformed(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        match &mut self.sink {
            Sink::Single(w) => w.write(batch).await?,
            Sink::Fanout(f) => f.write(&batch).await?,
        }
        Ok(())
    }

    /// Closes every open file and returns every data file written.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        match self.sink {
            Sink::Single(mut w) => Ok(w.close().await?),
            Sink::Fanout(f) => f.finish().await,
        }
    }
}

/// One open writer per partition, within a bound on open writers and buffered bytes.
struct Fanout {
    builder: Builder,
    partitioner: Partitioner,
    open: HashMap<Struct, OpenPartition>,
    done: Vec<DataFile>,
    tick: u64,
    /// Bytes of the batches given to the open writers (an upper bound of what they buffer).
    buffered: usize,
    memory_budget: usize,
    max_open: usize,
}

struct OpenPartition {
    writer: InnerWriter,
    buffered: usize,
    last_used: u64,
}

impl Fanout {
    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        for (tuple, rows) in self.partitioner.split(batch)? {
            self.tick += 1;
            if !self.open.contains_key(&tuple) {
                while self.open.len() >= self.max_open {
                    self.close_one().await?;
                }
                let key = PartitionKey::new(
                    self.partitioner.spec().clone(),
                    self.partitioner.schema().clone(),
                    tuple.clone(),
                );
                let writer = self.builder.build(Some(key)).await?;
                self.open.insert(
                    tuple.clone(),
                    OpenPartition {
                        writer,
                        buffered: 0,
                        last_used: 0,
                    },
                );
            }
            let size = rows.get_array_memory_size();
            let open = self.open.get_mut(&tuple).expect("opened above");
            open.last_used = self.tick;
            open.buffered += size;
            self.buffered += size;
            open.writer.write(rows).await?;
            while self.buffered > self.memory_budget && self.open.len() > 1 {
                self.close_one().await?;
            }
        }
        Ok(())
    }

    /// Closes the writer holding the most bytes (the least recently used among equals).
    async fn close_one(&mut self) -> Result<()> {
        let Some(tuple) = self
            .open
            .iter()
            .max_by_key(|(_, o)| (o.buffered, std::cmp::Reverse(o.last_used)))
            .map(|(t, _)| t.clone())
        else {
            return Ok(());
        };
        if let Some(mut open) = self.open.remove(&tuple) {
            self.buffered -= open.buffered;
            self.done.extend(open.writer.close().await?);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Vec<DataFile>> {
        for (_, mut open) in self.open.drain() {
            self.done.extend(open.writer.close().await?);
        }
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_properties_win_when_they_are_positive_numbers() {
        let props =
            |v: &str| HashMap::from([(DICTIONARY_SIZE_PROPERTY.to_string(), v.to_string())]);
        assert_eq!(
            size_property(&props("2097152"), DICTIONARY_SIZE_PROPERTY, 7),
            2_097_152
        );
        assert_eq!(
            size_property(&props(" 64 "), DICTIONARY_SIZE_PROPERTY, 7),
            64
        );
        assert_eq!(size_property(&props("0"), DICTIONARY_SIZE_PROPERTY, 7), 7);
        assert_eq!(size_property(&props("2MB"), DICTIONARY_SIZE_PROPERTY, 7), 7);
        assert_eq!(
            size_property(&HashMap::new(), DICTIONARY_SIZE_PROPERTY, 7),
            7
        );
    }
}

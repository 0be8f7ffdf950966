//! The commit log of a ref, ref resolution and time-travel reads.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use iceberg::expr::{Predicate, Reference};
use iceberg::spec::Datum;

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::refs::{self, RefSpec};
use crate::schema::arrow_schema_for;
use crate::table_name::TableName;

/// One snapshot in a ref's history, as `sluice log` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Snapshot id.
    pub snapshot_id: i64,
    /// Parent snapshot id.
    pub parent_id: Option<i64>,
    /// When the snapshot was committed (on whichever branch it was written to).
    pub timestamp: DateTime<Utc>,
    /// When the ref whose log this is reached this commit: for `main`, when main moved onto
    /// it (a publish comes after the commit on the audit branch) per the table's snapshot log;
    /// for other refs, [`Commit::timestamp`]. `REF@<this time>` reads a state that includes
    /// this commit; a millisecond earlier, one that does not (unless the ref held it before).
    pub reached_at: DateTime<Utc>,
    /// `append`, `overwrite`, `delete` or `replace`.
    pub operation: String,
    /// `sluice.message`, if set.
    pub message: Option<String>,
    /// `sluice.author`, if set.
    pub author: Option<String>,
    /// `sluice.run-id`, if set.
    pub run_id: Option<String>,
    /// Rows this snapshot added.
    pub added_records: Option<u64>,
    /// Rows in the table as of this snapshot.
    pub total_records: Option<u64>,
    /// The schema the snapshot was written with.
    pub schema_id: Option<i32>,
    /// Every summary property.
    pub summary: BTreeMap<String, String>,
}

/// A ref resolved to a snapshot, with the schema to read it with.
#[derive(Clone, Debug)]
pub struct ResolvedRef {
    /// The snapshot (`None`: `main` of a table with nothing committed).
    pub snapshot_id: Option<i64>,
    /// The schema of that snapshot (a renamed column has its name of that time).
    pub schema: ArrowSchemaRef,
}

/// Options of [`Lake::scan`].
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Columns to read (all if `None`).
    pub columns: Option<Vec<String>>,
    /// Rows per batch (iceberg's default if `None`).
    pub batch_size: Option<usize>,
}

/// Rows per batch of [`Lake::scan_all`] (a reader's default, 1,024, costs per batch).
const SCAN_BATCH_ROWS: usize = 64 * 1024;

/// A stream of record batches.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// The range of values a column may take, for [`Lake::scan_ranges`].
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnRange {
    /// The column.
    pub column: String,
    /// The lowest value (inclusive).
    pub min: Datum,
    /// The highest value (inclusive).
    pub max: Datum,
}

/// What [`Lake::scan_ranges`] read.
pub struct RangeScan {
    /// The rows in the ranges (and possibly others of the files read).
    pub stream: BatchStream,
    /// Data files read.
    pub files_read: u64,
    /// Data files in the snapshot (from its summary), when known.
    pub files_total: Option<u64>,
}

impl std::fmt::Debug for RangeScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeScan")
            .field("files_read", &self.files_read)
            .field("files_total", &self.files_total)
            .finish_non_exhaustive()
    }
}

impl Lake {
    /// The history of a ref, newest first, walking parent links from the snapshot it resolves
    /// to. `limit` caps the number of entries.
    pub async fn log(
        &self,
        name: &TableName,
        spec: &RefSpec,
        limit: Option<usize>,
    ) -> Result<Vec<Commit>> {
        self.load_table(name).await?.log(spec, limit)
    }

    /// Resolves a ref to a snapshot and that snapshot's schema.
    pub async fn resolve(&self, name: &TableName, spec: &RefSpec) -> Result<ResolvedRef> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let snapshot_id = refs::resolve(&name.to_string(), md, spec)?;
        let schema = match snapshot_id.and_then(|id| md.snapshot_by_id(id)) {
            Some(s) => s.schema(md)?,
            None => md.current_schema().clone(),
        };
        Ok(ResolvedRef {
            snapshot_id,
            schema: arrow_schema_for(&schema)?,
        })
    }

    /// Reads a ref's rows, with the schema the resolved snapshot had.
    pub async fn scan(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
    ) -> Result<(ArrowSchemaRef, BatchStream)> {
        let (projected, snapshot_id, table) = self.scan_target(name, spec, options).await?;
        let Some(snapshot_id) = snapshot_id else {
            return Ok((projected, futures::stream::empty().boxed()));
        };
        let stream = scan_stream(&table, snapshot_id, options, None).await?.0;
        Ok((projected, stream))
    }

    /// Reads the rows of a ref that may fall in any of `alternatives`, each a set of column
    /// ranges that must all hold: Iceberg's planning skips manifests by their partition
    /// summaries and data files by their column bounds, and rows outside are filtered out.
    /// Rows with nulls in a ranged column are not read. Reports how many files were read.
    pub async fn scan_ranges(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
        alternatives: &[Vec<ColumnRange>],
    ) -> Result<RangeScan> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let Some(snapshot_id) = refs::resolve(&name.to_string(), md, spec)? else {
            return Ok(RangeScan {
                stream: futures::stream::empty().boxed(),
                files_read: 0,
                files_total: Some(0),
            });
        };
        let files_total = md
            .snapshot_by_id(snapshot_id)
            .and_then(|s| s.summary().additional_properties.get("total-data-files"))
            .and_then(|v| v.parse().ok());
        let predicate = alternatives
            .iter()
            .map(|ranges| {
                ranges
                    .iter()
                    .map(|r| {
                        Reference::new(&r.column)
                            .greater_than_or_equal_to(r.min.clone())
                            .and(Reference::new(&r.column).less_than_or_equal_to(r.max.clone()))
                    })
                    .reduce(Predicate::and)
                    .unwrap_or(Predicate::AlwaysTrue)
            })
            .reduce(Predicate::or);
        let (stream, files_read) = scan_stream(&table, snapshot_id, options, predicate).await?;
        Ok(RangeScan {
            stream,
            files_read,
            files_total,
        })
    }

    /// Reads all of a ref's rows into memory, using every core: the data files are shared out
    /// among parallel readers (a single stream decodes on one thread). The rows come in no
    /// particular order, with the ref's schema.
    pub async fn scan_all(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
    ) -> Result<(ArrowSchemaRef, Vec<RecordBatch>)> {
        let (schema, snapshot_id, table) = self.scan_target(name, spec, options).await?;
        let Some(snapshot_id) = snapshot_id else {
            return Ok((schema, Vec::new()));
        };
        let mut builder = table.iceberg_table().scan().snapshot_id(snapshot_id);
        builder = match &options.columns {
            Some(columns) => builder.select(columns.iter().cloned()),
            None => builder.select_all(),
        };
        let scan = builder.build()?;
        let tasks: Vec<_> = scan.plan_files().await?.try_collect().await?;
        let readers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, tasks.len().max(1));
        let mut groups: Vec<Vec<_>> = (0..readers).map(|_| Vec::new()).collect();
        for (i, task) in tasks.into_iter().enumerate() {
            groups[i % readers].push(task);
        }
        let batch_size = options.batch_size.unwrap_or(SCAN_BATCH_ROWS);
        let mut handles = Vec::with_capacity(readers);
        for group in groups {
            let reader = table
                .iceberg_table()
                .reader_builder()
                .with_batch_size(batch_size)
                .with_data_file_concurrency_limit(1)
                .build();
            handles.push(tokio::spawn(async move {
                let stream = reader
                    .read(futures::stream::iter(group.into_iter().map(Ok)).boxed())?
                    .stream();
                stream.try_collect::<Vec<RecordBatch>>().await
            }));
        }
        let mut batches = Vec::new();
        for handle in handles {
            let read = handle.await.map_err(|e| Error::WorkerFailed {
                table: name.to_string(),
                reason: e.to_string(),
            })??;
            batches.extend(read);
        }
        Ok((schema, batches))
    }

    /// The schema a scan of `spec` returns (projected), the snapshot it reads, and the table.
    async fn scan_target(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
    ) -> Result<(ArrowSchemaRef, Option<i64>, crate::catalog::LoadedTable)> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let snapshot_id = refs::resolve(&name.to_string(), md, spec)?;
        let schema = match snapshot_id.and_then(|id| md.snapshot_by_id(id)) {
            Some(s) => s.schema(md)?,
            None => md.current_schema().clone(),
        };
        if let Some(columns) = &options.columns {
            for c in columns {
                if schema.field_by_name(c).is_none() {
                    return Err(Error::ColumnNotFound {
                        table: name.to_string(),
                        column: c.clone(),
                    });
                }
            }
        }
        let full = arrow_schema_for(&schema)?;
        let projected = match &options.columns {
            Some(columns) => {
                let indices: Vec<usize> = columns
                    .iter()
                    .filter_map(|c| full.index_of(c).ok())
                    .collect();
                std::sync::Arc::new(full.project(&indices)?)
            }
            None => full,
        };
        Ok((projected, snapshot_id, table))
    }

    /// Reads a ref's rows into memory (for small tables and tests).
    pub async fn scan_to_vec(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
    ) -> Result<Vec<RecordBatch>> {
        let (_, stream) = self.scan(name, spec, options).await?;
        stream.try_collect().await
    }
}

/// The batches of a snapshot (optionally filtered), and how many data files they come from.
async fn scan_stream(
    table: &crate::catalog::LoadedTable,
    snapshot_id: i64,
    options: &ScanOptions,
    predicate: Option<Predicate>,
) -> Result<(BatchStream, u64)> {
    let mut builder = table.iceberg_table().scan().snapshot_id(snapshot_id);
    builder = match &options.columns {
        Some(columns) => builder.select(columns.iter().cloned()),
        None => builder.select_all(),
    };
    if let Some(n) = options.batch_size {
        builder = builder.with_batch_size(Some(n));
    }
    if let Some(p) = predicate {
        builder = builder.with_filter(p);
    }
    let scan = builder.build()?;
    let tasks: Vec<_> = scan.plan_files().await?.try_collect().await?;
    let files = tasks.len() as u64;
    let mut reader = table.iceberg_table().reader_builder();
    if let Some(n) = options.batch_size {
        reader = reader.with_batch_size(n);
    }
    let stream = reader
        .build()
        .read(futures::stream::iter(tasks.into_iter().map(Ok)).boxed())?
        .stream();
    Ok((stream.map_err(Error::from).boxed(), files))
}

impl crate::catalog::LoadedTable {
    /// [`Lake::log`] on metadata already loaded.
    pub fn log(&self, spec: &RefSpec, limit: Option<usize>) -> Result<Vec<Commit>> {
        let md = self.metadata();
        let name = self.name();
        let head = refs::resolve(&name.to_string(), md, spec)?;
        let mut ancestry = refs::ancestry(md, head);
        ancestry.truncate(limit.unwrap_or(usize::MAX));
        let (ref_name, not_after) = match spec {
            RefSpec::AsOf(base, at) => (base.to_string(), Some(at.timestamp_millis())),
            other => (other.to_string(), None),
        };
        let reached = refs::reached_at(md, &ref_name, not_after, &ancestry);
        let millis = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        let mut out = Vec::new();
        for (id, reached_ms) in ancestry.into_iter().zip(reached) {
            let Some(s) = md.snapshot_by_id(id) else {
                break;
            };
            let summary: BTreeMap<String, String> = s
                .summary()
                .additional_properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.push(Commit {
                snapshot_id: id,
                parent_id: s.parent_snapshot_id(),
                timestamp: millis(s.timestamp_ms()),
                reached_at: millis(reached_ms),
                operation: s.summary().operation.as_str().to_string(),
                message: summary.get(crate::summary::MESSAGE_PROPERTY).cloned(),
                author: summary.get(crate::summary::AUTHOR_PROPERTY).cloned(),
                run_id: summary.get(crate::summary::RUN_ID_PROPERTY).cloned(),
                added_records: summary.get("added-records").and_then(|v| v.parse().ok()),
                total_records: summary.get("total-records").and_then(|v| v.parse().ok()),
                schema_id: s.schema_id(),
                summary,
            });
        }
        Ok(out)
    }
}

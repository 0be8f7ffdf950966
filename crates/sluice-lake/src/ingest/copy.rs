//! Copy mode: a few workers drain a queue of source files; each file's column chunks are
//! copied as they are when the table can keep them, otherwise its rows are decoded, conformed
//! to the table's schema and written again. Either way the observer sees every row once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use iceberg::spec::DataFile;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};

use super::chunk_copy::{ChunkCopier, chunk_copy_blocker};
use super::read::{
    BATCH_ROWS, corrupt_file, dictionary_options, open_reader, stored_strings, undecodable,
    with_dictionaries,
};
use super::{IngestObserver, IngestOptions, IngestProgress, Ingested, Workers, lock};
use crate::catalog::LoadedTable;
use crate::error::Error;
use crate::lake::Lake;
use crate::parquet::ParquetFooter;
use crate::schema::{NanosToMicros, arrow_schema_for, conform_batch, conform_batch_with};
use crate::snapshot_producer::WriteOptions;
use crate::storage::ObjectStores;
use crate::writer::TableWriter;

pub(super) async fn copy<O: IngestObserver>(
    lake: &Lake,
    table: &LoadedTable,
    footers: Vec<ParquetFooter>,
    options: &IngestOptions,
    observer: Option<O>,
) -> Result<Ingested<O>, O::Error> {
    let write = &options.write;
    let schema = arrow_schema_for(table.metadata().current_schema())?;
    // A codec the table names but sluice cannot write fails before any file is read.
    crate::writer::table_codec(table, write)?;
    // Files the table can keep as they are get their column chunks copied; the others are
    // decoded and written again.
    let mut copied_as_is = 0;
    // Rows set aside leave the pages they were in: every file is decoded then.
    let sets_aside = options.quarantine.is_some()
        && observer
            .as_ref()
            .is_some_and(IngestObserver::sets_rows_aside);
    let plan: VecDeque<(ParquetFooter, bool)> = footers
        .into_iter()
        .map(|footer| {
            let as_is = !options.rewrite
                && !sets_aside
                && match chunk_copy_blocker(table, &footer, write) {
                    None => true,
                    Some(reason) => {
                        tracing::debug!(file = %footer.location, %reason, "re-encoding");
                        false
                    }
                };
            copied_as_is += usize::from(as_is);
            (footer, as_is)
        })
        .collect();
    tracing::info!(
        files = plan.len(),
        copied_as_is,
        re_encoded = plan.len() - copied_as_is,
        "copying"
    );
    let workers = options.parallelism.clamp(1, plan.len().max(1));
    let queue = Arc::new(Mutex::new(plan));
    let mut tasks = Workers::new();
    let stop = options.stop.clone();
    // The memory budget of a partitioned table's open files is shared by the workers.
    let per_worker = WriteOptions {
        memory_budget: write.memory_budget / workers,
        ..write.clone()
    };
    let quarantine_schema = match (&options.quarantine, sets_aside) {
        (Some(q), true) => Some(arrow_schema_for(q.table.metadata().current_schema())?),
        _ => None,
    };
    for _ in 0..workers {
        let writer = TableWriter::new(table, &per_worker).await?;
        let aside = match (&options.quarantine, &quarantine_schema) {
            (Some(q), Some(schema)) => Some(Aside {
                writer: TableWriter::new(&q.table, &per_worker).await?,
                schema: schema.clone(),
                run_id: q.run_id.clone(),
                rows: 0,
            }),
            _ => None,
        };
        let worker = CopyWorker {
            stores: lake.stores().clone(),
            table: table.name().to_string(),
            schema: schema.clone(),
            copier: ChunkCopier::new(table, lake.stores(), write)?,
            queue: queue.clone(),
            observer: observer.as_ref().map(O::fork),
            progress: options.progress.clone(),
            nanos: write.nanos,
            stop: stop.clone(),
            aside,
        };
        tasks.spawn(worker.run(writer));
    }
    let mut files = Vec::new();
    let mut quarantine_files = Vec::new();
    let mut quarantined_rows = 0;
    let mut merged = observer;
    let mut rows = 0;
    let mut first_error = None;
    for task in tasks.join().await {
        match task {
            Ok(Ok(done)) => {
                files.extend(done.files);
                rows += done.rows;
                quarantine_files.extend(done.quarantine_files);
                quarantined_rows += done.quarantined_rows;
                if let (Some(m), Some(forked)) = (merged.as_mut(), done.observer) {
                    m.merge(forked)?;
                }
            }
            Ok(Err(e)) => {
                // Stop the other workers early: they drain the same queue.
                lock(&queue).clear();
                first_error.get_or_insert(e);
            }
            Err(join) => {
                lock(&queue).clear();
                first_error.get_or_insert(O::Error::from(Error::WorkerFailed {
                    table: table.name().to_string(),
                    reason: join.to_string(),
                }));
            }
        }
    }
    if first_error.is_none() && options.stopping() {
        first_error = Some(O::Error::from(Error::Stopped {
            table: table.name().to_string(),
        }));
    }
    if let Some(e) = first_error {
        // Written files are not referenced by any snapshot; remove them.
        for f in files.iter().chain(&quarantine_files) {
            if let Ok((store, path)) = lake.stores().resolve(f.file_path()) {
                let _ = store.delete(&path).await;
            }
        }
        return Err(e);
    }
    Ok(Ingested {
        files,
        rows,
        copied_as_is,
        quarantine_files,
        quarantined_rows,
        observer: merged,
    })
}

/// What one worker wrote and saw.
struct WorkerDone<O> {
    files: Vec<DataFile>,
    rows: u64,
    quarantine_files: Vec<DataFile>,
    quarantined_rows: u64,
    observer: Option<O>,
}

/// A worker's writer of the rows its observer sets aside.
struct Aside {
    writer: TableWriter,
    schema: arrow_schema::SchemaRef,
    run_id: String,
    rows: u64,
}

struct CopyWorker<O> {
    stores: ObjectStores,
    table: String,
    schema: arrow_schema::SchemaRef,
    copier: ChunkCopier,
    /// Source files, each with whether its column chunks are copied as they are.
    queue: Arc<Mutex<VecDeque<(ParquetFooter, bool)>>>,
    observer: Option<O>,
    progress: Option<Arc<dyn IngestProgress>>,
    nanos: NanosToMicros,
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    aside: Option<Aside>,
}

impl<O: IngestObserver> CopyWorker<O> {
    async fn run(mut self, mut writer: TableWriter) -> Result<WorkerDone<O>, O::Error> {
        let mut rows = 0u64;
        let mut copied = Vec::new();
        loop {
            // A stop takes effect between source files: the file in hand is finished, so
            // that every file the worker wrote is whole and can be deleted.
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            {
                break;
            }
            let next = lock(&self.queue).pop_front();
            let Some((footer, as_is)) = next else { break };
            let file_rows = if as_is {
                let (file, file_rows) = self.copy_as_is(&footer).await?;
                copied.push(file);
                file_rows
            } else {
                self.re_encode(&footer, &mut writer).await?
            };
            rows += file_rows;
            if let Some(p) = &self.progress {
                p.file_done(&footer.location, file_rows, footer.size);
            }
        }
        let mut files = writer.finish().await?;
        files.extend(copied);
        let (quarantine_files, quarantined_rows) = match self.aside {
            Some(aside) => (aside.writer.finish().await?, aside.rows),
            None => (Vec::new(), 0),
        };
        Ok(WorkerDone {
            files,
            rows,
            quarantine_files,
            quarantined_rows,
            observer: self.observer,
        })
    }

    /// Decodes a file, conforms its batches to the table and writes them with `writer`.
    async fn re_encode(
        &mut self,
        footer: &ParquetFooter,
        writer: &mut TableWriter,
    ) -> Result<u64, O::Error> {
        let corrupt = |e| corrupt_file(footer, e);
        let mut rows = 0u64;
        let mut stream = open_reader(&self.stores, footer)?
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(corrupt)?;
        while let Some(batch) = stream.try_next().await.map_err(corrupt)? {
            rows += self.write_batch(footer, &batch, writer).await?;
        }
        Ok(rows)
    }

    /// Conforms a decoded batch to the table, shows it to the observer and writes the rows it
    /// keeps (setting aside those it rejects); returns the rows written to the table.
    async fn write_batch(
        &mut self,
        footer: &ParquetFooter,
        batch: &arrow_array::RecordBatch,
        writer: &mut TableWriter,
    ) -> Result<u64, O::Error> {
        let batch = conform_batch_with(
            &self.table,
            &footer.location,
            &self.schema,
            batch,
            self.nanos,
        )?;
        let split = match (self.observer.as_mut(), self.aside.is_some()) {
            (Some(observer), true) => observer.observe_split(&batch)?,
            (Some(observer), false) => {
                observer.observe(&batch)?;
                None
            }
            (None, _) => None,
        };
        match (split, self.aside.as_mut()) {
            (Some(set), Some(aside)) => {
                let kept = set.kept.num_rows() as u64;
                writer.write_conformed(set.kept.clone()).await?;
                let rejected = super::aside_batch(
                    &aside.schema,
                    &batch,
                    &set,
                    &aside.run_id,
                    &footer.location,
                )?;
                aside.rows += rejected.num_rows() as u64;
                aside.writer.write(&rejected, &footer.location).await?;
                Ok(kept)
            }
            _ => {
                let rows = batch.num_rows() as u64;
                writer.write_conformed(batch).await?;
                Ok(rows)
            }
        }
    }

    /// Copies a file's column chunks as they are. Every row group is decoded from the bytes
    /// read for the copy, so the file is read once: the observer sees every row (of the columns
    /// it reads), and a page that cannot be decoded fails the ingest before the file reaches
    /// the table, as it would when re-encoding. String columns the observer does not read as
    /// strings are decoded to dictionaries: their pages are checked all the same, without a
    /// string made for every row.
    async fn copy_as_is(&mut self, footer: &ParquetFooter) -> Result<(DataFile, u64), O::Error> {
        let corrupt = |e| corrupt_file(footer, e);
        let (wanted, dictionaries) = match &self.observer {
            Some(o) => (o.columns().unwrap_or_default(), o.dictionary_columns()),
            None => Default::default(),
        };
        let encoded = stored_strings(footer, |c| {
            !wanted.iter().any(|w| w == c) || dictionaries.iter().any(|d| d == c)
        });
        let metadata = ArrowReaderMetadata::try_new(
            footer.metadata.clone(),
            dictionary_options(footer, &encoded),
        )
        .map_err(corrupt)?;
        // The observer gets its columns in the table's types (its dictionary columns as
        // dictionaries), whatever order the file has them in.
        let in_table: Vec<usize> = wanted
            .iter()
            .filter_map(|c| self.schema.index_of(c).ok())
            .collect();
        let projected = self.schema.project(&in_table).map_err(Error::from)?;
        let projected = Arc::new(with_dictionaries(&projected, &encoded));
        let in_file: Vec<usize> = wanted
            .iter()
            .filter_map(|c| footer.schema.index_of(c).ok())
            .collect();
        let mut rows = 0u64;
        let (table, observer) = (&self.table, &mut self.observer);
        let file = self
            .copier
            .copy_file(footer, |index, bytes| {
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    bytes.clone(),
                    metadata.clone(),
                )
                .with_row_groups(vec![index])
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(corrupt)?;
                let mut decoded = 0u64;
                for batch in reader {
                    let batch = batch.map_err(|e| undecodable(footer, e))?;
                    decoded += batch.num_rows() as u64;
                    if let Some(observer) = observer.as_mut() {
                        let batch = batch.project(&in_file).map_err(Error::from)?;
                        observer.observe(&conform_batch(
                            table,
                            &footer.location,
                            &projected,
                            &batch,
                        )?)?;
                    }
                }
                let expected = footer.metadata.row_group(index).num_rows() as u64;
                if decoded != expected {
                    return Err(O::Error::from(corrupt(
                        parquet::errors::ParquetError::General(format!(
                            "row group {index} decodes to {decoded} rows, its footer says {expected}"
                        )),
                    )));
                }
                rows += decoded;
                Ok::<_, O::Error>(())
            })
            .await?;
        Ok((file, rows))
    }
}

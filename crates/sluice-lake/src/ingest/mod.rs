//! Ingest: source parquet files become data files of a table, every row seen once by an
//! observer (the audit) on the way.
//!
//! ```text
//!  footers (read first: a bad file fails before anything is written)
//!     │
//!     ├─ copy ──► per file: chunk copy (pages as they are, decoded once for the observer)
//!     │                     or re-encode (decode → conform to the table → observer → write)
//!     │           a few workers at once, each with a fork of the observer, merged at the end
//!     │
//!     └─ register ──► data files from the footers (no data read); the observer answers what
//!                     it can from their statistics, then reads only the columns it still needs
//! ```
//!
//! Nothing is visible in the table until the returned files are committed with
//! [`Lake::commit_append`]. On error, the files an ingest wrote are deleted; register mode
//! never deletes the files it was given.

mod chunk_copy;
mod copy;
mod read;
pub(crate) mod register;

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use iceberg::spec::DataFile;

use crate::catalog::LoadedTable;
use crate::error::Error;
use crate::lake::Lake;
use crate::parquet::ParquetFooter;
use crate::schema::arrow_schema_for;
use crate::snapshot_producer::WriteOptions;

pub use crate::snapshot_producer::unsupported_table_reason;
pub use crate::writer::table_codec;
pub use chunk_copy::{
    MAX_COPIED_ROW_GROUP_BYTES, MIN_COPIED_ROW_GROUP_BYTES, chunk_copy_blocker, keeps_codec,
};
pub use register::{check_registrable, column_ranges};

/// The rows of `batch` that `aside` sets aside, in the quarantine table's `schema` (columns
/// by name; the extra columns filled from `run_id`, `source` and the reasons).
pub(crate) fn aside_batch(
    schema: &arrow_schema::SchemaRef,
    batch: &RecordBatch,
    aside: &SetAside,
    run_id: &str,
    source: &str,
) -> Result<RecordBatch, Error> {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, StringArray};
    let dropped: arrow_array::BooleanArray =
        aside.keep.iter().map(|k| Some(k == Some(false))).collect();
    let rows = arrow_select::filter::filter_record_batch(batch, &dropped)?;
    let n = rows.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let column: ArrayRef = if name == QUARANTINE_COLUMNS[0] {
            Arc::new(StringArray::from(vec![run_id; n]))
        } else if name == QUARANTINE_COLUMNS[1] {
            Arc::new(StringArray::from(vec![source; n]))
        } else if name == QUARANTINE_COLUMNS[2] {
            let mut list =
                ListBuilder::new(StringBuilder::new()).with_field(match field.data_type() {
                    arrow_schema::DataType::List(item) => item.clone(),
                    _ => Arc::new(arrow_schema::Field::new(
                        "element",
                        arrow_schema::DataType::Utf8,
                        true,
                    )),
                });
            for i in 0..n {
                for check in aside.reasons.get(i).into_iter().flatten() {
                    list.values().append_value(check);
                }
                list.append(true);
            }
            Arc::new(list.finish())
        } else {
            match rows.column_by_name(name) {
                Some(c) if c.data_type() == field.data_type() => c.clone(),
                Some(c) => arrow_cast::cast(c, field.data_type())?,
                None => arrow_array::new_null_array(field.data_type(), n),
            }
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Sees every row an ingest brings into a table (the audit, in a WAP run).
///
/// Copy mode passes every batch, conformed to the table's schema, to [`observe`]; several
/// workers each hold a [`fork`], merged at the end with [`merge`], so `merge` of the states of
/// the parts must equal the state of the whole, in any order. Register mode first offers the
/// new data files' statistics to [`registered`], then reads from the files only the
/// [`columns`] the observer still needs.
///
/// [`observe`]: IngestObserver::observe
/// [`fork`]: IngestObserver::fork
/// [`merge`]: IngestObserver::merge
/// [`registered`]: IngestObserver::registered
/// [`columns`]: IngestObserver::columns
pub trait IngestObserver: Send + Sized + 'static {
    /// The observer's failure; an ingest error converts into it.
    type Error: From<Error> + Send + 'static;

    /// The top-level columns the observer reads from new rows (in register mode, those still
    /// to read after [`IngestObserver::registered`]); `None` when nothing more is needed (register
    /// mode reads no data), `Some(vec![])` when only the row counts of batches matter.
    fn columns(&self) -> Option<Vec<String>>;

    /// String columns of [`IngestObserver::columns`] the observer takes dictionary-encoded
    /// (`Dictionary(Int32, Utf8)`), so that files' dictionary pages need not be decoded to a
    /// string per row. Register mode and files copied as they are hand them over so where the
    /// file stores them as strings.
    fn dictionary_columns(&self) -> Vec<String> {
        Vec::new()
    }

    /// Register mode: the data files made from the footers, with their exact statistics.
    fn registered(&mut self, _table: &LoadedTable, _files: &[DataFile]) -> Result<(), Self::Error> {
        Ok(())
    }

    /// One batch of new rows, in the table's schema: projected to [`IngestObserver::columns`]
    /// in register mode and for files copied as they are, every column when a file is
    /// re-encoded (the batch the table gets).
    fn observe(&mut self, batch: &RecordBatch) -> Result<(), Self::Error>;

    /// An empty observer of the same kind, for another worker.
    fn fork(&self) -> Self;

    /// Folds in what a fork saw.
    fn merge(&mut self, other: Self) -> Result<(), Self::Error>;

    /// Whether [`observe_split`](IngestObserver::observe_split) may set rows aside. Copy mode
    /// then decodes every file (rows cannot be left out of pages copied as they are) and
    /// writes the rows set aside to [`IngestOptions::quarantine`].
    fn sets_rows_aside(&self) -> bool {
        false
    }

    /// [`observe`](IngestObserver::observe), returning the rows of the batch to set aside
    /// instead of writing them to the table.
    fn observe_split(&mut self, batch: &RecordBatch) -> Result<Option<SetAside>, Self::Error> {
        self.observe(batch).map(|()| None)
    }
}

/// Rows of a batch an observer sets aside, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct SetAside {
    /// `true` for the rows the table gets, `false` for those set aside.
    pub keep: arrow_array::BooleanArray,
    /// For each row set aside, in row order: the names of the checks it failed.
    pub reasons: Vec<Vec<String>>,
    /// The batch's rows that `keep` keeps (what the table gets).
    pub kept: RecordBatch,
}

/// The columns a quarantine table has besides the target table's: the run that set the row
/// aside, the source file it came from, and the checks it failed.
pub const QUARANTINE_COLUMNS: [&str; 3] = [
    "_sluice_run_id",
    "_sluice_source_file",
    "_sluice_failed_checks",
];

/// The schema of the quarantine table of a table with `table` as its (arrow) schema: every
/// column, nullable (a row set aside may lack what the table requires), then
/// [`QUARANTINE_COLUMNS`].
pub fn quarantine_schema(table: &arrow_schema::Schema) -> arrow_schema::Schema {
    use arrow_schema::{DataType, Field};
    let mut fields: Vec<Field> = table
        .fields()
        .iter()
        .filter(|f| !QUARANTINE_COLUMNS.contains(&f.name().as_str()))
        .map(|f| {
            Field::new(f.name(), f.data_type().clone(), true).with_metadata(Default::default())
        })
        .collect();
    fields.push(Field::new(QUARANTINE_COLUMNS[0], DataType::Utf8, true));
    fields.push(Field::new(QUARANTINE_COLUMNS[1], DataType::Utf8, true));
    fields.push(Field::new(
        QUARANTINE_COLUMNS[2],
        DataType::List(std::sync::Arc::new(Field::new(
            "element",
            DataType::Utf8,
            true,
        ))),
        true,
    ));
    arrow_schema::Schema::new(fields)
}

/// Where copy mode writes the rows an observer sets aside.
#[derive(Clone, Debug)]
pub struct QuarantineTarget {
    /// The quarantine table (its schema: [`quarantine_schema`] of the target's).
    pub table: LoadedTable,
    /// Written to `_sluice_run_id`.
    pub run_id: String,
}

/// An observer that sees nothing, for ingests without an audit.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl IngestObserver for NoObserver {
    type Error = Error;

    fn columns(&self) -> Option<Vec<String>> {
        None
    }

    fn observe(&mut self, _batch: &RecordBatch) -> Result<(), Error> {
        Ok(())
    }

    fn fork(&self) -> Self {
        NoObserver
    }

    fn merge(&mut self, _other: Self) -> Result<(), Error> {
        Ok(())
    }
}

/// Receives the progress of an ingest (a command line draws a progress bar from it).
pub trait IngestProgress: Send + Sync {
    /// The ingest of `files` files totalling `bytes` bytes starts.
    fn started(&self, _files: usize, _bytes: u64) {}
    /// One file is done.
    fn file_done(&self, _location: &str, _rows: u64, _bytes: u64) {}
    /// The ingest is over.
    fn finished(&self) {}
}

/// How source files become data files of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IngestMode {
    /// Write the rows as new files under the table's data directory: column chunks copied as
    /// they are where [`chunk_copy_blocker`] allows, re-encoded otherwise.
    #[default]
    Copy,
    /// Add the files in place, from their footers.
    Register,
}

/// Options of [`Lake::ingest`].
#[derive(Clone, Default)]
pub struct IngestOptions {
    /// Copy or register.
    pub mode: IngestMode,
    /// How copy mode writes (file size, codec, the run's own directory).
    pub write: WriteOptions,
    /// Copy mode: re-encode every file, even one whose chunks could be copied as they are.
    pub rewrite: bool,
    /// Files read at once (at least 1).
    pub parallelism: usize,
    /// Progress of the files.
    pub progress: Option<Arc<dyn IngestProgress>>,
    /// Set to stop the ingest at its next safe point: every worker finishes the source file in
    /// hand and takes no other, then the files written are deleted and the ingest fails with
    /// [`Error::Stopped`]. (Dropping the ingest instead also stops its workers, at their next
    /// await, but a file being written then may be left half done.)
    pub stop: Option<Arc<AtomicBool>>,
    /// Copy mode: where the rows the observer sets aside go (see
    /// [`IngestObserver::sets_rows_aside`]). Without it, nothing is set aside.
    pub quarantine: Option<QuarantineTarget>,
}

impl IngestOptions {
    /// Whether a stop was asked for.
    pub(crate) fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Worker tasks, aborted when dropped: an ingest dropped before it collected its workers (a
/// caller that gave up on it) leaves none of them writing.
pub(crate) struct Workers<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Workers<T> {
    pub(crate) fn new() -> Self {
        Workers(Vec::new())
    }

    pub(crate) fn spawn(&mut self, work: impl std::future::Future<Output = T> + Send + 'static)
    where
        T: Send + 'static,
    {
        self.0.push(tokio::spawn(work));
    }

    /// Each worker's answer, in the order they were spawned.
    pub(crate) async fn join(mut self) -> Vec<std::result::Result<T, tokio::task::JoinError>> {
        let mut out = Vec::with_capacity(self.0.len());
        for handle in &mut self.0 {
            out.push(handle.await);
        }
        out
    }
}

impl<T> Drop for Workers<T> {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("mode", &self.mode)
            .field("write", &self.write)
            .field("rewrite", &self.rewrite)
            .field("parallelism", &self.parallelism)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

/// What an ingest produced: data files to commit.
#[derive(Debug)]
pub struct Ingested<O> {
    /// The new data files (not yet in any snapshot).
    pub files: Vec<DataFile>,
    /// Rows in them.
    pub rows: u64,
    /// Source files whose column chunks were copied as they are (copy mode).
    pub copied_as_is: usize,
    /// Data files of the quarantine table holding the rows set aside (not yet committed).
    pub quarantine_files: Vec<DataFile>,
    /// Rows set aside.
    pub quarantined_rows: u64,
    /// The observer, having seen every row.
    pub observer: Option<O>,
}

impl Lake {
    /// Turns source files (their footers read with [`crate::parquet::read_footers`]) into data files of
    /// `table`, passing every row through `observer`. The files are not committed: pass them
    /// to [`Lake::commit_append`]. On error, every file this call wrote is deleted.
    pub async fn ingest<O: IngestObserver>(
        &self,
        table: &LoadedTable,
        footers: Vec<ParquetFooter>,
        options: &IngestOptions,
        observer: Option<O>,
    ) -> Result<Ingested<O>, O::Error> {
        let progress = options.progress.clone();
        if let Some(p) = &progress {
            p.started(footers.len(), footers.iter().map(|f| f.size).sum());
        }
        let ingested = match options.mode {
            IngestMode::Copy => copy::copy(self, table, footers, options, observer).await?,
            IngestMode::Register => {
                let files = register::data_files_for(table, &footers).await?;
                let observer = match observer {
                    Some(mut observer) => {
                        observer.registered(table, &files)?;
                        if let Some(columns) = observer.columns() {
                            observer = self
                                .observe_files(
                                    table,
                                    &footers,
                                    &columns,
                                    observer,
                                    options.parallelism,
                                )
                                .await?;
                        }
                        Some(observer)
                    }
                    None => None,
                };
                if let Some(p) = &progress {
                    for (footer, file) in footers.iter().zip(&files) {
                        p.file_done(&footer.location, file.record_count(), footer.size);
                    }
                }
                let rows = files.iter().map(DataFile::record_count).sum();
                Ingested {
                    files,
                    rows,
                    copied_as_is: 0,
                    quarantine_files: Vec::new(),
                    quarantined_rows: 0,
                    observer,
                }
            }
        };
        if let Some(p) = &progress {
            p.finished();
        }
        Ok(ingested)
    }

    /// Reads `columns` of the given files (conformed to `table`'s current schema; the
    /// observer's [`IngestObserver::dictionary_columns`] dictionary-encoded where a file stores
    /// them as strings) into `observer`, a few files at once, each worker with a fork of it.
    pub async fn observe_files<O: IngestObserver>(
        &self,
        table: &LoadedTable,
        footers: &[ParquetFooter],
        columns: &[String],
        observer: O,
        parallelism: usize,
    ) -> Result<O, O::Error> {
        let table_schema = arrow_schema_for(table.metadata().current_schema())?;
        let indices: Vec<usize> = columns
            .iter()
            .filter_map(|c| table_schema.index_of(c).ok())
            .collect();
        let projected = Arc::new(table_schema.project(&indices).map_err(Error::from)?);
        let dictionaries = observer.dictionary_columns();
        let queue = Arc::new(Mutex::new(footers.iter().cloned().collect::<VecDeque<_>>()));
        let name = table.name().to_string();
        let mut tasks = Workers::new();
        for _ in 0..parallelism.clamp(1, footers.len().max(1)) {
            let (stores, queue, projected) =
                (self.stores().clone(), queue.clone(), projected.clone());
            let (columns, name) = (columns.to_vec(), name.clone());
            let dictionaries = dictionaries.clone();
            let mut forked = observer.fork();
            tasks.spawn(async move {
                loop {
                    let next = lock(&queue).pop_front();
                    let Some(footer) = next else { break };
                    let batches = read::read_columns(
                        &stores,
                        &footer,
                        &projected,
                        &columns,
                        &dictionaries,
                        &name,
                    )
                    .await?;
                    for batch in batches {
                        forked.observe(&batch)?;
                    }
                }
                Ok::<_, O::Error>(forked)
            });
        }
        let mut merged = observer;
        for task in tasks.join().await {
            let forked = task.map_err(|e| Error::WorkerFailed {
                table: name.clone(),
                reason: e.to_string(),
            })??;
            merged.merge(forked)?;
        }
        Ok(merged)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! One Write-Audit-Publish run.
//!
//! ```text
//!  list source ── subtract files already in main (the table's ingest ledger)
//!      │ nothing new → nothing_to_do
//!      ▼
//!  transaction(run key) ─────────────────────────────────────────────────────────────┐
//!   write:   stage compensation discard-run{table, sluice/<run-id>, run id, run key} │
//!            read footers (a bad file fails here, before anything is written)         │
//!            create or evolve the table; copy (stream + audit in one pass) or         │
//!            register (footers → stats; read only the columns the checks need);       │
//!            every file written goes under the run's own data/metadata directories    │
//!            commit 1: create the branch + append, summary carries the audit verdict  │
//!   audit:   verdict; a failed error-severity check → rollback (branch deleted)       │
//!   publish: commit 2: fast-forward main, delete the branch and add the run to the    │
//!            ingest ledger, or, when main moved, stage a rebase, re-run the checks    │
//!            against the new main, then publish the same way                          │
//!  any failure → compensations run (also by `recover` after a crash): unless the     │
//!  ledger shows the run published, its branch, snapshots and files are deleted ─────┘
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_checks::{
    AuditReport, CheckSuite, ColumnStats, EvalOptions, Evaluator, StatValue, Status, TableStats,
};
use sluice_lake::iceberg_types::{DataFile, PrimitiveLiteral};
use sluice_lake::{
    AppendRequest, ChunkCopier, Lake, LakeConfig, LedgerEntry, LoadedTable, ParquetFooter,
    PublishKind, RUN_ID_PROPERTY, RUN_KEY_PROPERTY, RebaseOptions, RefName, RefSpec, ScanOptions,
    TableName, WriteOptions, arrow_schema_for, chunk_copy_blocker, conform_batch,
    conform_batch_with, diff_schemas, read_footers, unsupported_columns, unsupported_table_reason,
};
use sluice_txn::{
    Engine, ObjectStoreJournal, Outcome, RecoveryReport, Registry, RetryPolicy, RunFilter,
    RunReport as TxnRunReport, RunSummary, StepError,
};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::report::{RunReport, RunStatus};
use crate::schedule::StopSignal;
use crate::source::{SourceFile, list_source, run_key};

/// Name of the compensation that deletes an audit branch (staged by earlier versions; still
/// run by `recover` for their runs).
pub const DELETE_BRANCH: &str = "delete-branch";
/// Name of the compensation that undoes a run that did not publish: its audit branch, its
/// snapshots and every file it wrote (see [`Lake::discard_run`]).
pub const DISCARD_RUN: &str = "discard-run";

/// How files get into the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rewrite the rows into the warehouse as new parquet files (the audit reads them in the
    /// same pass).
    #[default]
    Copy,
    /// Add the files in place, reading only their footers (and the columns the checks need).
    Register,
}

impl Mode {
    /// `copy` or `register`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Register => "register",
        }
    }
}

/// What to do when incoming files have columns the table lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaChange {
    /// Fail with a readable diff.
    #[default]
    Fail,
    /// Add the new columns to the table as nullable columns.
    AddColumns,
}

/// Receives progress of the write step (the CLI draws a progress bar from it).
pub trait ProgressSink: Send + Sync {
    /// The write of `files` files totalling `bytes` bytes starts.
    fn started(&self, _files: usize, _bytes: u64) {}
    /// One file is done.
    fn file_done(&self, _location: &str, _rows: u64, _bytes: u64) {}
    /// The write is over.
    fn finished(&self) {}
}

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// A directory, a `file://` or `s3://` prefix, or a single parquet file.
    pub source: String,
    /// The target table (created from the first file's schema if missing).
    pub table: TableName,
    /// Checks to audit the new rows with (none: every batch is publishable).
    pub checks: Option<CheckSuite>,
    /// Copy or register.
    pub mode: Mode,
    /// Commit message (`sluice.message`).
    pub message: Option<String>,
    /// Author (`sluice.author`).
    pub author: Option<String>,
    /// Schema drift policy.
    pub on_schema_change: SchemaChange,
    /// Ingest only these files (backfill batches); `None`: everything new under `source`.
    pub files: Option<Vec<SourceFile>>,
    /// Failing rows kept per check.
    pub sample_size: usize,
    /// Columns added to every failing-row sample.
    pub key_columns: Vec<String>,
    /// Files processed at once.
    pub parallelism: usize,
    /// Copy-mode file layout.
    pub write: WriteOptions,
    /// Copy mode: re-encode every file, also those whose column chunks the table could keep as
    /// they are (see [`sluice_lake::chunk_copy_blocker`]).
    pub rewrite: bool,
    /// Progress receiver.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Crash testing: stop (wait for an hour) at this point of the run, so that a test can
    /// kill or abort it there. See the `SLUICE_PAUSE_AT` points.
    pub pause_at: Option<String>,
    /// Raised (e.g. on Ctrl-C or SIGTERM), the run stops at its next safe point: before
    /// publishing it rolls back and reports [`RunStatus::Interrupted`]; a publish already
    /// under way is finished.
    pub cancel: StopSignal,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("source", &self.source)
            .field("table", &self.table)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Defaults: copy mode, no checks, fail on schema drift, one file per core at once.
    pub fn new(source: impl Into<String>, table: TableName) -> Self {
        RunOptions {
            source: source.into(),
            table,
            checks: None,
            mode: Mode::Copy,
            message: None,
            author: None,
            on_schema_change: SchemaChange::Fail,
            files: None,
            sample_size: 5,
            key_columns: Vec::new(),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            write: WriteOptions::default(),
            rewrite: false,
            progress: None,
            pause_at: None,
            cancel: StopSignal::new(),
        }
    }
}

/// Where the lake and the run journal are.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Catalog and storage.
    pub lake: LakeConfig,
    /// Journal location (a local directory or an `s3://` prefix).
    pub journal: String,
    /// How long a run's lease lives without renewal; a crashed run can be recovered after it.
    pub lease_ttl: Duration,
}

/// The Write-Audit-Publish pipeline over one lake and one journal.
pub struct Pipeline {
    lake: Arc<Lake>,
    engine: Engine,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("lake", &self.lake)
            .finish_non_exhaustive()
    }
}

/// What the write step produced (journalled as the step's output).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Written {
    snapshot_id: i64,
    base: Option<i64>,
    rows: u64,
    data_files: usize,
    /// Copy mode: source files whose column chunks were copied as they are.
    #[serde(default)]
    copied_as_is: usize,
    properties: HashMap<String, String>,
    /// The source files, for the ingest ledger and a re-audit after a rebase.
    #[serde(default)]
    sources: Vec<String>,
    audit: Option<AuditReport>,
}

impl Written {
    /// What the publish adds to the table's ingest ledger.
    fn ledger_entry(&self) -> LedgerEntry {
        let files = if self.sources.is_empty() {
            // Written by an earlier version, which kept the list in the summary properties.
            self.properties
                .get(sluice_lake::SOURCE_FILES_PROPERTY)
                .map(|s| {
                    s.lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            self.sources.clone()
        };
        LedgerEntry {
            run_key: self
                .properties
                .get(RUN_KEY_PROPERTY)
                .cloned()
                .unwrap_or_default(),
            files,
        }
    }
}

/// What the publish step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Published {
    snapshot_id: i64,
    kind: PublishKind,
    audit: Option<AuditReport>,
}

#[derive(Default)]
struct RunState {
    step: Option<String>,
    written: Option<Written>,
    published: Option<Published>,
    audit_failed: Option<AuditReport>,
    /// Each finished step and how long it took.
    timings: Vec<(String, Duration)>,
}

fn step_error(e: impl Into<Error>) -> StepError {
    let e: Error = e.into();
    let transient = match &e {
        Error::Lake(l) => l.is_retryable(),
        _ => false,
    };
    if transient {
        StepError::transient(e)
    } else {
        StepError::permanent(e)
    }
}

/// Crash testing: with `SLUICE_PAUSE_AT=<point>` in the environment, a run announces on stderr
/// that it reached `<point>` and waits there, so that a test can kill the process at a known
/// place. Points: `write` (data files written, branch not committed), `after-write`, `audit`,
/// `publish` (before the publish commit), `after-publish` (published, transaction not yet
/// committed).
/// [`RunOptions::pause_at`] does the same for a run in this process.
async fn pause_point(options: &RunOptions, point: &str) {
    if options.pause_at.as_deref() == Some(point)
        || std::env::var("SLUICE_PAUSE_AT").is_ok_and(|p| p == point)
    {
        let secs = std::env::var("SLUICE_PAUSE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3600);
        eprintln!("sluice: paused at {point}");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            _ = options.cancel.stopped() => {}
        }
    }
}

/// Runs `work` unless the run is asked to stop first. Dropping `work` at one of its await
/// points is safe before publishing: nothing it wrote is reachable from `main`, and the
/// compensation staged before it removes the audit branch.
async fn unless_cancelled<T>(
    options: &RunOptions,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        biased;
        _ = options.cancel.stopped() => Err(Error::Interrupted),
        result = work => result,
    }
}

/// A safe point between steps: the run stops here if it was asked to.
fn check_cancelled(options: &RunOptions) -> std::result::Result<(), StepError> {
    if options.cancel.is_stopped() {
        Err(step_error(Error::Interrupted))
    } else {
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pipeline {
    /// Connects to the lake and opens the journal.
    pub async fn open(config: &PipelineConfig) -> Result<Pipeline> {
        let lake = Arc::new(Lake::connect(&config.lake).await?);
        let (store, prefix) = lake.stores().resolve(&config.journal)?;
        let journal = ObjectStoreJournal::new(store, prefix);
        let handler_lake = lake.clone();
        let discard_lake = lake.clone();
        let registry = Registry::new().with_handler(DELETE_BRANCH, move |payload| {
            let lake = handler_lake.clone();
            async move {
                let table: TableName = payload["table"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| StepError::permanent(format!("bad delete-branch payload: {e}")))?;
                let branch = RefName::new(payload["branch"].as_str().unwrap_or_default())
                    .map_err(|e| StepError::permanent(format!("bad delete-branch payload: {e}")))?;
                match lake.delete_ref_if_exists(&table, &branch).await {
                    Ok(deleted) => {
                        tracing::info!(%table, %branch, deleted, "audit branch removed");
                        Ok(())
                    }
                    Err(e) => Err(step_error(e)),
                }
            }
        });
        let registry = registry.with_handler(DISCARD_RUN, move |payload| {
            let lake = discard_lake.clone();
            async move { discard_run(&lake, &payload).await }
        });
        let engine = Engine::builder(journal)
            .registry(registry)
            .lease_ttl(config.lease_ttl)
            .build();
        Ok(Pipeline { lake, engine })
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Finishes or rolls back what dead processes left open.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        Ok(self.engine.recover().await?)
    }

    /// Past runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        Ok(self.engine.list_runs(filter).await?)
    }

    /// One run with its steps, attempts, errors and compensations.
    pub async fn show_run(&self, run_id: Uuid) -> Result<TxnRunReport> {
        Ok(self.engine.show_run(run_id).await?)
    }

    /// The source files not yet in `main`.
    pub async fn pending_files(&self, source: &str, table: &TableName) -> Result<Vec<SourceFile>> {
        let listed = list_source(&self.lake, source).await?;
        self.not_yet_published(table, listed).await
    }

    /// Drops the files `main` of the table has already published (its ingest ledger).
    async fn not_yet_published(
        &self,
        table: &TableName,
        listed: Vec<SourceFile>,
    ) -> Result<Vec<SourceFile>> {
        let locations: Vec<String> = listed.iter().map(|f| f.location.clone()).collect();
        let done = self.lake.published_files(table, &locations).await?;
        Ok(listed
            .into_iter()
            .filter(|f| !done.contains(&f.location))
            .collect())
    }

    /// Runs the checks against a ref of a table (an ad-hoc audit; nothing changes).
    pub async fn audit_ref(
        &self,
        table: &TableName,
        spec: &RefSpec,
        suite: &CheckSuite,
        options: EvalOptions,
    ) -> Result<AuditReport> {
        let resolved = self.lake.resolve(table, spec).await?;
        let mut evaluator = suite.evaluator(&resolved.schema, options);
        let columns = evaluator.required_columns();
        if evaluator.needs_data() {
            let (_, stream) = self
                .lake
                .scan(
                    table,
                    spec,
                    &ScanOptions {
                        columns: Some(columns),
                        batch_size: Some(64 * 1024),
                    },
                )
                .await?;
            let mut stream = stream;
            while let Some(batch) = stream.try_next().await? {
                evaluator.update(&batch)?;
            }
        }
        Ok(evaluator.finish())
    }

    /// One Write-Audit-Publish run. `Err` only when the run could not start (the source cannot
    /// be listed, the journal is unusable); every failure after that is a report with status
    /// `failed` or `audit_failed`, and nothing was published.
    pub async fn run(&self, options: &RunOptions) -> Result<RunReport> {
        let started = Instant::now();
        let commits_before = self.lake.commits_made();
        let table = &options.table;
        let mut report = RunReport::new(String::new(), table.to_string(), options.mode.as_str());
        let listed = match &options.files {
            Some(files) => files.clone(),
            None => list_source(&self.lake, &options.source).await?,
        };
        let files = self.not_yet_published(table, listed).await?;
        report.time("list", started);
        report.files = files.iter().map(|f| f.location.clone()).collect();
        if files.is_empty() {
            report.status = RunStatus::NothingToDo;
            return Ok(report);
        }
        let key = run_key(table, &files);
        report.run_key = Some(key.clone());

        let state = Mutex::new(RunState::default());
        let state = &state;
        let files = &files;
        let key_ref = &key;
        let outcome = self
            .engine
            .transaction(key.clone())
            .name(format!("run {table}"))
            .params(json!({
                "table": table.to_string(),
                "source": options.source,
                "mode": options.mode.as_str(),
                "files": files.len(),
            }))
            .run(async |tx| {
                let run_id = tx.run_id().to_string();
                let branch = RefName::new(format!("sluice/{run_id}")).map_err(step_error)?;
                let branch = &branch;
                lock(state).step = Some("write".into());
                let write_started = Instant::now();
                let written: Written = tx
                    .step("write")
                    .retry(RetryPolicy::no_retry())
                    .run(async |step| {
                        // Journalled before anything is written: whatever happens next, a
                        // rollback or `recover` can find the branch and the run's files.
                        step.stage_compensation(
                            DISCARD_RUN,
                            json!({
                                "table": table.to_string(),
                                "branch": branch.to_string(),
                                "run_id": run_id,
                                "run_key": key_ref,
                            }),
                        )
                        .await
                        .map_err(step_error)?;
                        unless_cancelled(
                            options,
                            self.write(options, files, branch, &run_id, key_ref),
                        )
                        .await
                        .map_err(step_error)
                    })
                    .await?;
                pause_point(options, "after-write").await;
                check_cancelled(options)?;
                {
                    let mut s = lock(state);
                    s.timings.push(("write".into(), write_started.elapsed()));
                    s.written = Some(written.clone());
                    s.step = Some("audit".into());
                }
                let audit_started = Instant::now();
                let verdict: bool = tx
                    .step("audit")
                    .run(async |_| {
                        pause_point(options, "audit").await;
                        Ok(written.audit.as_ref().is_none_or(AuditReport::publishable))
                    })
                    .await?;
                lock(state)
                    .timings
                    .push(("audit".into(), audit_started.elapsed()));
                check_cancelled(options)?;
                if !verdict {
                    let audit = written.audit.clone();
                    let failing = audit.as_ref().map(failing_checks).unwrap_or_default();
                    lock(state).audit_failed = audit;
                    return Err(StepError::permanent(format!("audit failed: {failing}")));
                }
                lock(state).step = Some("publish".into());
                let publish_started = Instant::now();
                let published: Published = tx
                    .step("publish")
                    .retry(RetryPolicy::new(5).with_base_delay(Duration::from_millis(50)))
                    .run(async |_| {
                        pause_point(options, "publish").await;
                        self.publish(options, branch, &written, state).await
                    })
                    .await?;
                pause_point(options, "after-publish").await;
                {
                    let mut s = lock(state);
                    s.timings
                        .push(("publish".into(), publish_started.elapsed()));
                    s.published = Some(published.clone());
                }
                Ok(json!({
                    "snapshot_id": published.snapshot_id,
                    "rows": written.rows,
                    "publish": published.kind,
                }))
            })
            .await?;

        let mut s = lock(state);
        report.run_id = outcome.run_id().to_string();
        report.branch = Some(format!("sluice/{}", outcome.run_id()));
        for (step, took) in s.timings.drain(..) {
            report.record(&step, took);
        }
        if let Some(w) = &s.written {
            report.rows = w.rows;
            report.copied_as_is = w.copied_as_is;
            report.audit = w.audit.clone();
        }
        match outcome {
            Outcome::Committed { .. } => {
                let published = s.published.take();
                report.status = RunStatus::Published;
                if let Some(p) = published {
                    report.snapshot_id = Some(p.snapshot_id);
                    report.publish = Some(p.kind);
                    if p.audit.is_some() {
                        report.audit = p.audit;
                    }
                }
            }
            Outcome::Skipped { committed_run, .. } => {
                report.status = RunStatus::NothingToDo;
                report.error = Some(format!(
                    "these files were already published by run {committed_run}"
                ));
            }
            Outcome::RolledBack { error, .. } => {
                if options.cancel.is_stopped() && s.audit_failed.is_none() {
                    report.status = RunStatus::Interrupted;
                    report.failed_step = s.step.clone();
                } else if let Some(audit) = s.audit_failed.take() {
                    report.status = RunStatus::AuditFailed;
                    report.audit = Some(audit);
                    report.failed_step = Some("audit".into());
                } else {
                    report.status = RunStatus::Failed;
                    report.failed_step = s.step.clone();
                }
                report.error = Some(error);
            }
            Outcome::Failed {
                error,
                failed_hooks,
                ..
            } => {
                report.status = RunStatus::Failed;
                report.failed_step = s.step.clone();
                let hooks: Vec<String> = failed_hooks.iter().map(|h| h.name.clone()).collect();
                report.error = Some(format!(
                    "{error}; undoing it failed too ({}); run `sluice recover` to finish the rollback",
                    hooks.join(", ")
                ));
            }
            _ => {
                report.status = RunStatus::Failed;
                report.error = Some("the transaction ended in an unknown state".into());
            }
        }
        report.time("total", started);
        report.commits = self.lake.commits_made() - commits_before;
        Ok(report)
    }

    async fn write(
        &self,
        options: &RunOptions,
        files: &[SourceFile],
        branch: &RefName,
        run_id: &str,
        key: &str,
    ) -> Result<Written> {
        let lake = &self.lake;
        let name = &options.table;
        let locations: Vec<String> = files.iter().map(|f| f.location.clone()).collect();
        // Every footer first: a corrupt file fails the run before anything is written.
        let footers = read_footers(lake.stores(), &locations).await?;
        // A column Iceberg cannot store fails the run naming the file and every such column,
        // before a table is created or changed.
        for footer in &footers {
            let problems = unsupported_columns(&footer.schema);
            if !problems.is_empty() {
                return Err(sluice_lake::Error::UnsupportedColumns {
                    path: footer.location.clone(),
                    problems: problems.join("; "),
                }
                .into());
            }
        }
        let mut table = match lake.load_table(name).await {
            Ok(t) => t,
            Err(sluice_lake::Error::TableNotFound { .. }) => match lake
                .create_table(name, &footers[0].schema)
                .await
            {
                Ok(t) => t,
                Err(sluice_lake::Error::TableAlreadyExists { .. }) => lake.load_table(name).await?,
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        if let Some(reason) = unsupported_table_reason(&table) {
            return Err(sluice_lake::Error::CannotPublish {
                table: name.to_string(),
                source_ref: branch.to_string(),
                target: RefName::main().to_string(),
                reason: reason.to_string(),
            }
            .into());
        }
        table = self.reconcile_schema(options, table, &footers).await?;
        let table_schema = arrow_schema_for(table.metadata().current_schema())?;
        // The branch is cut from the main the table-scoped checks are run against; if main
        // moves later, publishing rebases and runs them again.
        let base = lake.resolve(name, &RefSpec::main()).await?.snapshot_id;
        let mut evaluator = options.checks.as_ref().map(|suite| {
            suite.evaluator(
                &table_schema,
                EvalOptions::default()
                    .with_sample_size(options.sample_size)
                    .with_key_columns(options.key_columns.clone()),
            )
        });
        if let (Some(ev), Some(base)) = (evaluator.as_mut(), base) {
            observe_existing(lake, name, &RefSpec::Snapshot(base), ev).await?;
        }

        let progress = options.progress.clone();
        if let Some(p) = &progress {
            p.started(files.len(), files.iter().map(|f| f.size).sum());
        }
        let mut copied_as_is = 0;
        let (data_files, evaluator, rows) = match options.mode {
            Mode::Copy => {
                let copied = self
                    .copy(options, run_id, &table, &table_schema, footers, evaluator)
                    .await?;
                copied_as_is = copied.copied_as_is;
                (copied.files, copied.evaluator, copied.rows)
            }
            Mode::Register => {
                let data_files = lake.data_files_from_footers(&table, &footers).await?;
                let evaluator = match evaluator {
                    Some(mut ev) => {
                        let stats = stats_of(&table, &data_files);
                        let answered = ev.apply_stats(&stats)?;
                        tracing::debug!(?answered, "checks answered from footer statistics");
                        if ev.needs_data() {
                            ev = read_for_audit(
                                lake,
                                &table_schema,
                                &footers,
                                ev,
                                options.parallelism,
                                name,
                            )
                            .await?;
                        }
                        Some(ev)
                    }
                    None => None,
                };
                if let Some(p) = &progress {
                    for (f, d) in footers.iter().zip(&data_files) {
                        p.file_done(&f.location, d.record_count(), f.size);
                    }
                }
                let rows = data_files.iter().map(|d| d.record_count()).sum();
                (data_files, evaluator, rows)
            }
        };
        if let Some(p) = &progress {
            p.finished();
        }
        let audit = evaluator.map(Evaluator::finish);
        let mut properties = HashMap::from([
            (RUN_ID_PROPERTY.to_string(), run_id.to_string()),
            (RUN_KEY_PROPERTY.to_string(), key.to_string()),
            (
                "sluice.source-file-count".to_string(),
                files.len().to_string(),
            ),
            ("sluice.mode".to_string(), options.mode.as_str().to_string()),
            (
                "sluice.audit".to_string(),
                audit
                    .as_ref()
                    .map(audit_summary)
                    .unwrap_or_else(|| "no checks".to_string()),
            ),
            (
                "sluice.message".to_string(),
                options.message.clone().unwrap_or_else(|| {
                    format!("ingest {} file(s) from {}", files.len(), options.source)
                }),
            ),
        ]);
        if let Some(author) = &options.author {
            properties.insert("sluice.author".to_string(), author.clone());
        }
        let data_file_count = data_files.len();
        pause_point(options, "write").await;
        let outcome = lake
            .commit_append(
                name,
                AppendRequest {
                    branch: branch.clone(),
                    create_from: Some(base.map(RefSpec::Snapshot).unwrap_or_else(RefSpec::main)),
                    files: data_files,
                    properties: properties.clone(),
                },
            )
            .await?;
        Ok(Written {
            snapshot_id: outcome.snapshot_id,
            base,
            rows,
            data_files: data_file_count,
            copied_as_is,
            properties,
            sources: locations,
            audit,
        })
    }

    /// Fails on drift, or adds the new columns when allowed. Type changes and missing required
    /// columns always fail, naming the file.
    async fn reconcile_schema(
        &self,
        options: &RunOptions,
        table: LoadedTable,
        footers: &[ParquetFooter],
    ) -> Result<LoadedTable> {
        let table_schema = arrow_schema_for(table.metadata().current_schema())?;
        let mut new_columns: Vec<arrow_schema::Field> = Vec::new();
        for footer in footers {
            let diff = diff_schemas(&table_schema, &footer.schema);
            if !diff.only_additions() {
                let d = sluice_lake::SchemaDiff {
                    extra: Vec::new(),
                    extra_nested: Vec::new(),
                    ..diff
                };
                return Err(Error::SchemaDrift(format!(
                    "schema of {} does not match table {}: {}",
                    footer.location,
                    options.table,
                    d.describe()
                )));
            }
            if !diff.is_compatible() && options.on_schema_change == SchemaChange::Fail {
                return Err(Error::SchemaDrift(format!(
                    "schema of {} does not match table {}: {}",
                    footer.location,
                    options.table,
                    diff.describe()
                )));
            }
            // A struct column with new fields is passed whole: the table adds what it lacks.
            for f in diff
                .extra
                .into_iter()
                .chain(diff.extra_nested.into_iter().map(|(_, top)| top))
            {
                match new_columns.iter_mut().find(|c| c.name() == f.name()) {
                    // Several files may each bring other new fields of the same struct.
                    Some(existing) => {
                        if let Some(merged) = merged_struct(existing, &f) {
                            *existing = merged;
                        }
                    }
                    None => new_columns.push(f),
                }
            }
        }
        if new_columns.is_empty() {
            return Ok(table);
        }
        tracing::info!(table = %options.table, columns = ?new_columns.iter().map(|f| f.name()).collect::<Vec<_>>(), "adding columns");
        self.lake.add_columns(&options.table, &new_columns).await?;
        Ok(self.lake.load_table(&options.table).await?)
    }

    async fn copy(
        &self,
        options: &RunOptions,
        run_id: &str,
        table: &LoadedTable,
        table_schema: &arrow_schema::SchemaRef,
        footers: Vec<ParquetFooter>,
        evaluator: Option<Evaluator>,
    ) -> Result<Copied> {
        // Every data file goes under the run's own directory, so that a rollback (or `recover`
        // after a crash) can delete what the run wrote.
        let write = WriteOptions {
            run_id: Some(run_id.to_string()),
            ..options.write.clone()
        };
        // Files the table can keep as they are get their column chunks copied; the others
        // are decoded and written again.
        let mut copied_as_is = 0;
        let plan: VecDeque<(ParquetFooter, bool)> = footers
            .into_iter()
            .map(|footer| {
                let as_is = !options.rewrite
                    && match chunk_copy_blocker(table, &footer, &write) {
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
        let mut tasks = Vec::with_capacity(workers);
        for _ in 0..workers {
            let writer = self.lake.table_writer(table, &write).await?;
            let worker = CopyWorker {
                lake: self.lake.clone(),
                table: options.table.to_string(),
                schema: table_schema.clone(),
                copier: self.lake.chunk_copier(table, &write)?,
                queue: queue.clone(),
                evaluator: evaluator.as_ref().map(Evaluator::fork),
                progress: options.progress.clone(),
                nanos: options.write.nanos,
            };
            tasks.push(tokio::spawn(worker.run(writer)));
        }
        let mut files = Vec::new();
        let mut merged = evaluator;
        let mut rows = 0;
        let mut first_error = None;
        for task in tasks {
            match task.await {
                Ok(Ok((f, ev, r))) => {
                    files.extend(f);
                    rows += r;
                    if let (Some(m), Some(ev)) = (merged.as_mut(), ev) {
                        m.merge(ev)?;
                    }
                }
                Ok(Err(e)) => {
                    // Stop the other workers early: they drain the same queue.
                    lock(&queue).clear();
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    lock(&queue).clear();
                    first_error.get_or_insert(Error::Source {
                        source_url: options.source.clone(),
                        reason: format!("a writer task failed: {join}"),
                    });
                }
            }
        }
        if let Some(e) = first_error {
            // Written files are not referenced by any snapshot; remove them.
            for f in &files {
                if let Ok((store, path)) = self.lake.stores().resolve(f.file_path()) {
                    let _ = store.delete(&path).await;
                }
            }
            return Err(e);
        }
        Ok(Copied {
            files,
            evaluator: merged,
            rows,
            copied_as_is,
        })
    }

    async fn publish(
        &self,
        options: &RunOptions,
        branch: &RefName,
        written: &Written,
        state: &Mutex<RunState>,
    ) -> Result<Published, StepError> {
        let lake = &self.lake;
        let name = &options.table;
        let main = RefName::main();
        let ingested = written.ledger_entry();
        // A run that published before it crashed (or whose publish answer was lost) is
        // recognised by its run key in the ledger.
        if lake
            .run_key_published(name, &ingested.run_key)
            .await
            .map_err(step_error)?
        {
            lake.delete_ref_if_exists(name, branch)
                .await
                .map_err(step_error)?;
            let head = lake
                .resolve(name, &RefSpec::main())
                .await
                .map_err(step_error)?
                .snapshot_id
                .unwrap_or_default();
            return Ok(Published {
                snapshot_id: head,
                kind: PublishKind::UpToDate,
                audit: None,
            });
        }
        match lake
            .fast_forward_and_delete(name, &main, branch, Some(&ingested))
            .await
        {
            Ok(outcome) => {
                return Ok(Published {
                    snapshot_id: outcome.snapshot_id,
                    kind: outcome.kind,
                    audit: None,
                });
            }
            Err(sluice_lake::Error::CannotPublish { .. }) => {}
            Err(e) => return Err(step_error(e)),
        }
        // main moved since the branch was cut: re-apply our appends on top of it, audit the
        // result against the new main, and only then move main.
        let mut properties = written.properties.clone();
        properties.remove(sluice_lake::COMMIT_ID_PROPERTY);
        let staged = lake
            .rebase_appends(
                name,
                &main,
                branch,
                RebaseOptions {
                    properties,
                    stage: true,
                },
            )
            .await
            .map_err(step_error)?;
        let mut audit = None;
        if let Some(suite) = &options.checks {
            let report = self
                .reaudit(options, suite, branch, &ingested.files, staged.parent_id)
                .await
                .map_err(step_error)?;
            if !report.publishable() {
                let failing = failing_checks(&report);
                lock(state).audit_failed = Some(report);
                return Err(StepError::permanent(format!(
                    "audit failed after rebasing onto the new main: {failing}"
                )));
            }
            audit = Some(report);
        }
        match lake
            .publish_staged_and_delete(name, &main, staged.snapshot_id, branch, Some(&ingested))
            .await
        {
            Ok(outcome) => Ok(Published {
                snapshot_id: outcome.snapshot_id,
                kind: PublishKind::Rebase,
                audit,
            }),
            // main moved again: the step is retried (a new rebase).
            Err(e) => Err(step_error(e)),
        }
    }

    /// The checks again, over the branch's rows, with the new main as the existing rows.
    async fn reaudit(
        &self,
        options: &RunOptions,
        suite: &CheckSuite,
        branch: &RefName,
        sources: &[String],
        new_main: Option<i64>,
    ) -> Result<AuditReport> {
        let lake = &self.lake;
        let name = &options.table;
        let spec = RefSpec::parse(branch.as_str())?;
        let resolved = lake.resolve(name, &spec).await?;
        let mut ev = suite.evaluator(
            &resolved.schema,
            EvalOptions::default()
                .with_sample_size(options.sample_size)
                .with_key_columns(options.key_columns.clone()),
        );
        if let Some(main) = new_main {
            observe_existing(lake, name, &RefSpec::Snapshot(main), &mut ev).await?;
        }
        // Only the rows this run added (the branch also holds the rows of the old main).
        let columns = ev.required_columns();
        for batch in self.read_sources(options, sources, &columns).await? {
            ev.update(&batch)?;
        }
        Ok(ev.finish())
    }

    /// Reads the rows the run appended, from its source files.
    async fn read_sources(
        &self,
        options: &RunOptions,
        locations: &[String],
        columns: &[String],
    ) -> Result<Vec<arrow_array::RecordBatch>> {
        let table = self.lake.load_table(&options.table).await?;
        let schema = arrow_schema_for(table.metadata().current_schema())?;
        // In register mode the appended files are the source files; in copy mode their rows
        // are identical to the source files' rows, so reading the sources is equivalent.
        let footers = read_footers(self.lake.stores(), locations).await?;
        let indices: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let projected = Arc::new(schema.project(&indices)?);
        let mut out = Vec::new();
        for f in &footers {
            out.extend(
                read_columns(
                    &self.lake,
                    f,
                    &projected,
                    columns,
                    &options.table.to_string(),
                )
                .await?,
            );
        }
        Ok(out)
    }
}

/// The `discard-run` compensation: unless the ledger shows that the run published (it may
/// have, if the process died between the publish commit and the journal's commit record),
/// deletes its branch, its snapshots and every file it wrote. Idempotent.
async fn discard_run(lake: &Lake, payload: &serde_json::Value) -> Result<(), StepError> {
    let field = |key: &str| {
        payload[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| StepError::permanent(format!("bad discard-run payload: no `{key}`")))
    };
    let table: TableName = field("table")?
        .parse()
        .map_err(|e| StepError::permanent(format!("bad discard-run payload: {e}")))?;
    let branch = RefName::new(field("branch")?)
        .map_err(|e| StepError::permanent(format!("bad discard-run payload: {e}")))?;
    let (run_id, run_key) = (field("run_id")?, field("run_key")?);
    if lake
        .run_key_published(&table, &run_key)
        .await
        .map_err(step_error)?
    {
        // Published: the files are main's now. Only the branch may be left.
        let deleted = lake
            .delete_ref_if_exists(&table, &branch)
            .await
            .map_err(step_error)?;
        tracing::info!(%table, %branch, deleted, "run had published; nothing else to undo");
        return Ok(());
    }
    let discarded = lake
        .discard_run(&table, &branch, &run_id)
        .await
        .map_err(step_error)?;
    tracing::info!(
        %table,
        %branch,
        branch_deleted = discarded.branch_deleted,
        snapshots = discarded.snapshots_removed,
        files = discarded.files_deleted,
        "run discarded"
    );
    Ok(())
}

/// What copy mode wrote.
struct Copied {
    files: Vec<DataFile>,
    evaluator: Option<Evaluator>,
    rows: u64,
    copied_as_is: usize,
}

struct CopyWorker {
    lake: Arc<Lake>,
    table: String,
    schema: arrow_schema::SchemaRef,
    copier: ChunkCopier,
    /// Source files, each with whether its column chunks are copied as they are.
    queue: Arc<Mutex<VecDeque<(ParquetFooter, bool)>>>,
    evaluator: Option<Evaluator>,
    progress: Option<Arc<dyn ProgressSink>>,
    nanos: sluice_lake::NanosToMicros,
}

impl CopyWorker {
    async fn run(
        mut self,
        mut writer: sluice_lake::TableWriter,
    ) -> Result<(Vec<DataFile>, Option<Evaluator>, u64)> {
        let mut rows = 0u64;
        let mut copied = Vec::new();
        loop {
            let next = lock(&self.queue).pop_front();
            let Some((footer, as_is)) = next else { break };
            if as_is {
                let (file, file_rows) = self.copy_as_is(&footer).await?;
                copied.push(file);
                rows += file_rows;
                if let Some(p) = &self.progress {
                    p.file_done(&footer.location, file_rows, footer.size);
                }
                continue;
            }
            let corrupt = |e| corrupt_file(&footer, e);
            let mut stream = open_reader(&self.lake, &footer)?
                .with_batch_size(64 * 1024)
                .build()
                .map_err(corrupt)?;
            let mut file_rows = 0u64;
            while let Some(batch) = stream.try_next().await.map_err(corrupt)? {
                let batch = conform_batch_with(
                    &self.table,
                    &footer.location,
                    &self.schema,
                    &batch,
                    self.nanos,
                )?;
                if let Some(ev) = self.evaluator.as_mut() {
                    ev.update(&batch)?;
                }
                file_rows += batch.num_rows() as u64;
                writer.write(&batch, &footer.location).await?;
            }
            rows += file_rows;
            if let Some(p) = &self.progress {
                p.file_done(&footer.location, file_rows, footer.size);
            }
        }
        let mut files = writer.finish().await?;
        files.extend(copied);
        Ok((files, self.evaluator, rows))
    }

    /// Copies a file's column chunks as they are. Every row group is decoded from the bytes
    /// read for the copy, so the file is read once: the audit sees every row, and a page that
    /// cannot be decoded fails the run before the file reaches the table, as it would when
    /// re-encoding.
    async fn copy_as_is(&mut self, footer: &ParquetFooter) -> Result<(DataFile, u64)> {
        let corrupt = |e| corrupt_file(footer, e);
        let metadata =
            ArrowReaderMetadata::try_new(footer.metadata.clone(), ArrowReaderOptions::new())
                .map_err(corrupt)?;
        let mut rows = 0u64;
        let (table, schema, evaluator) = (&self.table, &self.schema, &mut self.evaluator);
        let file = self
            .copier
            .copy_file(footer, |index, bytes| {
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    bytes.clone(),
                    metadata.clone(),
                )
                .with_row_groups(vec![index])
                .with_batch_size(64 * 1024)
                .build()
                .map_err(corrupt)?;
                let mut decoded = 0u64;
                for batch in reader {
                    let batch = batch.map_err(|e| undecodable(footer, e))?;
                    decoded += batch.num_rows() as u64;
                    if let Some(ev) = evaluator.as_mut() {
                        ev.update(&conform_batch(table, &footer.location, schema, &batch)?)?;
                    }
                }
                let expected = footer.metadata.row_group(index).num_rows() as u64;
                if decoded != expected {
                    return Err(corrupt(parquet::errors::ParquetError::General(format!(
                        "row group {index} decodes to {decoded} rows, its footer says {expected}"
                    ))));
                }
                rows += decoded;
                Ok::<_, Error>(())
            })
            .await?;
        Ok((file, rows))
    }
}

async fn observe_existing(
    lake: &Lake,
    name: &TableName,
    spec: &RefSpec,
    ev: &mut Evaluator,
) -> Result<()> {
    let columns = ev.existing_columns();
    if columns.is_empty() {
        return Ok(());
    }
    let (_, mut stream) = lake
        .scan(
            name,
            spec,
            &ScanOptions {
                columns: Some(columns),
                batch_size: Some(64 * 1024),
            },
        )
        .await?;
    while let Some(batch) = stream.try_next().await? {
        ev.observe_existing(&batch)?;
    }
    Ok(())
}

/// Reads the columns the remaining checks need from each registered file, a few files at once.
async fn read_for_audit(
    lake: &Arc<Lake>,
    table_schema: &arrow_schema::SchemaRef,
    footers: &[ParquetFooter],
    evaluator: Evaluator,
    parallelism: usize,
    name: &TableName,
) -> Result<Evaluator> {
    let columns = evaluator.required_columns();
    let indices: Vec<usize> = columns
        .iter()
        .filter_map(|c| table_schema.index_of(c).ok())
        .collect();
    let projected = Arc::new(table_schema.project(&indices)?);
    let queue = Arc::new(Mutex::new(footers.iter().cloned().collect::<VecDeque<_>>()));
    let mut tasks = Vec::new();
    for _ in 0..parallelism.clamp(1, footers.len().max(1)) {
        let (lake, queue, projected, columns) = (
            lake.clone(),
            queue.clone(),
            projected.clone(),
            columns.clone(),
        );
        let mut ev = evaluator.fork();
        let table = name.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = lock(&queue).pop_front();
                let Some(footer) = next else { break };
                for batch in read_columns(&lake, &footer, &projected, &columns, &table).await? {
                    ev.update(&batch)?;
                }
            }
            Ok::<_, Error>(ev)
        }));
    }
    let mut merged = evaluator;
    for task in tasks {
        let ev = task.await.map_err(|e| Error::Source {
            source_url: name.to_string(),
            reason: format!("an audit task failed: {e}"),
        })??;
        merged.merge(ev)?;
    }
    Ok(merged)
}

/// A reader over a source file that reuses the footer read before (no second footer request).
fn open_reader(
    lake: &Lake,
    footer: &ParquetFooter,
) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
    let (store, path) = lake.stores().resolve(&footer.location)?;
    let reader = ParquetObjectReader::new(store, path).with_file_size(footer.size);
    let metadata = ArrowReaderMetadata::try_new(footer.metadata.clone(), ArrowReaderOptions::new())
        .map_err(|e| corrupt_file(footer, e))?;
    Ok(ParquetRecordBatchStreamBuilder::new_with_metadata(
        reader, metadata,
    ))
}

fn corrupt_file(footer: &ParquetFooter, e: parquet::errors::ParquetError) -> Error {
    Error::Lake(sluice_lake::Error::CorruptFile {
        path: footer.location.clone(),
        reason: e.to_string(),
    })
}

/// A page of a file that cannot be decoded, named by the file.
/// The union of two input columns of the same name where both are structs (fields of `b` that
/// `a` lacks appended, recursively), or `None` when there is nothing to merge.
fn merged_struct(a: &arrow_schema::Field, b: &arrow_schema::Field) -> Option<arrow_schema::Field> {
    use arrow_schema::DataType;
    let (DataType::Struct(af), DataType::Struct(bf)) = (a.data_type(), b.data_type()) else {
        return None;
    };
    let mut fields: Vec<arrow_schema::FieldRef> = af.iter().cloned().collect();
    for f in bf {
        match fields.iter().position(|e| e.name() == f.name()) {
            Some(i) => {
                if let Some(merged) = merged_struct(&fields[i], f) {
                    fields[i] = Arc::new(merged);
                }
            }
            None => fields.push(f.clone()),
        }
    }
    Some(a.clone().with_data_type(DataType::Struct(fields.into())))
}

fn undecodable(footer: &ParquetFooter, e: arrow_schema::ArrowError) -> Error {
    let reason = match e {
        arrow_schema::ArrowError::ParquetError(message) => message,
        arrow_schema::ArrowError::ExternalError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    Error::Lake(sluice_lake::Error::CorruptFile {
        path: footer.location.clone(),
        reason: format!("the file is damaged, a page cannot be decoded ({reason})"),
    })
}

async fn read_columns(
    lake: &Lake,
    footer: &ParquetFooter,
    projected: &arrow_schema::SchemaRef,
    columns: &[String],
    table: &str,
) -> Result<Vec<arrow_array::RecordBatch>> {
    let corrupt = |e| corrupt_file(footer, e);
    let builder = open_reader(lake, footer)?;
    let roots: Vec<usize> = columns
        .iter()
        .filter_map(|c| footer.schema.index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(corrupt)?;
    let batches: Vec<arrow_array::RecordBatch> = stream.try_collect().await.map_err(corrupt)?;
    batches
        .iter()
        .map(|b| conform_batch(table, &footer.location, projected, b).map_err(Error::from))
        .collect()
}

/// Exact statistics of the registered files, for the checks' statistics shortcut.
fn stats_of(table: &LoadedTable, files: &[DataFile]) -> TableStats {
    let schema = table.metadata().current_schema();
    let mut total: Option<TableStats> = None;
    for file in files {
        let mut stats = TableStats::new(file.record_count());
        for field in schema.as_struct().fields() {
            let column = ColumnStats {
                null_count: file.null_value_counts().get(&field.id).copied(),
                nan_count: file.nan_value_counts().get(&field.id).copied(),
                min: file
                    .lower_bounds()
                    .get(&field.id)
                    .and_then(|d| stat_value(d.literal())),
                max: file
                    .upper_bounds()
                    .get(&field.id)
                    .and_then(|d| stat_value(d.literal())),
            };
            stats = stats.with_column(field.name.clone(), column);
        }
        total = Some(match total {
            Some(t) => t.merge(stats),
            None => stats,
        });
    }
    total.unwrap_or_default()
}

fn stat_value(literal: &PrimitiveLiteral) -> Option<StatValue> {
    match literal {
        PrimitiveLiteral::Boolean(b) => Some(StatValue::Bool(*b)),
        PrimitiveLiteral::Int(v) => Some(StatValue::Int(i64::from(*v))),
        PrimitiveLiteral::Long(v) => Some(StatValue::Int(*v)),
        PrimitiveLiteral::Float(v) => Some(StatValue::Float(f64::from(v.0))),
        PrimitiveLiteral::Double(v) => Some(StatValue::Float(v.0)),
        PrimitiveLiteral::String(s) => Some(StatValue::Str(s.clone())),
        _ => None,
    }
}

/// A short line for the snapshot summary: `passed: 5 checks` or `failed: unique(event_id)`.
pub fn audit_summary(report: &AuditReport) -> String {
    let warned = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .count();
    if report.publishable() {
        let mut s = format!("passed: {} checks", report.checks.len());
        if warned > 0 {
            s.push_str(&format!(" ({warned} warning(s))"));
        }
        s
    } else {
        format!("failed: {}", failing_checks(report))
    }
}

fn failing_checks(report: &AuditReport) -> String {
    report
        .checks
        .iter()
        .filter(|c| {
            c.severity == sluice_checks::Severity::Error
                && matches!(c.status, Status::Fail | Status::Error)
        })
        .map(|c| c.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

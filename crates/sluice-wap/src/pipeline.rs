//! One Write-Audit-Publish run.
//!
//! ```text
//!  list source ── subtract files already in main (the table's ingest ledger)
//!      │ nothing new → nothing_to_do
//!      ▼
//!  transaction(run key) ─────────────────────────────────────────────────────────────┐
//!   write:   stage compensation discard-run{table, sluice/<run-id>, run id, run key} │
//!            read footers (a bad file fails here, before anything is written)         │
//!            create or evolve the table; ingest: copy (stream + audit in one pass) or │
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
//!
//! The steps live in their own modules: [`crate::write`], [`crate::audit`],
//! [`crate::publish`]; what undoes a run in [`crate::compensations`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_checks::AuditReport;
use sluice_lake::{Lake, RefName, TableName};
use sluice_txn::{
    Engine, ObjectStoreJournal, Outcome, RecoveryReport, RetryPolicy, RunFilter,
    RunReport as TxnRunReport, RunSummary, StepError,
};
use uuid::Uuid;

use crate::audit::failing_checks;
use crate::compensations::{self, DISCARD_RUN, DiscardRun};
use crate::error::{Error, Result};
use crate::interrupt::{check_cancelled, pause_point};
use crate::options::{PipelineConfig, RunOptions};
use crate::publish::Published;
use crate::report::{RunFailure, RunReport, RunStatus};
use crate::source::{SourceFile, list_source, run_key};
use crate::write::Written;

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

/// What a run's steps leave for its report, whichever way the transaction ends.
#[derive(Default)]
pub(crate) struct RunState {
    pub(crate) step: Option<String>,
    pub(crate) written: Option<Written>,
    pub(crate) published: Option<Published>,
    pub(crate) audit_failed: Option<AuditReport>,
    /// Each finished step and how long it took.
    pub(crate) timings: Vec<(String, Duration)>,
    /// Whether the table existed when the write step looked (`None`: it did not get there).
    pub(crate) table_existed: Option<bool>,
    /// Whether this run created the table.
    pub(crate) table_created: bool,
    /// `--keep-failed`: the branch the failed batch was kept on.
    pub(crate) kept_branch: Option<String>,
}

/// A step's failure, retryable when the lake says it is.
pub(crate) fn step_error(e: impl Into<Error>) -> StepError {
    let e: Error = e.into();
    let transient = match &e {
        Error::Lake(l) => l.is_retryable(),
        _ => false,
    };
    if transient {
        StepError::transient_cause(e)
    } else {
        StepError::permanent_cause(e)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pipeline {
    /// `--keep-failed`: keeps the audited branch's head on `sluice/failed/<run-id>`. The
    /// rollback then deletes the run's branch but neither its snapshots nor its files, which
    /// the kept branch still reaches. A failure here only costs the inspection: it is logged.
    pub(crate) async fn keep_failed(
        &self,
        options: &RunOptions,
        branch: &RefName,
        run_id: &str,
        state: &Mutex<RunState>,
    ) {
        if !options.keep_failed {
            return;
        }
        let kept = match RefName::new(format!("sluice/failed/{run_id}")) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "cannot name the branch to keep the failed batch on");
                return;
            }
        };
        match self
            .lake()
            .create_branch(&options.table, &kept, &sluice_lake::RefSpec::from(branch))
            .await
        {
            Ok(_) => lock(state).kept_branch = Some(kept.to_string()),
            Err(e) => {
                tracing::warn!(table = %options.table, branch = %kept, error = %e, "cannot keep the failed batch; it is rolled back")
            }
        }
    }

    /// Connects to the lake and opens the journal.
    pub async fn open(config: &PipelineConfig) -> Result<Pipeline> {
        Self::open_with(config, None).await
    }

    /// [`Pipeline::open`] with a hook called before every catalog commit (for metrics: its
    /// `attempt` above 1 is a retry after a conflict).
    pub async fn open_with(
        config: &PipelineConfig,
        commit_hook: Option<Arc<dyn sluice_lake::CommitHook>>,
    ) -> Result<Pipeline> {
        let mut lake = Lake::connect(&config.lake).await?;
        if let Some(hook) = commit_hook {
            lake = lake.with_commit_hook(hook);
        }
        let lake = Arc::new(lake);
        let (store, prefix) = lake.stores().resolve(&config.journal)?;
        let engine = Engine::builder(ObjectStoreJournal::new(store, prefix))
            .registry(compensations::registry(&lake))
            .lease_ttl(config.lease_ttl)
            .build();
        Ok(Pipeline { lake, engine })
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
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
    pub(crate) async fn not_yet_published(
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

    /// Refuses, before anything is written, a run that cannot set rows aside as its checks ask
    /// (`on_fail = "quarantine"`).
    pub(crate) fn check_quarantine(
        &self,
        options: &RunOptions,
        suite: &sluice_checks::CheckSuite,
    ) -> Result<()> {
        if !suite.quarantines() {
            return Ok(());
        }
        let quarantine = suite.quarantine_table(&options.table.to_string());
        let refuse = |reason: &str| {
            Err(Error::Quarantine {
                quarantine: quarantine.clone(),
                reason: reason.to_string(),
            })
        };
        if quarantine.parse::<TableName>().is_err() {
            return refuse("not a NAMESPACE.TABLE name; set [quarantine] table in the checks file");
        }
        if quarantine == options.table.to_string() {
            return refuse("it is the run's own table; set [quarantine] table to another table");
        }
        if options.mode == crate::options::Mode::Register {
            return refuse(
                "register mode adds the source files as they are, so no row can be left out; \
                 use --mode copy, or on_fail = \"fail\"",
            );
        }
        if self.lake.multi_table_commit() != sluice_lake::MultiTableCommit::Atomic {
            return refuse(
                "this catalog cannot commit two tables at once, and the table and its \
                 quarantine must publish together; use on_fail = \"fail\"",
            );
        }
        Ok(())
    }

    /// One Write-Audit-Publish run. `Err` only when the run could not start (the source cannot
    /// be listed, the journal is unusable); every failure after that is a report with status
    /// `failed` or `audit_failed`, and nothing was published.
    pub async fn run(&self, options: &RunOptions) -> Result<RunReport> {
        let started = Instant::now();
        let commits_before = self.lake.commits_made();
        let conflicts_before = self.lake.commit_conflicts();
        let table = &options.table;
        let mut report = RunReport::new(table.clone(), options.mode);
        self.check_partition_spec(options).await?;
        if let Some(suite) = &options.checks {
            crate::sql_checks::validate(&self.lake, suite, table)?;
            self.check_quarantine(options, suite)?;
        }
        let listed = match &options.files {
            Some(files) => files.clone(),
            None => {
                let mut listed = list_source(&self.lake, &options.source).await?;
                if let Some(shard) = options.shard {
                    listed.retain(|f| shard.owns(&f.location));
                }
                listed
            }
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
                let mut written: Written = tx
                    .step("write")
                    .retry(RetryPolicy::no_retry())
                    .run(async |step| {
                        // Journalled before anything is written: whatever happens next, a
                        // rollback or `recover` can find the branch and the run's files.
                        step.stage_compensation(
                            DISCARD_RUN,
                            DiscardRun {
                                table: table.clone(),
                                branch: branch.to_string(),
                                run_id: run_id.clone(),
                                run_key: key_ref.clone(),
                            }
                            .to_payload(),
                        )
                        .await
                        .map_err(step_error)?;
                        // The quarantine table's part of the run is undone the same way.
                        if let Some(quarantine) = options
                            .checks
                            .as_ref()
                            .filter(|s| s.quarantines())
                            .map(|s| s.quarantine_table(&table.to_string()))
                        {
                            step.stage_compensation(
                                DISCARD_RUN,
                                DiscardRun {
                                    table: quarantine.parse().map_err(step_error)?,
                                    branch: branch.to_string(),
                                    run_id: run_id.clone(),
                                    run_key: key_ref.clone(),
                                }
                                .to_payload(),
                            )
                            .await
                            .map_err(step_error)?;
                        }
                        // Not dropped when a stop is asked for: the ingest's workers finish
                        // the file in hand, so the rollback finds every file they wrote.
                        self.write(options, files, branch, &run_id, key_ref, state)
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
                let audited: Option<AuditReport> = tx
                    .step("audit")
                    .run(async |_| {
                        pause_point(options, "audit").await;
                        self.audit_branch(
                            options,
                            branch,
                            written.snapshot_id,
                            written.audit.as_ref(),
                        )
                        .await
                        .map_err(step_error)
                    })
                    .await?;
                written.audit = audited;
                lock(state).written = Some(written.clone());
                let verdict = written.audit.as_ref().is_none_or(AuditReport::publishable);
                lock(state)
                    .timings
                    .push(("audit".into(), audit_started.elapsed()));
                check_cancelled(options)?;
                if !verdict {
                    let audit = written.audit.clone();
                    let failing = audit.as_ref().map(failing_checks).unwrap_or_default();
                    lock(state).audit_failed = audit;
                    self.keep_failed(options, branch, &run_id, state).await;
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
        report.run_id = Some(outcome.run_id());
        report.branch = Some(format!("sluice/{}", outcome.run_id()));
        report.table_existed = s.table_existed;
        report.table_created = s.table_created;
        report.kept_branch = s.kept_branch.clone();
        for (step, took) in s.timings.drain(..) {
            report.record(&step, took);
        }
        if let Some(w) = &s.written {
            report.rows = w.rows;
            report.quarantine = w
                .quarantine
                .as_ref()
                .map(|q| crate::report::QuarantineReport {
                    table: q.table.clone(),
                    rows: q.rows,
                });
            report.copied_as_is = w.copied_as_is;
            report.partitions = w.partitions.clone();
            report.main_files_read = w.main_files_read;
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
                report.error = Some(error.to_string());
                report.failure = Some(RunFailure(error));
            }
            Outcome::Failed {
                error,
                failed_hooks,
                ..
            } => {
                report.status = RunStatus::Failed;
                report.failed_step = s.step.clone();
                report.undo_failed = failed_hooks.iter().map(|h| h.name.clone()).collect();
                report.error = Some(format!(
                    "{error}; undoing it failed too ({})",
                    report.undo_failed.join(", ")
                ));
                report.failure = Some(RunFailure(error));
            }
            _ => {
                report.status = RunStatus::Failed;
                report.error = Some("the transaction ended in an unknown state".into());
            }
        }
        report.time("total", started);
        report.commits = self.lake.commits_made() - commits_before;
        report.commit_conflicts = self.lake.commit_conflicts() - conflicts_before;
        Ok(report)
    }
}

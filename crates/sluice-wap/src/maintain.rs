//! `maintain`: compaction, manifest rewrite, snapshot expiry and orphan removal of one table,
//! journalled as one run so that `runs list` shows it and `recover` finishes or undoes a
//! maintenance whose process died.
//!
//! ```text
//!  transaction "maintain NS.T"
//!   compact            stage discard-run ─► write on sluice/<run> ─► check ─► audit ─► publish
//!   rewrite-manifests  one `replace` commit on main (manifests under metadata/<run>/)
//!   expire-snapshots   stage finish-expiry(intent) ─► commit ─► delete the files
//!   remove-orphan-files  runs in flight keep their directories and everything newer than
//!                        their start
//! ```
//!
//! A rollback (a failure, or `recover` after a crash) deletes what the compaction and the
//! manifest rewrite wrote unless `main` already holds it, and finishes an expiry that
//! committed. Every step plans from the table as it is, so running `maintain` again is safe.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sluice_checks::{AuditReport, CheckSuite, EvalOptions};
use sluice_lake::{
    CompactOptions, Compacted, CompactionPlan, ExpireOptions, Expired, LedgerEntry,
    ManifestsRewritten, OrphanOptions, OrphansRemoved, PublishKind, RefName, RefSpec, TableName,
    WriteOptions,
};
use sluice_txn::{Outcome, RetryPolicy, RunFilter};

use crate::compensations::{DISCARD_RUN, DiscardRun, FINISH_EXPIRY};
use crate::error::Result;
use crate::pipeline::{Pipeline, lock, step_error};

/// One step of `maintain`, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaintainStep {
    /// Rewrite small data files into files of the target size (an audited `replace`).
    RewriteDataFiles,
    /// Merge the manifests of `main`.
    RewriteManifests,
    /// Expire snapshots under the refs' retention.
    ExpireSnapshots,
    /// Delete files nothing refers to.
    RemoveOrphanFiles,
}

impl MaintainStep {
    /// Every step, in order.
    pub const ALL: [MaintainStep; 4] = [
        MaintainStep::RewriteDataFiles,
        MaintainStep::RewriteManifests,
        MaintainStep::ExpireSnapshots,
        MaintainStep::RemoveOrphanFiles,
    ];

    /// The step's name (as `--only` takes it and reports print it).
    pub fn as_str(self) -> &'static str {
        match self {
            MaintainStep::RewriteDataFiles => "rewrite-data-files",
            MaintainStep::RewriteManifests => "rewrite-manifests",
            MaintainStep::ExpireSnapshots => "expire-snapshots",
            MaintainStep::RemoveOrphanFiles => "remove-orphan-files",
        }
    }
}

/// Default age below which orphan files are kept (Iceberg's is 3 days too): a writer of any
/// engine may still be about to commit them.
pub const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3 * 24 * 3600);

/// What to maintain, and how.
#[derive(Clone, Debug)]
pub struct MaintainOptions {
    /// The table.
    pub table: TableName,
    /// The steps to run (they run in [`MaintainStep::ALL`]'s order).
    pub steps: Vec<MaintainStep>,
    /// Plan and count only: nothing is written, committed or deleted.
    pub dry_run: bool,
    /// Snapshot expiry.
    pub expire: ExpireOptions,
    /// Orphan files younger than this are kept.
    pub orphans_older_than: Duration,
    /// Data files below this size are compacted (default: 3/4 of the target file size).
    pub min_file_size: Option<u64>,
    /// The table's checks, run on the compaction's branch before it publishes.
    pub checks: Option<CheckSuite>,
    /// How the checks are evaluated.
    pub eval: EvalOptions,
}

impl MaintainOptions {
    /// Every step with the defaults.
    pub fn new(table: TableName) -> Self {
        Self {
            table,
            steps: MaintainStep::ALL.to_vec(),
            dry_run: false,
            expire: ExpireOptions::default(),
            orphans_older_than: ORPHAN_MIN_AGE,
            min_file_size: None,
            checks: None,
            eval: EvalOptions::default(),
        }
    }

    fn wants(&self, step: MaintainStep) -> bool {
        self.steps.contains(&step)
    }
}

/// How a maintenance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintainStatus {
    /// Every step ran.
    Ok,
    /// A step failed; what the run had written and not published was undone.
    Failed,
    /// The table's checks failed on the compacted branch; nothing was published.
    AuditFailed,
}

/// The compaction step's part of a [`MaintainReport`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompactionReport {
    /// What was (or, dry, would be) rewritten.
    pub plan: CompactionPlan,
    /// What was written and checked.
    pub compacted: Option<Compacted>,
    /// How `main` took it: `fast_forward`, or `rebase` when it had moved.
    pub published: Option<PublishKind>,
    /// The table's checks on the compacted branch.
    pub audit: Option<AuditReport>,
}

/// What `maintain` did.
#[derive(Clone, Debug, Serialize)]
pub struct MaintainReport {
    /// The table.
    pub table: String,
    /// The run (none for a dry run).
    pub run_id: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How it ended.
    pub status: MaintainStatus,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Why.
    pub error: Option<String>,
    /// `rewrite-data-files`.
    pub rewrite_data_files: Option<CompactionReport>,
    /// `rewrite-manifests`.
    pub rewrite_manifests: Option<ManifestsRewritten>,
    /// `expire-snapshots`.
    pub expire_snapshots: Option<Expired>,
    /// `remove-orphan-files`.
    pub remove_orphan_files: Option<OrphansRemoved>,
}

impl MaintainReport {
    fn new(options: &MaintainOptions) -> Self {
        Self {
            table: options.table.to_string(),
            run_id: None,
            dry_run: options.dry_run,
            status: MaintainStatus::Ok,
            failed_step: None,
            error: None,
            rewrite_data_files: None,
            rewrite_manifests: None,
            expire_snapshots: None,
            remove_orphan_files: None,
        }
    }
}

/// The run key a compaction records in the ledger when it publishes, so that a rollback can
/// tell a published compaction from one to undo.
fn maintain_key(run_id: &str) -> String {
    format!("maintain:{run_id}")
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Pipeline {
    /// Runs the maintenance steps of `options` on one table (see the module docs). `Err` only
    /// when it could not start; a step that fails is a report with status `failed` (or
    /// `audit_failed`), everything it wrote undone.
    pub async fn maintain(&self, options: &MaintainOptions) -> Result<MaintainReport> {
        let lake = self.lake();
        let name = &options.table;
        // Fails early, naming the table, when it does not exist.
        lake.load_table(name).await?;
        if options.dry_run {
            return self.maintain_dry(options).await;
        }
        let report = Mutex::new(MaintainReport::new(options));
        let report_ref = &report;
        let key = format!("maintain {name} {}", uuid::Uuid::now_v7());
        let steps: Vec<&str> = options.steps.iter().map(|s| s.as_str()).collect();
        let outcome = self
            .engine()
            .transaction(key)
            .name(format!("maintain {name}"))
            .params(json!({"table": name.to_string(), "steps": steps}))
            .run(async |tx| {
                let run_id = tx.run_id().to_string();
                lock(report_ref).run_id = Some(run_id.clone());
                let branch = RefName::new(format!("sluice/{run_id}")).map_err(step_error)?;
                let (run_id, branch) = (&run_id, &branch);
                let writes = options.wants(MaintainStep::RewriteDataFiles)
                    || options.wants(MaintainStep::RewriteManifests);
                if writes {
                    lock(report_ref).failed_step = Some("prepare".into());
                    tx.step("prepare")
                        .retry(RetryPolicy::no_retry())
                        .run(async |step| {
                            // Journalled before anything is written: a rollback, or `recover`
                            // after a crash, deletes what this run wrote unless main has it.
                            step.stage_compensation(
                                DISCARD_RUN,
                                DiscardRun {
                                    table: name.clone(),
                                    branch: branch.to_string(),
                                    run_id: run_id.clone(),
                                    run_key: maintain_key(run_id),
                                }
                                .to_payload(),
                            )
                            .await
                            .map_err(step_error)
                        })
                        .await?;
                }
                if options.wants(MaintainStep::RewriteDataFiles) {
                    lock(report_ref).failed_step =
                        Some(MaintainStep::RewriteDataFiles.as_str().into());
                    tx.step(MaintainStep::RewriteDataFiles.as_str())
                        .retry(RetryPolicy::no_retry())
                        .run(async |_| self.compact_step(options, run_id, branch, report_ref).await)
                        .await?;
                }
                if options.wants(MaintainStep::RewriteManifests) {
                    lock(report_ref).failed_step =
                        Some(MaintainStep::RewriteManifests.as_str().into());
                    tx.step(MaintainStep::RewriteManifests.as_str())
                        .retry(RetryPolicy::no_retry())
                        .run(async |_| {
                            crate::interrupt::pause_env("maintain-manifests").await;
                            let done = lake
                                .rewrite_manifests(name, false, Some(run_id))
                                .await
                                .map_err(step_error)?;
                            lock(report_ref).rewrite_manifests = Some(done);
                            Ok(())
                        })
                        .await?;
                }
                if options.wants(MaintainStep::ExpireSnapshots) {
                    lock(report_ref).failed_step =
                        Some(MaintainStep::ExpireSnapshots.as_str().into());
                    tx.step(MaintainStep::ExpireSnapshots.as_str())
                        .retry(RetryPolicy::no_retry())
                        .run(async |step| {
                            let step = &step;
                            let committed = lake
                                .commit_expiry(name, &options.expire, |intent| async move {
                                    step.stage_compensation(FINISH_EXPIRY, &intent)
                                        .await
                                        .map(|_| ())
                                        .map_err(|e| sluice_lake::Error::Catalog {
                                            table: Some(intent.table.to_string()),
                                            message: format!("cannot journal the expiry: {e}"),
                                            retryable: false,
                                        })
                                })
                                .await
                                .map_err(step_error)?;
                            crate::interrupt::pause_env("maintain-expiry-committed").await;
                            let expired =
                                lake.delete_expired(committed).await.map_err(step_error)?;
                            lock(report_ref).expire_snapshots = Some(expired);
                            Ok(())
                        })
                        .await?;
                }
                if options.wants(MaintainStep::RemoveOrphanFiles) {
                    lock(report_ref).failed_step =
                        Some(MaintainStep::RemoveOrphanFiles.as_str().into());
                    tx.step(MaintainStep::RemoveOrphanFiles.as_str())
                        .retry(RetryPolicy::no_retry())
                        .run(async |_| {
                            crate::interrupt::pause_env("maintain-orphans").await;
                            let orphan_options =
                                self.orphan_options(options).await.map_err(step_error)?;
                            let removed = lake
                                .remove_orphan_files(name, &orphan_options)
                                .await
                                .map_err(step_error)?;
                            lock(report_ref).remove_orphan_files = Some(removed);
                            Ok(())
                        })
                        .await?;
                }
                Ok(serde_json::Value::Null)
            })
            .await?;
        let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Outcome::Committed { .. } | Outcome::Skipped { .. } => report.failed_step = None,
            Outcome::RolledBack { error, .. } | Outcome::Failed { error, .. } => {
                let audit_failed = report
                    .rewrite_data_files
                    .as_ref()
                    .and_then(|c| c.audit.as_ref())
                    .is_some_and(|a| !a.publishable());
                report.status = if audit_failed {
                    MaintainStatus::AuditFailed
                } else {
                    MaintainStatus::Failed
                };
                report.error = Some(error.to_string());
            }
            _ => {
                report.status = MaintainStatus::Failed;
                report.error = Some("the maintenance ended in an unknown state".into());
            }
        }
        Ok(report)
    }

    /// The compaction: plan, write on the run's branch, check, audit, publish.
    async fn compact_step(
        &self,
        options: &MaintainOptions,
        run_id: &str,
        branch: &RefName,
        report: &Mutex<MaintainReport>,
    ) -> std::result::Result<(), sluice_txn::StepError> {
        let lake = self.lake();
        let name = &options.table;
        let compact = CompactOptions {
            min_file_size: options.min_file_size,
            write: WriteOptions {
                run_id: Some(run_id.to_string()),
                ..WriteOptions::default()
            },
        };
        let plan = lake
            .plan_compaction(name, &compact)
            .await
            .map_err(step_error)?;
        let mut part = CompactionReport {
            plan: plan.clone(),
            ..CompactionReport::default()
        };
        if plan.is_empty() {
            lock(report).rewrite_data_files = Some(part);
            return Ok(());
        }
        let compacted = lake
            .compact_to_branch(name, branch, &plan, &compact)
            .await
            .map_err(step_error)?;
        part.compacted = Some(compacted);
        lock(report).rewrite_data_files = Some(part.clone());
        crate::interrupt::pause_env("maintain-compacted").await;
        if let Some(suite) = &options.checks {
            let audit = self
                .audit_ref(
                    name,
                    &RefSpec::Named(branch.to_string()),
                    suite,
                    options.eval.clone(),
                )
                .await
                .map_err(step_error)?;
            let passed = audit.publishable();
            let failing = crate::audit::failing_checks(&audit);
            part.audit = Some(audit);
            lock(report).rewrite_data_files = Some(part.clone());
            if !passed {
                return Err(sluice_txn::StepError::permanent(format!(
                    "the table's checks failed on the compacted branch ({failing}); nothing was published"
                )));
            }
        }
        let entry = LedgerEntry {
            run_key: maintain_key(run_id),
            files: Vec::new(),
        };
        let outcome = lake
            .publish_compaction(name, branch, &entry)
            .await
            .map_err(step_error)?;
        part.published = Some(outcome.kind);
        lock(report).rewrite_data_files = Some(part);
        Ok(())
    }

    /// Orphan removal keeps what runs in flight own: their directories, and every file
    /// newer than the oldest of them started.
    async fn orphan_options(&self, options: &MaintainOptions) -> Result<OrphanOptions> {
        let runs = self.list_runs(&RunFilter::all()).await?;
        let in_flight: Vec<_> = runs.iter().filter(|r| !r.state.is_terminal()).collect();
        let keep_after_ms = in_flight
            .iter()
            .map(|r| r.started_at.timestamp_millis())
            .min();
        Ok(OrphanOptions {
            older_than_ms: millis(options.orphans_older_than),
            keep_after_ms,
            protect_runs: in_flight.iter().map(|r| r.run_id.to_string()).collect(),
            protect: Vec::new(),
            dry_run: options.dry_run,
            now_ms: options.expire.now_ms,
        })
    }

    async fn maintain_dry(&self, options: &MaintainOptions) -> Result<MaintainReport> {
        let lake = self.lake();
        let name = &options.table;
        let mut report = MaintainReport::new(options);
        if options.wants(MaintainStep::RewriteDataFiles) {
            let compact = CompactOptions {
                min_file_size: options.min_file_size,
                write: WriteOptions::default(),
            };
            report.rewrite_data_files = Some(CompactionReport {
                plan: lake.plan_compaction(name, &compact).await?,
                ..CompactionReport::default()
            });
        }
        if options.wants(MaintainStep::RewriteManifests) {
            report.rewrite_manifests = Some(lake.rewrite_manifests(name, true, None).await?);
        }
        if options.wants(MaintainStep::ExpireSnapshots) {
            let expire = ExpireOptions {
                dry_run: true,
                ..options.expire.clone()
            };
            report.expire_snapshots = Some(lake.expire_snapshots(name, &expire).await?);
        }
        if options.wants(MaintainStep::RemoveOrphanFiles) {
            let orphan_options = self.orphan_options(options).await?;
            report.remove_orphan_files =
                Some(lake.remove_orphan_files(name, &orphan_options).await?);
        }
        Ok(report)
    }
}

//! One transaction over several tables: every table written on the same branch
//! `sluice/<run id>`, all audited, and published together (one atomic multi-table catalog
//! commit) or not at all.
//!
//! ```text
//!  list every table's source ── subtract what each table's main already holds
//!  transaction(job key) ────────────────────────────────────────────────────────────┐
//!   write <table>:  for each table with new files: discard-run staged, then the      │
//!                   single-table write step onto sluice/<run id>                     │
//!   audit:          every table's verdict; one failing table fails the job          │
//!   publish:        one multi-table commit moves every main, deletes every branch    │
//!                   and records each table's files in its own ledger; a table whose   │
//!                   main moved is rebased, audited again, and the commit is retried   │
//!  any failure → every table's discard-run (also by `recover` after a crash) ────────┘
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sluice_checks::AuditReport;
use sluice_lake::{LedgerEntry, MultiTableCommit, RefMove, RefName, RefSpec, TablePublish};
use sluice_txn::{Outcome, RetryPolicy, StepContext, StepError};
use uuid::Uuid;

use crate::audit::failing_checks;
use crate::compensations::{DISCARD_RUN, DiscardRun, PUBLISH_TABLE, PublishTable};
use crate::error::{Error, Result};
use crate::interrupt::{check_cancelled, pause_point};
use crate::job::JobOptions;
use crate::options::RunOptions;
use crate::pipeline::{Pipeline, RunState, lock, step_error};
use crate::publish::Published;
use crate::report::{RunFailure, RunReport, RunStatus, StepTiming};
use crate::source::{SourceFile, list_source, run_key};
use crate::write::Written;

/// The report of a job: one transaction over several tables.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobReport {
    /// The run id shared by every table (in each branch name and commit summary).
    pub run_id: Option<Uuid>,
    /// How the job ended. Every table shares it: published together or not at all.
    pub status: RunStatus,
    /// The branch every table was written on.
    pub branch: Option<String>,
    /// The job's transaction key (a digest of every table's run key).
    pub run_key: Option<String>,
    /// Whether the tables were published in one atomic commit.
    pub atomic: bool,
    /// One report per table, in the job's order.
    pub tables: Vec<RunReport>,
    /// The step that failed (`write <table>`, `audit`, `publish`).
    pub failed_step: Option<String>,
    /// Why the job failed.
    pub error: Option<String>,
    /// Why the job failed, as the error value the failing step returned.
    #[serde(skip)]
    pub failure: Option<RunFailure>,
    /// Compensations that kept failing (a recovery finishes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undo_failed: Vec<String>,
    /// Step durations.
    pub steps: Vec<StepTiming>,
    /// Catalog commits the job made.
    pub commits: u64,
    /// Catalog commits the job sent that were refused because another writer had moved a
    /// table (each was planned again).
    #[serde(default)]
    pub commit_conflicts: u64,
}

/// The job's transaction key: the tables' run keys, in a stable order.
fn job_key(keys: &[(String, String)]) -> String {
    let mut keys = keys.to_vec();
    keys.sort();
    let mut hasher = Sha256::new();
    hasher.update(b"job");
    for (table, key) in keys {
        hasher.update(b"\n");
        hasher.update(table.as_bytes());
        hasher.update(b"\t");
        hasher.update(key.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// A table of the job with new files.
struct Pending<'a> {
    slot: usize,
    options: &'a RunOptions,
    files: Vec<SourceFile>,
    key: String,
    state: Mutex<RunState>,
}

impl Pipeline {
    /// Runs a job: one Write-Audit-Publish transaction over every table of `job` (see the
    /// module documentation). `Err` only when the job could not start: a source cannot be
    /// listed, or the job asks for an atomic publish the catalog cannot make.
    pub async fn run_job(&self, job: &JobOptions) -> Result<JobReport> {
        let started = Instant::now();
        let commits_before = self.lake().commits_made();
        let conflicts_before = self.lake().commit_conflicts();
        if job.atomic
            && job.tables.len() > 1
            && self.lake().multi_table_commit() == MultiTableCommit::Unsupported
        {
            return Err(Error::Config(format!(
                "job {}: the catalog cannot publish several tables in one commit (a REST \
                 catalog must list POST /v1/{{prefix}}/transactions/commit in its /v1/config \
                 endpoints); nothing was written. Set `atomic = false` in the job file to \
                 publish table by table",
                job.source
            )));
        }
        let mut report = JobReport {
            run_id: None,
            status: RunStatus::Failed,
            branch: None,
            run_key: None,
            atomic: job.atomic,
            tables: job
                .tables
                .iter()
                .map(|t| RunReport::new(t.table.clone(), t.mode))
                .collect(),
            failed_step: None,
            error: None,
            failure: None,
            undo_failed: Vec::new(),
            steps: Vec::new(),
            commits: 0,
            commit_conflicts: 0,
        };
        let mut pending = Vec::new();
        for slot in write_order(job)? {
            let options = &job.tables[slot];
            self.check_partition_spec(options).await?;
            if let Some(suite) = &options.checks {
                crate::sql_checks::validate(self.lake(), suite, &options.table)?;
                if suite.quarantines() {
                    return Err(Error::Quarantine {
                        quarantine: suite.quarantine_table(&options.table.to_string()),
                        reason: format!(
                            "a job does not set rows aside; run {} on its own with `sluice run`, \
                             or use on_fail = \"fail\" in its checks",
                            options.table
                        ),
                    });
                }
            }
            let listed = match &options.files {
                Some(files) => files.clone(),
                None => list_source(self.lake(), &options.source).await?,
            };
            let files = self.not_yet_published(&options.table, listed).await?;
            let table_report = &mut report.tables[slot];
            table_report.files = files.iter().map(|f| f.location.clone()).collect();
            if files.is_empty() {
                table_report.status = RunStatus::NothingToDo;
                continue;
            }
            let key = run_key(&options.table, &files);
            table_report.run_key = Some(key.clone());
            pending.push(Pending {
                slot,
                options,
                files,
                key,
                state: Mutex::new(RunState::default()),
            });
        }
        record(&mut report.steps, "list", started.elapsed());
        if pending.is_empty() {
            report.status = RunStatus::NothingToDo;
            return Ok(report);
        }
        let keys: Vec<(String, String)> = pending
            .iter()
            .map(|p| (p.options.table.to_string(), p.key.clone()))
            .collect();
        let key = job_key(&keys);
        report.run_key = Some(key.clone());
        let first = pending[0].options;
        let step_now: Mutex<Option<String>> = Mutex::new(None);
        let timings: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());
        let (pending_ref, step_ref, timings_ref) = (&pending, &step_now, &timings);
        let names: Vec<String> = pending
            .iter()
            .map(|p| p.options.table.to_string())
            .collect();
        let outcome = self
            .engine()
            .transaction(key.clone())
            .name(format!("job {}", names.join(", ")))
            .params(json!({
                "job": job.source,
                "tables": names,
                "atomic": job.atomic,
                "files": pending.iter().map(|p| p.files.len()).sum::<usize>(),
            }))
            .run(async |tx| {
                let run_id = tx.run_id().to_string();
                let branch = RefName::new(format!("sluice/{run_id}")).map_err(step_error)?;
                let branch = &branch;
                let mut written: Vec<Written> = Vec::with_capacity(pending_ref.len());
                for p in pending_ref {
                    let step = format!("write {}", p.options.table);
                    *lock(step_ref) = Some(step.clone());
                    lock(&p.state).step = Some("write".into());
                    let write_started = Instant::now();
                    let run_id = &run_id;
                    let w: Written = tx
                        .step(step.clone())
                        .retry(RetryPolicy::no_retry())
                        .run(async |s| {
                            s.stage_compensation(
                                DISCARD_RUN,
                                DiscardRun {
                                    table: p.options.table.clone(),
                                    branch: branch.to_string(),
                                    run_id: run_id.clone(),
                                    run_key: p.key.clone(),
                                }
                                .to_payload(),
                            )
                            .await
                            .map_err(step_error)?;
                            self.write(p.options, &p.files, branch, run_id, &p.key, &p.state)
                                .await
                                .map_err(step_error)
                        })
                        .await?;
                    {
                        let mut s = lock(&p.state);
                        s.timings.push(("write".into(), write_started.elapsed()));
                        s.written = Some(w.clone());
                    }
                    lock(timings_ref).push(("write".into(), write_started.elapsed()));
                    written.push(w);
                    check_cancelled(p.options)?;
                }
                pause_point(first, "after-write").await;
                check_cancelled(first)?;
                *lock(step_ref) = Some("audit".into());
                let audit_started = Instant::now();
                // Every table is written before any sql check runs, so a check that joins
                // tables of the job sees all of them at the job's branch.
                let audited: Vec<Option<AuditReport>> = tx
                    .step("audit")
                    .run(async |_| {
                        pause_point(first, "audit").await;
                        let mut out = Vec::with_capacity(written.len());
                        for (p, w) in pending_ref.iter().zip(&written) {
                            out.push(
                                self.audit_branch(
                                    p.options,
                                    branch,
                                    w.snapshot_id,
                                    w.audit.as_ref(),
                                )
                                .await
                                .map_err(step_error)?,
                            );
                        }
                        Ok(out)
                    })
                    .await?;
                for ((p, w), report) in pending_ref.iter().zip(written.iter_mut()).zip(audited) {
                    w.audit = report;
                    lock(&p.state).written = Some(w.clone());
                }
                let verdicts: Vec<bool> = written
                    .iter()
                    .map(|w| w.audit.as_ref().is_none_or(AuditReport::publishable))
                    .collect();
                lock(timings_ref).push(("audit".into(), audit_started.elapsed()));
                check_cancelled(first)?;
                let mut failing = Vec::new();
                for ((p, w), passed) in pending_ref.iter().zip(&written).zip(&verdicts) {
                    if !passed {
                        let audit = w.audit.clone();
                        let checks = audit.as_ref().map(failing_checks).unwrap_or_default();
                        failing.push(format!("{}: {checks}", p.options.table));
                        lock(&p.state).audit_failed = audit;
                    }
                }
                if !failing.is_empty() {
                    return Err(StepError::permanent(format!(
                        "audit failed: {}",
                        failing.join("; ")
                    )));
                }
                *lock(step_ref) = Some("publish".into());
                let publish_started = Instant::now();
                let published: Vec<Published> = tx
                    .step("publish")
                    .retry(RetryPolicy::new(5).with_base_delay(Duration::from_millis(50)))
                    .run(async |s| {
                        pause_point(first, "publish").await;
                        self.publish_job(&s, job.atomic, pending_ref, branch, &written)
                            .await
                    })
                    .await?;
                pause_point(first, "after-publish").await;
                lock(timings_ref).push(("publish".into(), publish_started.elapsed()));
                for (p, published) in pending_ref.iter().zip(&published) {
                    lock(&p.state).published = Some(published.clone());
                }
                Ok(json!({
                    "tables": pending_ref.iter().zip(&published).map(|(p, pb)| json!({
                        "table": p.options.table.to_string(),
                        "snapshot_id": pb.snapshot_id,
                        "publish": pb.kind,
                    })).collect::<Vec<_>>(),
                }))
            })
            .await?;

        let run_id = outcome.run_id();
        report.run_id = Some(run_id);
        report.branch = Some(format!("sluice/{run_id}"));
        // The tables' writes add up to the job's write step.
        for (step, took) in lock(&timings).drain(..) {
            match report.steps.iter_mut().find(|s| s.step == step) {
                Some(s) => {
                    s.millis = s
                        .millis
                        .saturating_add(u64::try_from(took.as_millis()).unwrap_or(u64::MAX))
                }
                None => record(&mut report.steps, &step, took),
            }
        }
        let (status, error, failure) = match outcome {
            Outcome::Committed { .. } => (RunStatus::Published, None, None),
            Outcome::Skipped { committed_run, .. } => (
                RunStatus::NothingToDo,
                Some(format!(
                    "these files were already published by run {committed_run}"
                )),
                None,
            ),
            Outcome::RolledBack { error, .. } => {
                let audit_failed = pending
                    .iter()
                    .any(|p| lock(&p.state).audit_failed.is_some());
                let status = if audit_failed {
                    RunStatus::AuditFailed
                } else if job.cancel.is_stopped() {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Failed
                };
                (status, Some(error.to_string()), Some(RunFailure(error)))
            }
            Outcome::Failed {
                error,
                failed_hooks,
                ..
            } => {
                report.undo_failed = failed_hooks.iter().map(|h| h.name.clone()).collect();
                (
                    RunStatus::Failed,
                    Some(format!(
                        "{error}; undoing it failed too ({})",
                        report.undo_failed.join(", ")
                    )),
                    Some(RunFailure(error)),
                )
            }
            _ => (
                RunStatus::Failed,
                Some("the transaction ended in an unknown state".into()),
                None,
            ),
        };
        report.status = status;
        if status != RunStatus::Published && status != RunStatus::NothingToDo {
            report.failed_step = lock(&step_now).clone();
        }
        report.error = error.clone();
        report.failure = failure.clone();
        for p in &pending {
            let mut s = lock(&p.state);
            let t = &mut report.tables[p.slot];
            t.run_id = Some(run_id);
            t.branch = report.branch.clone();
            t.status = status;
            t.table_existed = s.table_existed;
            t.table_created = s.table_created;
            let mut total = Duration::ZERO;
            for (step, took) in s.timings.drain(..) {
                total += took;
                t.record(&step, took);
            }
            // A table's own steps; the job's steps (audit, publish) are the job report's.
            t.record("total", total);
            if let Some(w) = &s.written {
                t.rows = w.rows;
                t.copied_as_is = w.copied_as_is;
                t.partitions = w.partitions.clone();
                t.main_files_read = w.main_files_read;
                t.audit = w.audit.clone();
            }
            if let Some(p) = s.published.take() {
                t.snapshot_id = Some(p.snapshot_id);
                t.publish = Some(p.kind);
                if p.audit.is_some() {
                    t.audit = p.audit;
                }
            }
            if let Some(audit) = s.audit_failed.take() {
                t.audit = Some(audit);
            }
            if status != RunStatus::Published {
                t.failed_step = report.failed_step.clone();
                t.error = error.clone();
                t.failure = failure.clone();
            }
        }
        if !job.atomic && status == RunStatus::Published {
            // Published by the commit actions: each table's main is where they left it.
            for p in &pending {
                let t = &mut report.tables[p.slot];
                if let Ok(resolved) = self.lake().resolve(&t.table, &RefSpec::main()).await {
                    t.snapshot_id = resolved.snapshot_id;
                }
            }
        }
        record(&mut report.steps, "total", started.elapsed());
        report.commits = self.lake().commits_made() - commits_before;
        report.commit_conflicts = self.lake().commit_conflicts() - conflicts_before;
        Ok(report)
    }

    /// The publish step of a job. Safe to retry: tables whose run key is in their ledger
    /// already published (before a crash, or an answer that was lost) and only lose their
    /// branch.
    async fn publish_job(
        &self,
        step: &StepContext,
        atomic: bool,
        pending: &[Pending<'_>],
        branch: &RefName,
        written: &[Written],
    ) -> std::result::Result<Vec<Published>, StepError> {
        let lake = self.lake();
        let entries: Vec<LedgerEntry> = written.iter().map(Written::ledger_entry).collect();
        let mut done = Vec::with_capacity(pending.len());
        for (p, entry) in pending.iter().zip(&entries) {
            done.push(
                lake.run_key_published(&p.options.table, &entry.run_key)
                    .await
                    .map_err(step_error)?,
            );
        }
        if !atomic {
            return self
                .stage_table_by_table(step, pending, branch, written, &entries, &done)
                .await;
        }
        let mut staged: Vec<Option<crate::publish::Staged>> =
            pending.iter().map(|_| None).collect();
        let mut rounds = 0;
        let outcomes = loop {
            rounds += 1;
            let items: Vec<TablePublish<'_>> = pending
                .iter()
                .enumerate()
                .filter(|(i, _)| !done[*i])
                .map(|(i, p)| TablePublish {
                    table: &p.options.table,
                    refs: RefMove::into_main(branch),
                    staged: staged[i].as_ref().map(|s| s.snapshot_id),
                    delete_source: true,
                    ingested: Some(&entries[i]),
                })
                .collect();
            if items.is_empty() {
                break Vec::new();
            }
            let moved = match lake.publish_many(&items).await {
                Ok(outcomes) => break outcomes,
                Err(
                    sluice_lake::Error::CannotPublish { table, .. }
                    | sluice_lake::Error::CommitConflict { table, .. },
                ) if rounds <= 2 * pending.len() + 2 => table,
                Err(e) => return Err(step_error(e)),
            };
            // That table's main moved: rebase its appends, audit them again, commit again.
            let Some(i) = pending
                .iter()
                .position(|p| p.options.table.to_string() == moved)
            else {
                return Err(StepError::transient(format!(
                    "the multi-table commit was refused for {moved}"
                )));
            };
            let p = &pending[i];
            staged[i] = Some(
                self.stage_rebase(p.options, branch, &written[i], &p.state)
                    .await?,
            );
        };
        let mut outcomes = outcomes.into_iter();
        let mut out = Vec::with_capacity(pending.len());
        for (i, p) in pending.iter().enumerate() {
            if done[i] {
                lake.delete_ref_if_exists(&p.options.table, branch)
                    .await
                    .map_err(step_error)?;
                let head = lake
                    .resolve(&p.options.table, &RefSpec::main())
                    .await
                    .map_err(step_error)?
                    .snapshot_id
                    .unwrap_or_default();
                out.push(Published {
                    snapshot_id: head,
                    kind: sluice_lake::PublishKind::UpToDate,
                    audit: None,
                });
            } else {
                let outcome = outcomes.next().ok_or_else(|| {
                    StepError::permanent("the multi-table commit answered for fewer tables")
                })?;
                out.push(Published {
                    snapshot_id: outcome.snapshot_id,
                    kind: outcome.kind,
                    audit: staged[i].take().and_then(|s| s.audit),
                });
            }
        }
        Ok(out)
    }
}

impl Pipeline {
    /// The publish step of a job published table by table (`atomic = false`): each table is
    /// made ready (rebased and audited again when its `main` moved) and its publish staged as a
    /// commit action, in the job's order. The actions run once the transaction commits, and a
    /// recovery finishes them after a crash: the job rolls forward.
    async fn stage_table_by_table(
        &self,
        step: &StepContext,
        pending: &[Pending<'_>],
        branch: &RefName,
        written: &[Written],
        entries: &[LedgerEntry],
        done: &[bool],
    ) -> std::result::Result<Vec<Published>, StepError> {
        let lake = self.lake();
        let mut out = Vec::with_capacity(pending.len());
        for (i, p) in pending.iter().enumerate() {
            let table = &p.options.table;
            let mut staged = None;
            let mut kind = sluice_lake::PublishKind::UpToDate;
            if !done[i] {
                let main = lake
                    .resolve(table, &RefSpec::main())
                    .await
                    .map_err(step_error)?
                    .snapshot_id;
                let on_branch = lake
                    .log(table, &RefSpec::from(branch), None)
                    .await
                    .map_err(step_error)?;
                kind = sluice_lake::PublishKind::FastForward;
                if let Some(main) = main
                    && !on_branch.iter().any(|c| c.snapshot_id == main)
                {
                    staged = Some(
                        self.stage_rebase(p.options, branch, &written[i], &p.state)
                            .await?,
                    );
                    kind = sluice_lake::PublishKind::Rebase;
                }
            }
            step.stage_commit_action(
                PUBLISH_TABLE,
                PublishTable {
                    table: table.clone(),
                    branch: branch.to_string(),
                    staged: staged.as_ref().map(|s| s.snapshot_id),
                    run_key: entries[i].run_key.clone(),
                    files: entries[i].files.clone(),
                },
            )
            .await
            .map_err(step_error)?;
            out.push(Published {
                // Known once the commit action ran: filled in from `main` after the run.
                snapshot_id: staged.as_ref().map(|s| s.snapshot_id).unwrap_or_default(),
                kind,
                audit: staged.and_then(|s| s.audit),
            });
        }
        Ok(out)
    }
}

/// The order the tables are written in: a table whose `relationships` checks read another
/// table of the job comes after it (so that its audit sees that table's new rows on the
/// branch); otherwise the job file's order. A cycle is an error that names it.
fn write_order(job: &JobOptions) -> Result<Vec<usize>> {
    let names: Vec<String> = job.tables.iter().map(|t| t.table.to_string()).collect();
    let needs: Vec<Vec<usize>> = job
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.checks
                .as_ref()
                .map(|c| c.referenced_tables())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| names.iter().position(|n| n == r))
                .filter(|j| *j != i)
                .collect()
        })
        .collect();
    let mut order = Vec::with_capacity(names.len());
    let mut placed = vec![false; names.len()];
    while order.len() < names.len() {
        let next = (0..names.len()).find(|i| !placed[*i] && needs[*i].iter().all(|j| placed[*j]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                let cycle: Vec<&str> = (0..names.len())
                    .filter(|i| !placed[*i])
                    .map(|i| names[i].as_str())
                    .collect();
                return Err(Error::Config(format!(
                    "job {}: the relationships checks of {} reference each other in a cycle; \
                     one of them must check against main only (move it to a table outside the cycle)",
                    job.source,
                    cycle.join(", ")
                )));
            }
        }
    }
    Ok(order)
}

fn record(steps: &mut Vec<StepTiming>, step: &str, took: Duration) {
    steps.push(StepTiming {
        step: step.to_string(),
        millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_key_does_not_depend_on_the_order_of_the_tables() {
        let a = ("shop.orders".to_string(), "k1".to_string());
        let b = ("shop.lines".to_string(), "k2".to_string());
        assert_eq!(
            job_key(&[a.clone(), b.clone()]),
            job_key(&[b.clone(), a.clone()])
        );
        assert_ne!(job_key(std::slice::from_ref(&a)), job_key(&[a, b]));
    }
}

//! Recovery: finishing or rolling back what dead processes left open, under the run's lease,
//! fenced first.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::engine::Engine;
use crate::events::{RunEvent, State};
use crate::history::HookState;
use crate::journal::{Record, encode};
use crate::lease::{AcquireOutcome, Lease, try_acquire};
use crate::transaction::{RunCtx, run_stream};
use crate::{Error, Result};

impl Engine {
    /// Finish or roll back `run_id` while holding `lease` (the run's lease, taken over
    /// after it expired). Fences the run first, so its old process can write nothing more.
    pub(crate) async fn recover_with_lease(
        &self,
        run_id: Uuid,
        lease: &Lease,
    ) -> Result<Option<RecoveredRun>> {
        let inner = &self.inner;
        let stream = run_stream(run_id);
        let mut storage_failures = 0u32;
        let (view, next_seq) = loop {
            let (mut view, next_seq) = self.load_view(run_id).await?;
            if !view.needs_recovery() {
                return Ok(None);
            }
            let record = Record {
                at: inner.clock.now(),
                token: lease.token,
                event: RunEvent::Fenced {
                    by: inner.holder.clone(),
                },
            };
            let bytes = encode(&stream, &record)?;
            // Sent again unchanged after an ambiguous storage error; the journal recognises
            // it if the first attempt was stored.
            let stored = loop {
                match inner.journal.append(&stream, next_seq, bytes.clone()).await {
                    Ok(()) => break true,
                    // The old process (or another recovery) wrote first: read again.
                    Err(Error::AppendConflict { .. }) => break false,
                    Err(e @ Error::Storage { .. }) if storage_failures < 2 => {
                        storage_failures += 1;
                        tracing::warn!(stream = %stream, error = %e, "fence append failed; sending it again");
                        inner
                            .clock
                            .sleep(Duration::from_millis(50 * u64::from(storage_failures)))
                            .await;
                    }
                    Err(e) => return Err(e),
                }
            };
            if stored {
                view.apply(&record);
                break (view, next_seq + 1);
            }
        };
        let done_before = view
            .report
            .hooks
            .iter()
            .filter(|h| h.state == HookState::Done)
            .count();
        let name = view.report.name.clone();
        let committed = view.commit_decided.clone();
        let previous_error = view.report.error.clone();
        let ctx = RunCtx::new(Arc::clone(inner), run_id, lease.token, next_seq, view);
        let (state, failures) = match committed {
            Some(output) => match ctx.complete_commit().await? {
                None => {
                    ctx.finish(State::Completed, None, Some(output), None)
                        .await?;
                    (State::Completed, Vec::new())
                }
                Some(failure) => {
                    ctx.finish(State::Failed, Some(failure.clone()), Some(output), None)
                        .await?;
                    (State::Failed, vec![failure])
                }
            },
            None => {
                let reason = previous_error.unwrap_or_else(|| {
                    "the process running this transaction stopped before it finished".to_string()
                });
                let failures = ctx.rollback(0, &reason).await?;
                if failures.is_empty() {
                    ctx.finish(State::RolledBack, Some(reason), None, None)
                        .await?;
                    (State::RolledBack, failures)
                } else {
                    let error = format!("{reason}; compensations failed: {}", failures.join("; "));
                    ctx.finish(State::Failed, Some(error), None, None).await?;
                    (State::Failed, failures)
                }
            }
        };
        let view = ctx.view().await;
        let done_after = view
            .report
            .hooks
            .iter()
            .filter(|h| h.state == HookState::Done)
            .count();
        Ok(Some(RecoveredRun {
            run_id,
            name,
            state,
            hooks_completed: done_after - done_before,
            failures,
        }))
    }

    /// Find runs that a dead process left open (or that ended `Failed` with hooks undone)
    /// and finish them: complete the commit if it was decided, otherwise run the
    /// journalled compensations, last staged first.
    ///
    /// Idempotent and safe to run from several processes at once: a run is only touched
    /// under its lease, taken over after expiry, and fenced first; a hook whose completion
    /// is journalled never runs again. Runs whose process still holds a live lease are
    /// left alone and reported in [`RecoveryReport::still_running`].
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let inner = &self.inner;
        let mut report = RecoveryReport::default();
        for stream in inner.journal.list_streams("runs").await? {
            let Some(run_id) = stream
                .strip_prefix("runs/")
                .and_then(|s| s.parse::<Uuid>().ok())
            else {
                continue;
            };
            let (view, _) = self.load_view(run_id).await?;
            if !view.report.damaged_records.is_empty() {
                report
                    .damaged
                    .push((run_id, view.report.damaged_records.len()));
            }
            if !view.needs_recovery() {
                continue;
            }
            match try_acquire(
                &*inner.journal,
                &*inner.clock,
                &view.lease,
                inner.claimant(),
                inner.lease_ttl,
            )
            .await?
            {
                AcquireOutcome::Busy(_) => report.still_running.push(run_id),
                AcquireOutcome::Acquired(lease) => {
                    let _renewal = self.start_renewal(&lease);
                    let recovered = self.recover_with_lease(run_id, &lease).await;
                    if let Err(e) = lease.release(&*inner.journal, &*inner.clock).await {
                        tracing::warn!(lease = %lease.name, error = %e, "could not release lease; it will expire");
                    }
                    if let Some(recovered) = recovered? {
                        report.recovered.push(recovered);
                    }
                }
            }
        }
        Ok(report)
    }
}

/// A run that [`Engine::recover`] finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveredRun {
    /// The run.
    pub run_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its state afterwards: Completed (commit finished), RolledBack, or Failed.
    pub state: State,
    /// How many compensations or commit actions ran to completion during recovery.
    pub hooks_completed: usize,
    /// Hooks that kept failing.
    pub failures: Vec<String>,
}

/// What [`Engine::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Runs finished or rolled back.
    pub recovered: Vec<RecoveredRun>,
    /// Open runs left alone because a live process holds their lease.
    pub still_running: Vec<Uuid>,
    /// Runs with damaged (skipped) journal records, and how many.
    pub damaged: Vec<(Uuid, usize)>,
}

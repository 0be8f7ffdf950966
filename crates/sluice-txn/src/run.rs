//! Running a transaction: its options, the body, and how it ended (committed, skipped,
//! rolled back, or failed with work left to undo).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::engine::{CancelToken, Engine, LeaseConflict, key_digest};
use crate::events::{Isolation, RunEvent, State};
use crate::history::{HookReport, HookState, RunView};
use crate::lease::Lease;
use crate::registry::panic_message;
use crate::transaction::{RunCtx, Transaction, cancelled};
use crate::{Error, Result, StepError};

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Committed: the commit was journalled and every commit action completed.
    Committed {
        /// The run.
        run_id: Uuid,
        /// What the body returned.
        output: Value,
    },
    /// Not run: the key had already committed. The recorded output is returned.
    Skipped {
        /// The (skipped) run.
        run_id: Uuid,
        /// The run that committed the key.
        committed_run: Uuid,
        /// Its output.
        output: Value,
    },
    /// Failed and rolled back: every compensation ran.
    RolledBack {
        /// The run.
        run_id: Uuid,
        /// Why it failed (its cause is the error the failing step returned, see
        /// [`StepError::downcast_ref`]).
        error: StepError,
    },
    /// Ended with work undone: a compensation (after a failure) or a commit action (after
    /// the commit decision) kept failing. [`Engine::recover`] retries them.
    Failed {
        /// The run.
        run_id: Uuid,
        /// What went wrong (its cause, when there is one, as in [`Outcome::RolledBack`]).
        error: StepError,
        /// The hooks that kept failing, with their last errors.
        failed_hooks: Vec<HookReport>,
    },
}

impl Outcome {
    /// The run id.
    pub fn run_id(&self) -> Uuid {
        match self {
            Outcome::Committed { run_id, .. }
            | Outcome::Skipped { run_id, .. }
            | Outcome::RolledBack { run_id, .. }
            | Outcome::Failed { run_id, .. } => *run_id,
        }
    }

    /// The run's final state.
    pub fn state(&self) -> State {
        match self {
            Outcome::Committed { .. } => State::Completed,
            Outcome::Skipped { .. } => State::Skipped,
            Outcome::RolledBack { .. } => State::RolledBack,
            Outcome::Failed { .. } => State::Failed,
        }
    }

    /// The committed output (own or, when skipped, recorded).
    pub fn output(&self) -> Option<&Value> {
        match self {
            Outcome::Committed { output, .. } | Outcome::Skipped { output, .. } => Some(output),
            _ => None,
        }
    }
}

/// A transaction being configured; [`run`](TransactionBuilder::run) executes it.
pub struct TransactionBuilder<'e> {
    pub(crate) engine: &'e Engine,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) params: Result<Value>,
    pub(crate) isolation: Isolation,
    pub(crate) on_conflict: LeaseConflict,
    pub(crate) timeout: Option<Duration>,
    pub(crate) cancel: Option<CancelToken>,
}

impl std::fmt::Debug for TransactionBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionBuilder")
            .field("key", &self.key)
            .field("name", &self.name)
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}

impl TransactionBuilder<'_> {
    /// The run's name in history (default: the key).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Parameters recorded with the run.
    pub fn params(mut self, params: impl Serialize) -> Self {
        self.params = serde_json::to_value(params).map_err(|source| Error::Payload {
            what: "run parameters".to_string(),
            source,
        });
        self
    }
    /// Isolation mode (default [`Isolation::Serializable`]).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }
    /// What to do if the key is leased by a live process (default [`LeaseConflict::Fail`]).
    pub fn on_conflict(mut self, on_conflict: LeaseConflict) -> Self {
        self.on_conflict = on_conflict;
        self
    }
    /// Roll back if the body has not finished after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Roll back when `token` is cancelled.
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Run `body` as a transaction.
    ///
    /// ```text
    ///  lease key ─► key committed before? ── yes ─► Skipped (recorded output)
    ///                     │ no
    ///                     ▼
    ///  run body: steps stage hooks, then act
    ///       │ Ok(output)                      │ error / panic / timeout / cancel
    ///       ▼                                 ▼
    ///  journal commit decision          run compensations, last staged first
    ///  run commit actions in order      (each retried while transient)
    ///       ▼                                 ▼
    ///   Committed (or Failed if an        RolledBack (or Failed if one
    ///   action keeps failing)             keeps failing)
    /// ```
    ///
    /// If the future is dropped before it completes, the transaction stays open in the
    /// journal and its lease stops being renewed; [`Engine::recover`] rolls it back after
    /// the lease expires, as for a crash.
    pub async fn run<F>(mut self, body: F) -> Result<Outcome>
    where
        F: AsyncFnOnce(Transaction) -> Result<Value, StepError>,
    {
        let engine = self.engine;
        let inner = &engine.inner;
        let params = std::mem::replace(&mut self.params, Ok(Value::Null))?;
        let digest = key_digest(&self.key);
        let run_id = Uuid::now_v7();
        let lease_name = match self.isolation {
            Isolation::Serializable => format!("key-{digest}"),
            Isolation::ReadCommitted => format!("run-{run_id}"),
        };
        let lease = engine
            .acquire(&lease_name, &self.key, self.on_conflict)
            .await?;
        let renewal = engine.start_renewal(&lease);
        let result = self
            .run_leased(run_id, params, &digest, &lease_name, &lease, body)
            .await;
        drop(renewal);
        if !matches!(result, Err(Error::Fenced { .. })) {
            // The outcome matters more than a failed release: the lease then just expires.
            if let Err(e) = lease.release(&*inner.journal, &*inner.clock).await {
                tracing::warn!(lease = %lease.name, error = %e, "could not release lease; it will expire");
            }
        }
        result
    }

    async fn run_leased<F>(
        &self,
        run_id: Uuid,
        params: Value,
        digest: &str,
        lease_name: &str,
        lease: &Lease,
        body: F,
    ) -> Result<Outcome>
    where
        F: AsyncFnOnce(Transaction) -> Result<Value, StepError>,
    {
        let engine = self.engine;
        // Earlier runs of this key: a committed one means skip; under our key lease, an
        // open one belongs to a dead or fenced process and is finished or rolled back first.
        let mut committed: Option<(Uuid, Value)> = None;
        for earlier in engine.runs_of_key(digest).await? {
            let (mut view, _) = engine.load_view(earlier).await?;
            if view.lease == lease_name && view.needs_recovery() {
                engine.recover_with_lease(earlier, lease).await?;
                view = engine.load_view(earlier).await?.0;
            }
            if let Some(output) = view.commit_decided {
                committed = Some((earlier, output));
                break;
            }
        }

        let ctx = Arc::new(RunCtx::new(
            Arc::clone(&engine.inner),
            run_id,
            lease.token,
            0,
            RunView::empty(run_id),
        ));
        ctx.append(RunEvent::RunStarted {
            run_id,
            name: self.name.clone(),
            key: self.key.clone(),
            params,
            isolation: self.isolation,
            lease: lease_name.to_string(),
            holder: engine.inner.holder.clone(),
        })
        .await?;
        if let Some((committed_run, output)) = committed {
            ctx.finish(
                State::Skipped,
                None,
                Some(output.clone()),
                Some(committed_run),
            )
            .await?;
            return Ok(Outcome::Skipped {
                run_id,
                committed_run,
                output,
            });
        }
        engine
            .register_key(digest, &self.key, run_id, lease.token)
            .await?;
        ctx.append(RunEvent::TxnBegan {
            txn: 0,
            parent: None,
            name: self.name.clone(),
        })
        .await?;

        let tx = Transaction {
            ctx: Arc::clone(&ctx),
            txn: 0,
        };
        let timeout = self.timeout;
        let result: Result<Value, StepError> = tokio::select! {
            biased;
            () = cancelled(self.cancel.clone()) => Err(StepError::permanent("transaction was cancelled")),
            () = async {
                match timeout {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            } => Err(StepError::permanent(format!("transaction timed out after {:?}", timeout.unwrap_or_default()))),
            caught = std::panic::AssertUnwindSafe(body(tx)).catch_unwind() => match caught {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(error)) => Err(error),
                Err(panic) => Err(StepError::permanent(format!("transaction body panicked: {}", panic_message(&*panic)))),
            },
        };

        match result {
            Ok(output) => {
                ctx.append(RunEvent::CommitDecided {
                    output: output.clone(),
                })
                .await?;
                match ctx.complete_commit().await? {
                    None => {
                        ctx.finish(State::Completed, None, Some(output.clone()), None)
                            .await?;
                        Ok(Outcome::Committed { run_id, output })
                    }
                    Some(failure) => {
                        let error = StepError::permanent(format!(
                            "committed, but a commit action kept failing: {failure}; recover() will retry it"
                        ));
                        ctx.finish(State::Failed, Some(error.to_string()), Some(output), None)
                            .await?;
                        Ok(Outcome::Failed {
                            run_id,
                            error,
                            failed_hooks: failed_hooks(&ctx.view().await),
                        })
                    }
                }
            }
            Err(error) => {
                let reason = error.to_string();
                let failures = ctx.rollback(0, &reason).await?;
                if failures.is_empty() {
                    ctx.finish(State::RolledBack, Some(reason), None, None)
                        .await?;
                    Ok(Outcome::RolledBack { run_id, error })
                } else {
                    let error = error.with_message(format!(
                        "{reason}; rollback incomplete, compensations failed: {}",
                        failures.join("; ")
                    ));
                    ctx.finish(State::Failed, Some(error.to_string()), None, None)
                        .await?;
                    Ok(Outcome::Failed {
                        run_id,
                        error,
                        failed_hooks: failed_hooks(&ctx.view().await),
                    })
                }
            }
        }
    }
}

fn failed_hooks(view: &RunView) -> Vec<HookReport> {
    view.report
        .hooks
        .iter()
        .filter(|h| h.state == HookState::Failed)
        .cloned()
        .collect()
}

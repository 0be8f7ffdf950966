//! The engine: configuration, starting transactions, recovery and history.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::events::{Isolation, KeyEvent, RunEvent, State};
use crate::history::{HookReport, HookState, RunFilter, RunReport, RunSummary, RunView};
use crate::holder::ProcessIdentity;
use crate::journal::{Journal, Record, encode, read_stream};
use crate::lease::{AcquireOutcome, Claimant, Lease, read_lease, try_acquire};
use crate::registry::{Registry, panic_message};
use crate::retry::RetryPolicy;
use crate::transaction::{RunCtx, Transaction, cancelled, run_stream};
use crate::{Error, Result, StepError};

/// A journal record as it is written, passed to a progress listener.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The run.
    pub run_id: Uuid,
    /// The record's sequence number in the run's stream.
    pub seq: u64,
    /// The record type (`step_started`, `hook_staged`, `commit_decided`, …).
    pub kind: String,
    /// The record as JSON.
    pub record: Value,
}

/// Called after every record the engine appends to a run's journal, synchronously and
/// while the run's journal is locked: keep it short (update a progress bar, log a line).
pub type ProgressListener = Arc<dyn Fn(&Progress) + Send + Sync>;

pub(crate) struct EngineInner {
    pub journal: Arc<dyn Journal>,
    pub registry: Registry,
    pub clock: Arc<dyn Clock>,
    pub lease_ttl: Duration,
    pub renew_interval: Duration,
    pub lease_poll: Duration,
    pub hook_retry: RetryPolicy,
    pub holder: String,
    pub process: ProcessIdentity,
    pub listener: Option<ProgressListener>,
}

impl EngineInner {
    pub(crate) fn claimant(&self) -> Claimant<'_> {
        Claimant {
            holder: &self.holder,
            process: &self.process,
        }
    }
}

/// What to do when a serializable transaction finds its key leased by a live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseConflict {
    /// Fail at once with [`Error::LeaseHeld`].
    Fail,
    /// Poll until the lease is free, released or expired, for at most `max_wait`;
    /// then fail with [`Error::LeaseWaitTimeout`].
    Wait {
        /// Longest wait.
        max_wait: Duration,
    },
}

/// Cancels a transaction from outside: the transaction body is stopped at its next
/// await point and the transaction rolls back.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<(AtomicBool, Notify)>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Cancel.
    pub fn cancel(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }
    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.0.load(Ordering::SeqCst)
    }
    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

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
        /// Why it failed.
        error: String,
    },
    /// Ended with work undone: a compensation (after a failure) or a commit action (after
    /// the commit decision) kept failing. [`Engine::recover`] retries them.
    Failed {
        /// The run.
        run_id: Uuid,
        /// What went wrong.
        error: String,
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

/// Configures an [`Engine`].
pub struct EngineBuilder {
    journal: Arc<dyn Journal>,
    registry: Registry,
    clock: Arc<dyn Clock>,
    lease_ttl: Duration,
    renew_interval: Option<Duration>,
    lease_poll: Duration,
    hook_retry: RetryPolicy,
    listener: Option<ProgressListener>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("journal", &self.journal)
            .field("registry", &self.registry)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The handlers for compensations and commit actions.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }
    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// How long a lease lasts without renewal (default 60 s). A process that dies holds
    /// its key for at most this long.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
    /// How often a running transaction renews its lease (default: a third of the ttl).
    pub fn renew_interval(mut self, interval: Duration) -> Self {
        self.renew_interval = Some(interval);
        self
    }
    /// How often a waiting transaction looks at a held lease again (default 250 ms).
    pub fn lease_poll_interval(mut self, interval: Duration) -> Self {
        self.lease_poll = interval;
        self
    }
    /// How compensations and commit actions are retried (default: 5 attempts, 100 ms
    /// base delay, 5 s maximum delay). Only transient failures are retried.
    pub fn hook_retry(mut self, policy: RetryPolicy) -> Self {
        self.hook_retry = policy;
        self
    }
    /// Call `listener` after every journal record the engine writes.
    pub fn on_progress(mut self, listener: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }
    /// Build the engine.
    pub fn build(self) -> Engine {
        let renew_interval = self
            .renew_interval
            .unwrap_or(self.lease_ttl / 3)
            .max(Duration::from_millis(1));
        let process = ProcessIdentity::current();
        Engine {
            inner: Arc::new(EngineInner {
                journal: self.journal,
                registry: self.registry,
                clock: self.clock,
                lease_ttl: self.lease_ttl,
                renew_interval,
                lease_poll: self.lease_poll,
                hook_retry: self.hook_retry,
                holder: format!(
                    "{}:{}:{}",
                    process.host,
                    process.pid,
                    &Uuid::new_v4().simple().to_string()[..8]
                ),
                process,
                listener: self.listener,
            }),
        }
    }
}

/// The transaction engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("journal", &self.inner.journal)
            .field("holder", &self.inner.holder)
            .finish_non_exhaustive()
    }
}

/// A digest of a key, used to name its lease and index.
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Stops renewing a lease when dropped (the transaction ended or its future was dropped).
struct RenewalGuard(tokio::task::JoinHandle<()>);

impl Drop for RenewalGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// An engine with default settings.
    pub fn new(journal: impl Journal + 'static, registry: Registry) -> Self {
        Self::builder(journal).registry(registry).build()
    }

    /// Configure an engine over `journal`.
    pub fn builder(journal: impl Journal + 'static) -> EngineBuilder {
        Self::builder_shared(Arc::new(journal))
    }

    /// Configure an engine over a shared journal.
    pub fn builder_shared(journal: Arc<dyn Journal>) -> EngineBuilder {
        EngineBuilder {
            journal,
            registry: Registry::new(),
            clock: Arc::new(SystemClock),
            lease_ttl: Duration::from_secs(60),
            renew_interval: None,
            lease_poll: Duration::from_millis(250),
            hook_retry: RetryPolicy::new(5)
                .with_base_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5)),
            listener: None,
        }
    }

    /// The identity this engine writes into leases and fences (`<host>:<pid>:<nonce>`).
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The host and process this engine records in the leases it takes.
    pub fn process(&self) -> &ProcessIdentity {
        &self.inner.process
    }

    /// Start describing a transaction with idempotency key `key`.
    pub fn transaction(&self, key: impl Into<String>) -> TransactionBuilder<'_> {
        let key = key.into();
        TransactionBuilder {
            engine: self,
            name: key.clone(),
            key,
            params: Ok(Value::Null),
            isolation: Isolation::Serializable,
            on_conflict: LeaseConflict::Fail,
            timeout: None,
            cancel: None,
        }
    }

    fn start_renewal(&self, lease: &Arc<Lease>) -> RenewalGuard {
        let inner = Arc::clone(&self.inner);
        let lease = Arc::clone(lease);
        RenewalGuard(tokio::spawn(async move {
            loop {
                tokio::time::sleep(inner.renew_interval).await;
                match lease.renew(&*inner.journal, &*inner.clock).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lease = %lease.name, token = lease.token, "lease was taken over by another process");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(lease = %lease.name, error = %e, "lease renewal failed; will retry")
                    }
                }
            }
        }))
    }

    async fn acquire(
        &self,
        name: &str,
        key: &str,
        on_conflict: LeaseConflict,
    ) -> Result<Arc<Lease>> {
        let inner = &self.inner;
        let started = inner.clock.now();
        loop {
            match try_acquire(
                &*inner.journal,
                &*inner.clock,
                name,
                inner.claimant(),
                inner.lease_ttl,
            )
            .await?
            {
                AcquireOutcome::Acquired(lease) => return Ok(lease),
                AcquireOutcome::Busy(holder) => match on_conflict {
                    LeaseConflict::Fail => {
                        return Err(Error::LeaseHeld {
                            key: key.to_string(),
                            holder: holder.holder,
                            token: holder.token,
                            expires_at: holder.expires_at,
                        });
                    }
                    LeaseConflict::Wait { max_wait } => {
                        let waited = (inner.clock.now() - started).to_std().unwrap_or_default();
                        if waited >= max_wait {
                            return Err(Error::LeaseWaitTimeout {
                                key: key.to_string(),
                                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                            });
                        }
                        inner.clock.sleep(inner.lease_poll).await;
                    }
                },
            }
        }
    }

    pub(crate) async fn load_view(&self, run_id: Uuid) -> Result<(RunView, u64)> {
        let contents = read_stream::<RunEvent>(&*self.inner.journal, &run_stream(run_id)).await?;
        let view = RunView::replay(run_id, &contents.records, contents.damaged);
        Ok((view, contents.next_seq))
    }

    async fn runs_of_key(&self, digest: &str) -> Result<Vec<Uuid>> {
        let contents =
            read_stream::<KeyEvent>(&*self.inner.journal, &format!("keys/{digest}")).await?;
        let mut runs: Vec<Uuid> = contents
            .records
            .into_iter()
            .map(|(_, r)| match r.event {
                KeyEvent::RunRegistered { run_id, .. } => run_id,
            })
            .collect();
        runs.reverse();
        Ok(runs)
    }

    async fn register_key(&self, digest: &str, key: &str, run_id: Uuid, token: u64) -> Result<()> {
        let stream = format!("keys/{digest}");
        let mut storage_failures = 0u32;
        loop {
            let contents = read_stream::<KeyEvent>(&*self.inner.journal, &stream).await?;
            let registered = contents.records.iter().any(|(_, r)| match &r.event {
                KeyEvent::RunRegistered { run_id: id, .. } => *id == run_id,
            });
            if registered {
                // An earlier attempt was stored although it reported an error.
                return Ok(());
            }
            let record = Record {
                at: self.inner.clock.now(),
                token,
                event: KeyEvent::RunRegistered {
                    run_id,
                    key: key.to_string(),
                },
            };
            match self
                .inner
                .journal
                .append(&stream, contents.next_seq, encode(&stream, &record)?)
                .await
            {
                Err(Error::AppendConflict { .. }) => continue,
                Err(e @ Error::Storage { .. }) => {
                    storage_failures += 1;
                    if storage_failures >= 3 {
                        return Err(e);
                    }
                    tracing::warn!(stream = %stream, error = %e, "key index append failed; checking whether it was stored");
                }
                other => return other,
            }
        }
    }

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

    async fn lease_live(&self, view: &RunView) -> Result<bool> {
        if view.finished || !view.started {
            return Ok(view.finished);
        }
        let lease = read_lease(&*self.inner.journal, &view.lease).await?;
        let now = self.inner.clock.now();
        Ok(lease
            .current
            .is_some_and(|c| c.token == view.token && c.binds(now, &self.inner.process)))
    }

    /// Everything recorded about one run: steps, attempts, errors, compensations and
    /// commit actions, damaged records.
    pub async fn show_run(&self, run_id: Uuid) -> Result<RunReport> {
        let (view, next_seq) = self.load_view(run_id).await?;
        if next_seq == 0 {
            return Err(Error::RunNotFound { run_id });
        }
        if !view.started {
            return Err(Error::CorruptRun {
                stream: run_stream(run_id),
                reason: "its first record (run_started) is missing or damaged".to_string(),
            });
        }
        let live = self.lease_live(&view).await?;
        Ok(view.to_report(live))
    }

    /// Runs, newest first, filtered by name and state.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let mut streams = self.inner.journal.list_streams("runs").await?;
        // Run ids are UUIDv7: their text sorts by start time.
        streams.sort_unstable_by(|a, b| b.cmp(a));
        let mut runs = Vec::new();
        for stream in streams {
            let Some(run_id) = stream
                .strip_prefix("runs/")
                .and_then(|s| s.parse::<Uuid>().ok())
            else {
                continue;
            };
            let (view, _) = self.load_view(run_id).await?;
            if !view.started || filter.name.as_ref().is_some_and(|n| *n != view.report.name) {
                continue;
            }
            let live = self.lease_live(&view).await?;
            let report = view.to_report(live);
            if filter.state.is_some_and(|s| s != report.state) {
                continue;
            }
            runs.push(RunSummary::from(&report));
            if filter.limit.is_some_and(|limit| runs.len() >= limit) {
                break;
            }
        }
        Ok(runs)
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

/// A transaction being configured; [`run`](TransactionBuilder::run) executes it.
pub struct TransactionBuilder<'e> {
    engine: &'e Engine,
    key: String,
    name: String,
    params: Result<Value>,
    isolation: Isolation,
    on_conflict: LeaseConflict,
    timeout: Option<Duration>,
    cancel: Option<CancelToken>,
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
        let result: Result<Value, String> = tokio::select! {
            biased;
            () = cancelled(self.cancel.clone()) => Err("transaction was cancelled".to_string()),
            () = async {
                match timeout {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            } => Err(format!("transaction timed out after {:?}", timeout.unwrap_or_default())),
            caught = std::panic::AssertUnwindSafe(body(tx)).catch_unwind() => match caught {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(error)) => Err(error.to_string()),
                Err(panic) => Err(format!("transaction body panicked: {}", panic_message(&*panic))),
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
                        let error = format!(
                            "committed, but a commit action kept failing: {failure}; recover() will retry it"
                        );
                        ctx.finish(State::Failed, Some(error.clone()), Some(output), None)
                            .await?;
                        Ok(Outcome::Failed {
                            run_id,
                            error,
                            failed_hooks: failed_hooks(&ctx.view().await),
                        })
                    }
                }
            }
            Err(reason) => {
                let failures = ctx.rollback(0, &reason).await?;
                if failures.is_empty() {
                    ctx.finish(State::RolledBack, Some(reason.clone()), None, None)
                        .await?;
                    Ok(Outcome::RolledBack {
                        run_id,
                        error: reason,
                    })
                } else {
                    let error = format!(
                        "{reason}; rollback incomplete, compensations failed: {}",
                        failures.join("; ")
                    );
                    ctx.finish(State::Failed, Some(error.clone()), None, None)
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

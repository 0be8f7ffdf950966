//! The engine: configuration, leases of transaction keys, and run history. Running a
//! transaction is in `run.rs`, recovery in `recovery.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::events::{Isolation, KeyEvent, RunEvent};
use crate::history::{RunFilter, RunReport, RunSummary, RunView};
use crate::holder::ProcessIdentity;
use crate::journal::{Journal, Record, encode, read_stream};
use crate::lease::{AcquireOutcome, Claimant, Lease, read_lease, try_acquire};
use crate::registry::Registry;
use crate::retry::RetryPolicy;
use crate::run::TransactionBuilder;
use crate::transaction::run_stream;
use crate::{Error, Result};

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
pub(crate) struct RenewalGuard(tokio::task::JoinHandle<()>);

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

    pub(crate) fn start_renewal(&self, lease: &Arc<Lease>) -> RenewalGuard {
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

    pub(crate) async fn acquire(
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

    pub(crate) async fn runs_of_key(&self, digest: &str) -> Result<Vec<Uuid>> {
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

    pub(crate) async fn register_key(
        &self,
        digest: &str,
        key: &str,
        run_id: Uuid,
        token: u64,
    ) -> Result<()> {
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

    pub(crate) async fn lease_live(&self, view: &RunView) -> Result<bool> {
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

//! A running transaction: the handle that steps use, and the journal writer behind it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::engine::{EngineInner, Progress};
use crate::events::{HookKind, RunEvent, State};
use crate::history::{HookReport, RunView};
use crate::journal::{Record, decode_stream, encode};
use crate::registry::panic_message;
use crate::retry::RetryPolicy;
use crate::{Error, Result, StepError};

pub(crate) fn run_stream(run_id: Uuid) -> String {
    format!("runs/{run_id}")
}

struct Live {
    next_seq: u64,
    view: RunView,
}

/// Writes one run's records under one fencing token and keeps the replayed view current.
pub(crate) struct RunCtx {
    pub engine: Arc<EngineInner>,
    pub run_id: Uuid,
    pub stream: String,
    pub token: u64,
    live: Mutex<Live>,
}

impl RunCtx {
    pub fn new(
        engine: Arc<EngineInner>,
        run_id: Uuid,
        token: u64,
        next_seq: u64,
        view: RunView,
    ) -> Self {
        Self {
            engine,
            run_id,
            stream: run_stream(run_id),
            token,
            live: Mutex::new(Live { next_seq, view }),
        }
    }

    pub async fn view(&self) -> RunView {
        self.live.lock().await.view.clone()
    }

    /// Append the event that `make` builds from the current view. If the slot is taken by
    /// a record of our own (a write whose future was dropped after it reached storage),
    /// adopt it and try again at the next slot; if it is taken by a process with a newer
    /// token, this run has been fenced.
    pub async fn append_with(&self, mut make: impl FnMut(&RunView) -> RunEvent) -> Result<u64> {
        let mut live = self.live.lock().await;
        let mut storage_failures = 0u32;
        // After an ambiguous storage error, the exact record to send again.
        let mut resend: Option<(u64, Record<RunEvent>, bytes::Bytes)> = None;
        loop {
            let (seq, record, bytes) = match resend.take() {
                Some(pending) => pending,
                None => {
                    let record = Record {
                        at: self.engine.clock.now(),
                        token: self.token,
                        event: make(&live.view),
                    };
                    let bytes = encode(&self.stream, &record)?;
                    (live.next_seq, record, bytes)
                }
            };
            match self
                .engine
                .journal
                .append(&self.stream, seq, bytes.clone())
                .await
            {
                Ok(()) => return Ok(self.applied(&mut live, seq, &record)),
                Err(Error::AppendConflict { .. }) => {
                    let raw = self.engine.journal.read(&self.stream, seq).await?;
                    if raw
                        .first()
                        .is_some_and(|(s, stored)| *s == seq && *stored == bytes)
                    {
                        // Our own earlier attempt was stored after all.
                        return Ok(self.applied(&mut live, seq, &record));
                    }
                    let contents = decode_stream::<RunEvent>(raw, seq);
                    for (_, other) in &contents.records {
                        if let RunEvent::Fenced { by } = &other.event
                            && other.token > self.token
                        {
                            return Err(Error::Fenced {
                                run_id: self.run_id,
                                ours: self.token,
                                token: other.token,
                                by: by.clone(),
                            });
                        }
                    }
                    // Records of our own token that we did not see acknowledged (a write
                    // whose future was dropped after it reached storage) are adopted, and
                    // the event is rebuilt on top of them.
                    let ours = contents.records.iter().all(|(_, r)| r.token == self.token);
                    if !ours || contents.next_seq <= seq {
                        return Err(Error::AppendConflict {
                            stream: self.stream.clone(),
                            seq,
                        });
                    }
                    for (_, other) in &contents.records {
                        live.view.apply(other);
                    }
                    live.next_seq = contents.next_seq;
                }
                // A storage error is ambiguous: the record may have been stored. Sending
                // the same bytes to the same slot again either stores them or finds them.
                Err(e @ Error::Storage { .. }) => {
                    storage_failures += 1;
                    if storage_failures >= 3 {
                        return Err(e);
                    }
                    tracing::warn!(stream = %self.stream, seq, error = %e, "journal append failed; retrying");
                    self.engine
                        .clock
                        .sleep(std::time::Duration::from_millis(
                            50 * u64::from(storage_failures),
                        ))
                        .await;
                    resend = Some((seq, record, bytes));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn applied(&self, live: &mut Live, seq: u64, record: &Record<RunEvent>) -> u64 {
        live.view.apply(record);
        live.next_seq = seq + 1;
        if let Some(listener) = &self.engine.listener {
            let value = serde_json::to_value(&record.event).unwrap_or(Value::Null);
            let kind = value["type"].as_str().unwrap_or("unknown").to_string();
            listener(&Progress {
                run_id: self.run_id,
                seq,
                kind,
                record: value,
            });
        }
        seq
    }

    pub async fn append(&self, event: RunEvent) -> Result<u64> {
        self.append_with(move |_| event.clone()).await
    }

    async fn stage(
        &self,
        txn: u32,
        step: Option<u32>,
        kind: HookKind,
        name: &str,
        payload: Value,
    ) -> Result<u32> {
        let mut staged = 0;
        self.append_with(|view| {
            staged = u32::try_from(view.report.hooks.len()).unwrap_or(u32::MAX);
            RunEvent::HookStaged {
                hook: staged,
                txn,
                step,
                kind,
                name: name.to_string(),
                payload: payload.clone(),
            }
        })
        .await?;
        Ok(staged)
    }

    /// Run one hook with the engine's hook retry policy. The outer result is a journal
    /// failure; the inner one is the hook's own final error.
    pub async fn run_hook(&self, hook: &HookReport) -> Result<Result<(), String>> {
        let policy = &self.engine.hook_retry;
        let clock = &self.engine.clock;
        let started = clock.now();
        let mut attempt = hook.attempts;
        for n in 1..=policy.max_attempts {
            attempt += 1;
            let call = self
                .engine
                .registry
                .invoke(&hook.name, hook.payload.clone());
            let result = match policy.attempt_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                    Err(StepError::transient(format!("timed out after {limit:?}")))
                }),
                None => call.await,
            };
            match result {
                Ok(()) => {
                    self.append(RunEvent::HookDone {
                        hook: hook.id,
                        attempts: attempt,
                    })
                    .await?;
                    return Ok(Ok(()));
                }
                Err(e) => {
                    let delay = policy.delay(n);
                    if e.is_transient()
                        && n < policy.max_attempts
                        && within_deadline(policy, started, clock.now(), delay)
                    {
                        self.append(RunEvent::HookAttemptFailed {
                            hook: hook.id,
                            attempt,
                            error: e.to_string(),
                            transient: true,
                        })
                        .await?;
                        clock.sleep(delay).await;
                        continue;
                    }
                    let error = format!(
                        "{} {:?} (#{}) failed after {} attempt(s): {e}",
                        match hook.kind {
                            HookKind::Compensation => "compensation",
                            HookKind::CommitAction => "commit action",
                        },
                        hook.name,
                        hook.id,
                        attempt
                    );
                    self.append(RunEvent::HookGaveUp {
                        hook: hook.id,
                        attempts: attempt,
                        error: error.clone(),
                    })
                    .await?;
                    return Ok(Err(error));
                }
            }
        }
        // The loop always returns: its last iteration cannot retry.
        Ok(Err(format!("hook {:?} was not attempted", hook.name)))
    }

    /// Compensate `txn` and its nested transactions, last staged first. Every compensation
    /// is tried even if an earlier one fails; the failures are returned.
    pub async fn rollback(&self, txn: u32, reason: &str) -> Result<Vec<String>> {
        self.append(RunEvent::TxnRollingBack {
            txn,
            reason: reason.to_string(),
        })
        .await?;
        let pending = self.view().await.pending_compensations(txn);
        let mut failures = Vec::new();
        for hook in &pending {
            if let Err(error) = self.run_hook(hook).await? {
                failures.push(error);
            }
        }
        if txn != 0 {
            self.append(RunEvent::TxnRolledBack { txn }).await?;
        }
        Ok(failures)
    }

    /// Run the commit actions that have not completed, in staging order, stopping at the
    /// first that keeps failing (later ones may depend on it).
    pub async fn complete_commit(&self) -> Result<Option<String>> {
        let pending = self.view().await.pending_commit_actions();
        for hook in &pending {
            if let Err(error) = self.run_hook(hook).await? {
                return Ok(Some(error));
            }
        }
        Ok(None)
    }

    pub async fn finish(
        &self,
        state: State,
        error: Option<String>,
        output: Option<Value>,
        committed_run: Option<Uuid>,
    ) -> Result<()> {
        self.append(RunEvent::RunFinished {
            state,
            error,
            output,
            committed_run,
        })
        .await
        .map(|_| ())
    }
}

fn within_deadline(
    policy: &RetryPolicy,
    started: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    delay: std::time::Duration,
) -> bool {
    match policy.deadline {
        None => true,
        Some(deadline) => {
            let spent = (now - started).to_std().unwrap_or_default();
            spent.saturating_add(delay) <= deadline
        }
    }
}

fn to_payload(what: &str, payload: impl Serialize) -> Result<Value> {
    serde_json::to_value(payload).map_err(|source| Error::Payload {
        what: what.to_string(),
        source,
    })
}

/// A handle on a running transaction (cheap to clone).
///
/// Stage a compensation *before* the side effect it undoes: the compensation is in the
/// journal before anything needs undoing, so a crash at any instant leaves enough behind
/// for [`Engine::recover`](crate::Engine::recover) to undo it.
#[derive(Clone)]
pub struct Transaction {
    pub(crate) ctx: Arc<RunCtx>,
    pub(crate) txn: u32,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("run_id", &self.ctx.run_id)
            .field("txn", &self.txn)
            .finish()
    }
}

impl Transaction {
    /// The run this transaction belongs to.
    pub fn run_id(&self) -> Uuid {
        self.ctx.run_id
    }

    /// This transaction's number within the run (0 for the top level).
    pub fn id(&self) -> u32 {
        self.txn
    }

    /// Journal a compensation: handler `name` of the engine's registry, called with
    /// `payload` if this transaction (or an enclosing one) rolls back. Returns the hook id.
    pub async fn stage_compensation(&self, name: &str, payload: impl Serialize) -> Result<u32> {
        let payload = to_payload(name, payload)?;
        self.ctx
            .stage(self.txn, None, HookKind::Compensation, name, payload)
            .await
    }

    /// Journal a commit action: handler `name`, called with `payload` once the top-level
    /// transaction commits. Returns the hook id.
    pub async fn stage_commit_action(&self, name: &str, payload: impl Serialize) -> Result<u32> {
        let payload = to_payload(name, payload)?;
        self.ctx
            .stage(self.txn, None, HookKind::CommitAction, name, payload)
            .await
    }

    /// Start describing a step.
    pub fn step(&self, name: impl Into<String>) -> Step<'_> {
        Step {
            tx: self,
            name: name.into(),
            policy: RetryPolicy::default(),
        }
    }

    /// Run `body` as a nested transaction. If it succeeds, it commits into this one: its
    /// compensations run if this transaction later rolls back, its commit actions run when
    /// the top level commits. If it fails, its compensations run now (last staged first)
    /// and its error is returned; this transaction may carry on or fail in turn.
    pub async fn nested<F>(&self, name: impl Into<String>, body: F) -> Result<Value, StepError>
    where
        F: AsyncFnOnce(Transaction) -> Result<Value, StepError>,
    {
        let name = name.into();
        let mut child_id = 0;
        let parent = self.txn;
        self.ctx
            .append_with(|view| {
                child_id = u32::try_from(view.report.transactions.len()).unwrap_or(u32::MAX);
                RunEvent::TxnBegan {
                    txn: child_id,
                    parent: Some(parent),
                    name: name.clone(),
                }
            })
            .await?;
        let child = Transaction {
            ctx: Arc::clone(&self.ctx),
            txn: child_id,
        };
        let result = match AssertUnwindSafe(body(child)).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(StepError::permanent(format!(
                "nested transaction {name:?} panicked: {}",
                panic_message(&*panic)
            ))),
        };
        match result {
            Ok(output) => {
                self.ctx
                    .append(RunEvent::TxnCommitted { txn: child_id })
                    .await?;
                Ok(output)
            }
            Err(error) => {
                let failures = self.ctx.rollback(child_id, error.message()).await?;
                if failures.is_empty() {
                    Err(error)
                } else {
                    Err(StepError::permanent(format!(
                        "nested transaction {name:?} failed ({error}) and its rollback failed: {}",
                        failures.join("; ")
                    )))
                }
            }
        }
    }
}

/// A step being configured; [`run`](Step::run) executes it.
#[derive(Debug)]
pub struct Step<'a> {
    tx: &'a Transaction,
    name: String,
    policy: RetryPolicy,
}

/// What a step attempt sees: its attempt number and a way to stage hooks.
#[derive(Clone, Debug)]
pub struct StepContext {
    tx: Transaction,
    step: u32,
    attempt: u32,
}

impl StepContext {
    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The step's number within the run.
    pub fn step_id(&self) -> u32 {
        self.step
    }

    /// The enclosing transaction.
    pub fn transaction(&self) -> &Transaction {
        &self.tx
    }

    /// The run id.
    pub fn run_id(&self) -> Uuid {
        self.tx.run_id()
    }

    /// Like [`Transaction::stage_compensation`], recorded against this step.
    pub async fn stage_compensation(&self, name: &str, payload: impl Serialize) -> Result<u32> {
        let payload = to_payload(name, payload)?;
        self.tx
            .ctx
            .stage(
                self.tx.txn,
                Some(self.step),
                HookKind::Compensation,
                name,
                payload,
            )
            .await
    }

    /// Like [`Transaction::stage_commit_action`], recorded against this step.
    pub async fn stage_commit_action(&self, name: &str, payload: impl Serialize) -> Result<u32> {
        let payload = to_payload(name, payload)?;
        self.tx
            .ctx
            .stage(
                self.tx.txn,
                Some(self.step),
                HookKind::CommitAction,
                name,
                payload,
            )
            .await
    }
}

impl Step<'_> {
    /// Retry the step according to `policy` (default: one attempt).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Run the step: call `attempt` until it succeeds, fails permanently, runs out of
    /// attempts or passes the deadline. A panic is a permanent failure; an attempt that
    /// exceeds the attempt timeout is a transient one. A step that fails and then succeeds
    /// on retry is a success: the transaction stays healthy.
    pub async fn run<T, F>(self, mut attempt: F) -> Result<T, StepError>
    where
        T: Serialize,
        F: AsyncFnMut(StepContext) -> Result<T, StepError>,
    {
        let ctx = &self.tx.ctx;
        let clock = Arc::clone(&ctx.engine.clock);
        let txn = self.tx.txn;
        let mut step_id = 0;
        ctx.append_with(|view| {
            step_id = u32::try_from(view.report.steps.len()).unwrap_or(u32::MAX);
            RunEvent::StepStarted {
                step: step_id,
                txn,
                name: self.name.clone(),
            }
        })
        .await?;
        let started = clock.now();
        let elapsed_ms = |clock: &dyn crate::Clock| {
            u64::try_from((clock.now() - started).num_milliseconds()).unwrap_or(0)
        };
        let mut n = 0;
        loop {
            n += 1;
            let context = StepContext {
                tx: self.tx.clone(),
                step: step_id,
                attempt: n,
            };
            let guarded = AssertUnwindSafe(attempt(context)).catch_unwind();
            let outcome = match self.policy.attempt_timeout {
                Some(limit) => match tokio::time::timeout(limit, guarded).await {
                    Ok(caught) => caught,
                    Err(_) => Ok(Err(StepError::transient(format!(
                        "attempt {n} of step {:?} timed out after {limit:?}",
                        self.name
                    )))),
                },
                None => guarded.await,
            };
            let outcome = outcome.unwrap_or_else(|panic| {
                Err(StepError::permanent(format!(
                    "step {:?} panicked: {}",
                    self.name,
                    panic_message(&*panic)
                )))
            });
            match outcome {
                Ok(value) => {
                    let output = to_payload(&format!("output of step {:?}", self.name), &value)?;
                    ctx.append(RunEvent::StepCompleted {
                        step: step_id,
                        attempts: n,
                        output,
                        duration_ms: elapsed_ms(&*clock),
                    })
                    .await?;
                    return Ok(value);
                }
                Err(error) => {
                    let delay = self.policy.delay(n);
                    let retry = error.is_transient()
                        && n < self.policy.max_attempts
                        && within_deadline(&self.policy, started, clock.now(), delay);
                    ctx.append(RunEvent::AttemptFailed {
                        step: step_id,
                        attempt: n,
                        error: error.to_string(),
                        transient: error.is_transient(),
                        retry_in_ms: retry
                            .then(|| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
                    })
                    .await?;
                    if retry {
                        clock.sleep(delay).await;
                        continue;
                    }
                    let failed = error.gave_up(&self.name, n);
                    ctx.append(RunEvent::StepFailed {
                        step: step_id,
                        attempts: n,
                        error: failed.to_string(),
                        duration_ms: elapsed_ms(&*clock),
                    })
                    .await?;
                    return Err(failed);
                }
            }
        }
    }
}

/// Resolve when `token` is cancelled, never if there is none.
pub(crate) async fn cancelled(token: Option<crate::CancelToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

//! Run history: replaying a run's journal into a report, listing runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::events::{HookKind, Isolation, RunEvent, State};
use crate::journal::{DamagedRecord, Record};

/// One attempt of a step that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// What went wrong.
    pub error: String,
    /// Whether it was considered transient.
    pub transient: bool,
    /// The backoff before the next attempt, if one followed.
    pub retry_in_ms: Option<u64>,
}

/// A step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step number within the run, from 0.
    pub id: u32,
    /// The step's name.
    pub name: String,
    /// The transaction it ran in (0 is the run's top-level transaction).
    pub txn: u32,
    /// Running, Completed, Failed (or Crashed if the run died during it).
    pub state: State,
    /// Attempts made so far.
    pub attempts: u32,
    /// The errors of failed attempts, in order.
    pub errors: Vec<AttemptError>,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// How long it took, once finished.
    pub duration_ms: Option<u64>,
    /// What it returned, once completed.
    pub output: Option<Value>,
}

/// Where a staged compensation or commit action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    /// Journalled, not run (yet).
    Staged,
    /// Ran to completion.
    Done,
    /// Kept failing; the last error is reported. `recover()` tries again.
    Failed,
    /// Will never run: a commit action of a transaction that rolled back, or a
    /// compensation of a run that committed.
    Discarded,
}

/// A staged compensation or commit action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookReport {
    /// Staging number within the run, from 0 (compensations run in reverse of it,
    /// commit actions in its order).
    pub id: u32,
    /// Compensation or commit action.
    pub kind: HookKind,
    /// The registered handler name.
    pub name: String,
    /// The journalled payload.
    pub payload: Value,
    /// The transaction that staged it.
    pub txn: u32,
    /// The step that staged it, if any.
    pub step: Option<u32>,
    /// Where it stands.
    pub state: HookState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error, if an attempt failed.
    pub last_error: Option<String>,
    /// When it was staged.
    pub staged_at: DateTime<Utc>,
}

/// The state of a (possibly nested) transaction within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Running.
    Open,
    /// Nested: committed into its parent. Top-level: commit decided.
    Committed,
    /// Rolling back or rolled back.
    RolledBack,
}

/// A transaction of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnReport {
    /// Transaction number, 0 for the top level.
    pub id: u32,
    /// The enclosing transaction.
    pub parent: Option<u32>,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: TxnState,
    /// Why it rolled back.
    pub rollback_reason: Option<String>,
}

/// Everything the journal knows about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run id (a UUIDv7: ids sort by start time).
    pub run_id: Uuid,
    /// The run's name.
    pub name: String,
    /// Its idempotency key.
    pub key: String,
    /// The caller's parameters.
    pub params: Value,
    /// Its isolation mode.
    pub isolation: Isolation,
    /// Its state.
    pub state: State,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed or rolled back.
    pub error: Option<String>,
    /// The committed output (or, when skipped, the output of the run that committed).
    pub output: Option<Value>,
    /// When skipped: the run that had committed the key.
    pub committed_run: Option<Uuid>,
    /// Its transactions, the top level first.
    pub transactions: Vec<TxnReport>,
    /// Its steps in start order.
    pub steps: Vec<StepReport>,
    /// Its compensations and commit actions in staging order.
    pub hooks: Vec<HookReport>,
    /// Who took over the run after its process stopped renewing its lease.
    pub fenced_by: Option<String>,
    /// Journal records that were damaged and skipped (e.g. a torn last write).
    pub damaged_records: Vec<DamagedRecord>,
}

impl RunReport {
    /// The compensations, in staging order.
    pub fn compensations(&self) -> impl Iterator<Item = &HookReport> {
        self.hooks
            .iter()
            .filter(|h| h.kind == HookKind::Compensation)
    }

    /// The commit actions, in staging order.
    pub fn commit_actions(&self) -> impl Iterator<Item = &HookReport> {
        self.hooks
            .iter()
            .filter(|h| h.kind == HookKind::CommitAction)
    }
}

/// One line of the run list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: Uuid,
    /// The run's name.
    pub name: String,
    /// Its key.
    pub key: String,
    /// Its state.
    pub state: State,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Number of steps.
    pub steps: usize,
    /// Why it failed or rolled back.
    pub error: Option<String>,
}

impl From<&RunReport> for RunSummary {
    fn from(r: &RunReport) -> Self {
        Self {
            run_id: r.run_id,
            name: r.name.clone(),
            key: r.key.clone(),
            state: r.state,
            started_at: r.started_at,
            ended_at: r.ended_at,
            steps: r.steps.len(),
            error: r.error.clone(),
        }
    }
}

/// Which runs [`Engine::list_runs`](crate::Engine::list_runs) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs with this name.
    pub name: Option<String>,
    /// Only runs in this state.
    pub state: Option<State>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

impl RunFilter {
    /// All runs.
    pub fn all() -> Self {
        Self::default()
    }
    /// Only runs with this name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Only runs in this state.
    pub fn with_state(mut self, state: State) -> Self {
        self.state = Some(state);
        self
    }
    /// At most `limit` runs.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// A run's state rebuilt from its records; the live engine keeps one up to date too.
#[derive(Debug, Clone)]
pub(crate) struct RunView {
    pub report: RunReport,
    pub lease: String,
    /// Fencing token of the process that started the run.
    pub token: u64,
    pub started: bool,
    pub finished: bool,
    pub commit_decided: Option<Value>,
    pub max_fence: u64,
    txn_index: BTreeMap<u32, usize>,
    step_index: BTreeMap<u32, usize>,
}

impl RunView {
    pub fn empty(run_id: Uuid) -> Self {
        Self {
            report: RunReport {
                run_id,
                name: String::new(),
                key: String::new(),
                params: Value::Null,
                isolation: Isolation::default(),
                state: State::Pending,
                started_at: DateTime::<Utc>::UNIX_EPOCH,
                ended_at: None,
                error: None,
                output: None,
                committed_run: None,
                transactions: Vec::new(),
                steps: Vec::new(),
                hooks: Vec::new(),
                fenced_by: None,
                damaged_records: Vec::new(),
            },
            lease: String::new(),
            token: 0,
            started: false,
            finished: false,
            commit_decided: None,
            max_fence: 0,
            txn_index: BTreeMap::new(),
            step_index: BTreeMap::new(),
        }
    }

    pub fn replay(
        run_id: Uuid,
        records: &[(u64, Record<RunEvent>)],
        damaged: Vec<DamagedRecord>,
    ) -> Self {
        let mut view = Self::empty(run_id);
        for (_, record) in records {
            view.apply(record);
        }
        view.report.damaged_records = damaged;
        view
    }

    fn txn_mut(&mut self, txn: u32) -> Option<&mut TxnReport> {
        let i = *self.txn_index.get(&txn)?;
        self.report.transactions.get_mut(i)
    }

    fn txn(&self, txn: u32) -> Option<&TxnReport> {
        self.report.transactions.get(*self.txn_index.get(&txn)?)
    }

    fn step_mut(&mut self, step: u32) -> Option<&mut StepReport> {
        let i = *self.step_index.get(&step)?;
        self.report.steps.get_mut(i)
    }

    fn hook_mut(&mut self, hook: u32) -> Option<&mut HookReport> {
        self.report.hooks.get_mut(usize::try_from(hook).ok()?)
    }

    pub fn apply(&mut self, record: &Record<RunEvent>) {
        let at = record.at;
        match &record.event {
            RunEvent::RunStarted {
                run_id,
                name,
                key,
                params,
                isolation,
                lease,
                holder: _,
            } => {
                self.report.run_id = *run_id;
                self.report.name = name.clone();
                self.report.key = key.clone();
                self.report.params = params.clone();
                self.report.isolation = *isolation;
                self.report.started_at = at;
                self.report.state = State::Running;
                self.lease = lease.clone();
                self.token = record.token;
                self.started = true;
            }
            RunEvent::TxnBegan { txn, parent, name } => {
                self.txn_index.insert(*txn, self.report.transactions.len());
                self.report.transactions.push(TxnReport {
                    id: *txn,
                    parent: *parent,
                    name: name.clone(),
                    state: TxnState::Open,
                    rollback_reason: None,
                });
            }
            RunEvent::StepStarted { step, txn, name } => {
                self.step_index.insert(*step, self.report.steps.len());
                self.report.steps.push(StepReport {
                    id: *step,
                    name: name.clone(),
                    txn: *txn,
                    state: State::Running,
                    attempts: 1,
                    errors: Vec::new(),
                    started_at: at,
                    duration_ms: None,
                    output: None,
                });
            }
            RunEvent::AttemptFailed {
                step,
                attempt,
                error,
                transient,
                retry_in_ms,
            } => {
                if let Some(s) = self.step_mut(*step) {
                    s.errors.push(AttemptError {
                        attempt: *attempt,
                        error: error.clone(),
                        transient: *transient,
                        retry_in_ms: *retry_in_ms,
                    });
                    s.attempts = *attempt + u32::from(retry_in_ms.is_some());
                }
            }
            RunEvent::StepCompleted {
                step,
                attempts,
                output,
                duration_ms,
            } => {
                if let Some(s) = self.step_mut(*step) {
                    s.state = State::Completed;
                    s.attempts = *attempts;
                    s.output = Some(output.clone());
                    s.duration_ms = Some(*duration_ms);
                }
            }
            RunEvent::StepFailed {
                step,
                attempts,
                error: _,
                duration_ms,
            } => {
                if let Some(s) = self.step_mut(*step) {
                    s.state = State::Failed;
                    s.attempts = *attempts;
                    s.duration_ms = Some(*duration_ms);
                }
            }
            RunEvent::HookStaged {
                hook,
                txn,
                step,
                kind,
                name,
                payload,
            } => {
                // Hook ids are dense and in staging order; guard against a damaged gap.
                if usize::try_from(*hook).ok() == Some(self.report.hooks.len()) {
                    self.report.hooks.push(HookReport {
                        id: *hook,
                        kind: *kind,
                        name: name.clone(),
                        payload: payload.clone(),
                        txn: *txn,
                        step: *step,
                        state: HookState::Staged,
                        attempts: 0,
                        last_error: None,
                        staged_at: at,
                    });
                }
            }
            RunEvent::HookAttemptFailed {
                hook,
                attempt,
                error,
                transient: _,
            } => {
                if let Some(h) = self.hook_mut(*hook) {
                    h.attempts = h.attempts.max(*attempt);
                    h.last_error = Some(error.clone());
                }
            }
            RunEvent::HookDone { hook, attempts } => {
                if let Some(h) = self.hook_mut(*hook) {
                    h.state = HookState::Done;
                    h.attempts = h.attempts.max(*attempts);
                }
            }
            RunEvent::HookGaveUp {
                hook,
                attempts,
                error,
            } => {
                if let Some(h) = self.hook_mut(*hook) {
                    h.state = HookState::Failed;
                    h.attempts = h.attempts.max(*attempts);
                    h.last_error = Some(error.clone());
                }
            }
            RunEvent::TxnCommitted { txn } => {
                if let Some(t) = self.txn_mut(*txn) {
                    t.state = TxnState::Committed;
                }
            }
            RunEvent::TxnRollingBack { txn, reason } => {
                if let Some(t) = self.txn_mut(*txn) {
                    t.state = TxnState::RolledBack;
                    t.rollback_reason = Some(reason.clone());
                }
            }
            RunEvent::TxnRolledBack { .. } => {}
            RunEvent::CommitDecided { output } => {
                self.commit_decided = Some(output.clone());
                if let Some(t) = self.txn_mut(0) {
                    t.state = TxnState::Committed;
                }
            }
            RunEvent::RunFinished {
                state,
                error,
                output,
                committed_run,
            } => {
                self.finished = true;
                self.report.state = *state;
                self.report.ended_at = Some(at);
                self.report.error = error.clone();
                self.report.output = output.clone();
                self.report.committed_run = *committed_run;
            }
            RunEvent::Fenced { by } => {
                self.max_fence = self.max_fence.max(record.token);
                self.report.fenced_by = Some(by.clone());
            }
        }
    }

    /// Whether `txn` is `ancestor` or nested (at any depth) in it.
    fn within(&self, mut txn: u32, ancestor: u32) -> bool {
        loop {
            if txn == ancestor {
                return true;
            }
            match self.txn(txn).and_then(|t| t.parent) {
                Some(parent) => txn = parent,
                None => return false,
            }
        }
    }

    /// Whether a commit action staged in `txn` belongs to the committed outcome: every
    /// nested transaction between it and the top level committed into its parent.
    fn commit_reaches_top(&self, mut txn: u32) -> bool {
        loop {
            let Some(t) = self.txn(txn) else { return false };
            match t.parent {
                None => return true,
                Some(parent) if t.state == TxnState::Committed => txn = parent,
                Some(_) => return false,
            }
        }
    }

    /// Compensations of `txn` and its nested transactions that have not run to
    /// completion, in the order they must run (reverse staging order).
    pub fn pending_compensations(&self, txn: u32) -> Vec<HookReport> {
        let mut hooks: Vec<HookReport> = self
            .report
            .hooks
            .iter()
            .filter(|h| {
                h.kind == HookKind::Compensation
                    && h.state != HookState::Done
                    && self.within(h.txn, txn)
            })
            .cloned()
            .collect();
        hooks.reverse();
        hooks
    }

    /// Commit actions that belong to the committed outcome and have not completed, in
    /// staging order.
    pub fn pending_commit_actions(&self) -> Vec<HookReport> {
        self.report
            .hooks
            .iter()
            .filter(|h| {
                h.kind == HookKind::CommitAction
                    && h.state != HookState::Done
                    && self.commit_reaches_top(h.txn)
            })
            .cloned()
            .collect()
    }

    /// Whether recovery has anything to do for this run.
    pub fn needs_recovery(&self) -> bool {
        if !self.started {
            return false;
        }
        if !self.finished {
            return true;
        }
        match self.report.state {
            State::Failed => {
                if self.commit_decided.is_some() {
                    !self.pending_commit_actions().is_empty()
                } else {
                    !self.pending_compensations(0).is_empty()
                }
            }
            _ => false,
        }
    }

    /// The report as a reader sees it; `lease_live` says whether the run's owner still
    /// holds its lease (used to tell Running from Crashed).
    pub fn to_report(&self, lease_live: bool) -> RunReport {
        let mut report = self.report.clone();
        let settled = |h: &mut HookReport, committed: bool| {
            let discard = match h.kind {
                HookKind::Compensation => committed,
                HookKind::CommitAction => !committed || !self.commit_reaches_top(h.txn),
            };
            if discard && h.state != HookState::Done {
                h.state = HookState::Discarded;
            }
        };
        let committed = self.commit_decided.is_some();
        if self.finished {
            for h in &mut report.hooks {
                settled(h, committed);
            }
        } else if !lease_live {
            report.state = State::Crashed;
            for s in &mut report.steps {
                if s.state == State::Running {
                    s.state = State::Crashed;
                }
            }
        }
        report
    }
}

//! What the journal records about runs, leases and keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::holder::ProcessIdentity;

/// The state of a run or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not started yet.
    Pending,
    /// In progress, and its process holds a live lease.
    Running,
    /// Committed with every commit action done (a step: succeeded).
    Completed,
    /// Ended with work left undone: a compensation or commit action kept failing
    /// (a step: failed after its last attempt). `recover()` retries what is left.
    Failed,
    /// Rolled back: every staged compensation ran.
    RolledBack,
    /// Not run, because a run with the same key had already committed.
    Skipped,
    /// Its process died while it was open; `recover()` will finish or roll it back.
    Crashed,
}

impl State {
    /// Whether the state is final and nothing is left for recovery.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::RolledBack | State::Skipped)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
            State::RolledBack => "rolled_back",
            State::Skipped => "skipped",
            State::Crashed => "crashed",
        };
        f.write_str(name)
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "pending" => State::Pending,
            "running" => State::Running,
            "completed" => State::Completed,
            "failed" => State::Failed,
            "rolled_back" | "rolledback" => State::RolledBack,
            "skipped" => State::Skipped,
            "crashed" => State::Crashed,
            other => return Err(format!("unknown state {other:?}")),
        })
    }
}

/// How a transaction excludes concurrent runs of the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// An exclusive, expiring, fenced lease on the key: two processes never run the same
    /// key at the same time.
    #[default]
    Serializable,
    /// No lease on the key: concurrent runs of one key may both run; a committed key is
    /// still skipped.
    ReadCommitted,
}

/// Whether a staged hook undoes a side effect or finishes a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Runs on rollback, in reverse staging order.
    Compensation,
    /// Runs on commit, in staging order.
    CommitAction,
}

/// A record of a run's stream (`runs/<run-id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RunEvent {
    RunStarted {
        run_id: Uuid,
        name: String,
        key: String,
        params: Value,
        isolation: Isolation,
        lease: String,
        holder: String,
    },
    TxnBegan {
        txn: u32,
        parent: Option<u32>,
        name: String,
    },
    StepStarted {
        step: u32,
        txn: u32,
        name: String,
    },
    AttemptFailed {
        step: u32,
        attempt: u32,
        error: String,
        transient: bool,
        retry_in_ms: Option<u64>,
    },
    StepCompleted {
        step: u32,
        attempts: u32,
        output: Value,
        duration_ms: u64,
    },
    StepFailed {
        step: u32,
        attempts: u32,
        error: String,
        duration_ms: u64,
    },
    HookStaged {
        hook: u32,
        txn: u32,
        step: Option<u32>,
        kind: HookKind,
        name: String,
        payload: Value,
    },
    HookAttemptFailed {
        hook: u32,
        attempt: u32,
        error: String,
        transient: bool,
    },
    HookDone {
        hook: u32,
        attempts: u32,
    },
    HookGaveUp {
        hook: u32,
        attempts: u32,
        error: String,
    },
    TxnCommitted {
        txn: u32,
    },
    TxnRollingBack {
        txn: u32,
        reason: String,
    },
    TxnRolledBack {
        txn: u32,
    },
    CommitDecided {
        output: Value,
    },
    RunFinished {
        state: State,
        error: Option<String>,
        output: Option<Value>,
        committed_run: Option<Uuid>,
    },
    /// Written by a process that took over the run's lease; the envelope carries its token.
    Fenced {
        by: String,
    },
}

/// A record of a lease stream (`leases/<name>`); the envelope's token is the lease token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum LeaseEvent {
    Acquired {
        holder: String,
        expires_at: DateTime<Utc>,
        /// The holder's host and process (absent in records of older versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<ProcessIdentity>,
        /// Unique per acquisition attempt, so that no two claims are byte-identical and a
        /// holder that finds its own bytes in the slot knows the claim is its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim: Option<Uuid>,
    },
    Renewed {
        holder: String,
        expires_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<ProcessIdentity>,
    },
    Released {
        holder: String,
    },
}

/// A record of a key's stream (`keys/<digest>`): an index of the runs of that key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum KeyEvent {
    RunRegistered { run_id: Uuid, key: String },
}

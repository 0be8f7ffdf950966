//! Durable, crash-safe transactions for pipeline steps.
//!
//! A transaction wraps async steps. Before a step performs a side effect it *stages* the
//! compensation that undoes it: a registered handler name and a serde payload, written to
//! a durable journal before anything happens. If the transaction fails (an error, a
//! panic, a timeout, a cancellation), the compensations run last-staged-first. If the
//! process dies instead, [`Engine::recover`] — in any process — finds the open transaction
//! and runs them. A committed key is never run again.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::json;
//! use sluice_txn::{Engine, ObjectStoreJournal, Outcome, Registry, RetryPolicy, StepError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sluice_txn::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let branches = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
//! # let for_handler = Arc::clone(&branches);
//! let registry = Registry::new()
//!     .with_handler("delete-branch", move |payload| {
//!         let branches = Arc::clone(&for_handler);
//!         async move {
//!             let branch = payload["branch"].as_str().unwrap_or_default().to_string();
//!             branches.lock().unwrap().retain(|b| *b != branch);
//!             Ok(())
//!         }
//!     })
//!     .with_handler("notify", |_payload| async { Ok(()) });
//! let journal = ObjectStoreJournal::local_dir(dir.path().join("journal"))?;
//! let engine = Engine::new(journal, registry);
//!
//! let outcome = engine
//!     .transaction("digest-of-source-files")
//!     .name("ingest events")
//!     .run(async |tx| {
//!         // Step 1: create a branch, after journalling how to delete it.
//!         tx.step("write")
//!             .run(async |step| {
//!                 step.stage_compensation("delete-branch", json!({"branch": "audit-1"})).await?;
//!                 branches.lock().unwrap().push("audit-1".to_string());
//!                 Ok(())
//!             })
//!             .await?;
//!         // Step 2: audit, retried while the failure is transient.
//!         let rows: u64 = tx.step("audit")
//!             .retry(RetryPolicy::new(3))
//!             .run(async |_| Ok(42))
//!             .await?;
//!         // Step 3: publish, and announce it only once everything committed.
//!         tx.step("publish")
//!             .run(async |step| {
//!                 step.stage_commit_action("notify", json!({"rows": rows})).await?;
//!                 Ok(())
//!             })
//!             .await?;
//!         Ok(json!({"rows": rows}))
//!     })
//!     .await?;
//! assert!(matches!(outcome, Outcome::Committed { .. }));
//! assert_eq!(*branches.lock().unwrap(), vec!["audit-1".to_string()]);
//!
//! // The same key again is skipped, returning the recorded output.
//! let again = engine.transaction("digest-of-source-files")
//!     .run(async |_| Err(StepError::permanent("not run")))
//!     .await?;
//! assert_eq!(again.output(), Some(&json!({"rows": 42})));
//! # Ok(())
//! # }
//! ```
//!
//! # Lifecycle of a run
//!
//! ```text
//!  Running ──► commit decided ──► commit actions done ──► Completed
//!     │                                 │ one keeps failing ──► Failed ─┐
//!     │ failure                                                        │ recover()
//!     ├──► compensations (LIFO) ──► RolledBack                         │ retries
//!     │                 │ one keeps failing ──► Failed ◄───────────────┘
//!     │ process dies
//!     └──► Crashed ──► recover(): rolls back, or completes a decided commit
//! ```
//!
//! # Pieces
//! - [`Journal`] / [`ObjectStoreJournal`]: ordered, create-only record streams over
//!   `object_store` (a local directory, or S3 with conditional writes).
//! - [`Registry`]: handler name → async handler taking the journalled `serde_json::Value`.
//! - [`Engine`]: [`transaction`](Engine::transaction), [`recover`](Engine::recover),
//!   [`list_runs`](Engine::list_runs), [`show_run`](Engine::show_run).
//! - [`Transaction`], [`Step`], [`StepContext`]: stage hooks, run steps with a
//!   [`RetryPolicy`], nest transactions.
//! - [`Isolation`]: serializable transactions hold an expiring, fenced lease on their key.

#![warn(missing_docs)]

mod clock;
mod engine;
mod error;
mod events;
mod history;
mod holder;
mod journal;
mod lease;
mod recovery;
mod registry;
mod retry;
mod run;
mod transaction;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    CancelToken, Engine, EngineBuilder, LeaseConflict, Progress, ProgressListener, key_digest,
};
pub use error::{Error, Result};
pub use events::{HookKind, Isolation, State};
pub use history::{
    AttemptError, HookReport, HookState, RunFilter, RunReport, RunSummary, StepReport, TxnReport,
    TxnState,
};
pub use holder::ProcessIdentity;
pub use journal::{DamagedRecord, Journal, ObjectStoreJournal};
pub use recovery::{RecoveredRun, RecoveryReport};
pub use registry::{Cause, Registry, ResultExt, StepError};
pub use retry::RetryPolicy;
pub use run::{Outcome, TransactionBuilder};
pub use transaction::{Step, StepContext, Transaction};

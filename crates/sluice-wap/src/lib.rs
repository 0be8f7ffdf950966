//! sluice-wap: the Write-Audit-Publish pipeline.
//!
//! A run takes the new parquet files of a source, writes them to an isolated audit branch of
//! an Iceberg table, audits the new rows with data-quality checks, and publishes the branch to
//! `main` only if the audit passed, all inside a durable transaction (sluice-txn) that rolls
//! back by itself on any failure, even after a crash (`Pipeline::recover`).
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_wap::{Pipeline, PipelineConfig, RunOptions, RunStatus};
//! use sluice_lake::LakeConfig;
//!
//! # async fn example() -> sluice_wap::Result<()> {
//! let pipeline = Pipeline::open(&PipelineConfig {
//!     lake: LakeConfig::embedded(".sluice")?,
//!     journal: std::fs::canonicalize(".sluice").unwrap().join("journal").display().to_string(),
//!     lease_ttl: Duration::from_secs(60),
//! })
//! .await?;
//! let mut options = RunOptions::new("/data/raw/events", "analytics.events".parse()?);
//! options.checks = Some(sluice_checks::CheckSuite::from_path("checks.toml")?);
//! let report = pipeline.run(&options).await?;
//! match report.status {
//!     RunStatus::Published => println!("main is now {:?}", report.snapshot_id),
//!     RunStatus::AuditFailed => println!("rejected: {:?}", report.audit),
//!     RunStatus::NothingToDo => println!("no new files"),
//!     RunStatus::Failed => println!("failed in {:?}: {:?}", report.failed_step, report.error),
//!     RunStatus::Interrupted => println!("stopped before publishing; main unchanged"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Exactly-once: a run's key (a digest of its file set) and the list of its source files are
//! written into the commit that publishes them, so the next run recognises published files
//! from the table's own history.
#![warn(missing_docs)]

mod audit;
mod author;
mod compensations;
pub mod config;
mod error;
mod import;
mod interrupt;
mod job;
mod job_run;
mod maintain;
mod options;
mod pipeline;
mod publish;
mod report;
mod schedule;
mod source;
mod sql_checks;
pub mod trigger;
mod write;

pub use audit::audit_summary;
pub use author::default_author;
pub use compensations::{DELETE_BRANCH, DISCARD_RUN, FINISH_EXPIRY};
pub use error::{Error, Result};
pub use import::ImportReport;
pub use job::JobOptions;
pub use job_run::JobReport;
pub use maintain::{
    CompactionReport, MaintainOptions, MaintainReport, MaintainStatus, MaintainStep, ORPHAN_MIN_AGE,
};
pub use options::{Mode, PipelineConfig, ProgressSink, RunOptions, SchemaChange};
pub use pipeline::Pipeline;
pub use report::{ExistingRead, QuarantineReport, RunFailure, RunReport, RunStatus, StepTiming};
pub use schedule::{Batching, StopSignal};
pub use source::{Shard, SourceFile, head_file, list_source, run_key, source_location};
pub use trigger::Trigger;

//! What a run is asked to do: its options, and where the lake and the journal are.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_checks::CheckSuite;
use sluice_lake::{LakeConfig, TableName, WriteOptions};

use crate::schedule::StopSignal;
use crate::source::SourceFile;

/// How files get into the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rewrite the rows into the warehouse as new parquet files (the audit reads them in the
    /// same pass).
    #[default]
    Copy,
    /// Add the files in place, reading only their footers (and the columns the checks need).
    Register,
}

impl Mode {
    /// `copy` or `register`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Register => "register",
        }
    }
}

/// What to do when incoming files have columns the table lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaChange {
    /// Fail with a readable diff.
    #[default]
    Fail,
    /// Add the new columns to the table as nullable columns.
    AddColumns,
}

/// Receives progress of the write step (the command line draws a progress bar from it).
pub use sluice_lake::ingest::IngestProgress as ProgressSink;

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// A directory, a `file://` or `s3://` prefix, or a single parquet file.
    pub source: String,
    /// The target table (created from the first file's schema if missing).
    pub table: TableName,
    /// Checks to audit the new rows with (none: every batch is publishable).
    pub checks: Option<CheckSuite>,
    /// Copy or register.
    pub mode: Mode,
    /// A table the run creates is partitioned by these transforms (`day(ts), bucket(16,
    /// user_id)`); an existing table must already have this spec. `None`: new tables are
    /// unpartitioned and existing ones keep their spec.
    pub partition_by: Option<String>,
    /// Commit message (`sluice.message`).
    pub message: Option<String>,
    /// Author (`sluice.author`).
    pub author: Option<String>,
    /// Schema drift policy.
    pub on_schema_change: SchemaChange,
    /// Ingest only these files (backfill batches); `None`: everything new under `source`.
    pub files: Option<Vec<SourceFile>>,
    /// Only this worker's share of the source's files (`--shard K/N`; see [`crate::Shard`]).
    pub shard: Option<crate::source::Shard>,
    /// Failing rows kept per check.
    pub sample_size: usize,
    /// Columns added to every failing-row sample.
    pub key_columns: Vec<String>,
    /// Files processed at once.
    pub parallelism: usize,
    /// Copy-mode file layout.
    pub write: WriteOptions,
    /// Copy mode: re-encode every file, also those whose column chunks the table could keep as
    /// they are (see [`sluice_lake::ingest::chunk_copy_blocker`]).
    pub rewrite: bool,
    /// Progress receiver.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// When the audit fails, keep what the run wrote on branch `sluice/failed/<run-id>` for
    /// inspection (`sluice diff`), instead of deleting it with the run's branch. Any other
    /// failure still undoes everything.
    pub keep_failed: bool,
    /// Crash testing: stop (wait for an hour) at this point of the run, so that a test can
    /// kill or abort it there. See the `SLUICE_PAUSE_AT` points. Only with the `test-hooks`
    /// feature, which tests enable.
    #[cfg(feature = "test-hooks")]
    pub pause_at: Option<String>,
    /// Raised (e.g. on Ctrl-C or SIGTERM), the run stops at its next safe point: before
    /// publishing it rolls back and reports [`crate::RunStatus::Interrupted`]; a publish already
    /// under way is finished.
    pub cancel: StopSignal,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("source", &self.source)
            .field("table", &self.table)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Defaults: copy mode, no checks, fail on schema drift, one file per core at once.
    pub fn new(source: impl Into<String>, table: TableName) -> Self {
        RunOptions {
            source: source.into(),
            table,
            checks: None,
            mode: Mode::Copy,
            partition_by: None,
            message: None,
            author: None,
            on_schema_change: SchemaChange::Fail,
            files: None,
            shard: None,
            sample_size: 5,
            key_columns: Vec::new(),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            write: WriteOptions::default(),
            rewrite: false,
            progress: None,
            keep_failed: false,
            #[cfg(feature = "test-hooks")]
            pause_at: None,
            cancel: StopSignal::new(),
        }
    }
}

/// Where the lake and the run journal are.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Catalog and storage.
    pub lake: LakeConfig,
    /// Journal location (a local directory or an `s3://` prefix).
    pub journal: String,
    /// How long a run's lease lives without renewal; a crashed run can be recovered after it.
    pub lease_ttl: Duration,
}

//! What a run reports.

use serde::{Deserialize, Serialize};
use sluice_checks::AuditReport;
use sluice_lake::{PublishKind, TableName};
use sluice_txn::StepError;
use uuid::Uuid;

use crate::options::Mode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The new rows passed the audit and are in `main`.
    Published,
    /// An error-severity check failed: the branch was deleted, `main` is unchanged.
    AuditFailed,
    /// Something else failed: rolled back, `main` is unchanged.
    Failed,
    /// Every source file is already in `main`.
    NothingToDo,
    /// Stopped on request (Ctrl-C, SIGTERM) before publishing: rolled back, `main` is
    /// unchanged.
    Interrupted,
}

impl RunStatus {
    /// The status as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Published => "published",
            RunStatus::AuditFailed => "audit_failed",
            RunStatus::Failed => "failed",
            RunStatus::NothingToDo => "nothing_to_do",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// How long a step took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTiming {
    /// `list`, `write`, `audit` or `publish`.
    pub step: String,
    /// Milliseconds.
    pub millis: u64,
}

/// What the table-scoped checks read of `main`: only the data files whose partition values and
/// key bounds can hold a key of the new rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingRead {
    /// Data files of `main` read.
    pub files_read: u64,
    /// Data files in `main`, when its summary says.
    pub files_in_main: Option<u64>,
}

/// The report of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// The run id (also in the audit branch name and the journal); none when there was
    /// nothing to do.
    pub run_id: Option<Uuid>,
    /// How it ended.
    pub status: RunStatus,
    /// The target table.
    pub table: TableName,
    /// The run key (digest of the source files).
    pub run_key: Option<String>,
    /// The audit branch the run wrote to.
    pub branch: Option<String>,
    /// Source files ingested (or that would have been).
    pub files: Vec<String>,
    /// Rows written.
    pub rows: u64,
    /// Copy or register.
    pub mode: Mode,
    /// Copy mode: source files whose column chunks were copied as they are; the others were
    /// decoded and written again.
    #[serde(default)]
    pub copied_as_is: usize,
    /// Partitioned tables: rows and data files written per partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<sluice_lake::partition::PartitionRows>,
    /// The snapshot `main` points at after publishing.
    pub snapshot_id: Option<i64>,
    /// Whether publishing was a fast-forward or a rebase.
    pub publish: Option<PublishKind>,
    /// The audit report, when the audit ran.
    pub audit: Option<AuditReport>,
    /// What table-scoped checks read of `main`, when a check needed existing rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_files_read: Option<ExistingRead>,
    /// Whether the table existed when the run looked for it (`None` when the run ended
    /// before it looked: nothing to do, or a failure before the write step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_existed: Option<bool>,
    /// Whether this run created the table (from the first file's schema). A run that
    /// creates the table and then does not publish leaves it in place, without rows.
    #[serde(default)]
    pub table_created: bool,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Why the run failed, as a message.
    pub error: Option<String>,
    /// `on_fail = "quarantine"`: where the rows the checks rejected went, and how many (in
    /// the quarantine table's `main` once the run published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineReport>,
    /// With `keep_failed`: the branch that keeps the batch its audit rejected
    /// (`sluice/failed/<run-id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_branch: Option<String>,
    /// Why the run failed, as the error value the failing step returned: match on
    /// [`RunFailure::error`].
    #[serde(skip)]
    pub failure: Option<RunFailure>,
    /// The compensations that kept failing when the run was undone: the rollback is
    /// unfinished until a recovery runs them (`Pipeline::recover`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undo_failed: Vec<String>,
    /// Step durations.
    pub steps: Vec<StepTiming>,
    /// Catalog commits the run made.
    pub commits: u64,
    /// Catalog commits the run sent that were refused because another writer had moved the
    /// table (each was planned again).
    #[serde(default)]
    pub commit_conflicts: u64,
}

/// Rows a run set aside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineReport {
    /// The quarantine table.
    pub table: TableName,
    /// Rows set aside.
    pub rows: u64,
}

impl RunReport {
    pub(crate) fn new(table: TableName, mode: Mode) -> Self {
        RunReport {
            run_id: None,
            status: RunStatus::Failed,
            table,
            run_key: None,
            branch: None,
            files: Vec::new(),
            rows: 0,
            mode,
            copied_as_is: 0,
            partitions: Vec::new(),
            main_files_read: None,
            table_existed: None,
            table_created: false,
            snapshot_id: None,
            publish: None,
            audit: None,
            failed_step: None,
            error: None,
            quarantine: None,
            kept_branch: None,
            failure: None,
            undo_failed: Vec::new(),
            steps: Vec::new(),
            commits: 0,
            commit_conflicts: 0,
        }
    }

    /// Records a step that started at `started` and ends now.
    pub(crate) fn time(&mut self, step: &str, started: std::time::Instant) {
        self.record(step, started.elapsed());
    }

    /// Records how long a step took.
    pub(crate) fn record(&mut self, step: &str, took: std::time::Duration) {
        self.steps.push(StepTiming {
            step: step.to_string(),
            millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// The failure of a run as the transaction recorded it, with the error value behind it.
#[derive(Clone, Debug)]
pub struct RunFailure(pub(crate) StepError);

impl RunFailure {
    /// The pipeline error the failing step returned (`None` when the failure was not one:
    /// a failed audit, a cancelled or timed-out transaction).
    pub fn error(&self) -> Option<&crate::Error> {
        self.0.downcast_ref::<crate::Error>()
    }

    /// The lake error behind the failure, if that is what it was.
    pub fn lake_error(&self) -> Option<&sluice_lake::Error> {
        match self.error()? {
            crate::Error::Lake(e) => Some(e),
            _ => None,
        }
    }

    /// What the transaction journalled.
    pub fn message(&self) -> &str {
        self.0.message()
    }
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.message())
    }
}

//! What a run reports.

use serde::{Deserialize, Serialize};
use sluice_checks::AuditReport;
use sluice_lake::PublishKind;

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
    /// The process exit code for this status: 0 published or nothing to do, 3 audit failed,
    /// 130 interrupted (as after SIGINT), 1 any other failure.
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Published | RunStatus::NothingToDo => 0,
            RunStatus::AuditFailed => 3,
            RunStatus::Failed => 1,
            RunStatus::Interrupted => 130,
        }
    }

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

/// The report of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// The run id (also in the audit branch name and the journal).
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// `namespace.table`.
    pub table: String,
    /// The run key (digest of the source files).
    pub run_key: Option<String>,
    /// The audit branch the run wrote to.
    pub branch: Option<String>,
    /// Source files ingested (or that would have been).
    pub files: Vec<String>,
    /// Rows written.
    pub rows: u64,
    /// `copy` or `register`.
    pub mode: String,
    /// Copy mode: source files whose column chunks were copied as they are; the others were
    /// decoded and written again.
    #[serde(default)]
    pub copied_as_is: usize,
    /// The snapshot `main` points at after publishing.
    pub snapshot_id: Option<i64>,
    /// Whether publishing was a fast-forward or a rebase.
    pub publish: Option<PublishKind>,
    /// The audit report, when the audit ran.
    pub audit: Option<AuditReport>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Why the run failed.
    pub error: Option<String>,
    /// Step durations.
    pub steps: Vec<StepTiming>,
    /// Catalog commits the run made.
    pub commits: u64,
}

impl RunReport {
    pub(crate) fn new(run_id: String, table: String, mode: &str) -> Self {
        RunReport {
            run_id,
            status: RunStatus::Failed,
            table,
            run_key: None,
            branch: None,
            files: Vec::new(),
            rows: 0,
            mode: mode.to_string(),
            copied_as_is: 0,
            snapshot_id: None,
            publish: None,
            audit: None,
            failed_step: None,
            error: None,
            steps: Vec::new(),
            commits: 0,
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

//! The same run, scheduled: `watch` (poll every interval) and `backfill` (historical files in
//! batches, each batch its own transaction).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Result;
use crate::pipeline::{Pipeline, RunOptions};
use crate::report::{RunReport, RunStatus};

/// A stop request shared between a signal handler and a loop. The loop finishes the run in
/// progress, then stops.
#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    stopped: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl StopSignal {
    /// A signal nobody has raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the loop to stop after the current run.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    async fn sleep(&self, every: Duration) {
        let notified = self.notify.notified();
        if self.is_stopped() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = notified => {}
        }
    }
}

impl Pipeline {
    /// Polls the source every `every`: a run whenever there are new files. Returns after a
    /// stop request, once the run in progress has ended. `on_report` sees every run that did
    /// something (nothing-to-do polls are not reported).
    pub async fn watch(
        &self,
        options: &RunOptions,
        every: Duration,
        stop: &StopSignal,
        mut on_report: impl FnMut(&RunReport),
    ) -> Result<()> {
        while !stop.is_stopped() {
            match self.run(options).await {
                Ok(report) if report.status == RunStatus::NothingToDo => {}
                Ok(report) => on_report(&report),
                // A source that cannot be listed right now (network, permissions) is retried at
                // the next tick rather than ending the watch.
                Err(e) => {
                    tracing::warn!(error = %e, "run could not start; retrying at the next tick")
                }
            }
            stop.sleep(every).await;
        }
        Ok(())
    }

    /// Ingests every file not yet in `main`, `batch_files` files per run (in file-name order),
    /// each run its own transaction. Stops at the first batch that fails or fails its audit;
    /// running it again resumes after the last published batch. Returns the batches' reports.
    pub async fn backfill(
        &self,
        options: &RunOptions,
        batch_files: usize,
        stop: &StopSignal,
        mut on_report: impl FnMut(&RunReport),
    ) -> Result<Vec<RunReport>> {
        let pending = self.pending_files(&options.source, &options.table).await?;
        let mut reports = Vec::new();
        for chunk in pending.chunks(batch_files.max(1)) {
            if stop.is_stopped() {
                break;
            }
            let mut batch = options.clone();
            batch.files = Some(chunk.to_vec());
            let report = self.run(&batch).await?;
            on_report(&report);
            let failed = matches!(report.status, RunStatus::Failed | RunStatus::AuditFailed);
            reports.push(report);
            if failed {
                break;
            }
        }
        Ok(reports)
    }
}

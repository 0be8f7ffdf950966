//! The same run, scheduled: `watch` (poll every interval) and `backfill` (historical files in
//! batches, each batch its own transaction).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Result;
use crate::job::JobOptions;
use crate::job_run::JobReport;
use crate::options::RunOptions;
use crate::pipeline::Pipeline;
use crate::report::{RunReport, RunStatus};
use crate::source::SourceFile;

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

    /// The flag a stop sets, for work that looks at it between units of work (the ingest's
    /// workers, between files).
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.stopped.clone()
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is requested (at once if it already was).
    pub async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
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

/// How a backfill splits the pending files into runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// At most this many files per run, in file-name order.
    Files(usize),
    /// One run per time window of this length, by file modification time (files without a
    /// modification time go into the first window).
    Window(Duration),
}

fn batches(mut files: Vec<SourceFile>, batching: Batching) -> Vec<Vec<SourceFile>> {
    match batching {
        Batching::Files(n) => files.chunks(n.max(1)).map(<[SourceFile]>::to_vec).collect(),
        Batching::Window(window) => {
            let width = window.as_millis().max(1) as i64;
            files.sort_by(|a, b| {
                a.modified
                    .cmp(&b.modified)
                    .then_with(|| a.location.cmp(&b.location))
            });
            let mut out: Vec<Vec<SourceFile>> = Vec::new();
            let mut current: Option<i64> = None;
            for file in files {
                let slot = file
                    .modified
                    .map(|t| t.timestamp_millis().div_euclid(width))
                    .unwrap_or(i64::MIN);
                match (current, out.last_mut()) {
                    (Some(c), Some(last)) if c == slot => last.push(file),
                    _ => {
                        current = Some(slot);
                        out.push(vec![file]);
                    }
                }
            }
            out
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
        on_report: impl FnMut(&RunReport),
    ) -> Result<()> {
        self.watch_maintained(options, every, None, stop, on_report, |_| {})
            .await
    }

    /// [`Pipeline::watch`] that also maintains the table (see [`Pipeline::maintain`]: its
    /// compaction is audited with `maintain.1`'s checks) between runs, once `maintain.0` has
    /// passed since the last time (or since the watch started). A maintenance that fails is
    /// undone, logged and tried again at the next interval; it never ends the watch.
    pub async fn watch_maintained(
        &self,
        options: &RunOptions,
        every: Duration,
        maintain: Option<(Duration, crate::MaintainOptions)>,
        stop: &StopSignal,
        mut on_report: impl FnMut(&RunReport),
        mut on_maintained: impl FnMut(&crate::MaintainReport),
    ) -> Result<()> {
        let mut maintained = std::time::Instant::now();
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
            if let Some((interval, maintain)) = &maintain
                && maintained.elapsed() >= *interval
                && !stop.is_stopped()
            {
                maintained = std::time::Instant::now();
                match self.maintain(maintain).await {
                    Ok(report) => on_maintained(&report),
                    Err(crate::Error::Lake(sluice_lake::Error::TableNotFound { .. })) => {}
                    Err(e) => {
                        tracing::warn!(table = %options.table, error = %e, "maintenance failed; trying again at the next interval")
                    }
                }
            }
            stop.sleep(every).await;
        }
        Ok(())
    }

    /// Ingests every file not yet in `main` in batches, each run its own transaction: by
    /// [`Batching::Files`] (file-name order) or [`Batching::Window`] (files grouped by the time
    /// window their modification time falls in, oldest first). Stops at the first batch that
    /// fails or fails its audit; running it again resumes after the last published batch.
    /// Returns the batches' reports.
    pub async fn backfill(
        &self,
        options: &RunOptions,
        batching: Batching,
        stop: &StopSignal,
        mut on_report: impl FnMut(&RunReport),
    ) -> Result<Vec<RunReport>> {
        let mut pending = self.pending_files(&options.source, &options.table).await?;
        if let Some(shard) = options.shard {
            pending.retain(|f| shard.owns(&f.location));
        }
        let mut reports = Vec::new();
        for chunk in batches(pending, batching) {
            if stop.is_stopped() {
                break;
            }
            let mut batch = options.clone();
            batch.files = Some(chunk);
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

/// The batch each file of a table falls in: its ordinal / n in file-name order, or its time
/// window. The same slot across tables makes one job run.
fn slots(mut files: Vec<SourceFile>, batching: Batching) -> Vec<(i64, SourceFile)> {
    match batching {
        Batching::Files(n) => {
            files.sort_by(|a, b| a.location.cmp(&b.location));
            let n = n.max(1);
            files
                .into_iter()
                .enumerate()
                .map(|(i, f)| ((i / n) as i64, f))
                .collect()
        }
        Batching::Window(window) => {
            let width = window.as_millis().max(1) as i64;
            files
                .into_iter()
                .map(|f| {
                    let slot = f
                        .modified
                        .map(|t| t.timestamp_millis().div_euclid(width))
                        .unwrap_or(i64::MIN);
                    (slot, f)
                })
                .collect()
        }
    }
}

impl Pipeline {
    /// [`Pipeline::watch`] of a job: every poll runs the job when any of its tables has new
    /// files.
    pub async fn watch_job(
        &self,
        job: &JobOptions,
        every: Duration,
        stop: &StopSignal,
        on_report: impl FnMut(&JobReport),
    ) -> Result<()> {
        self.watch_job_maintained(job, every, None, stop, on_report, |_| {})
            .await
    }

    /// [`Pipeline::watch_job`] that also maintains each table of the job between job runs
    /// (one [`Pipeline::maintain`] per table, in the job file's order, each with the options
    /// `maintain.1` gives for it), once `maintain.0` has passed. A failed maintenance is undone,
    /// logged and tried again at the next interval.
    pub async fn watch_job_maintained(
        &self,
        job: &JobOptions,
        every: Duration,
        maintain: Option<(Duration, Vec<crate::MaintainOptions>)>,
        stop: &StopSignal,
        mut on_report: impl FnMut(&JobReport),
        mut on_maintained: impl FnMut(&crate::MaintainReport),
    ) -> Result<()> {
        let mut maintained = std::time::Instant::now();
        while !stop.is_stopped() {
            match self.run_job(job).await {
                Ok(report) if report.status == RunStatus::NothingToDo => {}
                Ok(report) => on_report(&report),
                Err(e) => {
                    tracing::warn!(error = %e, "job could not start; retrying at the next tick")
                }
            }
            if let Some((interval, tables)) = &maintain
                && maintained.elapsed() >= *interval
            {
                maintained = std::time::Instant::now();
                for options in tables {
                    if stop.is_stopped() {
                        break;
                    }
                    match self.maintain(options).await {
                        Ok(report) => on_maintained(&report),
                        Err(crate::Error::Lake(sluice_lake::Error::TableNotFound { .. })) => {}
                        Err(e) => {
                            tracing::warn!(table = %options.table, error = %e, "maintenance failed; trying again at the next interval")
                        }
                    }
                }
            }
            stop.sleep(every).await;
        }
        Ok(())
    }

    /// [`Pipeline::backfill`] of a job: the pending files of every table are cut into batches
    /// the same way (the n-th batch of `Files(n)`, or the same time window, of every table
    /// make one job run), oldest first, each batch one transaction over all its tables.
    pub async fn backfill_job(
        &self,
        job: &JobOptions,
        batching: Batching,
        stop: &StopSignal,
        mut on_report: impl FnMut(&JobReport),
    ) -> Result<Vec<JobReport>> {
        let mut by_slot: std::collections::BTreeMap<i64, Vec<Vec<SourceFile>>> =
            std::collections::BTreeMap::new();
        for (i, options) in job.tables.iter().enumerate() {
            let pending = self.pending_files(&options.source, &options.table).await?;
            for (slot, file) in slots(pending, batching) {
                by_slot
                    .entry(slot)
                    .or_insert_with(|| vec![Vec::new(); job.tables.len()])[i]
                    .push(file);
            }
        }
        let mut reports = Vec::new();
        for files in by_slot.into_values() {
            if stop.is_stopped() {
                break;
            }
            let mut batch = job.clone();
            for (options, files) in batch.tables.iter_mut().zip(files) {
                options.files = Some(files);
            }
            let report = self.run_job(&batch).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, minute: Option<i64>) -> SourceFile {
        SourceFile {
            location: format!("file:///{name}"),
            size: 1,
            etag: None,
            modified: minute.map(|m| chrono::DateTime::from_timestamp(m * 60, 0).unwrap()),
        }
    }

    #[test]
    fn windows_group_by_modification_time_and_files_by_count() {
        let files = vec![
            file("c", Some(125)),
            file("a", Some(61)),
            file("b", Some(119)),
            file("d", Some(240)),
        ];
        let hourly = batches(files.clone(), Batching::Window(Duration::from_secs(3600)));
        let names: Vec<Vec<&str>> = hourly
            .iter()
            .map(|b| {
                b.iter()
                    .map(|f| f.location.trim_start_matches("file:///"))
                    .collect()
            })
            .collect();
        assert_eq!(names, [vec!["a", "b"], vec!["c"], vec!["d"]]);
        let pairs = batches(files, Batching::Files(3));
        assert_eq!(pairs.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
    }
}

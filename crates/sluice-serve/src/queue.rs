//! The queue between accepted events and runs: files waiting per trigger, gathered for a batch
//! window (or until `max_files`), then handed to one run of the trigger's table at a time, up to
//! `max_concurrent_runs` tables at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use sluice_wap::{Pipeline, RunReport, RunStatus, SourceFile, StopSignal, Trigger};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::log::{EventLog, Record};
use crate::metrics::Metrics;

/// A run that failed (not a failed audit) is tried this many times in all before its events
/// are dropped.
const MAX_ATTEMPTS: u32 = 3;
/// Finished batches remembered for `GET /v1/batches/ID`.
const FINISHED_KEPT: usize = 10_000;

/// Why an event was not queued.
#[derive(Debug)]
pub enum Refused {
    /// The queue holds `max_queue` files already.
    Full(usize),
    /// The server is stopping.
    Stopping,
    /// The event log could not be written.
    Log(std::io::Error),
}

/// A batch: the events gathered for one trigger until a run takes them.
#[derive(Clone, Debug, Serialize)]
pub struct Batch {
    /// Its id (what a `202` names).
    pub id: Uuid,
    /// The table.
    pub table: String,
    /// `queued`, `running` or `done`.
    pub state: &'static str,
    /// Files the events named.
    pub files: usize,
    /// When it was opened.
    pub created: chrono::DateTime<chrono::Utc>,
    /// The runs that took its files, in order.
    pub runs: Vec<BatchRun>,
    #[serde(skip)]
    queued: usize,
    #[serde(skip)]
    running: usize,
}

/// One run a batch's files went into.
#[derive(Clone, Debug, Serialize)]
pub struct BatchRun {
    /// The run id (none when the run had nothing to do).
    pub run_id: Option<Uuid>,
    /// How it ended.
    pub status: String,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
struct Pending {
    file: SourceFile,
    segments: Vec<u64>,
    batch: Uuid,
}

#[derive(Default)]
struct TableQueue {
    pending: BTreeMap<String, Pending>,
    /// Requests to run now (a listing run): their segments and batches.
    run_now: Vec<(u64, Uuid)>,
    open_batch: Option<Uuid>,
    first_at: Option<Instant>,
    running: bool,
    failures: u32,
    retry_at: Option<Instant>,
    next_poll: Option<Instant>,
}

#[derive(Default)]
struct State {
    tables: Vec<TableQueue>,
    batches: HashMap<Uuid, Batch>,
    finished: VecDeque<Uuid>,
    running: usize,
    pending_files: usize,
    stopping: bool,
}

/// What a table's queue looks like, for `GET /v1/queue` and the gauges.
#[derive(Clone, Debug, Serialize)]
pub struct TableStatus {
    /// The table.
    pub table: String,
    /// The trigger's prefix.
    pub prefix: String,
    /// Files waiting for a run.
    pub pending: usize,
    /// Whether a run of the table is in progress.
    pub running: bool,
}

/// The queue and the runs it starts.
pub struct Queue {
    state: Mutex<State>,
    wake: Notify,
    idle: Notify,
    log: EventLog,
    pipeline: Arc<Pipeline>,
    triggers: Vec<Trigger>,
    metrics: Arc<Metrics>,
    max_queue: usize,
    max_concurrent: usize,
    /// Raised, runs in progress stop at their next safe point.
    cancel: StopSignal,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An accepted file for trigger `index`.
pub struct Accepted {
    /// The trigger.
    pub trigger: usize,
    /// The file.
    pub file: SourceFile,
}

impl Queue {
    /// A queue over `triggers`, with the records a previous process left in the log queued
    /// again.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: EventLog,
        replay: Vec<(u64, Record)>,
        pipeline: Arc<Pipeline>,
        triggers: Vec<Trigger>,
        metrics: Arc<Metrics>,
        max_queue: usize,
        max_concurrent: usize,
        cancel: StopSignal,
    ) -> Arc<Queue> {
        let now = Instant::now();
        let mut state = State {
            tables: triggers
                .iter()
                .map(|t| TableQueue {
                    next_poll: t.poll_every.map(|_| now),
                    ..TableQueue::default()
                })
                .collect(),
            ..State::default()
        };
        let queue = Queue {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            idle: Notify::new(),
            log,
            pipeline,
            triggers,
            metrics,
            max_queue,
            max_concurrent: max_concurrent.max(1),
            cancel,
        };
        let mut replayed = 0;
        for (segment, record) in replay {
            let Some(index) = queue.trigger_of(&record.table) else {
                tracing::warn!(table = %record.table, "the event log names a table without a trigger now; dropping its event");
                queue.log.handled(segment);
                continue;
            };
            replayed += 1;
            queue.insert(&mut state, index, segment, record, now);
        }
        if replayed > 0 {
            tracing::info!(
                events = replayed,
                "queued again the events a previous server accepted and did not finish"
            );
        }
        *lock(&queue.state) = state;
        Arc::new(queue)
    }

    /// The trigger of a table.
    pub fn trigger_of(&self, table: &str) -> Option<usize> {
        self.triggers
            .iter()
            .position(|t| t.table().to_string() == table)
    }

    /// The triggers.
    pub fn triggers(&self) -> &[Trigger] {
        &self.triggers
    }

    fn insert(&self, state: &mut State, index: usize, segment: u64, record: Record, now: Instant) {
        let batch = state.batches.entry(record.batch).or_insert_with(|| Batch {
            id: record.batch,
            table: record.table.clone(),
            state: "queued",
            files: 0,
            created: chrono::Utc::now(),
            runs: Vec::new(),
            queued: 0,
            running: 0,
        });
        let table = &mut state.tables[index];
        table.first_at.get_or_insert(now);
        let duplicate = record
            .file
            .as_ref()
            .is_some_and(|f| table.pending.contains_key(&f.location));
        // A duplicate notification joins the waiting file: one file, both records handled
        // with it, counted once.
        if !duplicate {
            batch.queued += 1;
            if batch.state == "done" {
                batch.state = "queued";
            }
        }
        match record.file {
            None => table.run_now.push((segment, record.batch)),
            Some(file) => {
                if !duplicate {
                    batch.files += 1;
                }
                match table.pending.get_mut(&file.location) {
                    Some(p) => p.segments.push(segment),
                    None => {
                        state.pending_files += 1;
                        table.pending.insert(
                            file.location.clone(),
                            Pending {
                                file,
                                segments: vec![segment],
                                batch: record.batch,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Journals and queues accepted files (`files`), or a request to run a trigger now
    /// (`run_now`); returns the batch each table's events joined.
    pub async fn accept(
        &self,
        files: Vec<Accepted>,
        run_now: Option<usize>,
    ) -> Result<Vec<(String, Uuid, usize)>, Refused> {
        let records: Vec<(usize, Record)> = {
            let mut state = lock(&self.state);
            if state.stopping {
                return Err(Refused::Stopping);
            }
            if state.pending_files + files.len() > self.max_queue {
                return Err(Refused::Full(state.pending_files));
            }
            let batch_of = |index: usize, state: &mut State| -> Uuid {
                *state.tables[index]
                    .open_batch
                    .get_or_insert_with(Uuid::now_v7)
            };
            let mut records = Vec::with_capacity(files.len() + 1);
            for accepted in files {
                // A file already waiting keeps the batch it joined first.
                let waiting = state.tables[accepted.trigger]
                    .pending
                    .get(&accepted.file.location)
                    .map(|p| p.batch);
                let batch = match waiting {
                    Some(batch) => batch,
                    None => batch_of(accepted.trigger, &mut state),
                };
                records.push((
                    accepted.trigger,
                    Record {
                        table: self.triggers[accepted.trigger].table().to_string(),
                        batch,
                        file: Some(accepted.file),
                    },
                ));
            }
            if let Some(index) = run_now {
                let batch = batch_of(index, &mut state);
                records.push((
                    index,
                    Record {
                        table: self.triggers[index].table().to_string(),
                        batch,
                        file: None,
                    },
                ));
            }
            records
        };
        let plain: Vec<Record> = records.iter().map(|(_, r)| r.clone()).collect();
        let segment = self.log.append(&plain).await.map_err(Refused::Log)?;
        let mut joined: Vec<(String, Uuid, usize)> = Vec::new();
        {
            let mut state = lock(&self.state);
            let now = Instant::now();
            for (index, record) in records {
                let table = record.table.clone();
                let batch = record.batch;
                let is_file = record.file.is_some();
                self.insert(&mut state, index, segment, record, now);
                match joined
                    .iter_mut()
                    .find(|(t, b, _)| *t == table && *b == batch)
                {
                    Some(entry) => entry.2 += usize::from(is_file),
                    None => joined.push((table, batch, usize::from(is_file))),
                }
            }
        }
        self.wake.notify_one();
        Ok(joined)
    }

    /// A batch by id.
    pub fn batch(&self, id: Uuid) -> Option<Batch> {
        lock(&self.state).batches.get(&id).cloned()
    }

    /// Each trigger's queue.
    pub fn status(&self) -> Vec<TableStatus> {
        let state = lock(&self.state);
        self.triggers
            .iter()
            .zip(&state.tables)
            .map(|(t, q)| TableStatus {
                table: t.table().to_string(),
                prefix: t.prefix.clone(),
                pending: q.pending.len() + q.run_now.len(),
                running: q.running,
            })
            .collect()
    }

    /// Makes the runs in progress stop at their next safe point (they roll back; their events
    /// stay in the log).
    pub fn cancel_runs(&self) {
        self.cancel.stop();
    }

    /// Runs in progress.
    pub fn running(&self) -> usize {
        lock(&self.state).running
    }

    /// Whether the server stopped taking events.
    pub fn is_stopping(&self) -> bool {
        lock(&self.state).stopping
    }

    /// Starts runs as their batches become due, until `stop`; then waits for the runs in
    /// progress to end (events not handled stay in the log for the next start). Runs are
    /// spawned on the current `tokio::task::LocalSet`.
    pub async fn schedule(self: &Arc<Self>, stop: &StopSignal) {
        loop {
            let next = self.start_due();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep => {}
                _ = stop.stopped() => break,
            }
        }
        lock(&self.state).stopping = true;
        loop {
            let idle = self.idle.notified();
            if lock(&self.state).running == 0 {
                break;
            }
            idle.await;
        }
        self.log.close();
    }

    /// Starts every run that is due; returns when the next one will be.
    fn start_due(self: &Arc<Self>) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| {
            next = Some(next.map_or(at, |n: Instant| n.min(at)));
        };
        let mut state = lock(&self.state);
        for index in 0..self.triggers.len() {
            let trigger = &self.triggers[index];
            let table = &state.tables[index];
            if table.running {
                continue;
            }
            if let Some(at) = table.retry_at
                && at > now
            {
                soonest(at);
                continue;
            }
            let has_events = !table.pending.is_empty() || !table.run_now.is_empty();
            let due_events = has_events
                && (!table.run_now.is_empty()
                    || table.pending.len() >= trigger.max_files
                    || table
                        .first_at
                        .is_some_and(|t| now >= t + trigger.batch_window));
            let due_poll = table.next_poll.is_some_and(|t| now >= t);
            if !due_events && !due_poll {
                if has_events && let Some(first) = table.first_at {
                    soonest(first + trigger.batch_window);
                }
                if let Some(poll) = table.next_poll {
                    soonest(poll);
                }
                continue;
            }
            if state.running >= self.max_concurrent {
                // A run that ends wakes the loop.
                break;
            }
            let work = self.take(&mut state, index, due_poll, now);
            state.running += 1;
            let queue = self.clone();
            // A run's future is not `Send` (the transaction engine's steps borrow across
            // awaits), so runs share the scheduler's thread; their heavy work runs on the
            // runtime's other threads and blocking pool.
            tokio::task::spawn_local(async move { queue.run(index, work).await });
        }
        next
    }

    /// Takes the files of the next run of trigger `index`.
    fn take(&self, state: &mut State, index: usize, poll: bool, now: Instant) -> Work {
        let trigger = &self.triggers[index];
        let table = &mut state.tables[index];
        table.running = true;
        table.retry_at = None;
        if poll {
            table.next_poll = trigger.poll_every.map(|every| now + every);
        }
        // A listing run (asked for, or a poll) covers every file under the prefix.
        let listing = poll || !table.run_now.is_empty();
        let run_now = std::mem::take(&mut table.run_now);
        let taken: Vec<Pending> = if listing {
            std::mem::take(&mut table.pending).into_values().collect()
        } else {
            let keys: Vec<String> = table
                .pending
                .keys()
                .take(trigger.max_files)
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|k| table.pending.remove(k))
                .collect()
        };
        table.open_batch = None;
        table.first_at = (!table.pending.is_empty()).then_some(now);
        state.pending_files -= taken.len();
        let mut batches: Vec<Uuid> = taken.iter().map(|p| p.batch).collect();
        batches.extend(run_now.iter().map(|(_, b)| *b));
        batches.sort_unstable();
        batches.dedup();
        for id in &batches {
            if let Some(batch) = state.batches.get_mut(id) {
                let of_batch = taken.iter().filter(|p| p.batch == *id).count()
                    + run_now.iter().filter(|(_, b)| b == id).count();
                batch.queued = batch.queued.saturating_sub(of_batch);
                batch.running += 1;
                batch.state = "running";
            }
        }
        Work {
            listing,
            files: taken,
            run_now,
            batches,
        }
    }

    async fn run(self: Arc<Self>, index: usize, work: Work) {
        let trigger = &self.triggers[index];
        let table = trigger.table().to_string();
        let mut options = trigger.options.clone();
        options.cancel = self.cancel.clone();
        let mut missing = Vec::new();
        let mut bytes = 0u64;
        if !work.listing {
            // What the store holds now: a notification's size or tag may be stale, and a file
            // may be gone again.
            let locations: Vec<(usize, String)> = work
                .files
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.file.location.clone()))
                .collect();
            let heads: Vec<(usize, sluice_wap::Result<Option<SourceFile>>)> =
                futures::stream::iter(locations)
                    .map(|(i, location)| {
                        let queue = self.clone();
                        async move {
                            (
                                i,
                                sluice_wap::head_file(queue.pipeline.lake(), &location).await,
                            )
                        }
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
            let mut fresh = Vec::with_capacity(heads.len());
            for (i, head) in heads {
                let pending = &work.files[i];
                match head {
                    Ok(Some(file)) => {
                        bytes += file.size;
                        fresh.push(file);
                    }
                    Ok(None) => missing.push(pending.file.location.clone()),
                    // Unreadable now: let the run say why.
                    Err(_) => fresh.push(pending.file.clone()),
                }
            }
            for location in &missing {
                tracing::warn!(table = %table, file = %location, "an event names a file that is not there (anymore); skipping it");
                self.metrics.add(
                    "sluice_event_files_ignored_total",
                    &[("reason", "missing")],
                    1.0,
                );
            }
            fresh.sort();
            options.files = Some(fresh);
        }
        let started = Instant::now();
        let result = if options.files.as_ref().is_some_and(Vec::is_empty) {
            None
        } else {
            Some(self.pipeline.run(&options).await)
        };
        let took = started.elapsed();
        let outcome = match result {
            None => Outcome::Handled(None),
            Some(Ok(report)) => {
                self.record(&table, &report, took, bytes);
                match report.status {
                    RunStatus::Interrupted => Outcome::Kept(Some(report)),
                    RunStatus::Failed => Outcome::Failed(Some(report), None),
                    _ => Outcome::Handled(Some(report)),
                }
            }
            Some(Err(e)) => {
                tracing::warn!(table = %table, error = %e, "a run could not start");
                self.metrics.add(
                    "sluice_runs_total",
                    &[("table", &table), ("status", "failed")],
                    1.0,
                );
                Outcome::Failed(None, Some(e.to_string()))
            }
        };
        self.finish(index, work, outcome);
    }

    fn record(&self, table: &str, report: &RunReport, took: Duration, bytes: u64) {
        let m = &self.metrics;
        m.add(
            "sluice_runs_total",
            &[("table", table), ("status", report.status.as_str())],
            1.0,
        );
        if report.status == RunStatus::NothingToDo {
            return;
        }
        m.observe(
            "sluice_run_duration_seconds",
            &[("table", table)],
            took.as_secs_f64(),
        );
        for step in &report.steps {
            m.observe(
                "sluice_step_duration_seconds",
                &[("step", &step.step)],
                step.millis as f64 / 1000.0,
            );
        }
        if report.status == RunStatus::Published {
            m.add(
                "sluice_rows_published_total",
                &[("table", table)],
                report.rows as f64,
            );
            m.add(
                "sluice_bytes_published_total",
                &[("table", table)],
                bytes as f64,
            );
        }
        if let Some(audit) = &report.audit {
            for check in audit.problems() {
                if matches!(
                    check.status,
                    sluice_checks::Status::Fail | sluice_checks::Status::Error
                ) {
                    m.add(
                        "sluice_audit_failures_total",
                        &[("table", table), ("check", &check.name)],
                        1.0,
                    );
                }
            }
        }
        tracing::info!(
            table = %table,
            status = report.status.as_str(),
            run = %report.run_id.map(|id| id.to_string()).unwrap_or_default(),
            files = report.files.len(),
            rows = report.rows,
            "run ended"
        );
    }

    fn finish(&self, index: usize, work: Work, outcome: Outcome) {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let (report, error, handled) = match outcome {
            Outcome::Handled(report) => {
                state.tables[index].failures = 0;
                (report, None, true)
            }
            Outcome::Kept(report) => (report, None, false),
            Outcome::Failed(report, error) if state.tables[index].failures + 1 >= MAX_ATTEMPTS => {
                state.tables[index].failures = 0;
                tracing::error!(
                    table = %self.triggers[index].table(),
                    attempts = MAX_ATTEMPTS,
                    "a batch kept failing; dropping its events (the files stay in the source: `sluice run` or the next poll takes them)"
                );
                (report, error, true)
            }
            Outcome::Failed(report, error) => {
                let failures = state.tables[index].failures + 1;
                state.tables[index].failures = failures;
                state.tables[index].retry_at =
                    Some(now + Duration::from_secs(5 * 4u64.pow(failures - 1)));
                (report, error, false)
            }
        };
        let status = report
            .as_ref()
            .map_or("failed", |r| r.status.as_str())
            .to_string();
        let error = error.or_else(|| report.as_ref().and_then(|r| r.error.clone()));
        for id in &work.batches {
            let Some(batch) = state.batches.get_mut(id) else {
                continue;
            };
            batch.running = batch.running.saturating_sub(1);
            batch.runs.push(BatchRun {
                run_id: report.as_ref().and_then(|r| r.run_id),
                status: status.clone(),
                error: error.clone(),
            });
        }
        if handled {
            for p in &work.files {
                for segment in &p.segments {
                    self.log.handled(*segment);
                }
            }
            for (segment, _) in &work.run_now {
                self.log.handled(*segment);
            }
        } else {
            // Queued again (a retry, or the next start after a stop).
            let mut requeued: Vec<(Uuid, usize)> = Vec::new();
            let table = &mut state.tables[index];
            for p in work.files {
                let batch = p.batch;
                match table.pending.get_mut(&p.file.location) {
                    Some(existing) => existing.segments.extend(p.segments),
                    None => {
                        table.pending.insert(p.file.location.clone(), p);
                        requeued.push((batch, 1));
                    }
                }
            }
            table.run_now.extend(work.run_now.iter().copied());
            table.first_at.get_or_insert(now);
            let added: usize = requeued.iter().map(|(_, n)| n).sum();
            state.pending_files += added;
            for (id, n) in requeued {
                if let Some(b) = state.batches.get_mut(&id) {
                    b.queued += n;
                }
            }
            for (_, id) in &work.run_now {
                if let Some(b) = state.batches.get_mut(id) {
                    b.queued += 1;
                }
            }
        }
        for id in &work.batches {
            let done = state
                .batches
                .get(id)
                .is_some_and(|b| b.queued == 0 && b.running == 0);
            if let Some(batch) = state.batches.get_mut(id) {
                batch.state = if done {
                    "done"
                } else if batch.running > 0 {
                    "running"
                } else {
                    "queued"
                };
            }
            if done {
                state.finished.push_back(*id);
            }
        }
        while state.finished.len() > FINISHED_KEPT {
            if let Some(old) = state.finished.pop_front()
                && state.batches.get(&old).is_some_and(|b| b.state == "done")
            {
                state.batches.remove(&old);
            }
        }
        state.tables[index].running = false;
        state.running -= 1;
        drop(state);
        self.wake.notify_one();
        self.idle.notify_waiters();
    }
}

struct Work {
    listing: bool,
    files: Vec<Pending>,
    run_now: Vec<(u64, Uuid)>,
    batches: Vec<Uuid>,
}

enum Outcome {
    /// The events are handled (published, rejected by the audit, or nothing to do).
    Handled(Option<RunReport>),
    /// Stopped by a shutdown: the events stay for the next start.
    Kept(Option<RunReport>),
    /// Failed (with why, when there is no report): tried again later, up to
    /// [`MAX_ATTEMPTS`].
    Failed(Option<RunReport>, Option<String>),
}

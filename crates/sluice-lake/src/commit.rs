//! The commit path of every change: plan against fresh metadata, send one atomic commit,
//! re-plan after a conflict.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use iceberg::{TableRequirement, TableUpdate};

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::table_name::TableName;

/// Retry policy for commit conflicts: exponential backoff with full jitter, bounded by a number
/// of attempts and by time. A table's `commit.retry.*` properties (as Iceberg's writers read
/// them) override it for that table: see [`CommitRetry::for_table`].
#[derive(Clone, Debug)]
pub struct CommitRetry {
    /// Attempts in all (the first included).
    pub max_attempts: u32,
    /// Delay cap of the first retry.
    pub base_delay: Duration,
    /// Largest delay between attempts.
    pub max_delay: Duration,
    /// No retry starts once this long has passed since the first attempt.
    pub total_timeout: Duration,
}

/// `commit.retry.num-retries`: retries after the first attempt.
pub const NUM_RETRIES_PROPERTY: &str = "commit.retry.num-retries";
/// `commit.retry.min-wait-ms`: the delay cap of the first retry.
pub const MIN_WAIT_PROPERTY: &str = "commit.retry.min-wait-ms";
/// `commit.retry.max-wait-ms`: the largest delay between attempts.
pub const MAX_WAIT_PROPERTY: &str = "commit.retry.max-wait-ms";
/// `commit.retry.total-timeout-ms`: how long a commit keeps retrying.
pub const TOTAL_TIMEOUT_PROPERTY: &str = "commit.retry.total-timeout-ms";

impl Default for CommitRetry {
    /// Many workers publishing into one table is the normal case, so a commit keeps trying
    /// for up to two minutes (Iceberg's own default is four retries): a loser re-plans at
    /// once on fresh metadata, then waits a random time up to 20 ms doubling to at most 1 s.
    /// A short cap keeps a worker that lost many times competing with fresh ones.
    fn default() -> Self {
        Self {
            max_attempts: 1_000,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            total_timeout: Duration::from_secs(120),
        }
    }
}

impl CommitRetry {
    /// This policy with the table's `commit.retry.*` properties applied; values that are not
    /// whole numbers are ignored.
    pub fn for_table(&self, properties: &std::collections::HashMap<String, String>) -> Self {
        let number = |key: &str| {
            properties
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let mut policy = self.clone();
        if let Some(n) = number(NUM_RETRIES_PROPERTY) {
            policy.max_attempts = u32::try_from(n.saturating_add(1)).unwrap_or(u32::MAX);
        }
        if let Some(ms) = number(MIN_WAIT_PROPERTY) {
            policy.base_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = number(MAX_WAIT_PROPERTY) {
            policy.max_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = number(TOTAL_TIMEOUT_PROPERTY) {
            policy.total_timeout = Duration::from_millis(ms);
        }
        policy
    }

    /// The random delay after failed attempt number `attempt` (from 1).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }

    fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        cap.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay before the next attempt, or `None` when the policy says to stop after
    /// `attempt` attempts made over `elapsed`.
    pub(crate) fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if attempt >= self.max_attempts || elapsed >= self.total_timeout {
            return None;
        }
        Some(self.delay(attempt))
    }
}

/// Called before every catalog commit: for metrics, tracing, or to inject a concurrent writer
/// in tests.
pub trait CommitHook: Send + Sync + 'static {
    /// `attempt` counts from 1 for each operation.
    fn before_commit<'a>(&'a self, table: &'a TableName, attempt: u32) -> BoxFuture<'a, ()>;
}

/// What one planning round decided.
pub(crate) enum Plan<T> {
    /// Send these; on success return `T`.
    Commit {
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
        value: T,
    },
    /// Nothing to send (already done, or a no-op).
    Done(T),
}

impl Lake {
    /// Runs plan → commit, re-planning on fresh metadata after a conflict.
    pub(crate) async fn commit_loop<T, F, Fut>(
        &self,
        name: &TableName,
        mut plan: F,
    ) -> Result<(LoadedTable, T)>
    where
        F: FnMut(LoadedTable) -> Fut,
        Fut: Future<Output = Result<Plan<T>>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let table = self.backend.load_table(name).await?;
            match plan(table.clone()).await? {
                Plan::Done(value) => return Ok((table, value)),
                Plan::Commit {
                    requirements,
                    updates,
                    value,
                } => {
                    if let Some(hook) = &self.hook {
                        hook.before_commit(name, attempt).await;
                    }
                    let added: Vec<iceberg::spec::Snapshot> = updates
                        .iter()
                        .filter_map(|u| match u {
                            TableUpdate::AddSnapshot { snapshot } => Some(snapshot.clone()),
                            _ => None,
                        })
                        .collect();
                    match self.backend.commit(&table, requirements, updates).await {
                        Ok(table) => {
                            self.commits.fetch_add(1, Ordering::Relaxed);
                            return Ok((table, value));
                        }
                        Err(Error::CommitConflict { reason, .. }) => {
                            self.conflicts.fetch_add(1, Ordering::Relaxed);
                            // A conflict is a definite "no": the manifests this attempt wrote
                            // are referenced by nothing.
                            for snapshot in &added {
                                discard_snapshot_files(&table, snapshot).await;
                            }
                            let policy = self.retry.for_table(table.metadata().properties());
                            let Some(delay) = policy.next_delay(attempt, started.elapsed()) else {
                                return Err(Error::TooManyConflicts {
                                    table: name.to_string(),
                                    attempts: attempt,
                                    seconds: started.elapsed().as_secs(),
                                    last: reason,
                                });
                            };
                            tracing::debug!(table = %name, attempt, %reason, "commit conflict; retrying on fresh metadata");
                            tokio::time::sleep(delay).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

impl Lake {
    /// [`Lake::commit_loop`] over several tables at once: each round loads every table, plans
    /// each one's change, and sends the changes as one atomic multi-table commit (tables with
    /// nothing to send are left out). A conflict on any table re-plans them all, for as long as
    /// that table's `commit.retry.*` properties allow.
    pub(crate) async fn commit_many_loop<T, F, Fut>(
        &self,
        names: &[TableName],
        mut plan: F,
    ) -> Result<Vec<(LoadedTable, T)>>
    where
        F: FnMut(Vec<LoadedTable>) -> Fut,
        Fut: Future<Output = Result<Vec<Plan<T>>>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut tables = Vec::with_capacity(names.len());
            for name in names {
                tables.push(self.backend.load_table(name).await?);
            }
            let plans = plan(tables.clone()).await?;
            let mut changes = Vec::new();
            let mut sent = Vec::new();
            let mut values: Vec<Option<(LoadedTable, T)>> = Vec::with_capacity(names.len());
            for (i, (table, plan)) in tables.iter().zip(plans).enumerate() {
                match plan {
                    Plan::Done(value) => values.push(Some((table.clone(), value))),
                    Plan::Commit {
                        requirements,
                        updates,
                        value,
                    } => {
                        changes.push(crate::catalog::TableChange {
                            current: table.clone(),
                            requirements,
                            updates,
                        });
                        sent.push((i, value));
                        values.push(None);
                    }
                }
            }
            if changes.is_empty() {
                return Ok(values.into_iter().flatten().collect());
            }
            if let Some(hook) = &self.hook {
                for change in &changes {
                    hook.before_commit(&change.current.name, attempt).await;
                }
            }
            let added: Vec<(LoadedTable, iceberg::spec::Snapshot)> = changes
                .iter()
                .flat_map(|c| {
                    c.updates.iter().filter_map(|u| match u {
                        TableUpdate::AddSnapshot { snapshot } => {
                            Some((c.current.clone(), snapshot.clone()))
                        }
                        _ => None,
                    })
                })
                .collect();
            match self.backend.commit_many(changes).await {
                Ok(committed) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    for ((i, value), table) in sent.into_iter().zip(committed) {
                        values[i] = Some((table, value));
                    }
                    return Ok(values.into_iter().flatten().collect());
                }
                Err(Error::CommitConflict { table, reason }) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    for (table, snapshot) in &added {
                        discard_snapshot_files(table, snapshot).await;
                    }
                    // The refused table's `commit.retry.*` properties say how long to go on.
                    let policy = match tables.iter().find(|t| t.name().to_string() == table) {
                        Some(refused) => self.retry.for_table(refused.metadata().properties()),
                        None => self.retry.clone(),
                    };
                    let Some(delay) = policy.next_delay(attempt, started.elapsed()) else {
                        return Err(Error::TooManyConflicts {
                            table,
                            attempts: attempt,
                            seconds: started.elapsed().as_secs(),
                            last: reason,
                        });
                    };
                    tracing::debug!(%table, attempt, %reason, "multi-table commit conflict; retrying on fresh metadata");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Deletes the manifest list of a snapshot that was never committed and the manifests it
/// added. Best effort: a file left behind is unused bytes, never a wrong answer.
async fn discard_snapshot_files(table: &LoadedTable, snapshot: &iceberg::spec::Snapshot) {
    let io = table.file_io();
    let list = snapshot.manifest_list();
    let Ok(input) = io.new_input(list) else {
        return;
    };
    if let Ok(bytes) = input.read().await
        && let Ok(parsed) = iceberg::spec::ManifestList::parse_with_version(
            &bytes,
            table.metadata().format_version(),
        )
    {
        for manifest in parsed.entries() {
            if manifest.added_snapshot_id == snapshot.snapshot_id() {
                let _ = io.delete(&manifest.manifest_path).await;
            }
        }
    }
    let _ = io.delete(list).await;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let p = CommitRetry::default();
        assert_eq!(p.delay_with(1, 1.0), Duration::from_millis(20));
        assert_eq!(p.delay_with(2, 1.0), Duration::from_millis(40));
        assert_eq!(p.delay_with(3, 0.5), Duration::from_millis(40));
        assert_eq!(p.delay_with(40, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay_with(2, 7.0), Duration::from_millis(40), "clamped");
        assert_eq!(p.delay_with(2, -1.0), Duration::ZERO);
    }

    #[test]
    fn retries_stop_at_the_attempt_limit_or_the_time_budget() {
        let p = CommitRetry {
            max_attempts: 3,
            total_timeout: Duration::from_secs(10),
            ..CommitRetry::default()
        };
        assert!(p.next_delay(1, Duration::ZERO).is_some());
        assert!(p.next_delay(2, Duration::from_secs(9)).is_some());
        assert!(p.next_delay(3, Duration::ZERO).is_none(), "attempts spent");
        assert!(
            p.next_delay(1, Duration::from_secs(10)).is_none(),
            "time spent"
        );
    }

    #[test]
    fn a_tables_commit_retry_properties_override_the_defaults() {
        let properties: HashMap<String, String> = [
            (NUM_RETRIES_PROPERTY, "4"),
            (MIN_WAIT_PROPERTY, "100"),
            (MAX_WAIT_PROPERTY, "60000"),
            (TOTAL_TIMEOUT_PROPERTY, "1800000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = CommitRetry::default().for_table(&properties);
        assert_eq!(p.max_attempts, 5, "four retries after the first attempt");
        assert_eq!(p.base_delay, Duration::from_millis(100));
        assert_eq!(p.max_delay, Duration::from_secs(60));
        assert_eq!(p.total_timeout, Duration::from_secs(1800));

        let unset = CommitRetry::default().for_table(&HashMap::new());
        assert_eq!(unset.max_attempts, CommitRetry::default().max_attempts);
        let garbage: HashMap<String, String> =
            [(NUM_RETRIES_PROPERTY.to_string(), "many".to_string())].into();
        assert_eq!(
            CommitRetry::default().for_table(&garbage).total_timeout,
            Duration::from_secs(120)
        );
    }
}

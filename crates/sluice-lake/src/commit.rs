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

/// Retry policy for commit conflicts: exponential backoff with full jitter.
#[derive(Clone, Debug)]
pub struct CommitRetry {
    /// Attempts in all (the first included).
    pub max_attempts: u32,
    /// Delay cap of the first retry.
    pub base_delay: Duration,
    /// Largest delay between attempts.
    pub max_delay: Duration,
}

impl Default for CommitRetry {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl CommitRetry {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jitter: f64 = rand::random::<f64>();
        cap.mul_f64(jitter)
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
                            if attempt >= self.retry.max_attempts {
                                return Err(Error::TooManyConflicts {
                                    table: name.to_string(),
                                    attempts: attempt,
                                    last: reason,
                                });
                            }
                            tracing::debug!(table = %name, attempt, %reason, "commit conflict; retrying on fresh metadata");
                            tokio::time::sleep(self.retry.delay(attempt)).await;
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
    /// nothing to send are left out). A conflict on any table re-plans them all.
    pub(crate) async fn commit_many_loop<T, F, Fut>(
        &self,
        names: &[TableName],
        mut plan: F,
    ) -> Result<Vec<(LoadedTable, T)>>
    where
        F: FnMut(Vec<LoadedTable>) -> Fut,
        Fut: Future<Output = Result<Vec<Plan<T>>>>,
    {
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
                    if attempt >= self.retry.max_attempts {
                        return Err(Error::TooManyConflicts {
                            table,
                            attempts: attempt,
                            last: reason,
                        });
                    }
                    tracing::debug!(%table, attempt, %reason, "multi-table commit conflict; retrying on fresh metadata");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
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

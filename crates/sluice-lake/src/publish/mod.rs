//! Publishing a branch into another: fast-forward when possible, otherwise a rebase of the
//! branch's appends onto the moved target (a cherry-pick of each appended data file).
//!
//! ```text
//!  main:    A ── B ──────────── C            (C: someone else published meanwhile)
//!                 \
//!  branch:         X1 ── X2                  (appends)
//!
//!  fast_forward(branch → main)  : only if main is still B  → main = X2
//!  rebase_appends(branch → main): main = C ── R, R adds the files of X1 and X2,
//!                                 R's summary has source-snapshot-id = X2
//! ```
//!
//! Every operation names its two refs in a [`RefMove`], field by field, so that the source and
//! the target cannot be swapped by accident:
//!
//! ```text
//!  lake.publish(&table, RefMove { source: &branch, target: &main }, properties)
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{DataFile, Operation};
use iceberg::{TableRequirement, TableUpdate};
use serde::{Deserialize, Serialize};

use crate::catalog::LoadedTable;
use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::ledger::{self, LEDGER_PROPERTY, LedgerEntry, LedgerWrite};
use crate::ref_ops::set_branch;
use crate::refs::{self, RefName};
use crate::snapshot_producer::{
    COMMIT_ID_PROPERTY, SOURCE_SNAPSHOT_PROPERTY, SnapshotSpec, files_added_by, new_snapshot_id,
    write_append_snapshot,
};
use crate::table_name::TableName;

/// How a publish moved the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishKind {
    /// The target already pointed at the source head.
    UpToDate,
    /// The target moved to the source head.
    FastForward,
    /// The source's appends were re-committed on top of the target.
    Rebase,
}

/// The result of a publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutcome {
    /// How the target moved.
    pub kind: PublishKind,
    /// The target's new head.
    pub snapshot_id: i64,
    /// The target's head before.
    pub previous: Option<i64>,
}

/// Options of [`Lake::rebase_appends`].
#[derive(Clone, Debug, Default)]
pub struct RebaseOptions {
    /// Summary properties of the new snapshot (message, author, …).
    pub properties: HashMap<String, String>,
    /// Write and add the rebased snapshot but do not move the target: the caller audits it and
    /// then moves the target with [`Lake::publish_staged`].
    pub stage: bool,
}

/// The result of a rebase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebased {
    /// The new snapshot.
    pub snapshot_id: i64,
    /// Its parent: the target head it was built on.
    pub parent_id: Option<i64>,
    /// Whether the target still has to be moved ([`RebaseOptions::stage`]).
    pub staged: bool,
    /// The source snapshots whose appends were re-applied, oldest first.
    pub replayed: Vec<i64>,
    /// Data files re-applied.
    pub files: usize,
}

fn branch_head(table: &LoadedTable, branch: &RefName) -> Result<Option<i64>> {
    match table.refs().get(branch.as_str()) {
        Some(r) if r.is_branch() => Ok(Some(r.snapshot_id)),
        Some(_) => Err(Error::RefNotAllowed {
            message: format!("`{branch}` of {} is a tag, not a branch", table.name()),
        }),
        None if branch.is_main() => Ok(None),
        None => Err(Error::BranchNotFound {
            table: table.name().to_string(),
            branch: branch.to_string(),
        }),
    }
}

fn moves(
    table: &LoadedTable,
    target: &RefName,
    target_head: Option<i64>,
    source: &RefName,
    source_head: i64,
) -> Vec<TableRequirement> {
    vec![
        TableRequirement::UuidMatch {
            uuid: table.metadata().uuid(),
        },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: target.to_string(),
            snapshot_id: target_head,
        },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: source.to_string(),
            snapshot_id: Some(source_head),
        },
    ]
}

/// The two refs of a publish operation: the commits of `source` go into `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefMove<'a> {
    /// The ref whose commits are published (an audit branch).
    pub source: &'a RefName,
    /// The ref that receives them (usually `main`).
    pub target: &'a RefName,
}

static MAIN_REF: std::sync::LazyLock<RefName> = std::sync::LazyLock::new(RefName::main);

impl<'a> RefMove<'a> {
    /// `source` into `main`.
    pub fn into_main(source: &'a RefName) -> Self {
        RefMove {
            source,
            target: &MAIN_REF,
        }
    }
}

impl Lake {
    /// Moves `refs.target` to the head of `refs.source`, when the target's head is an ancestor of it.
    /// Otherwise [`Error::CannotPublish`] (use [`Lake::rebase_appends`] or [`Lake::publish`]).
    pub async fn fast_forward(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
    ) -> Result<PublishOutcome> {
        let attempts = LedgerAttempts::new(self, None);
        self.fast_forward_inner(name, refs, false, &attempts).await
    }

    /// [`Lake::fast_forward`], removing the source branch in the same commit, and recording
    /// `ingested` (when given) in the table's ingest ledger in that same commit.
    pub async fn fast_forward_and_delete(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
        ingested: Option<&LedgerEntry>,
    ) -> Result<PublishOutcome> {
        if refs.source.is_main() {
            return Err(Error::RefNotAllowed {
                message: format!("cannot delete `main` of {name}"),
            });
        }
        let attempts = LedgerAttempts::new(self, ingested);
        let result = self.fast_forward_inner(name, refs, true, &attempts).await;
        attempts.finish(name, result.is_ok()).await;
        result
    }

    async fn fast_forward_inner(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
        remove_source: bool,
        attempts: &LedgerAttempts<'_>,
    ) -> Result<PublishOutcome> {
        let (_, outcome) = self
            .commit_loop(name, |table| async move {
                plan_fast_forward(&table, refs, remove_source, attempts).await
            })
            .await?;
        Ok(outcome)
    }

    /// Re-commits the data files appended on `source` since it forked from `target` as one new
    /// snapshot on top of `target`'s head (summary: `source-snapshot-id`). Every source
    /// snapshot since the fork point must be an append, otherwise [`Error::NotAnAppend`] names
    /// it and nothing changes. One catalog commit.
    pub async fn rebase_appends(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
        options: RebaseOptions,
    ) -> Result<Rebased> {
        let RefMove { source, target } = refs;
        let commit_id = uuid::Uuid::now_v7().to_string();
        let mut properties = options.properties.clone();
        properties.insert(COMMIT_ID_PROPERTY.to_string(), commit_id.clone());
        let properties = Arc::new(properties);
        let stage = options.stage;
        let (_, rebased) = self
            .commit_loop(name, |table| {
                let (target, source) = (target.clone(), source.clone());
                let properties = properties.clone();
                let commit_id = commit_id.clone();
                async move {
                    plan_rebase(&table, &target, &source, &properties, &commit_id, stage).await
                }
            })
            .await?;
        Ok(rebased)
    }

    /// Moves `target` to a snapshot staged by [`Lake::rebase_appends`], provided `target` has
    /// not moved since (the staged snapshot's parent is still its head). If it has moved, the
    /// result is a retryable [`Error::CommitConflict`]: rebase again.
    pub async fn publish_staged(
        &self,
        name: &TableName,
        target: &RefName,
        snapshot_id: i64,
    ) -> Result<PublishOutcome> {
        let attempts = LedgerAttempts::new(self, None);
        self.publish_staged_inner(name, target, snapshot_id, None, &attempts)
            .await
    }

    /// [`Lake::publish_staged`] of `snapshot_id` (staged by a rebase of `refs.source`) into
    /// `refs.target`, removing the source branch in the same commit (if it still exists) and
    /// recording `ingested` (when given) in the table's ingest ledger in that same commit.
    pub async fn publish_staged_and_delete(
        &self,
        name: &TableName,
        snapshot_id: i64,
        refs: RefMove<'_>,
        ingested: Option<&LedgerEntry>,
    ) -> Result<PublishOutcome> {
        let RefMove {
            source: branch,
            target,
        } = refs;
        if branch.is_main() || branch == target {
            return Err(Error::RefNotAllowed {
                message: format!("cannot delete `{branch}` of {name} while publishing into it"),
            });
        }
        let attempts = LedgerAttempts::new(self, ingested);
        let result = self
            .publish_staged_inner(name, target, snapshot_id, Some(branch), &attempts)
            .await;
        attempts.finish(name, result.is_ok()).await;
        result
    }

    /// Rebases the appends of `refs.source` onto `refs.target`'s head and moves the target
    /// there in one commit, removing the source branch and recording `ingested` (when given)
    /// in the table's ingest ledger in that same commit. A target that moves meanwhile only
    /// costs a re-plan of that one commit, so this is the publish that holds up best against
    /// many writers; use it when nothing has to be audited against the new head (otherwise
    /// stage with [`Lake::rebase_appends`] and publish with [`Lake::publish_staged_and_delete`]).
    pub async fn rebase_and_delete(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
        options: RebaseOptions,
        ingested: Option<&LedgerEntry>,
    ) -> Result<PublishOutcome> {
        let RefMove { source, target } = refs;
        if source.is_main() || source == target {
            return Err(Error::RefNotAllowed {
                message: format!("cannot delete `{source}` of {name} while publishing into it"),
            });
        }
        let commit_id = uuid::Uuid::now_v7().to_string();
        let mut properties = options.properties;
        properties.insert(COMMIT_ID_PROPERTY.to_string(), commit_id.clone());
        let properties = Arc::new(properties);
        let attempts = LedgerAttempts::new(self, ingested);
        let attempts = &attempts;
        let result = self
            .commit_loop(name, |table| {
                let properties = properties.clone();
                let commit_id = commit_id.clone();
                async move {
                    let plan =
                        plan_rebase(&table, target, source, &properties, &commit_id, false).await?;
                    Ok(match plan {
                        Plan::Done(rebased) => Plan::Done(rebased),
                        Plan::Commit {
                            requirements,
                            mut updates,
                            value,
                        } => {
                            updates.push(TableUpdate::RemoveSnapshotRef {
                                ref_name: source.to_string(),
                            });
                            updates.extend(attempts.next(&table).await?);
                            Plan::Commit {
                                requirements,
                                updates,
                                value,
                            }
                        }
                    })
                }
            })
            .await
            .map(|(_, rebased)| PublishOutcome {
                kind: PublishKind::Rebase,
                snapshot_id: rebased.snapshot_id,
                previous: rebased.parent_id,
            });
        attempts.finish(name, result.is_ok()).await;
        result
    }

    async fn publish_staged_inner(
        &self,
        name: &TableName,
        target: &RefName,
        snapshot_id: i64,
        remove: Option<&RefName>,
        attempts: &LedgerAttempts<'_>,
    ) -> Result<PublishOutcome> {
        let (_, outcome) = self
            .commit_loop(name, |table| async move {
                plan_staged(&table, target, snapshot_id, remove, attempts).await
            })
            .await?;
        Ok(outcome)
    }

    /// Publishes `source` into `target`: a fast-forward when `target` has not moved since the
    /// fork, otherwise a rebase of the appends. One catalog commit either way.
    pub async fn publish(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
        properties: HashMap<String, String>,
    ) -> Result<PublishOutcome> {
        match self.fast_forward(name, refs).await {
            Err(Error::CannotPublish { .. }) => {
                let rebased = self
                    .rebase_appends(
                        name,
                        refs,
                        RebaseOptions {
                            properties,
                            stage: false,
                        },
                    )
                    .await?;
                Ok(PublishOutcome {
                    kind: PublishKind::Rebase,
                    snapshot_id: rebased.snapshot_id,
                    previous: rebased.parent_id,
                })
            }
            other => other,
        }
    }

    /// [`Lake::publish`], recording `ingested` in the table's ingest ledger in the commit that
    /// moves `target`; the source branch stays. A rebase is staged first and then published
    /// with the ledger (two commits); if `target` moves in between, it is rebased again (a few
    /// times at most).
    pub async fn publish_recording(
        &self,
        name: &TableName,
        refs: RefMove<'_>,
        properties: HashMap<String, String>,
        ingested: &LedgerEntry,
    ) -> Result<PublishOutcome> {
        let ingested = Some(ingested);
        let attempts = LedgerAttempts::new(self, ingested);
        let mut result = self.fast_forward_inner(name, refs, false, &attempts).await;
        let mut rebases = 0;
        while matches!(result, Err(Error::CannotPublish { .. })) && rebases < 5 {
            rebases += 1;
            let staged = self
                .rebase_appends(
                    name,
                    refs,
                    RebaseOptions {
                        properties: properties.clone(),
                        stage: true,
                    },
                )
                .await;
            result = match staged {
                Ok(staged) => {
                    match self
                        .publish_staged_inner(
                            name,
                            refs.target,
                            staged.snapshot_id,
                            None,
                            &attempts,
                        )
                        .await
                    {
                        // The target moved after the rebase was staged: rebase again.
                        Err(Error::CommitConflict { table, reason }) if rebases < 5 => {
                            Err(Error::CannotPublish {
                                table,
                                source_ref: refs.source.to_string(),
                                target: refs.target.to_string(),
                                reason,
                            })
                        }
                        other => other,
                    }
                }
                Err(e) => Err(e),
            };
        }
        attempts.finish(name, result.is_ok()).await;
        result
    }
}

/// The commit that fast-forwards `refs.target` to the head of `refs.source` (and removes the
/// source when asked), with the next ledger version when `attempts` records one.
async fn plan_fast_forward(
    table: &LoadedTable,
    refs: RefMove<'_>,
    remove_source: bool,
    attempts: &LedgerAttempts<'_>,
) -> Result<Plan<PublishOutcome>> {
    let RefMove { source, target } = refs;
    let target_head = branch_head(table, target)?;
    let source_head = branch_head(table, source)?.ok_or_else(|| Error::BranchNotFound {
        table: table.name().to_string(),
        branch: source.to_string(),
    })?;
    if target_head == Some(source_head) && !remove_source {
        return Ok(Plan::Done(PublishOutcome {
            kind: PublishKind::UpToDate,
            snapshot_id: source_head,
            previous: target_head,
        }));
    }
    let ancestry = refs::ancestry(table.metadata(), Some(source_head));
    if let Some(t) = target_head
        && !ancestry.contains(&t)
    {
        return Err(Error::CannotPublish {
            table: table.name().to_string(),
            source_ref: source.to_string(),
            target: target.to_string(),
            reason: format!(
                "`{target}` moved to {t}, which is not an ancestor of `{source}` ({source_head}); a fast-forward is impossible, rebase instead"
            ),
        });
    }
    let mut updates = Vec::new();
    if target_head != Some(source_head) {
        updates.push(set_branch(target.as_str(), source_head));
    }
    if remove_source {
        updates.push(TableUpdate::RemoveSnapshotRef {
            ref_name: source.to_string(),
        });
    }
    updates.extend(attempts.next(table).await?);
    Ok(Plan::Commit {
        requirements: moves(table, target, target_head, source, source_head),
        updates,
        value: PublishOutcome {
            kind: if target_head == Some(source_head) {
                PublishKind::UpToDate
            } else {
                PublishKind::FastForward
            },
            snapshot_id: source_head,
            previous: target_head,
        },
    })
}

/// The commit that moves `target` to the staged snapshot `snapshot_id` (and removes `remove`
/// when it still exists), with the next ledger version when `attempts` records one.
async fn plan_staged(
    table: &LoadedTable,
    target: &RefName,
    snapshot_id: i64,
    remove: Option<&RefName>,
    attempts: &LedgerAttempts<'_>,
) -> Result<Plan<PublishOutcome>> {
    let removal: Vec<TableUpdate> = remove
        .filter(|b| table.refs().contains_key(b.as_str()))
        .map(|b| TableUpdate::RemoveSnapshotRef {
            ref_name: b.to_string(),
        })
        .into_iter()
        .collect();
    let md = table.metadata();
    let target_head = branch_head(table, target)?;
    if target_head == Some(snapshot_id) && removal.is_empty() {
        return Ok(Plan::Done(PublishOutcome {
            kind: PublishKind::UpToDate,
            snapshot_id,
            previous: target_head,
        }));
    }
    let staged = md
        .snapshot_by_id(snapshot_id)
        .ok_or_else(|| Error::RefNotFound {
            table: table.name().to_string(),
            reference: snapshot_id.to_string(),
            reason: "no staged snapshot with that id".to_string(),
        })?;
    if target_head != Some(snapshot_id) && staged.parent_snapshot_id() != target_head {
        return Err(Error::CommitConflict {
            table: table.name().to_string(),
            reason: format!(
                "`{target}` moved to {} after snapshot {snapshot_id} was staged on {}",
                fmt_id(target_head),
                fmt_id(staged.parent_snapshot_id())
            ),
        });
    }
    Ok(Plan::Commit {
        requirements: vec![
            TableRequirement::UuidMatch { uuid: md.uuid() },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: target.to_string(),
                snapshot_id: target_head,
            },
        ],
        updates: std::iter::once(set_branch(target.as_str(), snapshot_id))
            .chain(removal)
            .chain(attempts.next(table).await?)
            .collect(),
        value: PublishOutcome {
            kind: PublishKind::Rebase,
            snapshot_id,
            previous: target_head,
        },
    })
}

/// One table's part of [`Lake::publish_many`].
#[derive(Clone, Copy, Debug)]
pub struct TablePublish<'a> {
    /// The table.
    pub table: &'a TableName,
    /// Its source (audit branch) and target (`main`).
    pub refs: RefMove<'a>,
    /// A snapshot staged by [`Lake::rebase_appends`] to move the target to (it must still be
    /// built on the target's head); `None`: fast-forward the target to the source's head.
    pub staged: Option<i64>,
    /// Remove the source branch in the same commit.
    pub delete_source: bool,
    /// Recorded in the table's ingest ledger in the same commit.
    pub ingested: Option<&'a LedgerEntry>,
}

impl Lake {
    /// How this lake's catalog commits several tables at once.
    pub fn multi_table_commit(&self) -> crate::catalog::MultiTableCommit {
        self.backend.multi_table_commit()
    }

    /// Publishes several tables in ONE atomic multi-table catalog commit: every target moves
    /// (and every ledger records its entry) or none does. Each table is planned as
    /// [`Lake::fast_forward_and_delete`] or [`Lake::publish_staged_and_delete`] would; a
    /// conflict on any table re-plans them all on fresh metadata.
    ///
    /// [`Error::CannotPublish`] names a table whose target moved so that a fast-forward is
    /// impossible, and [`Error::CommitConflict`] one whose staged snapshot is no longer built
    /// on its target's head: the caller rebases (and audits) that table and calls again.
    /// Needs [`crate::MultiTableCommit::Atomic`]; other catalogs fail before sending anything.
    pub async fn publish_many(&self, items: &[TablePublish<'_>]) -> Result<Vec<PublishOutcome>> {
        if self.multi_table_commit() != crate::catalog::MultiTableCommit::Atomic {
            return Err(Error::Catalog {
                table: None,
                message: "this catalog offers no atomic multi-table commit".to_string(),
                retryable: false,
            });
        }
        let names: Vec<TableName> = items.iter().map(|i| i.table.clone()).collect();
        let attempts: Vec<LedgerAttempts<'_>> = items
            .iter()
            .map(|i| LedgerAttempts::new(self, i.ingested))
            .collect();
        let attempts = &attempts;
        let result = self
            .commit_many_loop(&names, |tables| async move {
                let mut plans = Vec::with_capacity(tables.len());
                for ((table, item), attempts) in tables.iter().zip(items).zip(attempts) {
                    if item.delete_source
                        && (item.refs.source.is_main() || item.refs.source == item.refs.target)
                    {
                        return Err(Error::RefNotAllowed {
                            message: format!(
                                "cannot delete `{}` of {} while publishing into it",
                                item.refs.source, item.table
                            ),
                        });
                    }
                    let plan = match item.staged {
                        Some(id) => {
                            let remove = item.delete_source.then_some(item.refs.source);
                            plan_staged(table, item.refs.target, id, remove, attempts).await?
                        }
                        None => {
                            plan_fast_forward(table, item.refs, item.delete_source, attempts)
                                .await?
                        }
                    };
                    plans.push(plan);
                }
                Ok(plans)
            })
            .await;
        for (name, attempts) in names.iter().zip(attempts) {
            attempts.finish(name, result.is_ok()).await;
        }
        Ok(result?.into_iter().map(|(_, outcome)| outcome).collect())
    }
}

/// The ledger versions the attempts of one publish wrote. After the publish, the version the
/// table points at keeps its files and the one it replaced loses its own; every other attempt's
/// files are deleted.
struct LedgerAttempts<'a> {
    lake: &'a Lake,
    entry: Option<&'a LedgerEntry>,
    writes: std::sync::Mutex<Vec<LedgerWrite>>,
}

impl<'a> LedgerAttempts<'a> {
    fn new(lake: &'a Lake, entry: Option<&'a LedgerEntry>) -> Self {
        Self {
            lake,
            entry,
            writes: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Writes the next ledger version on top of `table`'s and returns the update that points
    /// the table at it.
    async fn next(&self, table: &LoadedTable) -> Result<Option<TableUpdate>> {
        let Some(entry) = self.entry else {
            return Ok(None);
        };
        let write = ledger::write_next(self.lake, table, entry).await?;
        let update = write.update();
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(write);
        Ok(Some(update))
    }

    /// `committed`: the publish succeeded, so the last attempt's version is the table's.
    async fn finish(&self, name: &TableName, committed: bool) {
        let writes = std::mem::take(&mut *self.writes.lock().unwrap_or_else(|e| e.into_inner()));
        if writes.is_empty() {
            return;
        }
        let current = if committed {
            writes.last().map(|w| w.root.clone())
        } else {
            // Which version won is read back from the table: an attempt whose answer was lost
            // may have landed after all.
            let Ok(table) = self.lake.load_table(name).await else {
                return;
            };
            table.metadata().properties().get(LEDGER_PROPERTY).cloned()
        };
        for write in writes {
            if current.as_deref() == Some(write.root.as_str()) {
                ledger::delete_files(self.lake, &write.superseded).await;
            } else {
                ledger::delete_files(self.lake, &write.written).await;
            }
        }
    }
}

fn fmt_id(id: Option<i64>) -> String {
    id.map(|i| i.to_string())
        .unwrap_or_else(|| "nothing".to_string())
}

async fn plan_rebase(
    table: &LoadedTable,
    target: &RefName,
    source: &RefName,
    properties: &HashMap<String, String>,
    commit_id: &str,
    stage: bool,
) -> Result<Plan<Rebased>> {
    let md = table.metadata();
    let table_name = table.name().to_string();
    let target_head = branch_head(table, target)?;
    let source_head = branch_head(table, source)?.ok_or_else(|| Error::BranchNotFound {
        table: table_name.clone(),
        branch: source.to_string(),
    })?;

    // An earlier attempt whose answer was lost may have landed.
    if let Some(done) = md.snapshots().find(|s| {
        s.summary()
            .additional_properties
            .get(COMMIT_ID_PROPERTY)
            .map(String::as_str)
            == Some(commit_id)
    }) {
        return Ok(Plan::Done(Rebased {
            snapshot_id: done.snapshot_id(),
            parent_id: done.parent_snapshot_id(),
            staged: stage,
            replayed: Vec::new(),
            files: 0,
        }));
    }

    let target_ancestry: HashSet<i64> = refs::ancestry(md, target_head).into_iter().collect();
    let source_ancestry = refs::ancestry(md, Some(source_head));
    let mut replay = Vec::new();
    for id in &source_ancestry {
        if target_ancestry.contains(id) {
            break;
        }
        replay.push(*id);
    }
    replay.reverse();
    // What the target gained since the fork must be appends, or replaces that keep the rows
    // as they were (a compaction, a rewrite of manifests): a delete or an overwrite there may
    // have removed rows the branch was audited against.
    let source_set: HashSet<i64> = source_ancestry.into_iter().collect();
    for id in refs::ancestry(md, target_head) {
        if source_set.contains(&id) {
            break;
        }
        if let Some(snapshot) = md.snapshot_by_id(id)
            && !matches!(
                snapshot.summary().operation,
                Operation::Append | Operation::Replace
            )
        {
            return Err(Error::CannotPublish {
                table: table_name,
                source_ref: source.to_string(),
                target: target.to_string(),
                reason: format!(
                    "`{target}` moved to {} and snapshot {id} there is a `{}` that changed rows; a rebase is only possible over appends and compactions",
                    fmt_id(target_head),
                    snapshot.summary().operation.as_str()
                ),
            });
        }
    }
    let mut files: Vec<DataFile> = Vec::new();
    for id in &replay {
        let snapshot = md.snapshot_by_id(*id).ok_or_else(|| Error::RefNotFound {
            table: table_name.clone(),
            reference: id.to_string(),
            reason: "snapshot missing from metadata".to_string(),
        })?;
        let operation = &snapshot.summary().operation;
        if *operation != Operation::Append {
            return Err(Error::NotAnAppend {
                table: table_name,
                branch: source.to_string(),
                snapshot: *id,
                operation: operation.as_str().to_string(),
            });
        }
        files.extend(files_added_by(table, *id).await?);
    }
    let mut properties = properties.clone();
    properties.insert(
        SOURCE_SNAPSHOT_PROPERTY.to_string(),
        source_head.to_string(),
    );
    inherit_message_and_author(md, source_head, &mut properties);
    let (base_manifests, parent_summary) = SnapshotSpec::base_of(table, target_head).await?;
    let snapshot = write_append_snapshot(
        table,
        SnapshotSpec {
            parent: target_head,
            snapshot_id: new_snapshot_id(table),
            sequence_number: md.next_sequence_number(),
            files: &files,
            properties: &properties,
            base_manifests,
            parent_summary,
            metadata_run: None,
        },
    )
    .await?;
    let snapshot_id = snapshot.snapshot_id();
    let mut updates = vec![TableUpdate::AddSnapshot { snapshot }];
    if !stage {
        updates.push(set_branch(target.as_str(), snapshot_id));
    }
    Ok(Plan::Commit {
        requirements: moves(table, target, target_head, source, source_head),
        updates,
        value: Rebased {
            snapshot_id,
            parent_id: target_head,
            staged: stage,
            replayed: replay,
            files: files.len(),
        },
    })
}

/// A rebased commit says what the commit it re-applies said: its message and author, unless
/// the caller gave its own.
fn inherit_message_and_author(
    md: &iceberg::spec::TableMetadata,
    source_head: i64,
    properties: &mut HashMap<String, String>,
) {
    let Some(source) = md.snapshot_by_id(source_head) else {
        return;
    };
    for key in [
        crate::summary::MESSAGE_PROPERTY,
        crate::summary::AUTHOR_PROPERTY,
    ] {
        if !properties.contains_key(key)
            && let Some(value) = source.summary().additional_properties.get(key)
        {
            properties.insert(key.to_string(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests;

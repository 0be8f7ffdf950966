//! Creating, deleting, listing and rolling back branches and tags: one catalog commit each,
//! no data file touched.

use std::collections::HashMap;

use iceberg::spec::{SnapshotReference, SnapshotRetention};
use iceberg::{TableRequirement, TableUpdate};

use crate::catalog::LoadedTable;
use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::refs::{self, MAIN, RefInfo, RefKind, RefName, RefSpec, ref_kind};
use crate::snapshot_producer::{SnapshotSpec, new_snapshot_id, write_append_snapshot};
use crate::table_name::TableName;

impl Lake {
    /// Branches and tags with their snapshot ids, sorted by name.
    pub async fn list_refs(&self, name: &TableName) -> Result<Vec<RefInfo>> {
        Ok(self.load_table(name).await?.ref_list())
    }

    /// Creates a branch at the snapshot `from` resolves to. On a table with no snapshot yet,
    /// branching from `main` first gives `main` an empty snapshot (in the same commit), so
    /// that a brand-new table can be written on a branch.
    pub async fn create_branch(
        &self,
        name: &TableName,
        branch: &RefName,
        from: &RefSpec,
    ) -> Result<i64> {
        self.create_ref(name, branch, from, true).await
    }

    /// Creates a tag at the snapshot `at` resolves to.
    pub async fn create_tag(&self, name: &TableName, tag: &RefName, at: &RefSpec) -> Result<i64> {
        self.create_ref(name, tag, at, false).await
    }

    async fn create_ref(
        &self,
        name: &TableName,
        new: &RefName,
        from: &RefSpec,
        branch: bool,
    ) -> Result<i64> {
        let (_, id) = self
            .commit_loop(name, |table| async move {
                plan_create_ref(&table, new, from, branch).await
            })
            .await?;
        Ok(id)
    }

    /// [`Lake::create_branch`] of the same name in several tables, in one atomic
    /// multi-table commit (see [`Lake::multi_table_commit`]): a lake-wide branch. Returns each
    /// table's branch head, in the order given. If the name exists in any table, nothing is
    /// created.
    pub async fn create_branch_many(
        &self,
        names: &[TableName],
        branch: &RefName,
        from: &RefSpec,
    ) -> Result<Vec<i64>> {
        self.create_ref_many(names, branch, from, true).await
    }

    /// [`Lake::create_tag`] of the same name in several tables, in one atomic multi-table
    /// commit: a lake-wide tag.
    pub async fn create_tag_many(
        &self,
        names: &[TableName],
        tag: &RefName,
        at: &RefSpec,
    ) -> Result<Vec<i64>> {
        self.create_ref_many(names, tag, at, false).await
    }

    async fn create_ref_many(
        &self,
        names: &[TableName],
        new: &RefName,
        from: &RefSpec,
        branch: bool,
    ) -> Result<Vec<i64>> {
        let created = self
            .commit_many_loop(names, |tables| async move {
                let mut plans = Vec::with_capacity(tables.len());
                for table in &tables {
                    plans.push(plan_create_ref(table, new, from, branch).await?);
                }
                Ok(plans)
            })
            .await?;
        Ok(created.into_iter().map(|(_, id)| id).collect())
    }

    /// Deletes a branch or a tag: `kind` says which, and a ref of the other kind is left alone
    /// ([`Error::WrongRefKind`]), so a tag cannot be deleted by a command meant for branches.
    /// `main` cannot be deleted. Deleting a ref that does not exist is an error
    /// ([`Error::RefNotFound`]).
    pub async fn delete_ref(
        &self,
        name: &TableName,
        reference: &RefName,
        kind: RefKind,
    ) -> Result<()> {
        if reference.is_main() {
            return Err(Error::RefNotAllowed {
                message: format!(
                    "cannot delete `main` of {name}: it is the table's published state"
                ),
            });
        }
        self.commit_loop(name, |table| {
            let reference = reference.clone();
            async move {
                let md = table.metadata();
                let all_refs = table.refs();
                let Some(current) = all_refs.get(reference.as_str()) else {
                    return Err(Error::RefNotFound {
                        table: table.name().to_string(),
                        reference: reference.to_string(),
                        reason: format!("no {kind} of that name"),
                    });
                };
                refs::expect_kind(&table.name().to_string(), &reference, current, kind)?;
                Ok(Plan::Commit {
                    requirements: vec![
                        TableRequirement::UuidMatch { uuid: md.uuid() },
                        TableRequirement::RefSnapshotIdMatch {
                            r#ref: reference.to_string(),
                            snapshot_id: Some(current.snapshot_id),
                        },
                    ],
                    updates: vec![TableUpdate::RemoveSnapshotRef {
                        ref_name: reference.to_string(),
                    }],
                    value: (),
                })
            }
        })
        .await?;
        Ok(())
    }

    /// Like [`Lake::delete_ref`] for a branch, but a missing branch is not an error (for
    /// compensations that may run more than once). Returns whether a branch was deleted.
    pub async fn delete_ref_if_exists(
        &self,
        name: &TableName,
        reference: &RefName,
    ) -> Result<bool> {
        match self.delete_ref(name, reference, RefKind::Branch).await {
            Ok(()) => Ok(true),
            Err(Error::RefNotFound { .. } | Error::TableNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves a branch back to one of its ancestors (or to a tag on its history), as one commit.
    pub async fn rollback(&self, name: &TableName, branch: &RefName, to: &RefSpec) -> Result<i64> {
        let (_, id) = self
            .commit_loop(name, |table| {
                let branch = branch.clone();
                let to = to.clone();
                async move {
                    let md = table.metadata();
                    let table_name = table.name().to_string();
                    let head = table
                        .refs()
                        .get(branch.as_str())
                        .filter(|r| r.is_branch())
                        .map(|r| r.snapshot_id)
                        .ok_or_else(|| Error::BranchNotFound {
                            table: table_name.clone(),
                            branch: branch.to_string(),
                        })?;
                    let target = refs::resolve(&table_name, md, &to)?.ok_or_else(|| Error::RefNotFound {
                        table: table_name.clone(),
                        reference: to.to_string(),
                        reason: "it has no snapshot".to_string(),
                    })?;
                    if !refs::ancestry(md, Some(head)).contains(&target) {
                        return Err(Error::RefNotAllowed {
                            message: format!(
                                "cannot roll back {table_name} `{branch}` to {to} (snapshot {target}): it is not an ancestor of the branch head {head}"
                            ),
                        });
                    }
                    if target == head {
                        return Ok(Plan::Done(head));
                    }
                    Ok(Plan::Commit {
                        requirements: vec![
                            TableRequirement::UuidMatch { uuid: md.uuid() },
                            TableRequirement::RefSnapshotIdMatch {
                                r#ref: branch.to_string(),
                                snapshot_id: Some(head),
                            },
                        ],
                        updates: vec![set_branch(branch.as_str(), target)],
                        value: target,
                    })
                }
            })
            .await?;
        Ok(id)
    }
}

/// The commit that creates branch or tag `new` at `from` in `table`.
async fn plan_create_ref(
    table: &LoadedTable,
    new: &RefName,
    from: &RefSpec,
    branch: bool,
) -> Result<Plan<i64>> {
    let md = table.metadata();
    if table.refs().contains_key(new.as_str()) {
        return Err(Error::RefAlreadyExists {
            table: table.name().to_string(),
            name: new.clone(),
        });
    }
    let mut requirements = vec![
        TableRequirement::UuidMatch { uuid: md.uuid() },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: new.to_string(),
            snapshot_id: None,
        },
    ];
    let resolved = refs::resolve(&table.name().to_string(), md, from)?;
    if let RefSpec::Named(n) = from {
        requirements.push(TableRequirement::RefSnapshotIdMatch {
            r#ref: n.clone(),
            snapshot_id: resolved,
        });
    }
    let mut updates = Vec::new();
    let target = match resolved {
        Some(id) => id,
        None if branch => {
            let empty = empty_base_snapshot(table, None).await?;
            let id = empty.snapshot_id();
            updates.push(TableUpdate::AddSnapshot { snapshot: empty });
            updates.push(set_branch(MAIN, id));
            id
        }
        None => {
            return Err(Error::RefNotFound {
                table: table.name().to_string(),
                reference: from.to_string(),
                reason: "main has no snapshot yet, so there is nothing to tag".to_string(),
            });
        }
    };
    updates.push(if branch {
        set_branch(new.as_str(), target)
    } else {
        TableUpdate::SetSnapshotRef {
            ref_name: new.to_string(),
            reference: SnapshotReference::new(
                target,
                SnapshotRetention::Tag {
                    max_ref_age_ms: None,
                },
            ),
        }
    });
    Ok(Plan::Commit {
        requirements,
        updates,
        value: target,
    })
}

pub(crate) fn set_branch(name: &str, snapshot_id: i64) -> TableUpdate {
    TableUpdate::SetSnapshotRef {
        ref_name: name.to_string(),
        reference: SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
    }
}

pub(crate) fn refs_of(table: &LoadedTable) -> Vec<RefInfo> {
    let mut out: Vec<RefInfo> = table
        .refs()
        .iter()
        .map(|(name, r)| RefInfo {
            name: name.clone(),
            kind: ref_kind(r),
            snapshot_id: r.snapshot_id,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The empty first snapshot given to `main` of a table that has none, so it can be branched.
pub(crate) async fn empty_base_snapshot(
    table: &LoadedTable,
    run: Option<&str>,
) -> Result<iceberg::spec::Snapshot> {
    let properties = HashMap::from([(
        crate::summary::MESSAGE_PROPERTY.to_string(),
        "empty base snapshot (lets a new table be branched)".to_string(),
    )]);
    write_append_snapshot(
        table,
        SnapshotSpec {
            parent: None,
            snapshot_id: new_snapshot_id(table),
            sequence_number: table.metadata().next_sequence_number(),
            files: &[],
            properties: &properties,
            base_manifests: Vec::new(),
            parent_summary: HashMap::new(),
            metadata_run: run,
        },
    )
    .await
}

impl LoadedTable {
    /// [`Lake::list_refs`] on metadata already loaded.
    pub fn ref_list(&self) -> Vec<RefInfo> {
        refs_of(self)
    }
}

//! Undoing a run that did not publish: its branch, its snapshots and every file it wrote.
//!
//! A run writes its data files under `<data>/<run id>/` and the manifests and manifest lists
//! of its commits under `<location>/metadata/<run id>/` (see [`crate::WriteOptions::run_id`]
//! and [`crate::RUN_ID_PROPERTY`]), so everything it wrote can be found, and deleted, from its
//! run id alone, even by another process after a crash. Register mode adds source files in
//! place: those are never under the run's directories and are never deleted.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use iceberg::{TableRequirement, TableUpdate};
use object_store::ObjectStoreExt;

use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::refs::{self, RefName};
use crate::snapshot_producer::{RUN_ID_PROPERTY, data_dir, metadata_dir, run_dir};
use crate::table_name::TableName;

/// What [`Lake::discard_run`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Whether the branch existed and was deleted.
    pub branch_deleted: bool,
    /// Snapshots of the run that no ref reached any more, removed from the metadata.
    pub snapshots_removed: usize,
    /// Files deleted from the run's directories.
    pub files_deleted: usize,
}

impl Lake {
    /// Undoes a run that did not publish: deletes `branch` (if it exists), removes from the
    /// table's metadata the snapshots that carry the run's id and that no other ref reaches,
    /// and deletes every file under the run's directories, unless another ref still reaches
    /// one of the run's snapshots (a failed batch kept for inspection, a tag): then its files
    /// stay, and discarding that ref's run later deletes them. Idempotent: running it again, or
    /// for a run that wrote nothing, finds nothing to do.
    ///
    /// The caller must know that the run did not publish (for a WAP run: its key is not in the
    /// ingest ledger, [`Lake::run_key_published`]); otherwise `main` would lose files.
    pub async fn discard_run(
        &self,
        name: &TableName,
        branch: &RefName,
        run_id: &str,
    ) -> Result<Discarded> {
        if branch.is_main() {
            return Err(Error::RefNotAllowed {
                message: format!("cannot discard `main` of {name}"),
            });
        }
        if run_dir(Some(run_id)).is_none() {
            return Err(Error::Config(format!(
                "`{run_id}` is not a run id (letters, digits, `-` and `_` only)"
            )));
        }
        let mut out = Discarded::default();
        let committed = self
            .commit_loop(name, |table| {
                let branch = branch.clone();
                async move {
                    let md = table.metadata();
                    let all_refs = table.refs();
                    let own = all_refs
                        .get(branch.as_str())
                        .filter(|r| r.is_branch())
                        .map(|r| r.snapshot_id);
                    // Snapshots some other ref still needs.
                    let mut kept: HashSet<i64> = HashSet::new();
                    for (ref_name, r) in all_refs {
                        if ref_name != branch.as_str() {
                            kept.extend(refs::ancestry(md, Some(r.snapshot_id)));
                        }
                    }
                    let of_run: Vec<i64> = md
                        .snapshots()
                        .filter(|s| {
                            s.summary()
                                .additional_properties
                                .get(RUN_ID_PROPERTY)
                                .map(String::as_str)
                                == Some(run_id)
                        })
                        .map(|s| s.snapshot_id())
                        .collect();
                    // Another ref (a kept failed batch, a user's branch or tag) still reaches
                    // some of the run's snapshots: they, and so the run's files, stay.
                    let still_reached = of_run.iter().any(|id| kept.contains(id));
                    let removable: Vec<i64> =
                        of_run.into_iter().filter(|id| !kept.contains(id)).collect();
                    if own.is_none() && removable.is_empty() {
                        return Ok(Plan::Done((false, 0, still_reached)));
                    }
                    let mut requirements = vec![TableRequirement::UuidMatch { uuid: md.uuid() }];
                    let mut updates = Vec::new();
                    if let Some(head) = own {
                        requirements.push(TableRequirement::RefSnapshotIdMatch {
                            r#ref: branch.to_string(),
                            snapshot_id: Some(head),
                        });
                        updates.push(TableUpdate::RemoveSnapshotRef {
                            ref_name: branch.to_string(),
                        });
                    }
                    if !removable.is_empty() {
                        updates.push(TableUpdate::RemoveSnapshots {
                            snapshot_ids: removable.clone(),
                        });
                    }
                    Ok(Plan::Commit {
                        requirements,
                        updates,
                        value: (own.is_some(), removable.len(), still_reached),
                    })
                }
            })
            .await;
        match committed {
            Ok((_, (deleted, removed, still_reached))) => {
                out.branch_deleted = deleted;
                out.snapshots_removed = removed;
                if still_reached {
                    tracing::info!(table = %name, run = run_id, "another ref reaches the run's snapshots: its files are kept");
                    return Ok(out);
                }
            }
            // Nothing of the table is left to undo but, perhaps, files.
            Err(Error::TableNotFound { .. }) => return Ok(out),
            Err(e) => return Err(e),
        }
        out.files_deleted = self.delete_run_files(name, run_id).await?;
        Ok(out)
    }

    /// Deletes every file under the run's data and metadata directories of the table and
    /// returns how many there were, but for the manifest lists of snapshots the table still
    /// has (the empty base snapshot a run's first commit gave a new table is `main`'s). Nothing
    /// else is touched.
    pub async fn delete_run_files(&self, name: &TableName, run_id: &str) -> Result<usize> {
        let Some(run) = run_dir(Some(run_id)) else {
            return Ok(0);
        };
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let in_use: HashSet<String> = md
            .snapshots()
            .filter_map(|s| self.stores().resolve(s.manifest_list()).ok())
            .map(|(_, path)| path.as_ref().to_string())
            .collect();
        let mut deleted = 0;
        for dir in [data_dir(md, Some(run)), metadata_dir(md, Some(run))] {
            let (store, prefix) = self.stores().resolve(&dir)?;
            let storage = |source| Error::Storage {
                location: dir.clone(),
                source,
            };
            let listed: Vec<object_store::ObjectMeta> = store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(storage)?;
            let paths = listed
                .into_iter()
                .map(|m| m.location)
                .filter(|p| !in_use.contains(p.as_ref()));
            let results: Vec<std::result::Result<(), object_store::Error>> =
                futures::stream::iter(paths)
                    .map(|path| {
                        let store = store.clone();
                        async move {
                            match store.delete(&path).await {
                                Err(object_store::Error::NotFound { .. }) => Ok(()),
                                other => other,
                            }
                        }
                    })
                    .buffer_unordered(8)
                    .collect()
                    .await;
            for result in results {
                result.map_err(storage)?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(table = %name, run = run_id, files = deleted, "deleted the files of a run that did not publish");
        }
        Ok(deleted)
    }
}

//! Appends: data files (written in copy mode, or registered in place) committed as one new
//! snapshot on a branch.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::spec::DataFile;
use iceberg::{TableRequirement, TableUpdate};

use crate::catalog::LoadedTable;
use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::ingest::register::data_files_for;
use crate::lake::Lake;
use crate::parquet::read_footers;
use crate::ref_ops::{empty_base_snapshot, set_branch};
use crate::refs::{self, MAIN, RefName, RefSpec};
use crate::snapshot_producer::{
    COMMIT_ID_PROPERTY, SnapshotSpec, WriteOptions, new_snapshot_id, write_append_snapshot,
};
use crate::table_name::TableName;
use crate::writer::TableWriter;

/// The result of an append.
#[derive(Clone, Debug)]
pub struct AppendOutcome {
    /// The new head of the branch.
    pub snapshot_id: i64,
    /// Its parent.
    pub parent_id: Option<i64>,
    /// Data files added.
    pub added_files: usize,
    /// Rows added.
    pub added_records: u64,
    /// Whether the commit had already been made by an earlier attempt (found by commit id).
    pub already_committed: bool,
}

/// An append to commit.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The branch to move.
    pub branch: RefName,
    /// Create the branch from this ref in the same commit (it must not exist yet).
    pub create_from: Option<RefSpec>,
    /// The data files (from a [`TableWriter`] or [`Lake::register_files`]).
    pub files: Vec<DataFile>,
    /// Snapshot summary properties (message, author, run id, …).
    pub properties: HashMap<String, String>,
}

impl Lake {
    /// A writer for copy mode: batches in, parquet data files out (not yet committed).
    pub async fn table_writer(
        &self,
        table: &LoadedTable,
        options: &WriteOptions,
    ) -> Result<TableWriter> {
        TableWriter::new(table, options).await
    }

    /// Register mode: `DataFile` entries for existing parquet files, from their footers only.
    /// Files whose schema does not match the table are rejected, naming the file.
    pub async fn register_files(
        &self,
        table: &LoadedTable,
        locations: &[String],
    ) -> Result<Vec<DataFile>> {
        let footers = read_footers(&self.stores, locations).await?;
        data_files_for(table, &footers).await
    }

    /// Commits data files as one new snapshot on a branch whose parent is the branch head,
    /// moving only that branch. Safe to call again after an unknown outcome: an earlier
    /// successful attempt is recognised by the request's commit id.
    pub async fn commit_append(
        &self,
        name: &TableName,
        request: AppendRequest,
    ) -> Result<AppendOutcome> {
        let commit_id = uuid::Uuid::now_v7().to_string();
        let mut properties = request.properties.clone();
        properties.insert(COMMIT_ID_PROPERTY.to_string(), commit_id.clone());
        let request = Arc::new(AppendRequest {
            properties,
            ..request
        });
        let (_, outcome) = self
            .commit_loop(name, |table| {
                let request = request.clone();
                let commit_id = commit_id.clone();
                async move { plan_append(&table, &request, &commit_id).await }
            })
            .await?;
        Ok(outcome)
    }

    /// Convenience: writes batches in copy mode and commits them to `branch` (which must exist).
    pub async fn append_batches(
        &self,
        name: &TableName,
        branch: &RefName,
        batches: &[RecordBatch],
        properties: HashMap<String, String>,
    ) -> Result<AppendOutcome> {
        let table = self.load_table(name).await?;
        let mut writer = self.table_writer(&table, &WriteOptions::default()).await?;
        for batch in batches {
            writer.write(batch, "<batches>").await?;
        }
        let files = writer.finish().await?;
        self.commit_append(
            name,
            AppendRequest {
                branch: branch.clone(),
                create_from: None,
                files,
                properties,
            },
        )
        .await
    }
}

async fn plan_append(
    table: &LoadedTable,
    request: &AppendRequest,
    commit_id: &str,
) -> Result<Plan<AppendOutcome>> {
    let md = table.metadata();
    let table_name = table.name().to_string();
    let branch = request.branch.as_str();
    let head = table.refs().get(branch).map(|r| r.snapshot_id);
    let added_records: u64 = request.files.iter().map(DataFile::record_count).sum();

    // An earlier attempt whose answer was lost may have landed: find it by commit id.
    for id in refs::ancestry(md, head).into_iter().take(256) {
        if let Some(s) = md.snapshot_by_id(id)
            && s.summary()
                .additional_properties
                .get(COMMIT_ID_PROPERTY)
                .map(String::as_str)
                == Some(commit_id)
        {
            return Ok(Plan::Done(AppendOutcome {
                snapshot_id: id,
                parent_id: s.parent_snapshot_id(),
                added_files: request.files.len(),
                added_records,
                already_committed: true,
            }));
        }
    }

    let mut requirements = vec![TableRequirement::UuidMatch { uuid: md.uuid() }];
    let mut updates = Vec::new();
    let mut sequence_number = md.next_sequence_number();
    let (parent, base_manifests, parent_summary) = match (head, &request.create_from) {
        (Some(head), None) => {
            if table.refs().get(branch).is_some_and(|r| !r.is_branch()) {
                return Err(Error::RefNotAllowed {
                    message: format!(
                        "`{branch}` of {table_name} is a tag; only branches can be appended to"
                    ),
                });
            }
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: branch.to_string(),
                snapshot_id: Some(head),
            });
            let (manifests, summary) = SnapshotSpec::base_of(table, Some(head)).await?;
            (Some(head), manifests, summary)
        }
        (Some(_), Some(_)) => {
            return Err(Error::RefAlreadyExists {
                table: table_name,
                name: request.branch.clone(),
            });
        }
        (None, None) if request.branch.is_main() => {
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN.to_string(),
                snapshot_id: None,
            });
            (None, Vec::new(), HashMap::new())
        }
        (None, None) => {
            return Err(Error::BranchNotFound {
                table: table_name,
                branch: branch.to_string(),
            });
        }
        (None, Some(from)) => {
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: branch.to_string(),
                snapshot_id: None,
            });
            let resolved = refs::resolve(&table_name, md, from)?;
            if let RefSpec::Named(n) = from {
                requirements.push(TableRequirement::RefSnapshotIdMatch {
                    r#ref: n.clone(),
                    snapshot_id: resolved,
                });
            }
            match resolved {
                Some(base) => {
                    let (manifests, summary) = SnapshotSpec::base_of(table, Some(base)).await?;
                    (Some(base), manifests, summary)
                }
                None => {
                    // Under the run's directory: a crash before this commit leaves it
                    // where the run's rollback looks.
                    let run = request
                        .properties
                        .get(crate::summary::RUN_ID_PROPERTY)
                        .map(String::as_str);
                    let empty = empty_base_snapshot(table, run).await?;
                    let id = empty.snapshot_id();
                    let summary = empty.summary().additional_properties.clone();
                    updates.push(TableUpdate::AddSnapshot { snapshot: empty });
                    updates.push(set_branch(MAIN, id));
                    sequence_number += 1;
                    (Some(id), Vec::new(), summary)
                }
            }
        }
    };
    let snapshot = write_append_snapshot(
        table,
        SnapshotSpec {
            parent,
            snapshot_id: new_snapshot_id(table),
            sequence_number,
            files: &request.files,
            properties: &request.properties,
            base_manifests,
            parent_summary,
            metadata_run: None,
        },
    )
    .await?;
    let snapshot_id = snapshot.snapshot_id();
    updates.push(TableUpdate::AddSnapshot { snapshot });
    updates.push(set_branch(branch, snapshot_id));
    Ok(Plan::Commit {
        requirements,
        updates,
        value: AppendOutcome {
            snapshot_id,
            parent_id: parent,
            added_files: request.files.len(),
            added_records,
            already_committed: false,
        },
    })
}

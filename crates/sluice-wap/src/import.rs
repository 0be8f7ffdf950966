//! Imports and merges for flows an orchestrator drives step by step: files written onto a
//! branch without an audit or a publish, and a merge that publishes such a branch and records
//! its files in the ingest ledger, so that a later run or import skips them.
//!
//! ```text
//!  import_files(branch)   files → data files on `branch`; the snapshot's summary keeps a
//!                         record of the import (its run key and source files)
//!  audit_ref(branch)      the caller's checks
//!  merge(branch → main)   fast-forward or rebase, and the records' files into the ledger,
//!                         in the commit that moves main
//! ```
//!
//! A failed import deletes what it wrote before it returns. Unlike a run, an import is not a
//! durable transaction: a process killed in the middle of one leaves files that no ref
//! reaches (maintenance removes them), and the caller's flow decides what to undo.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sluice_lake::summary::IMPORT_RECORD_PROPERTY;
use sluice_lake::{
    LedgerEntry, PublishOutcome, RebaseOptions, RefMove, RefName, RefSpec, TableName, TablePublish,
};

use crate::error::{Error, Result};
use crate::options::RunOptions;
use crate::pipeline::{Pipeline, RunState};
use crate::source::{list_source, run_key};
use crate::write::WriteTarget;

/// What an import wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportReport {
    /// The table.
    pub table: TableName,
    /// The branch the files were written onto.
    pub branch: String,
    /// Source files imported (none when every file was already in `main`).
    pub files: Vec<String>,
    /// Rows written.
    pub rows: u64,
    /// The branch's new head (`None` when nothing was imported and the branch does not exist).
    pub snapshot_id: Option<i64>,
    /// Copy mode: files whose column chunks were copied as they are.
    pub copied_as_is: usize,
    /// Partitioned tables: rows and files written per partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<sluice_lake::partition::PartitionRows>,
}

/// What an import records for the merge that publishes it.
#[derive(Debug, Serialize, Deserialize)]
struct ImportRecord {
    run_key: String,
    files: Vec<String>,
}

impl Pipeline {
    /// Writes the files of `options.source` that neither `main` nor an earlier import onto the
    /// branch holds onto `branch`
    /// (created from `main` when it does not exist; the table is created from the first file
    /// when it does not exist either), in copy or register mode, without auditing or
    /// publishing. The branch must not be `main`: a run publishes to `main` through an audit.
    pub async fn import_files(
        &self,
        options: &RunOptions,
        branch: &RefName,
    ) -> Result<ImportReport> {
        let table = &options.table;
        if branch.is_main() {
            return Err(sluice_lake::Error::RefNotAllowed {
                message: format!(
                    "files are imported onto a branch of {table}, not onto `main`; a run publishes to main after its audit"
                ),
            }
            .into());
        }
        self.check_partition_spec(options).await?;
        let listed = match &options.files {
            Some(files) => files.clone(),
            None => list_source(self.lake(), &options.source).await?,
        };
        let mut files = self.not_yet_published(table, listed).await?;
        let head = match self.lake().resolve(table, &RefSpec::from(branch)).await {
            Ok(resolved) => resolved.snapshot_id,
            Err(
                sluice_lake::Error::RefNotFound { .. } | sluice_lake::Error::TableNotFound { .. },
            ) => None,
            Err(e) => return Err(e.into()),
        };
        // Files an earlier import already wrote onto this branch (a retried task) are skipped
        // too.
        if head.is_some() {
            let on_branch: HashSet<String> = self
                .import_records(table, branch)
                .await?
                .into_iter()
                .flat_map(|r| r.files)
                .collect();
            files.retain(|f| !on_branch.contains(&f.location));
        }
        let mut report = ImportReport {
            table: table.clone(),
            branch: branch.to_string(),
            files: files.iter().map(|f| f.location.clone()).collect(),
            rows: 0,
            snapshot_id: None,
            copied_as_is: 0,
            partitions: Vec::new(),
        };
        if files.is_empty() {
            report.snapshot_id = head;
            return Ok(report);
        }
        let import_id = uuid::Uuid::now_v7().to_string();
        let key = run_key(table, &files);
        let mut import_options = options.clone();
        import_options.checks = None;
        let state = Mutex::new(RunState::default());
        let record = ImportRecord {
            run_key: key.clone(),
            files: report.files.clone(),
        };
        let record = serde_json::to_string(&record).map_err(|e| Error::Config(e.to_string()))?;
        let target = WriteTarget {
            branch,
            append: head.is_some(),
            properties: HashMap::from([(IMPORT_RECORD_PROPERTY.to_string(), record)]),
        };
        let written = self
            .write_to(&import_options, &files, &target, &import_id, &key, &state)
            .await;
        match written {
            Ok(written) => {
                report.rows = written.rows;
                report.snapshot_id = Some(written.snapshot_id);
                report.copied_as_is = written.copied_as_is;
                report.partitions = written.partitions;
                Ok(report)
            }
            Err(e) => {
                // Nothing reaches what the import wrote: delete it.
                if let Err(cleanup) = self.lake().delete_run_files(table, &import_id).await {
                    tracing::warn!(%table, error = %cleanup, "could not delete the files of a failed import");
                }
                Err(e)
            }
        }
    }

    /// Publishes `branch` into `into` (a fast-forward, or a rebase of its appends). Into
    /// `main`, the source files of the imports on the branch since it forked are added to the
    /// ingest ledger in the same commit; if `main` already holds one of them (imported and
    /// merged elsewhere meanwhile), nothing changes and the error names it. The branch stays.
    pub async fn merge(
        &self,
        table: &TableName,
        branch: &RefName,
        into: &RefName,
    ) -> Result<PublishOutcome> {
        let lake = self.lake();
        let refs = RefMove {
            source: branch,
            target: into,
        };
        match self.merge_entry(table, branch, into).await? {
            None => Ok(lake.publish(table, refs, HashMap::new()).await?),
            Some(entry) => Ok(lake
                .publish_recording(table, refs, HashMap::new(), &entry)
                .await?),
        }
    }

    /// [`Pipeline::merge`] of the same branch of several tables (a lake-wide branch), in one
    /// atomic multi-table catalog commit: every table's `into` moves, or none does. A table
    /// whose `into` moved since the branch was cut gets its appends rebased (staged) first. The
    /// branches stay.
    pub async fn merge_many(
        &self,
        tables: &[TableName],
        branch: &RefName,
        into: &RefName,
    ) -> Result<Vec<PublishOutcome>> {
        let lake = self.lake();
        let mut entries = Vec::with_capacity(tables.len());
        for table in tables {
            entries.push(self.merge_entry(table, branch, into).await?);
        }
        let refs = RefMove {
            source: branch,
            target: into,
        };
        let mut staged: Vec<Option<i64>> = vec![None; tables.len()];
        let mut rounds = 0;
        loop {
            rounds += 1;
            let items: Vec<TablePublish<'_>> = tables
                .iter()
                .zip(&entries)
                .zip(&staged)
                .map(|((table, entry), staged)| TablePublish {
                    table,
                    refs,
                    staged: *staged,
                    delete_source: false,
                    ingested: entry.as_ref(),
                })
                .collect();
            let moved = match lake.publish_many(&items).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(
                    sluice_lake::Error::CannotPublish { table, .. }
                    | sluice_lake::Error::CommitConflict { table, .. },
                ) if rounds <= 2 * tables.len() + 2 => table,
                Err(e) => return Err(e.into()),
            };
            let Some(i) = tables.iter().position(|t| t.to_string() == moved) else {
                return Err(sluice_lake::Error::CommitConflict {
                    table: moved,
                    reason: "the multi-table commit was refused".to_string(),
                }
                .into());
            };
            let rebased = lake
                .rebase_appends(
                    &tables[i],
                    refs,
                    RebaseOptions {
                        properties: HashMap::new(),
                        stage: true,
                    },
                )
                .await?;
            staged[i] = Some(rebased.snapshot_id);
        }
    }

    /// What a merge of `branch` into `into` adds to the table's ingest ledger: the source
    /// files of the imports on the branch (into `main` only). Refuses files `main` holds.
    async fn merge_entry(
        &self,
        table: &TableName,
        branch: &RefName,
        into: &RefName,
    ) -> Result<Option<LedgerEntry>> {
        if !into.is_main() {
            return Ok(None);
        }
        let records = self.import_records(table, branch).await?;
        if records.is_empty() {
            return Ok(None);
        }
        let lake = self.lake();
        let files: BTreeSet<String> = records.iter().flat_map(|r| r.files.clone()).collect();
        let files: Vec<String> = files.into_iter().collect();
        let published = lake.published_files(table, &files).await?;
        if let Some(first) = files.iter().find(|f| published.contains(*f)) {
            return Err(sluice_lake::Error::CannotPublish {
                table: table.to_string(),
                source_ref: branch.to_string(),
                target: into.to_string(),
                reason: format!(
                    "main already holds {first}{} (imported and published elsewhere); merging would add their rows twice. Delete the branch and import again: files main holds are skipped",
                    match published.len() {
                        1 => String::new(),
                        n => format!(" and {} other file(s) of the branch", n - 1),
                    }
                ),
            }
            .into());
        }
        Ok(Some(LedgerEntry {
            run_key: records[0].run_key.clone(),
            files,
        }))
    }

    /// The records of the imports on `branch` since it forked from `main`, newest first.
    async fn import_records(
        &self,
        table: &TableName,
        branch: &RefName,
    ) -> Result<Vec<ImportRecord>> {
        let lake = self.lake();
        let on_main: HashSet<i64> = lake
            .log(table, &RefSpec::main(), None)
            .await?
            .into_iter()
            .map(|c| c.snapshot_id)
            .collect();
        let mut records = Vec::new();
        for commit in lake.log(table, &RefSpec::from(branch), None).await? {
            if on_main.contains(&commit.snapshot_id) {
                break;
            }
            if let Some(text) = commit.summary.get(IMPORT_RECORD_PROPERTY) {
                let record: ImportRecord = serde_json::from_str(text).map_err(|e| {
                    Error::Lake(sluice_lake::Error::LedgerUnreadable {
                        table: table.to_string(),
                        location: format!("the summary of snapshot {}", commit.snapshot_id),
                        reason: format!("its import record does not parse: {e}"),
                    })
                })?;
                records.push(record);
            }
        }
        Ok(records)
    }
}

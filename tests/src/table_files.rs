//! What files a table's metadata reaches and what files are stored under its location: the
//! difference is what a crash or a rollback left behind.
//!
//! ```text
//!   current metadata file ─┬─ previous metadata files (metadata log)
//!                          ├─ statistics files
//!                          ├─ the ingest ledger (table property) ─► its bucket files
//!                          └─ every snapshot ─► manifest list ─► manifests ─► data files
//!   stored  = every object under the table location
//!   orphans = stored − reachable        missing = reachable data files − stored
//! ```

use std::collections::BTreeSet;

use futures::TryStreamExt;
use object_store::ObjectStore;
use sluice_lake::{Lake, TableName, storage::parse_location};

/// The files of one table, as full URLs (`s3://bucket/key`, `file:///path`).
#[derive(Clone, Debug, Default)]
pub struct TableFiles {
    /// The table location from its metadata.
    pub location: String,
    /// Every file the current metadata reaches (metadata, manifest lists, manifests, data
    /// files, statistics).
    pub reachable: BTreeSet<String>,
    /// The data files of every snapshot's manifests.
    pub data_files: BTreeSet<String>,
    /// Every object stored under the table location.
    pub stored: BTreeSet<String>,
}

impl TableFiles {
    /// Stored files that nothing in the metadata reaches.
    pub fn orphans(&self) -> Vec<String> {
        self.stored.difference(&self.reachable).cloned().collect()
    }

    /// Data files the metadata references that are not stored.
    pub fn missing_data_files(&self) -> Vec<String> {
        self.data_files.difference(&self.stored).cloned().collect()
    }
}

/// Walks `table`'s metadata and lists its location. Errors are returned as text naming what
/// could not be read.
pub async fn table_files(lake: &Lake, table: &TableName) -> Result<TableFiles, String> {
    let loaded = lake
        .load_table(table)
        .await
        .map_err(|e| format!("cannot load {table}: {e}"))?;
    let iceberg = loaded.iceberg_table();
    let metadata = loaded.metadata();
    let mut files = TableFiles {
        location: metadata.location().trim_end_matches('/').to_string(),
        ..TableFiles::default()
    };
    if let Some(current) = loaded.metadata_location() {
        files.reachable.insert(current.to_string());
    }
    for entry in metadata.metadata_log() {
        files.reachable.insert(entry.metadata_file.clone());
    }
    for statistics in metadata.statistics_iter() {
        files.reachable.insert(statistics.statistics_path.clone());
    }
    for statistics in metadata.partition_statistics_iter() {
        files.reachable.insert(statistics.statistics_path.clone());
    }
    for snapshot in metadata.snapshots() {
        files.reachable.insert(snapshot.manifest_list().to_string());
        let list = iceberg
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(|e| {
                format!(
                    "cannot read manifest list {}: {e}",
                    snapshot.manifest_list()
                )
            })?;
        for manifest_file in list.entries() {
            files.reachable.insert(manifest_file.manifest_path.clone());
            let manifest = manifest_file
                .load_manifest(iceberg.file_io())
                .await
                .map_err(|e| {
                    format!("cannot read manifest {}: {e}", manifest_file.manifest_path)
                })?;
            for entry in manifest.entries() {
                files.reachable.insert(entry.file_path().to_string());
                files.data_files.insert(entry.file_path().to_string());
            }
        }
    }
    if let Some(root) = metadata
        .properties()
        .get(sluice_lake::summary::LEDGER_PROPERTY)
    {
        files.reachable.insert(root.clone());
        files.reachable.extend(ledger_buckets(lake, root).await?);
    }
    files.stored = stored_files(lake, &files.location).await?;
    Ok(files)
}

/// The bucket files an ingest ledger root refers to.
async fn ledger_buckets(lake: &Lake, root: &str) -> Result<Vec<String>, String> {
    let (store, path) = lake
        .stores()
        .resolve(root)
        .map_err(|e| format!("cannot resolve {root}: {e}"))?;
    let bytes = object_store::ObjectStoreExt::get(&*store, &path)
        .await
        .map_err(|e| format!("cannot read the ingest ledger {root}: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("cannot read the ingest ledger {root}: {e}"))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the ingest ledger {root} is not JSON: {e}"))?;
    Ok(doc["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|b| b.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Every object under `location` (a directory-like prefix), as full URLs.
pub async fn stored_files(lake: &Lake, location: &str) -> Result<BTreeSet<String>, String> {
    let url = parse_location(location).map_err(|e| e.to_string())?;
    let (store, prefix) = lake
        .stores()
        .resolve(location)
        .map_err(|e| format!("cannot resolve {location}: {e}"))?;
    let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    let objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| format!("cannot list {location}: {e}"))?;
    Ok(objects
        .into_iter()
        .map(|meta| format!("{base}/{}", meta.location))
        .collect())
}

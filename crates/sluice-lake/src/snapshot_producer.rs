//! The snapshot producer: writes data files, manifests and manifest lists, and builds the
//! snapshots that sluice commits to a branch.
//!
//! ```text
//!  RecordBatches ──► TableWriter ──► parquet data files ─┐
//!  existing parquet ──► register (footers only) ─────────┤  Vec<DataFile>
//!                                                        ▼
//!     manifest (new files) + parent's manifests ──► manifest list ──► Snapshot
//!                                                        │
//!                          AddSnapshot + SetSnapshotRef(branch) — one catalog commit
//! ```

use std::collections::HashMap;

use iceberg::spec::{
    DataFile, FormatVersion, ManifestFile, ManifestList, ManifestListWriter, ManifestStatus,
    ManifestWriterBuilder, Operation, Snapshot, Summary,
};

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::manifests::{ManifestListHeader, write_manifest_list_v2};
use crate::schema::NanosToMicros;

pub(crate) use crate::summary::{COMMIT_ID_PROPERTY, RUN_ID_PROPERTY, SOURCE_SNAPSHOT_PROPERTY};

/// A run id usable as a directory name (letters, digits, `-`, `_`), or `None`.
pub(crate) fn run_dir(run_id: Option<&str>) -> Option<&str> {
    run_id.filter(|r| {
        !r.is_empty()
            && r.len() <= 64
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Where a table's data files go: `write.data.path`, or `<location>/data`, and below it the
/// run's own directory when there is one.
pub(crate) fn data_dir(metadata: &iceberg::spec::TableMetadata, run_id: Option<&str>) -> String {
    let base = metadata
        .properties()
        .get("write.data.path")
        .or_else(|| metadata.properties().get("write.folder-storage.path"))
        .map(|p| p.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("{}/data", metadata.location().trim_end_matches('/')));
    match run_dir(run_id) {
        Some(run) => format!("{base}/{run}"),
        None => base,
    }
}

/// Where a commit's manifests and manifest list go: `<location>/metadata`, and below it the
/// run's own directory when there is one.
pub(crate) fn metadata_dir(
    metadata: &iceberg::spec::TableMetadata,
    run_id: Option<&str>,
) -> String {
    let base = format!("{}/metadata", metadata.location().trim_end_matches('/'));
    match run_dir(run_id) {
        Some(run) => format!("{base}/{run}"),
        None => base,
    }
}

/// Options for writing data files in copy mode.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Roll to a new data file after about this many bytes (a table's
    /// `write.target-file-size-bytes` wins).
    pub target_file_size: usize,
    /// zstd compression level.
    pub zstd_level: i32,
    /// Maximum rows in a parquet row group.
    pub max_row_group_rows: usize,
    /// Bytes a column chunk's dictionary may reach before the column falls back to plain
    /// encoding (a table's `write.parquet.dict-size-bytes` wins).
    pub dictionary_page_size: usize,
    /// A source file whose row groups average fewer compressed bytes is re-encoded even when
    /// its column chunks could be copied as they are (see [`crate::ingest::chunk_copy_blocker`]), so
    /// that many small files become fewer, larger ones.
    pub min_copied_row_group_bytes: u64,
    /// The run writing the files: they go to the run's own directory under the table's data
    /// directory, so that a rollback can delete them all ([`crate::Lake::delete_run_files`]).
    pub run_id: Option<String>,
    /// What becomes of nanosecond timestamps (stored as microseconds).
    pub nanos: NanosToMicros,
    /// Partitioned tables: at most this many data files open at once (one per partition).
    pub max_open_writers: usize,
    /// Partitioned tables: about this many bytes of rows held by open files before the
    /// fullest is closed.
    pub memory_budget: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            target_file_size: 512 * 1024 * 1024,
            zstd_level: 1,
            max_row_group_rows: 1024 * 1024,
            dictionary_page_size: 256 * 1024,
            min_copied_row_group_bytes: crate::ingest::MIN_COPIED_ROW_GROUP_BYTES,
            run_id: None,
            nanos: NanosToMicros::default(),
            max_open_writers: 64,
            memory_budget: 256 * 1024 * 1024,
        }
    }
}

/// Why sluice cannot write data files or snapshots to `table`, or `None` when it can.
pub fn unsupported_table_reason(table: &LoadedTable) -> Option<String> {
    let metadata = table.metadata();
    if metadata.format_version() == FormatVersion::V3 {
        return Some(
            "format version 3 tables are not supported yet; sluice writes format versions 1 and 2"
                .to_string(),
        );
    }
    let spec = metadata.default_partition_spec();
    if let Some(field) = spec
        .fields()
        .iter()
        .find(|f| !crate::partition::known_transform(&f.transform))
    {
        return Some(format!(
            "partition field `{}` uses a transform sluice does not know",
            field.name
        ));
    }
    None
}

pub(crate) fn ensure_writable(table: &LoadedTable) -> Result<()> {
    match unsupported_table_reason(table) {
        Some(reason) => Err(Error::UnsupportedTable {
            table: table.name().to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A new snapshot id: random, positive, unused in the table.
pub(crate) fn new_snapshot_id(table: &LoadedTable) -> i64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u64_pair().0 & (i64::MAX as u64)) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// The manifests of a snapshot's manifest list.
pub(crate) async fn manifests_of(
    table: &LoadedTable,
    snapshot_id: i64,
) -> Result<Vec<ManifestFile>> {
    let metadata = table.metadata();
    let snapshot = metadata
        .snapshot_by_id(snapshot_id)
        .ok_or_else(|| Error::RefNotFound {
            table: table.name().to_string(),
            reference: snapshot_id.to_string(),
            reason: "no snapshot with that id".to_string(),
        })?;
    let bytes = table
        .file_io()
        .new_input(snapshot.manifest_list())?
        .read()
        .await?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
    Ok(list.entries().to_vec())
}

/// The data files a snapshot added (entries with status `Added` written by that snapshot).
pub(crate) async fn files_added_by(table: &LoadedTable, snapshot_id: i64) -> Result<Vec<DataFile>> {
    let mut files = Vec::new();
    for manifest in manifests_of(table, snapshot_id).await? {
        if manifest.added_snapshot_id != snapshot_id {
            continue;
        }
        let loaded = manifest.load_manifest(table.file_io()).await?;
        for entry in loaded.entries() {
            if entry.status() == ManifestStatus::Added {
                files.push(entry.data_file().clone());
            }
        }
    }
    Ok(files)
}

/// Everything needed to build one snapshot on top of `parent`.
pub(crate) struct SnapshotSpec<'a> {
    pub parent: Option<i64>,
    pub snapshot_id: i64,
    pub sequence_number: i64,
    pub files: &'a [DataFile],
    pub properties: &'a HashMap<String, String>,
    /// The parent's manifests (carried over unchanged).
    pub base_manifests: Vec<ManifestFile>,
    /// The parent's summary (for the running totals).
    pub parent_summary: HashMap<String, String>,
    /// Write the manifests under this run's directory even though the snapshot does not carry
    /// the run's id (the empty base snapshot a run's first commit gives a new table: it stays
    /// `main`'s, but a crash before the commit must leave nothing outside the run's directory).
    pub metadata_run: Option<&'a str>,
}

impl SnapshotSpec<'_> {
    /// Parent manifests and summary read from the table (the parent must be committed).
    pub(crate) async fn base_of(
        table: &LoadedTable,
        parent: Option<i64>,
    ) -> Result<(Vec<ManifestFile>, HashMap<String, String>)> {
        match parent {
            Some(p) => {
                let summary = table
                    .metadata()
                    .snapshot_by_id(p)
                    .map(|s| s.summary().additional_properties.clone())
                    .unwrap_or_default();
                Ok((manifests_of(table, p).await?, summary))
            }
            None => Ok((Vec::new(), HashMap::new())),
        }
    }
}

/// Writes the manifest for `files` and the manifest list (parent's manifests + the new one),
/// and returns the snapshot to add. Nothing is committed.
pub(crate) async fn write_append_snapshot(
    table: &LoadedTable,
    spec: SnapshotSpec<'_>,
) -> Result<Snapshot> {
    let metadata = table.metadata();
    let format_version = metadata.format_version();
    ensure_writable(table)?;
    let commit_uuid = uuid::Uuid::now_v7();
    let dir = metadata_dir(
        metadata,
        spec.metadata_run
            .or_else(|| spec.properties.get(RUN_ID_PROPERTY).map(String::as_str)),
    );
    // New files are written under the table's default partition spec (the one sluice
    // splits rows and proves file partitions by); the parent's manifests of that spec are
    // merged with them as the table's merge policy says.
    let partition_spec = metadata.default_partition_spec();
    let plan = crate::manifest_merge::plan(table, spec.base_manifests, spec.files);
    let mut manifests = Vec::with_capacity(plan.kept.len() + 1 + plan.merged_apart.len());
    if !spec.files.is_empty() {
        let path = format!("{dir}/{commit_uuid}-m0.avro");
        let manifest = match format_version {
            FormatVersion::V1 => {
                let builder = ManifestWriterBuilder::new(
                    table.file_io().new_output(&path)?,
                    Some(spec.snapshot_id),
                    metadata.current_schema().clone(),
                    partition_spec.as_ref().clone(),
                );
                let mut writer = builder.build_v1();
                for file in spec.files.iter().cloned() {
                    // A negative sequence number means "inherit the snapshot's at commit".
                    writer.add_file(file, -1)?;
                }
                writer.write_manifest_file().await?
            }
            _ => {
                crate::manifest_merge::write_merged(
                    table,
                    partition_spec,
                    &path,
                    spec.snapshot_id,
                    spec.files,
                    &plan.merged_with_new,
                )
                .await?
            }
        };
        manifests.push(manifest);
    }
    for (i, bin) in plan.merged_apart.iter().enumerate() {
        let path = format!("{dir}/{commit_uuid}-m{}.avro", i + 1);
        manifests.push(
            crate::manifest_merge::write_merged(
                table,
                partition_spec,
                &path,
                spec.snapshot_id,
                &[],
                bin,
            )
            .await?,
        );
    }
    manifests.extend(plan.kept);
    let list_path = format!("{dir}/snap-{}-1-{commit_uuid}.avro", spec.snapshot_id);
    match format_version {
        FormatVersion::V1 => {
            let out = table.file_io().new_output(&list_path)?.writer().await?;
            let mut list = ManifestListWriter::v1(out, spec.snapshot_id, spec.parent);
            list.add_manifests(manifests.into_iter())?;
            list.close().await?;
        }
        _ => {
            let header = ManifestListHeader {
                snapshot_id: spec.snapshot_id,
                parent_snapshot_id: spec.parent,
                sequence_number: spec.sequence_number,
            };
            write_manifest_list_v2(table.file_io(), &list_path, &header, &manifests).await?;
        }
    }

    let summary = Summary {
        operation: Operation::Append,
        additional_properties: append_summary(&spec.parent_summary, spec.files, spec.properties),
    };
    Ok(Snapshot::builder()
        .with_snapshot_id(spec.snapshot_id)
        .with_parent_snapshot_id(spec.parent)
        .with_sequence_number(spec.sequence_number)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_summary(summary)
        .with_schema_id(metadata.current_schema_id())
        .build())
}

/// Caller properties plus the standard Iceberg totals (computed values win over caller ones).
fn append_summary(
    parent: &HashMap<String, String>,
    files: &[DataFile],
    properties: &HashMap<String, String>,
) -> HashMap<String, String> {
    let added_files = files.len() as u64;
    let added_records: u64 = files.iter().map(DataFile::record_count).sum();
    let added_size: u64 = files.iter().map(DataFile::file_size_in_bytes).sum();
    let total = |key: &str, added: u64| -> String {
        let previous = parent
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        (previous + added).to_string()
    };
    let mut summary = properties.clone();
    if added_files > 0 {
        summary.insert("added-data-files".into(), added_files.to_string());
        summary.insert("added-records".into(), added_records.to_string());
        summary.insert("added-files-size".into(), added_size.to_string());
    }
    summary.insert(
        "total-data-files".into(),
        total("total-data-files", added_files),
    );
    summary.insert(
        "total-records".into(),
        total("total-records", added_records),
    );
    summary.insert(
        "total-files-size".into(),
        total("total-files-size", added_size),
    );
    for key in [
        "total-delete-files",
        "total-position-deletes",
        "total-equality-deletes",
    ] {
        summary.insert(key.into(), total(key, 0));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_accumulate_over_the_parent() {
        let parent = HashMap::from([
            ("total-records".to_string(), "10".to_string()),
            ("total-data-files".to_string(), "2".to_string()),
        ]);
        let props = HashMap::from([
            ("sluice.message".to_string(), "hi".to_string()),
            ("total-records".to_string(), "bogus".to_string()),
        ]);
        let summary = append_summary(&parent, &[], &props);
        assert_eq!(summary["total-records"], "10");
        assert_eq!(summary["total-data-files"], "2");
        assert_eq!(summary["sluice.message"], "hi");
        assert!(!summary.contains_key("added-records"));
    }
}

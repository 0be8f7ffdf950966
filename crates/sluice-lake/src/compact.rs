//! Compacting data files: the small files of `main` are rewritten into files of the table's
//! target size, per partition, as a `replace` commit that is written on a branch, checked and
//! only then published.
//!
//! ```text
//!  plan:     live files of main below min-file-size, grouped by (spec, partition);
//!            a group needs at least 2 files
//!  write:    read them (current schema) ──► TableWriter (run directory) ──► new files
//!  branch:   base ── R   (R: replace — new files added, old ones marked deleted)
//!  check:    rows and a checksum of every column, read back from the new files, equal
//!            those of the files they replace
//!  publish:  main still at base → fast-forward; main moved → R re-made on main's head
//!            (appends meanwhile are kept), unless a rewritten file left main: refused
//! ```
//!
//! The replaced files stay referenced by the older snapshots until those expire. Tables with
//! delete files, and format version 1 tables, are refused.

use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use futures::{StreamExt, TryStreamExt};
use iceberg::scan::FileScanTask;
use iceberg::spec::{
    DataFile, FormatVersion, ManifestContentType, ManifestFile, ManifestStatus, Operation,
    Snapshot, Struct, Summary,
};
use iceberg::{TableRequirement, TableUpdate};
use serde::Serialize;

use crate::catalog::LoadedTable;
use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::ledger::LedgerEntry;
use crate::manifests::{
    EntryOrigin, ManifestEntryOut, ManifestListHeader, write_manifest_entries_v2,
    write_manifest_list_v2,
};
use crate::publish::{PublishOutcome, RefMove};
use crate::ref_ops::set_branch;
use crate::refs::{MAIN, RefName};
use crate::snapshot_producer::{
    COMMIT_ID_PROPERTY, RUN_ID_PROPERTY, WriteOptions, ensure_writable, manifests_of, metadata_dir,
    new_snapshot_id,
};
use crate::summary::MESSAGE_PROPERTY;
use crate::table_name::TableName;
use crate::writer::target_file_size;

/// Rows per batch read from the files being rewritten.
const READ_BATCH_ROWS: usize = 64 * 1024;
/// How many times a publish re-makes the replace on a `main` that keeps moving.
const PUBLISH_ATTEMPTS: u32 = 5;

/// Options of a compaction.
#[derive(Clone, Debug, Default)]
pub struct CompactOptions {
    /// Files below this size are rewritten (default: 3/4 of the target file size).
    pub min_file_size: Option<u64>,
    /// How the new files are written (its `run_id` places them in the run's directory; the
    /// table's `write.target-file-size-bytes` wins over its target size).
    pub write: WriteOptions,
}

/// Which files of `main` a compaction rewrites.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompactionPlan {
    /// The snapshot of `main` planned on (`None`: the table is empty).
    pub base: Option<i64>,
    /// Partitions (per spec) with files to rewrite.
    pub groups: usize,
    /// Files to rewrite.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Their rows.
    pub rows: u64,
    /// Files below this size were candidates.
    pub min_file_size: u64,
    /// The size new files roll over at.
    pub target_file_size: u64,
    #[serde(skip)]
    paths: Vec<String>,
}

impl CompactionPlan {
    /// Whether there is nothing to rewrite.
    pub fn is_empty(&self) -> bool {
        self.files == 0
    }
}

/// What a compaction wrote on its branch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Compacted {
    /// The `replace` snapshot on the branch.
    pub snapshot_id: i64,
    /// Files replaced.
    pub files_rewritten: usize,
    /// Their bytes.
    pub bytes_rewritten: u64,
    /// Files written.
    pub files_written: usize,
    /// Their bytes.
    pub bytes_written: u64,
    /// Rows, the same before and after.
    pub rows: u64,
    /// Columns whose checksums were compared.
    pub columns_checked: usize,
}

/// Rows and an order-independent checksum of every column's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Checksums {
    rows: u64,
    columns: Vec<(String, u64)>,
}

/// Mixes a 64-bit value (splitmix64's finaliser), so that sums of hashes spread.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of a byte string.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(bytes);
    mix(h.finish())
}

/// The sum of the hashes of every value of `array` (nulls included, by their encoding).
fn column_sum(array: &ArrayRef) -> Result<u64> {
    let mut sum = 0u64;
    match RowConverter::new(vec![SortField::new(array.data_type().clone())]) {
        Ok(converter) => {
            let rows = converter.convert_columns(std::slice::from_ref(array))?;
            for row in rows.iter() {
                sum = sum.wrapping_add(hash_bytes(row.as_ref()));
            }
        }
        // Types the row format does not encode are hashed by their text.
        Err(_) => {
            let options = arrow_cast::display::FormatOptions::default().with_null("\u{0}null");
            let formatter = arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &options)?;
            for i in 0..array.len() {
                sum = sum.wrapping_add(hash_bytes(formatter.value(i).to_string().as_bytes()));
            }
        }
    }
    Ok(sum)
}

impl Checksums {
    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.columns.is_empty() {
            self.columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), 0))
                .collect();
        }
        self.rows += batch.num_rows() as u64;
        for (i, column) in batch.columns().iter().enumerate() {
            if let Some(slot) = self.columns.get_mut(i) {
                slot.1 = slot.1.wrapping_add(column_sum(column)?);
            }
        }
        Ok(())
    }

    /// What differs between `self` (before) and `after`, or `None`.
    fn difference(&self, after: &Checksums) -> Option<String> {
        if self.rows != after.rows {
            return Some(format!(
                "the new files hold {} rows, the files they replace {}",
                after.rows, self.rows
            ));
        }
        let differ: Vec<&str> = self
            .columns
            .iter()
            .zip(&after.columns)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.as_str())
            .collect();
        (!differ.is_empty() || self.columns.len() != after.columns.len()).then(|| {
            format!(
                "the values of column(s) {} differ between the new files and the files they replace",
                differ.join(", ")
            )
        })
    }
}

/// A live data file of `main` and where its entry is.
struct Live {
    file: DataFile,
    spec_id: i32,
}

/// The live data files of a snapshot, refusing what compaction cannot rewrite.
async fn live_files(table: &LoadedTable, snapshot_id: i64) -> Result<Vec<Live>> {
    let mut out = Vec::new();
    for manifest in manifests_of(table, snapshot_id).await? {
        if manifest.content != ManifestContentType::Data {
            if manifest.added_files_count.unwrap_or(1) + manifest.existing_files_count.unwrap_or(1)
                > 0
            {
                return Err(Error::Compaction {
                    table: table.name().to_string(),
                    reason: "main has delete files (rows deleted by another engine); compact it \
                             with the engine that wrote them"
                        .to_string(),
                });
            }
            continue;
        }
        let loaded = manifest.load_manifest(table.file_io()).await?;
        for entry in loaded.entries() {
            if entry.status() != ManifestStatus::Deleted {
                out.push(Live {
                    file: entry.data_file().clone(),
                    spec_id: manifest.partition_spec_id,
                });
            }
        }
    }
    Ok(out)
}

/// The files `plan` picks from `live`: per (spec, partition), the files below `min_size`,
/// when there are at least two of them.
fn pick(live: Vec<Live>, min_size: u64) -> Vec<Vec<DataFile>> {
    let mut groups: HashMap<(i32, Struct), Vec<DataFile>> = HashMap::new();
    for l in live {
        if l.file.file_size_in_bytes() < min_size {
            groups
                .entry((l.spec_id, l.file.partition().clone()))
                .or_default()
                .push(l.file);
        }
    }
    let mut picked: Vec<Vec<DataFile>> = groups.into_values().filter(|g| g.len() >= 2).collect();
    for g in &mut picked {
        g.sort_by(|a, b| a.file_path().cmp(b.file_path()));
    }
    picked.sort_by(|a, b| a[0].file_path().cmp(b[0].file_path()));
    picked
}

fn refuse_v1(table: &LoadedTable) -> Result<()> {
    if table.metadata().format_version() == FormatVersion::V1 {
        return Err(Error::Compaction {
            table: table.name().to_string(),
            reason: "format version 1 tables are not compacted; upgrade the table to format \
                     version 2 (table property format-version=2)"
                .to_string(),
        });
    }
    Ok(())
}

impl Lake {
    /// Which files of `main` a compaction would rewrite (see the module docs).
    pub async fn plan_compaction(
        &self,
        name: &TableName,
        options: &CompactOptions,
    ) -> Result<CompactionPlan> {
        let table = self.load_table(name).await?;
        let target = target_file_size(&table, &options.write) as u64;
        let min_size = options.min_file_size.unwrap_or(target / 4 * 3);
        let mut plan = CompactionPlan {
            min_file_size: min_size,
            target_file_size: target,
            ..CompactionPlan::default()
        };
        let Some(head) = table.metadata().snapshot_for_ref(MAIN) else {
            return Ok(plan);
        };
        refuse_v1(&table)?;
        plan.base = Some(head.snapshot_id());
        let groups = pick(live_files(&table, head.snapshot_id()).await?, min_size);
        plan.groups = groups.len();
        for file in groups.iter().flatten() {
            plan.files += 1;
            plan.bytes += file.file_size_in_bytes();
            plan.rows += file.record_count();
            plan.paths.push(file.file_path().to_string());
        }
        Ok(plan)
    }

    /// Rewrites the files of `plan` into new ones, commits them as a `replace` snapshot on a
    /// new branch `branch` forked at the plan's base, and checks that the new files hold the
    /// same rows (count and a checksum of every column, read back) as the files they replace.
    /// Nothing is published; on a failed check the caller discards the run.
    pub async fn compact_to_branch(
        &self,
        name: &TableName,
        branch: &RefName,
        plan: &CompactionPlan,
        options: &CompactOptions,
    ) -> Result<Compacted> {
        let Some(base) = plan.base else {
            return Err(Error::Compaction {
                table: name.to_string(),
                reason: "main has no snapshot".to_string(),
            });
        };
        let table = self.load_table(name).await?;
        ensure_writable(&table)?;
        refuse_v1(&table)?;
        let wanted: HashSet<&str> = plan.paths.iter().map(String::as_str).collect();
        let tasks = file_tasks(&table, base, &wanted).await?;
        let mut before = Checksums::default();
        let mut writer = self.table_writer(&table, &options.write).await?;
        let mut batches = read_tasks(&table, tasks)?;
        while let Some(batch) = batches.try_next().await? {
            before.update(&batch)?;
            writer.write(&batch, "the files being compacted").await?;
        }
        let added = writer.finish().await?;
        let removed: HashSet<String> = plan.paths.iter().cloned().collect();
        let run_id = options.write.run_id.clone();
        let mut properties = HashMap::from([(
            MESSAGE_PROPERTY.to_string(),
            format!("compact {} file(s) into {}", removed.len(), added.len()),
        )]);
        if let Some(run) = &run_id {
            properties.insert(RUN_ID_PROPERTY.to_string(), run.clone());
        }
        let (_, snapshot_id) = {
            let (added, removed, properties) = (&added, &removed, &properties);
            self.commit_loop(name, |table| async move {
                if table.refs().contains_key(branch.as_str()) {
                    return Err(Error::RefAlreadyExists {
                        table: table.name().to_string(),
                        name: branch.clone(),
                    });
                }
                let snapshot =
                    write_replace_snapshot(&table, base, removed, added, properties).await?;
                let id = snapshot.snapshot_id();
                Ok(Plan::Commit {
                    requirements: vec![
                        TableRequirement::UuidMatch {
                            uuid: table.metadata().uuid(),
                        },
                        TableRequirement::RefSnapshotIdMatch {
                            r#ref: branch.to_string(),
                            snapshot_id: None,
                        },
                    ],
                    updates: vec![
                        TableUpdate::AddSnapshot { snapshot },
                        set_branch(branch.as_str(), id),
                    ],
                    value: id,
                })
            })
            .await?
        };
        // The check: read the new files back as any reader of the branch would.
        let table = self.load_table(name).await?;
        let new_paths: HashSet<&str> = added.iter().map(DataFile::file_path).collect();
        let tasks = file_tasks(&table, snapshot_id, &new_paths).await?;
        let mut after = Checksums::default();
        let mut batches = read_tasks(&table, tasks)?;
        while let Some(batch) = batches.try_next().await? {
            after.update(&batch)?;
        }
        if let Some(reason) = before.difference(&after) {
            return Err(Error::Compaction {
                table: name.to_string(),
                reason: format!("{reason}; nothing was published"),
            });
        }
        Ok(Compacted {
            snapshot_id,
            files_rewritten: removed.len(),
            bytes_rewritten: plan.bytes,
            files_written: added.len(),
            bytes_written: added.iter().map(DataFile::file_size_in_bytes).sum(),
            rows: after.rows,
            columns_checked: after.columns.len(),
        })
    }

    /// Publishes a compaction's branch into `main`, deleting the branch and recording `entry`
    /// in the ingest ledger in the same commit: a fast-forward when `main` has not moved, else
    /// the replace is made again on `main`'s head (what was appended meanwhile stays), which
    /// is refused if one of the rewritten files is no longer in `main`.
    pub async fn publish_compaction(
        &self,
        name: &TableName,
        branch: &RefName,
        entry: &LedgerEntry,
    ) -> Result<PublishOutcome> {
        let into_main = RefMove::into_main(branch);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let table = self.load_table(name).await?;
            let branch_head = table
                .refs()
                .get(branch.as_str())
                .map(|r| r.snapshot_id)
                .ok_or_else(|| Error::BranchNotFound {
                    table: name.to_string(),
                    branch: branch.to_string(),
                })?;
            let md = table.metadata();
            let replace = md
                .snapshot_by_id(branch_head)
                .ok_or_else(|| Error::RefNotFound {
                    table: name.to_string(),
                    reference: branch.to_string(),
                    reason: "its snapshot is missing from the metadata".to_string(),
                })?;
            let main_head = md.snapshot_for_ref(MAIN).map(|s| s.snapshot_id());
            let result = if replace.parent_snapshot_id() == main_head {
                self.fast_forward_and_delete(name, into_main, Some(entry))
                    .await
            } else {
                let staged = self.restage_replace(name, branch_head).await?;
                self.publish_staged_and_delete(name, staged, into_main, Some(entry))
                    .await
            };
            match result {
                Err(Error::CannotPublish { .. } | Error::CommitConflict { .. })
                    if attempt < PUBLISH_ATTEMPTS =>
                {
                    tracing::info!(table = %name, "main moved while the compaction published; making the replace again on its head");
                }
                other => return other,
            }
        }
    }

    /// Stages (adds without a ref) the replace of snapshot `replace` made again on the head
    /// of `main`: the same files added, the same files marked deleted.
    async fn restage_replace(&self, name: &TableName, replace: i64) -> Result<i64> {
        let (_, staged) = self
            .commit_loop(name, |table| async move {
                let md = table.metadata();
                let source = md
                    .snapshot_by_id(replace)
                    .ok_or_else(|| Error::RefNotFound {
                        table: table.name().to_string(),
                        reference: replace.to_string(),
                        reason: "the compaction's snapshot is missing from the metadata"
                            .to_string(),
                    })?;
                let head = md
                    .snapshot_for_ref(MAIN)
                    .map(|s| s.snapshot_id())
                    .ok_or_else(|| Error::Compaction {
                        table: table.name().to_string(),
                        reason: "main has no snapshot any more".to_string(),
                    })?;
                let (added, removed) = replace_delta(&table, replace).await?;
                let mut properties: HashMap<String, String> = source
                    .summary()
                    .additional_properties
                    .iter()
                    .filter(|(k, _)| [MESSAGE_PROPERTY, RUN_ID_PROPERTY].contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                properties.insert(
                    crate::summary::SOURCE_SNAPSHOT_PROPERTY.to_string(),
                    replace.to_string(),
                );
                let snapshot =
                    write_replace_snapshot(&table, head, &removed, &added, &properties).await?;
                let id = snapshot.snapshot_id();
                Ok(Plan::Commit {
                    requirements: vec![
                        TableRequirement::UuidMatch { uuid: md.uuid() },
                        TableRequirement::RefSnapshotIdMatch {
                            r#ref: MAIN.to_string(),
                            snapshot_id: Some(head),
                        },
                    ],
                    updates: vec![TableUpdate::AddSnapshot { snapshot }],
                    value: id,
                })
            })
            .await?;
        Ok(staged)
    }
}

/// What a replace snapshot did: the files it added and the paths it marked deleted.
async fn replace_delta(
    table: &LoadedTable,
    snapshot_id: i64,
) -> Result<(Vec<DataFile>, HashSet<String>)> {
    let mut added = Vec::new();
    let mut removed = HashSet::new();
    for manifest in manifests_of(table, snapshot_id).await? {
        if manifest.added_snapshot_id != snapshot_id {
            continue;
        }
        let loaded = manifest.load_manifest(table.file_io()).await?;
        for entry in loaded.entries() {
            match entry.status() {
                ManifestStatus::Added => added.push(entry.data_file().clone()),
                ManifestStatus::Deleted => {
                    removed.insert(entry.data_file().file_path().to_string());
                }
                ManifestStatus::Existing => {}
            }
        }
    }
    Ok((added, removed))
}

/// The scan tasks of `snapshot_id` that read the files in `paths`, whole.
async fn file_tasks(
    table: &LoadedTable,
    snapshot_id: i64,
    paths: &HashSet<&str>,
) -> Result<Vec<FileScanTask>> {
    let scan = table
        .iceberg_table()
        .scan()
        .snapshot_id(snapshot_id)
        .select_all()
        .build()?;
    let tasks: Vec<FileScanTask> = scan.plan_files().await?.try_collect().await?;
    let tasks: Vec<FileScanTask> = tasks
        .into_iter()
        .filter(|t| paths.contains(t.data_file_path.as_str()))
        .collect();
    let found: HashSet<&str> = tasks.iter().map(|t| t.data_file_path.as_str()).collect();
    if found.len() != paths.len() {
        return Err(Error::Compaction {
            table: table.name().to_string(),
            reason: format!(
                "{} of the files to rewrite are not in snapshot {snapshot_id}; run it again",
                paths.len() - found.len()
            ),
        });
    }
    Ok(tasks)
}

fn read_tasks(
    table: &LoadedTable,
    tasks: Vec<FileScanTask>,
) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch>>> {
    let reader = table
        .iceberg_table()
        .reader_builder()
        .with_batch_size(READ_BATCH_ROWS)
        .with_data_file_concurrency_limit(2)
        .build();
    Ok(reader
        .read(futures::stream::iter(tasks.into_iter().map(Ok)).boxed())?
        .stream()
        .map_err(Error::from)
        .boxed())
}

/// Writes the manifests and manifest list of a `replace` snapshot on top of `parent`: the
/// parent's manifests that list a file of `removed` are written again with it marked deleted,
/// the others kept; `added` go into a new manifest. Fails, naming how many, when a file of
/// `removed` is not live in `parent`.
async fn write_replace_snapshot(
    table: &LoadedTable,
    parent: i64,
    removed: &HashSet<String>,
    added: &[DataFile],
    properties: &HashMap<String, String>,
) -> Result<Snapshot> {
    let md = table.metadata();
    let snapshot_id = new_snapshot_id(table);
    let commit_uuid = uuid::Uuid::now_v7();
    let dir = metadata_dir(md, properties.get(RUN_ID_PROPERTY).map(String::as_str));
    let mut list: Vec<ManifestFile> = Vec::new();
    let mut kept: Vec<ManifestFile> = Vec::new();
    let mut found = 0usize;
    let (mut removed_rows, mut removed_bytes) = (0u64, 0u64);
    for (i, manifest) in manifests_of(table, parent).await?.into_iter().enumerate() {
        if manifest.content != ManifestContentType::Data {
            kept.push(manifest);
            continue;
        }
        let loaded = manifest.load_manifest(table.file_io()).await?;
        let hits = loaded.entries().iter().any(|e| {
            e.status() != ManifestStatus::Deleted && removed.contains(e.data_file().file_path())
        });
        if !hits {
            kept.push(manifest);
            continue;
        }
        let mut carried: Vec<(DataFile, EntryOrigin)> = Vec::new();
        for entry in loaded.entries() {
            if entry.status() == ManifestStatus::Deleted {
                continue;
            }
            let data_sequence_number = entry.sequence_number().unwrap_or(manifest.sequence_number);
            let origin = if removed.contains(entry.data_file().file_path()) {
                found += 1;
                removed_rows += entry.data_file().record_count();
                removed_bytes += entry.data_file().file_size_in_bytes();
                EntryOrigin::Deleted {
                    data_sequence_number,
                    file_sequence_number: entry.file_sequence_number,
                }
            } else {
                EntryOrigin::Existing {
                    snapshot_id: entry.snapshot_id().unwrap_or(manifest.added_snapshot_id),
                    data_sequence_number,
                    file_sequence_number: entry.file_sequence_number,
                }
            };
            carried.push((entry.data_file().clone(), origin));
        }
        let spec = md
            .partition_spec_by_id(manifest.partition_spec_id)
            .ok_or_else(|| Error::CorruptFile {
                path: manifest.manifest_path.clone(),
                reason: format!(
                    "partition spec {} is not in the table's metadata",
                    manifest.partition_spec_id
                ),
            })?;
        let entries: Vec<ManifestEntryOut<'_>> = carried
            .iter()
            .map(|(file, origin)| ManifestEntryOut {
                file,
                origin: *origin,
            })
            .collect();
        let path = format!("{dir}/{commit_uuid}-d{i}.avro");
        list.push(
            write_manifest_entries_v2(table.file_io(), md, spec, &path, snapshot_id, &entries)
                .await?,
        );
    }
    if found != removed.len() {
        return Err(Error::Compaction {
            table: table.name().to_string(),
            reason: format!(
                "{} of the {} files it rewrote are no longer in main (a concurrent delete or \
                 rewrite removed them); nothing was published, run the compaction again",
                removed.len() - found,
                removed.len()
            ),
        });
    }
    if !added.is_empty() {
        let entries: Vec<ManifestEntryOut<'_>> = added
            .iter()
            .map(|file| ManifestEntryOut {
                file,
                origin: EntryOrigin::Added,
            })
            .collect();
        let path = format!("{dir}/{commit_uuid}-a.avro");
        list.insert(
            0,
            write_manifest_entries_v2(
                table.file_io(),
                md,
                md.default_partition_spec(),
                &path,
                snapshot_id,
                &entries,
            )
            .await?,
        );
    }
    list.extend(kept);
    let sequence_number = md.next_sequence_number();
    let list_path = format!("{dir}/snap-{snapshot_id}-1-{commit_uuid}.avro");
    write_manifest_list_v2(
        table.file_io(),
        &list_path,
        &ManifestListHeader {
            snapshot_id,
            parent_snapshot_id: Some(parent),
            sequence_number,
        },
        &list,
    )
    .await?;
    let parent_summary = md
        .snapshot_by_id(parent)
        .map(|s| s.summary().additional_properties.clone())
        .unwrap_or_default();
    let (added_rows, added_bytes): (u64, u64) = added.iter().fold((0, 0), |(r, b), f| {
        (r + f.record_count(), b + f.file_size_in_bytes())
    });
    let total = |key: &str, plus: u64, minus: u64| {
        let before = parent_summary
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        (before + plus).saturating_sub(minus).to_string()
    };
    let mut summary = properties.clone();
    summary.remove(COMMIT_ID_PROPERTY);
    for (key, value) in [
        ("added-data-files", added.len().to_string()),
        ("deleted-data-files", removed.len().to_string()),
        ("added-records", added_rows.to_string()),
        ("deleted-records", removed_rows.to_string()),
        ("added-files-size", added_bytes.to_string()),
        ("removed-files-size", removed_bytes.to_string()),
        (
            "total-data-files",
            total("total-data-files", added.len() as u64, removed.len() as u64),
        ),
        (
            "total-records",
            total("total-records", added_rows, removed_rows),
        ),
        (
            "total-files-size",
            total("total-files-size", added_bytes, removed_bytes),
        ),
    ] {
        summary.insert(key.to_string(), value);
    }
    for key in [
        "total-delete-files",
        "total-position-deletes",
        "total-equality-deletes",
    ] {
        summary.insert(key.to_string(), total(key, 0, 0));
    }
    Ok(Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(parent))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation: Operation::Replace,
            additional_properties: summary,
        })
        .with_schema_id(md.current_schema_id())
        .build())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn checksums_ignore_order_and_batching_but_see_every_value() {
        let mut one = Checksums::default();
        one.update(&batch(&[1, 2, 3], &[Some("a"), None, Some("c")]))
            .unwrap();
        let mut two = Checksums::default();
        two.update(&batch(&[3], &[Some("c")])).unwrap();
        two.update(&batch(&[2, 1], &[None, Some("a")])).unwrap();
        assert_eq!(one.difference(&two), None);

        let mut changed = Checksums::default();
        changed
            .update(&batch(&[1, 2, 3], &[Some("a"), Some(""), Some("c")]))
            .unwrap();
        let reason = one.difference(&changed).unwrap();
        assert!(reason.contains("column(s) name"), "{reason}");
        assert!(!reason.contains("id"), "{reason}");

        let mut fewer = Checksums::default();
        fewer.update(&batch(&[1, 2], &[Some("a"), None])).unwrap();
        assert!(one.difference(&fewer).unwrap().contains("2 rows"));
    }
}

//! Rewriting the manifests of `main`: every data manifest of a partition spec is read, its
//! live entries are sorted by partition and written again into manifests of about
//! `commit.manifest.target-size-bytes`, so that planning a scan of `main` opens a few files
//! instead of one per commit. The data files and what every snapshot reads are unchanged:
//! entries keep the snapshot and the sequence numbers they were added with.
//!
//! ```text
//!  main: [m300 … m2 m1] (one small manifest per run)
//!        ──► live entries of spec 0, sorted by partition ──► [M1 M2] (≤ target size each)
//!  commit: a `replace` snapshot on main (same files, same totals), main asserted unmoved
//! ```
//!
//! Manifests of delete files are kept as they are. Format version 1 tables are left alone.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{
    DataFile, FormatVersion, Literal, ManifestContentType, ManifestFile, ManifestStatus, Operation,
    Snapshot, Summary,
};
use iceberg::{TableRequirement, TableUpdate};
use serde::Serialize;

use crate::catalog::LoadedTable;
use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::manifest_merge::MergePolicy;
use crate::manifests::{
    EntryOrigin, ManifestEntryOut, ManifestListHeader, write_manifest_entries_v2,
    write_manifest_list_v2,
};
use crate::ref_ops::set_branch;
use crate::refs::MAIN;
use crate::snapshot_producer::{
    COMMIT_ID_PROPERTY, RUN_ID_PROPERTY, manifests_of, metadata_dir, new_snapshot_id,
};
use crate::summary::MESSAGE_PROPERTY;
use crate::table_name::TableName;

/// What [`Lake::rewrite_manifests`] did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ManifestsRewritten {
    /// Manifests `main` listed before.
    pub manifests_before: usize,
    /// Manifests it lists after.
    pub manifests_after: usize,
    /// Manifests read and replaced.
    pub manifests_replaced: usize,
    /// Manifests written.
    pub manifests_written: usize,
    /// The `replace` snapshot committed to `main`, if one was.
    pub snapshot_id: Option<i64>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// One live entry carried into a rewritten manifest.
struct Carried {
    file: DataFile,
    origin: EntryOrigin,
}

/// Which manifests of `main` are rewritten: the data manifests of each spec that has more
/// than one, grouped by spec id. Every other manifest is kept.
fn plan_groups(
    manifests: Vec<ManifestFile>,
) -> (BTreeMap<i32, Vec<ManifestFile>>, Vec<ManifestFile>) {
    let mut by_spec: BTreeMap<i32, Vec<ManifestFile>> = BTreeMap::new();
    let mut kept = Vec::new();
    for m in manifests {
        if m.content == ManifestContentType::Data {
            by_spec.entry(m.partition_spec_id).or_default().push(m);
        } else {
            kept.push(m);
        }
    }
    let mut groups = BTreeMap::new();
    for (spec, group) in by_spec {
        if group.len() > 1 {
            groups.insert(spec, group);
        } else {
            kept.extend(group);
        }
    }
    (groups, kept)
}

/// Orders partition tuples field by field, nulls first.
fn partition_order(a: &DataFile, b: &DataFile) -> Ordering {
    let primitive = |l: Option<&Literal>| match l {
        Some(Literal::Primitive(p)) => Some(p.clone()),
        _ => None,
    };
    for (x, y) in a.partition().iter().zip(b.partition().iter()) {
        let order = match (primitive(x), primitive(y)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.file_path().cmp(b.file_path())
}

/// Splits `count` entries of about `per_entry` bytes each into runs of at most `target` bytes.
fn chunk_sizes(count: usize, per_entry: u64, target: u64) -> usize {
    let per_manifest = (target / per_entry.max(1)).max(1);
    usize::try_from(per_manifest)
        .unwrap_or(usize::MAX)
        .min(count.max(1))
}

impl Lake {
    /// Rewrites the data manifests of `main` of a table into few manifests of the table's
    /// target size, sorted by partition, in one `replace` commit that asserts `main` did not
    /// move (re-planned when it did). `run_id` puts the new manifests under the run's own
    /// directory (so that a rollback of an unfinished run finds them) and is recorded in the
    /// snapshot's summary. Idempotent: a `main` with at most one data manifest per partition
    /// spec is left as it is.
    pub async fn rewrite_manifests(
        &self,
        name: &TableName,
        dry_run: bool,
        run_id: Option<&str>,
    ) -> Result<ManifestsRewritten> {
        let commit_id = uuid::Uuid::now_v7().to_string();
        let commit_id = &commit_id;
        let (_, out) = self
            .commit_loop(name, |table| async move {
                plan_rewrite(&table, dry_run, run_id, commit_id).await
            })
            .await?;
        Ok(out)
    }
}

async fn plan_rewrite(
    table: &LoadedTable,
    dry_run: bool,
    run_id: Option<&str>,
    commit_id: &str,
) -> Result<Plan<ManifestsRewritten>> {
    let md = table.metadata();
    let Some(head) = md.snapshot_for_ref(MAIN) else {
        return Ok(Plan::Done(ManifestsRewritten {
            dry_run,
            ..Default::default()
        }));
    };
    let head_id = head.snapshot_id();
    // An earlier attempt whose answer was lost already landed.
    if head
        .summary()
        .additional_properties
        .get(COMMIT_ID_PROPERTY)
        .is_some_and(|c| c == commit_id)
    {
        let count = manifests_of(table, head_id).await?.len();
        return Ok(Plan::Done(ManifestsRewritten {
            manifests_after: count,
            snapshot_id: Some(head_id),
            ..Default::default()
        }));
    }
    let manifests = manifests_of(table, head_id).await?;
    let before = manifests.len();
    let unchanged = |dry_run| {
        Plan::Done(ManifestsRewritten {
            manifests_before: before,
            manifests_after: before,
            dry_run,
            ..Default::default()
        })
    };
    if md.format_version() == FormatVersion::V1 {
        tracing::info!(table = %table.name(), "format version 1 table: its manifests are left as they are");
        return Ok(unchanged(dry_run));
    }
    let (groups, kept) = plan_groups(manifests);
    if groups.is_empty() {
        return Ok(unchanged(dry_run));
    }
    let target = MergePolicy::of(md.properties()).target_bytes;
    let replaced: usize = groups.values().map(Vec::len).sum();
    let snapshot_id = new_snapshot_id(table);
    let commit_uuid = uuid::Uuid::now_v7();
    let dir = metadata_dir(md, run_id);
    let mut written: Vec<ManifestFile> = Vec::new();
    let mut planned = 0usize;
    for (spec_id, group) in &groups {
        let spec = md
            .partition_spec_by_id(*spec_id)
            .ok_or_else(|| Error::CorruptFile {
                path: group[0].manifest_path.clone(),
                reason: format!("partition spec {spec_id} is not in the table's metadata"),
            })?;
        let mut carried: Vec<Carried> = Vec::new();
        let mut bytes = 0u64;
        for manifest in group {
            bytes += manifest.manifest_length.max(0) as u64;
            let loaded = manifest.load_manifest(table.file_io()).await?;
            for entry in loaded.entries() {
                if entry.status() == ManifestStatus::Deleted {
                    continue;
                }
                carried.push(Carried {
                    file: entry.data_file().clone(),
                    origin: EntryOrigin::Existing {
                        snapshot_id: entry.snapshot_id().unwrap_or(manifest.added_snapshot_id),
                        data_sequence_number: entry
                            .sequence_number()
                            .unwrap_or(manifest.sequence_number),
                        file_sequence_number: entry.file_sequence_number,
                    },
                });
            }
        }
        if carried.is_empty() {
            continue;
        }
        carried.sort_by(|a, b| partition_order(&a.file, &b.file));
        let per_entry = bytes / carried.len() as u64;
        let chunk = chunk_sizes(carried.len(), per_entry, target);
        for part in carried.chunks(chunk) {
            planned += 1;
            if dry_run {
                continue;
            }
            let path = format!("{dir}/{commit_uuid}-r{planned}.avro");
            let entries: Vec<ManifestEntryOut<'_>> = part
                .iter()
                .map(|c| ManifestEntryOut {
                    file: &c.file,
                    origin: c.origin,
                })
                .collect();
            written.push(
                write_manifest_entries_v2(table.file_io(), md, spec, &path, snapshot_id, &entries)
                    .await?,
            );
        }
    }
    let after = kept.len() + planned;
    if dry_run {
        return Ok(Plan::Done(ManifestsRewritten {
            manifests_before: before,
            manifests_after: after,
            manifests_replaced: replaced,
            manifests_written: planned,
            snapshot_id: None,
            dry_run,
        }));
    }
    let mut list = written;
    list.extend(kept);
    let list_path = format!("{dir}/snap-{snapshot_id}-1-{commit_uuid}.avro");
    let sequence_number = md.next_sequence_number();
    write_manifest_list_v2(
        table.file_io(),
        &list_path,
        &ManifestListHeader {
            snapshot_id,
            parent_snapshot_id: Some(head_id),
            sequence_number,
        },
        &list,
    )
    .await?;
    let mut properties: HashMap<String, String> = head
        .summary()
        .additional_properties
        .iter()
        .filter(|(k, _)| k.starts_with("total-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.insert("manifests-created".into(), planned.to_string());
    properties.insert("manifests-replaced".into(), replaced.to_string());
    properties.insert("manifests-kept".into(), (after - planned).to_string());
    properties.insert(MESSAGE_PROPERTY.into(), "rewrite manifests".into());
    properties.insert(COMMIT_ID_PROPERTY.into(), commit_id.to_string());
    if let Some(run) = run_id {
        properties.insert(RUN_ID_PROPERTY.into(), run.to_string());
    }
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(head_id))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation: Operation::Replace,
            additional_properties: properties,
        })
        .with_schema_id(md.current_schema_id())
        .build();
    Ok(Plan::Commit {
        requirements: vec![
            TableRequirement::UuidMatch { uuid: md.uuid() },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN.to_string(),
                snapshot_id: Some(head_id),
            },
        ],
        updates: vec![
            TableUpdate::AddSnapshot { snapshot },
            set_branch(MAIN, snapshot_id),
        ],
        value: ManifestsRewritten {
            manifests_before: before,
            manifests_after: after,
            manifests_replaced: replaced,
            manifests_written: planned,
            snapshot_id: Some(snapshot_id),
            dry_run,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_cut_to_the_target_size() {
        assert_eq!(chunk_sizes(300, 1000, 8 * 1024 * 1024), 300);
        assert_eq!(chunk_sizes(300, 1000, 100_000), 100);
        // An entry larger than the target: one per manifest.
        assert_eq!(chunk_sizes(3, 1000, 10), 1);
        assert_eq!(chunk_sizes(0, 0, 10), 1);
    }
}

//! Merging manifests on append, as Iceberg's writers do, so that what a reader opens to plan a
//! scan stays bounded however many commits a table takes.
//!
//! Every append adds a manifest. Left alone, a table that takes a commit every few minutes
//! has thousands of one-entry manifests after a month, and every reader (sluice's table-scoped
//! checks, Spark, Trino, pyiceberg) opens and decodes each of them to plan a scan. On append,
//! the new files and those of the parent's manifests of the same partition spec that may
//! share a partition with them (partition summaries that meet) are packed, newest first,
//! into bins of about `commit.manifest.target-size-bytes` (the oldest manifests fill the
//! last bins); a bin of one manifest stays as it is, and so does the bin holding the new
//! files while it has fewer than `commit.manifest.min-count-to-merge` manifests; every other
//! bin becomes one manifest. Files carried over keep the snapshot and the sequence numbers
//! they were added with (status `existing`), so time travel, incremental reads and the
//! rebase of a branch's appends read the same files as before.
//!
//! ```text
//!  parent: [m3 m2 m1 M]   new files: n        min count 4, all within the target size
//!  bins (newest first):   [n m3 m2 m1 M]  →   one manifest: n (added) + m3..M (existing)
//!  next append:           [n' N]          →   2 < 4: kept as they are
//! ```

use std::collections::HashMap;

use iceberg::spec::{
    DataFile, Datum, FieldSummary, FormatVersion, ManifestContentType, ManifestFile,
    ManifestStatus, PartitionSpec, PrimitiveType,
};

use crate::catalog::LoadedTable;
use crate::error::Result;
use crate::manifests::{
    EntryOrigin, ManifestEntryOut, partition_summaries, write_manifest_entries_v2,
};

/// Whether appends merge manifests (`true` unless set otherwise).
pub const MERGE_ENABLED_PROPERTY: &str = "commit.manifest-merge.enabled";
/// How many manifests the bin of new files must hold before it is merged (Iceberg's default:
/// 100; tables sluice creates set [`CREATED_MIN_COUNT_TO_MERGE`]).
pub const MIN_COUNT_TO_MERGE_PROPERTY: &str = "commit.manifest.min-count-to-merge";
/// The size merged manifests are packed to (default 8 MiB).
pub const TARGET_SIZE_PROPERTY: &str = "commit.manifest.target-size-bytes";
/// The minimum count sluice gives the tables it creates: a WAP table takes a small commit
/// every few minutes, and each manifest it keeps costs every reader about a millisecond.
pub const CREATED_MIN_COUNT_TO_MERGE: usize = 16;

/// How appends to a table merge manifests, from its properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MergePolicy {
    pub(crate) enabled: bool,
    pub(crate) min_count: usize,
    pub(crate) target_bytes: u64,
}

impl MergePolicy {
    /// The table's properties, with Iceberg's defaults for those it does not set.
    pub(crate) fn of(properties: &HashMap<String, String>) -> Self {
        let number = |key: &str| {
            properties
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        MergePolicy {
            enabled: properties
                .get(MERGE_ENABLED_PROPERTY)
                .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false")),
            min_count: number(MIN_COUNT_TO_MERGE_PROPERTY)
                .map_or(100, |n| usize::try_from(n).unwrap_or(usize::MAX).max(2)),
            target_bytes: number(TARGET_SIZE_PROPERTY).map_or(8 * 1024 * 1024, |n| n.max(1)),
        }
    }
}

/// One manifest of a bin: the new files (not written yet), or one of the parent's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    New,
    Parent(usize),
}

/// Packs `sizes` (newest first) into bins of at most `target` bytes, filling from the oldest
/// end one bin at a time, so the newest items share the last, partly filled bin. Bins are
/// returned newest first; an item larger than `target` is a bin of its own.
fn pack_from_oldest(sizes: &[u64], target: u64) -> Vec<Vec<usize>> {
    let mut bins: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut weight = 0u64;
    for i in (0..sizes.len()).rev() {
        if !current.is_empty() && weight.saturating_add(sizes[i]) > target {
            bins.push(std::mem::take(&mut current));
            weight = 0;
        }
        current.push(i);
        weight = weight.saturating_add(sizes[i]);
    }
    if !current.is_empty() {
        bins.push(current);
    }
    bins.reverse();
    for bin in &mut bins {
        bin.reverse();
    }
    bins
}

/// What a new snapshot's manifest list holds: the manifests to keep from the parent, and the
/// manifests to write (the new files alone, or merged with some of the parent's).
pub(crate) struct ManifestPlan {
    /// Parent manifests carried over as they are.
    pub(crate) kept: Vec<ManifestFile>,
    /// Parent manifests whose live entries go into the manifest with the new files.
    pub(crate) merged_with_new: Vec<ManifestFile>,
    /// Other bins of parent manifests, each to be rewritten as one manifest.
    pub(crate) merged_apart: Vec<Vec<ManifestFile>>,
}

/// Decides which of the parent's manifests are merged, with the new files (when there are
/// any) under the table's default spec. Only data manifests of that spec take part; others
/// (older specs, delete manifests) are kept as they are.
pub(crate) fn plan(
    table: &LoadedTable,
    parent_manifests: Vec<ManifestFile>,
    new_files: &[DataFile],
) -> ManifestPlan {
    let metadata = table.metadata();
    let policy = MergePolicy::of(metadata.properties());
    let spec_id = metadata.default_partition_spec_id();
    if !policy.enabled || new_files.is_empty() || metadata.format_version() == FormatVersion::V1 {
        return ManifestPlan {
            kept: parent_manifests,
            merged_with_new: Vec::new(),
            merged_apart: Vec::new(),
        };
    }
    // Only manifests that may share a partition with the new files take part: in a table
    // partitioned by time, appends merge with the manifests of the same days and older ones
    // stay apart, so readers still skip them by their partition summaries.
    let new_summary = new_files_summary(table, new_files);
    let (mut group, mut kept): (Vec<ManifestFile>, Vec<ManifestFile>) =
        parent_manifests.into_iter().partition(|m| {
            m.partition_spec_id == spec_id
                && m.content == ManifestContentType::Data
                && new_summary
                    .as_ref()
                    .is_none_or(|(types, summary)| may_share_a_partition(types, summary, m))
        });
    // Newest first: by sequence number, then by their order in the parent's list (which
    // sluice writes oldest first).
    let order: HashMap<String, usize> = group
        .iter()
        .enumerate()
        .map(|(i, m)| (m.manifest_path.clone(), i))
        .collect();
    group.sort_by(|a, b| {
        b.sequence_number
            .cmp(&a.sequence_number)
            .then(order[&b.manifest_path].cmp(&order[&a.manifest_path]))
    });
    let mut items = vec![Item::New];
    items.extend((0..group.len()).map(Item::Parent));
    // The new manifest's size, guessed from the parent manifests' bytes per file.
    let (bytes, files) = group.iter().fold((0u64, 0u64), |(b, f), m| {
        let n = u64::from(m.added_files_count.unwrap_or(0))
            + u64::from(m.existing_files_count.unwrap_or(0));
        (b + m.manifest_length.max(0) as u64, f + n)
    });
    let per_file = bytes.checked_div(files).unwrap_or(1024);
    let sizes: Vec<u64> = items
        .iter()
        .map(|item| match item {
            Item::New => per_file.saturating_mul(new_files.len() as u64),
            Item::Parent(i) => group[*i].manifest_length.max(0) as u64,
        })
        .collect();
    let mut plan = ManifestPlan {
        kept: Vec::new(),
        merged_with_new: Vec::new(),
        merged_apart: Vec::new(),
    };
    for bin in pack_from_oldest(&sizes, policy.target_bytes) {
        let has_new = bin.iter().any(|&i| items[i] == Item::New);
        let parents = bin.iter().filter_map(|&i| match items[i] {
            Item::Parent(p) => Some(group[p].clone()),
            Item::New => None,
        });
        if bin.len() == 1 || (has_new && bin.len() < policy.min_count) {
            plan.kept.extend(parents);
        } else if has_new {
            plan.merged_with_new.extend(parents);
        } else {
            plan.merged_apart.push(parents.collect());
        }
    }
    plan.kept.append(&mut kept);
    plan
}

/// The partition summary of the new files under the default spec, with the field types (`None`
/// when it cannot be computed: then every manifest of the spec takes part).
fn new_files_summary(
    table: &LoadedTable,
    new_files: &[DataFile],
) -> Option<(Vec<PrimitiveType>, Vec<FieldSummary>)> {
    let metadata = table.metadata();
    let partition = metadata
        .default_partition_spec()
        .partition_type(metadata.current_schema())
        .ok()?;
    let types = partition
        .fields()
        .iter()
        .map(|f| crate::partition::primitive_type(&f.field_type).cloned())
        .collect::<Option<Vec<_>>>()?;
    let files: Vec<&DataFile> = new_files.iter().collect();
    Some((types, partition_summaries(&partition, &files)))
}

/// Whether the manifest may hold a file of a partition the new files (summarised by `new`)
/// fall in: on every partition field, the value ranges meet or both hold nulls. A manifest
/// without summaries, or with bounds that do not decode, may.
fn may_share_a_partition(
    types: &[PrimitiveType],
    new: &[FieldSummary],
    manifest: &ManifestFile,
) -> bool {
    let Some(old) = manifest.partitions.as_ref() else {
        return true;
    };
    if old.len() != new.len() {
        return true;
    }
    let datum = |ty: &PrimitiveType, bytes: &Option<serde_bytes::ByteBuf>| {
        bytes
            .as_ref()
            .and_then(|b| Datum::try_from_bytes(b, ty.clone()).ok())
    };
    types.iter().zip(new.iter().zip(old)).all(|(ty, (n, o))| {
        if n.contains_null && o.contains_null {
            return true;
        }
        match (
            datum(ty, &n.lower_bound),
            datum(ty, &n.upper_bound),
            datum(ty, &o.lower_bound),
            datum(ty, &o.upper_bound),
        ) {
            (Some(n_low), Some(n_high), Some(o_low), Some(o_high)) => {
                n_low <= o_high && o_low <= n_high
            }
            // One side holds only nulls (no bounds), the other none: no partition in common.
            _ if (n.lower_bound.is_none() && !o.contains_null)
                || (o.lower_bound.is_none() && !n.contains_null) =>
            {
                false
            }
            _ => true,
        }
    })
}

/// Writes one data manifest at `path` for snapshot `snapshot_id`: `new_files` added, and the
/// live entries of `merged` carried over with the snapshots and sequence numbers they were
/// added with (entries deleted by earlier snapshots are dropped).
pub(crate) async fn write_merged(
    table: &LoadedTable,
    spec: &PartitionSpec,
    path: &str,
    snapshot_id: i64,
    new_files: &[DataFile],
    merged: &[ManifestFile],
) -> Result<ManifestFile> {
    let mut carried: Vec<(DataFile, EntryOrigin)> = Vec::new();
    for manifest in merged {
        let loaded = manifest.load_manifest(table.file_io()).await?;
        for entry in loaded.entries() {
            if entry.status() == ManifestStatus::Deleted {
                continue;
            }
            carried.push((
                entry.data_file().clone(),
                EntryOrigin::Existing {
                    snapshot_id: entry.snapshot_id().unwrap_or(manifest.added_snapshot_id),
                    data_sequence_number: entry
                        .sequence_number()
                        .unwrap_or(manifest.sequence_number),
                    file_sequence_number: entry.file_sequence_number,
                },
            ));
        }
    }
    let mut entries: Vec<ManifestEntryOut<'_>> = new_files
        .iter()
        .map(|file| ManifestEntryOut {
            file,
            origin: EntryOrigin::Added,
        })
        .collect();
    entries.extend(carried.iter().map(|(file, origin)| ManifestEntryOut {
        file,
        origin: *origin,
    }));
    write_manifest_entries_v2(
        table.file_io(),
        table.metadata(),
        spec,
        path,
        snapshot_id,
        &entries,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_come_from_the_table_properties() {
        let props = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            MergePolicy::of(&props(&[])),
            MergePolicy {
                enabled: true,
                min_count: 100,
                target_bytes: 8 * 1024 * 1024
            }
        );
        let set = MergePolicy::of(&props(&[
            (MERGE_ENABLED_PROPERTY, "FALSE"),
            (MIN_COUNT_TO_MERGE_PROPERTY, "16"),
            (TARGET_SIZE_PROPERTY, "1000"),
        ]));
        assert_eq!(
            (set.enabled, set.min_count, set.target_bytes),
            (false, 16, 1000)
        );
        let odd = MergePolicy::of(&props(&[
            (MIN_COUNT_TO_MERGE_PROPERTY, "1"),
            (TARGET_SIZE_PROPERTY, "lots"),
        ]));
        assert_eq!((odd.enabled, odd.min_count), (true, 2));
        assert_eq!(odd.target_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn packing_fills_bins_from_the_oldest_and_leaves_the_newest_together() {
        // Newest first: 1, 1, 1, then an old large manifest of 9.
        assert_eq!(
            pack_from_oldest(&[1, 1, 1, 9], 10),
            vec![vec![0, 1], vec![2, 3]]
        );
        assert_eq!(pack_from_oldest(&[1, 1, 1], 10), vec![vec![0, 1, 2]]);
        // Larger than the target: a bin of its own.
        assert_eq!(
            pack_from_oldest(&[1, 20, 1], 10),
            vec![vec![0], vec![1], vec![2]]
        );
        assert!(pack_from_oldest(&[], 10).is_empty());
        // Every item in exactly one bin, in order.
        let sizes = [3, 5, 2, 8, 1, 1, 4, 7, 2];
        let flat: Vec<usize> = pack_from_oldest(&sizes, 9).concat();
        assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
        for bin in pack_from_oldest(&sizes, 9) {
            let weight: u64 = bin.iter().map(|&i| sizes[i]).sum();
            assert!(bin.len() == 1 || weight <= 9, "{bin:?}");
        }
    }
}

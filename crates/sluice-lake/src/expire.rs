//! Expiring snapshots with Iceberg's ref retention: what every branch and tag still needs is
//! kept, the rest is removed from the metadata in one commit, and then the files only the
//! removed snapshots referenced (manifest lists, manifests, data files) are deleted, never a
//! file outside the table's location.
//!
//! ```text
//!  per ref:  tag     → keep its snapshot (unless the tag is older than max-ref-age: tag removed)
//!            branch  → keep ancestors while fewer than min-snapshots-to-keep are kept, or while
//!                      newer than now − max-snapshot-age (main never expires as a ref)
//!  expire:   every snapshot no ref keeps AND older than the cutoff (a newer unreferenced
//!            snapshot may be a run's staged publish)
//!  commit:   RemoveSnapshots + RemoveSnapshotRef, each ref asserted where it was planned
//!  delete:   manifest lists of the expired; manifests no kept snapshot lists; data files in
//!            them that no kept manifest lists; under the table location only
//! ```
//!
//! The ingest ledger (exactly-once) is a table property and its own files, not a snapshot:
//! expiry does not touch it.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{ManifestFile, SnapshotRetention, TableMetadata};
use iceberg::{TableRequirement, TableUpdate};
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::catalog::LoadedTable;
use crate::commit::Plan;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::refs::{self, MAIN};
use crate::table_name::TableName;

/// Table property: default max age of a branch's snapshots (Iceberg's; 5 days).
pub const MAX_SNAPSHOT_AGE_PROPERTY: &str = "history.expire.max-snapshot-age-ms";
/// Table property: default number of a branch's newest snapshots always kept (Iceberg's; 1).
pub const MIN_SNAPSHOTS_PROPERTY: &str = "history.expire.min-snapshots-to-keep";
/// Table property: default max age of a ref other than `main` (Iceberg's; forever).
pub const MAX_REF_AGE_PROPERTY: &str = "history.expire.max-ref-age-ms";

const DEFAULT_MAX_SNAPSHOT_AGE_MS: i64 = 5 * 24 * 3600 * 1000;
const DEFAULT_MIN_SNAPSHOTS: usize = 1;
/// Files deleted at once.
const DELETES: usize = 8;
/// Manifests read at once.
const MANIFEST_READS: usize = 8;

/// Options of [`Lake::expire_snapshots`].
#[derive(Clone, Debug, Default)]
pub struct ExpireOptions {
    /// Overrides every branch's max snapshot age (`--older-than`).
    pub older_than_ms: Option<i64>,
    /// Overrides every branch's min snapshots to keep (`--retain-last`).
    pub retain_last: Option<usize>,
    /// Plan and count only: nothing is committed or deleted.
    pub dry_run: bool,
    /// "Now", in milliseconds since the epoch (tests); the clock when `None`.
    pub now_ms: Option<i64>,
}

/// What [`Lake::expire_snapshots`] did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    /// Snapshots removed from the metadata.
    pub snapshots: Vec<i64>,
    /// Refs removed because they were older than their max ref age.
    pub refs: Vec<String>,
    /// Snapshots kept.
    pub kept: usize,
    /// Manifest lists, manifests and data files deleted (or to delete).
    pub manifest_lists: usize,
    /// Manifests.
    pub manifests: usize,
    /// Data files.
    pub data_files: usize,
    /// Files that were not under the table's location, so were left (a registered source).
    pub left_outside: usize,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// The plan: snapshots to remove and refs to drop.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ExpiryPlan {
    pub(crate) expire: Vec<i64>,
    pub(crate) drop_refs: Vec<String>,
    pub(crate) keep: HashSet<i64>,
}

fn property<T: std::str::FromStr>(md: &TableMetadata, key: &str) -> Option<T> {
    md.properties().get(key).and_then(|v| v.parse().ok())
}

/// Which snapshots the refs keep, which refs expire, and which snapshots go.
pub(crate) fn plan_expiry(
    md: &TableMetadata,
    all_refs: &HashMap<String, iceberg::spec::SnapshotReference>,
    options: &ExpireOptions,
    now_ms: i64,
) -> ExpiryPlan {
    let table_age = options
        .older_than_ms
        .or_else(|| property(md, MAX_SNAPSHOT_AGE_PROPERTY))
        .unwrap_or(DEFAULT_MAX_SNAPSHOT_AGE_MS);
    let table_min = options
        .retain_last
        .or_else(|| property(md, MIN_SNAPSHOTS_PROPERTY))
        .unwrap_or(DEFAULT_MIN_SNAPSHOTS)
        .max(1);
    let table_ref_age: Option<i64> = property(md, MAX_REF_AGE_PROPERTY);
    let mut plan = ExpiryPlan::default();
    let mut names: Vec<&String> = all_refs.keys().collect();
    names.sort();
    for name in names {
        let r = &all_refs[name];
        let Some(head) = md.snapshot_by_id(r.snapshot_id) else {
            continue;
        };
        let (ref_age, min_keep, max_age) = match &r.retention {
            SnapshotRetention::Tag { max_ref_age_ms } => (max_ref_age_ms.or(table_ref_age), 1, 0),
            SnapshotRetention::Branch {
                min_snapshots_to_keep,
                max_snapshot_age_ms,
                max_ref_age_ms,
            } => (
                max_ref_age_ms.or(table_ref_age),
                // An override applies to every branch; otherwise the ref's own, then the table's.
                match options.retain_last {
                    Some(n) => n.max(1),
                    None => min_snapshots_to_keep
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(table_min)
                        .max(1),
                },
                match options.older_than_ms {
                    Some(age) => age,
                    None => max_snapshot_age_ms.unwrap_or(table_age),
                },
            ),
        };
        if name != MAIN
            && let Some(age) = ref_age
            && now_ms - head.timestamp_ms() > age
        {
            plan.drop_refs.push(name.clone());
            continue;
        }
        if r.is_branch() {
            let cutoff = now_ms - max_age;
            for (kept, id) in refs::ancestry(md, Some(r.snapshot_id))
                .into_iter()
                .enumerate()
            {
                let young = md
                    .snapshot_by_id(id)
                    .is_some_and(|s| s.timestamp_ms() >= cutoff);
                if kept < min_keep || young {
                    plan.keep.insert(id);
                } else {
                    break;
                }
            }
        } else {
            plan.keep.insert(r.snapshot_id);
        }
    }
    let cutoff = now_ms - table_age;
    let mut expire: Vec<i64> = md
        .snapshots()
        .filter(|s| !plan.keep.contains(&s.snapshot_id()) && s.timestamp_ms() < cutoff)
        .map(|s| s.snapshot_id())
        .collect();
    expire.sort_unstable();
    plan.expire = expire;
    plan
}

impl Lake {
    /// Expires the snapshots of a table that no branch or tag keeps under Iceberg's ref
    /// retention (see the module docs), in one catalog commit, then deletes the files only they
    /// referenced. Idempotent; a ref that moves meanwhile makes it plan again.
    pub async fn expire_snapshots(
        &self,
        name: &TableName,
        options: &ExpireOptions,
    ) -> Result<Expired> {
        let now_ms = options
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let before = self.load_table(name).await?;
        if options.dry_run {
            let plan = plan_expiry(before.metadata(), before.refs(), options, now_ms);
            let mut out = self.files_to_delete(&before, &plan, true).await?;
            out.snapshots = plan.expire;
            out.refs = plan.drop_refs;
            out.kept = plan.keep.len();
            out.dry_run = true;
            return Ok(out);
        }
        let options_ref = options;
        let (after, plan) = self
            .commit_loop(name, |table| async move {
                let md = table.metadata();
                let all_refs = table.refs();
                let plan = plan_expiry(md, all_refs, options_ref, now_ms);
                if plan.expire.is_empty() && plan.drop_refs.is_empty() {
                    return Ok(Plan::Done((plan, table.clone())));
                }
                let mut requirements = vec![TableRequirement::UuidMatch { uuid: md.uuid() }];
                for (ref_name, r) in all_refs {
                    requirements.push(TableRequirement::RefSnapshotIdMatch {
                        r#ref: ref_name.clone(),
                        snapshot_id: Some(r.snapshot_id),
                    });
                }
                let mut updates: Vec<TableUpdate> = plan
                    .drop_refs
                    .iter()
                    .map(|r| TableUpdate::RemoveSnapshotRef {
                        ref_name: r.clone(),
                    })
                    .collect();
                if !plan.expire.is_empty() {
                    updates.push(TableUpdate::RemoveSnapshots {
                        snapshot_ids: plan.expire.clone(),
                    });
                }
                Ok(Plan::Commit {
                    requirements,
                    updates,
                    value: (plan, table.clone()),
                })
            })
            .await?;
        let (plan, planned_on) = plan;
        let _ = after;
        // The expired snapshots' files are found in the metadata the plan was made on.
        let mut out = self.files_to_delete(&planned_on, &plan, false).await?;
        out.snapshots = plan.expire;
        out.refs = plan.drop_refs;
        out.kept = plan.keep.len();
        Ok(out)
    }

    /// Counts, and unless `dry`, deletes the files only the expired snapshots of `plan`
    /// referenced, reading manifests from `table` (the metadata before the expiry).
    async fn files_to_delete(
        &self,
        table: &LoadedTable,
        plan: &ExpiryPlan,
        dry: bool,
    ) -> Result<Expired> {
        let md = table.metadata();
        let expired: HashSet<i64> = plan.expire.iter().copied().collect();
        let survivors: Vec<i64> = md
            .snapshots()
            .map(|s| s.snapshot_id())
            .filter(|id| !expired.contains(id))
            .collect();
        let mut kept_lists: HashSet<String> = HashSet::new();
        let mut kept_manifests: HashMap<String, ManifestFile> = HashMap::new();
        for id in &survivors {
            if let Some(s) = md.snapshot_by_id(*id) {
                kept_lists.insert(s.manifest_list().to_string());
            }
            for m in crate::snapshot_producer::manifests_of(table, *id).await? {
                kept_manifests.insert(m.manifest_path.clone(), m);
            }
        }
        let mut lists = Vec::new();
        let mut gone_manifests: HashMap<String, ManifestFile> = HashMap::new();
        for id in &plan.expire {
            let Some(s) = md.snapshot_by_id(*id) else {
                continue;
            };
            if !kept_lists.contains(s.manifest_list()) {
                lists.push(s.manifest_list().to_string());
            }
            for m in crate::snapshot_producer::manifests_of(table, *id).await? {
                if !kept_manifests.contains_key(&m.manifest_path) {
                    gone_manifests.insert(m.manifest_path.clone(), m);
                }
            }
        }
        // Data files: those in manifests that go, unless a kept manifest lists them.
        let mut candidates: HashSet<String> = HashSet::new();
        if !gone_manifests.is_empty() {
            let gone: Vec<_> =
                read_manifests(table, gone_manifests.values().cloned().collect()).await?;
            for entries in gone {
                candidates.extend(entries);
            }
        }
        if !candidates.is_empty() {
            let kept = read_manifests(table, kept_manifests.values().cloned().collect()).await?;
            for entries in kept {
                for path in entries {
                    candidates.remove(&path);
                }
            }
        }
        let location = md.location().trim_end_matches('/').to_string();
        let inside = |path: &str| path.starts_with(&format!("{location}/"));
        let mut out = Expired {
            dry_run: dry,
            ..Expired::default()
        };
        let mut to_delete: Vec<String> = Vec::new();
        for (paths, count) in [
            (lists, &mut out.manifest_lists),
            (
                gone_manifests.into_keys().collect::<Vec<_>>(),
                &mut out.manifests,
            ),
            (
                candidates.into_iter().collect::<Vec<_>>(),
                &mut out.data_files,
            ),
        ] {
            for path in paths {
                if inside(&path) {
                    *count += 1;
                    to_delete.push(path);
                } else {
                    out.left_outside += 1;
                }
            }
        }
        if !dry {
            self.delete_files(&to_delete).await?;
        }
        Ok(out)
    }

    async fn delete_files(&self, paths: &[String]) -> Result<()> {
        let results: Vec<Result<()>> = futures::stream::iter(paths.iter().cloned())
            .map(|location| async move {
                let (store, path) = self.stores().resolve(&location)?;
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(source) => Err(Error::Storage { location, source }),
                }
            })
            .buffer_unordered(DELETES)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// The data file paths each manifest lists (every entry, whatever its status).
async fn read_manifests(
    table: &LoadedTable,
    manifests: Vec<ManifestFile>,
) -> Result<Vec<Vec<String>>> {
    futures::stream::iter(manifests)
        .map(|m| async move {
            let loaded = m.load_manifest(table.file_io()).await?;
            Ok::<_, Error>(
                loaded
                    .entries()
                    .iter()
                    .map(|e| e.data_file().file_path().to_string())
                    .collect(),
            )
        })
        .buffer_unordered(MANIFEST_READS)
        .try_collect()
        .await
}

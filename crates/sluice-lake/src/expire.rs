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
use iceberg::spec::{ManifestFile, ManifestStatus, SnapshotRetention, TableMetadata};
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
    /// Bytes of the data files and manifests deleted (or to delete); manifest lists are not
    /// counted (their sizes are not recorded anywhere).
    pub bytes: u64,
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

/// What an expiry is about to commit, journalled before the commit so that a process that
/// dies between the commit and the deletes can have them finished ([`Lake::finish_expiry`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExpiryIntent {
    /// The table.
    pub table: TableName,
    /// The metadata file the expiry was planned on (it lists the snapshots to expire).
    pub metadata_location: String,
    /// The snapshots to expire.
    pub snapshots: Vec<i64>,
}

/// An expiry committed, its files not yet deleted ([`Lake::delete_expired`]).
#[derive(Debug)]
pub struct CommittedExpiry {
    planned_on: LoadedTable,
    plan: ExpiryPlan,
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
        if options.dry_run {
            return self.plan_expiry_dry(name, options).await;
        }
        let committed = self
            .commit_expiry(name, options, |_| async { Ok(()) })
            .await?;
        self.delete_expired(committed).await
    }

    /// What [`Lake::expire_snapshots`] would do, changing nothing.
    async fn plan_expiry_dry(&self, name: &TableName, options: &ExpireOptions) -> Result<Expired> {
        let now_ms = options
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let before = self.load_table(name).await?;
        let plan = plan_expiry(before.metadata(), before.refs(), options, now_ms);
        let survivors = survivors(&before, &plan);
        let mut out = self
            .files_to_delete(&before, &plan.expire, &before, &survivors, true)
            .await?;
        out.snapshots = plan.expire;
        out.refs = plan.drop_refs;
        out.kept = plan.keep.len();
        out.dry_run = true;
        Ok(out)
    }

    /// The first half of [`Lake::expire_snapshots`]: plans and commits the expiry, calling
    /// `before_commit` with what each attempt is about to commit (to journal it), and deletes
    /// nothing.
    pub async fn commit_expiry<F, Fut>(
        &self,
        name: &TableName,
        options: &ExpireOptions,
        before_commit: F,
    ) -> Result<CommittedExpiry>
    where
        F: Fn(ExpiryIntent) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let now_ms = options
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let before_commit = &before_commit;
        let (_, (plan, planned_on)) = self
            .commit_loop(name, |table| async move {
                let md = table.metadata();
                let all_refs = table.refs();
                let plan = plan_expiry(md, all_refs, options, now_ms);
                if plan.expire.is_empty() && plan.drop_refs.is_empty() {
                    return Ok(Plan::Done((plan, table.clone())));
                }
                if !plan.expire.is_empty()
                    && let Some(location) = table.metadata_location()
                {
                    before_commit(ExpiryIntent {
                        table: table.name().clone(),
                        metadata_location: location.to_string(),
                        snapshots: plan.expire.clone(),
                    })
                    .await?;
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
        Ok(CommittedExpiry { planned_on, plan })
    }

    /// The second half of [`Lake::expire_snapshots`]: deletes the files only the expired
    /// snapshots referenced (found in the metadata the expiry was planned on).
    pub async fn delete_expired(&self, committed: CommittedExpiry) -> Result<Expired> {
        let CommittedExpiry { planned_on, plan } = committed;
        let survivors = survivors(&planned_on, &plan);
        let mut out = self
            .files_to_delete(&planned_on, &plan.expire, &planned_on, &survivors, false)
            .await?;
        out.snapshots = plan.expire;
        out.refs = plan.drop_refs;
        out.kept = plan.keep.len();
        Ok(out)
    }

    /// Finishes an expiry whose process died after its commit: if the intent's snapshots are
    /// gone from the table, deletes the files they alone referenced (read from the metadata
    /// file the expiry was planned on) that no snapshot of the table refers to now. If they
    /// are still there the commit did not happen, and nothing is done. Idempotent.
    pub async fn finish_expiry(&self, intent: &ExpiryIntent) -> Result<Option<Expired>> {
        let now = match self.load_table(&intent.table).await {
            Ok(t) => t,
            Err(Error::TableNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let md = now.metadata();
        if intent
            .snapshots
            .iter()
            .any(|id| md.snapshot_by_id(*id).is_some())
        {
            return Ok(None);
        }
        let before = match now.at_metadata(&intent.metadata_location).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(table = %intent.table, location = %intent.metadata_location, error = %e, "the metadata an expiry was planned on is unreadable; its files are left for orphan removal");
                return Ok(None);
            }
        };
        let current: Vec<i64> = md.snapshots().map(|s| s.snapshot_id()).collect();
        let mut out = self
            .files_to_delete(&before, &intent.snapshots, &now, &current, false)
            .await?;
        out.snapshots = intent.snapshots.clone();
        out.kept = current.len();
        Ok(Some(out))
    }

    /// Counts, and unless `dry`, deletes the files only the `expired` snapshots of
    /// `expired_from` referenced and that none of the `kept` snapshots of `kept_from` reads.
    async fn files_to_delete(
        &self,
        expired_from: &LoadedTable,
        expired: &[i64],
        kept_from: &LoadedTable,
        kept: &[i64],
        dry: bool,
    ) -> Result<Expired> {
        let (old_md, kept_md) = (expired_from.metadata(), kept_from.metadata());
        let mut kept_lists: HashSet<String> = HashSet::new();
        let mut kept_manifests: HashMap<String, ManifestFile> = HashMap::new();
        for id in kept {
            if let Some(s) = kept_md.snapshot_by_id(*id) {
                kept_lists.insert(s.manifest_list().to_string());
            }
            for m in crate::snapshot_producer::manifests_of(kept_from, *id).await? {
                kept_manifests.insert(m.manifest_path.clone(), m);
            }
        }
        let mut lists = Vec::new();
        let mut gone_manifests: HashMap<String, ManifestFile> = HashMap::new();
        for id in expired {
            let Some(s) = old_md.snapshot_by_id(*id) else {
                continue;
            };
            if !kept_lists.contains(s.manifest_list()) {
                lists.push(s.manifest_list().to_string());
            }
            for m in crate::snapshot_producer::manifests_of(expired_from, *id).await? {
                if !kept_manifests.contains_key(&m.manifest_path) {
                    gone_manifests.insert(m.manifest_path.clone(), m);
                }
            }
        }
        // Data files: those in manifests that go, unless a kept manifest lists them.
        let mut candidates: HashMap<String, u64> = HashMap::new();
        if !gone_manifests.is_empty() {
            let gone: Vec<_> = read_manifests(
                expired_from,
                gone_manifests.values().cloned().collect(),
                false,
            )
            .await?;
            for entries in gone {
                candidates.extend(entries);
            }
        }
        if !candidates.is_empty() {
            // A file a kept snapshot lists as deleted is not read by it.
            let kept =
                read_manifests(kept_from, kept_manifests.values().cloned().collect(), true).await?;
            for entries in kept {
                for (path, _) in entries {
                    candidates.remove(&path);
                }
            }
        }
        let mut sizes: HashMap<String, u64> = gone_manifests
            .values()
            .map(|m| (m.manifest_path.clone(), m.manifest_length.max(0) as u64))
            .collect();
        sizes.extend(candidates.iter().map(|(p, size)| (p.clone(), *size)));
        let location = kept_md.location().trim_end_matches('/').to_string();
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
                candidates.into_keys().collect::<Vec<_>>(),
                &mut out.data_files,
            ),
        ] {
            for path in paths {
                if inside(&path) {
                    *count += 1;
                    out.bytes += sizes.get(&path).copied().unwrap_or(0);
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

/// The snapshots of `table` that `plan` keeps.
fn survivors(table: &LoadedTable, plan: &ExpiryPlan) -> Vec<i64> {
    let expired: HashSet<i64> = plan.expire.iter().copied().collect();
    table
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .filter(|id| !expired.contains(id))
        .collect()
}

/// The data file paths (and sizes) each manifest lists: every entry, or with `live_only` those
/// a reader of the manifest reads (added or existing, not deleted).
async fn read_manifests(
    table: &LoadedTable,
    manifests: Vec<ManifestFile>,
    live_only: bool,
) -> Result<Vec<Vec<(String, u64)>>> {
    futures::stream::iter(manifests)
        .map(|m| async move {
            let loaded = m.load_manifest(table.file_io()).await?;
            Ok::<_, Error>(
                loaded
                    .entries()
                    .iter()
                    .filter(|e| !live_only || e.status() != ManifestStatus::Deleted)
                    .map(|e| {
                        (
                            e.data_file().file_path().to_string(),
                            e.data_file().file_size_in_bytes(),
                        )
                    })
                    .collect(),
            )
        })
        .buffer_unordered(MANIFEST_READS)
        .try_collect()
        .await
}

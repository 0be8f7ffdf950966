//! Removing orphan files: files under a table's location that nothing in its metadata refers
//! to (what a killed writer of any engine, or a lost commit, left behind).
//!
//! ```text
//!  referenced = current metadata file + its metadata log + statistics files
//!             + every snapshot's manifest list, manifests, data and delete files
//!             + the ingest ledger's current root and buckets
//!  for each object listed under <table location>/ (a stream, never all held at once):
//!      referenced                                   → kept
//!      under a protected prefix (a run in flight)   → kept
//!      modified after the cutoff (now − older-than) → kept (a write in progress may own it)
//!      otherwise                                    → deleted (in batches, as listed)
//! ```
//!
//! Nothing outside the table's location is ever listed or deleted. A table whose location is
//! the root of a bucket or of the file system is refused.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::ManifestFile;
use object_store::path::Path;
use serde::Serialize;

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::snapshot_producer::manifests_of;
use crate::table_name::TableName;

/// Manifests read at once.
const MANIFEST_READS: usize = 8;
/// Paths named in a report (the first ones found).
const SAMPLE: usize = 20;

/// Options of [`Lake::remove_orphan_files`].
#[derive(Clone, Debug, Default)]
pub struct OrphanOptions {
    /// Only files last modified more than this long ago are removed.
    pub older_than_ms: i64,
    /// Files last modified at or after this time (milliseconds since the epoch) are kept
    /// whatever their age: the start of the oldest run in flight.
    pub keep_after_ms: Option<i64>,
    /// Runs in flight: the files of their directories (data and metadata) are kept.
    pub protect_runs: Vec<String>,
    /// Other locations (directories) whose files are kept.
    pub protect: Vec<String>,
    /// Find and count only: nothing is deleted.
    pub dry_run: bool,
    /// "Now", in milliseconds since the epoch (tests); the clock when `None`.
    pub now_ms: Option<i64>,
}

/// What [`Lake::remove_orphan_files`] did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrphansRemoved {
    /// Files listed under the table's location.
    pub listed: u64,
    /// Files the metadata refers to (every snapshot of every ref, the ledger).
    pub referenced: u64,
    /// Orphans deleted (or, dry, to delete).
    pub deleted: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Orphans kept because they are newer than the cutoff.
    pub too_recent: u64,
    /// Orphans kept because a run in flight owns their directory.
    pub in_flight: u64,
    /// The first orphans found.
    pub sample: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Whether `path` is `prefix` or below it, segment-wise.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

impl Lake {
    /// Deletes the files under a table's location that no snapshot of any ref, no metadata
    /// file of its log and not the ingest ledger refers to, and that are older than
    /// `options.older_than_ms` and not under a protected directory (see the module docs).
    /// Listing and deleting stream; what the metadata refers to is held as a set of paths.
    pub async fn remove_orphan_files(
        &self,
        name: &TableName,
        options: &OrphanOptions,
    ) -> Result<OrphansRemoved> {
        let now_ms = options
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let mut cutoff = now_ms.saturating_sub(options.older_than_ms.max(0));
        if let Some(after) = options.keep_after_ms {
            cutoff = cutoff.min(after);
        }
        let table = self.load_table(name).await?;
        let location = table
            .metadata()
            .location()
            .trim_end_matches('/')
            .to_string();
        let (store, base) = self.stores().resolve(&location)?;
        if base.as_ref().is_empty() {
            return Err(Error::Config(format!(
                "{name} is located at the root of its store ({location}); orphan files are only \
                 removed under a table's own directory"
            )));
        }
        let referenced = self.referenced_paths(&table).await?;
        let md = table.metadata();
        let mut protected = options.protect.clone();
        for run in &options.protect_runs {
            if crate::snapshot_producer::run_dir(Some(run)).is_some() {
                protected.push(crate::snapshot_producer::data_dir(md, Some(run)));
                protected.push(crate::snapshot_producer::metadata_dir(md, Some(run)));
            }
        }
        let protect: Vec<String> = protected
            .iter()
            .filter_map(|p| self.stores().resolve(p).ok())
            .map(|(_, p)| p.as_ref().to_string())
            .collect();
        let out = Arc::new(Mutex::new(OrphansRemoved {
            referenced: referenced.len() as u64,
            dry_run: options.dry_run,
            ..OrphansRemoved::default()
        }));
        let tally = out.clone();
        let lock = |m: &Mutex<OrphansRemoved>| {
            let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *g)
        };
        let listed_at = location.clone();
        let orphans = store
            .list(Some(&base))
            .map_err(move |source| Error::Storage {
                location: listed_at.clone(),
                source,
            })
            .try_filter_map(move |meta| {
                let tally = tally.clone();
                let path = meta.location.as_ref().to_string();
                let keep = {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    t.listed += 1;
                    if referenced.contains(&path) || path.ends_with("/version-hint.text") {
                        true
                    } else if protect.iter().any(|p| under(&path, p)) {
                        t.in_flight += 1;
                        true
                    } else if meta.last_modified.timestamp_millis() >= cutoff {
                        t.too_recent += 1;
                        true
                    } else {
                        t.deleted += 1;
                        t.bytes += meta.size;
                        if t.sample.len() < SAMPLE {
                            t.sample.push(path);
                        }
                        false
                    }
                };
                futures::future::ready(Ok(if keep { None } else { Some(meta.location) }))
            });
        if options.dry_run {
            orphans.try_for_each(|_| async { Ok(()) }).await?;
        } else {
            let errors: Arc<Mutex<Option<Error>>> = Arc::default();
            let errors_in = errors.clone();
            let location_in = location.clone();
            let paths = orphans
                .map(move |r| {
                    r.map_err(|e| {
                        let message = e.to_string();
                        *errors_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        object_store::Error::Generic {
                            store: "listing",
                            source: message.into(),
                        }
                    })
                })
                .boxed();
            let mut deleted = store.delete_stream(paths);
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(source) => {
                        if let Some(e) = errors.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            return Err(e);
                        }
                        return Err(Error::Storage {
                            location: location_in,
                            source,
                        });
                    }
                }
            }
        }
        let result = lock(&out);
        Ok(result)
    }

    /// The object paths of every file the table's metadata refers to, in the table's store.
    async fn referenced_paths(&self, table: &LoadedTable) -> Result<HashSet<String>> {
        let md = table.metadata();
        let mut uris: Vec<String> = Vec::new();
        uris.extend(table.metadata_location().map(str::to_string));
        uris.extend(md.metadata_log().iter().map(|l| l.metadata_file.clone()));
        uris.extend(md.statistics_iter().map(|s| s.statistics_path.clone()));
        uris.extend(
            md.partition_statistics_iter()
                .map(|s| s.statistics_path.clone()),
        );
        uris.extend(crate::ledger::current_files(self, table).await?);
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for snapshot in md.snapshots() {
            uris.push(snapshot.manifest_list().to_string());
            for m in manifests_of(table, snapshot.snapshot_id()).await? {
                if seen.insert(m.manifest_path.clone()) {
                    manifests.push(m);
                }
            }
        }
        uris.extend(seen);
        let files: Vec<Vec<String>> = futures::stream::iter(manifests)
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
            .await?;
        uris.extend(files.into_iter().flatten());
        Ok(uris
            .iter()
            .filter_map(|uri| self.stores().resolve(uri).ok())
            .map(|(_, path): (_, Path)| path.as_ref().to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under("wh/ns/t/data/r1/a.parquet", "wh/ns/t/data/r1"));
        assert!(under("wh/ns/t/data/r1", "wh/ns/t/data/r1"));
        assert!(!under("wh/ns/t/data/r10/a.parquet", "wh/ns/t/data/r1"));
        assert!(!under("wh/ns/t", "wh/ns/t/data"));
    }
}

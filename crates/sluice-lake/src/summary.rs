//! The properties sluice keeps in Iceberg metadata: snapshot-summary keys (every commit is a
//! snapshot whose summary says who made it, why, and what its audit said) and the table
//! property of the ingest ledger. Other engines show them as they are (e.g. Spark's
//! `snapshots` metadata table).

/// Snapshot summary: the commit message.
pub const MESSAGE_PROPERTY: &str = "sluice.message";
/// Snapshot summary: who made the commit.
pub const AUTHOR_PROPERTY: &str = "sluice.author";
/// Snapshot summary: the audit verdict of the run that wrote the snapshot (`passed: 3 checks`,
/// `failed: unique(event_id)`, `no checks`).
pub const AUDIT_PROPERTY: &str = "sluice.audit";
/// Snapshot summary: `copy` or `register`, how the run's files got into the table.
pub const MODE_PROPERTY: &str = "sluice.mode";
/// Snapshot summary: how many source files the run ingested.
pub const SOURCE_FILE_COUNT_PROPERTY: &str = "sluice.source-file-count";
/// Snapshot summary: the record of an import (files written onto a branch without a
/// publish), as JSON `{"run_key": …, "files": […]}`: the merge that publishes the branch adds
/// its source files to the ingest ledger.
pub const IMPORT_RECORD_PROPERTY: &str = "sluice.import-record";
/// Snapshot summary: a unique id of the commit that produced a snapshot, so that a commit whose
/// outcome is unknown (a timeout, a crash) is recognised instead of being applied twice.
pub const COMMIT_ID_PROPERTY: &str = "sluice.commit-id";
/// Snapshot summary: the id of the run that wrote a snapshot. A commit that carries it writes
/// its manifests under `metadata/<run id>/`, the run's own directory (see
/// [`crate::Lake::delete_run_files`]).
pub const RUN_ID_PROPERTY: &str = "sluice.run-id";
/// Snapshot summary: the key of the run that wrote the snapshot (a digest of its file set).
pub const RUN_KEY_PROPERTY: &str = "sluice.run-key";
/// Snapshot summary that older versions used to list the source files a publish ingested (one
/// per line); read only to migrate such tables to the ingest ledger.
pub const SOURCE_FILES_PROPERTY: &str = "sluice.source-files";
/// Snapshot summary that Iceberg itself uses for a snapshot re-applied from another
/// (cherry-pick); a rebased snapshot carries it.
pub const SOURCE_SNAPSHOT_PROPERTY: &str = "source-snapshot-id";
/// Table property pointing at the root file of the table's ingest ledger.
pub const LEDGER_PROPERTY: &str = "sluice.ingest-ledger";

/// Snapshot summary: what the run measured of its new rows (rows; per audited column its null
/// fraction, min, max, mean and approximate distinct count), as compact JSON. `anomaly` checks
/// compare a run with the values of the publishes before it; `sluice metrics` prints them.
pub const METRICS_PROPERTY: &str = "sluice.metrics";

/// A snapshot that carries a summary property, found by [`along_ancestry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The snapshot.
    pub snapshot_id: i64,
    /// When it was committed, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The run that wrote it (`sluice.run-id`), if any.
    pub run_id: Option<String>,
    /// The property's value.
    pub value: String,
}

/// The values of summary property `key` along the ancestry of snapshot `head` (newest first,
/// skipping snapshots without it), at most `limit` of them. Reads the table's metadata only.
pub fn along_ancestry(
    table: &crate::LoadedTable,
    head: Option<i64>,
    key: &str,
    limit: usize,
) -> Vec<Recorded> {
    let md = table.metadata();
    let mut out = Vec::new();
    for id in crate::refs::ancestry(md, head) {
        if out.len() >= limit {
            break;
        }
        let Some(snapshot) = md.snapshot_by_id(id) else {
            break;
        };
        let properties = &snapshot.summary().additional_properties;
        if let Some(value) = properties.get(key) {
            out.push(Recorded {
                snapshot_id: id,
                timestamp_ms: snapshot.timestamp_ms(),
                run_id: properties.get(RUN_ID_PROPERTY).cloned(),
                value: value.clone(),
            });
        }
    }
    out
}

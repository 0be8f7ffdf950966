//! The ingest ledger: which source files and run keys a table's `main` has published.
//!
//! Exactly-once ingestion needs a record that outlives snapshot expiry (every engine's routine
//! `expire_snapshots` deletes old snapshots and their summaries) and that costs the same to
//! consult on the thousandth run as on the first. The ledger is that record:
//!
//! ```text
//!  table property  sluice.ingest-ledger = <table>/metadata/sluice-ledger/<id>.root.json
//!                                                   │
//!  root: { format, hash, entries, buckets: [b0, b1, …] }  (each a bucket file, or null)
//!                                          │
//!  bucket file: one entry per line,  f "<source file location>"  |  k "<run key>"
//! ```
//!
//! An entry lives in the bucket its hash (FNV-1a, 64 bit) picks, modulo the number of buckets:
//! one for a new ledger, doubled whenever they would hold more than 4,096 entries on average
//! (up to 4,096 buckets; a split rewrites every bucket once). Every file is immutable: a
//! publish writes new versions of only the buckets its entries fall in, plus a new root, and
//! the **same catalog commit** that moves `main` points the property at the new root. A
//! publish that loses a race writes nothing the table refers to; the next attempt starts from
//! the fresh root. Checking `n` candidates reads the root and at most `min(n, buckets)` buckets.
//!
//! A table published by an older version has no property: its ledger is read once from the
//! summaries of `main`'s snapshots (`sluice.source-files`, `sluice.run-key`), and the first
//! publish writes it out in full.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use iceberg::TableUpdate;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::catalog::LoadedTable;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::refs;
use crate::table_name::TableName;

pub(crate) use crate::summary::{LEDGER_PROPERTY, RUN_KEY_PROPERTY, SOURCE_FILES_PROPERTY};

const FORMAT: u32 = 1;
const HASH: &str = "fnv1a64";
/// A ledger starts with one bucket and doubles them when they hold more entries than this on
/// average, so that a small ledger is one file and a large one is read a small part at a time.
const ENTRIES_PER_BUCKET: u64 = 4096;
/// The most buckets a ledger splits into.
const MAX_BUCKETS: usize = 4096;
/// Bucket files read at once.
const READ_CONCURRENCY: usize = 16;

/// What one publish adds to the ledger: the run's key and the source files it ingested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The run key.
    pub run_key: String,
    /// Source file locations.
    pub files: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Item {
    File(String),
    Key(String),
}

impl Item {
    fn line(&self) -> String {
        let (tag, value) = match self {
            Item::File(v) => ("f", v),
            Item::Key(v) => ("k", v),
        };
        // A JSON string keeps any byte of a location on one line.
        format!(
            "{tag} {}",
            serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
        )
    }

    fn parse(line: &str) -> Option<Item> {
        let (tag, rest) = line.split_once(' ')?;
        let value: String = serde_json::from_str(rest).ok()?;
        match tag {
            "f" => Some(Item::File(value)),
            "k" => Some(Item::Key(value)),
            _ => None,
        }
    }

    fn bucket(&self, buckets: usize) -> usize {
        let line = self.line();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in line.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % buckets as u64) as usize
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Root {
    format: u32,
    hash: String,
    /// Entries in all buckets.
    entries: u64,
    buckets: Vec<Option<String>>,
}

impl Root {
    fn empty() -> Self {
        Root {
            format: FORMAT,
            hash: HASH.to_string(),
            entries: 0,
            buckets: vec![None; 1],
        }
    }
}

/// The ledger of one table as of one version of its metadata.
struct Ledger {
    table: String,
    /// The root file, when the table has one.
    root_location: Option<String>,
    root: Root,
    /// Entries read from `main`'s snapshot summaries (a table without a root file yet).
    legacy: BTreeSet<Item>,
}

/// A bucket could not be read because a newer publish replaced it: reload and read again.
struct Superseded;

impl Lake {
    /// Which of `candidates` (source file locations) `main` of the table has already published,
    /// according to the table's ingest ledger. A table that does not exist has published
    /// nothing.
    pub async fn published_files(
        &self,
        name: &TableName,
        candidates: &[String],
    ) -> Result<HashSet<String>> {
        let items: Vec<Item> = candidates.iter().cloned().map(Item::File).collect();
        Ok(self
            .ledger_lookup(name, &items)
            .await?
            .into_iter()
            .filter_map(|i| match i {
                Item::File(f) => Some(f),
                Item::Key(_) => None,
            })
            .collect())
    }

    /// Whether `main` of the table holds the publish of the run with this key.
    pub async fn run_key_published(&self, name: &TableName, run_key: &str) -> Result<bool> {
        let item = Item::Key(run_key.to_string());
        Ok(!self
            .ledger_lookup(name, std::slice::from_ref(&item))
            .await?
            .is_empty())
    }

    async fn ledger_lookup(&self, name: &TableName, items: &[Item]) -> Result<HashSet<Item>> {
        if items.is_empty() {
            return Ok(HashSet::new());
        }
        // A concurrent publish may delete a bucket version between our reading the root and
        // the bucket: read again from fresh metadata.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let table = match self.load_table(name).await {
                Ok(table) => table,
                Err(Error::TableNotFound { .. }) => return Ok(HashSet::new()),
                Err(e) => return Err(e),
            };
            let ledger = Ledger::open(self, &table).await?;
            match ledger.lookup(self, items).await? {
                Ok(found) => return Ok(found),
                Err(Superseded) if attempts < 5 => continue,
                Err(Superseded) => {
                    return Err(Error::LedgerUnreadable {
                        table: name.to_string(),
                        location: ledger.root_location.unwrap_or_default(),
                        reason: "its files kept changing while being read".to_string(),
                    });
                }
            }
        }
    }
}

/// The files of the table's current ledger: its root and the buckets the root names (none
/// for a table without a ledger file yet).
pub(crate) async fn current_files(lake: &Lake, table: &LoadedTable) -> Result<Vec<String>> {
    let ledger = Ledger::open(lake, table).await?;
    let mut files: Vec<String> = ledger.root.buckets.iter().flatten().cloned().collect();
    files.extend(ledger.root_location);
    Ok(files)
}

impl Ledger {
    /// The ledger `table`'s metadata points at. A concurrent publish replaces the root and
    /// deletes the one it replaced: when the root is missing and the table has moved on since
    /// `table` was loaded, the current ledger is read instead (a commit planned on the stale
    /// metadata fails its requirements anyway and is planned again).
    async fn open(lake: &Lake, table: &LoadedTable) -> Result<Ledger> {
        let mut table = std::borrow::Cow::Borrowed(table);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::open_at(lake, &table).await? {
                Some(ledger) => return Ok(ledger),
                None => {
                    let location = table
                        .metadata()
                        .properties()
                        .get(LEDGER_PROPERTY)
                        .cloned()
                        .unwrap_or_default();
                    let fresh = lake.load_table(table.name()).await?;
                    let moved =
                        fresh.metadata().properties().get(LEDGER_PROPERTY) != Some(&location);
                    if !moved || attempts >= 5 {
                        return Err(Error::LedgerUnreadable {
                            table: table.name().to_string(),
                            location,
                            reason: "the file is missing (was it removed by an orphan-file \
                                     clean-up?)"
                                .to_string(),
                        });
                    }
                    table = std::borrow::Cow::Owned(fresh);
                }
            }
        }
    }

    /// The ledger of `table`'s metadata, or `None` when its root file is missing.
    async fn open_at(lake: &Lake, table: &LoadedTable) -> Result<Option<Ledger>> {
        let md = table.metadata();
        let name = table.name().to_string();
        match md.properties().get(LEDGER_PROPERTY) {
            Some(location) => {
                let Some(bytes) = read_file(lake, &name, location).await? else {
                    return Ok(None);
                };
                let root: Root =
                    serde_json::from_slice(&bytes).map_err(|e| Error::LedgerUnreadable {
                        table: name.clone(),
                        location: location.clone(),
                        reason: format!("it is not a ledger root: {e}"),
                    })?;
                if root.format != FORMAT || root.hash != HASH || root.buckets.is_empty() {
                    return Err(Error::LedgerUnreadable {
                        table: name,
                        location: location.clone(),
                        reason: format!(
                            "format {} with hash {} is not one this version reads",
                            root.format, root.hash
                        ),
                    });
                }
                Ok(Some(Ledger {
                    table: name,
                    root_location: Some(location.clone()),
                    root,
                    legacy: BTreeSet::new(),
                }))
            }
            None => {
                // Migration: the publishes of older versions, from main's snapshot summaries.
                let main = md.snapshot_for_ref(refs::MAIN).map(|s| s.snapshot_id());
                let mut legacy = BTreeSet::new();
                for id in refs::ancestry(md, main) {
                    let Some(snapshot) = md.snapshot_by_id(id) else {
                        break;
                    };
                    let props = &snapshot.summary().additional_properties;
                    if let Some(files) = props.get(SOURCE_FILES_PROPERTY) {
                        legacy.extend(
                            files
                                .lines()
                                .filter(|l| !l.is_empty())
                                .map(|l| Item::File(l.to_string())),
                        );
                    }
                    if let Some(key) = props.get(RUN_KEY_PROPERTY) {
                        legacy.insert(Item::Key(key.clone()));
                    }
                }
                Ok(Some(Ledger {
                    table: name,
                    root_location: None,
                    root: Root::empty(),
                    legacy,
                }))
            }
        }
    }

    /// Reads the buckets `items` fall in and returns the items they hold.
    async fn lookup(
        &self,
        lake: &Lake,
        items: &[Item],
    ) -> Result<std::result::Result<HashSet<Item>, Superseded>> {
        let mut found: HashSet<Item> = items
            .iter()
            .filter(|i| self.legacy.contains(i))
            .cloned()
            .collect();
        let mut by_bucket: BTreeMap<usize, Vec<&Item>> = BTreeMap::new();
        for item in items {
            by_bucket
                .entry(item.bucket(self.root.buckets.len()))
                .or_default()
                .push(item);
        }
        let wanted: Vec<(usize, String)> = by_bucket
            .keys()
            .filter_map(|b| self.root.buckets[*b].clone().map(|loc| (*b, loc)))
            .collect();
        let buckets = self.read_buckets(lake, wanted).await?;
        let Ok(buckets) = buckets else {
            return Ok(Err(Superseded));
        };
        for (bucket, held) in buckets {
            for item in &by_bucket[&bucket] {
                if held.contains(*item) {
                    found.insert((*item).clone());
                }
            }
        }
        Ok(Ok(found))
    }

    async fn read_buckets(
        &self,
        lake: &Lake,
        wanted: Vec<(usize, String)>,
    ) -> Result<std::result::Result<HashMap<usize, HashSet<Item>>, Superseded>> {
        let table = &self.table;
        let read: Vec<(usize, Option<HashSet<Item>>)> = futures::stream::iter(wanted)
            .map(|(bucket, location)| async move {
                let bytes = read_file(lake, table, &location).await?;
                Ok::<_, Error>((bucket, bytes.map(|b| parse_bucket(&b))))
            })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out = HashMap::new();
        for (bucket, items) in read {
            match items {
                Some(items) => {
                    out.insert(bucket, items);
                }
                None => return Ok(Err(Superseded)),
            }
        }
        Ok(Ok(out))
    }
}

fn parse_bucket(bytes: &[u8]) -> HashSet<Item> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(Item::parse)
        .collect()
}

/// The files a publish wrote for its new ledger version, and the ones it replaces.
#[derive(Clone, Debug, Default)]
pub(crate) struct LedgerWrite {
    /// The new root (what the table property is set to).
    pub root: String,
    /// Every file written: the new buckets and the root.
    pub written: Vec<String>,
    /// The files of the previous version that the new one no longer refers to.
    pub superseded: Vec<String>,
}

impl LedgerWrite {
    /// The update that points the table at the new root.
    pub fn update(&self) -> TableUpdate {
        TableUpdate::SetProperties {
            updates: HashMap::from([(LEDGER_PROPERTY.to_string(), self.root.clone())]),
        }
    }
}

/// Writes the next version of `table`'s ledger with `entry` added, without committing it.
pub(crate) async fn write_next(
    lake: &Lake,
    table: &LoadedTable,
    entry: &LedgerEntry,
) -> Result<LedgerWrite> {
    let ledger = Ledger::open(lake, table).await?;
    let new_items: Vec<Item> = ledger
        .legacy
        .iter()
        .cloned()
        .chain(std::iter::once(Item::Key(entry.run_key.clone())))
        .chain(entry.files.iter().cloned().map(Item::File))
        .collect();
    let old_count = ledger.root.buckets.len();
    let projected = ledger.root.entries + new_items.len() as u64;
    let mut count = old_count;
    while projected > ENTRIES_PER_BUCKET * count as u64 && count < MAX_BUCKETS {
        count *= 2;
    }
    let split = count != old_count;
    // A split rehashes every entry; otherwise only the buckets the new entries fall in change.
    let wanted: Vec<(usize, String)> = if split {
        ledger
            .root
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(b, loc)| loc.clone().map(|loc| (b, loc)))
            .collect()
    } else {
        let touched: BTreeSet<usize> = new_items.iter().map(|i| i.bucket(count)).collect();
        touched
            .into_iter()
            .filter_map(|b| ledger.root.buckets[b].clone().map(|loc| (b, loc)))
            .collect()
    };
    let Ok(existing) = ledger.read_buckets(lake, wanted).await? else {
        // Someone replaced a bucket of this version: our commit would conflict anyway.
        return Err(Error::CommitConflict {
            table: ledger.table,
            reason: "the ingest ledger changed while it was being extended".to_string(),
        });
    };
    let mut contents: BTreeMap<usize, BTreeSet<Item>> = BTreeMap::new();
    let mut changed: BTreeSet<usize> = BTreeSet::new();
    for (bucket, items) in existing {
        for item in items {
            let b = if split { item.bucket(count) } else { bucket };
            contents.entry(b).or_default().insert(item);
            if split {
                changed.insert(b);
            }
        }
    }
    let mut inserted = 0u64;
    for item in new_items {
        let b = item.bucket(count);
        if contents.entry(b).or_default().insert(item) {
            changed.insert(b);
            inserted += 1;
        }
    }
    let dir = format!(
        "{}/metadata/sluice-ledger",
        table.metadata().location().trim_end_matches('/')
    );
    let version = uuid::Uuid::now_v7();
    let mut out = LedgerWrite::default();
    let mut root = ledger.root.clone();
    if split {
        out.superseded
            .extend(root.buckets.iter().flatten().cloned());
        root.buckets = vec![None; count];
    }
    let mut writes = Vec::new();
    for bucket in changed {
        let all = &contents[&bucket];
        let mut body = String::new();
        for item in all {
            body.push_str(&item.line());
            body.push('\n');
        }
        let location = format!("{dir}/{version}.b{bucket:04}.ledger");
        if let Some(old) = root.buckets[bucket].replace(location.clone()) {
            out.superseded.push(old);
        }
        writes.push((location, Bytes::from(body)));
    }
    root.entries = if split {
        contents.values().map(|s| s.len() as u64).sum()
    } else {
        ledger.root.entries + inserted
    };
    let root_location = format!("{dir}/{version}.root.json");
    let root_body = serde_json::to_vec_pretty(&root).map_err(|e| Error::LedgerUnreadable {
        table: ledger.table.clone(),
        location: root_location.clone(),
        reason: e.to_string(),
    })?;
    writes.push((root_location.clone(), Bytes::from(root_body)));
    if let Some(old) = &ledger.root_location {
        out.superseded.push(old.clone());
    }
    let written: Vec<String> = futures::stream::iter(writes)
        .map(|(location, body)| async move {
            write_file(lake, &location, body).await?;
            Ok::<_, Error>(location)
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    out.written = written;
    out.root = root_location;
    Ok(out)
}

/// Deletes ledger files, ignoring those already gone. Best effort: a file left behind is only
/// unused bytes, never a wrong answer.
pub(crate) async fn delete_files(lake: &Lake, locations: &[String]) {
    for location in locations {
        if let Ok((store, path)) = lake.stores().resolve(location)
            && let Err(e) = store.delete(&path).await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::debug!(%location, error = %e, "could not delete a superseded ledger file");
        }
    }
}

async fn read_file(lake: &Lake, table: &str, location: &str) -> Result<Option<Bytes>> {
    let (store, path) = lake.stores().resolve(location)?;
    match store.get(&path).await {
        Ok(got) => got
            .bytes()
            .await
            .map(Some)
            .map_err(|source| Error::Storage {
                location: location.to_string(),
                source,
            }),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => {
            tracing::debug!(%table, %location, "reading the ingest ledger failed");
            Err(Error::Storage {
                location: location.to_string(),
                source,
            })
        }
    }
}

async fn write_file(lake: &Lake, location: &str, body: Bytes) -> Result<()> {
    let (store, path) = lake.stores().resolve(location)?;
    store
        .put(&path, PutPayload::from_bytes(body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Storage {
            location: location.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests;

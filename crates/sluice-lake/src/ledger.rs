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

/// Table property pointing at the ledger's root file.
pub const LEDGER_PROPERTY: &str = "sluice.ingest-ledger";
/// Snapshot summary property that older versions used to list the source files a publish
/// ingested (one per line); read only to migrate such tables.
pub const SOURCE_FILES_PROPERTY: &str = "sluice.source-files";
/// Snapshot summary property holding the key of the run that wrote the snapshot.
pub const RUN_KEY_PROPERTY: &str = "sluice.run-key";

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

impl Ledger {
    async fn open(lake: &Lake, table: &LoadedTable) -> Result<Ledger> {
        let md = table.metadata();
        let name = table.name().to_string();
        match md.properties().get(LEDGER_PROPERTY) {
            Some(location) => {
                let bytes = read_file(lake, &name, location).await?.ok_or_else(|| {
                    Error::LedgerUnreadable {
                        table: name.clone(),
                        location: location.clone(),
                        reason: "the file is missing (was it removed by an orphan-file clean-up?)"
                            .to_string(),
                    }
                })?;
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
                Ok(Ledger {
                    table: name,
                    root_location: Some(location.clone()),
                    root,
                    legacy: BTreeSet::new(),
                })
            }
            None => {
                // Migration: the publishes of older versions, from main's snapshot summaries.
                let main = refs::all(md).get(refs::MAIN).map(|r| r.snapshot_id);
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
                Ok(Ledger {
                    table: name,
                    root_location: None,
                    root: Root::empty(),
                    legacy,
                })
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
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use iceberg::TableRequirement;

    use super::*;
    use crate::lake::Plan;
    use crate::{LakeConfig, RefName, RefSpec};

    fn rows(ids: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap()
    }

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Removes every snapshot but main's head, as `expire_snapshots` in any engine does.
    async fn expire_all_but_main(lake: &Lake, name: &TableName) -> usize {
        let (_, removed) = lake
            .commit_loop(name, |table| async move {
                let md = table.metadata();
                let head = md.current_snapshot_id();
                let ids: Vec<i64> = md
                    .snapshots()
                    .map(|s| s.snapshot_id())
                    .filter(|id| Some(*id) != head)
                    .collect();
                Ok(Plan::Commit {
                    requirements: vec![TableRequirement::UuidMatch { uuid: md.uuid() }],
                    updates: vec![TableUpdate::RemoveSnapshots {
                        snapshot_ids: ids.clone(),
                    }],
                    value: ids.len(),
                })
            })
            .await
            .unwrap();
        removed
    }

    #[tokio::test]
    async fn older_tables_migrate_and_the_ledger_survives_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::connect(&LakeConfig::embedded(dir.path()).unwrap())
            .await
            .unwrap();
        let name: TableName = "ns.t".parse().unwrap();
        assert!(
            lake.published_files(&name, &["a".into()])
                .await
                .unwrap()
                .is_empty()
        );
        lake.create_table(&name, &rows(vec![]).schema())
            .await
            .unwrap();
        let main = RefName::main();
        // A publish the way older versions recorded it: in the snapshot summary only.
        lake.append_batches(
            &name,
            &main,
            &[rows(vec![1])],
            HashMap::from([
                (
                    SOURCE_FILES_PROPERTY.to_string(),
                    "file:///a\nfile:///b".to_string(),
                ),
                (RUN_KEY_PROPERTY.to_string(), "k1".to_string()),
            ]),
        )
        .await
        .unwrap();
        let candidates: Vec<String> = ["file:///a", "file:///b", "file:///c", "file:///d"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            lake.published_files(&name, &candidates).await.unwrap(),
            set(&["file:///a", "file:///b"])
        );
        assert!(lake.run_key_published(&name, "k1").await.unwrap());
        assert!(!lake.run_key_published(&name, "k2").await.unwrap());

        // The first publish with a ledger entry writes out the migrated history too.
        let branch = RefName::new("b").unwrap();
        lake.create_branch(&name, &branch, &RefSpec::main())
            .await
            .unwrap();
        lake.append_batches(&name, &branch, &[rows(vec![2])], HashMap::new())
            .await
            .unwrap();
        let entry = LedgerEntry {
            run_key: "k2".into(),
            files: vec!["file:///c".into()],
        };
        lake.fast_forward_and_delete(&name, &main, &branch, Some(&entry))
            .await
            .unwrap();
        let table = lake.load_table(&name).await.unwrap();
        assert!(table.metadata().properties().contains_key(LEDGER_PROPERTY));

        assert_eq!(expire_all_but_main(&lake, &name).await, 1);
        let table = lake.load_table(&name).await.unwrap();
        assert_eq!(table.metadata().snapshots().count(), 1);
        assert_eq!(
            lake.published_files(&name, &candidates).await.unwrap(),
            set(&["file:///a", "file:///b", "file:///c"])
        );
        assert!(lake.run_key_published(&name, "k1").await.unwrap());
        assert!(lake.run_key_published(&name, "k2").await.unwrap());

        // A second publish replaces only the buckets it touches; the old root is deleted.
        lake.create_branch(&name, &branch, &RefSpec::main())
            .await
            .unwrap();
        lake.append_batches(&name, &branch, &[rows(vec![3])], HashMap::new())
            .await
            .unwrap();
        let entry = LedgerEntry {
            run_key: "k3".into(),
            files: vec!["file:///d".into()],
        };
        lake.fast_forward_and_delete(&name, &main, &branch, Some(&entry))
            .await
            .unwrap();
        assert_eq!(
            lake.published_files(&name, &candidates).await.unwrap(),
            set(&["file:///a", "file:///b", "file:///c", "file:///d"])
        );
        let ledger_dir = dir.path().join("warehouse/ns/t/metadata/sluice-ledger");
        let names: Vec<String> = std::fs::read_dir(&ledger_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", ledger_dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".root.json")).count(),
            1,
            "{names:?}"
        );
        // Every bucket file left is one the root refers to.
        let root: Root = serde_json::from_slice(
            &std::fs::read(table_root_path(&lake.load_table(&name).await.unwrap())).unwrap(),
        )
        .unwrap();
        let referenced = root.buckets.iter().flatten().count();
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".ledger")).count(),
            referenced,
            "{names:?}"
        );

        // A large publish splits the buckets; every entry is still found.
        let many: Vec<String> = (0..9000)
            .map(|i| format!("s3://raw/p-{i:05}.parquet"))
            .collect();
        lake.create_branch(&name, &branch, &RefSpec::main())
            .await
            .unwrap();
        lake.append_batches(&name, &branch, &[rows(vec![4])], HashMap::new())
            .await
            .unwrap();
        let entry = LedgerEntry {
            run_key: "k4".into(),
            files: many.clone(),
        };
        lake.fast_forward_and_delete(&name, &main, &branch, Some(&entry))
            .await
            .unwrap();
        let table = lake.load_table(&name).await.unwrap();
        let root: Root =
            serde_json::from_slice(&std::fs::read(table_root_path(&table)).unwrap()).unwrap();
        assert_eq!(root.buckets.len(), 4);
        assert_eq!(
            root.entries,
            4 + 4 + 9000,
            "files a-d, keys k1-k4, the 9,000 new files"
        );
        let mut probe = many[..50].to_vec();
        probe.push("s3://raw/not-there.parquet".into());
        probe.push("file:///a".into());
        let found = lake.published_files(&name, &probe).await.unwrap();
        assert_eq!(found.len(), 51);
        assert!(!found.contains("s3://raw/not-there.parquet"));
        assert!(lake.run_key_published(&name, "k1").await.unwrap());
        let left = std::fs::read_dir(&ledger_dir).unwrap().count();
        assert_eq!(left, 1 + 4, "one root and its four buckets");
    }

    fn table_root_path(table: &LoadedTable) -> String {
        table.metadata().properties()[LEDGER_PROPERTY]
            .trim_start_matches("file://")
            .to_string()
    }

    #[test]
    fn lines_round_trip_any_location() {
        for item in [
            Item::File("s3://b/raw/a b.parquet".into()),
            Item::File("file:///x/\"quoted\"\nnewline.parquet".into()),
            Item::Key("0123abcd".into()),
        ] {
            assert_eq!(Item::parse(&item.line()), Some(item.clone()));
            assert!(!item.line().contains('\n'));
        }
        assert_eq!(Item::parse("x \"y\""), None);
        assert_eq!(Item::parse("garbage"), None);
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        // The bucket of an entry is part of the file format: it must never change.
        assert_eq!(
            Item::Key("k".into()).bucket(64),
            Item::Key("k".into()).bucket(64)
        );
        let used: HashSet<usize> = (0..1000)
            .map(|i| Item::File(format!("s3://raw/events/part-{i:05}.parquet")).bucket(64))
            .collect();
        assert!(used.len() > 56, "only {} of 64 buckets used", used.len());
        assert_ne!(
            Item::File("a".into()).bucket(1 << 20),
            Item::Key("a".into()).bucket(1 << 20)
        );
    }
}

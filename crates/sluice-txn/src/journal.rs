//! The durable journal: ordered, append-only streams of records over an object store.
//!
//! ```text
//! <prefix>/runs/<run-id>/00000000000000000000.rec   one object per record,
//! <prefix>/runs/<run-id>/00000000000000000001.rec   named by its sequence number
//! <prefix>/leases/<lease-name>/…                    lease acquisitions, renewals, releases
//! <prefix>/keys/<key-digest>/…                      the runs started for a transaction key
//! ```
//!
//! Every record is written with a create-if-not-exists put, so two writers can never both
//! own a sequence number and nothing is ever rewritten. Each object holds a SHA-256 of its
//! body followed by the body, so a torn object (a crash or a faulty store cutting a write
//! short) is detected, reported and skipped rather than misread.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Storage of ordered, append-only record streams.
///
/// Contract:
/// - [`append`](Journal::append) is atomic and create-if-not-exists: it either stores the
///   whole record at `(stream, seq)` or, if any record already exists there, stores nothing
///   and returns [`Error::AppendConflict`]. It never overwrites.
/// - An append whose answer was lost (the store applied it but reported an error, or a
///   retry inside the client then found the slot taken) is recognised: if the slot already
///   holds exactly `record`, `append` returns `Ok`. Retrying an append that failed with a
///   storage error with the same bytes is therefore safe and settles the ambiguity. Callers
///   make records unique (a nonce, a run id, a fencing token), so identical bytes mean
///   their own record.
/// - [`read`](Journal::read) returns the records at or after `from_seq` in sequence order,
///   including ones whose content is damaged (decoding detects that).
/// - A record that was acknowledged by `append` is visible to every later `read`.
#[async_trait]
pub trait Journal: Send + Sync + fmt::Debug {
    /// Store `record` at `seq` of `stream` unless that slot is taken.
    async fn append(&self, stream: &str, seq: u64, record: Bytes) -> Result<()>;

    /// The raw records of `stream` with a sequence number `>= from_seq`, in order.
    async fn read(&self, stream: &str, from_seq: u64) -> Result<Vec<(u64, Bytes)>>;

    /// The sequence numbers present in `stream`, ascending, without reading the records.
    async fn sequence_numbers(&self, stream: &str) -> Result<Vec<u64>>;

    /// The names of the streams directly under `parent` (e.g. `runs` gives `runs/<id>`).
    async fn list_streams(&self, parent: &str) -> Result<Vec<String>>;
}

/// A [`Journal`] over any `object_store` backend: a local directory by default, S3 (with
/// conditional writes) when runs on several machines share it.
#[derive(Debug, Clone)]
pub struct ObjectStoreJournal {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl ObjectStoreJournal {
    /// A journal under `prefix` of `store`. The store must support
    /// [`PutMode::Create`] (local files, memory, S3 with conditional writes, GCS, Azure).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<Path>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
        }
    }

    /// A journal in a local directory, created if missing.
    pub fn local_dir(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let fail = |reason: String| Error::JournalDirectory {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self::new(Arc::new(store), Path::default()))
    }

    /// An in-memory journal, for tests and examples.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(object_store::memory::InMemory::new()),
            Path::default(),
        )
    }

    fn stream_dir(&self, stream: &str) -> Path {
        stream
            .split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// The object path of a record (useful for inspecting or damaging it in tests).
    pub fn record_path(&self, stream: &str, seq: u64) -> Path {
        self.stream_dir(stream).join(record_file_name(seq))
    }
}

impl ObjectStoreJournal {
    /// The records of a stream: sequence numbers and object paths, ascending.
    async fn slots(&self, stream: &str) -> Result<Vec<(u64, Path)>> {
        let dir = self.stream_dir(stream);
        let listed: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| Error::Storage {
                operation: "list",
                path: dir.to_string(),
                source,
            })?;
        let depth = dir.parts().count() + 1;
        let mut slots: Vec<(u64, Path)> = listed
            .into_iter()
            .filter_map(|meta| {
                // Only direct children of this stream's directory.
                if meta.location.parts().count() != depth {
                    return None;
                }
                let seq = parse_record_file_name(meta.location.filename()?)?;
                Some((seq, meta.location))
            })
            .collect();
        slots.sort_by_key(|(seq, _)| *seq);
        Ok(slots)
    }
}

fn record_file_name(seq: u64) -> String {
    format!("{seq:020}.rec")
}

fn parse_record_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(".rec")?.parse().ok()
}

#[async_trait]
impl Journal for ObjectStoreJournal {
    async fn append(&self, stream: &str, seq: u64, record: Bytes) -> Result<()> {
        let path = self.record_path(stream, seq);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(record.clone()), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Taken, but possibly by this very record: an attempt whose answer was lost
                // (applied, then an error; the client's retry then met its own object).
                let stored = match self.store.get(&path).await {
                    Ok(got) => got.bytes().await,
                    Err(e) => Err(e),
                }
                .map_err(|source| Error::Storage {
                    operation: "read back",
                    path: path.to_string(),
                    source,
                })?;
                if stored == record {
                    tracing::debug!(%path, "journal record was already stored by an earlier attempt");
                    Ok(())
                } else {
                    Err(Error::AppendConflict {
                        stream: stream.to_string(),
                        seq,
                    })
                }
            }
            Err(source) => Err(Error::Storage {
                operation: "append",
                path: path.to_string(),
                source,
            }),
        }
    }

    async fn read(&self, stream: &str, from_seq: u64) -> Result<Vec<(u64, Bytes)>> {
        let mut records = Vec::new();
        for (seq, path) in self.slots(stream).await? {
            if seq < from_seq {
                continue;
            }
            let bytes = match self.store.get(&path).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            }
            .map_err(|source| Error::Storage {
                operation: "read",
                path: path.to_string(),
                source,
            })?;
            records.push((seq, bytes));
        }
        Ok(records)
    }

    async fn sequence_numbers(&self, stream: &str) -> Result<Vec<u64>> {
        Ok(self
            .slots(stream)
            .await?
            .into_iter()
            .map(|(seq, _)| seq)
            .collect())
    }

    async fn list_streams(&self, parent: &str) -> Result<Vec<String>> {
        let dir = self.stream_dir(parent);
        let listed = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| Error::Storage {
                operation: "list",
                path: dir.to_string(),
                source,
            })?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(|name| format!("{parent}/{name}")))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// One decoded journal record: when and under which fencing token it was written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record<T> {
    /// When the writer wrote it (writer's clock).
    pub at: DateTime<Utc>,
    /// The writer's fencing token (its lease token; 0 when it held none).
    pub token: u64,
    /// The content.
    pub event: T,
}

/// A record that failed its checksum or could not be decoded, and was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Whether it was the last record of the stream (a torn final write).
    pub last: bool,
    /// What is wrong with it.
    pub reason: String,
}

/// A decoded stream.
#[derive(Debug, Clone)]
pub struct StreamContents<T> {
    /// The intact records with their sequence numbers, in order.
    pub records: Vec<(u64, Record<T>)>,
    /// Records that were skipped because they are damaged.
    pub damaged: Vec<DamagedRecord>,
    /// The sequence number the next append must use.
    pub next_seq: u64,
}

pub(crate) fn encode<T: Serialize>(stream: &str, record: &Record<T>) -> Result<Bytes> {
    let body = serde_json::to_vec(record).map_err(|source| Error::Serde {
        stream: stream.to_string(),
        source,
    })?;
    let digest = hex::encode(Sha256::digest(&body));
    let mut framed = Vec::with_capacity(digest.len() + 1 + body.len());
    framed.extend_from_slice(digest.as_bytes());
    framed.push(b'\n');
    framed.extend_from_slice(&body);
    Ok(Bytes::from(framed))
}

fn decode_one<T: DeserializeOwned>(raw: &[u8]) -> std::result::Result<Record<T>, String> {
    let newline = raw
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| format!("no checksum line ({} bytes)", raw.len()))?;
    let (digest, body) = (&raw[..newline], &raw[newline + 1..]);
    let actual = hex::encode(Sha256::digest(body));
    if digest != actual.as_bytes() {
        return Err(format!(
            "checksum mismatch ({} body bytes): the write was cut short or the object was altered",
            body.len()
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("checksum matches but body does not decode: {e}"))
}

pub(crate) fn decode_stream<T: DeserializeOwned>(
    raw: Vec<(u64, Bytes)>,
    from_seq: u64,
) -> StreamContents<T> {
    let last_seq = raw.last().map(|(seq, _)| *seq);
    let next_seq = last_seq.map_or(from_seq, |s| s + 1);
    let mut records = Vec::with_capacity(raw.len());
    let mut damaged = Vec::new();
    for (seq, bytes) in raw {
        match decode_one(&bytes) {
            Ok(record) => records.push((seq, record)),
            Err(reason) => {
                let last = Some(seq) == last_seq;
                tracing::warn!(seq, last, %reason, "skipping damaged journal record");
                damaged.push(DamagedRecord { seq, last, reason });
            }
        }
    }
    StreamContents {
        records,
        damaged,
        next_seq,
    }
}

/// Read and decode a whole stream.
pub(crate) async fn read_stream<T: DeserializeOwned>(
    journal: &dyn Journal,
    stream: &str,
) -> Result<StreamContents<T>> {
    let raw = journal.read(stream, 0).await?;
    Ok(decode_stream(raw, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn append_is_create_only_and_ordered() {
        let journal = ObjectStoreJournal::in_memory();
        let rec = |n: u32| Record {
            at: Utc::now(),
            token: 1,
            event: n,
        };
        for n in [0u32, 1, 2] {
            journal
                .append("s/a", u64::from(n), encode("s/a", &rec(n)).unwrap())
                .await
                .unwrap();
        }
        let err = journal
            .append("s/a", 1, encode("s/a", &rec(9)).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AppendConflict { seq: 1, .. }), "{err}");
        let read: StreamContents<u32> = read_stream(&journal, "s/a").await.unwrap();
        let values: Vec<u32> = read.records.iter().map(|(_, r)| r.event).collect();
        assert_eq!(values, vec![0, 1, 2]);
        assert_eq!(read.next_seq, 3);
        assert_eq!(journal.list_streams("s").await.unwrap(), vec!["s/a"]);
    }

    #[test]
    fn damaged_records_are_reported_not_misread() {
        let rec = Record {
            at: Utc::now(),
            token: 0,
            event: "hello".to_string(),
        };
        let good = encode("s", &rec).unwrap();
        let torn = good.slice(..good.len() - 3);
        let decoded: StreamContents<String> = decode_stream(vec![(0, good.clone()), (1, torn)], 0);
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.damaged.len(), 1);
        assert!(decoded.damaged[0].last);
        assert_eq!(decoded.next_seq, 2);
        let no_newline: StreamContents<String> = decode_stream(vec![(0, good.slice(..10))], 0);
        assert!(no_newline.records.is_empty());
        assert!(!no_newline.damaged[0].reason.is_empty());
    }

    #[tokio::test]
    async fn a_prefix_keeps_the_journal_under_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let journal = ObjectStoreJournal::new(Arc::clone(&store), "pipelines/journal");
        let record = Record {
            at: Utc::now(),
            token: 0,
            event: 1u8,
        };
        journal
            .append("runs/r1", 0, encode("runs/r1", &record).unwrap())
            .await
            .unwrap();
        let stored: Vec<String> = store
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            stored,
            vec!["pipelines/journal/runs/r1/00000000000000000000.rec"]
        );
        assert_eq!(journal.list_streams("runs").await.unwrap(), vec!["runs/r1"]);
        assert_eq!(journal.sequence_numbers("runs/r1").await.unwrap(), vec![0]);
    }
}

//! The event log: every accepted event is written and synced to disk before the server
//! answers `202`, and stays there until a run has handled it. After a crash the server reads
//! the log again and runs what it holds; runs skip files `main` already has, so an event
//! handled twice publishes once.
//!
//! The log is a directory of numbered segment files of JSON lines. One writer thread appends
//! what concurrent requests hand it and syncs once per group (group commit). A segment is
//! deleted once every record in it was handled and a newer segment has taken over.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use serde::{Deserialize, Serialize};
use sluice_wap::SourceFile;
use uuid::Uuid;

/// Records a segment holds before the writer starts the next one.
const SEGMENT_RECORDS: usize = 10_000;

/// One accepted event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The table whose trigger accepted it.
    pub table: String,
    /// The batch it joined (what the `202` named).
    pub batch: Uuid,
    /// The file; `None` for a request to run the table's trigger now (`POST /v1/runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<SourceFile>,
}

struct Append {
    lines: Vec<u8>,
    records: usize,
    reply: tokio::sync::oneshot::Sender<io::Result<u64>>,
}

#[derive(Default)]
struct Segments {
    /// The segment being appended to.
    current: u64,
    /// Records of each segment not yet handled.
    outstanding: HashMap<u64, usize>,
}

/// The event log of a directory.
pub struct EventLog {
    dir: PathBuf,
    sender: Mutex<Option<mpsc::Sender<Append>>>,
    segments: Arc<Mutex<Segments>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.jsonl"))
}

impl EventLog {
    /// Opens (creating) the log in `dir`; returns it with the records a previous process left
    /// unhandled, each with its segment, in the order they were accepted.
    pub fn open(dir: &Path) -> io::Result<(EventLog, Vec<(u64, Record)>)> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                name.to_str()?.strip_suffix(".jsonl")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let mut pending = Vec::new();
        let mut segments = Segments::default();
        for &seq in &seqs {
            let file = File::open(segment_path(dir, seq))?;
            let mut count = 0;
            for line in BufReader::new(file).lines() {
                let line = line?;
                // A line cut short by a crash was never acknowledged: skip it.
                match serde_json::from_str::<Record>(&line) {
                    Ok(record) => {
                        pending.push((seq, record));
                        count += 1;
                    }
                    Err(e) => {
                        tracing::warn!(segment = seq, error = %e, "skipping an unreadable line of the event log")
                    }
                }
            }
            if count == 0 {
                fs::remove_file(segment_path(dir, seq))?;
            } else {
                segments.outstanding.insert(seq, count);
            }
        }
        segments.current = seqs.last().map_or(1, |last| last + 1);
        let file = open_segment(dir, segments.current)?;
        let segments = Arc::new(Mutex::new(segments));
        let (sender, receiver) = mpsc::channel::<Append>();
        let writer = {
            let dir = dir.to_path_buf();
            let segments = segments.clone();
            std::thread::Builder::new()
                .name("sluice-event-log".into())
                .spawn(move || write_loop(&dir, file, &receiver, &segments))?
        };
        Ok((
            EventLog {
                dir: dir.to_path_buf(),
                sender: Mutex::new(Some(sender)),
                segments,
                writer: Mutex::new(Some(writer)),
            },
            pending,
        ))
    }

    /// Appends records and waits until they are on disk; returns their segment.
    pub async fn append(&self, records: &[Record]) -> io::Result<u64> {
        let mut lines = Vec::with_capacity(records.len() * 256);
        for record in records {
            serde_json::to_writer(&mut lines, record)?;
            lines.push(b'\n');
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = lock(&self.sender)
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the event log is closed"))?;
        sender
            .send(Append {
                lines,
                records: records.len(),
                reply,
            })
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the event log is closed"))?;
        answer
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the event log stopped"))?
    }

    /// One record of `segment` was handled: a segment whose records all were, and that is no
    /// longer written to, is deleted.
    pub fn handled(&self, segment: u64) {
        let mut segments = lock(&self.segments);
        let done = match segments.outstanding.get_mut(&segment) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if done && segment != segments.current {
            segments.outstanding.remove(&segment);
            if let Err(e) = fs::remove_file(segment_path(&self.dir, segment)) {
                tracing::warn!(segment, error = %e, "cannot delete a handled segment of the event log");
            }
        }
    }

    /// Records not yet handled, over every segment.
    pub fn outstanding(&self) -> usize {
        lock(&self.segments).outstanding.values().sum()
    }

    /// Stops the writer once what was handed to it is on disk; a last segment whose records
    /// were all handled is deleted.
    pub fn close(&self) {
        lock(&self.sender).take();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
            let segments = lock(&self.segments);
            if segments
                .outstanding
                .get(&segments.current)
                .is_none_or(|n| *n == 0)
            {
                let _ = fs::remove_file(segment_path(&self.dir, segments.current));
            }
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_segment(dir: &Path, seq: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, seq))?;
    // The new name must survive a crash too.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn write_loop(
    dir: &Path,
    mut file: File,
    receiver: &mpsc::Receiver<Append>,
    segments: &Mutex<Segments>,
) {
    let mut written = 0usize;
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < 4096 {
            match receiver.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        // A full segment, or one whose every record was handled, makes way for the next.
        let (current, idle) = {
            let s = lock(segments);
            (
                s.current,
                s.outstanding.get(&s.current).copied().unwrap_or(0) == 0,
            )
        };
        if written >= SEGMENT_RECORDS || (written > 0 && idle) {
            match open_segment(dir, current + 1) {
                Ok(next) => {
                    file = next;
                    written = 0;
                    let mut s = lock(segments);
                    s.current = current + 1;
                    if s.outstanding.get(&current).copied().unwrap_or(0) == 0 {
                        s.outstanding.remove(&current);
                        let _ = fs::remove_file(segment_path(dir, current));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a new segment of the event log")
                }
            }
        }
        let mut result = Ok(());
        for append in &group {
            if let Err(e) = file.write_all(&append.lines) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            result = file.sync_data();
        }
        let seq = {
            let mut s = lock(segments);
            let seq = s.current;
            if result.is_ok() {
                let added: usize = group.iter().map(|a| a.records).sum();
                *s.outstanding.entry(seq).or_default() += added;
                written += added;
            }
            seq
        };
        for append in group {
            let answer = match &result {
                Ok(()) => Ok(seq),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = append.reply.send(answer);
        }
    }
    let _ = file.sync_data();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(table: &str, name: &str) -> Record {
        Record {
            table: table.into(),
            batch: Uuid::nil(),
            file: Some(SourceFile {
                location: format!("s3://raw/{name}.parquet"),
                size: 10,
                etag: None,
                modified: None,
            }),
        }
    }

    fn segment_files(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn accepted_records_come_back_after_a_restart_until_handled() {
        let dir = tempfile::tempdir().unwrap();
        let (log, pending) = EventLog::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        let seg = log
            .append(&[record("a.b", "one"), record("a.b", "two")])
            .await
            .unwrap();
        log.append(&[Record {
            table: "a.c".into(),
            batch: Uuid::nil(),
            file: None,
        }])
        .await
        .unwrap();
        log.handled(seg);
        drop(log);

        // Nothing marks a record handled on disk: the next process sees all three, and runs
        // skip what `main` already holds.
        let (log, pending) = EventLog::open(dir.path()).unwrap();
        assert_eq!(pending.len(), 3);
        assert_eq!(pending[0].1, record("a.b", "one"));
        assert_eq!(pending[2].1.file, None);
        for (seg, _) in &pending {
            log.handled(*seg);
        }
        assert_eq!(log.outstanding(), 0);
        // The old segment is gone; only the (empty) current one is left.
        assert_eq!(segment_files(dir.path()), 1);
        drop(log);
        let (_log, pending) = EventLog::open(dir.path()).unwrap();
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn a_handled_segment_makes_way_and_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path()).unwrap();
        let first = log.append(&[record("a.b", "one")]).await.unwrap();
        log.handled(first);
        let second = log.append(&[record("a.b", "two")]).await.unwrap();
        assert_eq!(second, first + 1);
        assert!(!segment_path(dir.path(), first).exists());
        assert_eq!(log.outstanding(), 1);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path()).unwrap();
        let seg = log.append(&[record("a.b", "one")]).await.unwrap();
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), seg))
            .unwrap();
        f.write_all(b"{\"table\":\"a.b\",\"bat").unwrap();
        let (_log, pending) = EventLog::open(dir.path()).unwrap();
        assert_eq!(pending.len(), 1);
    }
}

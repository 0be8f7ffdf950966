//! The journal survives a torn last write and reports it.

use std::fs::OpenOptions;

use serde_json::json;
use sluice_txn::{HookState, ObjectStoreJournal, State};

use crate::common::{Recorder, engine_in, label, steps_with_hooks};

fn run_records(dir: &std::path::Path, run_id: uuid::Uuid) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("runs").join(run_id.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rec"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_torn_last_record_is_reported_skipped_and_repaired_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let outcome = engine
        .transaction("k")
        .run(async |tx| {
            tx.stage_compensation("record", label("undo")).await?;
            tx.stage_commit_action("record", label("publish")).await?;
            Ok(json!({"ok": true}))
        })
        .await
        .unwrap();
    let run_id = outcome.run_id();
    let files = run_records(dir.path(), run_id);
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    // Cut the final record (run_finished) in half, as a crash mid-write would.
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let report = engine.show_run(run_id).await.unwrap();
    assert_eq!(report.damaged_records.len(), 1);
    let damaged = &report.damaged_records[0];
    assert!(damaged.last);
    assert_eq!(damaged.seq, files.len() as u64 - 1);
    assert!(
        damaged.reason.contains("checksum") || damaged.reason.contains("no checksum line"),
        "{}",
        damaged.reason
    );
    // Everything before the torn record is read as written: the commit was decided and
    // its action done, but the end of the run is unknown.
    assert_eq!(
        report.commit_actions().next().unwrap().state,
        HookState::Done
    );
    assert_eq!(report.state, State::Crashed);

    let recovery = engine.recover().await.unwrap();
    assert_eq!(recovery.damaged, vec![(run_id, 1)]);
    assert_eq!(recovery.recovered.len(), 1);
    assert_eq!(recovery.recovered[0].state, State::Completed);
    assert_eq!(recovery.recovered[0].hooks_completed, 0);
    assert_eq!(
        rec.entries(),
        vec!["publish"],
        "nothing ran twice, nothing was undone"
    );
    let report = engine.show_run(run_id).await.unwrap();
    assert_eq!(report.state, State::Completed);
    assert_eq!(report.output, Some(json!({"ok": true})));
    assert_eq!(report.damaged_records.len(), 1, "the damage stays reported");
    assert!(
        !report.damaged_records[0].last,
        "later records follow it now"
    );
}

#[tokio::test]
async fn an_empty_or_garbage_last_record_is_never_misread() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let outcome = engine
        .transaction("k")
        .run(async |tx| {
            tx.stage_compensation("record", label("undo")).await?;
            Err(sluice_txn::StepError::permanent("fail"))
        })
        .await
        .unwrap();
    let files = run_records(dir.path(), outcome.run_id());
    // Replace the final record by a different, well-formed-looking body with a wrong digest.
    let original = std::fs::read(files.last().unwrap()).unwrap();
    let newline = original.iter().position(|b| *b == b'\n').unwrap();
    let mut forged = original[..=newline].to_vec();
    forged.extend_from_slice(br#"{"at":"2020-01-01T00:00:00Z","token":1,"event":{"type":"run_finished","state":"completed","error":null,"output":null,"committed_run":null}}"#);
    std::fs::write(files.last().unwrap(), forged).unwrap();
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_ne!(
        report.state,
        State::Completed,
        "a record failing its checksum must not be used"
    );
    assert_eq!(report.damaged_records.len(), 1);

    // A zero-length record too.
    std::fs::write(files.last().unwrap(), b"").unwrap();
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_eq!(report.damaged_records.len(), 1);
    assert!(report.damaged_records[0].reason.contains("0 bytes"));
    // The journal stays usable: recovery appends after the damaged slot.
    engine.recover().await.unwrap();
    assert_eq!(
        engine.show_run(outcome.run_id()).await.unwrap().state,
        State::RolledBack
    );
    assert_eq!(rec.entries(), vec!["undo"]);
    let journal = ObjectStoreJournal::local_dir(dir.path()).unwrap();
    assert!(
        journal
            .record_path("runs/x", 3)
            .to_string()
            .ends_with("runs/x/00000000000000000003.rec")
    );
}

/// Stores every third append and then reports a storage error anyway, as a store does when
/// the response to a successful write is lost.
#[derive(Debug)]
struct LostAcknowledgements {
    inner: ObjectStoreJournal,
    appends: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl sluice_txn::Journal for LostAcknowledgements {
    async fn append(&self, stream: &str, seq: u64, record: bytes::Bytes) -> sluice_txn::Result<()> {
        self.inner.append(stream, seq, record).await?;
        let n = self
            .appends
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n % 3 == 2 {
            return Err(sluice_txn::Error::Storage {
                operation: "append",
                path: format!("{stream}/{seq}"),
                source: object_store::Error::Generic {
                    store: "test",
                    source: "connection reset after the write".into(),
                },
            });
        }
        Ok(())
    }
    async fn read(
        &self,
        stream: &str,
        from_seq: u64,
    ) -> sluice_txn::Result<Vec<(u64, bytes::Bytes)>> {
        self.inner.read(stream, from_seq).await
    }
    async fn sequence_numbers(&self, stream: &str) -> sluice_txn::Result<Vec<u64>> {
        self.inner.sequence_numbers(stream).await
    }
    async fn list_streams(&self, parent: &str) -> sluice_txn::Result<Vec<String>> {
        self.inner.list_streams(parent).await
    }
}

#[tokio::test]
async fn lost_write_acknowledgements_neither_fail_nor_duplicate_records() {
    let rec = Recorder::default();
    let journal = LostAcknowledgements {
        inner: ObjectStoreJournal::in_memory(),
        appends: Default::default(),
    };
    let engine = sluice_txn::Engine::builder(journal)
        .registry(rec.registry())
        .clock(std::sync::Arc::new(sluice_txn::ManualClock::new(
            chrono::Utc::now(),
        )))
        .build();
    let outcome = engine
        .transaction("k")
        .run(async |tx| {
            steps_with_hooks(&tx, 0..3).await?;
            Ok(json!("ok"))
        })
        .await
        .unwrap();
    assert_eq!(outcome.state(), State::Completed);
    assert_eq!(rec.entries(), vec!["commit-0", "commit-1", "commit-2"]);
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_eq!(report.steps.len(), 3);
    assert_eq!(
        report.hooks.len(),
        6,
        "each hook journalled once: {:?}",
        report.hooks
    );
    assert!(
        report
            .commit_actions()
            .all(|h| h.state == HookState::Done && h.attempts == 1)
    );
    // The key is not left leased: the same key is skipped at once, not refused.
    let again = engine
        .transaction("k")
        .run(async |_| Ok(json!("no")))
        .await
        .unwrap();
    assert_eq!(again.state(), State::Skipped);
}

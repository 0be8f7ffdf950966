//! Serializable isolation: exclusive, expiring, fenced leases on keys.

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sluice_txn::{
    Engine, Error, HookState, Isolation, LeaseConflict, ManualClock, ObjectStoreJournal, State,
};
use tokio::sync::oneshot;

use crate::child::{read_lines, spawn};
use crate::common::{Recorder, builder_in, engine_in, label};

/// Start two children racing for one key; returns their ids in the order they got in.
fn race(conflict: &str) -> (tempfile::TempDir, Vec<(String, String)>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel::<(String, String)>();
    let mut stdins = std::collections::HashMap::new();
    let mut children = Vec::new();
    for name in ["A", "B"] {
        let mut child = spawn(
            "race",
            dir.path(),
            &[("SLUICE_TXN_NAME", name), ("SLUICE_TXN_CONFLICT", conflict)],
        );
        stdins.insert(name.to_string(), child.stdin.take().unwrap());
        let out = BufReader::new(child.stdout.take().unwrap());
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(msg) = line.split("@@ ").nth(1) {
                    let _ = tx.send((name.to_string(), msg.to_string()));
                }
            }
        });
        children.push(child);
    }
    drop(tx);
    let mut events = Vec::new();
    let mut results = 0;
    while results < 2 {
        let (name, msg) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("children stopped talking");
        if msg == "pause inside" {
            events.push((name.clone(), "inside".to_string()));
            // Hold the key for a moment so that the other child meets it held.
            let other = if name == "A" { "B" } else { "A" };
            if conflict == "fail"
                && !events
                    .iter()
                    .any(|(n, m)| n == other && m.starts_with("result"))
            {
                // In fail mode the other child must give up on its own while we hold.
                let (n, m) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
                assert_eq!((n.as_str(), m.as_str()), (other, "result lease-held"));
                events.push((n, m));
                results += 1;
            } else {
                std::thread::sleep(Duration::from_millis(200));
                while let Ok((n, m)) = rx.try_recv() {
                    assert_ne!(m, "pause inside", "{n} entered while {name} was inside");
                    events.push((n, m));
                }
            }
            writeln!(stdins.get_mut(&name).unwrap(), "go").unwrap();
        } else if msg.starts_with("result") {
            events.push((name, msg));
            results += 1;
        }
    }
    for mut c in children {
        c.wait().unwrap();
    }
    let log = read_lines(&dir.path().join("race.log"));
    (dir, events, log)
}

#[test]
fn two_processes_racing_in_fail_mode_one_runs_the_other_fails_clearly() {
    let (_dir, events, log) = race("fail");
    let winner = &events.iter().find(|(_, m)| m == "inside").unwrap().0;
    let loser = if winner == "A" { "B" } else { "A" };
    assert!(
        events.contains(&(loser.to_string(), "result lease-held".to_string())),
        "{events:?}"
    );
    assert!(
        events.contains(&(winner.clone(), "result rolled_back".to_string())),
        "{events:?}"
    );
    assert_eq!(
        log,
        vec![format!("enter {winner}"), format!("exit {winner}")]
    );
}

#[test]
fn two_processes_racing_in_wait_mode_run_one_after_the_other() {
    let (_dir, events, log) = race("wait");
    let order: Vec<&String> = events
        .iter()
        .filter(|(_, m)| m == "inside")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(order.len(), 2, "{events:?}");
    let (first, second) = (order[0], order[1]);
    assert_ne!(first, second);
    // Never interleaved: the second entered only after the first left.
    assert_eq!(
        log,
        vec![
            format!("enter {first}"),
            format!("exit {first}"),
            format!("enter {second}"),
            format!("exit {second}"),
        ]
    );
    assert!(events.contains(&(first.clone(), "result rolled_back".to_string())));
    assert!(events.contains(&(second.clone(), "result completed".to_string())));
}

#[tokio::test]
async fn a_live_lease_excludes_and_read_committed_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let first = engine_in(dir.path(), &rec);
    let second = engine_in(dir.path(), &rec);
    let (inside_tx, inside_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        first
            .transaction("k")
            .run(async |_| {
                inside_tx.send(()).unwrap();
                go_rx.await.unwrap();
                Ok(json!("first"))
            })
            .await
    });
    inside_rx.await.unwrap();
    let err = second
        .transaction("k")
        .run(async |_| Ok(json!("second")))
        .await
        .unwrap_err();
    match &err {
        Error::LeaseHeld { key, token, .. } => {
            assert_eq!(key, "k");
            assert_eq!(*token, 1);
            let text = err.to_string();
            assert!(text.contains("holds it until"), "{text}");
            // The library names neither Rust items nor commands of a particular front end.
            assert!(
                !text.contains("LeaseConflict") && !text.contains("sluice "),
                "{text}"
            );
        }
        other => panic!("expected LeaseHeld, got {other}"),
    }
    // Read-committed takes no lease on the key, so it is not excluded.
    let rc = second
        .transaction("k")
        .isolation(Isolation::ReadCommitted)
        .run(async |_| Ok(json!("read committed")))
        .await
        .unwrap();
    assert_eq!(rc.state(), State::Completed);
    go_tx.send(()).unwrap();
    let first_outcome = holder.await.unwrap().unwrap();
    assert_eq!(first_outcome.state(), State::Completed);
    // Waiting with a short limit on a held key times out with a clear error.
    let clock = ManualClock::new(Utc::now());
    let waiter = builder_in(dir.path())
        .clock(Arc::new(clock.clone()))
        .lease_poll_interval(Duration::from_secs(1))
        .build();
    let lease_holder = engine_in(dir.path(), &rec);
    let (inside_tx, inside_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let held = tokio::spawn(async move {
        lease_holder
            .transaction("k2")
            .run(async |_| {
                inside_tx.send(()).unwrap();
                go_rx.await.unwrap();
                Ok(json!(1))
            })
            .await
    });
    inside_rx.await.unwrap();
    let err = waiter
        .transaction("k2")
        .on_conflict(LeaseConflict::Wait {
            max_wait: Duration::from_secs(5),
        })
        .run(async |_| Ok(json!(2)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LeaseWaitTimeout {
                waited_ms: 5000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(clock.sleeps().len(), 5);
    go_tx.send(()).unwrap();
    held.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_stale_holder_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let start = Utc::now();
    // The stale holder's clock stands still, so its renewals never extend past start + 10 s.
    let stale_clock = ManualClock::new(start);
    let stale = builder_in(dir.path())
        .registry(rec.registry())
        .clock(Arc::new(stale_clock))
        .lease_ttl(Duration::from_secs(10))
        .build();
    let taker = builder_in(dir.path())
        .registry(rec.registry())
        .clock(Arc::new(ManualClock::new(
            start + chrono::Duration::seconds(30),
        )))
        .lease_ttl(Duration::from_secs(10))
        .build();

    let (inside_tx, inside_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let stale_run = tokio::spawn(async move {
        stale
            .transaction("k")
            .run(async |tx| {
                tx.stage_compensation("record", label("undo-stale")).await?;
                inside_tx.send(tx.run_id()).unwrap();
                go_rx.await.unwrap();
                // The process wakes up after its lease expired and tries to go on.
                tx.stage_commit_action("record", label("commit-stale"))
                    .await?;
                Ok(json!("stale"))
            })
            .await
    });
    let stale_id = inside_rx.await.unwrap();

    let taken = taker
        .transaction("k")
        .run(async |tx| {
            tx.stage_commit_action("record", label("commit-taker"))
                .await?;
            Ok(json!("taker"))
        })
        .await
        .unwrap();
    assert_eq!(taken.state(), State::Completed);
    // Taking over rolled the stale run back first.
    assert_eq!(rec.entries(), vec!["undo-stale", "commit-taker"]);

    go_tx.send(()).unwrap();
    let err = stale_run.await.unwrap().unwrap_err();
    match err {
        Error::Fenced {
            ours,
            token,
            run_id,
            ..
        } => {
            assert_eq!((ours, token, run_id), (1, 2, stale_id));
        }
        other => panic!("the stale holder must be fenced, got {other}"),
    }
    assert_eq!(
        rec.entries(),
        vec!["undo-stale", "commit-taker"],
        "the stale commit never ran"
    );
    let report = taker.show_run(stale_id).await.unwrap();
    assert_eq!(report.state, State::RolledBack);
    assert!(report.fenced_by.is_some());
    assert_eq!(
        report.commit_actions().count(),
        0,
        "the stale write was rejected"
    );
    assert_eq!(
        report.compensations().next().unwrap().state,
        HookState::Done
    );
}

#[test]
fn concurrent_recoveries_run_each_compensation_once() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let path = dir.path().to_path_buf();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A run whose process "dies": its future is dropped mid-way, its lease not renewed.
    let open = rt.block_on(async {
        let engine = engine_in(&path, &rec);
        let (id_tx, mut id_rx) = tokio::sync::mpsc::unbounded_channel();
        let dropped = tokio::time::timeout(
            Duration::from_millis(100),
            engine.transaction("k").run(async |tx| {
                for i in 0..5 {
                    tx.stage_compensation("record", label(&format!("undo-{i}")))
                        .await?;
                }
                id_tx.send(tx.run_id()).unwrap();
                std::future::pending::<()>().await;
                Ok(json!(null))
            }),
        )
        .await;
        assert!(dropped.is_err());
        id_rx.recv().await.unwrap()
    });
    drop(rt);
    let later = Utc::now() + chrono::Duration::hours(1);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (path, rec, barrier) = (path.clone(), rec.clone(), barrier.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let engine = Engine::builder(ObjectStoreJournal::local_dir(&path).unwrap())
                    .registry(rec.registry())
                    .clock(Arc::new(ManualClock::new(later)))
                    .build();
                barrier.wait();
                rt.block_on(engine.recover()).unwrap()
            })
        })
        .collect();
    let reports: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let recovered: usize = reports.iter().map(|r| r.recovered.len()).sum();
    // One recovers; the other either met its lease or found nothing left to do.
    assert_eq!(recovered, 1, "{reports:?}");
    assert_eq!(
        rec.entries(),
        vec!["undo-4", "undo-3", "undo-2", "undo-1", "undo-0"]
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(engine_in(&path, &rec).show_run(open)).unwrap();
    assert_eq!(report.state, State::RolledBack);
    assert!(report.compensations().all(|h| h.attempts == 1));
}

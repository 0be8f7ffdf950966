//! Crash safety: a child process is SIGKILLed at every pause point (every journal record,
//! every step boundary, mid-step, mid-compensation, mid-commit-action), then `recover()`
//! runs in this process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sluice_txn::{Engine, HookState, ManualClock, ObjectStoreJournal, RunFilter, State};

use crate::child::{crash_registry, marker, no_pause, read_lines, spawn};
use crate::common::fast_hooks;

/// Run the child, answering pauses, and SIGKILL it at pause number `kill_at`.
/// Returns the label it was killed at, or None if it ran to the end, plus the number of
/// pauses seen.
fn run_child(dir: &Path, scenario: &str, kill_at: usize) -> (Option<String>, usize, Vec<String>) {
    let mut child = spawn("crash", dir, &[("SLUICE_TXN_SCENARIO", scenario)]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = 0;
    let mut results = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(label) = line.split("@@ pause ").nth(1) {
            if seen == kill_at {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                return (Some(label.to_string()), seen + 1, results);
            }
            seen += 1;
            writeln!(stdin, "go").unwrap();
            stdin.flush().unwrap();
        } else if let Some(result) = line.split("@@ result ").nth(1) {
            results.push(result.to_string());
        }
    }
    child.wait().unwrap();
    (None, seen, results)
}

fn recovering_engine(dir: &Path) -> Engine {
    // An hour later: the killed child's lease has long expired.
    let clock = ManualClock::new(Utc::now() + chrono::Duration::hours(1));
    Engine::builder(ObjectStoreJournal::local_dir(dir.join("journal")).unwrap())
        .registry(crash_registry(dir, no_pause()))
        .hook_retry(fast_hooks())
        .clock(Arc::new(clock))
        .lease_ttl(Duration::from_secs(60))
        .build()
}

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| *l == wanted).count()
}

async fn check_after_recovery(dir: &Path, scenario: &str, killed_at: Option<&str>) {
    let context = format!("scenario {scenario}, killed at {killed_at:?}");
    let engine = recovering_engine(dir);
    let report = engine.recover().await.unwrap();
    assert!(report.still_running.is_empty(), "{context}");
    let runs = engine.list_runs(&RunFilter::all()).await.unwrap();
    assert!(runs.len() <= 1, "{context}");
    let effects = read_lines(&dir.join("effects.log"));
    let markers: Vec<bool> = (0..3).map(|i| marker(dir, i).exists()).collect();
    let published = dir.join("published").exists();

    let Some(run) = runs.first() else {
        // Killed before the run was journalled: nothing can have happened.
        assert_eq!(markers, vec![false; 3], "{context}");
        assert!(effects.is_empty(), "{context}");
        return;
    };
    let shown = engine.show_run(run.run_id).await.unwrap();
    match run.state {
        State::Completed => {
            assert_eq!(scenario, "commit", "{context}");
            assert_eq!(markers, vec![true; 3], "committed markers stay: {context}");
            assert!(published, "{context}");
            assert_eq!(count(&effects, "effect publish"), 1, "{context}");
            assert!(
                !effects.iter().any(|l| l.contains("undo")),
                "{context}: {effects:?}"
            );
            assert!(
                shown.commit_actions().all(|h| h.state == HookState::Done),
                "{context}"
            );
        }
        State::RolledBack => {
            assert_eq!(
                markers,
                vec![false; 3],
                "uncommitted markers are gone: {context}"
            );
            assert!(!published, "{context}");
            assert!(
                shown.compensations().all(|h| h.state == HookState::Done),
                "{context}"
            );
            for i in 0..3 {
                let killed_inside = killed_at.is_some_and(|l| {
                    l.ends_with(&format!("undo-before {i}"))
                        || l.ends_with(&format!("undo-after {i}"))
                });
                let invocations = count(&effects, &format!("invoke undo {i}"));
                assert!(
                    invocations <= 1 + usize::from(killed_inside),
                    "compensation {i} ran {invocations} times: {context}: {effects:?}"
                );
                assert!(
                    count(&effects, &format!("effect undo {i}")) <= 1,
                    "{context}"
                );
            }
        }
        other => {
            panic!("after recovery the run must be Completed or RolledBack, not {other}: {context}")
        }
    }

    // Recovery is idempotent: a second pass does nothing.
    let again = engine.recover().await.unwrap();
    assert!(again.recovered.is_empty(), "{context}");
    assert_eq!(read_lines(&dir.join("effects.log")), effects, "{context}");
}

async fn crash_at_every_point(scenario: &str) -> usize {
    // First, a run without a kill: counts the pause points, and must end as planned.
    let dir = tempfile::tempdir().unwrap();
    let (killed, points, results) = run_child(dir.path(), scenario, usize::MAX);
    assert!(killed.is_none());
    let expected = if scenario == "commit" {
        "completed"
    } else {
        "rolled_back"
    };
    assert_eq!(results, vec![expected.to_string()]);
    check_after_recovery(dir.path(), scenario, None).await;
    assert!(points > 20, "only {points} pause points");

    let mut labels = Vec::new();
    for kill_at in 0..points {
        let dir = tempfile::tempdir().unwrap();
        let (killed, _, results) = run_child(dir.path(), scenario, kill_at);
        let label = killed.unwrap_or_else(|| panic!("child finished before pause {kill_at}"));
        assert!(results.is_empty());
        check_after_recovery(dir.path(), scenario, Some(&label)).await;
        labels.push(label);
    }
    // The kills covered step boundaries, mid-step points and every journal record type.
    for wanted in [
        "step-0-start",
        "step-1-staged",
        "step-2-effect",
        "record 0 run_started",
        "commit_decided",
        "hook_staged",
        "step_completed",
    ] {
        if scenario == "fail" && wanted == "commit_decided" {
            continue;
        }
        assert!(
            labels.iter().any(|l| l.contains(wanted)),
            "no kill at {wanted}: {labels:?}"
        );
    }
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_point_of_a_committing_run_then_recover() {
    let points = crash_at_every_point("commit").await;
    assert!(points >= 25, "{points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_point_of_a_rolling_back_run_then_recover() {
    let points = crash_at_every_point("fail").await;
    assert!(points >= 30, "{points}");
}

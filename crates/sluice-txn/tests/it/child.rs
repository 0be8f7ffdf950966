//! A child process for the crash and isolation tests: this test binary, re-executed with
//! `SLUICE_TXN_CHILD` set, runs only [`child_process`]. It announces pause points on stdout
//! (`@@ pause <label>`) and waits for a line on stdin before going on, so the parent can
//! SIGKILL it at an exact point.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_txn::{Engine, Error, LeaseConflict, ObjectStoreJournal, Outcome, Registry, StepError};

use crate::common::fast_hooks;

pub type Pause = Arc<dyn Fn(&str) + Send + Sync>;

pub fn stdin_pause() -> Pause {
    Arc::new(|label: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "\n@@ pause {label}").unwrap();
        out.flush().unwrap();
        drop(out);
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).unwrap();
    })
}

pub fn no_pause() -> Pause {
    Arc::new(|_: &str| {})
}

pub fn append_line(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn marker(dir: &Path, i: u64) -> PathBuf {
    dir.join(format!("marker-{i}"))
}

/// The handlers of the crash scenario: `delete-marker {i}` and `publish`. Each logs every
/// invocation and, separately, each time it actually changed something.
pub fn crash_registry(dir: &Path, pause: Pause) -> Registry {
    let (d1, p1) = (dir.to_path_buf(), pause.clone());
    let (d2, p2) = (dir.to_path_buf(), pause);
    Registry::new()
        .with_handler("delete-marker", move |payload| {
            let (dir, pause) = (d1.clone(), p1.clone());
            async move {
                let i = payload["i"]
                    .as_u64()
                    .ok_or_else(|| StepError::permanent("no i"))?;
                let log = dir.join("effects.log");
                append_line(&log, &format!("invoke undo {i}"));
                pause(&format!("undo-before {i}"));
                if std::fs::remove_file(marker(&dir, i)).is_ok() {
                    append_line(&log, &format!("effect undo {i}"));
                }
                pause(&format!("undo-after {i}"));
                Ok(())
            }
        })
        .with_handler("publish", move |_| {
            let (dir, pause) = (d2.clone(), p2.clone());
            async move {
                let log = dir.join("effects.log");
                append_line(&log, "invoke publish");
                pause("publish-before");
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dir.join("published"));
                if created.is_ok() {
                    append_line(&log, "effect publish");
                }
                pause("publish-after");
                Ok(())
            }
        })
}

/// Spawn this test binary as a child in `mode`.
pub fn spawn(mode: &str, dir: &Path, extra: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "child::child_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SLUICE_TXN_CHILD", mode)
    .env("SLUICE_TXN_DIR", dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// The entry point of child processes; does nothing unless run by [`spawn`].
#[test]
#[ignore = "entry point of the child processes spawned by the crash and isolation tests"]
fn child_process() {
    let Ok(mode) = std::env::var("SLUICE_TXN_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("SLUICE_TXN_DIR").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = match mode.as_str() {
        "crash" => rt.block_on(crash_child(&dir)),
        "race" => rt.block_on(race_child(&dir)),
        other => panic!("unknown child mode {other}"),
    };
    let line = match result {
        Ok(outcome) => format!("@@ result {}", outcome.state()),
        Err(Error::LeaseHeld { .. }) => "@@ result lease-held".to_string(),
        Err(e) => format!("@@ result error {e}"),
    };
    println!("\n{line}");
}

async fn crash_child(dir: &Path) -> sluice_txn::Result<Outcome> {
    let fail = std::env::var("SLUICE_TXN_SCENARIO").unwrap() == "fail";
    let pause = stdin_pause();
    let progress_pause = pause.clone();
    let engine = Engine::builder(ObjectStoreJournal::local_dir(dir.join("journal"))?)
        .registry(crash_registry(dir, pause.clone()))
        .hook_retry(fast_hooks())
        .on_progress(move |p| progress_pause(&format!("record {} {}", p.seq, p.kind)))
        .build();
    engine
        .transaction("crash-key")
        .run(async |tx| {
            for i in 0..3u64 {
                tx.step(format!("step-{i}"))
                    .run(async |step| {
                        pause(&format!("step-{i}-start"));
                        step.stage_compensation("delete-marker", json!({ "i": i }))
                            .await?;
                        pause(&format!("step-{i}-staged"));
                        std::fs::write(marker(dir, i), b"x").unwrap();
                        pause(&format!("step-{i}-effect"));
                        Ok(())
                    })
                    .await?;
            }
            tx.stage_commit_action("publish", json!({})).await?;
            if fail {
                Err(StepError::permanent("audit failed"))
            } else {
                Ok(json!({ "markers": 3 }))
            }
        })
        .await
}

async fn race_child(dir: &Path) -> sluice_txn::Result<Outcome> {
    let name = std::env::var("SLUICE_TXN_NAME").unwrap();
    let on_conflict = match std::env::var("SLUICE_TXN_CONFLICT").unwrap().as_str() {
        "wait" => LeaseConflict::Wait {
            max_wait: Duration::from_secs(60),
        },
        _ => LeaseConflict::Fail,
    };
    let pause = stdin_pause();
    let engine = Engine::builder(ObjectStoreJournal::local_dir(dir.join("journal"))?)
        .lease_poll_interval(Duration::from_millis(10))
        .build();
    let log = dir.join("race.log");
    engine
        .transaction("shared-key")
        .on_conflict(on_conflict)
        .run(async |tx| {
            tx.step("exclusive")
                .run(async |_| {
                    append_line(&log, &format!("enter {name}"));
                    pause("inside");
                    append_line(&log, &format!("exit {name}"));
                    Ok(())
                })
                .await?;
            // The first runner fails, so that a waiting second one must really run.
            let first = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join("first-ran"))
                .is_ok();
            if first {
                Err(StepError::permanent("first runner fails on purpose"))
            } else {
                Ok(json!(name))
            }
        })
        .await
}

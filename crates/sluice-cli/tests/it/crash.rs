//! SIGKILL a run at known points, then `sluice recover` and a plain re-run: every file's rows are
//! in main exactly once or not at all, and no audit branch is left.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Starts a run of `source` that stops at `point` and waits there.
fn pause_at(env: &Env, point: &str, source: &str) -> Child {
    let mut child = env
        .cmd()
        .env("SLUICE_PAUSE_AT", point)
        .args(run_args(source, &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reached = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(&format!("paused at {point}")) {
            reached = true;
            break;
        }
    }
    assert!(reached, "the run never reached {point}");
    child
}

pub fn kill_at(env: &Env, point: &str, source: &str) {
    let mut child = pause_at(env, point, source);
    // SIGKILL: no destructor, no rollback hook runs in the process.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Gives runs a ten-minute lease, so that nothing below can succeed by waiting for it.
fn long_lease(env: &Env) {
    let path = env.path("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(config.contains("lease_ttl_secs = 2"));
    std::fs::write(
        &path,
        config.replace("lease_ttl_secs = 2", "lease_ttl_secs = 600"),
    )
    .unwrap();
}

#[test]
fn a_run_killed_on_this_machine_is_taken_over_without_waiting_for_its_lease() {
    for follow_up in ["recover", "run"] {
        let env = Env::new();
        long_lease(&env);
        write(&env.path("seed/s.parquet"), &events(0..10, false));
        assert_eq!(env.run("seed").0, 0);
        write(&env.path("raw/a.parquet"), &events(100..150, false));
        kill_at(&env, "audit", "raw");
        let started = Instant::now();

        if follow_up == "recover" {
            // Not `--wait`: the killed run's process is gone, so its lease binds no one.
            let (code, recovered) = env.json(&["recover"]);
            assert_eq!(code, 0, "{recovered}");
            assert_eq!(
                recovered["recovered"].as_array().unwrap().len(),
                1,
                "{recovered}"
            );
            assert!(
                recovered["still_running"].as_array().unwrap().is_empty(),
                "{recovered}"
            );
            assert!(
                env.branches().iter().all(|b| !b.starts_with("sluice/")),
                "{:?}",
                env.branches()
            );
        }
        // The next run of the same files takes the key over (and rolls the dead run back
        // first when `recover` did not).
        let (code, rerun) = env.run("raw");
        assert_eq!(code, 0, "after {follow_up}: {rerun}");
        assert_eq!(rerun["status"], "published", "after {follow_up}");
        assert_eq!(
            env.event_ids("ns.events"),
            (0..10).chain(100..150).collect::<Vec<_>>(),
            "after {follow_up}"
        );
        assert!(
            env.branches().iter().all(|b| !b.starts_with("sluice/")),
            "after {follow_up}: {:?}",
            env.branches()
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "took {:?}, as if waiting for the lease",
            started.elapsed()
        );
        let (code, again) = env.json(&["recover"]);
        assert_eq!(code, 0);
        assert!(again["recovered"].as_array().unwrap().is_empty(), "{again}");
        assert!(again["still_running"].as_array().unwrap().is_empty());
    }
}

#[test]
fn a_run_of_files_another_live_run_holds_is_refused_in_cli_words() {
    let env = Env::new();
    long_lease(&env);
    write(&env.path("raw/a.parquet"), &events(0..20, false));
    let mut live = pause_at(&env, "audit", "raw");

    let out = env.sluice(&run_args("raw", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another process") && stderr.contains("sluice recover --wait"),
        "{stderr}"
    );
    let error = &stderr[stderr.find("error:").expect("an error line")..];
    assert!(
        !error.contains("LeaseConflict") && !error.contains("::"),
        "no Rust item in: {error}"
    );
    // A live run is not taken over: recover leaves it alone.
    let (code, recovered) = env.json(&["recover"]);
    assert_eq!(code, 0);
    assert_eq!(
        recovered["still_running"].as_array().unwrap().len(),
        1,
        "{recovered}"
    );
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn killed_runs_are_recovered_and_files_land_exactly_once() {
    for (i, point) in ["write", "after-write", "audit", "publish", "after-publish"]
        .into_iter()
        .enumerate()
    {
        let env = Env::new();
        write(&env.path("seed/s.parquet"), &events(0..10, false));
        assert_eq!(env.run("seed").0, 0);
        let start = 1000 * (i as i64 + 1);
        write(
            &env.path("raw/a.parquet"),
            &events(start..start + 50, false),
        );
        write(
            &env.path("raw/b.parquet"),
            &events(start + 50..start + 80, false),
        );
        kill_at(&env, point, "raw");

        let (code, recovered) = env.json(&["recover", "--wait"]);
        assert_eq!(code, 0, "{point}: {recovered}");
        assert_eq!(
            recovered["recovered"].as_array().unwrap().len(),
            1,
            "{point}: {recovered}"
        );
        assert!(recovered["still_running"].as_array().unwrap().is_empty());
        assert!(
            env.branches().iter().all(|b| !b.starts_with("sluice/")),
            "{point}: {:?}",
            env.branches()
        );
        let ids = env.event_ids("ns.events");
        let published_before_rerun = ids.len() > 10;
        if point == "after-publish" {
            assert!(
                published_before_rerun,
                "the publish commit landed before the kill"
            );
        } else {
            assert_eq!(
                ids,
                (0..10).collect::<Vec<_>>(),
                "{point}: nothing may be published"
            );
        }
        // A plain re-run ingests whatever is not in main yet, exactly once.
        let (code, rerun) = env.run("raw");
        assert_eq!(code, 0, "{point}: {rerun}");
        let expected_status = if published_before_rerun {
            "nothing_to_do"
        } else {
            "published"
        };
        assert_eq!(rerun["status"], expected_status, "{point}");
        let expected: Vec<i64> = (0..10).chain(start..start + 80).collect();
        assert_eq!(env.event_ids("ns.events"), expected, "{point}");
        let (code, again) = env.json(&["recover"]);
        assert_eq!(code, 0);
        assert!(
            again["recovered"].as_array().unwrap().is_empty(),
            "{point}: recovery is idempotent"
        );
    }
}

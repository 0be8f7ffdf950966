//! SIGKILL a run at known points, then `sluice recover` and a plain re-run: every file's rows are
//! in main exactly once or not at all, and no audit branch is left.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::*;

pub fn kill_at(env: &Env, point: &str, source: &str) {
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
    // SIGKILL: no destructor, no rollback hook runs in the process.
    child.kill().unwrap();
    child.wait().unwrap();
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

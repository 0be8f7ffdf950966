//! Scale-out: several processes sharing one source and one table through `--shard K/N`.

use std::process::Stdio;

use crate::common::*;

#[test]
fn four_shards_of_one_backfill_ingest_every_file_exactly_once() {
    let env = Env::new();
    for k in 0..40i64 {
        write(
            &env.path(&format!("raw/{k:03}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
    }
    // Four workers at once, as a Kubernetes Indexed Job of four would run them; the table does
    // not exist yet, so they also race to create it.
    let workers: Vec<_> = (0..4)
        .map(|k| {
            env.cmd()
                .args([
                    "--json",
                    "backfill",
                    "--source",
                    "raw",
                    "--table",
                    "ns.events",
                    "--batch-files",
                    "3",
                    "--shard",
                    &format!("{k}/4"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ingested = Vec::new();
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let files: usize = reports["batches"]
            .as_array()
            .unwrap_or_else(|| panic!("{reports}"))
            .iter()
            .map(|r| r["files"].as_array().map_or(0, Vec::len))
            .sum();
        ingested.push(files);
    }
    assert_eq!(ingested.iter().sum::<usize>(), 40, "{ingested:?}");
    assert!(
        ingested.iter().all(|&n| n > 0),
        "every shard had work: {ingested:?}"
    );
    assert_eq!(env.event_ids("ns.events"), (0..400).collect::<Vec<_>>());
    // A shard run again finds its files published; a new file goes to exactly one shard.
    write(&env.path("raw/900.parquet"), &events(900..910, false));
    let mut taken = 0;
    for k in 0..4 {
        let (code, reports) = env.json(&[
            "backfill",
            "--source",
            "raw",
            "--table",
            "ns.events",
            "--shard",
            &format!("{k}/4"),
        ]);
        assert_eq!(code, 0, "{reports}");
        taken += reports["batches"]
            .as_array()
            .unwrap_or_else(|| panic!("{reports}"))
            .iter()
            .map(|r| r["files"].as_array().map_or(0, Vec::len))
            .sum::<usize>();
    }
    assert_eq!(taken, 1);
    assert_eq!(env.event_ids("ns.events").len(), 410);
    let out = env.sluice(&[
        "run",
        "--source",
        "raw",
        "--table",
        "ns.events",
        "--shard",
        "4/4",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 to 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sluice --json run --source SOURCE --table TABLE`, started.
fn start_run(env: &Env, source: &str, table: &str) -> std::process::Child {
    env.cmd()
        .args(["--json", "run", "--source", source, "--table", table])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The exit code and the report of a run that may have lost its batch to another worker.
fn finish_any(child: std::process::Child) -> (i32, serde_json::Value) {
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

fn finish(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{report}");
    report
}

#[test]
fn four_workers_with_their_own_sources_publish_into_one_table_exactly_once() {
    let env = Env::new();
    // Seed the table so the workers race on commits, not on its creation.
    write(&env.path("seed/s.parquet"), &events(10_000..10_010, false));
    assert_eq!(env.run("seed").0, 0);
    for round in 0..4i64 {
        for worker in 0..4i64 {
            let first = (round * 4 + worker) * 10;
            write(
                &env.path(&format!("in/{worker}/{round}.parquet")),
                &events(first..first + 10, false),
            );
        }
        // Each round: the four workers at once, each over its own prefix.
        let runs: Vec<_> = (0..4)
            .map(|w| start_run(&env, &format!("in/{w}"), "ns.events"))
            .collect();
        for run in runs {
            let report = finish(run);
            assert_eq!(report["status"], "published", "{report}");
            assert_eq!(report["files"].as_array().unwrap().len(), 1, "{report}");
        }
    }
    let mut expected: Vec<i64> = (0..160).collect();
    expected.extend(10_000..10_010);
    assert_eq!(env.event_ids("ns.events"), expected);
}

#[test]
fn two_workers_given_the_same_source_run_each_batch_once() {
    let env = Env::new();
    write(&env.path("seed/s.parquet"), &events(10_000..10_010, false));
    assert_eq!(env.run("seed").0, 0);
    for round in 0..4i64 {
        write(
            &env.path(&format!("raw/{round}.parquet")),
            &events(round * 10..round * 10 + 10, false),
        );
        let a = start_run(&env, "raw", "ns.events");
        let b = start_run(&env, "raw", "ns.events");
        let reports = [finish_any(a), finish_any(b)];
        let published = reports
            .iter()
            .filter(|(_, r)| r["status"] == "published")
            .count();
        // The batch's key is one lease: one worker runs it; the other finds it already
        // published (nothing to do), or still running elsewhere (exit 1, saying so).
        assert_eq!(published, 1, "{reports:?}");
        for (code, report) in &reports {
            match report["status"].as_str() {
                Some("published" | "nothing_to_do") => assert_eq!(*code, 0, "{report}"),
                _ => {
                    assert_eq!(*code, 1, "{report}");
                    assert!(
                        report["error"]
                            .as_str()
                            .is_some_and(|e| e.contains("is being run by another process")),
                        "{report}"
                    );
                }
            }
        }
    }
    let mut expected: Vec<i64> = (0..40).collect();
    expected.extend(10_000..10_010);
    assert_eq!(env.event_ids("ns.events"), expected);
}

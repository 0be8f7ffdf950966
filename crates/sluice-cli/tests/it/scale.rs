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

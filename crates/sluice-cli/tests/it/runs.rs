use crate::common::*;

#[test]
fn demo_runs_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("SLUICE_CONFIG")
        .args(["--json", "demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["runs"][1]["status"], "audit_failed");
    assert_eq!(v["rows_in_main"], 15000);
    assert_eq!(v["rows_at_tag_day_1"], 10000);
    assert!(dir.path().join("sluice-demo/.sluice/catalog.db").exists());
}

#[test]
fn incremental_runs_ingest_only_new_files() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..100, false));
    write(&env.path("raw/b.parquet"), &events(100..250, false));
    let (code, first) = env.run("raw");
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["status"], "published");
    assert_eq!(first["rows"], 250);
    assert_eq!(first["files"].as_array().unwrap().len(), 2);
    assert_eq!(
        first["commits"], 2,
        "a run on an existing main makes two commits: write and publish"
    );
    assert_eq!(first["commit_conflicts"], 0, "nobody else writes");
    assert!(first["snapshot_id"].is_i64());
    assert_eq!(first["checks"].as_array().unwrap().len(), 2);
    assert!(first["durations"]["write_ms"].is_u64());

    write(&env.path("raw/c.parquet"), &events(250..300, false));
    let (code, second) = env.run("raw");
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["rows"], 50);
    let files = second["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0].as_str().unwrap().ends_with("raw/c.parquet"));
    assert_eq!(second["commits"], 2);

    let (code, third) = env.run("raw");
    assert_eq!(code, 0);
    assert_eq!(third["status"], "nothing_to_do");
    assert_eq!(env.event_ids("ns.events"), (0..300).collect::<Vec<_>>());
    assert!(
        env.branches().iter().all(|b| !b.starts_with("sluice/")),
        "{:?}",
        env.branches()
    );
    let (_, log) = env.json(&["log", "ns.events", "--limit", "1"]);
    assert_eq!(log[0]["total_records"], 300);
    assert!(log[0]["summary"]["sluice.run-key"].is_string());
}

#[test]
fn register_mode_publishes_the_files_in_place() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..40, false));
    let (code, report) = env.json(&run_args("raw", &["--mode", "register"]));
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["mode"], "register");
    assert_eq!(env.event_ids("ns.events"), (0..40).collect::<Vec<_>>());
}

#[test]
fn a_failed_audit_exits_3_and_leaves_main_and_no_branch() {
    let env = Env::new();
    write(&env.path("good/a.parquet"), &events(0..10, false));
    assert_eq!(env.run("good").0, 0);
    let before = env.main_log_len();
    write(&env.path("bad/b.parquet"), &events(10..40, true));
    let (code, report) = env.run("bad");
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["status"], "audit_failed");
    let failing: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["name"], "not_null(user_id)");
    assert!(!failing[0]["samples"].as_array().unwrap().is_empty());
    assert_eq!(env.main_log_len(), before, "main did not move");
    assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
    assert!(
        env.branches().iter().all(|b| !b.starts_with("sluice/")),
        "{:?}",
        env.branches()
    );
    // Humans get the failing check and its rows.
    let out = env.sluice(&run_args("bad", &[]));
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("audit failed")
            && text.contains("not_null(user_id)")
            && text.contains("user_id=null"),
        "{text}"
    );
}

#[test]
fn two_concurrent_runs_on_disjoint_sources_both_publish() {
    let env = Env::new();
    write(&env.path("seed/s.parquet"), &events(0..5, false));
    assert_eq!(env.run("seed").0, 0);
    write(&env.path("left/a.parquet"), &events(100..200, false));
    write(&env.path("right/b.parquet"), &events(200..300, false));
    let spawn = |src: &str| {
        env.cmd()
            .args(run_args(src, &["--json"]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("left"), spawn("right"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let expected: Vec<i64> = (0..5).chain(100..300).collect();
    assert_eq!(env.event_ids("ns.events"), expected);
    assert!(env.branches().iter().all(|b| !b.starts_with("sluice/")));
}

#[test]
fn time_travel_reads_what_main_held_then() {
    let env = Env::new();
    write(&env.path("d1/a.parquet"), &events(0..10, false));
    assert_eq!(env.run("d1").0, 0);
    let (code, _) = env.json(&["tag", "create", "ns.events", "v1", "--at", "main"]);
    assert_eq!(code, 0);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(std::time::Duration::from_millis(50));
    write(&env.path("d2/b.parquet"), &events(10..30, false));
    assert_eq!(env.run("d2").0, 0);
    assert_eq!(env.event_ids("ns.events@v1"), (0..10).collect::<Vec<_>>());
    assert_eq!(
        env.event_ids(&format!("ns.events@main@{between}")),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(env.event_ids("ns.events"), (0..30).collect::<Vec<_>>());
    // Rollback to the tag, through the CLI.
    let (code, _) = env.json(&["rollback", "ns.events", "--to", "v1"]);
    assert_eq!(code, 0);
    assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
}

#[test]
fn backfill_runs_batches_and_resumes() {
    let env = Env::new();
    for i in 0..5i64 {
        write(
            &env.path(&format!("archive/part-{i}.parquet")),
            &events(i * 10..i * 10 + 10, false),
        );
    }
    let (code, out) = env.json(&[
        "backfill",
        "--source",
        "archive",
        "--table",
        "ns.events",
        "--checks",
        "checks.toml",
        "--batch-files",
        "2",
    ]);
    assert_eq!(code, 0, "{out}");
    let batches = out["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(|b| b["status"] == "published"));
    assert_eq!(batches[0]["files"].as_array().unwrap().len(), 2);
    assert_eq!(env.event_ids("ns.events"), (0..50).collect::<Vec<_>>());
    let (_, log) = env.json(&["log", "ns.events"]);
    // Three publishes on top of the empty base snapshot: each batch is its own commit.
    assert_eq!(log.as_array().unwrap().len(), 4);
    write(&env.path("archive/part-5.parquet"), &events(50..60, false));
    let (code, again) = env.json(&[
        "backfill",
        "--source",
        "archive",
        "--table",
        "ns.events",
        "--batch-files",
        "2",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        again["batches"].as_array().unwrap().len(),
        1,
        "resumes with only the new file"
    );
    assert_eq!(env.event_ids("ns.events"), (0..60).collect::<Vec<_>>());
}

#[test]
fn watch_publishes_new_files_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    write(&env.path("inbox/a.parquet"), &events(0..10, false));
    let mut child = env
        .cmd()
        .args([
            "--json",
            "watch",
            "--source",
            "inbox",
            "--table",
            "ns.events",
            "--checks",
            "checks.toml",
            "--every",
            "200ms",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reports = BufReader::new(child.stdout.take().unwrap());
    let mut published = 0;
    // One compact JSON document per line, one per run; count the published ones.
    while published < 2 {
        let mut line = String::new();
        assert!(
            reports.read_line(&mut line).unwrap() > 0,
            "watch ended early"
        );
        let report: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(report["status"], "published", "{report}");
        published += 1;
        if published == 1 {
            write(&env.path("inbox/b.parquet"), &events(10..25, false));
        }
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a stopped watch exits cleanly");
    assert_eq!(env.event_ids("ns.events"), (0..25).collect::<Vec<_>>());
}

#[test]
fn backfill_by_time_window_makes_one_run_per_window() {
    let env = Env::new();
    let day = std::time::Duration::from_secs(86_400);
    let base = std::time::SystemTime::now() - 10 * day;
    for (name, ids, age_days) in [("x", 0..5, 0u32), ("y", 5..10, 0), ("z", 10..15, 2)] {
        let path = env.path(&format!("old/{name}.parquet"));
        write(&path, &events(ids, false));
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(base + day * age_days + std::time::Duration::from_secs(60))
            .unwrap();
    }
    let (code, out) = env.json(&[
        "backfill",
        "--source",
        "old",
        "--table",
        "ns.events",
        "--window",
        "1d",
    ]);
    assert_eq!(code, 0, "{out}");
    let batches = out["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "{out}");
    assert_eq!(batches[0]["files"].as_array().unwrap().len(), 2);
    assert_eq!(batches[1]["files"].as_array().unwrap().len(), 1);
    assert_eq!(env.event_ids("ns.events"), (0..15).collect::<Vec<_>>());
}

/// Starts a run that waits before publishing until `other` has published; returns its report.
fn run_that_waits_before_publishing(
    env: &Env,
    source: &str,
    other: &str,
) -> (i32, serde_json::Value, serde_json::Value) {
    use std::io::{BufRead, BufReader};
    let mut slow = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "publish")
        .env("SLUICE_PAUSE_SECS", "2")
        .args(run_args(source, &["--json"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(slow.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused at publish") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the run never reached publish"
        );
    }
    // main moves while the first run waits.
    let (code, fast) = env.run(other);
    assert_eq!(code, 0, "{fast}");
    let out = slow.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), report, fast)
}

/// A seeded table; a run over `slow/` paused before publishing while a run over `fast/`
/// publishes: the first is rebased, and every row of both is in `main` once, no branch left.
/// Returns the rebased run's report.
fn rebase_over_a_moved_main(env: &Env) -> serde_json::Value {
    write(&env.path("seed/s.parquet"), &events(0..5, false));
    assert_eq!(env.run("seed").0, 0);
    write(&env.path("slow/a.parquet"), &events(100..120, false));
    write(&env.path("fast/b.parquet"), &events(200..210, false));
    let (code, report, _) = run_that_waits_before_publishing(env, "slow", "fast");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["publish"], "rebase", "{report}");
    let expected: Vec<i64> = (0..5).chain(100..120).chain(200..210).collect();
    assert_eq!(env.event_ids("ns.events"), expected);
    assert!(env.branches().iter().all(|b| !b.starts_with("sluice/")));
    report
}

#[test]
fn a_run_whose_checks_see_only_its_rows_is_rebased_in_one_commit() {
    let env = Env::new();
    // No table-scoped, history or sql check: the audit of the new rows holds on any main.
    std::fs::write(
        env.path("checks.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"event_id\"]\n",
    )
    .unwrap();
    let report = rebase_over_a_moved_main(&env);
    assert_eq!(
        report["commits"], 2,
        "the branch's write, then rebase + publish + ledger + branch removal at once: {report}"
    );
    assert_eq!(report["checks"][0]["status"], "pass", "{report}");
    // The ledger took the run in the same commit: it is not run again.
    let (code, again) = env.run("slow");
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["status"], "nothing_to_do", "{again}");
}

#[test]
fn a_run_whose_main_moved_is_rebased_and_audited_again() {
    let env = Env::new();
    let report = rebase_over_a_moved_main(&env);
    assert_eq!(
        report["commits"], 3,
        "write, the rebase staged for the second audit, the publish: {report}"
    );
    let expected: Vec<i64> = (0..5).chain(100..120).chain(200..210).collect();

    // The other run now publishes ids that the waiting run also carries: re-auditing against
    // the new main catches the duplicates, and nothing of the waiting run is published.
    write(&env.path("slow2/c.parquet"), &events(300..320, false));
    write(&env.path("fast2/d.parquet"), &events(310..312, false));
    let (code, report, _) = run_that_waits_before_publishing(&env, "slow2", "fast2");
    assert_ne!(code, 0, "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("unique(event_id)"),
        "{report}"
    );
    let mut expected = expected;
    expected.extend(310..312);
    assert_eq!(env.event_ids("ns.events"), expected);
    assert!(env.branches().iter().all(|b| !b.starts_with("sluice/")));
}

#[test]
fn copy_mode_keeps_eligible_files_as_they_are_and_still_audits_them() {
    let env = Env::new();
    // Two large zstd files qualify; a small uncompressed one is re-encoded.
    write_zstd(
        &env.path("raw/a.parquet"),
        &random_events(0..100_000, false),
    );
    write_zstd(
        &env.path("raw/b.parquet"),
        &random_events(100_000..200_000, false),
    );
    write(&env.path("raw/c.parquet"), &events(200_000..200_100, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["copied_as_is"], 2, "{report}");
    assert_eq!(report["rows"], 200_100);
    assert_eq!(env.event_ids("ns.events"), (0..200_100).collect::<Vec<_>>());
    // The warehouse holds its own copies: three data files, none of them the source's.
    let data_files: Vec<_> = walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("/data/") && p.extension().is_some_and(|e| e == "parquet")
        })
        .collect();
    assert_eq!(data_files.len(), 3, "{data_files:?}");

    // The audit decodes the copied files: nulls are found, with samples, and nothing lands.
    write_zstd(
        &env.path("bad/d.parquet"),
        &random_events(300_000..400_000, true),
    );
    let (code, report) = env.run("bad");
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["copied_as_is"], 1, "{report}");
    let failing: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failing.len(), 1, "{report}");
    assert_eq!(failing[0]["name"], "not_null(user_id)");
    assert!(!failing[0]["samples"].as_array().unwrap().is_empty());
    assert_eq!(env.event_ids("ns.events").len(), 200_100);

    // --rewrite re-encodes even a file that qualifies.
    write_zstd(
        &env.path("more/e.parquet"),
        &random_events(500_000..600_000, false),
    );
    let (code, report) = env.json(&run_args("more", &["--rewrite"]));
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["copied_as_is"], 0, "{report}");
    assert_eq!(env.event_ids("ns.events").len(), 300_100);
}

#[test]
fn step_durations_are_each_steps_own() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..10, false));
    // Held for a second inside the audit step: that second belongs to audit alone.
    let out = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "audit")
        .env("SLUICE_PAUSE_SECS", "1")
        .args(run_args("raw", &["--json"]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ms = |step: &str| report["durations"][format!("{step}_ms")].as_u64().unwrap();
    assert!(ms("audit") >= 1000, "{report}");
    let steps = ms("list") + ms("write") + ms("audit") + ms("publish");
    assert!(
        steps <= ms("total") + 4,
        "the steps ({steps} ms) cannot take longer than the run: {report}"
    );
}

#[test]
fn a_reader_that_goes_away_does_not_crash_the_command() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..100, false));
    assert_eq!(env.run("raw").0, 0);
    // `sluice scan ... | head -0`: the reading end is closed before sluice writes.
    let mut child = env
        .cmd()
        .args(["scan", "ns.events", "--limit", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

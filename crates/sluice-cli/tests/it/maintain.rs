//! `sluice maintain`: compaction, manifest rewrite, snapshot expiry and orphan removal
//! through the binary, readers' view of every ref before and after, runs in flight, and
//! maintenance killed at each step.

use crate::common::*;

#[test]
fn expiry_keeps_main_and_exactly_once_and_other_engines_read_the_same() {
    let env = Env::new();
    for k in 0..4i64 {
        write(
            &env.path(&format!("raw/{k}.parquet")),
            &events(k * 100..k * 100 + 100, false),
        );
        let (code, report) = env.run("raw");
        assert_eq!(code, 0, "{report}");
    }
    let ids_before = env.event_ids("ns.events");
    assert_eq!(ids_before.len(), 400);
    let log_before = env.main_log_len();

    let (code, dry) = env.json(&[
        "maintain",
        "ns.events",
        "--only",
        "expire-snapshots",
        "--older-than",
        "0s",
        "--retain-last",
        "1",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{dry}");
    let would = dry["expire_snapshots"]["snapshots"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(would, log_before - 1, "{dry}");
    assert_eq!(env.main_log_len(), log_before, "a dry run changes nothing");

    let (code, done) = env.json(&[
        "maintain",
        "ns.events",
        "--only",
        "expire-snapshots",
        "--older-than",
        "0s",
        "--retain-last",
        "1",
    ]);
    assert_eq!(code, 0, "{done}");
    let expired = &done["expire_snapshots"];
    assert_eq!(expired["snapshots"].as_array().unwrap().len(), would);
    assert!(expired["manifest_lists"].as_u64() > Some(0), "{done}");
    assert_eq!(expired["data_files"], 0, "every data file is still in main");
    assert_eq!(env.main_log_len(), 1);
    assert_eq!(env.event_ids("ns.events"), ids_before);
    // Exactly-once survives: the same files are not ingested again.
    let (code, again) = env.run("raw");
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["status"], "nothing_to_do", "{again}");
    // A new file still publishes on top of the expired history.
    write(&env.path("raw/9.parquet"), &events(900..950, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.event_ids("ns.events").len(), 450);

    if python_available("maintain read back", "pyiceberg.catalog.sql, pyarrow") {
        let read = with_pyiceberg(
            &env,
            r#"
t = catalog.load_table("ns.events")
print(t.scan().to_arrow().num_rows, len(t.metadata.snapshots))
"#,
        );
        assert_eq!(read, "450 2");
    }

    let out = env.sluice(&["maintain", "ns.events", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("ns.events: expire-snapshots: would expire 0 snapshot(s)"),
        "the default keeps 5 days: {text}"
    );
    assert!(
        text.contains("ns.events: rewrite-data-files: would compact 5 file(s)"),
        "{text}"
    );
}

#[test]
fn maintenance_defaults_come_from_sluice_toml() {
    let env = Env::new();
    for k in 0..3i64 {
        write(
            &env.path(&format!("raw/{k}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
        assert_eq!(env.run("raw").0, 0);
    }
    let path = env.path("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{config}\n[maintenance]\nolder_than = \"0s\"\nretain_last = 2\n"),
    )
    .unwrap();
    let (code, done) = env.json(&["maintain", "ns.events"]);
    assert_eq!(code, 0, "{done}");
    assert_eq!(env.main_log_len(), 2, "{done}");
    assert_eq!(env.event_ids("ns.events").len(), 30);
    // A flag overrides the file.
    let (code, done) = env.json(&["maintain", "ns.events", "--retain-last", "1"]);
    assert_eq!(code, 0, "{done}");
    assert_eq!(env.main_log_len(), 1, "{done}");
}

#[test]
fn watch_maintains_its_table_between_runs() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let path = env.path("sluice.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{config}\n[maintenance]\nolder_than = \"0s\"\nretain_last = 1\n"),
    )
    .unwrap();
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
            "--every",
            "100ms",
            "--maintain-every",
            "100ms",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reports = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    assert!(
        reports.read_line(&mut line).unwrap() > 0,
        "watch ended early"
    );
    write(&env.path("inbox/b.parquet"), &events(10..20, false));
    line.clear();
    assert!(
        reports.read_line(&mut line).unwrap() > 0,
        "watch ended early"
    );
    let report: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(report["status"], "published", "{report}");
    // The next maintenance leaves main's head only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.main_log_len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(env.main_log_len(), 1, "only main's head is left");
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Stdout holds run documents only; the maintenance says so on stderr.
    assert!(
        said.contains("maintained ns.events: expire-snapshots: expired"),
        "{said}"
    );
    assert_eq!(env.event_ids("ns.events"), (0..20).collect::<Vec<_>>());
}

#[test]
fn watch_of_a_job_maintains_each_of_its_tables() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    std::fs::write(
        env.path("wap.toml"),
        "[[table]]\nname = \"shop.orders\"\nsource = \"raw/orders\"\n\n[[table]]\nname = \"shop.lines\"\nsource = \"raw/lines\"\n",
    )
    .unwrap();
    for k in 0..3i64 {
        write(
            &env.path(&format!("raw/orders/{k}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
        write(
            &env.path(&format!("raw/lines/{k}.parquet")),
            &events(100 + k * 10..110 + k * 10, false),
        );
        // One job run per pair of files: three small files in each table.
        let (code, report) = env.json(&["run", "--job", "wap.toml"]);
        assert_eq!(code, 0, "{report}");
    }
    let mut child = env
        .cmd()
        .args([
            "watch",
            "--job",
            "wap.toml",
            "--every",
            "100ms",
            "--maintain-every",
            "100ms",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut compacted = std::collections::BTreeSet::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        for table in ["shop.orders", "shop.lines"] {
            if line.contains(&format!(
                "maintained {table}: rewrite-data-files: 3 file(s)"
            )) {
                compacted.insert(table);
            }
        }
        if compacted.len() == 2 {
            break;
        }
    }
    assert_eq!(compacted.len(), 2, "both tables compacted");
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Read to the end: the watch says what it does until it exits.
    stderr.for_each(drop);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(env.event_ids("shop.orders"), (0..30).collect::<Vec<_>>());
    assert_eq!(env.event_ids("shop.lines"), (100..130).collect::<Vec<_>>());
    let log = env.json(&["log", "shop.lines"]).1;
    assert_eq!(log[0]["summary"]["total-data-files"], "1", "{}", log[0]);
}

/// Main's live data files and manifests, and every ref's rows, as pyiceberg reads them.
const READ_REFS: &str = r#"
t = catalog.load_table("ns.events")
snap = t.current_snapshot()
manifests = snap.manifests(t.io)
files = sum(1 for m in manifests for e in m.fetch_manifest_entry(t.io) if e.status != 2)
def ids(ref):
    s = t.scan(snapshot_id=t.metadata.refs[ref].snapshot_id, selected_fields=("event_id",))
    return sorted(s.to_arrow()["event_id"].to_pylist())
print(files, len(manifests), len(ids("main")), len(ids("v1")), len(ids("dev")), sum(ids("main")))
"#;

#[test]
fn maintain_compacts_small_files_and_every_ref_reads_the_same() {
    let env = Env::new();
    for k in 0..40i64 {
        write(
            &env.path(&format!("raw/{k:03}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
    }
    // One run (and one commit, one small file) per source file.
    let (code, done) = env.json(&[
        "backfill",
        "--source",
        "raw",
        "--table",
        "ns.events",
        "--batch-files",
        "1",
    ]);
    assert_eq!(code, 0, "{done}");
    let (code, _) = env.json(&["tag", "create", "ns.events", "v1"]);
    assert_eq!(code, 0);
    let log = env.json(&["log", "ns.events"]).1;
    let middle = log[20]["snapshot_id"].as_i64().unwrap().to_string();
    let (code, _) = env.json(&["branch", "create", "ns.events", "dev", "--from", &middle]);
    assert_eq!(code, 0);
    let refs_before: Vec<Vec<i64>> = ["ns.events", "ns.events@v1", "ns.events@dev"]
        .iter()
        .map(|r| env.event_ids(r))
        .collect();
    assert_eq!(refs_before[0].len(), 400);
    let older = log[30]["snapshot_id"].as_i64().unwrap();
    let at_older = env.event_ids(&format!("ns.events@{older}"));
    assert_eq!(at_older.len(), 100);
    assert_eq!(refs_before[2].len(), 200);
    let pyiceberg = python_available("maintain compaction", "pyiceberg.catalog.sql, pyarrow");
    if pyiceberg {
        let read = with_pyiceberg(&env, READ_REFS);
        let fields: Vec<i64> = read.split(' ').map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields[0], 40, "one file per run: {read}");
        assert!(fields[1] > 3, "merged on append, but not into one: {read}");
        assert_eq!(
            fields[2..],
            [400, 400, 200, (0..400).sum::<i64>()],
            "{read}"
        );
    }

    let (code, report) = env.json(&["maintain", "ns.events", "--checks", "checks.toml"]);
    assert_eq!(code, 0, "{report}");
    let compaction = &report["rewrite_data_files"];
    assert_eq!(compaction["compacted"]["files_rewritten"], 40, "{report}");
    assert_eq!(compaction["compacted"]["files_written"], 1, "{report}");
    assert_eq!(compaction["compacted"]["rows"], 400, "{report}");
    assert_eq!(compaction["published"], "fast_forward", "{report}");
    assert_eq!(compaction["audit"]["checks"].as_array().unwrap().len(), 2);
    assert!(report["run_id"].is_string(), "{report}");
    // Nothing expires within 5 days, and every file is young: the history is intact.
    assert_eq!(
        report["expire_snapshots"]["snapshots"],
        serde_json::json!([])
    );
    assert_eq!(report["remove_orphan_files"]["deleted"], 0, "{report}");

    let refs_after: Vec<Vec<i64>> = ["ns.events", "ns.events@v1", "ns.events@dev"]
        .iter()
        .map(|r| env.event_ids(r))
        .collect();
    assert_eq!(refs_after, refs_before, "every ref reads the same rows");
    assert_eq!(
        env.event_ids(&format!("ns.events@{older}")),
        at_older,
        "time travel to a kept snapshot reads what it read"
    );
    let log = env.json(&["log", "ns.events"]).1;
    assert_eq!(log[0]["operation"], "replace", "{}", log[0]);
    assert_eq!(log[0]["summary"]["total-data-files"], "1", "{}", log[0]);
    assert_eq!(log[0]["summary"]["total-records"], "400", "{}", log[0]);
    // The maintenance is a run like any other.
    let (code, runs) = env.json(&["runs", "list"]);
    assert_eq!(code, 0);
    assert_eq!(runs[0]["name"], "maintain ns.events", "{}", runs[0]);
    assert_eq!(runs[0]["state"], "completed", "{}", runs[0]);
    // Runs after a compaction publish on top of it, exactly once.
    write(&env.path("raw/900.parquet"), &events(900..910, false));
    let (code, again) = env.run("raw");
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["files"].as_array().map(Vec::len).unwrap_or(1), 1);
    assert_eq!(env.event_ids("ns.events").len(), 410);

    // Then expiry and orphan removal with no grace: main keeps its head only, the tag and the
    // branch keep theirs, and the files only expired snapshots read are gone.
    let (code, report) = env.json(&[
        "maintain",
        "ns.events",
        "--older-than",
        "0s",
        "--retain-last",
        "1",
        "--orphans-older-than",
        "0s",
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.main_log_len(), 1, "{report}");
    // The tag and the branch still read the 40 original files, so those stay; what this
    // maintenance's compaction replaced (the first compaction's file and the later run's)
    // went with the snapshots that read them.
    let expired = &report["expire_snapshots"];
    assert_eq!(expired["data_files"], 2, "{report}");
    assert!(expired["bytes"].as_u64() > Some(1000), "{report}");
    assert_eq!(env.event_ids("ns.events@v1"), refs_before[1]);
    assert_eq!(env.event_ids("ns.events@dev"), refs_before[2]);
    assert_eq!(env.event_ids("ns.events").len(), 410);
    if pyiceberg {
        let read = with_pyiceberg(&env, READ_REFS);
        let fields: Vec<u64> = read.split(' ').map(|f| f.parse().unwrap()).collect();
        assert!(fields[0] <= 5, "main's data files: {read}");
        assert!(fields[1] <= 3, "main's manifests: {read}");
        assert_eq!(fields[2..5], [410, 400, 200], "{read}");
    }
    // Running it again finds nothing to do.
    let (code, report) = env.json(&[
        "maintain",
        "ns.events",
        "--only",
        "rewrite-data-files,rewrite-manifests",
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["rewrite_data_files"]["plan"]["files"], 0, "{report}");
    assert_eq!(
        report["rewrite_manifests"]["manifests_replaced"], 0,
        "{report}"
    );
}

#[test]
fn orphan_removal_spares_a_run_in_flight_and_deletes_what_nothing_refers_to() {
    let env = Env::new();
    write(&env.path("seed/a.parquet"), &events(0..10, false));
    assert_eq!(env.run("seed").0, 0);
    // A file a killed writer of another engine left behind.
    let data = env.path(".sluice/warehouse/ns/events/data");
    assert!(data.is_dir(), "{}", data.display());
    let stray = data.join("00000-stray.parquet");
    write(&stray, &events(500..510, false));

    // A run paused after it wrote its files, before it committed them to its branch.
    write(&env.path("raw/b.parquet"), &events(10..20, false));
    let child = paused(&env, "write", 4, &run_args("raw", &[]));
    let (code, report) = env.json(&[
        "maintain",
        "ns.events",
        "--only",
        "remove-orphan-files",
        "--orphans-older-than",
        "0s",
    ]);
    assert_eq!(code, 0, "{report}");
    let removed = &report["remove_orphan_files"];
    assert_eq!(removed["deleted"], 1, "only the stray file: {report}");
    assert!(removed["in_flight"].as_u64() >= Some(1), "{report}");
    assert!(!stray.exists());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let published: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(published["status"], "published", "{published}");
    assert_eq!(env.event_ids("ns.events"), (0..20).collect::<Vec<_>>());
}

/// Starts `sluice maintain ARGS` paused at `point`, then SIGKILLs it there.
fn kill_maintain_at(env: &Env, point: &str, args: &[&str]) {
    let mut maintain = vec!["maintain"];
    maintain.extend_from_slice(args);
    let mut child = paused(env, point, 3600, &maintain);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every file under the table's location.
fn table_files(env: &Env) -> Vec<std::path::PathBuf> {
    walk(&env.path(".sluice/warehouse/ns/events"))
}

#[test]
fn maintenance_killed_at_each_step_is_finished_or_undone_by_recover() {
    let env = Env::new();
    for k in 0..6i64 {
        write(
            &env.path(&format!("raw/{k}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
        assert_eq!(env.run("raw").0, 0);
    }
    let ids = env.event_ids("ns.events");
    let log = env.main_log_len();
    let files_before = table_files(&env);

    // Killed after the compaction wrote and committed on its branch: recover undoes it all.
    kill_maintain_at(&env, "maintain-compacted", &["ns.events"]);
    assert!(env.branches().iter().any(|b| b.starts_with("sluice/")));
    let (code, recovered) = env.json(&["recover"]);
    assert_eq!(code, 0, "{recovered}");
    assert_eq!(
        recovered["recovered"].as_array().unwrap().len(),
        1,
        "{recovered}"
    );
    assert!(
        env.branches().iter().all(|b| !b.starts_with("sluice/")),
        "{:?}",
        env.branches()
    );
    assert_eq!(env.event_ids("ns.events"), ids);
    assert_eq!(env.main_log_len(), log, "nothing was published");
    let mut after: Vec<_> = table_files(&env)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".metadata.json"))
        .collect();
    let mut expected: Vec<_> = files_before
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".metadata.json"))
        .cloned()
        .collect();
    after.sort();
    expected.sort();
    assert_eq!(after, expected, "the compaction's files were deleted");

    // Killed between the expiry's commit and its deletes: recover finishes the deletes.
    kill_maintain_at(
        &env,
        "maintain-expiry-committed",
        &[
            "ns.events",
            "--only",
            "expire-snapshots",
            "--older-than",
            "0s",
            "--retain-last",
            "1",
        ],
    );
    assert_eq!(env.main_log_len(), 1, "the expiry committed");
    let lists_before = table_files(&env)
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap-")
        })
        .count();
    assert!(
        lists_before > 1,
        "the expired manifest lists are still there"
    );
    let (code, recovered) = env.json(&["recover"]);
    assert_eq!(code, 0, "{recovered}");
    let lists_after = table_files(&env)
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap-")
        })
        .count();
    assert_eq!(lists_after, 1, "only main's head's manifest list is left");
    assert_eq!(env.event_ids("ns.events"), ids);

    // Killed after a published compaction, before the manifest rewrite, and before the
    // orphan removal: the compaction stays (main has it), nothing else is half done.
    for point in ["maintain-manifests", "maintain-orphans"] {
        kill_maintain_at(&env, point, &["ns.events"]);
        let (code, recovered) = env.json(&["recover"]);
        assert_eq!(code, 0, "{recovered}");
        assert_eq!(
            recovered["recovered"].as_array().unwrap().len(),
            1,
            "{recovered}"
        );
        assert!(env.branches().iter().all(|b| !b.starts_with("sluice/")));
        assert_eq!(env.event_ids("ns.events"), ids, "killed at {point}");
        let log = env.json(&["log", "ns.events"]).1;
        assert_eq!(log[0]["operation"], "replace", "{point}: {}", log[0]);
        assert_eq!(
            log[0]["summary"]["total-data-files"], "1",
            "{point}: {}",
            log[0]
        );
    }
    // A full maintenance after all that works, and the table still reads the same.
    let (code, report) = env.json(&["maintain", "ns.events"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.event_ids("ns.events"), ids);
}

/// Starts `sluice --json ARGS` with `SLUICE_PAUSE_AT=point` for `secs` seconds; returns once it
/// is paused there, its stdout still to read.
fn paused(env: &Env, point: &str, secs: u32, args: &[&str]) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = env
        .cmd()
        .env("SLUICE_PAUSE_AT", point)
        .env("SLUICE_PAUSE_SECS", secs.to_string())
        .arg("--json")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let reached = stderr
        .by_ref()
        .any(|l| l.unwrap().contains(&format!("paused at {point}")));
    assert!(reached, "never paused at {point}");
    // Keep reading: a process whose stderr is closed fails when it next writes there.
    std::thread::spawn(move || stderr.for_each(drop));
    child
}

#[test]
fn runs_and_a_compaction_that_overlap_both_publish() {
    let env = Env::new();
    for k in 0..4i64 {
        write(
            &env.path(&format!("raw/{k}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
        assert_eq!(env.run("raw").0, 0);
    }
    // A run audited on its branch, forked before the compaction, publishes after it: its
    // appends are re-applied on top of the replace.
    write(&env.path("raw/4.parquet"), &events(40..50, false));
    let run = paused(&env, "audit", 3, &run_args("raw", &[]));
    let (code, report) = env.json(&["maintain", "ns.events", "--only", "rewrite-data-files"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["rewrite_data_files"]["compacted"]["files_rewritten"], 4,
        "{report}"
    );
    let out = run.wait_with_output().unwrap();
    let published: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(published["status"], "published", "{published}");
    assert_eq!(env.event_ids("ns.events"), (0..50).collect::<Vec<_>>());

    // A compaction paused on its branch while a run publishes: the replace is made again on
    // main's head, and the run's rows stay.
    for k in 5..7i64 {
        write(
            &env.path(&format!("raw/{k}.parquet")),
            &events(k * 10..k * 10 + 10, false),
        );
        assert_eq!(env.run("raw").0, 0);
    }
    let maintain = paused(
        &env,
        "maintain-compacted",
        3,
        &["maintain", "ns.events", "--only", "rewrite-data-files"],
    );
    write(&env.path("raw/7.parquet"), &events(70..80, false));
    assert_eq!(env.run("raw").0, 0);
    let out = maintain.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["rewrite_data_files"]["published"], "rebase",
        "{report}"
    );
    assert_eq!(env.event_ids("ns.events"), (0..80).collect::<Vec<_>>());
    let log = env.json(&["log", "ns.events"]).1;
    assert_eq!(log[0]["operation"], "replace", "{}", log[0]);
    assert_eq!(log[0]["summary"]["total-records"], "80", "{}", log[0]);
    assert!(env.branches().iter().all(|b| !b.starts_with("sluice/")));
}

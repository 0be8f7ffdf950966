//! `sluice maintain`: snapshot expiry through the binary.

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
        text.starts_with("ns.events: would expire 0 snapshot(s)"),
        "the default keeps 5 days: {text}"
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
    assert!(said.contains("maintained ns.events: expired"), "{said}");
    assert_eq!(env.event_ids("ns.events"), (0..20).collect::<Vec<_>>());
    let out = env.sluice(&[
        "watch",
        "--job",
        "wap.toml",
        "--every",
        "1s",
        "--maintain-every",
        "1h",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--maintain-every is for one table"
    );
}

//! What a new user meets in the first hour: each command does what its name says, and its
//! output speaks the user's words.

use crate::common::*;

fn seeded() -> Env {
    let env = Env::new();
    write(&env.path("seed/s.parquet"), &events(0..10, false));
    assert_eq!(env.run("seed").0, 0);
    env
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ref_names(env: &Env, kind: &str) -> Vec<String> {
    let (code, refs) = env.json(&[kind, "list", "ns.events"]);
    assert_eq!(code, 0, "{refs}");
    refs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tag_delete_leaves_branches_alone_and_branch_delete_leaves_tags_alone() {
    let env = seeded();
    assert!(
        env.sluice(&["branch", "create", "ns.events", "dev"])
            .status
            .success()
    );
    assert!(
        env.sluice(&["tag", "create", "ns.events", "t1"])
            .status
            .success()
    );

    let out = env.sluice(&["tag", "delete", "ns.events", "dev"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("`dev` in table ns.events is a branch, not a tag")
            && err.contains("sluice branch delete ns.events dev"),
        "{err}"
    );
    let out = env.sluice(&["branch", "delete", "ns.events", "t1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is a tag, not a branch") && err.contains("sluice tag delete ns.events t1"),
        "{err}"
    );
    assert_eq!(ref_names(&env, "branch"), ["dev", "main"]);
    assert_eq!(ref_names(&env, "tag"), ["t1"]);

    let out = env.sluice(&["tag", "delete", "ns.events", "t1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted tag t1 of ns.events"));
    let out = env.sluice(&["branch", "delete", "ns.events", "dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ref_names(&env, "branch"), ["main"]);
    assert!(ref_names(&env, "tag").is_empty());
}

/// Events with a `ts` column of nanosecond UTC timestamps (pandas' default), `sub_micro`
/// nanoseconds past whole microseconds.
fn nanosecond_events(ids: std::ops::Range<i64>, sub_micro: i64) -> arrow_array::RecordBatch {
    use arrow_array::Array;
    use std::sync::Arc;
    let base = 1_764_547_200_000_000_000i64; // 2025-12-01T00:00:00Z
    let ts = arrow_array::TimestampNanosecondArray::from(
        ids.clone()
            .map(|i| base + i * 1_000_000 + sub_micro)
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("event_id", arrow_schema::DataType::Int64, true),
        arrow_schema::Field::new("ts", ts.data_type().clone(), true),
    ]);
    arrow_array::RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.collect::<Vec<_>>())),
            Arc::new(ts),
        ],
    )
    .unwrap()
}

/// pyiceberg reads the table; DuckDB reads the data files pyiceberg plans. Prints
/// `{"rows", "iceberg_type", "duckdb_rows", "duckdb_type", "first"}`.
const NANOS_READER: &str = r#"
import json, sys
import duckdb
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("default", uri=f"sqlite:///{sys.argv[1]}", warehouse=sys.argv[2])
t = cat.load_table("ns.nanos")
data = t.scan().to_arrow()
files = [task.file.file_path.removeprefix("file://") for task in t.scan().plan_files()]
con = duckdb.connect()
duckdb_rows = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()[0][0]
described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()
print(json.dumps({
    "format_version": t.metadata.format_version,
    "rows": data.num_rows,
    "iceberg_type": str(t.schema().find_field("ts").field_type),
    "duckdb_rows": duckdb_rows,
    "duckdb_type": {row[0]: row[1] for row in described}["ts"],
    "first": str(min(data.column("ts").to_pylist())),
}))
"#;

#[test]
fn nanosecond_timestamps_are_stored_as_microseconds_other_engines_read() {
    let env = Env::new();
    write(&env.path("whole/a.parquet"), &nanosecond_events(0..10, 0));
    let nanos = |source: &str, extra: &[&str]| {
        let mut args = vec!["run", "--source", source, "--table", "ns.nanos"];
        args.extend_from_slice(extra);
        env.json(&args)
    };
    let (code, report) = nanos("whole", &[]);
    assert_eq!(code, 0, "{report}");

    // A value that would lose its nanoseconds is refused, naming the column and the way out.
    write(
        &env.path("exact/b.parquet"),
        &nanosecond_events(10..20, 789),
    );
    let out = env.sluice(&["run", "--source", "exact", "--table", "ns.nanos"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("column `ts`") && err.contains("--truncate-timestamps"),
        "{err}"
    );
    let (code, report) = nanos("exact", &["--truncate-timestamps"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["rows"], 10);

    if !python_available(
        "nanosecond timestamps",
        "pyiceberg.catalog.sql, pyarrow, duckdb",
    ) {
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", NANOS_READER])
        .arg(env.path(".sluice/catalog.db"))
        .arg(env.path(".sluice/warehouse"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["format_version"], 2, "{read}");
    assert_eq!(read["rows"], 20, "{read}");
    assert_eq!(read["iceberg_type"], "timestamptz", "{read}");
    assert_eq!(read["duckdb_rows"], 20, "{read}");
    assert_eq!(read["duckdb_type"], "TIMESTAMP WITH TIME ZONE", "{read}");
    assert_eq!(read["first"], "2025-12-01 00:00:00+00:00", "{read}");
}

/// Starts `sluice --json run` paused at `point`, sends `signal` once it is there, and returns
/// the exit code, stdout and stderr.
fn signal_at(env: &Env, point: &str, signal: &str) -> (Option<i32>, String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = env
        .cmd()
        .env("SLUICE_PAUSE_AT", point)
        .arg("--json")
        .args(run_args("raw", &[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        before.push_str(&line);
        before.push('\n');
        if line.contains(&format!("paused at {point}")) {
            break;
        }
    }
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = String::new();
    for line in lines {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), stdout, before + &rest)
}

#[test]
fn ctrl_c_or_sigterm_rolls_the_run_back_and_frees_its_lease() {
    let env = seeded();
    write(&env.path("raw/a.parquet"), &events(100..150, false));
    for (point, signal, code) in [("after-write", "INT", 130), ("audit", "TERM", 143)] {
        let started = std::time::Instant::now();
        let (status, stdout, stderr) = signal_at(&env, point, signal);
        assert_eq!(status, Some(code), "{point}: {stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{point}: took {:?}",
            started.elapsed()
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["status"], "interrupted", "{point}: {report}");
        assert!(stderr.contains("stopping"), "{point}: {stderr}");
        assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
        assert!(
            env.branches().iter().all(|b| !b.starts_with("sluice/")),
            "{point}: {:?}",
            env.branches()
        );
        // Nothing is left open: no recovery needed, and the next run is not refused.
        let (code, recovered) = env.json(&["recover"]);
        assert_eq!(code, 0, "{recovered}");
        assert!(recovered["still_running"].as_array().unwrap().is_empty());
    }
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.event_ids("ns.events").len(), 60);
}

/// Events with a `ts` column of microsecond timestamps in `zone`.
fn utc_events(ids: std::ops::Range<i64>, zone: &str) -> arrow_array::RecordBatch {
    use arrow_array::Array;
    use std::sync::Arc;
    let ts = arrow_array::TimestampMicrosecondArray::from(
        ids.clone()
            .map(|i| 1_764_547_200_000_000 + i)
            .collect::<Vec<_>>(),
    )
    .with_timezone(zone);
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("event_id", arrow_schema::DataType::Int64, true),
        arrow_schema::Field::new("ts", ts.data_type().clone(), true),
    ]);
    arrow_array::RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.collect::<Vec<_>>())),
            Arc::new(ts),
        ],
    )
    .unwrap()
}

#[test]
fn the_documented_schema_check_accepts_every_spelling_of_utc() {
    let env = Env::new();
    std::fs::write(
        env.path("schema.toml"),
        r#"
[[check]]
kind = "schema"
columns = { event_id = "int64", ts = "timestamp(us, UTC)" }

[[check]]
name = "iceberg_spelling"
kind = "schema"
columns = { ts = "timestamptz" }
"#,
    )
    .unwrap();
    for (i, zone) in ["UTC", "+00:00", "Z"].into_iter().enumerate() {
        let start = 100 * i as i64;
        write(
            &env.path(&format!("raw/{i}.parquet")),
            &utc_events(start..start + 10, zone),
        );
        let (code, report) = env.json(&[
            "run",
            "--source",
            "raw",
            "--table",
            "ns.times",
            "--checks",
            "schema.toml",
        ]);
        assert_eq!(code, 0, "{zone}: {report}");
    }
    // The table's own column (read back as +00:00) passes too.
    let (code, report) = env.json(&["check", "ns.times", "--checks", "schema.toml"]);
    assert_eq!(code, 0, "{report}");

    // A mismatch names the type in the docs' notation.
    std::fs::write(
        env.path("wrong.toml"),
        "[[check]]\nkind = \"schema\"\ncolumns = { ts = \"int64\" }\n",
    )
    .unwrap();
    let out = env.sluice(&["check", "ns.times", "--checks", "wrong.toml"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("column `ts` is timestamp(us, UTC), expected int64"),
        "{text}"
    );
    assert!(!text.contains("Timestamp("), "{text}");
}

#[test]
fn a_moved_lake_is_detected_and_the_error_says_what_to_do() {
    let env = seeded();
    let commits = env.main_log_len();
    assert!(commits > 0);
    let home = env.dir.path().to_path_buf();
    let moved = home.with_extension("moved");
    std::fs::rename(&home, &moved).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&moved)
        .env_remove("SLUICE_CONFIG")
        .env("NO_COLOR", "1")
        .args(["log", "ns.events"])
        .output()
        .unwrap();
    std::fs::rename(&moved, &home).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("table ns.events cannot be read")
            && err.contains(&home.display().to_string())
            && err.contains("moved back"),
        "{err}"
    );
    assert!(!err.contains("=>") && !err.contains("DataInvalid"), "{err}");
    // Back where it was created, the lake reads again.
    assert_eq!(env.main_log_len(), commits);
}

#[test]
fn every_json_invocation_prints_one_document_and_check_results_have_one_shape() {
    let env = seeded();
    // Failures before any report exists: one document, status failed, the error.
    for args in [
        vec!["run", "--source", "nope", "--table", "ns.events"],
        vec!["log", "ns.nope"],
        vec!["run", "--table", "ns.events"],
    ] {
        let (code, doc) = env.json(&args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(doc["status"], "failed", "{args:?}: {doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{args:?}: {doc}"
        );
    }

    // `run --json` and `check --json` give a check result the same fields.
    write(&env.path("more/m.parquet"), &events(10..20, false));
    let (code, run) = env.json(&run_args("more", &[]));
    assert_eq!(code, 0, "{run}");
    let (code, check) = env.json(&["check", "ns.events", "--checks", "checks.toml"]);
    assert_eq!(code, 0, "{check}");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let from_run = &run["checks"][0];
    let from_check = &check["checks"][0];
    assert_eq!(keys(from_run), keys(from_check));
    for field in ["kind", "rows_checked", "threshold", "evidence"] {
        assert!(from_run.get(field).is_some(), "{field}: {from_run}");
    }
}

#[test]
fn watch_json_prints_one_compact_document_per_line() {
    use std::io::{BufRead, BufReader};
    let env = seeded();
    write(&env.path("raw/a.parquet"), &events(100..110, false));
    let mut child = env
        .cmd()
        .args(["--json", "watch", "--source", "raw", "--table", "ns.events"])
        .args(["--checks", "checks.toml", "--every", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    child.wait().unwrap();
    for line in std::iter::once(&first).chain(&rest) {
        let doc: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON document per line ({e}): {line}"));
        assert!(doc.get("status").is_some(), "{line}");
    }
    let doc: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(doc["status"], "published", "{doc}");
}

#[test]
fn a_time_copied_from_log_includes_the_commit_it_shows() {
    let env = seeded();
    let out = env.sluice(&["log", "ns.events", "--limit", "1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text.lines().nth(2).unwrap();
    let mut cells = row.split_whitespace();
    let (_snapshot, date, time) = (
        cells.next().unwrap(),
        cells.next().unwrap(),
        cells.next().unwrap(),
    );
    let (whole, millis) = time.split_once('.').expect("log shows milliseconds");
    assert_eq!(millis.len(), 3, "{row}");
    // The time as a user copies it, to the second.
    let target = format!("ns.events@main@{date}T{whole}Z");
    assert_eq!(env.event_ids(&target), (0..10).collect::<Vec<_>>());
}

/// The commands of the README's "Use it" block, comments dropped.
fn readme_use_it_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("## Use it")
        .nth(1)
        .expect("README has a Use it section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Use it section starts with a sh block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn the_readme_use_it_commands_run_as_written_after_init() {
    let dir = tempfile::tempdir().unwrap();
    let commands = readme_use_it_commands();
    assert_eq!(commands[0], ["sluice", "init"], "{commands:?}");
    for command in &commands {
        assert_eq!(command[0], "sluice", "{command:?}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir.path())
            .env_remove("SLUICE_CONFIG")
            .env("NO_COLOR", "1")
            .args(&command[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
    assert!(dir.path().join("checks.toml").exists());
}

#[test]
fn onboarding_messages_lead_somewhere() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir.path())
            .env_remove("SLUICE_CONFIG")
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap()
    };
    // `init -q` is quiet.
    let out = sluice(&["init", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // A missing table says how it comes to exist.
    let out = sluice(&["log", "analytics.events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a first `sluice run --table analytics.events` creates it"),
        "{}",
        stderr(&out)
    );
    // A single file that is not parquet is named as such, not "nothing to do".
    std::fs::write(dir.path().join("events.csv"), "event_id\n1\n").unwrap();
    let out = sluice(&[
        "run",
        "--source",
        "events.csv",
        "--table",
        "analytics.events",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("events.csv is not a parquet file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn smaller_first_hour_defects_are_gone() {
    let env = seeded();
    // --columns items are trimmed.
    let (code, rows) = env.json(&[
        "scan",
        "ns.events",
        "--columns",
        "event_id, user_id",
        "--limit",
        "1",
    ]);
    assert_eq!(code, 0, "{rows}");
    assert!(rows[0].get("user_id").is_some(), "{rows}");

    // Nested namespaces are listed; a missing namespace is an error.
    write(&env.path("nested/n.parquet"), &events(0..3, false));
    let out = env.sluice(&["run", "--source", "nested", "--table", "a.b.c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, tables) = env.json(&["tables"]);
    assert_eq!(code, 0, "{tables}");
    assert_eq!(tables, serde_json::json!(["a.b.c", "ns.events"]));
    let (code, tables) = env.json(&["tables", "a"]);
    assert_eq!((code, tables), (0, serde_json::json!(["a.b.c"])));
    let out = env.sluice(&["tables", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("namespace nope does not exist"),
        "{}",
        stderr(&out)
    );

    // Unknown key columns are named, for run and check alike.
    write(&env.path("more/m.parquet"), &events(10..20, false));
    let out = env.sluice(&run_args("more", &["--key-columns", "nope"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`nope` is not a column of ns.events"),
        "{}",
        stderr(&out)
    );
    let out = env.sluice(&[
        "check",
        "ns.events",
        "--checks",
        "checks.toml",
        "--key-columns",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`nope` is not a column of ns.events"),
        "{}",
        stderr(&out)
    );

    // check takes --samples and --key-columns.
    std::fs::write(
        env.path("nulls.toml"),
        "[[check]]\nkind = \"range\"\ncolumn = \"event_id\"\nmax = 3\n",
    )
    .unwrap();
    let (code, report) = env.json(&[
        "check",
        "ns.events",
        "--checks",
        "nulls.toml",
        "--samples",
        "2",
        "--key-columns",
        "user_id",
    ]);
    assert_eq!(code, 3, "{report}");
    let samples = report["checks"][0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "{report}");
    assert!(samples[0].get("user_id").is_some(), "{report}");

    // Zero batch sizes and intervals are usage errors.
    let out = env.sluice(&[
        "backfill",
        "--source",
        "seed",
        "--table",
        "ns.events",
        "--batch-files",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.sluice(&[
        "watch",
        "--source",
        "seed",
        "--table",
        "ns.events",
        "--every",
        "0s",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // Comparisons between strings and numbers are errors both ways.
    for expr in ["event_type > 1", "event_id = 'abc'"] {
        std::fs::write(
            env.path("expr.toml"),
            format!("[[check]]\nkind = \"expression\"\nexpr = \"{expr}\"\n"),
        )
        .unwrap();
        let (code, report) = env.json(&["check", "ns.events", "--checks", "expr.toml"]);
        assert_eq!(code, 3, "{expr}: {report}");
        assert_eq!(report["checks"][0]["status"], "error", "{expr}: {report}");
        let message = report["checks"][0]["message"].as_str().unwrap();
        assert!(message.contains("cannot compare"), "{expr}: {message}");
    }

    // No binary noise in a threshold.
    std::fs::write(
        env.path("mostly.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\"]\nmostly = 0.999\n",
    )
    .unwrap();
    let out = env.sluice(&["check", "ns.events", "--checks", "mostly.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_null_fraction=0.001"), "{text}");
    assert!(!text.contains("0.0010000"), "{text}");

    // tag --help speaks of tags and --at.
    let out = env.sluice(&["tag", "create", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--at") && !help.contains("--from"), "{help}");
    assert!(
        help.contains("sluice tag create") && !help.contains("sluice branch"),
        "{help}"
    );
    let out = env.sluice(&["tag", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("`main` cannot be deleted"), "{help}");

    // A rebase commit keeps the message and author of the commit it re-applies: a run paused
    // before publishing while another run moves main publishes by a rebase.
    write(&env.path("late/l.parquet"), &events(30..35, false));
    write(&env.path("early/e.parquet"), &events(40..45, false));
    let late = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "publish")
        .env("SLUICE_PAUSE_SECS", "4")
        .args(run_args(
            "late",
            &["--message", "late batch", "--author", "alice"],
        ))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut late = late;
    {
        use std::io::{BufRead, BufReader};
        let mut lines = BufReader::new(late.stderr.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("paused at publish")));
    }
    let (code, report) = env.json(&run_args("early", &[]));
    assert_eq!(code, 0, "{report}");
    assert!(late.wait().unwrap().success());
    let (code, log) = env.json(&["log", "ns.events", "--limit", "1"]);
    assert_eq!(code, 0, "{log}");
    let head = &log[0];
    assert!(
        head["summary"].get("source-snapshot-id").is_some(),
        "not a rebase: {head}"
    );
    assert_eq!(head["message"], "late batch", "{head}");
    assert_eq!(head["author"], "alice", "{head}");

    // Credentials in the configuration file are warned about.
    let config = std::fs::read_to_string(env.path("sluice.toml")).unwrap();
    std::fs::write(
        env.path("sluice.toml"),
        format!("{config}\n[storage.s3]\nsecret_access_key = \"hush\"\n"),
    )
    .unwrap();
    let out = env.sluice(&["tables"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`secret_access_key`") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("hush"), "{err}");
}

/// Words that only Rust code says: variant and type names seen in past output.
const RUST_NAMES: &[&str] = &[
    "LeaseConflict",
    "DataInvalid",
    "RolledBack",
    "UpToDate",
    "FastForward",
    "Completed",
    "Running",
    "Compensated",
    "NotFound",
    "Unexpected",
    "Some(",
    "None",
    "Err(",
    "Ok(",
    "::",
    "Timestamp(",
    "Int64",
    "Utf8",
];

/// Problems of user-facing text: Rust names, `=>`, CamelCase identifiers, a cause twice.
fn speech_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if text.contains("=>") {
        problems.push("`=>`".to_string());
    }
    for name in RUST_NAMES {
        if text.contains(name) {
            problems.push(format!("Rust name `{name}`"));
        }
    }
    // lowerUpper inside a word: a Rust type or variant name (DuckDB and pyiceberg aside).
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let chars: Vec<char> = word.chars().collect();
        let camel = chars.first().is_some_and(char::is_ascii_uppercase)
            && chars
                .windows(2)
                .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
        if camel && !["DuckDB", "MinIO"].contains(&word) {
            problems.push(format!("CamelCase `{word}`"));
        }
    }
    // The same cause twice: a segment of 12+ characters between `: ` separators, repeated.
    for line in text.lines() {
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for (i, p) in parts.iter().enumerate() {
            if p.len() >= 12 && parts[i + 1..].iter().any(|q| q.contains(p)) {
                problems.push(format!("`{p}` twice"));
            }
        }
    }
    problems
}

#[test]
fn error_output_speaks_the_users_words_in_text_and_json() {
    let env = seeded();
    write(&env.path("more/m.parquet"), &events(10..20, false));
    std::fs::write(env.path("notes.txt"), "not parquet").unwrap();
    std::fs::write(
        env.path("broken.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\"\n",
    )
    .unwrap();
    assert!(
        env.sluice(&["tag", "create", "ns.events", "t1"])
            .status
            .success()
    );
    assert!(
        env.sluice(&["branch", "create", "ns.events", "dev"])
            .status
            .success()
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--source", "nope", "--table", "ns.events"],
        vec!["run", "--source", "notes.txt", "--table", "ns.events"],
        vec![
            "run",
            "--source",
            "more",
            "--table",
            "ns.events",
            "--checks",
            "broken.toml",
        ],
        vec![
            "run",
            "--source",
            "more",
            "--table",
            "ns.events",
            "--checks",
            "missing.toml",
        ],
        vec!["run", "--source", "more", "--table", "bad name"],
        vec!["log", "ns.nope"],
        vec!["log", "ns.events@nope"],
        vec!["scan", "ns.events@main@yesterday"],
        vec!["scan", "ns.events", "--columns", "nope"],
        vec!["branch", "delete", "ns.events", "t1"],
        vec!["branch", "delete", "ns.events", "main"],
        vec!["branch", "delete", "ns.events", "nope"],
        vec!["tag", "delete", "ns.events", "dev"],
        vec!["branch", "create", "ns.events", "bad..name"],
        vec!["branch", "create", "ns.events", "dev"],
        vec!["tag", "create", "ns.events", "t2", "--at", "nope"],
        vec!["merge", "ns.events", "nope"],
        vec!["merge", "ns.events", "t1"],
        vec!["rollback", "ns.events", "--to", "nope"],
        vec!["check", "ns.events", "--checks", "missing.toml"],
        vec!["check", "ns.nope", "--checks", "checks.toml"],
        vec!["runs", "show", "nope"],
        vec!["runs", "show", "00000000-0000-0000-0000-000000000000"],
        vec!["tables", "nope"],
        vec!["--config", "missing.toml", "tables"],
        vec!["run", "--table", "ns.events"],
        vec![
            "backfill",
            "--source",
            "more",
            "--table",
            "ns.events",
            "--batch-files",
            "0",
        ],
    ];
    for args in &cases {
        let out = env.sluice(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        let problems = speech_problems(&text);
        assert!(problems.is_empty(), "{args:?}: {problems:?} in:\n{text}");

        let out = env.cmd().arg("--json").args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?} --json: not one JSON document ({e}): {stdout}"));
        assert_eq!(doc["status"], "failed", "{args:?}: {doc}");
        let problems = speech_problems(doc["error"].as_str().unwrap_or_default());
        assert!(
            problems.is_empty(),
            "{args:?} --json: {problems:?} in {doc}"
        );
    }
}

#[test]
fn states_and_kinds_are_printed_as_words() {
    let env = seeded();
    let out = env.sluice(&["runs", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(speech_problems(&text).is_empty(), "{text}");
    assert!(text.contains("completed"), "{text}");
    let run_id = text
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = env.sluice(&["runs", "show", &run_id]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(speech_problems(&text).is_empty(), "{text}");

    assert!(
        env.sluice(&["branch", "create", "ns.events", "dev"])
            .status
            .success()
    );
    let out = env.sluice(&["merge", "ns.events", "dev"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(speech_problems(&text).is_empty(), "{text}");
    assert!(!text.contains('→'), "{text}");

    // Narrow terminals: log and the audit table fit and keep every number whole.
    write(&env.path("more/m.parquet"), &events(10..20, true));
    let out = env
        .cmd()
        .env("COLUMNS", "80")
        .args(run_args(
            "more",
            &[
                "--message",
                "a long commit message that a narrow terminal cannot show on one line",
            ],
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let audit = String::from_utf8_lossy(&out.stdout).into_owned();
    let table: Vec<&str> = audit.lines().take_while(|l| !l.is_empty()).collect();
    assert!(table.iter().all(|l| l.chars().count() <= 80), "{audit}");
    assert!(audit.contains("FAIL"), "{audit}");
    let out = env
        .cmd()
        .env("COLUMNS", "80")
        .args(["log", "ns.events"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(log.lines().all(|l| l.chars().count() <= 80), "{log}");
    let (_, commits) = env.json(&["log", "ns.events"]);
    let id = commits[0]["snapshot_id"].as_i64().unwrap().to_string();
    assert!(log.contains(&id), "{id} cut in:\n{log}");
}

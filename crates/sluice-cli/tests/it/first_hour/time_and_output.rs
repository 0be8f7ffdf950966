//! Times copied from `sluice log` into `scan`, and what `scan` prints by default.

use super::*;

/// The TIME column of the log's row for `snapshot`, as a user copies it.
fn logged_time(env: &Env, snapshot: i64) -> String {
    let out = env.sluice(&["log", "ns.events"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(&snapshot.to_string()))
        .unwrap_or_else(|| panic!("no row for {snapshot} in\n{text}"));
    line.split(|c: char| c.is_whitespace() || c == '|' || c == '│')
        .find(|w| w.len() == 24 && w.ends_with('Z') && w.as_bytes()[10] == b'T')
        .unwrap_or_else(|| panic!("no RFC 3339 time in {line:?}"))
        .to_string()
}

fn rows_at(env: &Env, target: &str) -> usize {
    let (code, rows) = env.json(&["scan", target, "--columns", "event_id"]);
    assert_eq!(code, 0, "{target}: {rows}");
    rows.as_array().unwrap().len()
}

/// The time a millisecond before an RFC 3339 time with milliseconds.
fn a_millisecond_before(time: &str) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(time).unwrap();
    (at - chrono::Duration::milliseconds(1))
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[test]
fn a_time_copied_from_the_log_includes_that_commit_and_not_a_millisecond_before() {
    let env = seeded();
    // A publish a second or more after the commit on the audit branch: the run waits before
    // publishing, so main moves in a later second than the snapshot was written.
    write(&env.path("slow/s.parquet"), &events(10..20, false));
    let out = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "publish")
        .env("SLUICE_PAUSE_SECS", "2")
        .arg("--json")
        .args(run_args("slow", &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let slow: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A publish a few milliseconds after its commit, as every run makes.
    write(&env.path("quick/q.parquet"), &events(20..30, false));
    let (code, quick) = env.run("quick");
    assert_eq!(code, 0, "{quick}");

    let (_, log) = env.json(&["log", "ns.events"]);
    let entry = |id: &serde_json::Value| {
        log.as_array()
            .unwrap()
            .iter()
            .find(|c| &c["snapshot_id"] == id)
            .unwrap()
            .clone()
    };
    let slow_entry = entry(&slow["snapshot_id"]);
    let written =
        chrono::DateTime::parse_from_rfc3339(slow_entry["timestamp"].as_str().unwrap()).unwrap();
    let reached =
        chrono::DateTime::parse_from_rfc3339(slow_entry["reached_at"].as_str().unwrap()).unwrap();
    assert!(
        reached - written >= chrono::Duration::seconds(2),
        "{slow_entry}"
    );

    for (report, rows_before, rows_after) in [(&slow, 10, 20), (&quick, 20, 30)] {
        let time = logged_time(&env, report["snapshot_id"].as_i64().unwrap());
        assert_eq!(
            rows_at(&env, &format!("ns.events@main@{time}")),
            rows_after,
            "{time}"
        );
        assert_eq!(
            rows_at(
                &env,
                &format!("ns.events@main@{}", a_millisecond_before(&time))
            ),
            rows_before,
            "{time}"
        );
        // The same time as the log used to print it (a space, no zone) means UTC.
        let spaced = time.replacen('T', " ", 1).trim_end_matches('Z').to_string();
        assert_eq!(
            rows_at(&env, &format!("ns.events@main@{spaced}")),
            rows_after,
            "{spaced}"
        );
    }
    // The written time of the slow commit, a second or more before main held it, reads the
    // state before it: the log does not show it as the commit's time.
    let written = written
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert_eq!(rows_at(&env, &format!("ns.events@main@{written}")), 10);
    assert_ne!(
        logged_time(&env, slow["snapshot_id"].as_i64().unwrap()),
        written
    );

    let out = env.sluice(&["scan", "ns.events@main@yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("2026-11-25 10:00:00.123 (UTC when no zone is given)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scan_prints_every_row_for_programs_and_says_when_a_table_is_cut() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..1_270, false));
    assert_eq!(env.run("raw").0, 0);

    // Machine formats: every row by default.
    let out = env.sluice(&["scan", "ns.events", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1_270);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = env.sluice(&["scan", "ns.events", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(csv.lines().count(), 1 + 1_270);
    assert!(
        csv.starts_with("event_id,user_id,event_type,amount\n"),
        "{csv}"
    );
    let (code, rows) = env.json(&["scan", "ns.events"]);
    assert_eq!(code, 0);
    assert_eq!(rows.as_array().unwrap().len(), 1_270);

    // A limit of 0 prints the columns only: a header, or an empty array.
    let out = env.sluice(&["scan", "ns.events", "--limit", "0", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "event_id,user_id,event_type,amount\n"
    );
    let out = env.sluice(&["scan", "ns.events", "--limit", "0", "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = env.sluice(&[
        "scan",
        "ns.events",
        "--limit",
        "3",
        "--format",
        "csv",
        "--columns",
        "event_id",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "event_id\n0\n1\n2\n");

    // A table for eyes shows 20 rows and says on stderr that there are more.
    let out = env.sluice(&["scan", "ns.events"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("20 row(s) from ns.events"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(&out);
    assert!(
        err.contains("showing the first 20 row(s)") && err.contains("--format csv"),
        "{err}"
    );
    // No notice when nothing was left out.
    let out = env.sluice(&["scan", "ns.events", "--limit", "5000"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1270 row(s) from ns.events"));
}

#[test]
fn csv_writes_nested_values_as_json_text() {
    use arrow_array::{Array, Int64Array, StringArray, StructArray};
    use arrow_schema::{DataType, Field, Fields, Schema};
    let env = Env::new();
    let props = StructArray::new(
        Fields::from(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]),
        vec![
            std::sync::Arc::new(StringArray::from(vec![Some("a"), None])),
            std::sync::Arc::new(Int64Array::from(vec![Some(7), Some(8)])),
        ],
        Some(vec![true, false].into()),
    );
    let batch = arrow_array::RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Int64, true),
            Field::new("props", props.data_type().clone(), true),
        ])),
        vec![
            std::sync::Arc::new(Int64Array::from(vec![1, 2])),
            std::sync::Arc::new(props),
        ],
    )
    .unwrap();
    write(&env.path("nested/n.parquet"), &batch);
    let out = env.sluice(&["run", "--source", "nested", "--table", "ns.nested"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.sluice(&["scan", "ns.nested", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "event_id,props\n1,\"{\"\"k\"\":\"\"a\"\",\"\"v\"\":7}\"\n2,\n"
    );
}

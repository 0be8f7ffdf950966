//! History-based audits through the binary: publishes record their metrics, `anomaly` checks
//! compare a run with them, `sluice metrics` prints them.

use crate::common::*;

const ANOMALY: &str = r#"
[[check]]
kind = "anomaly"
metric = "row_count"
min_history = 3

[[check]]
kind = "anomaly"
metric = "null_fraction"
column = "user_id"
threshold = 0.1
min_history = 3
"#;

fn with_anomaly_checks(env: &Env) {
    std::fs::write(env.path("checks.toml"), format!("{CHECKS}\n{ANOMALY}")).unwrap();
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// Four publishes of 1,000 to 1,300 rows.
fn four_publishes(env: &Env) {
    for k in 0..4i64 {
        let first = k * 10_000;
        write(
            &env.path(&format!("raw/{k}.parquet")),
            &events(first..first + 1_000 + 100 * k, false),
        );
        let (code, report) = env.run("raw");
        assert_eq!(code, 0, "{report}");
    }
}

#[test]
fn a_small_batch_fails_row_count_anomaly_and_main_keeps_its_history() {
    let env = Env::new();
    with_anomaly_checks(&env);
    // The first runs pass with a note: too little history.
    write(
        &env.path("raw/first.parquet"),
        &events(100_000..101_000, false),
    );
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    let first = check(&report, "anomaly(row_count)");
    assert_eq!(first["status"], "pass");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("not judged: 0 earlier published run(s)"),
        "{first}"
    );
    four_publishes(&env);
    let log_before = env.main_log_len();

    write(
        &env.path("raw/small.parquet"),
        &events(200_000..200_050, false),
    );
    let (code, report) = env.run("raw");
    assert_eq!(code, 3, "{report}");
    let rows = check(&report, "anomaly(row_count)");
    assert_eq!(rows["status"], "fail", "{rows}");
    assert_eq!(rows["observed"]["value"], 50.0, "{rows}");
    assert_eq!(rows["observed"]["history"], 5, "{rows}");
    assert!(
        rows["message"]
            .as_str()
            .unwrap()
            .starts_with("row_count 50 vs 1120 expected (mean of the last 5 published runs)"),
        "{rows}"
    );
    assert_eq!(
        check(&report, "anomaly(null_fraction(user_id))")["status"],
        "pass"
    );
    assert_eq!(env.main_log_len(), log_before, "nothing was published");
    assert_eq!(env.branches(), ["main"]);

    // The metrics of the five publishes, newest first, with the checked columns'.
    let (code, doc) = env.json(&["metrics", "ns.events"]);
    assert_eq!(code, 0, "{doc}");
    let rows: Vec<u64> = doc["publishes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metrics"]["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [1300, 1200, 1100, 1000, 1000]);
    let newest = &doc["publishes"][0]["metrics"]["columns"];
    assert_eq!(newest["user_id"]["null_fraction"], 0.0, "{doc}");
    assert_eq!(newest["event_id"]["min"], 30_000.0, "{doc}");
    assert_eq!(newest["event_id"]["max"], 31_299.0, "{doc}");
    let series = doc["series"].as_array().unwrap();
    assert_eq!(series[0]["metric"], "row_count");
    assert_eq!(series[0]["values"][4], 1300.0, "oldest first: {doc}");

    let text = env.sluice(&["metrics", "ns.events", "--column", "user_id"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("metrics of the last 5 publish(es)"), "{text}");
    assert!(text.contains("null_fraction(user_id)"), "{text}");
    assert!(!text.contains("(event_id)"), "{text}");
    let out = env.sluice(&["metrics", "ns.events", "--column", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("column `nope`") && err.contains("user_id"),
        "{err}"
    );
}

#[test]
fn a_null_rate_jump_fails_null_fraction_anomaly() {
    let env = Env::new();
    // not_null would fail the batch on its own: only the anomaly checks here.
    std::fs::write(env.path("checks.toml"), ANOMALY).unwrap();
    four_publishes(&env);
    write(
        &env.path("raw/nulls.parquet"),
        &events(50_000..51_100, true),
    );
    let (code, report) = env.run("raw");
    assert_eq!(code, 3, "{report}");
    let nulls = check(&report, "anomaly(null_fraction(user_id))");
    assert_eq!(nulls["status"], "fail", "{nulls}");
    assert!(
        nulls["message"]
            .as_str()
            .unwrap()
            .starts_with("null_fraction of user_id "),
        "{nulls}"
    );
    assert_eq!(check(&report, "anomaly(row_count)")["status"], "pass");
}

/// Files under the warehouse whose path names `run_id`.
fn files_of_run(env: &Env, run_id: &str) -> usize {
    walk(&env.path(".sluice/warehouse"))
        .iter()
        .filter(|p| p.to_string_lossy().contains(run_id))
        .count()
}

#[test]
fn a_kept_failed_batch_is_diffed_against_main_and_deleted_with_its_files() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..100, false));
    assert_eq!(env.run("raw").0, 0);
    // 40 new rows, 10 of which repeat ids of main: unique(event_id) with scope table fails.
    write(&env.path("raw/b.parquet"), &events(90..130, true));
    let (code, report) = env.json(&run_args("raw", &["--keep-failed"]));
    assert_eq!(code, 3, "{report}");
    let kept = report["kept_branch"]
        .as_str()
        .expect("a kept branch")
        .to_string();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert_eq!(kept, format!("sluice/failed/{run_id}"));
    assert_eq!(env.branches(), ["main", kept.as_str()]);
    assert_eq!(env.event_ids("ns.events").len(), 100, "main unchanged");
    assert!(
        files_of_run(&env, &run_id) > 0,
        "the batch's files are kept"
    );

    let (code, diff) = env.json(&["diff", "ns.events@main", &format!("ns.events@{kept}")]);
    assert_eq!(code, 0, "{diff}");
    assert_eq!(diff["files_added"], 1, "{diff}");
    assert_eq!(diff["rows_added"], 40, "{diff}");
    assert_eq!(diff["files_removed"], 0, "{diff}");
    assert_eq!(diff["from"]["rows"], 100);
    assert_eq!(diff["to"]["rows"], 140);
    assert!(
        diff["to"]["audit"]
            .as_str()
            .unwrap()
            .starts_with("failed: "),
        "{diff}"
    );
    let user = diff["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "user_id")
        .unwrap();
    // Every seventh id of 90..130 has a null user: 91, 98, …, 126.
    assert_eq!(user["from"]["nulls"], 0, "{user}");
    assert_eq!(user["to"]["nulls"], 6, "{user}");
    let id = diff["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "event_id")
        .unwrap();
    assert_eq!(
        (id["from"]["max"].as_str(), id["to"]["max"].as_str()),
        (Some("99"), Some("129"))
    );
    let md = env.sluice(&[
        "diff",
        "ns.events@main",
        &format!("ns.events@{kept}"),
        "--format",
        "markdown",
    ]);
    let md = String::from_utf8_lossy(&md.stdout).into_owned();
    assert!(md.contains("| rows | 100 | 140 | +40 (+40.0%) |"), "{md}");
    assert!(
        md.contains("- **files**: 1 added (+40 rows), 0 removed (0 rows)"),
        "{md}"
    );

    let out = env.sluice(&["branch", "delete", "ns.events", &kept]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.branches(), ["main"]);
    assert_eq!(
        files_of_run(&env, &run_id),
        0,
        "deleting the branch deletes its files"
    );

    // Without --keep-failed nothing is kept, as before.
    let (code, report) = env.run("raw");
    assert_eq!(code, 3, "{report}");
    assert!(report.get("kept_branch").is_none(), "{report}");
    assert_eq!(env.branches(), ["main"]);
}

#[test]
fn diff_reports_schema_changes_and_refuses_two_tables() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..10, false));
    assert_eq!(env.run("raw").0, 0);
    let out = env.sluice(&["tag", "create", "ns.events", "v1"]);
    assert!(out.status.success());
    let out = env.sluice(&["diff", "ns.events@v1", "ns.other@main"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("two refs of one table"), "{err}");
    // The same state on both sides: nothing added, removed or changed.
    let (code, same) = env.json(&["diff", "ns.events@v1", "ns.events"]);
    assert_eq!(code, 0, "{same}");
    assert_eq!(same["files_added"], 0);
    assert_eq!(same["files_removed"], 0);
    assert_eq!(same["schema_changes"], serde_json::json!([]));
    // A new column: added, with no nulls counted on the older side, where it does not exist.
    let base = events(10..20, false);
    let mut fields: Vec<arrow_schema::Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(arrow_schema::Field::new(
        "country",
        arrow_schema::DataType::Utf8,
        true,
    ));
    let mut columns = base.columns().to_vec();
    columns.push(std::sync::Arc::new(arrow_array::StringArray::from(vec![
        "IT";
        10
    ])));
    let wider = arrow_array::RecordBatch::try_new(
        std::sync::Arc::new(arrow_schema::Schema::new(fields)),
        columns,
    )
    .unwrap();
    write(&env.path("raw/b.parquet"), &wider);
    let (code, report) = env.json(&run_args("raw", &["--on-schema-change", "add-columns"]));
    assert_eq!(code, 0, "{report}");
    let (_, diff) = env.json(&["diff", "ns.events@v1", "ns.events"]);
    assert_eq!(
        diff["schema_changes"],
        serde_json::json!([{"change": "added", "column": "country", "before": null, "after": "string"}]),
        "{diff}"
    );
    let country = diff["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "country")
        .unwrap();
    assert_eq!(country["from"], serde_json::Value::Null, "{country}");
    assert_eq!(country["to"]["max"], "\"IT\"", "{country}");
    assert_eq!(
        (diff["rows_added"].as_u64(), diff["files_added"].as_u64()),
        (Some(10), Some(1))
    );
}

const QUARANTINE: &str = r#"
[[check]]
kind = "not_null"
columns = ["user_id"]
on_fail = "quarantine"

[[check]]
kind = "unique"
columns = ["event_id"]
scope = "table"
"#;

fn count(env: &Env, query: &str) -> i64 {
    let (code, rows) = env.json(&["sql", query]);
    assert_eq!(code, 0, "{rows}");
    rows[0]["n"].as_i64().unwrap_or_else(|| panic!("{rows}"))
}

fn with_quarantine(env: &Env, extra: &str) {
    std::fs::write(env.path("checks.toml"), format!("{QUARANTINE}{extra}")).unwrap();
}

#[test]
fn rows_failing_a_quarantine_check_are_set_aside_and_the_rest_published() {
    let env = Env::new();
    with_quarantine(&env, "");
    // Every seventh user is null: 143 of 1,000 rows.
    write(&env.path("raw/a.parquet"), &events(0..1_000, true));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["rows"], 857, "{report}");
    assert_eq!(report["quarantine"]["table"], "ns.events__quarantine");
    assert_eq!(report["quarantine"]["rows"], 143);
    let nn = check(&report, "not_null(user_id)");
    assert_eq!(
        (nn["status"].as_str(), nn["rows_quarantined"].as_u64()),
        (Some("warn"), Some(143))
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM ns.events"), 857);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM ns.events WHERE user_id IS NULL"
        ),
        0
    );
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM ns.events__quarantine"),
        143
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM ns.events__quarantine WHERE user_id IS NULL \
             AND _sluice_failed_checks = ['not_null(user_id)'] \
             AND _sluice_source_file LIKE '%/raw/a.parquet'",
        ),
        143
    );
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM ns.events__quarantine WHERE _sluice_run_id = '{run_id}'"
            ),
        ),
        143
    );
    assert_eq!(env.branches(), ["main"]);
    // Other engines read both tables.
    if python_available("quarantine read back", "pyiceberg.catalog.sql, pyarrow") {
        let read = with_pyiceberg(
            &env,
            r#"
main = catalog.load_table("ns.events").scan().to_arrow()
aside = catalog.load_table("ns.events__quarantine").scan().to_arrow()
checks = set(tuple(c) for c in aside.column("_sluice_failed_checks").to_pylist())
print(main.num_rows, aside.num_rows, sorted(checks))
"#,
        );
        assert_eq!(read, "857 143 [('not_null(user_id)',)]");
    }
}

#[test]
fn too_many_rows_to_set_aside_publish_nothing_in_either_table() {
    let env = Env::new();
    with_quarantine(&env, "\n[quarantine]\nmax_fraction = 0.05\n");
    write(&env.path("raw/a.parquet"), &events(0..100, false));
    assert_eq!(env.run("raw").0, 0);
    write(&env.path("raw/b.parquet"), &events(100..1_100, true));
    let (code, report) = env.run("raw");
    assert_eq!(code, 3, "{report}");
    let nn = check(&report, "not_null(user_id)");
    assert_eq!(nn["status"], "fail", "{nn}");
    assert!(
        nn["message"]
            .as_str()
            .unwrap()
            .contains("over [quarantine] max_fraction 0.05"),
        "{nn}"
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM ns.events"), 100);
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM ns.events__quarantine"),
        0
    );
    assert_eq!(env.branches(), ["main"]);
    let run_id = report["run_id"].as_str().unwrap();
    // The run created the quarantine table, whose `main` is an empty first snapshot: that
    // snapshot's manifest list, written in the run's directory, is all that stays.
    let left: Vec<_> = walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(run_id))
        .collect();
    assert!(
        left.len() <= 1
            && left.iter().all(|p| {
                let p = p.to_string_lossy();
                p.contains("events__quarantine/metadata/") && p.contains("/snap-")
            }),
        "no file of the run is left but the new table's first snapshot: {left:?}"
    );
}

#[test]
fn a_crash_between_the_two_tables_writes_leaves_neither() {
    let env = Env::new();
    with_quarantine(&env, "");
    write(&env.path("raw/a.parquet"), &events(0..100, false));
    assert_eq!(env.run("raw").0, 0);
    write(&env.path("raw/b.parquet"), &events(100..300, true));
    crate::crash::kill_at(&env, "quarantine", "raw");
    let out = env.sluice(&["recover"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM ns.events"), 100);
    assert_eq!(env.branches(), ["main"]);
    // The killed run's files are gone from both tables; the next run publishes both.
    let leftovers: Vec<_> = walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("events__quarantine/data"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM ns.events"),
        100 + 172
    );
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM ns.events__quarantine"),
        28
    );
}

#[test]
fn quarantine_is_refused_in_register_mode_before_anything_is_written() {
    let env = Env::new();
    with_quarantine(&env, "");
    write(&env.path("raw/a.parquet"), &events(0..10, true));
    let (code, report) = env.json(&run_args("raw", &["--mode", "register"]));
    assert_eq!(code, 1, "{report}");
    let error = report["error"].as_str().unwrap_or_default().to_string();
    let out = env.sluice(&run_args("raw", &["--mode", "register"]));
    let text = format!("{error}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("cannot quarantine rows into ns.events__quarantine: register mode"),
        "{text}"
    );
    let (_, tables) = env.json(&["tables"]);
    assert_eq!(tables, serde_json::json!([]), "nothing was created");
}

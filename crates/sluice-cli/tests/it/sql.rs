//! `sluice sql` and `sluice scan --where`, through the binary.

use crate::common::*;

/// ns.events with ids 0..50 tagged `v1`, then 50..80 on main.
fn two_loads() -> Env {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..50, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    let out = env.sluice(&["tag", "create", "ns.events", "v1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write(&env.path("raw/b.parquet"), &events(50..80, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    env
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sql_reads_each_ref_and_joins_across_refs() {
    let env = two_loads();
    let (code, rows) = env.json(&[
        "sql",
        r#"SELECT (SELECT count(*) FROM ns.events) AS main_rows,
                  (SELECT count(*) FROM ns."events@v1") AS v1_rows,
                  (SELECT count(*) FROM ns.events m LEFT JOIN "ns.events@v1" t
                     ON m.event_id = t.event_id WHERE t.event_id IS NULL) AS added"#,
    ]);
    assert_eq!(code, 0, "{rows}");
    assert_eq!(rows[0]["main_rows"], 80, "{rows}");
    assert_eq!(rows[0]["v1_rows"], 50, "{rows}");
    assert_eq!(rows[0]["added"], 30, "{rows}");
}

#[test]
fn sql_writes_csv_and_parquet_files_whole() {
    let env = two_loads();
    let out = env.sluice(&[
        "sql",
        "SELECT event_id, amount FROM ns.events WHERE event_id < 3 ORDER BY event_id",
        "--format",
        "csv",
        "--output",
        "few.csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(env.path("few.csv")).unwrap();
    assert_eq!(csv, "event_id,amount\n0,0.0\n1,1.0\n2,2.0\n");

    let out = env.sluice(&[
        "sql",
        "SELECT * FROM ns.events WHERE event_type IS NOT NULL",
        "--format",
        "parquet",
        "--output",
        "all.parquet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = std::fs::File::open(env.path("all.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 80);

    // A query that fails leaves no file behind.
    let out = env.sluice(&[
        "sql",
        "SELECT 1 / (event_id - 40) AS x FROM ns.events",
        "--format",
        "csv",
        "--output",
        "bad.csv",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!env.path("bad.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let out = env.sluice(&["sql", "SELECT 1", "--format", "parquet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
}

#[test]
fn sql_errors_name_the_problem_and_explain_shows_pruning() {
    let env = two_loads();
    for (query, expected) in [
        ("SELEC event_id FROM ns.events", "does not parse"),
        ("SELECT nope FROM ns.events", "nope"),
        ("SELECT * FROM ns.\"events@nightly\"", "nightly"),
        ("SELECT * FROM ns.missing", "sluice tables"),
        ("DROP TABLE ns.events", "DROP TABLE is refused"),
    ] {
        let out = env.sluice(&["sql", query]);
        assert_eq!(out.status.code(), Some(1), "{query}");
        let text = stderr(&out);
        assert!(text.contains(expected), "{query}: {text}");
        assert!(!text.contains("DataFusionError"), "{query}: {text}");
    }
    let out = env.sluice(&[
        "sql",
        "EXPLAIN SELECT count(*) FROM ns.events WHERE event_id >= 60",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    // The second load's file alone holds ids of 60 and more.
    assert!(plan.contains("files=1 of 2"), "{plan}");
    assert!(plan.contains("predicate=[event_id >= 60]"), "{plan}");
}

#[test]
fn scan_where_filters_rows_and_keeps_the_ref() {
    let env = two_loads();
    let (code, rows) = env.json(&[
        "scan",
        "ns.events",
        "--where",
        "event_id >= 45 AND event_type = 'view'",
        "--columns",
        "event_id,event_type",
    ]);
    assert_eq!(code, 0, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 35);
    for row in rows {
        assert!(row["event_id"].as_i64().unwrap() >= 45, "{row}");
        assert_eq!(row["event_type"], "view");
        assert_eq!(row.as_object().unwrap().len(), 2, "{row}");
    }
    let (code, at_v1) = env.json(&["scan", "ns.events@v1", "--where", "event_id >= 45"]);
    assert_eq!(code, 0, "{at_v1}");
    assert_eq!(at_v1.as_array().unwrap().len(), 5);

    let out = env.sluice(&["scan", "ns.events", "--where", "amout > 1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("--where") && text.contains("amout"), "{text}");
}

/// A checks file with the usual checks and these `sql` ones.
fn with_sql_checks(env: &Env, sql: &str) {
    std::fs::write(env.path("checks.toml"), format!("{CHECKS}\n{sql}")).unwrap();
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[test]
fn a_sql_check_that_returns_rows_fails_the_run_with_samples() {
    let env = Env::new();
    write(&env.path("good/a.parquet"), &events(0..10, false));
    assert_eq!(env.run("good").0, 0);
    with_sql_checks(
        &env,
        r#"
[[check]]
name = "big_amounts"
kind = "sql"
query = "SELECT event_id, amount FROM {{ this }} WHERE amount >= 37 ORDER BY event_id"

[[check]]
name = "rows_on_the_branch"
kind = "sql"
severity = "warn"
query = "SELECT count(*) AS n FROM {{ this }} HAVING count(*) <> 40"
"#,
    );
    write(&env.path("bad/b.parquet"), &events(10..40, false));
    let (code, report) = env.run("bad");
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["status"], "audit_failed");
    let big = check(&report, "big_amounts");
    assert_eq!(big["status"], "fail", "{big}");
    assert_eq!(big["kind"], "sql");
    assert_eq!(big["evidence"], "query");
    assert_eq!(big["rows_failing"], 3, "{big}");
    assert_eq!(big["samples"][0]["event_id"], 37, "{big}");
    assert_eq!(big["samples"][0]["amount"], 37.0, "{big}");
    // The branch held main's 10 rows and the 30 new ones: the count check passed.
    assert_eq!(check(&report, "rows_on_the_branch")["status"], "pass");
    assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
    assert!(env.branches().iter().all(|b| !b.starts_with("sluice/")));

    // The same checks pass on data without big amounts, and the commit says what ran.
    std::fs::remove_dir_all(env.path("bad")).unwrap();
    write(&env.path("fine/c.parquet"), &events(10..30, false));
    let mut ids: Vec<i64> = (0..10).collect();
    ids.extend(10..30);
    with_sql_checks(
        &env,
        r#"
[[check]]
name = "big_amounts"
kind = "sql"
query = "SELECT event_id FROM {{ this }} WHERE amount >= 37"
"#,
    );
    let (code, report) = env.run("fine");
    assert_eq!(code, 0, "{report}");
    assert_eq!(check(&report, "big_amounts")["status"], "pass");
    assert_eq!(env.event_ids("ns.events"), ids);
    let (_, log) = env.json(&["log", "ns.events", "--limit", "1"]);
    let audit = log[0]["summary"]["sluice.audit"]
        .as_str()
        .unwrap_or_default();
    assert!(audit.contains("1 sql check"), "{log}");
}

#[test]
fn an_invalid_sql_check_fails_before_anything_is_written() {
    let env = Env::new();
    with_sql_checks(
        &env,
        r#"
[[check]]
name = "broken"
kind = "sql"
query = "SELEC * FROM {{ this }}"
"#,
    );
    write(&env.path("raw/a.parquet"), &events(0..10, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 1, "{report}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("check `broken`"), "{error}");
    assert!(error.contains("SELEC"), "{error}");
    // Not even the table was created, and the warehouse holds no data file.
    let (_, tables) = env.json(&["tables"]);
    assert_eq!(tables.as_array().map(Vec::len), Some(0), "{tables}");
    let data: Vec<_> = walk(&env.path(".sluice"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(data.is_empty(), "{data:?}");
}

#[test]
fn a_sql_check_reads_other_tables_and_check_runs_it_ad_hoc() {
    let env = Env::new();
    // A table of known users, written once.
    write(&env.path("users/u.parquet"), &events(0..5, false));
    let out = env.sluice(&["run", "--source", "users", "--table", "ns.users"]);
    assert!(out.status.success(), "{}", stderr(&out));
    with_sql_checks(
        &env,
        r#"
[[check]]
name = "unknown_users"
kind = "sql"
query = """
SELECT e.event_id, e.user_id FROM {{ this }} e
LEFT JOIN ns.users u ON e.user_id = u.user_id
WHERE u.user_id IS NULL
"""
"#,
    );
    write(&env.path("raw/a.parquet"), &events(0..8, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 3, "{report}");
    let unknown = check(&report, "unknown_users");
    assert_eq!(unknown["rows_failing"], 3, "{unknown}");

    // `sluice check` runs the same query against any ref.
    let (code, audit) = env.json(&["check", "ns.users", "--checks", "checks.toml"]);
    assert_eq!(code, 0, "{audit}");
    let unknown = check(&audit, "unknown_users");
    assert_eq!(unknown["status"], "pass", "{unknown}");
}

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

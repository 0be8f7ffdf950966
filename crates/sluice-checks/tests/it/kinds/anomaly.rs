//! `anomaly`: a run's metric against the history of published runs, and the metrics a run
//! records for the next ones.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use sluice_checks::{CheckResult, CheckSuite, EvalOptions, Metric, RunMetrics, Status};

use crate::{batch, run_time};

/// A batch of `rows` rows of which `nulls` have a null `user_id`.
fn events(rows: usize, nulls: usize) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
    let users: ArrayRef = Arc::new(Int64Array::from(
        (0..rows)
            .map(|i| (i >= nulls).then_some((i % 97) as i64))
            .collect::<Vec<_>>(),
    ));
    let kinds: ArrayRef = Arc::new(StringArray::from(
        (0..rows)
            .map(|i| ["view", "click"][i % 2])
            .collect::<Vec<_>>(),
    ));
    batch(vec![
        ("event_id", ids),
        ("user_id", users),
        ("event_type", kinds),
    ])
}

/// The metrics a run of `batch` records (audited by a check reading user_id and event_type).
fn recorded(batch: &RecordBatch) -> RunMetrics {
    let suite = CheckSuite::from_toml_str(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\", \"event_type\"]\nseverity = \"warn\"\n",
    )
    .unwrap();
    let mut ev = suite.evaluator(&batch.schema(), EvalOptions::at(run_time()));
    ev.update(batch).unwrap();
    ev.metrics()
}

fn judge(toml: &str, history: Vec<RunMetrics>, batch: &RecordBatch) -> CheckResult {
    let suite = CheckSuite::from_toml_str(toml).unwrap();
    let mut ev = suite.evaluator(&batch.schema(), EvalOptions::at(run_time()));
    assert!(ev.wants_history());
    ev.set_history(history);
    ev.update(batch).unwrap();
    ev.finish().checks.remove(0)
}

/// Twenty runs of about 10,000 rows, newest first, none with a null user_id.
fn twenty_runs() -> Vec<RunMetrics> {
    (0..20)
        .map(|i| recorded(&events(9_800 + (i * 37) % 400, 0)))
        .collect()
}

#[test]
fn a_tenth_of_the_usual_rows_fails_with_observed_and_expected() {
    let history = twenty_runs();
    let r = judge(
        "[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\n",
        history.clone(),
        &events(1_000, 0),
    );
    assert_eq!(r.name, "anomaly(row_count)");
    assert_eq!(r.status, Status::Fail, "{}", r.message);
    assert!(
        r.message.starts_with("row_count 1000 vs 99")
            && r.message.contains("mean of the last 20 published runs"),
        "{}",
        r.message
    );
    assert!(r.message.contains("beyond ±50%"), "{}", r.message);
    assert_eq!(r.observed["value"], 1000.0);
    assert_eq!(r.observed["history"], 20);
    // A usual batch passes.
    let ok = judge(
        "[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\nmethod = \"zscore\"\nthreshold = 4\n",
        history,
        &events(10_000, 0),
    );
    assert_eq!(ok.status, Status::Pass, "{}", ok.message);
}

#[test]
fn a_null_rate_jump_fails_null_fraction() {
    let r = judge(
        "[[check]]\nkind = \"anomaly\"\nmetric = \"null_fraction\"\ncolumn = \"user_id\"\nthreshold = 0.1\nseverity = \"warn\"\n",
        twenty_runs(),
        &events(10_000, 3_000),
    );
    assert_eq!(r.name, "anomaly(null_fraction(user_id))");
    assert_eq!(r.status, Status::Warn, "{}", r.message);
    assert!(
        r.message
            .starts_with("null_fraction of user_id 0.3000 vs 0 expected"),
        "{}",
        r.message
    );
}

#[test]
fn too_little_history_passes_with_a_note() {
    let history: Vec<RunMetrics> = twenty_runs().into_iter().take(3).collect();
    let r = judge(
        "[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\n",
        history,
        &events(10, 0),
    );
    assert_eq!(r.status, Status::Pass);
    assert!(
        r.message.contains(
            "not judged: 3 earlier published run(s) recorded it, fewer than min_history = 5"
        ),
        "{}",
        r.message
    );
}

#[test]
fn direction_and_history_depth_limit_what_fails() {
    let history = twenty_runs();
    // Twice the rows: fails `both` and `up`, passes `down`.
    for (direction, status) in [
        ("both", Status::Fail),
        ("up", Status::Fail),
        ("down", Status::Pass),
    ] {
        let r = judge(
            &format!(
                "[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\ndirection = \"{direction}\"\n"
            ),
            history.clone(),
            &events(20_000, 0),
        );
        assert_eq!(r.status, status, "{direction}: {}", r.message);
    }
    let r = judge(
        "[[check]]\nkind = \"anomaly\"\nmetric = \"distinct\"\ncolumn = \"event_type\"\nhistory = 4\nmin_history = 2\n",
        history,
        &events(10_000, 0),
    );
    assert_eq!(r.status, Status::Pass, "{}", r.message);
    assert_eq!(r.observed["history"], 4);
    assert_eq!(r.observed["value"], 2.0);
}

#[test]
fn runs_record_rows_and_the_checked_columns_metrics() {
    let m = recorded(&events(1_000, 100));
    assert_eq!(m.rows, 1_000);
    assert_eq!(
        m.columns.keys().collect::<Vec<_>>(),
        ["event_type", "user_id"]
    );
    assert_eq!(m.value(Metric::NullFraction, Some("user_id")), Some(0.1));
    assert_eq!(m.value(Metric::Max, Some("user_id")), Some(96.0));
    assert_eq!(m.value(Metric::Distinct, Some("event_type")), Some(2.0));
    assert_eq!(m.value(Metric::Mean, Some("event_type")), None);
    // Split into partitions and merged: the same metrics.
    let suite = CheckSuite::from_toml_str(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\", \"event_type\"]\n",
    )
    .unwrap();
    let whole = events(1_000, 100);
    let mut ev = suite.evaluator(&whole.schema(), EvalOptions::at(run_time()));
    let mut other = ev.fork();
    ev.update(&whole.slice(0, 400)).unwrap();
    other.update(&whole.slice(400, 600)).unwrap();
    ev.merge(other).unwrap();
    assert_eq!(ev.metrics(), m);
}

#[test]
fn bad_anomaly_checks_are_refused_with_the_field_named() {
    let err = |toml: &str| CheckSuite::from_toml_str(toml).unwrap_err().to_string();
    assert!(err("[[check]]\nkind = \"anomaly\"\n").contains("needs `metric"));
    assert!(err("[[check]]\nkind = \"anomaly\"\nmetric = \"mean\"\n").contains("add `column"));
    assert!(
        err("[[check]]\nkind = \"anomaly\"\nmetric = \"median\"\n")
            .contains("unknown metric `median`")
    );
    assert!(
        err("[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\nwhere = \"a > 1\"\n")
            .contains("`where` does not apply")
    );
    assert!(
        err("[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\nmethod = \"iqr\"\n")
            .contains("iqr")
    );
    assert!(
        err("[[check]]\nkind = \"anomaly\"\nmetric = \"row_count\"\nmin_history = 30\n")
            .contains("greater than `history`")
    );
    // A metric the column cannot have is the check's error at run time, naming the column.
    let r = judge(
        "[[check]]\nkind = \"anomaly\"\nmetric = \"mean\"\ncolumn = \"event_type\"\n",
        Vec::new(),
        &events(10, 0),
    );
    assert_eq!(r.status, Status::Error);
    assert!(
        r.message
            .contains("column `event_type` is Utf8; metric `mean` needs a numeric column"),
        "{}",
        r.message
    );
}

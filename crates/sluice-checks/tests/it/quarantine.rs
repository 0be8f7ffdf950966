//! `on_fail = "quarantine"`: rows that fail are set aside instead of failing the batch.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use sluice_checks::{CheckSuite, EvalOptions, Status};

use crate::{batch, run_time};

const SUITE: &str = r#"
[[check]]
kind = "not_null"
columns = ["user_id"]
on_fail = "quarantine"

[[check]]
kind = "accepted_values"
column = "kind"
values = ["view", "click"]
on_fail = "quarantine"

[[check]]
kind = "unique"
columns = ["event_id"]
"#;

/// 200 rows: user_id null on rows 10 and 20, kind "bogus" on rows 20 and 30.
fn events() -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..200));
    let users: ArrayRef = Arc::new(Int64Array::from(
        (0..200)
            .map(|i| (i != 10 && i != 20).then_some(i % 7))
            .collect::<Vec<_>>(),
    ));
    let kinds: ArrayRef = Arc::new(StringArray::from(
        (0..200)
            .map(|i| if i == 20 || i == 30 { "bogus" } else { "view" })
            .collect::<Vec<_>>(),
    ));
    batch(vec![("event_id", ids), ("user_id", users), ("kind", kinds)])
}

fn options() -> EvalOptions {
    EvalOptions::at(run_time()).with_quarantine(true)
}

#[test]
fn failing_rows_are_set_aside_with_their_checks_and_the_rest_publishes() {
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    assert!(suite.quarantines());
    assert_eq!(suite.quarantine_table("ns.events"), "ns.events__quarantine");
    let b = events();
    let mut ev = suite.evaluator(&b.schema(), options());
    assert!(ev.quarantines());
    let split = ev.update_split(&b).unwrap().expect("rows set aside");
    assert_eq!(
        split.failed,
        vec![
            (10, vec!["not_null(user_id)".to_string()]),
            (
                20,
                vec![
                    "not_null(user_id)".to_string(),
                    "accepted_values(kind)".to_string()
                ]
            ),
            (30, vec!["accepted_values(kind)".to_string()]),
        ]
    );
    assert_eq!(split.keep.true_count(), 197);
    assert_eq!(
        ev.metrics().rows,
        197,
        "the metrics are of the published rows"
    );
    let report = ev.finish();
    assert!(report.publishable(), "{}", report.render_table());
    let nn = report.check("not_null(user_id)").unwrap();
    assert_eq!(
        (nn.status, nn.rows_quarantined, nn.rows_checked),
        (Status::Warn, 2, 200)
    );
    assert!(
        nn.message.ends_with("; set aside in quarantine"),
        "{}",
        nn.message
    );
    let unique = report.check("unique(event_id)").unwrap();
    assert_eq!((unique.status, unique.rows_checked), (Status::Pass, 197));
}

#[test]
fn too_many_rows_to_set_aside_fail_the_batch() {
    let per_check = SUITE.replace(
        "columns = [\"user_id\"]\non_fail = \"quarantine\"",
        "columns = [\"user_id\"]\non_fail = \"quarantine\"\nmax_quarantined_fraction = 0.005",
    );
    for (toml, check, why) in [
        (
            per_check.as_str(),
            "not_null(user_id)",
            "over its max_quarantined_fraction 0.005",
        ),
        (
            &*format!("{SUITE}\n[quarantine]\nmax_fraction = 0.01\n"),
            "accepted_values(kind)",
            "3 of 200 rows (1.5000%) in all, over [quarantine] max_fraction 0.01",
        ),
    ] {
        let suite = CheckSuite::from_toml_str(toml).unwrap();
        let b = events();
        let mut ev = suite.evaluator(&b.schema(), options());
        ev.update_split(&b).unwrap();
        let report = ev.finish();
        assert!(!report.publishable());
        let r = report.check(check).unwrap();
        assert_eq!(r.status, Status::Fail, "{}", r.message);
        assert!(r.message.contains(why), "{}", r.message);
    }
}

#[test]
fn without_a_caller_that_sets_rows_aside_quarantine_checks_fail() {
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    let b = events();
    let mut ev = suite.evaluator(&b.schema(), EvalOptions::at(run_time()));
    assert!(!ev.quarantines());
    assert!(ev.update_split(&b).unwrap().is_none());
    let report = ev.finish();
    assert_eq!(
        report.check("not_null(user_id)").unwrap().status,
        Status::Fail
    );
    assert_eq!(
        report.check("not_null(user_id)").unwrap().rows_quarantined,
        0
    );
}

#[test]
fn unique_sets_aside_repeats_and_keeps_the_first() {
    let suite = CheckSuite::from_toml_str(
        "[[check]]\nkind = \"unique\"\ncolumns = [\"event_id\"]\non_fail = \"quarantine\"\n",
    )
    .unwrap();
    assert!(suite.quarantine_needs_one_pass());
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 2, 3, 1]));
    let b = batch(vec![("event_id", ids)]);
    let mut ev = suite.evaluator(&b.schema(), options());
    let split = ev.update_split(&b).unwrap().unwrap();
    assert_eq!(
        split.failed.iter().map(|(row, _)| *row).collect::<Vec<_>>(),
        [2, 4]
    );
    // A later batch repeating a kept key is set aside too.
    let again: ArrayRef = Arc::new(Int64Array::from(vec![3, 4]));
    let split = ev
        .update_split(&batch(vec![("event_id", again)]))
        .unwrap()
        .unwrap();
    assert_eq!(
        split.failed,
        vec![(0, vec!["unique(event_id)".to_string()])]
    );
}

#[test]
fn quarantine_is_refused_where_it_cannot_apply() {
    let err = |toml: &str| CheckSuite::from_toml_str(toml).unwrap_err().to_string();
    assert!(
        err("[[check]]\nkind = \"row_count\"\nmin = 1\non_fail = \"quarantine\"\n")
            .contains("applies to row-level checks")
    );
    assert!(err("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\non_fail = \"quarantine\"\nmostly = 0.9\n")
        .contains("`mostly` does not apply"));
    assert!(
        err("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\non_fail = \"drop\"\n")
            .contains("unknown `on_fail = \"drop\"`")
    );
    assert!(err("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\non_fail = \"warn\"\nseverity = \"error\"\n")
        .contains("contradicts"));
    assert!(
        err("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\nmax_quarantined_fraction = 0.1\n")
            .contains("applies only with")
    );
    assert!(err("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\n\n[quarantine]\ntable = \"ns.bad\"\n")
        .contains("no check has on_fail"));
    assert!(err("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\non_fail = \"quarantine\"\n\n[quarantine]\ntable = \"bad\"\n")
        .contains("NAMESPACE.TABLE"));
    // on_fail = "warn" is severity = "warn".
    let suite = CheckSuite::from_toml_str(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\non_fail = \"warn\"\n",
    )
    .unwrap();
    assert_eq!(suite.checks()[0].severity(), sluice_checks::Severity::Warn);
}

//! The `not_null` kind.

use super::*;

pub(super) const NOT_NULL: &str = r#"
[[check]]
kind = "not_null"
columns = ["user_id"]
"#;

#[test]
fn not_null_pass() {
    let r = first(
        NOT_NULL,
        &[batch(vec![("user_id", ints(vec![Some(1), Some(2)]))])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 2, 0)
    );
    assert_eq!(r.name, "not_null(user_id)");
}

#[test]
fn not_null_fail_with_samples_and_key_columns() {
    let b = batch(vec![
        ("event_id", ints(vec![Some(10), Some(11), Some(12)])),
        ("user_id", ints(vec![Some(1), None, Some(3)])),
    ]);
    let suite = CheckSuite::from_toml_str(NOT_NULL).unwrap();
    let mut ev = suite.evaluator(
        &b.schema(),
        EvalOptions::at(run_time()).with_key_columns(["event_id"]),
    );
    ev.update(&b).unwrap();
    let report = ev.finish();
    let r = &report.checks[0];
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Fail, 3, 1)
    );
    assert_eq!(r.samples.len(), 1);
    assert_eq!(r.samples[0]["event_id"], json!(11));
    assert_eq!(r.samples[0]["user_id"], json!(null));
    assert_eq!(r.observed["null_rows"], json!(1));
    assert!(!report.publishable());
}

#[test]
fn not_null_mostly_edge() {
    let mut v: Vec<Option<i64>> = (0..1000).map(Some).collect();
    v[5] = None;
    let toml = format!("{NOT_NULL}mostly = 0.999\n");
    let r = first(&toml, &[batch(vec![("user_id", ints(v.clone()))])]);
    assert_eq!(
        (r.status, r.rows_failing),
        (Status::Pass, 1),
        "exactly at mostly passes"
    );
    v[6] = None;
    let r = first(&toml, &[batch(vec![("user_id", ints(v))])]);
    assert_eq!(
        (r.status, r.rows_failing),
        (Status::Fail, 2),
        "just below mostly fails"
    );
}

#[test]
fn not_null_several_columns_counts_rows_once_and_honours_where() {
    let b = batch(vec![
        ("a", ints(vec![None, None, Some(1), Some(1)])),
        ("b", ints(vec![None, Some(1), None, Some(1)])),
        ("k", strs(vec![Some("x"), Some("y"), Some("x"), Some("x")])),
    ]);
    let r = first(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"a\", \"b\"]\n",
        &[b.clone()],
    );
    assert_eq!((r.rows_checked, r.rows_failing), (4, 3));
    let r = first(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"a\", \"b\"]\nwhere = \"k = 'x'\"\n",
        &[b],
    );
    assert_eq!((r.rows_checked, r.rows_failing), (3, 2));
}

#[test]
fn not_null_empty_input_passes() {
    let b = batch(vec![("user_id", ints(vec![Some(1)]))]);
    let r = first(NOT_NULL, &[empty_like(&b)]);
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 0, 0)
    );
}

//! Every check kind: pass, fail, threshold edge, nulls, empty input.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use serde_json::json;
use sluice_checks::{CheckSuite, EvalOptions, Evidence, Status};

use crate::{audit, batch, first, run_time};

fn ints(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
fn strs(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
fn floats(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}
fn micros(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}
fn empty_like(b: &RecordBatch) -> RecordBatch {
    RecordBatch::new_empty(b.schema())
}

// ---------------------------------------------------------------- not_null

const NOT_NULL: &str = r#"
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

// ---------------------------------------------------------------- unique

const UNIQUE: &str = "[[check]]\nkind = \"unique\"\ncolumns = [\"id\"]\n";

#[test]
fn unique_pass() {
    let r = first(
        UNIQUE,
        &[batch(vec![("id", ints(vec![Some(3), Some(1), Some(2)]))])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 3, 0)
    );
}

#[test]
fn unique_fail_counts_repeated_rows_across_batches() {
    let b1 = batch(vec![("id", ints(vec![Some(1), Some(2), Some(2)]))]);
    let b2 = batch(vec![("id", ints(vec![Some(3), Some(3), Some(1)]))]);
    let r = first(UNIQUE, &[b1, b2]);
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Fail, 6, 3)
    );
    assert_eq!(r.observed["distinct_keys"], json!(3));
    assert_eq!(r.samples.len(), 3);
}

#[test]
fn unique_mostly_edge() {
    let mut v: Vec<Option<i64>> = (0..10).map(Some).collect();
    v[9] = Some(0);
    let toml = format!("{UNIQUE}mostly = 0.9\n");
    let r = first(&toml, &[batch(vec![("id", ints(v.clone()))])]);
    assert_eq!((r.status, r.rows_failing), (Status::Pass, 1));
    v[8] = Some(0);
    let r = first(&toml, &[batch(vec![("id", ints(v))])]);
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 2));
}

#[test]
fn unique_skips_null_keys() {
    let r = first(
        UNIQUE,
        &[batch(vec![(
            "id",
            ints(vec![Some(1), None, None, Some(2)]),
        )])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 2, 0)
    );
}

#[test]
fn unique_empty_input_passes() {
    let b = batch(vec![("id", ints(vec![Some(1)]))]);
    let r = first(UNIQUE, &[empty_like(&b)]);
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 0, 0)
    );
}

#[test]
fn unique_sequential_ids_in_runs_detect_overlaps() {
    let run = |a: i64, b: i64| batch(vec![("id", ints((a..b).map(Some).collect()))]);
    let r = first(UNIQUE, &[run(0, 100), run(100, 200), run(150, 160)]);
    assert_eq!((r.rows_checked, r.rows_failing), (210, 10));
    assert_eq!(r.samples[0]["id"], json!(150));
    // Random order falls back to hashing with the same counts.
    let shuffled = batch(vec![(
        "id",
        ints(vec![Some(5), Some(150), Some(7), Some(5)]),
    )]);
    let r = first(UNIQUE, &[run(0, 100), run(100, 200), shuffled]);
    assert_eq!((r.rows_checked, r.rows_failing), (204, 4));
}

#[test]
fn unique_string_and_composite_keys() {
    let b = batch(vec![
        ("s", strs(vec![Some("a"), Some("b"), Some("a"), None])),
        ("n", ints(vec![Some(1), Some(1), Some(2), Some(2)])),
    ]);
    let r = first(
        "[[check]]\nkind = \"unique\"\ncolumn = \"s\"\n",
        &[b.clone()],
    );
    assert_eq!((r.rows_checked, r.rows_failing), (3, 1));
    assert_eq!(r.samples[0]["s"], json!("a"));
    let r = first(
        "[[check]]\nkind = \"unique\"\ncolumns = [\"s\", \"n\"]\n",
        &[b.clone(), b],
    );
    assert_eq!(
        (r.name.as_str(), r.rows_checked, r.rows_failing),
        ("unique(s, n)", 6, 3)
    );
}

#[test]
fn unique_table_scope_against_existing_rows_in_any_order() {
    let toml = "[[check]]\nkind = \"unique\"\ncolumns = [\"id\"]\nscope = \"table\"\n";
    let suite = CheckSuite::from_toml_str(toml).unwrap();
    let existing = batch(vec![("id", ints(vec![Some(1), Some(2)]))]);
    let new = batch(vec![("id", ints(vec![Some(3), Some(2), Some(4), Some(4)]))]);
    for existing_first in [true, false] {
        let mut ev = suite.evaluator(&new.schema(), EvalOptions::at(run_time()));
        assert_eq!(ev.existing_columns(), ["id"]);
        if existing_first {
            ev.observe_existing(&existing).unwrap();
            ev.update(&new).unwrap();
        } else {
            ev.update(&new).unwrap();
            ev.observe_existing(&existing).unwrap();
        }
        let r = ev.finish().checks.remove(0);
        assert_eq!(
            (r.status, r.rows_checked, r.rows_failing),
            (Status::Fail, 4, 2)
        );
        assert_eq!(r.observed["conflicts_with_existing"], json!(1));
        assert_eq!(r.observed["duplicate_rows"], json!(1));
        assert!(
            r.samples.iter().any(|s| s["id"] == json!(2)),
            "{:?}",
            r.samples
        );
    }
    // Batch scope ignores the existing rows.
    let mut ev = CheckSuite::from_toml_str(UNIQUE)
        .unwrap()
        .evaluator(&new.schema(), EvalOptions::default());
    ev.observe_existing(&existing).unwrap();
    ev.update(&new).unwrap();
    assert_eq!(ev.finish().checks[0].rows_failing, 1);
}

#[test]
fn unique_table_scope_with_sequential_existing_ids() {
    let toml = "[[check]]\nkind = \"unique\"\ncolumns = [\"id\"]\nscope = \"table\"\n";
    let suite = CheckSuite::from_toml_str(toml).unwrap();
    let existing = batch(vec![("id", ints((0..1000).map(Some).collect()))]);
    let new = batch(vec![("id", ints((995..1005).map(Some).collect()))]);
    let mut ev = suite.evaluator(&new.schema(), EvalOptions::at(run_time()));
    ev.observe_existing(&existing).unwrap();
    ev.update(&new).unwrap();
    let r = ev.finish().checks.remove(0);
    assert_eq!((r.rows_checked, r.rows_failing), (10, 5));
    assert_eq!(r.samples.len(), 5);
    assert_eq!(r.samples[0]["id"], json!(995));
}

// ---------------------------------------------------------------- accepted_values

const ACCEPTED: &str = r#"
[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "purchase"]
"#;

#[test]
fn accepted_values_pass() {
    let r = first(
        ACCEPTED,
        &[batch(vec![(
            "event_type",
            strs(vec![Some("view"), Some("click")]),
        )])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 2, 0)
    );
}

#[test]
fn accepted_values_fail() {
    let r = first(
        ACCEPTED,
        &[batch(vec![(
            "event_type",
            strs(vec![Some("view"), Some("refund"), Some("VIEW")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 2));
    assert_eq!(r.samples[0]["event_type"], json!("refund"));
}

#[test]
fn accepted_values_mostly_edge() {
    let toml = format!("{ACCEPTED}mostly = 0.75\n");
    let mk = |bad: usize| {
        let v: Vec<Option<&str>> = (0..4)
            .map(|i| Some(if i < bad { "x" } else { "view" }))
            .collect();
        batch(vec![("event_type", strs(v))])
    };
    assert_eq!(first(&toml, &[mk(1)]).status, Status::Pass);
    assert_eq!(first(&toml, &[mk(2)]).status, Status::Fail);
}

#[test]
fn accepted_values_skip_nulls() {
    let r = first(
        ACCEPTED,
        &[batch(vec![(
            "event_type",
            strs(vec![None, Some("view"), None]),
        )])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 1, 0)
    );
}

#[test]
fn accepted_values_empty_input_passes() {
    let b = batch(vec![("event_type", strs(vec![Some("view")]))]);
    let r = first(ACCEPTED, &[empty_like(&b)]);
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 0));
}

#[test]
fn accepted_values_integers_and_other_types() {
    let b = batch(vec![
        (
            "code",
            Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(5)])) as ArrayRef,
        ),
        ("x", floats(vec![Some(0.5), Some(1.0), Some(2.0)])),
    ]);
    let r = first(
        "[[check]]\nkind = \"accepted_values\"\ncolumn = \"code\"\nvalues = [1, 2]\n",
        &[b.clone()],
    );
    assert_eq!(r.rows_failing, 1);
    let r = first(
        "[[check]]\nkind = \"accepted_values\"\ncolumn = \"x\"\nvalues = [0.5, 2]\n",
        &[b],
    );
    assert_eq!(r.rows_failing, 1);
}

// ---------------------------------------------------------------- range

const RANGE: &str = "[[check]]\nkind = \"range\"\ncolumn = \"amount\"\nmin = 0\nmax = 100\n";

#[test]
fn range_pass_reports_min_and_max() {
    let r = first(
        RANGE,
        &[batch(vec![(
            "amount",
            floats(vec![Some(0.0), Some(100.0), Some(5.5)]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Pass, 0));
    assert_eq!(r.observed["min"], json!(0.0));
    assert_eq!(r.observed["max"], json!(100.0));
}

#[test]
fn range_fail_and_exclusive_bounds() {
    let b = batch(vec![(
        "amount",
        floats(vec![Some(-1.0), Some(100.0), Some(f64::NAN), Some(0.0)]),
    )]);
    let r = first(RANGE, &[b.clone()]);
    assert_eq!(
        (r.status, r.rows_failing),
        (Status::Fail, 2),
        "-1 and NaN are out of range"
    );
    let r = first(
        &format!("{RANGE}min_inclusive = false\nmax_inclusive = false\n"),
        &[b],
    );
    assert_eq!(r.rows_failing, 4);
}

#[test]
fn range_mostly_edge() {
    let toml = format!("{RANGE}mostly = 0.5\n");
    let r = first(
        &toml,
        &[batch(vec![("amount", floats(vec![Some(-1.0), Some(1.0)]))])],
    );
    assert_eq!(r.status, Status::Pass);
    let r = first(
        &toml,
        &[batch(vec![(
            "amount",
            floats(vec![Some(-1.0), Some(-2.0), Some(1.0)]),
        )])],
    );
    assert_eq!(r.status, Status::Fail);
}

#[test]
fn range_skips_nulls() {
    let r = first(
        RANGE,
        &[batch(vec![("amount", floats(vec![None, Some(3.0), None]))])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 1, 0)
    );
}

#[test]
fn range_empty_input_passes() {
    let b = batch(vec![("amount", floats(vec![Some(1.0)]))]);
    let r = first(RANGE, &[empty_like(&b)]);
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 0));
    assert_eq!(r.observed["min"], json!(null));
}

#[test]
fn range_on_timestamps_dates_and_integers() {
    let day = 86_400_000_000i64;
    let base = 19_988 * day; // 2024-09-22
    let b = batch(vec![
        ("ts", micros(vec![Some(base), Some(base + day)])),
        (
            "d",
            Arc::new(Date32Array::from(vec![Some(19_988), Some(19_989)])) as ArrayRef,
        ),
        ("n", ints(vec![Some(1), Some(2)])),
    ]);
    let r = first(
        "[[check]]\nkind = \"range\"\ncolumn = \"ts\"\nmin = \"2024-09-22\"\nmax = 2024-09-22T23:59:59Z\n",
        &[b.clone()],
    );
    assert_eq!(r.rows_failing, 1);
    assert_eq!(r.observed["min"], json!("2024-09-22T00:00:00Z"));
    let r = first(
        "[[check]]\nkind = \"range\"\ncolumn = \"d\"\nmax = \"2024-09-22\"\n",
        &[b.clone()],
    );
    assert_eq!(r.rows_failing, 1);
    assert_eq!(r.observed["max"], json!("2024-09-23"));
    let r = first(
        "[[check]]\nkind = \"range\"\ncolumn = \"n\"\nmin = 1.5\n",
        &[b.clone()],
    );
    assert_eq!(r.rows_failing, 1);
    let r = first(
        "[[check]]\nkind = \"range\"\ncolumn = \"n\"\nmax = 2\nmax_inclusive = false\n",
        &[b.clone()],
    );
    assert_eq!(r.rows_failing, 1);
    let r = first(
        "[[check]]\nkind = \"range\"\ncolumn = \"ts\"\nmin = 5\n",
        &[b],
    );
    assert_eq!(r.status, Status::Error);
    assert!(r.message.contains("as a string"), "{}", r.message);
}

#[test]
fn range_with_where_filter() {
    let b = batch(vec![
        ("amount", floats(vec![Some(-1.0), Some(-2.0), Some(3.0)])),
        (
            "event_type",
            strs(vec![Some("view"), Some("purchase"), Some("purchase")]),
        ),
    ]);
    let r = first(
        &format!("{RANGE}where = \"event_type = 'purchase'\"\n"),
        &[b],
    );
    assert_eq!((r.rows_checked, r.rows_failing), (2, 1));
}

// ---------------------------------------------------------------- regex

const REGEX: &str =
    "[[check]]\nkind = \"regex\"\ncolumn = \"session_id\"\npattern = \"^s-[0-9a-f]{4}$\"\n";

#[test]
fn regex_pass() {
    let r = first(
        REGEX,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("s-00af"), Some("s-1234")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Pass, 0));
}

#[test]
fn regex_fail() {
    let r = first(
        REGEX,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("s-00af"), Some("x-1234")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 1));
    assert_eq!(r.samples[0]["session_id"], json!("x-1234"));
}

#[test]
fn regex_mostly_edge() {
    let toml = format!("{REGEX}mostly = 0.5\n");
    let r = first(
        &toml,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("bad"), Some("s-0000")]),
        )])],
    );
    assert_eq!(r.status, Status::Pass);
    let r = first(
        &toml,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("bad"), Some("bad"), Some("s-0000")]),
        )])],
    );
    assert_eq!(r.status, Status::Fail);
}

#[test]
fn regex_skips_nulls() {
    let r = first(
        REGEX,
        &[batch(vec![(
            "session_id",
            strs(vec![None, Some("s-0000")]),
        )])],
    );
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 1));
}

#[test]
fn regex_empty_input_passes() {
    let b = batch(vec![("session_id", strs(vec![Some("s")]))]);
    assert_eq!(first(REGEX, &[empty_like(&b)]).status, Status::Pass);
}

// ---------------------------------------------------------------- length

const LENGTH: &str = "[[check]]\nkind = \"length\"\ncolumn = \"country\"\nmin = 2\nmax = 2\n";

#[test]
fn length_pass() {
    let r = first(
        LENGTH,
        &[batch(vec![("country", strs(vec![Some("US"), Some("IT")]))])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Pass, 0));
    assert_eq!(r.observed["max_length"], json!(2));
}

#[test]
fn length_fail_counts_characters_not_bytes() {
    let r = first(
        LENGTH,
        &[batch(vec![(
            "country",
            strs(vec![Some("USA"), Some("é"), Some("éé")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 2));
}

#[test]
fn length_mostly_edge() {
    let toml = format!("{LENGTH}mostly = 0.5\n");
    assert_eq!(
        first(
            &toml,
            &[batch(vec![(
                "country",
                strs(vec![Some("USA"), Some("US")])
            )])]
        )
        .status,
        Status::Pass
    );
    assert_eq!(
        first(
            &toml,
            &[batch(vec![(
                "country",
                strs(vec![Some("USA"), Some("U"), Some("US")])
            )])]
        )
        .status,
        Status::Fail
    );
}

#[test]
fn length_skips_nulls() {
    let r = first(
        LENGTH,
        &[batch(vec![("country", strs(vec![None, Some("US")]))])],
    );
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 1));
}

#[test]
fn length_empty_input_passes() {
    let b = batch(vec![("country", strs(vec![Some("US")]))]);
    assert_eq!(first(LENGTH, &[empty_like(&b)]).status, Status::Pass);
}

// ---------------------------------------------------------------- row_count

const ROW_COUNT: &str = "[[check]]\nkind = \"row_count\"\nmin = 3\nmax = 4\n";

#[test]
fn row_count_pass_and_fail() {
    let b = |n: i64| batch(vec![("id", ints((0..n).map(Some).collect()))]);
    let r = first(ROW_COUNT, &[b(2), b(2)]);
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 4));
    let r = first(ROW_COUNT, &[b(3), b(2)]);
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.observed["rows"], json!(5));
}

#[test]
fn row_count_edges_are_inclusive() {
    let b = |n: i64| batch(vec![("id", ints((0..n).map(Some).collect()))]);
    assert_eq!(first(ROW_COUNT, &[b(3)]).status, Status::Pass);
    assert_eq!(first(ROW_COUNT, &[b(2)]).status, Status::Fail);
}

#[test]
fn row_count_counts_rows_with_nulls_and_honours_where() {
    let b = batch(vec![("id", ints(vec![None, None, None]))]);
    assert_eq!(first(ROW_COUNT, &[b.clone()]).rows_checked, 3);
    let r = first(
        "[[check]]\nkind = \"row_count\"\nmin = 1\nwhere = \"id IS NOT NULL\"\n",
        &[b],
    );
    assert_eq!((r.status, r.rows_checked), (Status::Fail, 0));
}

#[test]
fn row_count_empty_input() {
    let b = batch(vec![("id", ints(vec![Some(1)]))]);
    assert_eq!(first(ROW_COUNT, &[empty_like(&b)]).status, Status::Fail);
    assert_eq!(
        first(
            "[[check]]\nkind = \"row_count\"\nmax = 0\n",
            &[empty_like(&b)]
        )
        .status,
        Status::Pass
    );
}

// ---------------------------------------------------------------- freshness

const FRESHNESS: &str = "[[check]]\nkind = \"freshness\"\ncolumn = \"ts\"\nmax_age = \"2h\"\n";

fn hours_before_run(h: i64) -> Option<i64> {
    Some(run_time().timestamp_micros() - h * 3_600_000_000)
}

#[test]
fn freshness_pass() {
    let r = first(
        FRESHNESS,
        &[batch(vec![(
            "ts",
            micros(vec![hours_before_run(5), hours_before_run(1)]),
        )])],
    );
    assert_eq!(r.status, Status::Pass);
    assert_eq!(r.observed["newest"], json!("2024-09-22T11:00:00Z"));
    assert_eq!(r.observed["age"], json!("1h"));
}

#[test]
fn freshness_fail() {
    let r = first(
        FRESHNESS,
        &[batch(vec![("ts", micros(vec![hours_before_run(3)]))])],
    );
    assert_eq!(r.status, Status::Fail);
    assert!(r.message.contains("3h"), "{}", r.message);
}

#[test]
fn freshness_edge_exactly_max_age_passes() {
    let at_edge = first(
        FRESHNESS,
        &[batch(vec![("ts", micros(vec![hours_before_run(2)]))])],
    );
    assert_eq!(at_edge.status, Status::Pass);
    let past = first(
        FRESHNESS,
        &[batch(vec![(
            "ts",
            micros(vec![hours_before_run(2).map(|v| v - 1)]),
        )])],
    );
    assert_eq!(past.status, Status::Fail);
}

#[test]
fn freshness_ignores_nulls_and_fails_on_all_nulls() {
    let r = first(
        FRESHNESS,
        &[batch(vec![("ts", micros(vec![None, hours_before_run(1)]))])],
    );
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 1));
    let r = first(FRESHNESS, &[batch(vec![("ts", micros(vec![None, None]))])]);
    assert_eq!(r.status, Status::Fail);
    assert!(r.message.contains("no non-null value"), "{}", r.message);
}

#[test]
fn freshness_empty_input_fails() {
    let b = batch(vec![("ts", micros(vec![hours_before_run(1)]))]);
    assert_eq!(first(FRESHNESS, &[empty_like(&b)]).status, Status::Fail);
}

// ---------------------------------------------------------------- schema

fn schema_batch() -> RecordBatch {
    batch(vec![
        ("event_id", ints(vec![Some(1)])),
        ("ts", micros(vec![Some(0)])),
        ("extra", strs(vec![None])),
    ])
}

#[test]
fn schema_pass() {
    let r = first(
        "[[check]]\nkind = \"schema\"\ncolumns = { event_id = \"int64\", ts = \"timestamp(us, UTC)\" }\n",
        &[schema_batch()],
    );
    assert_eq!((r.status, r.evidence), (Status::Pass, Evidence::Schema));
}

#[test]
fn schema_fail_names_missing_and_mistyped_columns() {
    let r = first(
        "[[check]]\nkind = \"schema\"\ncolumns = { event_id = \"string\", user_id = \"int64\" }\n",
        &[schema_batch()],
    );
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.message.contains("missing column `user_id`"),
        "{}",
        r.message
    );
    assert!(
        r.message
            .contains("column `event_id` is int64, expected string"),
        "{}",
        r.message
    );
}

#[test]
fn schema_forbid_extra_is_the_edge() {
    let toml = "[[check]]\nkind = \"schema\"\ncolumns = [\"event_id\", \"ts\"]\n";
    assert_eq!(first(toml, &[schema_batch()]).status, Status::Pass);
    let r = first(&format!("{toml}forbid_extra = true\n"), &[schema_batch()]);
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.message.contains("unexpected column `extra`"),
        "{}",
        r.message
    );
}

#[test]
fn schema_accepts_nullable_columns_full_of_nulls() {
    let b = batch(vec![("event_id", ints(vec![None, None]))]);
    assert_eq!(
        first(
            "[[check]]\nkind = \"schema\"\ncolumns = { event_id = \"int64\" }\n",
            &[b]
        )
        .status,
        Status::Pass
    );
}

#[test]
fn schema_empty_input_is_judged_on_the_schema() {
    let r = first(
        "[[check]]\nkind = \"schema\"\ncolumns = { event_id = \"int64\" }\n",
        &[empty_like(&schema_batch())],
    );
    assert_eq!(r.status, Status::Pass);
}

// ---------------------------------------------------------------- expression

const EXPRESSION: &str =
    "[[check]]\nkind = \"expression\"\nexpr = \"amount >= 0 OR event_type <> 'purchase'\"\n";

fn expr_batch(amounts: Vec<Option<f64>>, types: Vec<Option<&str>>) -> RecordBatch {
    batch(vec![
        ("amount", floats(amounts)),
        ("event_type", strs(types)),
    ])
}

#[test]
fn expression_pass() {
    let r = first(
        EXPRESSION,
        &[expr_batch(
            vec![Some(1.0), Some(-1.0)],
            vec![Some("purchase"), Some("view")],
        )],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 2, 0)
    );
}

#[test]
fn expression_fail() {
    let r = first(
        EXPRESSION,
        &[expr_batch(
            vec![Some(-1.0), Some(2.0)],
            vec![Some("purchase"), Some("purchase")],
        )],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 1));
    assert_eq!(r.samples[0]["amount"], json!(-1.0));
    assert_eq!(r.samples[0]["event_type"], json!("purchase"));
}

#[test]
fn expression_mostly_edge() {
    let toml = format!("{EXPRESSION}mostly = 0.5\n");
    let b = expr_batch(
        vec![Some(-1.0), Some(2.0)],
        vec![Some("purchase"), Some("purchase")],
    );
    assert_eq!(first(&toml, &[b]).status, Status::Pass);
    let b = expr_batch(
        vec![Some(-1.0), Some(-2.0), Some(2.0)],
        vec![Some("purchase"); 3],
    );
    assert_eq!(first(&toml, &[b]).status, Status::Fail);
}

#[test]
fn expression_null_result_passes() {
    // NULL >= 0 is unknown and 'purchase' <> 'purchase' is false: unknown, which passes.
    let r = first(
        EXPRESSION,
        &[expr_batch(vec![None], vec![Some("purchase")])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 1, 0)
    );
    let r = first(
        "[[check]]\nkind = \"expression\"\nexpr = \"amount IS NOT NULL\"\n",
        &[expr_batch(vec![None], vec![Some("purchase")])],
    );
    assert_eq!(r.rows_failing, 1);
}

#[test]
fn expression_empty_input_passes() {
    let b = expr_batch(vec![Some(1.0)], vec![Some("view")]);
    assert_eq!(first(EXPRESSION, &[empty_like(&b)]).status, Status::Pass);
}

// ---------------------------------------------------------------- errors and report

#[test]
fn checks_that_cannot_run_are_errors_never_passes() {
    let b = batch(vec![
        ("n", ints(vec![Some(1)])),
        ("s", strs(vec![Some("x")])),
    ]);
    let report = audit(
        r#"
[[check]]
kind = "not_null"
columns = ["missing"]
[[check]]
kind = "regex"
column = "n"
pattern = "x"
[[check]]
kind = "expression"
expr = "s > 1 AND"
"#
        .replace("expr = \"s > 1 AND\"", "expr = \"s + 1 > 0\"")
        .as_str(),
        &[b],
    );
    assert!(
        report.checks.iter().all(|c| c.status == Status::Error),
        "{report:#?}"
    );
    assert!(
        report.checks[0]
            .message
            .contains("unknown column `missing`")
    );
    assert!(report.checks[1].message.contains("needs a string column"));
    assert!(!report.publishable());
}

#[test]
fn warn_severity_does_not_block_publishing_but_error_does() {
    let b = batch(vec![("user_id", ints(vec![None]))]);
    let warn = audit(&format!("{NOT_NULL}severity = \"warn\"\n"), &[b.clone()]);
    assert_eq!(warn.checks[0].status, Status::Warn);
    assert!(warn.publishable());
    let err = audit(NOT_NULL, &[b.clone()]);
    assert!(!err.publishable());
    // A warn-severity check that cannot run is an error but does not block.
    let broken = audit(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"nope\"]\nseverity = \"warn\"\n",
        &[b],
    );
    assert_eq!(broken.checks[0].status, Status::Error);
    assert!(broken.publishable());
}

#[test]
fn report_round_trips_through_json_and_renders_a_table() {
    let b = batch(vec![("user_id", ints(vec![Some(1), None]))]);
    let report = audit(&format!("{NOT_NULL}{ROW_COUNT}"), &[b]);
    let json = report.to_json_pretty();
    let back: sluice_checks::AuditReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["checks"][0]["status"], json!("fail"));
    assert_eq!(value["checks"][0]["kind"], json!("not_null"));
    assert_eq!(value["checks"][0]["severity"], json!("error"));
    let table = report.render_table();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("FAIL ") && l.contains("not_null(user_id)")),
        "{table}"
    );
    assert!(table.contains("user_id=null"), "{table}");
    assert!(
        table.contains("NOT PUBLISHABLE: 2 checks, 0 pass, 0 warn, 2 fail, 0 error"),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "no colour codes");
}

#[test]
fn update_rejects_batches_without_required_columns_or_with_changed_types() {
    let b = batch(vec![
        ("user_id", ints(vec![Some(1)])),
        ("x", ints(vec![Some(1)])),
    ]);
    let suite = CheckSuite::from_toml_str(NOT_NULL).unwrap();
    let mut ev = suite.evaluator(&b.schema(), EvalOptions::default());
    let no_user = batch(vec![("x", ints(vec![Some(1)]))]);
    let err = ev.update(&no_user).unwrap_err();
    assert!(
        matches!(err, sluice_checks::Error::MissingColumn { ref column, .. } if column == "user_id"),
        "{err}"
    );
    let retyped = batch(vec![("user_id", strs(vec![Some("1")]))]);
    assert!(matches!(
        ev.update(&retyped),
        Err(sluice_checks::Error::ColumnTypeChanged { .. })
    ));
    // A projection with only the required columns is enough.
    assert_eq!(ev.required_columns(), ["user_id"]);
    ev.update(&batch(vec![("user_id", ints(vec![None]))]))
        .unwrap();
    assert_eq!(ev.finish().checks[0].rows_failing, 1);
}

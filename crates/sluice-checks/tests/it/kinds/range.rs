//! The `range` kind on numbers, dates and timestamps.

use super::*;

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

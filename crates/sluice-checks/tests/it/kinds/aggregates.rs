//! The kinds that judge all rows at once: `row_count`, `freshness`, `schema`.

use super::*;

pub(super) const ROW_COUNT: &str = "[[check]]\nkind = \"row_count\"\nmin = 3\nmax = 4\n";

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

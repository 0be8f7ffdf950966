//! The `unique` kind, within the new rows and against the table.

use super::*;

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

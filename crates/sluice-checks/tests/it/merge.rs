//! Property: states merge. Random data split into random batches gives the same report as one
//! batch, fed in order or through forked evaluators merged; and both equal a naive reference.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use proptest::prelude::*;
use sluice_checks::{AuditReport, CheckSuite, EvalOptions, Status};

use crate::{batch, run_time};

const SUITE: &str = r#"
[[check]]
kind = "not_null"
columns = ["a"]
mostly = 0.8

[[check]]
kind = "unique"
columns = ["a"]

[[check]]
kind = "unique"
columns = ["a", "s"]

[[check]]
kind = "unique"
column = "s"
mostly = 0.5

[[check]]
kind = "accepted_values"
column = "s"
values = ["a", "b", "ab"]

[[check]]
kind = "range"
column = "x"
min = -5
max = 5
max_inclusive = false

[[check]]
kind = "regex"
column = "s"
pattern = "^a"

[[check]]
kind = "length"
column = "s"
min = 1
max = 2

[[check]]
kind = "row_count"
min = 3

[[check]]
kind = "expression"
expr = "a > 0 OR s = 'b'"
where = "x IS NOT NULL"
"#;

#[derive(Debug, Clone)]
struct Row {
    a: Option<i64>,
    s: Option<String>,
    x: Option<f64>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.9, -3i64..12),
        proptest::option::weighted(
            0.9,
            prop_oneof![
                Just("a"),
                Just("b"),
                Just("ab"),
                Just("abc"),
                Just(""),
                Just("c")
            ],
        ),
        proptest::option::weighted(0.8, -8.0f64..8.0),
    )
        .prop_map(|(a, s, x)| Row {
            a,
            s: s.map(str::to_string),
            x,
        })
}

fn to_batch(rows: &[Row]) -> RecordBatch {
    batch(vec![
        (
            "a",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.a).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "s",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.s.clone()).collect::<Vec<_>>(),
            )),
        ),
        (
            "x",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.x).collect::<Vec<_>>(),
            )),
        ),
    ])
}

/// Counts `(checked, failing)` per check, row by row, the obvious way.
fn reference(rows: &[Row]) -> Vec<(u64, u64)> {
    let n = rows.len() as u64;
    let count = |f: &dyn Fn(&Row) -> Option<bool>| {
        let judged: Vec<bool> = rows.iter().filter_map(f).collect();
        (
            judged.len() as u64,
            judged.iter().filter(|ok| !**ok).count() as u64,
        )
    };
    let dupes = |keys: Vec<String>| {
        let mut seen = HashSet::new();
        let total = keys.len() as u64;
        let failing = keys.into_iter().filter(|k| !seen.insert(k.clone())).count() as u64;
        (total, failing)
    };
    vec![
        (n, rows.iter().filter(|r| r.a.is_none()).count() as u64),
        dupes(
            rows.iter()
                .filter_map(|r| r.a.map(|a| a.to_string()))
                .collect(),
        ),
        dupes(
            rows.iter()
                .filter_map(|r| Some(format!("{}|{}", r.a?, r.s.as_ref()?)))
                .collect(),
        ),
        dupes(rows.iter().filter_map(|r| r.s.clone()).collect()),
        count(&|r| r.s.as_ref().map(|s| ["a", "b", "ab"].contains(&s.as_str()))),
        count(&|r| r.x.map(|x| (-5.0..5.0).contains(&x))),
        count(&|r| r.s.as_ref().map(|s| s.starts_with('a'))),
        count(&|r| r.s.as_ref().map(|s| (1..=2).contains(&s.chars().count()))),
        (n, 0),
        {
            let filtered: Vec<&Row> = rows.iter().filter(|r| r.x.is_some()).collect();
            let false_rows = filtered
                .iter()
                .filter(|r| {
                    let a_pos = r.a.map(|a| a > 0);
                    let s_b = r.s.as_ref().map(|s| s == "b");
                    // SQL OR: false only when both sides are false.
                    a_pos == Some(false) && s_b == Some(false)
                })
                .count();
            (filtered.len() as u64, false_rows as u64)
        },
    ]
}

fn evaluate(batches: &[RecordBatch], schema: &RecordBatch) -> AuditReport {
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    let mut ev = suite.evaluator(&schema.schema(), EvalOptions::at(run_time()));
    for b in batches {
        ev.update(b).unwrap();
    }
    ev.finish()
}

fn evaluate_forked(batches: &[RecordBatch], schema: &RecordBatch) -> AuditReport {
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    let root = suite.evaluator(&schema.schema(), EvalOptions::at(run_time()));
    let mut parts: Vec<_> = batches
        .iter()
        .map(|b| {
            let mut ev = root.fork();
            ev.update(b).unwrap();
            ev
        })
        .collect();
    let mut merged = root;
    // Merge in a tree-ish order to exercise merges of merged states.
    while let Some(p) = parts.pop() {
        match parts.pop() {
            Some(mut q) => {
                q.merge(p).unwrap();
                parts.insert(0, q);
            }
            None => merged.merge(p).unwrap(),
        }
    }
    merged.finish()
}

/// The report without the choice of sample rows (which may differ across splits).
fn comparable(report: &AuditReport) -> Vec<(String, Status, u64, u64, String, usize)> {
    report
        .checks
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.status,
                c.rows_checked,
                c.rows_failing,
                c.observed.to_string(),
                c.samples.len(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn merged_batches_equal_one_batch_and_the_reference(
        rows in proptest::collection::vec(row(), 0..60),
        cuts in proptest::collection::vec(0usize..60, 0..6),
    ) {
        let whole = to_batch(&rows);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(rows.len())).collect();
        cuts.sort_unstable();
        let mut batches = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([rows.len()]) {
            batches.push(to_batch(&rows[start..c]));
            start = c;
        }
        let one = evaluate(std::slice::from_ref(&whole), &whole);
        let split = evaluate(&batches, &whole);
        let forked = evaluate_forked(&batches, &whole);
        prop_assert_eq!(comparable(&one), comparable(&split));
        prop_assert_eq!(comparable(&one), comparable(&forked));

        let expected = reference(&rows);
        for (check, (checked, failing)) in one.checks.iter().zip(expected) {
            prop_assert_eq!((check.rows_checked, check.rows_failing), (checked, failing), "{}", check.name);
            prop_assert_eq!(check.samples.len() as u64, failing.min(5), "{}", check.name);
            let mostly = if check.name == "not_null(a)" { 0.8 } else if check.name == "unique(s)" { 0.5 } else { 1.0 };
            let pass = if check.name == "row_count" {
                checked >= 3
            } else {
                checked == 0 || failing == 0 || (checked - failing) as f64 / checked as f64 >= mostly
            };
            prop_assert_eq!(check.status, if pass { Status::Pass } else { Status::Fail }, "{}", check.name);
        }
    }

    #[test]
    fn integer_keys_in_runs_or_random_match_a_hash_set(
        chunks in proptest::collection::vec((0i64..200, 1usize..40, any::<bool>()), 1..8),
    ) {
        // Runs of consecutive ids (the sequential fast path) mixed with shuffled chunks.
        let mut all = Vec::new();
        let mut batches = Vec::new();
        for (start, len, reversed) in chunks {
            let mut ids: Vec<i64> = (start..start + len as i64).collect();
            if reversed {
                ids.reverse();
            }
            all.extend(ids.iter().copied());
            batches.push(batch(vec![("id", Arc::new(Int64Array::from(ids)) as ArrayRef)]));
        }
        let suite = CheckSuite::from_toml_str("[[check]]\nkind = \"unique\"\ncolumns = [\"id\"]\n").unwrap();
        let mut ev = suite.evaluator(&batches[0].schema(), EvalOptions::default());
        for b in &batches {
            ev.update(b).unwrap();
        }
        let r = ev.finish().checks.remove(0);
        let distinct: HashSet<i64> = all.iter().copied().collect();
        prop_assert_eq!(r.rows_failing, (all.len() - distinct.len()) as u64);
        prop_assert_eq!(r.samples.len(), (all.len() - distinct.len()).min(5));
    }
}

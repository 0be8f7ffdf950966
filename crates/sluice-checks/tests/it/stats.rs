//! The statistics shortcut gives the verdicts of a data scan.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use sluice_checks::{CheckSuite, ColumnStats, EvalOptions, Evidence, StatValue, TableStats};

use crate::{batch, run_time};

const SUITE: &str = r#"
[[check]]
kind = "not_null"
columns = ["user_id"]

[[check]]
kind = "range"
column = "amount"
min = 0

[[check]]
kind = "range"
column = "ts"
min = "2024-09-01"

[[check]]
kind = "row_count"
min = 1

[[check]]
kind = "freshness"
column = "ts"
max_age = "2h"

[[check]]
kind = "unique"
columns = ["event_id"]
"#;

fn events(users: Vec<Option<i64>>, amounts: Vec<Option<f64>>, ts_hours_ago: i64) -> RecordBatch {
    let n = users.len() as i64;
    let ts = run_time().timestamp_micros() - ts_hours_ago * 3_600_000_000;
    batch(vec![
        (
            "event_id",
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef,
        ),
        ("user_id", Arc::new(Int64Array::from(users))),
        ("amount", Arc::new(Float64Array::from(amounts))),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from((0..n).map(|i| ts - i).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ),
    ])
}

/// Exact statistics computed from the data, as a parquet footer would hold them.
fn stats_of(b: &RecordBatch) -> TableStats {
    let mut stats = TableStats::new(b.num_rows() as u64);
    for (i, field) in b.schema().fields().iter().enumerate() {
        let a = b.column(i);
        let (min, max) = match a.data_type() {
            arrow_schema::DataType::Int64 => {
                let p = a.as_primitive::<Int64Type>();
                let vals: Vec<i64> = p.iter().flatten().collect();
                (
                    vals.iter().min().map(|v| StatValue::Int(*v)),
                    vals.iter().max().map(|v| StatValue::Int(*v)),
                )
            }
            arrow_schema::DataType::Float64 => {
                let vals: Vec<f64> = a.as_primitive::<Float64Type>().iter().flatten().collect();
                (
                    vals.iter().cloned().reduce(f64::min).map(StatValue::Float),
                    vals.iter().cloned().reduce(f64::max).map(StatValue::Float),
                )
            }
            _ => {
                let vals: Vec<i64> = a
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .flatten()
                    .collect();
                (
                    vals.iter().min().map(|v| StatValue::Int(*v)),
                    vals.iter().max().map(|v| StatValue::Int(*v)),
                )
            }
        };
        stats = stats.with_column(
            field.name(),
            ColumnStats {
                null_count: Some(a.null_count() as u64),
                nan_count: Some(0),
                min,
                max,
            },
        );
    }
    stats
}

fn project(b: &RecordBatch, columns: &[String]) -> RecordBatch {
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| b.schema().index_of(c).unwrap())
        .collect();
    b.project(&indices).unwrap()
}

#[test]
fn stats_shortcut_gives_the_verdict_of_a_data_scan() {
    let cases = vec![
        (
            "clean",
            events(
                vec![Some(1), Some(2), Some(3)],
                vec![Some(1.0), None, Some(0.0)],
                1,
            ),
        ),
        (
            "null users",
            events(
                vec![Some(1), None, None],
                vec![Some(1.0), Some(2.0), Some(3.0)],
                1,
            ),
        ),
        (
            "negative amount",
            events(vec![Some(1), Some(2)], vec![Some(-1.0), Some(2.0)], 1),
        ),
        (
            "stale",
            events(vec![Some(1), Some(2)], vec![Some(1.0), Some(2.0)], 5),
        ),
        (
            "all amounts null",
            events(vec![Some(1), Some(2)], vec![None, None], 1),
        ),
    ];
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    for (case, data) in cases {
        let mut scan = suite.evaluator(&data.schema(), EvalOptions::at(run_time()));
        scan.update(&data).unwrap();
        let scanned = scan.finish();

        let mut shortcut = suite.evaluator(&data.schema(), EvalOptions::at(run_time()));
        let answered = shortcut.apply_stats(&stats_of(&data)).unwrap();
        assert!(
            answered.contains(&"row_count".to_string()),
            "{case}: {answered:?}"
        );
        assert!(
            answered.contains(&"not_null(user_id)".to_string()),
            "{case}: {answered:?}"
        );
        assert!(
            answered.contains(&"freshness(ts)".to_string()),
            "{case}: {answered:?}"
        );
        let needed = shortcut.required_columns();
        assert!(
            !needed.contains(&"user_id".to_string()),
            "{case}: {needed:?}"
        );
        assert!(
            needed.contains(&"event_id".to_string()),
            "{case}: unique still needs data"
        );
        if shortcut.needs_data() {
            shortcut.update(&project(&data, &needed)).unwrap();
        }
        let from_stats = shortcut.finish();

        for (a, b) in scanned.checks.iter().zip(&from_stats.checks) {
            assert_eq!(a.status, b.status, "{case}: {}", a.name);
            assert_eq!(a.rows_failing, b.rows_failing, "{case}: {}", a.name);
            assert_eq!(a.rows_checked, b.rows_checked, "{case}: {}", a.name);
        }
        assert_eq!(scanned.publishable(), from_stats.publishable(), "{case}");
        let evidence = |name: &str| from_stats.check(name).unwrap().evidence;
        assert_eq!(
            evidence("not_null(user_id)"),
            Evidence::Statistics,
            "{case}"
        );
        assert_eq!(evidence("unique(event_id)"), Evidence::Data, "{case}");
        // A range the statistics show broken is read, so its failing rows are counted and sampled.
        let expected_range = if case == "negative amount" {
            Evidence::Data
        } else {
            Evidence::Statistics
        };
        assert_eq!(evidence("range(amount)"), expected_range, "{case}");
    }
}

#[test]
fn stats_need_every_field_they_rely_on() {
    let data = events(vec![Some(1)], vec![Some(f64::NAN)], 1);
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    let mut ev = suite.evaluator(&data.schema(), EvalOptions::at(run_time()));
    // Float min/max without a NaN count cannot prove a range; missing null counts prove nothing.
    let stats = TableStats::new(1).with_column(
        "amount",
        ColumnStats {
            null_count: Some(0),
            nan_count: None,
            min: Some(StatValue::Float(1.0)),
            max: Some(StatValue::Float(1.0)),
        },
    );
    let answered = ev.apply_stats(&stats).unwrap();
    assert_eq!(answered, ["row_count"]);
    ev.update(&data).unwrap();
    let report = ev.finish();
    assert_eq!(
        report.check("range(amount)").unwrap().rows_failing,
        1,
        "NaN fails the range"
    );
}

#[test]
fn stats_after_data_are_refused() {
    let data = events(vec![Some(1)], vec![Some(1.0)], 1);
    let suite = CheckSuite::from_toml_str(SUITE).unwrap();
    let mut ev = suite.evaluator(&data.schema(), EvalOptions::at(run_time()));
    ev.update(&data).unwrap();
    assert!(matches!(
        ev.apply_stats(&stats_of(&data)),
        Err(sluice_checks::Error::StatsAfterData)
    ));
}

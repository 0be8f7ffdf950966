//! The default event audit (not_null user_id, unique event_id, accepted event_type, amount >= 0,
//! fresh ts) over the test kit's synthetic events (the shape of the CLI's sample events), in rows
//! per second.
//!
//! `SLUICE_BENCH_ROWS` sets the number of rows (default 10,000,000).

use std::hint::black_box;

use arrow_array::RecordBatch;
use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_checks::{CheckSuite, EvalOptions, Evaluator};
use sluice_testkit::{DEFAULT_START_MICROS, EventGenerator, events_schema};

const CHECKS: &str = r#"
[[check]]
kind = "not_null"
columns = ["user_id"]

[[check]]
kind = "unique"
columns = ["event_id"]

[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "add_to_cart", "purchase", "search"]

[[check]]
kind = "range"
column = "amount"
min = 0

[[check]]
kind = "freshness"
column = "ts"
max_age = "2h"
"#;

const BATCH_ROWS: usize = 65_536;
/// Events are this far apart (microseconds), from `DEFAULT_START_MICROS`.
const TS_STEP: i64 = 1_000;

fn events(rows: usize) -> Vec<RecordBatch> {
    EventGenerator::new(7)
        .timestamps(DEFAULT_START_MICROS, TS_STEP)
        .batches(rows, BATCH_ROWS)
}

/// An evaluator running an hour after the newest event, so that the data is fresh.
fn evaluator(suite: &CheckSuite, rows: usize) -> Evaluator {
    let newest = DEFAULT_START_MICROS + rows as i64 * TS_STEP;
    let run_time = DateTime::from_timestamp_micros(newest + 3_600_000_000).expect("valid time");
    suite.evaluator(&events_schema(), EvalOptions::at(run_time))
}

fn bench_checks(c: &mut Criterion) {
    let rows: usize = std::env::var("SLUICE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let batches = events(rows);
    let suite = CheckSuite::from_toml_str(CHECKS).expect("valid checks");

    // The audit must pass on clean data, or the benchmark measures the wrong thing.
    let mut ev = evaluator(&suite, rows);
    for b in &batches {
        ev.update(b).expect("batch has the columns");
    }
    let report = ev.finish();
    assert!(report.publishable(), "{}", report.render_table());

    let mut group = c.benchmark_group("checks");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function("event_audit/1_thread", |b| {
        b.iter(|| {
            let mut ev = evaluator(&suite, rows);
            for batch in &batches {
                ev.update(batch).expect("batch has the columns");
            }
            black_box(ev.finish())
        })
    });
    group.bench_function("event_audit/2_threads", |b| {
        b.iter(|| {
            let mut root = evaluator(&suite, rows);
            let half = batches.len().div_ceil(2);
            let parts: Vec<Evaluator> = std::thread::scope(|s| {
                let handles: Vec<_> = batches
                    .chunks(half.max(1))
                    .map(|chunk| {
                        let mut ev = root.fork();
                        s.spawn(move || {
                            for batch in chunk {
                                ev.update(batch).expect("batch has the columns");
                            }
                            ev
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker finished"))
                    .collect()
            });
            for part in parts {
                root.merge(part).expect("same suite");
            }
            black_box(root.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_checks);
criterion_main!(benches);

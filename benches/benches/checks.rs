//! The default event audit (not_null user_id, unique event_id, accepted event_type, amount >= 0,
//! fresh ts) over synthetic events shaped like `gen_events.py`'s, in rows per second.
//!
//! `SLUICE_BENCH_ROWS` sets the number of rows (default 10,000,000).

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_checks::{CheckSuite, EvalOptions, Evaluator};

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
/// Rows per synthetic "file": each file's timestamps fall in its own 5-minute window.
const FILE_ROWS: usize = 1_000_000;
const BASE_TS: i64 = 1_727_000_000_000_000;

/// splitmix64: a small deterministic generator, enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_type", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("country", DataType::Utf8, false),
        Field::new("session_id", DataType::Utf8, false),
    ]))
}

fn events(rows: usize) -> Vec<RecordBatch> {
    const TYPES: [&str; 5] = ["view", "click", "add_to_cart", "purchase", "search"];
    const COUNTRIES: [&str; 8] = ["US", "IT", "DE", "FR", "BR", "IN", "JP", "GB"];
    let schema = schema();
    let mut rng = Rng(7);
    let mut batches = Vec::new();
    let mut start = 0usize;
    while start < rows {
        let n = BATCH_ROWS.min(rows - start);
        let ids: Vec<i64> = (start as i64..(start + n) as i64).collect();
        let types: Vec<&str> = (0..n).map(|_| TYPES[rng.below(5) as usize]).collect();
        // gamma(2, 20) as the sum of two exponentials, rounded to cents; only purchases have one.
        let amount: Vec<Option<f64>> = types
            .iter()
            .map(|t| {
                let a = (-20.0 * (rng.unit().ln() + rng.unit().ln()) * 100.0).round() / 100.0;
                (*t == "purchase").then_some(a)
            })
            .collect();
        let users: Vec<Option<i64>> = (0..n).map(|_| Some(rng.below(1_000_000) as i64)).collect();
        let ts: Vec<i64> = ids
            .iter()
            .map(|id| {
                let file = *id as usize / FILE_ROWS;
                BASE_TS + file as i64 * 300_000_000 + rng.below(300_000_000) as i64
            })
            .collect();
        let countries: Vec<&str> = (0..n).map(|_| COUNTRIES[rng.below(8) as usize]).collect();
        let sessions: Vec<String> = (0..n)
            .map(|_| format!("s-{:016x}", rng.next() >> 2))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(users)),
            Arc::new(StringArray::from(types)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(amount)),
            Arc::new(StringArray::from(countries)),
            Arc::new(StringArray::from(sessions)),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), columns).expect("valid batch"));
        start += n;
    }
    batches
}

fn evaluator(suite: &CheckSuite, rows: usize) -> Evaluator {
    let files = rows.div_ceil(FILE_ROWS) as i64;
    let newest = BASE_TS + files * 300_000_000;
    let run_time = DateTime::from_timestamp_micros(newest + 3_600_000_000).expect("valid time");
    suite.evaluator(&schema(), EvalOptions::at(run_time))
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

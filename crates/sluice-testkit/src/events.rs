//! User-interaction events, the data sluice's demo, benchmarks and audits are about: who did
//! what, when, and for how much.
//!
//! The generator is deterministic: the same seed, first id and timestamps give the same rows,
//! on every machine, so a benchmark measures the same data each run and a test can state exact
//! counts.

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The values of `event_type`.
pub const EVENT_TYPES: [&str; 5] = ["view", "click", "add_to_cart", "purchase", "search"];

/// The values of `country`.
pub const COUNTRIES: [&str; 6] = ["US", "IT", "DE", "FR", "BR", "JP"];

/// Where timestamps start unless [`EventGenerator::timestamps`] says otherwise:
/// 2025-01-01T00:00:00Z, in microseconds.
pub const DEFAULT_START_MICROS: i64 = 1_735_689_600_000_000;

const ONE_SECOND_MICROS: i64 = 1_000_000;

/// `event_id` long, `user_id` long, `event_type` string, `ts` timestamp (µs, UTC), `amount`
/// double (purchases only), `country` string; every column nullable.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("country", DataType::Utf8, true),
    ]))
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants); the high bits are used.
#[derive(Clone, Debug)]
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Deterministic user-interaction events: consecutive event ids, user ids below 100,000, one
/// of [`EVENT_TYPES`], timestamps a fixed step apart, an amount in `[0, 200)` for purchases
/// only (null otherwise), one of [`COUNTRIES`].
///
/// Each call to [`batch`](EventGenerator::batch) carries on where the last one stopped (ids,
/// timestamps and the random sequence), so `batches(n, size)` and `batch(n)` hold the same
/// ids and timestamps.
///
/// ```
/// use sluice_testkit::EventGenerator;
///
/// // Ten events ending one second before `now`, the last with a duplicate id and two without
/// // a user: what an audit must reject.
/// let now = 1_735_700_000_000_000;
/// let bad = EventGenerator::new(3)
///     .timestamps(now - 10 * 1_000_000, 1_000_000)
///     .with_defects()
///     .batch(10);
/// assert_eq!(bad.column(1).null_count(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct EventGenerator {
    rng: Lcg,
    next_id: i64,
    next_ts: i64,
    ts_step: i64,
    defects: bool,
}

impl EventGenerator {
    /// Events from `seed`, ids from 0, timestamps one second apart from
    /// [`DEFAULT_START_MICROS`].
    pub fn new(seed: u64) -> EventGenerator {
        EventGenerator {
            rng: Lcg(seed),
            next_id: 0,
            next_ts: DEFAULT_START_MICROS,
            ts_step: ONE_SECOND_MICROS,
            defects: false,
        }
    }

    /// The id of the next event.
    pub fn first_id(mut self, id: i64) -> EventGenerator {
        self.next_id = id;
        self
    }

    /// The next event's timestamp, and the step between events (both in microseconds).
    pub fn timestamps(mut self, start_micros: i64, step_micros: i64) -> EventGenerator {
        self.next_ts = start_micros;
        self.ts_step = step_micros;
        self
    }

    /// Every batch gets two null user ids (its second row and its middle row) and repeats its
    /// first event id in its last row; batches need at least two rows then.
    pub fn with_defects(mut self) -> EventGenerator {
        self.defects = true;
        self
    }

    /// The next `rows` events as one batch.
    pub fn batch(&mut self, rows: usize) -> RecordBatch {
        let mut ids: Vec<i64> = (self.next_id..self.next_id + rows as i64).collect();
        let mut users: Vec<Option<i64>> = (0..rows)
            .map(|_| Some((self.rng.next() % 100_000) as i64))
            .collect();
        if self.defects {
            assert!(rows >= 2, "a batch with defects needs two rows, not {rows}");
            users[1] = None;
            users[rows / 2] = None;
            ids[rows - 1] = ids[0];
        }
        let types: Vec<&str> = (0..rows)
            .map(|_| EVENT_TYPES[(self.rng.next() % EVENT_TYPES.len() as u64) as usize])
            .collect();
        let amounts: Vec<Option<f64>> = types
            .iter()
            .map(|t| (*t == "purchase").then(|| (self.rng.next() % 20_000) as f64 / 100.0))
            .collect();
        let ts: Vec<i64> = (0..rows as i64)
            .map(|i| self.next_ts + i * self.ts_step)
            .collect();
        let countries: Vec<&str> = (0..rows)
            .map(|_| COUNTRIES[(self.rng.next() % COUNTRIES.len() as u64) as usize])
            .collect();
        self.next_id += rows as i64;
        self.next_ts += rows as i64 * self.ts_step;
        RecordBatch::try_new(
            events_schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Int64Array::from(users)),
                Arc::new(StringArray::from(types)),
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(Float64Array::from(amounts)),
                Arc::new(StringArray::from(countries)),
            ],
        )
        .expect("events match their schema")
    }

    /// The next `rows` events in batches of at most `batch_rows`.
    pub fn batches(&mut self, rows: usize, batch_rows: usize) -> Vec<RecordBatch> {
        assert!(batch_rows > 0, "batches need room for at least one row");
        let mut out = Vec::with_capacity(rows.div_ceil(batch_rows));
        let mut left = rows;
        while left > 0 {
            let n = batch_rows.min(left);
            out.push(self.batch(n));
            left -= n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};

    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let a = EventGenerator::new(9).first_id(5).batch(500);
        let b = EventGenerator::new(9).first_id(5).batch(500);
        assert_eq!(a, b);
        assert_ne!(a, EventGenerator::new(10).first_id(5).batch(500));
    }

    #[test]
    fn clean_events_hold_what_the_sample_audits_expect() {
        let b = EventGenerator::new(1).first_id(100).batch(2_000);
        assert_eq!(b.schema(), events_schema());
        let ids: Vec<i64> = b.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, (100..2_100).collect::<Vec<_>>());
        assert_eq!(b.column(1).null_count(), 0);
        let types = b.column(2).as_string::<i32>();
        let amounts = b.column(4).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            assert!(EVENT_TYPES.contains(&types.value(i)));
            let purchase = types.value(i) == "purchase";
            assert_eq!(amounts.is_valid(i), purchase, "row {i}");
            if purchase {
                assert!((0.0..200.0).contains(&amounts.value(i)));
            }
        }
        let seen: HashSet<&str> = (0..b.num_rows()).map(|i| types.value(i)).collect();
        assert_eq!(seen.len(), EVENT_TYPES.len());
        let countries = b.column(5).as_string::<i32>();
        assert!((0..b.num_rows()).all(|i| COUNTRIES.contains(&countries.value(i))));
    }

    #[test]
    fn defects_are_two_null_users_and_one_repeated_id() {
        let b = EventGenerator::new(3).first_id(10).with_defects().batch(6);
        let users = b.column(1).as_primitive::<Int64Type>();
        assert_eq!(users.null_count(), 2);
        assert!(users.is_null(1) && users.is_null(3));
        let ids = b.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, vec![10, 11, 12, 13, 14, 10]);
    }

    #[test]
    fn batches_continue_ids_and_timestamps() {
        let mut generator = EventGenerator::new(4).first_id(7).timestamps(1_000, 10);
        let parts = generator.batches(25, 10);
        assert_eq!(
            parts.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        let ids: Vec<i64> = parts
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, (7..32).collect::<Vec<_>>());
        let ts: Vec<i64> = parts
            .iter()
            .flat_map(|b| {
                b.column(3)
                    .as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ts, (0..25).map(|i| 1_000 + i * 10).collect::<Vec<_>>());
        assert_eq!(
            generator
                .batch(1)
                .column(0)
                .as_primitive::<Int64Type>()
                .value(0),
            32
        );
    }
}

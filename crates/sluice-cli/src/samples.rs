//! Sample data for a first try: user-interaction events and a commented checks file that fits
//! them (`sluice init` writes both; `sluice demo` generates its days of events here).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// The checks file `sluice init` writes: the demo's checks, each explained, plus commented-out
/// examples of the other kinds.
pub const SAMPLE_CHECKS: &str = r#"# Audits run on every batch before it may reach main (see docs/checks.md).
# A failing check with severity "error" (the default) rolls the batch back;
# severity = "warn" only reports. These fit the sample events in ./raw; adapt them to your data.

# No NULL in these columns.
[[check]]
kind = "not_null"
columns = ["event_id", "user_id"]

# No duplicate event id, in the batch or in what main already holds.
[[check]]
kind = "unique"
columns = ["event_id"]
scope = "table"

# Only these values.
[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "add_to_cart", "purchase", "search"]

# Purchases never have a negative amount.
[[check]]
kind = "range"
column = "amount"
min = 0
where = "event_type = 'purchase'"

# A batch is never empty.
[[check]]
kind = "row_count"
min = 1

# More kinds:
# [[check]]
# kind = "schema"
# columns = { event_id = "int64", ts = "timestamp(us, UTC)" }
#
# [[check]]
# kind = "freshness"
# column = "ts"
# max_age = "1d"
#
# [[check]]
# kind = "expression"
# expr = "amount >= 0 OR event_type <> 'purchase'"
# severity = "warn"
"#;

/// A small deterministic generator (no randomness crate needed for sample data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

pub fn events_schema() -> Arc<Schema> {
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

/// `rows` events with ids from `first_id`; `bad` adds null user ids and a duplicate event id.
pub fn events(first_id: i64, rows: usize, seed: u64, bad: bool) -> RecordBatch {
    const TYPES: [&str; 5] = ["view", "click", "add_to_cart", "purchase", "search"];
    const COUNTRIES: [&str; 6] = ["US", "IT", "DE", "FR", "BR", "JP"];
    let mut rng = Lcg(seed);
    let now = chrono::Utc::now().timestamp_micros();
    let mut ids: Vec<i64> = (first_id..first_id + rows as i64).collect();
    let mut users: Vec<Option<i64>> = (0..rows)
        .map(|_| Some((rng.next() % 100_000) as i64))
        .collect();
    if bad {
        users[1] = None;
        users[rows / 2] = None;
        ids[rows - 1] = ids[0];
    }
    let types: Vec<&str> = (0..rows)
        .map(|_| TYPES[(rng.next() % 5) as usize])
        .collect();
    let amounts: Vec<Option<f64>> = types
        .iter()
        .map(|t| (*t == "purchase").then(|| (rng.next() % 20_000) as f64 / 100.0))
        .collect();
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(users)),
            Arc::new(StringArray::from(types)),
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..rows)
                        .map(|i| now - (rows - i) as i64 * 1_000_000)
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(StringArray::from(
                (0..rows)
                    .map(|_| COUNTRIES[(rng.next() % 6) as usize])
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("demo batch matches its schema")
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

//! Sample data for a first try: user-interaction events and a commented checks file that fits
//! them (`sluice init` writes both; `sluice demo` generates its days of events here).

use std::path::Path;

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use sluice_testkit::EventGenerator;

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

/// `rows` events with ids from `first_id`, one second apart and ending a second before now;
/// `bad` adds null user ids and a duplicate event id. The rows are the test kit's events for
/// `seed`, so the demo, the benchmarks and the tests speak of the same data.
pub fn events(first_id: i64, rows: usize, seed: u64, bad: bool) -> RecordBatch {
    const SECOND_MICROS: i64 = 1_000_000;
    let now = chrono::Utc::now().timestamp_micros();
    let mut generator = EventGenerator::new(seed)
        .first_id(first_id)
        .timestamps(now - rows as i64 * SECOND_MICROS, SECOND_MICROS);
    if bad {
        generator = generator.with_defects();
    }
    generator.batch(rows)
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

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};

    use super::*;

    /// What `sluice init` has always written (values read from a file it wrote): the sample
    /// events must not change under users when the test kit's generator does.
    #[test]
    fn the_init_sample_keeps_its_rows() {
        let b = events(0, 1_000, 1, false);
        let users = b.column(1).as_primitive::<Int64Type>();
        let types = b.column(2).as_string::<i32>();
        let amounts = b.column(4).as_primitive::<Float64Type>();
        let countries = b.column(5).as_string::<i32>();
        assert_eq!(&users.values()[..5], &[34774, 44153, 41196, 92870, 11034]);
        assert_eq!(
            (0..5).map(|i| types.value(i)).collect::<Vec<_>>(),
            ["click", "view", "view", "click", "click"]
        );
        assert_eq!(
            (0..5).map(|i| countries.value(i)).collect::<Vec<_>>(),
            ["US", "IT", "BR", "BR", "FR"]
        );
        assert_eq!(users.values().iter().sum::<i64>(), 49_963_762);
        assert_eq!(
            (0..1_000).filter(|i| types.value(*i) == "purchase").count(),
            214
        );
        assert_eq!(amounts.value(7), 57.99);
        let cents: f64 = amounts.iter().flatten().sum::<f64>() * 100.0;
        assert_eq!(cents.round(), 2_037_425.0);
        let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(999) - ts.value(0), 999 * 1_000_000);
        assert!(ts.value(999) < chrono::Utc::now().timestamp_micros());
    }

    #[test]
    fn the_bad_day_has_two_null_users_and_a_duplicate_id() {
        let b = events(10_000, 5_000, 3, true);
        assert_eq!(b.column(1).null_count(), 2);
        let ids = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.value(4_999), ids.value(0));
    }
}

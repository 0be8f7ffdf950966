//! The small table most tests write: `id`, `name`, `amount`, with values derived from the id so
//! that a test can say what it expects to read back.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// `id` long, `name` string, `amount` double; every column nullable.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

/// Rows with the given ids, names `n<id>` and amount `id / 2`.
pub fn batch(ids: impl IntoIterator<Item = i64>) -> RecordBatch {
    batch_with_amounts(ids, |i| i as f64 / 2.0)
}

/// Rows like [`batch`] but with amounts that look random (so they do not compress), in
/// `[0, 1000)`.
pub fn noisy_batch(ids: std::ops::Range<i64>) -> RecordBatch {
    batch_with_amounts(ids, noisy_amount)
}

fn batch_with_amounts(
    ids: impl IntoIterator<Item = i64>,
    amount: impl Fn(i64) -> f64,
) -> RecordBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    let amounts: Vec<f64> = ids.iter().map(|i| amount(*i)).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(amounts)),
        ],
    )
    .expect("a batch matching the schema")
}

/// The sum of `amount` over the given ids (what [`batch`] writes).
pub fn expected_sum(ids: impl IntoIterator<Item = i64>) -> f64 {
    ids.into_iter().map(|i| i as f64 / 2.0).sum()
}

/// The amount [`noisy_batch`] writes for an id (splitmix64 of the id, scaled).
pub fn noisy_amount(id: i64) -> f64 {
    let mut x = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 1000.0
}

/// The sum of a double column over batches (nulls skipped).
pub fn sum_column(batches: &[RecordBatch], column: &str) -> f64 {
    batches
        .iter()
        .map(|b| {
            let a = b
                .column_by_name(column)
                .unwrap_or_else(|| panic!("no column {column} in {:?}", b.schema()))
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap_or_else(|| panic!("{column} is not a double column"));
            (0..a.len())
                .filter(|i| a.is_valid(*i))
                .map(|i| a.value(i))
                .sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_derives_names_and_amounts_from_ids() {
        let b = batch([4, 7]);
        assert_eq!(b.schema(), schema());
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "n4");
        assert_eq!(names.value(1), "n7");
        assert_eq!(sum_column(&[b], "amount"), expected_sum([4, 7]));
    }

    #[test]
    fn noisy_amounts_are_spread_and_repeatable() {
        let b = noisy_batch(0..1000);
        let amounts = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(amounts.values().iter().all(|a| (0.0..1000.0).contains(a)));
        assert_eq!(amounts.value(17), noisy_amount(17));
        let distinct: std::collections::HashSet<u64> =
            amounts.values().iter().map(|a| a.to_bits()).collect();
        assert_eq!(distinct.len(), 1000);
    }
}

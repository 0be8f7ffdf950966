//! Run metrics: what every audited run measures of its new rows (the row count and, per column
//! its checks read, the null fraction, min, max, mean and an approximate distinct count). A
//! publish records them in its commit, and `anomaly` checks compare a run's metric with the
//! same metric of the runs before it.
//!
//! A [`ColumnProfile`] is a mergeable state like a check's: counters, running min/max/sum, and
//! a HyperLogLog sketch (4,096 one-byte registers, about 1.6 % standard error) for the
//! distinct count.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hasher;
use std::str::FromStr;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_cast::cast;
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};

use crate::keys::{FoldHasher, as_int64, as_utf8, int_like, string_dictionary, string_like};

/// A metric a run records and an `anomaly` check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// New rows.
    RowCount,
    /// Nulls over rows, in a column.
    NullFraction,
    /// The smallest value of a numeric column.
    Min,
    /// The largest value of a numeric column.
    Max,
    /// The mean of a numeric column's values.
    Mean,
    /// The approximate number of distinct non-null values in a column.
    Distinct,
}

impl Metric {
    /// Every metric, in the order of the docs.
    pub const ALL: [Metric; 6] = [
        Metric::RowCount,
        Metric::NullFraction,
        Metric::Min,
        Metric::Max,
        Metric::Mean,
        Metric::Distinct,
    ];

    /// The name used in check files, `sluice metrics` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::RowCount => "row_count",
            Metric::NullFraction => "null_fraction",
            Metric::Min => "min",
            Metric::Max => "max",
            Metric::Mean => "mean",
            Metric::Distinct => "distinct",
        }
    }

    /// Whether the metric is of a column (every metric but `row_count`).
    pub fn per_column(self) -> bool {
        self != Metric::RowCount
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                format!("unknown metric `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// What one run measured of its new rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// New rows.
    pub rows: u64,
    /// Per column the run's checks read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnMetrics>,
}

/// What one run measured of one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnMetrics {
    /// Nulls over rows (0 without rows).
    pub null_fraction: f64,
    /// Numeric columns: the smallest value (NaN ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Numeric columns: the largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Numeric columns: the mean of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// The approximate number of distinct non-null values (integers, strings, numbers, dates
    /// and times; none for nested columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
}

impl ColumnMetrics {
    /// The value of a per-column `metric`, if it was measured (`None` for `row_count`).
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::RowCount => None,
            Metric::NullFraction => Some(self.null_fraction),
            Metric::Min => self.min,
            Metric::Max => self.max,
            Metric::Mean => self.mean,
            Metric::Distinct => self.distinct.map(|d| d as f64),
        }
    }
}

/// Whether a column of type `t` has `metric` (min, max and mean need numbers; distinct a
/// column of numbers, strings, booleans, dates or times; row count and nulls any column).
pub(crate) fn measures(t: &DataType, metric: Metric) -> bool {
    match metric {
        Metric::RowCount | Metric::NullFraction => true,
        Metric::Min | Metric::Max | Metric::Mean => {
            matches!(shape_of(t), Shape::Number | Shape::Float)
        }
        Metric::Distinct => shape_of(t) != Shape::Other,
    }
}

impl RunMetrics {
    /// The value of `metric` (of `column` for per-column metrics), if the run measured it.
    pub fn value(&self, metric: Metric, column: Option<&str>) -> Option<f64> {
        if metric == Metric::RowCount {
            return Some(self.rows as f64);
        }
        self.columns.get(column?)?.value(metric)
    }

    /// The compact JSON kept in a commit's summary, numbers to 6 significant digits.
    pub fn to_summary(&self) -> String {
        let mut rounded = self.clone();
        for c in rounded.columns.values_mut() {
            c.null_fraction = round6(c.null_fraction);
            for v in [&mut c.min, &mut c.max, &mut c.mean].into_iter().flatten() {
                *v = round6(*v);
            }
        }
        serde_json::to_string(&rounded).unwrap_or_default()
    }

    /// Reads what [`to_summary`](Self::to_summary) wrote; `None` for anything else.
    pub fn from_summary(text: &str) -> Option<RunMetrics> {
        serde_json::from_str(text).ok()
    }
}

fn round6(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 5 - v.abs().log10().floor() as i32;
    if !(-300..=300).contains(&digits) {
        return v;
    }
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// Registers of the distinct-count sketch: 2^12.
const SKETCH_BITS: u32 = 12;
const REGISTERS: usize = 1 << SKETCH_BITS;

/// A HyperLogLog sketch.
#[derive(Clone)]
struct Sketch(Box<[u8; REGISTERS]>);

impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sketch({} registers set)",
            self.0.iter().filter(|r| **r > 0).count()
        )
    }
}

impl Sketch {
    fn new() -> Sketch {
        Sketch(Box::new([0; REGISTERS]))
    }

    fn add(&mut self, hash: u64) {
        // The hasher's fold is good in its low bits; one more mix spreads them over all 64.
        let h = mix64(hash);
        let index = (h >> (64 - SKETCH_BITS)) as usize;
        let rest = (h << SKETCH_BITS) | (1 << (SKETCH_BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if rank > self.0[index] {
            self.0[index] = rank;
        }
    }

    fn merge(&mut self, other: &Sketch) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.0.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.0.iter().filter(|r| **r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            // Few values: linear counting is exact enough and unbiased.
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash_u64(v: u64) -> u64 {
    let mut h = FoldHasher::default();
    h.write_u64(v);
    h.finish()
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FoldHasher::default();
    h.write(b);
    h.write_usize(b.len());
    h.finish()
}

/// How a column's values are read for its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Integers and decimals: min, max, mean and distinct.
    Number,
    /// Floating point: min, max, mean (NaN left out) and distinct.
    Float,
    /// Dates, times, timestamps: distinct.
    Temporal,
    /// Strings: distinct.
    Text,
    /// Booleans: distinct.
    Bool,
    /// Anything else (nested, binary): nulls only.
    Other,
}

fn shape_of(t: &DataType) -> Shape {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Shape::Number,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Shape::Float,
        t if int_like(t) => Shape::Temporal,
        t if string_like(t) => Shape::Text,
        DataType::Boolean => Shape::Bool,
        _ => Shape::Other,
    }
}

/// One batch's numbers, summed in locals and merged into the profile once.
struct NumberTally<'a> {
    sketch: Option<&'a mut Sketch>,
    counted: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl<'a> NumberTally<'a> {
    fn new(sketch: Option<&'a mut Sketch>) -> Self {
        NumberTally {
            sketch,
            counted: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds the non-null values of `array`, each read as `f64` by `to_f64`.
    fn add<T: ArrowPrimitiveType>(
        &mut self,
        array: &PrimitiveArray<T>,
        to_f64: impl Fn(T::Native) -> f64,
    ) {
        match array.nulls().filter(|n| n.null_count() > 0) {
            None => array.values().iter().for_each(|v| self.one(to_f64(*v))),
            Some(nulls) => nulls
                .valid_indices()
                .for_each(|i| self.one(to_f64(array.values()[i]))),
        }
    }

    #[inline]
    fn one(&mut self, v: f64) {
        if let Some(sketch) = self.sketch.as_deref_mut() {
            // -0.0 and 0.0 are one value.
            sketch.add(hash_u64((v + 0.0).to_bits()));
        }
        if v.is_nan() {
            return;
        }
        self.counted += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// The running metrics of one column over the batches seen.
#[derive(Debug, Clone)]
pub(crate) struct ColumnProfile {
    shape: Shape,
    rows: u64,
    nulls: u64,
    /// Non-null, non-NaN numeric values summed.
    counted: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    sketch: Option<Sketch>,
}

impl ColumnProfile {
    /// An empty profile of a column of type `t`.
    pub(crate) fn new(t: &DataType) -> ColumnProfile {
        let shape = shape_of(t);
        ColumnProfile {
            shape,
            rows: 0,
            nulls: 0,
            counted: 0,
            sum: 0.0,
            min: None,
            max: None,
            sketch: (shape != Shape::Other).then(Sketch::new),
        }
    }

    /// Adds a batch's values of the column.
    pub(crate) fn update(&mut self, array: &ArrayRef) -> Result<(), String> {
        self.rows += array.len() as u64;
        self.nulls += array.logical_null_count() as u64;
        match self.shape {
            Shape::Number | Shape::Float => {
                let mut numbers = NumberTally::new(self.sketch.as_mut());
                match array.data_type() {
                    DataType::Float64 => numbers.add(array.as_primitive::<Float64Type>(), |v| v),
                    DataType::Float32 => {
                        numbers.add(array.as_primitive::<Float32Type>(), f64::from);
                    }
                    DataType::Int64 => {
                        numbers.add(array.as_primitive::<Int64Type>(), |v| v as f64);
                    }
                    DataType::Int32 => numbers.add(array.as_primitive::<Int32Type>(), f64::from),
                    _ => {
                        // Decimals, small and unsigned integers: as Float64, as rare as they
                        // are in event data.
                        let floats = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
                        numbers.add(floats.as_primitive::<Float64Type>(), |v| v);
                    }
                }
                let NumberTally {
                    counted,
                    sum,
                    min,
                    max,
                    ..
                } = numbers;
                if counted > 0 {
                    self.counted += counted;
                    self.sum += sum;
                    self.min = Some(self.min.map_or(min, |m| m.min(min)));
                    self.max = Some(self.max.map_or(max, |m| m.max(max)));
                }
            }
            Shape::Temporal => {
                let ints = as_int64(array)?;
                if let Some(sketch) = &mut self.sketch {
                    for v in ints.iter().flatten() {
                        sketch.add(hash_u64(v as u64));
                    }
                }
            }
            Shape::Text => {
                let Some(sketch) = &mut self.sketch else {
                    return Ok(());
                };
                if let Some((values, keys)) = string_dictionary(array.as_ref()) {
                    // Each string a row refers to is hashed once (a dictionary may hold values
                    // no row of this batch uses).
                    let mut used = vec![false; values.len()];
                    match array.nulls() {
                        None => keys.iter().for_each(|k| used[*k] = true),
                        Some(nulls) => nulls.valid_indices().for_each(|i| used[keys[i]] = true),
                    }
                    for (k, used) in used.into_iter().enumerate() {
                        if used && values.is_valid(k) {
                            sketch.add(hash_bytes(values.value(k).as_bytes()));
                        }
                    }
                } else {
                    for v in as_utf8(array)?.iter().flatten() {
                        sketch.add(hash_bytes(v.as_bytes()));
                    }
                }
            }
            Shape::Bool => {
                if let Some(sketch) = &mut self.sketch {
                    for v in array.as_boolean().iter().flatten() {
                        sketch.add(hash_u64(u64::from(v)));
                    }
                }
            }
            Shape::Other => {}
        }
        Ok(())
    }

    /// Adds another partition's profile of the same column.
    pub(crate) fn merge(&mut self, other: &ColumnProfile) {
        self.rows += other.rows;
        self.nulls += other.nulls;
        self.counted += other.counted;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let (Some(mine), Some(theirs)) = (&mut self.sketch, &other.sketch) {
            mine.merge(theirs);
        }
    }

    /// The column's metrics.
    pub(crate) fn finish(&self) -> ColumnMetrics {
        let numeric = matches!(self.shape, Shape::Number | Shape::Float);
        ColumnMetrics {
            null_fraction: if self.rows == 0 {
                0.0
            } else {
                self.nulls as f64 / self.rows as f64
            },
            min: if numeric { self.min } else { None },
            max: if numeric { self.max } else { None },
            mean: (numeric && self.counted > 0).then(|| self.sum / self.counted as f64),
            distinct: self.sketch.as_ref().map(|s| {
                // Never more than the non-null values seen.
                s.estimate().min(self.rows - self.nulls)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::types::Int32Type;
    use arrow_array::{
        BooleanArray, Decimal128Array, DictionaryArray, Float32Array, Float64Array, Int16Array,
        Int32Array, Int64Array, StringArray,
    };

    use super::*;

    fn profile(array: ArrayRef) -> ColumnMetrics {
        let mut p = ColumnProfile::new(array.data_type());
        p.update(&array).unwrap();
        p.finish()
    }

    #[test]
    fn numbers_give_every_metric() {
        let m = profile(Arc::new(Int64Array::from(vec![
            Some(1),
            Some(2),
            None,
            Some(3),
            Some(3),
        ])));
        assert_eq!(m.null_fraction, 0.2);
        assert_eq!((m.min, m.max, m.mean), (Some(1.0), Some(3.0), Some(2.25)));
        assert_eq!(m.distinct, Some(3));
    }

    #[test]
    fn every_numeric_type_gives_the_same_metrics() {
        let values = [Some(-2), None, Some(7), Some(7), None, Some(0)];
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(values.map(|v| v.map(i64::from)).to_vec())),
            Arc::new(Int32Array::from(values.to_vec())),
            Arc::new(Int16Array::from(
                values.map(|v| v.map(|v| v as i16)).to_vec(),
            )),
            Arc::new(Float64Array::from(
                values.map(|v| v.map(f64::from)).to_vec(),
            )),
            Arc::new(Float32Array::from(
                values.map(|v| v.map(|v| v as f32)).to_vec(),
            )),
            Arc::new(
                Decimal128Array::from(values.map(|v| v.map(|v| i128::from(v) * 100)).to_vec())
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ];
        for array in arrays {
            let t = array.data_type().clone();
            let m = profile(array);
            assert_eq!(
                (m.null_fraction, m.min, m.max, m.mean, m.distinct),
                (2.0 / 6.0, Some(-2.0), Some(7.0), Some(3.0), Some(3)),
                "{t}"
            );
        }
    }

    #[test]
    fn a_batch_of_nulls_leaves_min_and_max_unset() {
        let mut p = ColumnProfile::new(&DataType::Int64);
        p.update(&(Arc::new(Int64Array::from(vec![None, None])) as ArrayRef))
            .unwrap();
        assert_eq!((p.finish().min, p.finish().mean), (None, None));
        p.update(&(Arc::new(Int64Array::from(vec![Some(5), None])) as ArrayRef))
            .unwrap();
        let m = p.finish();
        assert_eq!(
            (m.min, m.max, m.mean, m.null_fraction),
            (Some(5.0), Some(5.0), Some(5.0), 0.75)
        );
    }

    #[test]
    fn floats_leave_nan_out_of_min_max_mean() {
        let m = profile(Arc::new(Float64Array::from(vec![
            1.0,
            f64::NAN,
            3.0,
            -0.0,
            0.0,
        ])));
        assert_eq!((m.min, m.max), (Some(-0.0), Some(3.0)));
        assert_eq!(m.mean, Some(1.0));
        assert_eq!(m.distinct, Some(4), "NaN, 0 (both signs), 1 and 3");
    }

    #[test]
    fn dictionary_strings_count_only_the_values_rows_use() {
        // 300 distinct strings over 2,000 rows, with nulls; the dictionary also holds 500 values
        // no row uses and a null value that one row points at.
        let labels: Vec<String> = (0..800).map(|i| format!("user-{i}")).collect();
        let mut dictionary: Vec<Option<&str>> = labels.iter().map(|l| Some(l.as_str())).collect();
        dictionary.push(None);
        let null_value = (dictionary.len() - 1) as i32;
        let keys: Vec<Option<i32>> = (0..2000)
            .map(|i| match i % 7 {
                0 => None,
                1 if i == 1 => Some(null_value),
                _ => Some(i * 13 % 300),
            })
            .collect();
        let plain: Vec<Option<&str>> = keys
            .iter()
            .map(|k| k.and_then(|k| dictionary[k as usize]))
            .collect();
        let encoded = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(keys),
            Arc::new(StringArray::from(dictionary.clone())),
        )
        .unwrap();
        let from_dictionary = profile(Arc::new(encoded));
        let from_strings = profile(Arc::new(StringArray::from(plain)));
        assert_eq!(from_dictionary, from_strings);
        let distinct = from_strings.distinct.unwrap();
        assert!((290..=310).contains(&distinct), "{distinct}");
    }

    #[test]
    fn strings_and_booleans_have_distinct_counts_only() {
        let s = profile(Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            Some("a"),
        ])));
        assert_eq!((s.min, s.mean, s.distinct), (None, None, Some(2)));
        let b = profile(Arc::new(BooleanArray::from(vec![true, false, true])));
        assert_eq!(b.distinct, Some(2));
    }

    #[test]
    fn the_distinct_estimate_is_within_a_few_percent_and_merges() {
        let mut a = ColumnProfile::new(&DataType::Int64);
        let mut b = ColumnProfile::new(&DataType::Int64);
        let first: ArrayRef = Arc::new(Int64Array::from_iter_values(0..60_000));
        let second: ArrayRef = Arc::new(Int64Array::from_iter_values(40_000..100_000));
        a.update(&first).unwrap();
        b.update(&second).unwrap();
        a.merge(&b);
        let d = a.finish().distinct.unwrap() as f64;
        assert!((d - 100_000.0).abs() / 100_000.0 < 0.05, "{d}");
        assert_eq!(a.finish().null_fraction, 0.0);
        assert_eq!(a.finish().min, Some(0.0));
    }

    #[test]
    fn metrics_round_trip_through_the_summary_text() {
        let mut m = RunMetrics {
            rows: 10,
            ..RunMetrics::default()
        };
        m.columns.insert(
            "amount".into(),
            ColumnMetrics {
                null_fraction: 0.1234567,
                min: Some(-1.0),
                max: Some(123456.789),
                mean: Some(1.0 / 3.0),
                distinct: Some(9),
            },
        );
        let text = m.to_summary();
        assert_eq!(
            text,
            r#"{"rows":10,"columns":{"amount":{"null_fraction":0.123457,"min":-1.0,"max":123457.0,"mean":0.333333,"distinct":9}}}"#
        );
        let back = RunMetrics::from_summary(&text).unwrap();
        assert_eq!(back.value(Metric::RowCount, None), Some(10.0));
        assert_eq!(back.value(Metric::Distinct, Some("amount")), Some(9.0));
        assert_eq!(back.value(Metric::Mean, Some("other")), None);
        assert!(RunMetrics::from_summary("passed").is_none());
        assert_eq!(
            "mad".parse::<Metric>().unwrap_err(),
            "unknown metric `mad`; expected one of row_count, null_fraction, min, max, mean, distinct"
        );
    }
}

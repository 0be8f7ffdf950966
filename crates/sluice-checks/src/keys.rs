//! Key sets for `unique`: typed fast paths for one integer or one string column, and a compact
//! byte encoding for combinations of columns.
//!
//! Memory is proportional to the number of distinct keys: an integer key costs a slot of a hash
//! table (about 9–18 bytes with load factor), a string or composite key its bytes plus a boxed
//! slice header and a slot. Sequential integer keys (ids that grow by one, the common case for
//! event ids) are kept as ranges instead, which costs a few bytes per run of consecutive values.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_cast::cast;
use arrow_schema::DataType;

/// A fast, non-cryptographic hasher (folded 64×64→128 multiply). Keys come from the data being
/// audited, not from an adversary who could choose collisions, so speed matters more than DoS
/// resistance here.
#[derive(Clone, Copy)]
pub(crate) struct FoldHasher {
    state: u64,
}

impl Default for FoldHasher {
    fn default() -> Self {
        FoldHasher {
            state: 0x243F_6A88_85A3_08D3,
        }
    }
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        let product = u128::from(self.state ^ v) * 0x9E37_79B9_7F4A_7C15_u128;
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.mix(le_word(rest) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.mix(v as u64);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// The first eight bytes of `bytes` (fewer, zero-padded, for a shorter slice) as a little-endian
/// word. Short slices are read with at most three loads instead of a copy into a padded
/// buffer, whose wide read after narrow writes stalls the CPU on every short string hashed.
#[inline]
pub(crate) fn le_word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let u32_at = |at: usize| {
        let mut four = [0u8; 4];
        four.copy_from_slice(&bytes[at..at + 4]);
        u64::from(u32::from_le_bytes(four))
    };
    if n >= 8 {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(eight)
    } else if n >= 4 {
        // Two overlapping reads; the shared bytes land on the same bits.
        u32_at(0) | (u32_at(n - 4) << ((n - 4) * 8))
    } else if n > 0 {
        // One to three bytes: the first, middle and last (the same byte twice when short).
        u64::from(bytes[0])
            | (u64::from(bytes[n / 2]) << ((n / 2) * 8))
            | (u64::from(bytes[n - 1]) << ((n - 1) * 8))
    } else {
        0
    }
}

/// A dictionary-encoded string column's values and, per row, the index of its value; `None` for
/// any other column. Checks that look at each distinct string once read these instead of a
/// string per row.
pub(crate) fn string_dictionary(array: &dyn Array) -> Option<(&StringArray, Vec<usize>)> {
    let dictionary = array.as_any_dictionary_opt()?;
    let values = dictionary.values().as_string_opt::<i32>()?;
    Some((values, dictionary.normalized_keys()))
}

pub(crate) type FastSet<T> = HashSet<T, BuildHasherDefault<FoldHasher>>;

/// How the key of a `unique` check is represented, decided from the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyLayout {
    /// One column whose values are (or convert losslessly to) i64.
    Int,
    /// One string column.
    Str,
    /// Several columns, or one of another type: encoded to bytes.
    Composite,
}

pub(crate) fn int_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Duration(_)
    )
}

pub(crate) fn string_like(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => string_like(v),
        _ => false,
    }
}

impl KeyLayout {
    pub(crate) fn for_types(types: &[&DataType]) -> KeyLayout {
        match types {
            [t] if int_like(t) => KeyLayout::Int,
            [t] if string_like(t) => KeyLayout::Str,
            _ => KeyLayout::Composite,
        }
    }
}

/// Converts an integer-like column to Int64 (zero-copy for 64-bit types).
pub(crate) fn as_int64(array: &ArrayRef) -> Result<Int64Array, String> {
    let converted = match array.data_type() {
        DataType::Int64 => array.clone(),
        DataType::Dictionary(_, _) => {
            return Err("dictionary-encoded integer keys are not supported".to_string());
        }
        _ => cast(array, &DataType::Int64).map_err(|e| e.to_string())?,
    };
    Ok(converted.as_primitive::<Int64Type>().clone())
}

/// Converts a string-like column to Utf8.
pub(crate) fn as_utf8(array: &ArrayRef) -> Result<StringArray, String> {
    let converted = match array.data_type() {
        DataType::Utf8 => array.clone(),
        _ => cast(array, &DataType::Utf8).map_err(|e| e.to_string())?,
    };
    Ok(converted.as_string::<i32>().clone())
}

pub(crate) enum Part {
    I64(Int64Array),
    F64(Float64Array),
    Bool(BooleanArray),
    Str(StringArray),
}

const TAG_I64: u8 = 1;
const TAG_F64: u8 = 2;
const TAG_BOOL: u8 = 3;
const TAG_STR: u8 = 4;

/// The key columns of one batch, ready to be read row by row.
pub(crate) enum KeyReader {
    Int(Int64Array),
    Str(StringArray),
    Composite(Vec<Part>),
}

impl KeyReader {
    /// Reads the key columns from `batch`. Errors name the missing column.
    pub(crate) fn new(
        batch: &RecordBatch,
        columns: &[String],
        layout: KeyLayout,
    ) -> Result<KeyReader, KeyError> {
        let arrays = columns
            .iter()
            .map(|c| {
                batch
                    .column_by_name(c)
                    .cloned()
                    .ok_or_else(|| KeyError::Missing(c.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match layout {
            KeyLayout::Int => KeyReader::Int(as_int64(&arrays[0]).map_err(KeyError::Other)?),
            KeyLayout::Str => KeyReader::Str(as_utf8(&arrays[0]).map_err(KeyError::Other)?),
            KeyLayout::Composite => KeyReader::Composite(
                arrays
                    .iter()
                    .map(|a| {
                        let t = a.data_type();
                        let part = if int_like(t) {
                            Part::I64(as_int64(a)?)
                        } else if t.is_floating() {
                            let f = cast(a, &DataType::Float64).map_err(|e| e.to_string())?;
                            Part::F64(f.as_primitive().clone())
                        } else if matches!(t, DataType::Boolean) {
                            Part::Bool(a.as_boolean().clone())
                        } else {
                            // Strings, and any other type through its canonical text form.
                            Part::Str(as_utf8(a)?)
                        };
                        Ok(part)
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(KeyError::Other)?,
            ),
        })
    }

    /// Rows where every key column is non-null, as a mask (`None` when all rows qualify).
    pub(crate) fn valid_rows(&self) -> Option<BooleanArray> {
        let nulls: Vec<&dyn Array> = match self {
            KeyReader::Int(a) => vec![a],
            KeyReader::Str(a) => vec![a],
            KeyReader::Composite(parts) => parts
                .iter()
                .map(|p| -> &dyn Array {
                    match p {
                        Part::I64(a) => a,
                        Part::F64(a) => a,
                        Part::Bool(a) => a,
                        Part::Str(a) => a,
                    }
                })
                .collect(),
        };
        let mut mask: Option<BooleanArray> = None;
        for array in nulls {
            if array.null_count() == 0 {
                continue;
            }
            let valid = arrow_arith::boolean::is_not_null(array).ok()?;
            mask = Some(match mask {
                None => valid,
                Some(m) => arrow_arith::boolean::and(&m, &valid).ok()?,
            });
        }
        mask
    }

    /// Encodes the composite key of `row` into `out`.
    pub(crate) fn encode(&self, row: usize, out: &mut Vec<u8>) {
        out.clear();
        match self {
            KeyReader::Int(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            KeyReader::Str(a) => out.extend_from_slice(a.value(row).as_bytes()),
            KeyReader::Composite(parts) => {
                for part in parts {
                    match part {
                        Part::I64(a) => {
                            out.push(TAG_I64);
                            out.extend_from_slice(&a.value(row).to_le_bytes());
                        }
                        Part::F64(a) => {
                            let v = a.value(row);
                            // One bit pattern per value: -0.0 equals 0.0, all NaNs are one key.
                            let v = if v == 0.0 {
                                0.0
                            } else if v.is_nan() {
                                f64::NAN
                            } else {
                                v
                            };
                            out.push(TAG_F64);
                            out.extend_from_slice(&v.to_bits().to_le_bytes());
                        }
                        Part::Bool(a) => {
                            out.push(TAG_BOOL);
                            out.push(u8::from(a.value(row)));
                        }
                        Part::Str(a) => {
                            let s = a.value(row).as_bytes();
                            out.push(TAG_STR);
                            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                            out.extend_from_slice(s);
                        }
                    }
                }
            }
        }
    }
}

/// Why key columns could not be read from a batch.
pub(crate) enum KeyError {
    Missing(String),
    Other(String),
}

/// Decodes a key back to JSON values, for samples of duplicates found when merging states.
pub(crate) fn decode_key(layout: KeyLayout, key: KeyRef<'_>) -> Vec<serde_json::Value> {
    match (layout, key) {
        (_, KeyRef::Int(v)) => vec![v.into()],
        (KeyLayout::Str, KeyRef::Bytes(b)) => vec![String::from_utf8_lossy(b).into_owned().into()],
        (_, KeyRef::Bytes(mut b)) => {
            let mut out = Vec::new();
            while let Some((&tag, rest)) = b.split_first() {
                let value: serde_json::Value = match tag {
                    TAG_I64 | TAG_F64 if rest.len() >= 8 => {
                        let mut word = [0u8; 8];
                        word.copy_from_slice(&rest[..8]);
                        b = &rest[8..];
                        if tag == TAG_I64 {
                            i64::from_le_bytes(word).into()
                        } else {
                            serde_json::Number::from_f64(f64::from_bits(u64::from_le_bytes(word)))
                                .map(serde_json::Value::Number)
                                .unwrap_or(serde_json::Value::Null)
                        }
                    }
                    TAG_BOOL if !rest.is_empty() => {
                        b = &rest[1..];
                        (rest[0] != 0).into()
                    }
                    TAG_STR if rest.len() >= 4 => {
                        let mut len = [0u8; 4];
                        len.copy_from_slice(&rest[..4]);
                        let len = (u32::from_le_bytes(len) as usize).min(rest.len() - 4);
                        b = &rest[4 + len..];
                        String::from_utf8_lossy(&rest[4..4 + len])
                            .into_owned()
                            .into()
                    }
                    _ => break,
                };
                out.push(value);
            }
            out
        }
    }
}

/// A borrowed key.
#[derive(Clone, Copy)]
pub(crate) enum KeyRef<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

/// A set of integer keys: ranges of consecutive values while the keys arrive in runs (sequential
/// ids), a hash set once they do not.
#[derive(Debug, Clone)]
pub(crate) enum IntSet {
    /// Disjoint, non-adjacent inclusive ranges, keyed by start.
    Runs(BTreeMap<i64, i64>),
    Hashed(FastSet<i64>),
}

/// Above this many ranges the hash set is the better representation.
const MAX_RUNS: usize = 4096;

impl Default for IntSet {
    fn default() -> Self {
        IntSet::Runs(BTreeMap::new())
    }
}

impl IntSet {
    pub(crate) fn len(&self) -> u64 {
        match self {
            IntSet::Runs(runs) => runs.iter().map(|(s, e)| (e - s) as u64 + 1).sum(),
            IntSet::Hashed(set) => set.len() as u64,
        }
    }

    pub(crate) fn contains(&self, v: i64) -> bool {
        match self {
            IntSet::Runs(runs) => runs.range(..=v).next_back().is_some_and(|(_, &e)| e >= v),
            IntSet::Hashed(set) => set.contains(&v),
        }
    }

    fn convert_to_hashed(&mut self) {
        if let IntSet::Runs(runs) = self {
            let total: u64 = runs.iter().map(|(s, e)| (e - s) as u64 + 1).sum();
            let mut set = FastSet::with_capacity_and_hasher(total as usize, Default::default());
            for (&s, &e) in runs.iter() {
                set.extend(s..=e);
            }
            *self = IntSet::Hashed(set);
        }
    }

    /// Inserts a value; returns false when it was already present.
    pub(crate) fn insert(&mut self, v: i64) -> bool {
        match self {
            IntSet::Runs(_) => self.insert_run(v, v) == 0,
            IntSet::Hashed(set) => set.insert(v),
        }
    }

    /// Inserts the range `start..=end` (in runs mode), returning how many of its values were
    /// already present. Falls back to the hash set when the ranges become too many.
    pub(crate) fn insert_run(&mut self, start: i64, end: i64) -> u64 {
        let IntSet::Runs(runs) = self else {
            let IntSet::Hashed(set) = self else {
                return 0;
            };
            return (start..=end).filter(|v| !set.insert(*v)).count() as u64;
        };
        let mut overlap = 0u64;
        let mut new_start = start;
        let mut new_end = end;
        // Ranges that overlap or touch [start, end] are absorbed into it.
        let lower = start.saturating_sub(1);
        let upper = end.saturating_add(1);
        let mut absorbed = Vec::new();
        if let Some((&s, &e)) = runs.range(..lower).next_back()
            && e >= lower
        {
            absorbed.push((s, e));
        }
        for (&s, &e) in runs.range(lower..=upper) {
            absorbed.push((s, e));
        }
        for (s, e) in absorbed {
            runs.remove(&s);
            let lo = s.max(start);
            let hi = e.min(end);
            if lo <= hi {
                overlap += (hi - lo) as u64 + 1;
            }
            new_start = new_start.min(s);
            new_end = new_end.max(e);
        }
        runs.insert(new_start, new_end);
        if runs.len() > MAX_RUNS {
            self.convert_to_hashed();
        }
        overlap
    }

    pub(crate) fn is_runs(&self) -> bool {
        matches!(self, IntSet::Runs(_))
    }

    /// Values present in both sets, visiting at most `limit` of them (all are counted).
    pub(crate) fn intersection(
        &self,
        other: &IntSet,
        limit: usize,
        mut visit: impl FnMut(i64),
    ) -> u64 {
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut count = 0u64;
        let mut visited = 0usize;
        let mut found = |v: i64, count: &mut u64| {
            if visited < limit {
                visit(v);
                visited += 1;
            }
            *count += 1;
        };
        match (small, large) {
            (IntSet::Runs(a), IntSet::Runs(b)) => {
                for (&s, &e) in a {
                    let from = b.range(..=s).next_back().map(|(&k, _)| k).unwrap_or(s);
                    for (&bs, &be) in b.range(from..=e) {
                        let lo = bs.max(s);
                        let hi = be.min(e);
                        if lo > hi {
                            continue;
                        }
                        let n = (hi - lo) as u64 + 1;
                        let mut shown = 0u64;
                        for v in (lo..=hi).take(limit) {
                            found(v, &mut count);
                            shown += 1;
                        }
                        count += n - shown;
                    }
                }
            }
            (IntSet::Runs(a), other) => {
                for (&s, &e) in a {
                    for v in s..=e {
                        if other.contains(v) {
                            found(v, &mut count);
                        }
                    }
                }
            }
            (IntSet::Hashed(a), other) => {
                for &v in a {
                    if other.contains(v) {
                        found(v, &mut count);
                    }
                }
            }
        }
        count
    }

    /// Whether any value of `start..=end` is present (runs mode: a range lookup).
    pub(crate) fn overlaps(&self, start: i64, end: i64) -> bool {
        match self {
            IntSet::Runs(runs) => runs
                .range(..=end)
                .next_back()
                .is_some_and(|(_, &e)| e >= start),
            IntSet::Hashed(set) => (start..=end).any(|v| set.contains(&v)),
        }
    }

    /// Adds every value of `other`; returns how many were already present.
    pub(crate) fn union(&mut self, other: &IntSet) -> u64 {
        match other {
            IntSet::Runs(runs) => {
                let mut dup = 0;
                for (&s, &e) in runs {
                    dup += self.insert_run(s, e);
                }
                dup
            }
            IntSet::Hashed(set) => {
                self.convert_to_hashed();
                let mut dup = 0;
                for &v in set {
                    if !self.insert(v) {
                        dup += 1;
                    }
                }
                dup
            }
        }
    }

    /// Leaves runs mode for good (the keys do not arrive in runs).
    pub(crate) fn make_hashed(&mut self) {
        self.convert_to_hashed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_word_reads_what_a_padded_copy_reads() {
        let bytes: Vec<u8> = (0..12u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(201))
            .collect();
        for start in 0..3 {
            for len in 0..=(bytes.len() - start) {
                let slice = &bytes[start..start + len];
                let mut padded = [0u8; 8];
                let head = len.min(8);
                padded[..head].copy_from_slice(&slice[..head]);
                assert_eq!(
                    le_word(slice),
                    u64::from_le_bytes(padded),
                    "{len} bytes from {start}"
                );
            }
        }
    }

    #[test]
    fn runs_merge_and_count_overlaps() {
        let mut s = IntSet::default();
        assert_eq!(s.insert_run(10, 19), 0);
        assert_eq!(s.insert_run(20, 29), 0);
        assert_eq!(s.insert_run(0, 4), 0);
        assert_eq!(s.len(), 25);
        assert_eq!(s.insert_run(3, 12), 5); // 3,4,10,11,12
        assert_eq!(s.len(), 30);
        assert!(s.contains(7) && s.contains(29) && !s.contains(30) && !s.contains(-1));
        assert!(!s.insert(29));
        assert!(s.insert(31));
        assert_eq!(s.len(), 31);
        if let IntSet::Runs(r) = &s {
            assert_eq!(r.len(), 2);
        }
        let mut h = s.clone();
        h.make_hashed();
        assert_eq!(h.len(), 31);
        let mut seen = Vec::new();
        let mut other = IntSet::default();
        other.insert_run(28, 40);
        assert_eq!(s.intersection(&other, 10, |v| seen.push(v)), 3);
        assert_eq!(seen, vec![28, 29, 31]);
        assert_eq!(h.intersection(&other, 1, |_| {}), 3);
        assert_eq!(other.union(&h), 3);
        assert_eq!(other.len(), 13 + 31 - 3);
    }

    #[test]
    fn runs_intersection_counts_beyond_the_visit_limit() {
        let mut a = IntSet::default();
        a.insert_run(0, 999);
        let mut b = IntSet::default();
        b.insert_run(500, 1499);
        let mut seen = 0;
        assert_eq!(a.intersection(&b, 5, |_| seen += 1), 500);
        assert_eq!(seen, 5);
    }

    #[test]
    fn composite_keys_decode() {
        let mut out = Vec::new();
        out.push(TAG_I64);
        out.extend_from_slice(&42i64.to_le_bytes());
        out.push(TAG_STR);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(b"ab");
        out.push(TAG_BOOL);
        out.push(1);
        let values = decode_key(KeyLayout::Composite, KeyRef::Bytes(&out));
        assert_eq!(
            values,
            vec![
                serde_json::json!(42),
                serde_json::json!("ab"),
                serde_json::json!(true)
            ]
        );
    }
}

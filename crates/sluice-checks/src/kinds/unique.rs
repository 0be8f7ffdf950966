//! `unique`: a column or a combination of columns holds no duplicate; with `scope = "table"`, no
//! new key is already in the target either.
//!
//! The state is the set of distinct keys seen. Integer keys that arrive in runs of consecutive
//! values (sequential ids) are stored as ranges; others are hashed, strings and composite keys
//! as bytes.

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::rows::{Failures, Rows};
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::keys::{
    FastSet, IntSet, KeyError, KeyLayout, KeyReader, KeyRef, decode_key, string_like,
};
use crate::report::Sample;

/// Which rows a `unique` check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UniqueScope {
    /// Only the new rows, among themselves.
    #[default]
    Batch,
    /// The new rows among themselves and against the rows already in the target ref
    /// (fed with [`Evaluator::observe_existing`](crate::Evaluator::observe_existing)).
    Table,
}

/// `kind = "unique"`.
#[derive(Debug)]
pub(crate) struct Unique {
    columns: Vec<String>,
    scope: UniqueScope,
}

/// The keys of the new rows and of the rows already in the target, in one representation.
#[derive(Debug, Clone)]
pub(crate) enum KeySets {
    Int {
        new: IntSet,
        existing: IntSet,
    },
    Bytes {
        new: FastSet<Box<[u8]>>,
        existing: FastSet<Box<[u8]>>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct UniqueState {
    keys: KeySets,
    checked: u64,
    samples: Vec<Sample>,
}

impl KeySets {
    fn new(layout: KeyLayout) -> KeySets {
        match layout {
            KeyLayout::Int => KeySets::Int {
                new: IntSet::default(),
                existing: IntSet::default(),
            },
            KeyLayout::Str | KeyLayout::Composite => KeySets::Bytes {
                new: FastSet::default(),
                existing: FastSet::default(),
            },
        }
    }

    /// Numbers of distinct new keys and of existing keys.
    fn lens(&self) -> (u64, u64) {
        match self {
            KeySets::Int { new, existing } => (new.len(), existing.len()),
            KeySets::Bytes { new, existing } => (new.len() as u64, existing.len() as u64),
        }
    }

    /// Counts new keys that are also existing keys, visiting up to `limit` of them.
    fn conflicts(&self, limit: usize, visit: impl FnMut(KeyRef<'_>)) -> u64 {
        match self {
            KeySets::Int { new, existing } => int_intersection(new, existing, limit, visit),
            KeySets::Bytes { new, existing } => bytes_intersection(new, existing, limit, visit),
        }
    }
}

fn int_intersection(
    a: &IntSet,
    b: &IntSet,
    limit: usize,
    mut visit: impl FnMut(KeyRef<'_>),
) -> u64 {
    a.intersection(b, limit, |v| visit(KeyRef::Int(v)))
}

fn bytes_intersection(
    a: &FastSet<Box<[u8]>>,
    b: &FastSet<Box<[u8]>>,
    limit: usize,
    mut visit: impl FnMut(KeyRef<'_>),
) -> u64 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut count = 0u64;
    for k in small {
        if large.contains(k) {
            if (count as usize) < limit {
                visit(KeyRef::Bytes(k));
            }
            count += 1;
        }
    }
    count
}

fn bytes_union(a: &mut FastSet<Box<[u8]>>, b: FastSet<Box<[u8]>>) {
    if a.len() < b.len() {
        let small = std::mem::replace(a, b);
        a.extend(small);
    } else {
        a.extend(b);
    }
}

impl Check for Unique {
    const NAME: &'static str = "unique";
    const FIELDS: &'static [&'static str] = &["column", "columns", "scope"];
    const ROW_LEVEL: bool = true;
    type Bound = KeyLayout;
    type State = UniqueState;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        Ok(Unique {
            columns: fields.column_or_columns()?,
            scope: fields.take("scope")?.unwrap_or_default(),
        })
    }

    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn bind(&self, schema: &Schema) -> Result<KeyLayout, String> {
        let types = self
            .columns
            .iter()
            .map(|c| super::column_type(schema, c))
            .collect::<Result<Vec<_>, _>>()?;
        for (c, t) in self.columns.iter().zip(&types) {
            if matches!(
                t,
                DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::Struct(_)
                    | DataType::Map(..)
            ) {
                return Err(format!(
                    "column `{c}` is {t}; unique keys must be scalar columns"
                ));
            }
            if let DataType::Dictionary(_, v) = t
                && !string_like(v)
            {
                return Err(format!(
                    "column `{c}` is {t}; only dictionaries of strings are supported as keys"
                ));
            }
        }
        Ok(KeyLayout::for_types(&types))
    }

    fn new_state(&self, layout: &KeyLayout) -> UniqueState {
        UniqueState {
            keys: KeySets::new(*layout),
            checked: 0,
            samples: Vec::new(),
        }
    }

    fn update(
        &self,
        layout: &KeyLayout,
        state: &mut UniqueState,
        input: &Input<'_>,
    ) -> Result<(), String> {
        let reader = KeyReader::new(input.batch, &self.columns, *layout).map_err(|e| match e {
            KeyError::Missing(c) => format!("column `{c}` is missing"),
            KeyError::Other(e) => e,
        })?;
        let rows = Rows::select(input.batch.num_rows(), input.filter, reader.valid_rows())?;
        state.checked += rows.count();
        let mut fails = input.failures(input.room(state.samples.len()));
        insert_new_keys(&mut state.keys, &reader, &rows, &mut fails)?;
        let samples = input.samples(&fails.rows, &self.columns);
        state.samples.extend(samples);
        Ok(())
    }

    fn merge(
        &self,
        layout: &KeyLayout,
        state: &mut UniqueState,
        other: UniqueState,
        sample_size: usize,
    ) -> Result<(), String> {
        state.checked += other.checked;
        let free = sample_size.saturating_sub(state.samples.len() + other.samples.len());
        // Keys seen by both partitions are duplicates neither could see alone.
        let mut found = Vec::new();
        let mut visit = |k: KeyRef<'_>| found.push(decode_key(*layout, k));
        match (&mut state.keys, other.keys) {
            (
                KeySets::Int { new, existing },
                KeySets::Int {
                    new: new2,
                    existing: existing2,
                },
            ) => {
                if free > 0 {
                    int_intersection(new, &new2, free, &mut visit);
                }
                new.union(&new2);
                existing.union(&existing2);
            }
            (
                KeySets::Bytes { new, existing },
                KeySets::Bytes {
                    new: new2,
                    existing: existing2,
                },
            ) => {
                if free > 0 {
                    bytes_intersection(new, &new2, free, &mut visit);
                }
                bytes_union(new, new2);
                bytes_union(existing, existing2);
            }
            (KeySets::Int { .. }, KeySets::Bytes { .. })
            | (KeySets::Bytes { .. }, KeySets::Int { .. }) => {
                return Err("cannot merge integer keys with string or composite keys".into());
            }
        }
        if free > 0 {
            state.samples.extend(other.samples);
            for values in found {
                state
                    .samples
                    .push(self.columns.iter().cloned().zip(values).collect());
            }
        } else {
            let free = sample_size.saturating_sub(state.samples.len());
            state.samples.extend(other.samples.into_iter().take(free));
        }
        state.samples.truncate(sample_size);
        Ok(())
    }

    fn finish(&self, layout: &KeyLayout, state: UniqueState, judge: &Judge) -> Outcome {
        let UniqueState {
            keys,
            checked,
            mut samples,
        } = state;
        let sample_size = judge.sample_size;
        let (distinct, existing) = keys.lens();
        let within = checked - distinct;
        let room = sample_size.saturating_sub(samples.len());
        let mut conflict_keys = Vec::new();
        let conflicts = if existing == 0 {
            0
        } else {
            keys.conflicts(room + sample_size, |k| {
                conflict_keys.push(decode_key(*layout, k))
            })
        };
        for values in conflict_keys {
            if samples.len() >= sample_size {
                break;
            }
            let sample: Sample = self.columns.iter().cloned().zip(values).collect();
            let already = samples
                .iter()
                .any(|s| self.columns.iter().all(|c| s.get(c) == sample.get(c)));
            if !already {
                samples.push(sample);
            }
        }
        samples.truncate(sample_size);
        let failing = within + conflicts;
        let mut observed = json!({ "duplicate_rows": within, "distinct_keys": distinct });
        if self.scope == UniqueScope::Table
            && let Json::Object(map) = &mut observed
        {
            map.insert("existing_keys".into(), existing.into());
            map.insert("conflicts_with_existing".into(), conflicts.into());
        }
        let message = if checked == 0 {
            "no rows to check".to_string()
        } else if failing == 0 {
            format!("all {checked} keys are unique")
        } else {
            let mut m = format!(
                "{failing} of {checked} rows repeat a key of ({})",
                self.columns.join(", ")
            );
            if self.scope == UniqueScope::Table {
                m.push_str(&format!(
                    ": {within} within the new rows, {conflicts} already in the table"
                ));
            }
            m
        };
        Outcome {
            passed: judge.passes(failing, checked),
            rows_checked: checked,
            rows_failing: failing,
            observed,
            threshold: judge.with_mostly(json!({ "scope": self.scope })),
            samples,
            message,
        }
    }

    fn existing_columns(&self) -> Vec<String> {
        match self.scope {
            UniqueScope::Table => self.columns.clone(),
            UniqueScope::Batch => Vec::new(),
        }
    }

    fn observe_existing(
        &self,
        layout: &KeyLayout,
        state: &mut UniqueState,
        batch: &RecordBatch,
    ) -> Result<(), KeyError> {
        let reader = KeyReader::new(batch, &self.columns, *layout)?;
        let rows = match reader.valid_rows() {
            Some(mask) => Rows::Mask(mask),
            None => Rows::All(batch.num_rows()),
        };
        insert_existing_keys(&mut state.keys, &reader, &rows).map_err(KeyError::Other)
    }
}

const READER_MISMATCH: &str = "the key columns were read as strings, but the keys are integers";

/// Adds the keys of the new rows; rows whose key was seen before, or is an existing key, fail.
fn insert_new_keys(
    keys: &mut KeySets,
    reader: &KeyReader,
    rows: &Rows,
    fails: &mut Failures<'_>,
) -> Result<(), String> {
    match (keys, reader) {
        (KeySets::Int { new, existing }, KeyReader::Int(values)) => {
            let values = values.values();
            let has_existing = existing.len() > 0;
            if new.is_runs() {
                if let Some(segments) = segments(values, rows) {
                    for (start, end, first_row) in segments {
                        // Only look value by value when a sample may be taken and a conflict exists.
                        let within = fails.wants_more() && new.overlaps(start, end);
                        let against =
                            has_existing && fails.wants_more() && existing.overlaps(start, end);
                        if within || against {
                            for v in start..=end {
                                if (within && new.contains(v)) || (against && existing.contains(v))
                                {
                                    if !fails.wants_more() {
                                        break;
                                    }
                                    fails.note(first_row + (v - start) as usize);
                                }
                            }
                        }
                        new.insert_run(start, end);
                    }
                    return Ok(());
                }
                new.make_hashed();
            }
            if let IntSet::Hashed(hashed) = new {
                hashed.reserve(rows.count() as usize);
            }
            rows.for_each(|i| {
                let v = values[i];
                let repeated = !new.insert(v);
                if (repeated || (has_existing && existing.contains(v))) && fails.wants_more() {
                    fails.note(i);
                }
            });
        }
        (KeySets::Bytes { new, existing }, reader) => {
            let has_existing = !existing.is_empty();
            let mut buf = Vec::new();
            rows.for_each(|i| {
                let key = byte_key(reader, i, &mut buf);
                let repeated = if new.contains(key) {
                    true
                } else {
                    new.insert(key.into());
                    false
                };
                if (repeated || (has_existing && existing.contains(key))) && fails.wants_more() {
                    fails.note(i);
                }
            });
        }
        (KeySets::Int { .. }, KeyReader::Str(_) | KeyReader::Composite(_)) => {
            return Err(READER_MISMATCH.into());
        }
    }
    Ok(())
}

/// Adds keys of rows already in the target.
fn insert_existing_keys(keys: &mut KeySets, reader: &KeyReader, rows: &Rows) -> Result<(), String> {
    match (keys, reader) {
        (KeySets::Int { existing, .. }, KeyReader::Int(values)) => {
            let values = values.values();
            if existing.is_runs() {
                if let Some(segments) = segments(values, rows) {
                    for (start, end, _) in segments {
                        existing.insert_run(start, end);
                    }
                    return Ok(());
                }
                existing.make_hashed();
            }
            rows.for_each(|i| {
                existing.insert(values[i]);
            });
        }
        (KeySets::Bytes { existing, .. }, reader) => {
            let mut buf = Vec::new();
            rows.for_each(|i| {
                let key = byte_key(reader, i, &mut buf);
                if !existing.contains(key) {
                    existing.insert(key.into());
                }
            });
        }
        (KeySets::Int { .. }, KeyReader::Str(_) | KeyReader::Composite(_)) => {
            return Err(READER_MISMATCH.into());
        }
    }
    Ok(())
}

/// The bytes of row `i`'s key: a string's own bytes, or the encoded key in `buf`.
fn byte_key<'a>(reader: &'a KeyReader, i: usize, buf: &'a mut Vec<u8>) -> &'a [u8] {
    match reader {
        KeyReader::Str(a) => a.value(i).as_bytes(),
        KeyReader::Int(_) | KeyReader::Composite(_) => {
            reader.encode(i, buf);
            buf
        }
    }
}

/// Splits the selected values into runs of consecutive values on consecutive rows:
/// `(first value, last value, first row)`. `None` when the values do not come in long runs.
fn segments(values: &[i64], rows: &Rows) -> Option<Vec<(i64, i64, usize)>> {
    let limit = 16 + rows.count() as usize / 64;
    let mut out: Vec<(i64, i64, usize)> = Vec::new();
    let mut last_row = usize::MAX;
    let mut too_many = false;
    rows.for_each(|i| {
        if too_many {
            return;
        }
        let v = values[i];
        if let Some(seg) = out.last_mut()
            && last_row.wrapping_add(1) == i
            && seg.1.checked_add(1) == Some(v)
        {
            seg.1 = v;
        } else {
            out.push((v, v, i));
            too_many = out.len() > limit;
        }
        last_row = i;
    });
    (!too_many).then_some(out)
}

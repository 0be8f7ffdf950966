//! What row-level kinds share: the batch as a check sees it, the rows it judges, and the tally of
//! judged and failing rows with its samples.

use arrow_arith::boolean::and;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_select::filter::prep_null_mask_filter;
use serde_json::Value as Json;

use super::{Judge, Outcome};
use crate::report::Sample;
use crate::sample::sample_rows;

/// One batch as a check sees it: the rows, the check's `where` filter already evaluated, and
/// where samples go.
pub(crate) struct Input<'a> {
    /// The batch (all the columns the check reads, perhaps more).
    pub batch: &'a RecordBatch,
    /// Rows selected by the check's `where` filter, without nulls; `None` selects every row.
    pub filter: Option<&'a BooleanArray>,
    /// How many samples a check keeps.
    pub sample_size: usize,
    /// Columns added to every sample.
    pub key_columns: &'a [String],
    /// Quarantine: every failing row's index is also pushed here (not only the sampled ones).
    pub collect: Option<&'a std::cell::RefCell<Vec<usize>>>,
}

impl<'a> Input<'a> {
    /// The column `name` of the batch.
    pub fn column(&self, name: &str) -> Result<&ArrayRef, String> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| format!("column `{name}` is missing"))
    }

    /// The number of rows the filter selects.
    pub fn selected(&self) -> u64 {
        self.filter
            .map_or(self.batch.num_rows() as u64, |f| f.true_count() as u64)
    }

    /// The rows the filter selects and, if given, where `valid_of` is not null.
    pub fn rows(&self, valid_of: Option<&dyn Array>) -> Result<Rows, String> {
        Rows::new(self.batch.num_rows(), self.filter, valid_of)
    }

    /// A tally of failing rows with room for `room` samples; with [`Input::collect`], every
    /// failing row is also collected.
    pub fn failures(&self, room: usize) -> Failures<'a> {
        Failures {
            count: 0,
            rows: Vec::new(),
            room,
            sink: self.collect,
        }
    }

    /// How many more samples fit beside `kept` ones.
    pub fn room(&self, kept: usize) -> usize {
        self.sample_size.saturating_sub(kept)
    }

    /// Samples of `rows`: the key columns' and `columns`' values.
    pub fn samples(&self, rows: &[usize], columns: &[String]) -> Vec<Sample> {
        sample_rows(self.batch, rows, columns, self.key_columns)
    }
}

/// The rows a check judges in one batch.
pub(crate) enum Rows {
    All(usize),
    Mask(BooleanArray),
}

impl Rows {
    /// Rows selected by `filter` (no nulls) and, if given, valid in `valid_of`.
    pub fn new(
        len: usize,
        filter: Option<&BooleanArray>,
        valid_of: Option<&dyn Array>,
    ) -> Result<Rows, String> {
        let valid = match valid_of {
            Some(a) if a.logical_null_count() > 0 => {
                Some(arrow_arith::boolean::is_not_null(a).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        Rows::select(len, filter, valid)
    }

    /// Rows selected by `filter` and `valid`, both optional masks without nulls.
    pub fn select(
        len: usize,
        filter: Option<&BooleanArray>,
        valid: Option<BooleanArray>,
    ) -> Result<Rows, String> {
        Ok(match (filter, valid) {
            (None, None) => Rows::All(len),
            (Some(f), None) => Rows::Mask(f.clone()),
            (None, Some(v)) => Rows::Mask(v),
            (Some(f), Some(v)) => Rows::Mask(and(f, &v).map_err(|e| e.to_string())?),
        })
    }

    pub fn count(&self) -> u64 {
        match self {
            Rows::All(n) => *n as u64,
            Rows::Mask(m) => m.true_count() as u64,
        }
    }

    #[inline]
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        match self {
            Rows::All(n) => (0..*n).for_each(f),
            Rows::Mask(m) => m.values().set_indices().for_each(&mut f),
        }
    }
}

/// Failing rows of one batch: the count, and the first few row indices (all of them go to
/// the sink when the batch is being split for quarantine).
pub(crate) struct Failures<'a> {
    pub count: u64,
    pub rows: Vec<usize>,
    pub room: usize,
    sink: Option<&'a std::cell::RefCell<Vec<usize>>>,
}

impl Failures<'_> {
    #[inline]
    pub fn record(&mut self, row: usize) {
        self.count += 1;
        if self.rows.len() < self.room {
            self.rows.push(row);
        }
        if let Some(sink) = self.sink {
            sink.borrow_mut().push(row);
        }
    }

    /// Every row set in `mask` fails.
    pub fn record_mask(&mut self, mask: &BooleanArray) {
        self.count += mask.true_count() as u64;
        let room = self.room.saturating_sub(self.rows.len());
        self.rows.extend(mask.values().set_indices().take(room));
        if let Some(sink) = self.sink {
            sink.borrow_mut().extend(mask.values().set_indices());
        }
    }

    /// A failing row the kind counts itself (`unique`): kept as a sample if there is room,
    /// and collected when splitting.
    #[inline]
    pub fn note(&mut self, row: usize) {
        if self.rows.len() < self.room {
            self.rows.push(row);
        }
        if let Some(sink) = self.sink {
            sink.borrow_mut().push(row);
        }
    }

    /// Whether another failing row is wanted: room for a sample, or collecting them all.
    #[inline]
    pub fn wants_more(&self) -> bool {
        self.rows.len() < self.room || self.sink.is_some()
    }

    /// Whether every failing row must be known (not only counted).
    pub fn collecting(&self) -> bool {
        self.sink.is_some()
    }
}

/// A mask with NULL read as false.
pub(crate) fn definite(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        mask.clone()
    } else {
        prep_null_mask_filter(mask)
    }
}

/// A value measured by `range` (the column's) or `length` (a string's length).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn min(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => Num::I(a.min(b)),
            (Num::F(a), Num::F(b)) => Num::F(a.min(b)),
            // One check measures one domain; keep what is known rather than mix them.
            (a @ Num::I(_), Num::F(_)) | (a @ Num::F(_), Num::I(_)) => a,
        }
    }

    fn max(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => Num::I(a.max(b)),
            (Num::F(a), Num::F(b)) => Num::F(a.max(b)),
            (a @ Num::I(_), Num::F(_)) | (a @ Num::F(_), Num::I(_)) => a,
        }
    }
}

/// The judged and failing rows of a row-level check, the extent of the measured values, and
/// samples of failing rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowTally {
    pub checked: u64,
    pub failing: u64,
    /// `range`: min/max of the checked values; `length`: min/max length.
    pub extent: Option<(Num, Num)>,
    pub samples: Vec<Sample>,
}

impl RowTally {
    /// Widens the extent to include `lo..=hi`.
    pub fn widen(&mut self, lo: Num, hi: Num) {
        self.extent = Some(match self.extent {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }

    /// Adds one batch: `checked` judged rows, of which `fails` failed; failing rows are sampled
    /// with the values of `columns`.
    pub fn add(
        &mut self,
        input: &Input<'_>,
        checked: u64,
        fails: Failures<'_>,
        columns: &[String],
    ) {
        self.checked += checked;
        self.failing += fails.count;
        if !fails.rows.is_empty() {
            self.samples.extend(input.samples(&fails.rows, columns));
        }
    }

    /// Adds the tally of another partition.
    pub fn merge(&mut self, other: RowTally, sample_size: usize) {
        self.checked += other.checked;
        self.failing += other.failing;
        if let Some((lo, hi)) = other.extent {
            self.widen(lo, hi);
        }
        let free = sample_size.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(free));
    }

    /// The verdict: the check passes when the failing rows are within `mostly`. `noun` completes
    /// "n of m rows (x%) ...".
    pub fn outcome(self, judge: &Judge, noun: &str, observed: Json, threshold: Json) -> Outcome {
        let RowTally {
            checked,
            failing,
            mut samples,
            ..
        } = self;
        samples.truncate(judge.sample_size);
        let message = if checked == 0 {
            "no rows to check".to_string()
        } else if failing == 0 {
            format!("all {checked} rows pass")
        } else {
            format!(
                "{failing} of {checked} rows ({:.4}%) {noun}{}",
                Judge::fraction(failing, checked) * 100.0,
                if judge.mostly < 1.0 {
                    format!("; at least {} of rows must pass", judge.mostly)
                } else {
                    String::new()
                }
            )
        };
        Outcome {
            passed: judge.passes(failing, checked),
            rows_checked: checked,
            rows_failing: failing,
            observed,
            threshold,
            samples,
            message,
        }
    }
}

/// A measured value as JSON, for kinds that show plain numbers.
pub(crate) fn plain_json(n: Num) -> Json {
    match n {
        Num::I(i) => i.into(),
        Num::F(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or_else(|| f.to_string().into()),
    }
}

/// The extent as a `(min, max)` pair of JSON values, nulls when nothing was measured.
pub(crate) fn extent_json(extent: Option<(Num, Num)>, show: impl Fn(Num) -> Json) -> (Json, Json) {
    match extent {
        Some((lo, hi)) => (show(lo), show(hi)),
        None => (Json::Null, Json::Null),
    }
}

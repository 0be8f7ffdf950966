//! Single-pass evaluation of a [`CheckSuite`] over Arrow record batches: which checks still
//! need rows, the `where` filter of each, and the order of the lifecycle. What a check measures
//! is its kind's business (`crate::kinds`).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use arrow_select::filter::prep_null_mask_filter;
use chrono::{DateTime, Utc};

use crate::config::{CheckDef, CheckSuite, Severity, type_name};
use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::keys::KeyError;
use crate::kinds::{BoundCheck, Input, Judge};
use crate::profile::{ColumnProfile, RunMetrics};
use crate::report::{AuditReport, CheckResult, Evidence, Status};
use crate::stats::TableStats;

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The time `freshness` checks measure age against.
    pub run_time: DateTime<Utc>,
    /// How many failing rows to keep per check (default 5; 0 keeps none).
    pub sample_size: usize,
    /// Columns whose values are added to every failing-row sample (for example `event_id`), so
    /// that a sample points at the row.
    pub key_columns: Vec<String>,
    /// Whether the caller sets aside the rows [`Evaluator::update_split`] names (a run's copy
    /// step does). Without it, `on_fail = "quarantine"` checks fail like any other check.
    pub quarantine: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            run_time: Utc::now(),
            sample_size: 5,
            key_columns: Vec::new(),
            quarantine: false,
        }
    }
}

impl EvalOptions {
    /// Default options with this run time.
    pub fn at(run_time: DateTime<Utc>) -> EvalOptions {
        EvalOptions {
            run_time,
            ..EvalOptions::default()
        }
    }

    /// Sets how many failing rows to keep per check.
    pub fn with_sample_size(mut self, sample_size: usize) -> EvalOptions {
        self.sample_size = sample_size;
        self
    }

    /// Says that the caller sets aside the rows `on_fail = "quarantine"` checks reject.
    pub fn with_quarantine(mut self, quarantine: bool) -> EvalOptions {
        self.quarantine = quarantine;
        self
    }

    /// Sets the columns added to every sample.
    pub fn with_key_columns<S: Into<String>>(
        mut self,
        columns: impl IntoIterator<Item = S>,
    ) -> EvalOptions {
        self.key_columns = columns.into_iter().map(Into::into).collect();
        self
    }
}

/// The columns one check still needs from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRequirement {
    /// The check's name.
    pub check: String,
    /// Columns it reads (may be empty: `row_count` only needs the number of rows).
    pub columns: Vec<String>,
}

/// Evaluates a [`CheckSuite`] over a stream of record batches. Build one with
/// [`CheckSuite::evaluator`].
///
/// ```text
///  CheckSuite::evaluator(schema, options)
///        │            (checks that cannot run are marked `error` here)
///        ├── apply_stats(&stats)         optional, before any batch: answers what stats can
///        ├── required_columns()          read only these columns
///        ├── observe_existing(&batch)*   key columns of the rows already in the target
///        ├── update(&batch)*             every new batch, once
///        ├── fork() / merge(other)       evaluate partitions in parallel
///        ▼
///  finish() ──► AuditReport
/// ```
///
/// Memory stays bounded by the checks' states: counters, at most `sample_size` sample rows per
/// check, and for `unique` a set of the distinct keys (see the crate docs).
#[derive(Debug, Clone)]
pub struct Evaluator {
    schema: SchemaRef,
    options: EvalOptions,
    slots: Vec<Slot>,
    fed_data: bool,
    /// What the last published runs measured, newest first, for `anomaly` checks.
    history: Arc<Vec<RunMetrics>>,
    /// Rows fed to [`update`](Self::update).
    rows: u64,
    /// Per column the checks read, its metrics so far (set up by the first batch).
    profiles: Option<Vec<(String, ColumnProfile)>>,
    /// Rows set aside by quarantining checks, and every row seen before that.
    quarantined: u64,
    rows_before_split: u64,
    /// `[quarantine] max_fraction` of the suite.
    max_quarantined: Option<f64>,
}

/// The rows of one batch that quarantining checks set aside (see [`Evaluator::update_split`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `true` for the rows to keep, `false` for those set aside.
    pub keep: arrow_array::BooleanArray,
    /// For each row set aside, in row order: its index and the checks it failed.
    pub failed: Vec<(usize, Vec<String>)>,
    /// The rows kept (the batch filtered by `keep`), as the other checks saw them.
    pub kept: RecordBatch,
}

#[derive(Debug)]
struct Slot {
    def: CheckDef,
    /// The check bound to the schema with its state, or why it cannot run on the schema.
    bound: std::result::Result<Box<dyn BoundCheck>, String>,
    filter: Option<Expr>,
    evidence: Evidence,
    /// Why the check stopped while running.
    failure: Option<String>,
    /// Quarantining checks: rows set aside.
    quarantined: u64,
}

impl Clone for Slot {
    fn clone(&self) -> Slot {
        Slot {
            def: self.def.clone(),
            bound: match &self.bound {
                Ok(b) => Ok(b.clone_box()),
                Err(e) => Err(e.clone()),
            },
            filter: self.filter.clone(),
            evidence: self.evidence,
            failure: self.failure.clone(),
            quarantined: self.quarantined,
        }
    }
}

impl CheckSuite {
    /// Builds an evaluator for batches of `schema`.
    ///
    /// Never fails: a check that cannot run against this schema (unknown column, wrong type,
    /// a bound that does not fit the column) is kept and reported with status `error`.
    pub fn evaluator(&self, schema: &Schema, options: EvalOptions) -> Evaluator {
        let slots = self
            .checks
            .iter()
            .map(|def| {
                let filter = def.filter.as_ref().map(|(e, _)| e.clone());
                let mut bound = def.spec.clone().bind(schema);
                if let (Ok(_), Some((expr, text))) = (&bound, &def.filter)
                    && let Err(e) = expr.check_schema(schema)
                {
                    bound = Err(format!("cannot apply `where = \"{text}\"`: {e}"));
                }
                let evidence = match &bound {
                    Err(_) => Evidence::None,
                    Ok(_) if !def.spec.reads_data() => Evidence::Schema,
                    Ok(_) => Evidence::Data,
                };
                Slot {
                    def: def.clone(),
                    bound,
                    filter,
                    evidence,
                    failure: None,
                    quarantined: 0,
                }
            })
            .collect();
        Evaluator {
            schema: Arc::new(schema.clone()),
            options,
            slots,
            fed_data: false,
            history: Arc::default(),
            rows: 0,
            profiles: None,
            quarantined: 0,
            rows_before_split: 0,
            max_quarantined: self.quarantine.max_fraction,
        }
    }
}

impl Evaluator {
    /// The schema the evaluator was built for.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The options the evaluator was built with.
    pub fn options(&self) -> &EvalOptions {
        &self.options
    }

    /// Sets what the last published runs measured (newest first), which `anomaly` checks
    /// compare this run with. Without it they have no history and pass with a note.
    pub fn set_history(&mut self, history: Vec<RunMetrics>) {
        self.history = Arc::new(history);
    }

    /// Whether the suite has `anomaly` checks (and so wants [`set_history`](Self::set_history)).
    pub fn wants_history(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.def.kind == crate::CheckKind::Anomaly)
    }

    /// How many published runs the `anomaly` checks compare with at most.
    pub fn history_depth(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.def.spec.history_depth())
            .max()
            .unwrap_or(0)
    }

    /// What the batches fed so far measure: their rows and, per column the checks read from
    /// the data, its null fraction, min, max, mean and distinct count. A publish records it.
    pub fn metrics(&self) -> RunMetrics {
        RunMetrics {
            rows: self.rows,
            columns: self
                .profiles
                .iter()
                .flatten()
                .map(|(name, p)| (name.clone(), p.finish()))
                .collect(),
        }
    }

    fn start_profiles(&mut self) {
        let wanted: Vec<String> = self.pending().flat_map(|s| s.def.columns()).collect();
        self.profiles = Some(
            self.schema
                .fields()
                .iter()
                .filter(|f| wanted.contains(f.name()))
                .map(|f| (f.name().clone(), ColumnProfile::new(f.data_type())))
                .collect(),
        );
    }

    fn pending(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.needs_data())
    }

    /// The checks that still need to read rows, with the columns each reads.
    pub fn data_requirements(&self) -> Vec<DataRequirement> {
        self.pending()
            .map(|s| DataRequirement {
                check: s.def.name.clone(),
                columns: s.def.columns(),
            })
            .collect()
    }

    /// Whether any check still needs to see the rows (possibly without columns: `row_count`).
    pub fn needs_data(&self) -> bool {
        self.pending().next().is_some()
    }

    /// The columns the batches passed to [`update`](Self::update) must contain, in schema order:
    /// those of the checks not yet answered (by statistics or the schema), plus the key columns
    /// for samples. Reading only these is enough.
    pub fn required_columns(&self) -> Vec<String> {
        let mut wanted: Vec<String> = self.pending().flat_map(|s| s.def.columns()).collect();
        let row_level_pending = self.pending().any(|s| s.def.kind().is_row_level());
        if row_level_pending && self.options.sample_size > 0 {
            wanted.extend(self.options.key_columns.iter().cloned());
        }
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| wanted.contains(name))
            .collect()
    }

    /// The string columns of [`required_columns`](Self::required_columns) that may be handed
    /// over dictionary-encoded (Arrow's `Dictionary(Int32, Utf8)`): every check still to read
    /// one takes dictionaries (and has no `where`), and so do the run metrics. A reader that
    /// keeps a file's dictionary pages as they are saves decoding every row's string.
    pub fn dictionary_columns(&self) -> Vec<String> {
        self.required_columns()
            .into_iter()
            .filter(|name| {
                self.schema
                    .field_with_name(name)
                    .is_ok_and(|f| f.data_type() == &DataType::Utf8)
                    && !self.options.key_columns.contains(name)
                    && self
                        .pending()
                        .filter(|s| s.def.columns().contains(name))
                        .all(|s| s.def.kind().reads_dictionaries() && s.def.filter.is_none())
            })
            .collect()
    }

    /// The key columns that [`observe_existing`](Self::observe_existing) needs (those of
    /// `unique` checks with `scope = "table"`), in schema order.
    pub fn existing_columns(&self) -> Vec<String> {
        let wanted: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.bound.is_ok() && s.failure.is_none())
            .flat_map(|s| s.def.spec.existing_columns())
            .collect();
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| wanted.contains(name))
            .collect()
    }

    /// The key columns of each check that reads existing rows (one list per check). An existing
    /// row matters only if, for some check, each of its key columns holds a value that a new
    /// row also holds; rows with a null key never conflict.
    pub fn existing_key_sets(&self) -> Vec<Vec<String>> {
        self.slots
            .iter()
            .filter(|s| s.bound.is_ok() && s.failure.is_none())
            .map(|s| s.def.spec.existing_columns())
            .filter(|c| !c.is_empty())
            .collect()
    }

    /// Answers the checks that exact statistics of all the new rows decide, so they need no data:
    ///
    /// * `row_count`: from the row count;
    /// * `not_null`: from null counts (one column, or several of which at most one has nulls);
    /// * `range`: when min and max lie within the bounds (and, for floats, `nan_count` is 0);
    ///   a range the statistics show broken still reads data, to count and sample the rows;
    /// * `freshness`: from the max (or a null count equal to the row count: no value at all).
    ///
    /// Checks with a `where` filter always read data. Must be called before the first
    /// [`update`](Self::update); returns the names of the checks it answered.
    pub fn apply_stats(&mut self, stats: &TableStats) -> Result<Vec<String>> {
        if self.fed_data {
            return Err(Error::StatsAfterData);
        }
        let mut answered = Vec::new();
        for slot in &mut self.slots {
            if !slot.needs_data() || slot.filter.is_some() {
                continue;
            }
            if let Ok(bound) = &mut slot.bound
                && bound.apply_stats(stats)
            {
                slot.evidence = Evidence::Statistics;
                answered.push(slot.def.name.clone());
            }
        }
        Ok(answered)
    }

    /// Feeds key columns of rows already in the target ref, for `unique` checks with
    /// `scope = "table"`. The batch must contain the columns of
    /// [`existing_columns`](Self::existing_columns). Counts are exact whatever the order of
    /// `observe_existing` and `update` calls; samples of conflicts are richest when the existing
    /// rows are observed first.
    pub fn observe_existing(&mut self, batch: &RecordBatch) -> Result<()> {
        for slot in &mut self.slots {
            if slot.failure.is_some() || slot.def.spec.existing_columns().is_empty() {
                continue;
            }
            let Ok(bound) = &mut slot.bound else { continue };
            match bound.observe_existing(batch) {
                Ok(()) => {}
                Err(KeyError::Missing(column)) => {
                    return Err(Error::MissingColumn {
                        column,
                        check: slot.def.name.clone(),
                    });
                }
                Err(KeyError::Other(e)) => {
                    slot.failure = Some(format!("cannot read existing keys: {e}"));
                }
            }
        }
        Ok(())
    }

    /// The other tables' columns that `relationships` checks compare with, as
    /// `(namespace.table, column)`, each once. Feed their values with
    /// [`observe_reference`](Self::observe_reference) before [`finish`](Self::finish).
    pub fn references(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for slot in self.slots.iter().filter(|s| s.bound.is_ok()) {
            if let Some(r) = slot.def.spec.reference()
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
        out
    }

    /// Feeds values of column `column` of table `table` (one of
    /// [`references`](Self::references)) to the checks that compare with it. A column of a
    /// type a check cannot compare marks that check `error`.
    pub fn observe_reference(&mut self, table: &str, column: &str, values: &ArrayRef) {
        for slot in &mut self.slots {
            if slot.failure.is_some()
                || slot
                    .def
                    .spec
                    .reference()
                    .as_ref()
                    .map(|(t, c)| (t.as_str(), c.as_str()))
                    != Some((table, column))
            {
                continue;
            }
            let Ok(bound) = &mut slot.bound else { continue };
            if let Err(e) = bound.observe_reference(values) {
                slot.failure = Some(e);
            }
        }
    }

    /// Feeds one batch of new rows. The batch must contain the columns of
    /// [`required_columns`](Self::required_columns) with the schema's types (it may contain
    /// more, or all). A failure inside one check (say an overflow in an expression) marks that
    /// check `error` and does not stop the others.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        self.update_split(batch).map(|_| ())
    }

    /// Whether the suite has quarantining checks that could run on the schema: then
    /// [`update_split`](Self::update_split) may set rows aside.
    pub fn quarantines(&self) -> bool {
        self.options.quarantine
            && self
                .slots
                .iter()
                .any(|s| s.def.quarantines() && s.bound.is_ok())
    }

    /// [`update`](Self::update) for a caller that sets rows aside: the quarantining checks
    /// judge every row of the batch, the rows any of them rejects are returned (with the
    /// checks they failed), and the other checks and the run's metrics see only the rows kept.
    /// `None` when every row is kept.
    pub fn update_split(&mut self, batch: &RecordBatch) -> Result<Option<Split>> {
        self.validate(batch)?;
        self.fed_data = true;
        if !self.quarantines() {
            self.feed(batch);
            return Ok(None);
        }
        let n = batch.num_rows();
        self.rows_before_split += n as u64;
        let mut failed: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
        let options = &self.options;
        for slot in self.slots.iter_mut().filter(|s| s.def.quarantines()) {
            if !slot.needs_data() {
                continue;
            }
            let sink = std::cell::RefCell::new(Vec::new());
            if let Err(e) = slot.update_with(batch, options, Some(&sink)) {
                slot.failure = Some(e);
                continue;
            }
            let mut rows = sink.into_inner();
            rows.sort_unstable();
            rows.dedup();
            slot.quarantined += rows.len() as u64;
            for row in rows {
                failed.entry(row).or_default().push(slot.def.name.clone());
            }
        }
        if failed.is_empty() {
            self.feed_others(batch);
            return Ok(None);
        }
        self.quarantined += failed.len() as u64;
        let keep: arrow_array::BooleanArray =
            (0..n).map(|i| Some(!failed.contains_key(&i))).collect();
        let kept = arrow_select::filter::filter_record_batch(batch, &keep)
            .map_err(|e| Error::SetAside(e.to_string()))?;
        self.feed_others(&kept);
        Ok(Some(Split {
            keep,
            failed: failed.into_iter().collect(),
            kept,
        }))
    }

    /// Feeds every check and the metrics.
    fn feed(&mut self, batch: &RecordBatch) {
        self.feed_where(batch, |_| true);
    }

    /// Feeds the checks that do not quarantine, and the metrics.
    fn feed_others(&mut self, batch: &RecordBatch) {
        self.feed_where(batch, |s| !s.def.quarantines());
    }

    fn feed_where(&mut self, batch: &RecordBatch, which: impl Fn(&Slot) -> bool) {
        if self.profiles.is_none() {
            self.start_profiles();
        }
        self.rows += batch.num_rows() as u64;
        if let Some(profiles) = &mut self.profiles {
            // A column that cannot be measured is left out of the metrics; checks go on.
            profiles.retain_mut(|(name, profile)| {
                batch
                    .column_by_name(name)
                    .is_some_and(|array| profile.update(array).is_ok())
            });
        }
        let options = &self.options;
        for slot in &mut self.slots {
            if !slot.needs_data() || !which(slot) {
                continue;
            }
            if let Err(e) = slot.update_with(batch, options, None) {
                slot.failure = Some(e);
            }
        }
    }

    /// Checks that the batch has the columns the checks read, with the schema's types (or, for
    /// checks that take them, a dictionary of the schema's strings).
    fn validate(&self, batch: &RecordBatch) -> Result<()> {
        // Validate first, so that a rejected batch leaves every state untouched.
        for slot in self.slots.iter().filter(|s| s.needs_data()) {
            for column in slot.def.columns() {
                let Some(array) = batch.column_by_name(&column) else {
                    return Err(Error::MissingColumn {
                        column,
                        check: slot.def.name.clone(),
                    });
                };
                if let Ok((_, field)) = self.schema.column_with_name(&column).ok_or(())
                    && field.data_type() != array.data_type()
                    && !(slot.def.kind().reads_dictionaries()
                        && is_string_dictionary_of(field.data_type(), array.data_type()))
                {
                    return Err(Error::ColumnTypeChanged {
                        column,
                        expected: type_name(field.data_type()),
                        actual: type_name(array.data_type()),
                    });
                }
            }
        }
        Ok(())
    }

    /// An evaluator with the same checks and no data seen, for evaluating another partition of
    /// the rows in parallel; combine with [`merge`](Self::merge). Answers from statistics are
    /// kept (they describe all rows).
    pub fn fork(&self) -> Evaluator {
        Evaluator {
            schema: self.schema.clone(),
            options: self.options.clone(),
            slots: self
                .slots
                .iter()
                .map(|s| Slot {
                    def: s.def.clone(),
                    // Answers from statistics describe all the rows: every fork keeps them.
                    bound: match &s.bound {
                        Ok(b) if s.evidence == Evidence::Statistics => Ok(b.clone_box()),
                        Ok(b) => Ok(b.fork()),
                        Err(e) => Err(e.clone()),
                    },
                    filter: s.filter.clone(),
                    evidence: s.evidence,
                    failure: None,
                    quarantined: 0,
                })
                .collect(),
            fed_data: self.fed_data,
            history: self.history.clone(),
            rows: 0,
            profiles: None,
            quarantined: 0,
            rows_before_split: 0,
            max_quarantined: self.max_quarantined,
        }
    }

    /// Adds what `other` saw (another partition of the rows, evaluated by a
    /// [`fork`](Self::fork)). The result equals one evaluator fed all the rows, except which
    /// rows are kept as samples.
    pub fn merge(&mut self, other: Evaluator) -> Result<()> {
        if self.schema != other.schema
            || self.slots.len() != other.slots.len()
            || self
                .slots
                .iter()
                .zip(&other.slots)
                .any(|(a, b)| a.def.name != b.def.name || a.def.kind != b.def.kind)
        {
            return Err(Error::MergeMismatch);
        }
        self.fed_data |= other.fed_data;
        self.rows += other.rows;
        self.quarantined += other.quarantined;
        self.rows_before_split += other.rows_before_split;
        match (&mut self.profiles, other.profiles) {
            (mine @ None, theirs) => *mine = theirs,
            (Some(mine), Some(theirs)) => {
                // Both partitions profile the same columns unless one could not measure one.
                mine.retain_mut(
                    |(name, profile)| match theirs.iter().find(|(n, _)| n == name) {
                        Some((_, other)) => {
                            profile.merge(other);
                            true
                        }
                        None => false,
                    },
                );
            }
            (Some(_), None) => {}
        }
        let room = self.options.sample_size;
        for (slot, theirs) in self.slots.iter_mut().zip(other.slots) {
            slot.quarantined += theirs.quarantined;
            if slot.failure.is_none() {
                slot.failure = theirs.failure;
            }
            if slot.evidence != Evidence::Data {
                continue;
            }
            if let (Ok(mine), Ok(theirs)) = (&mut slot.bound, theirs.bound)
                && let Err(e) = mine.merge(theirs, room)
                && slot.failure.is_none()
            {
                slot.failure = Some(e);
            }
        }
        Ok(())
    }

    /// Computes every check's verdict.
    pub fn finish(self) -> AuditReport {
        let run_time = self.options.run_time;
        let history = self.history.clone();
        let total = Quarantine {
            active: self.options.quarantine,
            rows: self.rows_before_split,
            set_aside: self.quarantined,
            max_fraction: self.max_quarantined,
        };
        let checks = self
            .slots
            .into_iter()
            .map(|slot| slot.finish(&self.options, &history, &total))
            .collect();
        AuditReport { run_time, checks }
    }
}

/// What the evaluator knows of the rows set aside, for the checks' verdicts.
struct Quarantine {
    /// The caller sets rows aside.
    active: bool,
    /// Rows seen before any was set aside.
    rows: u64,
    /// Rows set aside (by any check).
    set_aside: u64,
    max_fraction: Option<f64>,
}

impl Slot {
    fn needs_data(&self) -> bool {
        self.evidence == Evidence::Data && self.failure.is_none()
    }

    fn update_with(
        &mut self,
        batch: &RecordBatch,
        options: &EvalOptions,
        collect: Option<&std::cell::RefCell<Vec<usize>>>,
    ) -> std::result::Result<(), String> {
        let Ok(bound) = &mut self.bound else {
            return Err("the check is not bound to the schema".to_string());
        };
        let filter = match &self.filter {
            None => None,
            Some(expr) => {
                let mask = expr
                    .eval_predicate(batch)
                    .map_err(|e| format!("cannot evaluate `where`: {e}"))?;
                // NULL selects nothing, as in SQL `WHERE`.
                Some(if mask.null_count() > 0 {
                    prep_null_mask_filter(&mask)
                } else {
                    mask
                })
            }
        };
        bound.update(&Input {
            batch,
            filter: filter.as_ref(),
            sample_size: options.sample_size,
            key_columns: &options.key_columns,
            collect,
        })
    }

    fn finish(
        self,
        options: &EvalOptions,
        history: &[RunMetrics],
        total: &Quarantine,
    ) -> CheckResult {
        let def = self.def;
        let mut result = CheckResult {
            name: def.name.clone(),
            kind: def.kind,
            severity: def.severity,
            status: Status::Pass,
            rows_checked: 0,
            rows_failing: 0,
            observed: serde_json::Value::Null,
            threshold: serde_json::Value::Null,
            samples: Vec::new(),
            partitions: Vec::new(),
            message: String::new(),
            evidence: self.evidence,
            rows_quarantined: 0,
        };
        let bound = match (self.bound, self.failure) {
            (Err(e), _) | (Ok(_), Some(e)) => {
                result.status = Status::Error;
                result.evidence = Evidence::None;
                result.message = format!("check could not run: {e}");
                return result;
            }
            (Ok(bound), None) => bound,
        };
        let outcome = bound.finish(&Judge {
            mostly: def.mostly,
            sample_size: options.sample_size,
            run_time: options.run_time,
            history,
        });
        result.status = match (outcome.passed, def.severity) {
            (true, _) => Status::Pass,
            (false, Severity::Error) => Status::Fail,
            (false, Severity::Warn) => Status::Warn,
        };
        result.rows_checked = outcome.rows_checked;
        result.rows_failing = outcome.rows_failing;
        result.observed = outcome.observed;
        result.threshold = outcome.threshold;
        result.samples = outcome.samples;
        result.message = outcome.message;
        if result.evidence == Evidence::Statistics {
            result.message.push_str(" (from statistics)");
        }
        if let Some(rule) = def.quarantine.filter(|_| total.active) {
            result.rows_quarantined = self.quarantined;
            if self.quarantined > 0 {
                let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
                let mine = share(self.quarantined, result.rows_checked);
                let all = share(total.set_aside, total.rows);
                let over = match (rule.max_fraction, total.max_fraction) {
                    (Some(max), _) if mine > max => Some(format!(
                        "{:.4}% of the rows it checked, over its max_quarantined_fraction {max}",
                        mine * 100.0
                    )),
                    (_, Some(max)) if all > max => Some(format!(
                        "{} of {} rows ({:.4}%) in all, over [quarantine] max_fraction {max}",
                        total.set_aside,
                        total.rows,
                        all * 100.0
                    )),
                    _ => None,
                };
                match over {
                    Some(why) => {
                        result.status = Status::Fail;
                        result.message =
                            format!("{}; too many to set aside: {why}", result.message);
                    }
                    None => {
                        // Set aside: the batch publishes without them.
                        result.status = Status::Warn;
                        result.message = format!("{}; set aside in quarantine", result.message);
                    }
                }
            }
        }
        result
    }
}

/// Whether `actual` is `Dictionary(Int32, Utf8)` where the schema has `Utf8`: what
/// [`Evaluator::dictionary_columns`] allows.
fn is_string_dictionary_of(expected: &DataType, actual: &DataType) -> bool {
    matches!(
        (expected, actual),
        (DataType::Utf8, DataType::Dictionary(key, value))
            if **key == DataType::Int32 && **value == DataType::Utf8
    )
}

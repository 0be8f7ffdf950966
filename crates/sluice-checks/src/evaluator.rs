//! Single-pass evaluation of a [`CheckSuite`] over Arrow record batches.

use std::sync::Arc;

use arrow_arith::boolean::{and, is_null, not, or};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_cast::cast;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Schema, SchemaRef, TimeUnit};
use arrow_select::filter::prep_null_mask_filter;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde_json::{Value as Json, json};

use crate::config::{CheckDef, CheckKind, CheckSpec, CheckSuite, Severity, UniqueScope};
use crate::error::{Error, Result};
use crate::expr::{Expr, Literal};
use crate::keys::{
    FastSet, IntSet, KeyError, KeyLayout, KeyReader, KeyRef, as_int64, as_utf8, decode_key,
    string_like,
};
use crate::report::{AuditReport, CheckResult, Evidence, Sample, Status};
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
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            run_time: Utc::now(),
            sample_size: 5,
            key_columns: Vec::new(),
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
}

#[derive(Debug, Clone)]
struct Slot {
    def: CheckDef,
    plan: std::result::Result<Plan, String>,
    filter: Option<Expr>,
    state: State,
    evidence: Evidence,
    failure: Option<String>,
}

#[derive(Debug, Clone)]
enum Plan {
    NotNull,
    Unique { layout: KeyLayout },
    AcceptedValues(ValueSet),
    Range(Bounds),
    Regex,
    Length,
    RowCount,
    Freshness { unit: TimeUnit },
    Schema(Result2),
    Expression,
}

type Result2 = std::result::Result<(), String>;

#[derive(Debug, Clone)]
enum ValueSet {
    /// Few string values: compared one by one, faster than hashing.
    FewStr(Vec<Box<[u8]>>),
    ManyStr(FastSet<Box<[u8]>>),
    Int(FastSet<i64>),
    /// Anything else: `column IN (...)` evaluated with comparison kernels.
    Generic(Expr),
}

/// Range bounds normalised to the column's domain.
#[derive(Debug, Clone)]
enum Bounds {
    /// Integers, dates (days), timestamps (column unit): inclusive bounds.
    Int { lo: i64, hi: i64, render: Render },
    Float {
        lo: f64,
        lo_inc: bool,
        hi: f64,
        hi_inc: bool,
    },
}

/// How to show i64-domain values in reports.
#[derive(Debug, Clone, Copy)]
enum Render {
    Int,
    Date32,
    Date64,
    Timestamp(TimeUnit),
}

#[derive(Debug, Clone)]
enum State {
    Rows(RowState),
    Unique(Box<UniqueState>),
    Count(u64),
    Newest { checked: u64, newest: Option<i64> },
    Nothing,
}

#[derive(Debug, Clone, Default)]
struct RowState {
    checked: u64,
    failing: u64,
    /// Range: min/max of the checked values; length: min/max length.
    extent: Option<(Num, Num)>,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn min(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => Num::I(a.min(b)),
            (Num::F(a), Num::F(b)) => Num::F(a.min(b)),
            (a, _) => a,
        }
    }
    fn max(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => Num::I(a.max(b)),
            (Num::F(a), Num::F(b)) => Num::F(a.max(b)),
            (a, _) => a,
        }
    }
}

fn widen(extent: &mut Option<(Num, Num)>, lo: Num, hi: Num) {
    *extent = Some(match *extent {
        None => (lo, hi),
        Some((a, b)) => (a.min(lo), b.max(hi)),
    });
}

#[derive(Debug, Clone)]
enum Keys {
    Int(IntSet),
    Bytes(FastSet<Box<[u8]>>),
}

impl Keys {
    fn new(layout: KeyLayout) -> Keys {
        match layout {
            KeyLayout::Int => Keys::Int(IntSet::default()),
            _ => Keys::Bytes(FastSet::default()),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Keys::Int(s) => s.len(),
            Keys::Bytes(s) => s.len() as u64,
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts keys present in both, visiting up to `limit` of them.
    fn intersection(&self, other: &Keys, limit: usize, mut visit: impl FnMut(KeyRef<'_>)) -> u64 {
        match (self, other) {
            (Keys::Int(a), Keys::Int(b)) => a.intersection(b, limit, |v| visit(KeyRef::Int(v))),
            (Keys::Bytes(a), Keys::Bytes(b)) => {
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
            _ => 0,
        }
    }

    fn union(&mut self, other: Keys) {
        match (self, other) {
            (Keys::Int(a), Keys::Int(b)) => {
                a.union(&b);
            }
            (Keys::Bytes(a), Keys::Bytes(b)) => {
                if a.len() < b.len() {
                    let small = std::mem::replace(a, b);
                    a.extend(small);
                } else {
                    a.extend(b);
                }
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone)]
struct UniqueState {
    layout: KeyLayout,
    keys: Keys,
    existing: Keys,
    checked: u64,
    samples: Vec<Sample>,
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
                let mut plan = bind(def, schema);
                if let (Ok(_), Some((expr, text))) = (&plan, &def.filter)
                    && let Err(e) = expr.check_schema(schema)
                {
                    plan = Err(format!("cannot apply `where = \"{text}\"`: {e}"));
                }
                let state = fresh_state(def, &plan);
                let evidence = match &plan {
                    Err(_) => Evidence::None,
                    Ok(Plan::Schema(_)) => Evidence::Schema,
                    Ok(_) => Evidence::Data,
                };
                Slot {
                    def: def.clone(),
                    plan,
                    filter,
                    state,
                    evidence,
                    failure: None,
                }
            })
            .collect();
        Evaluator {
            schema: Arc::new(schema.clone()),
            options,
            slots,
            fed_data: false,
        }
    }
}

fn fresh_state(def: &CheckDef, plan: &std::result::Result<Plan, String>) -> State {
    match plan {
        Ok(Plan::Unique { layout }) => State::Unique(Box::new(UniqueState {
            layout: *layout,
            keys: Keys::new(*layout),
            existing: Keys::new(*layout),
            checked: 0,
            samples: Vec::new(),
        })),
        Ok(Plan::RowCount) => State::Count(0),
        Ok(Plan::Freshness { .. }) => State::Newest {
            checked: 0,
            newest: None,
        },
        Ok(Plan::Schema(_)) | Err(_) => State::Nothing,
        Ok(_) if def.kind().is_row_level() => State::Rows(RowState::default()),
        Ok(_) => State::Nothing,
    }
}

fn column_type<'a>(schema: &'a Schema, name: &str) -> std::result::Result<&'a DataType, String> {
    schema
        .column_with_name(name)
        .map(|(_, f)| f.data_type())
        .ok_or_else(|| {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!(
                "unknown column `{name}` (the data has: {})",
                known.join(", ")
            )
        })
}

fn value_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v,
        other => other,
    }
}

fn bind(def: &CheckDef, schema: &Schema) -> std::result::Result<Plan, String> {
    Ok(match &def.spec {
        CheckSpec::NotNull { columns } => {
            for c in columns {
                column_type(schema, c)?;
            }
            Plan::NotNull
        }
        CheckSpec::Unique { columns, .. } => {
            let types = columns
                .iter()
                .map(|c| column_type(schema, c))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            for (c, t) in columns.iter().zip(&types) {
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
            Plan::Unique {
                layout: KeyLayout::for_types(&types),
            }
        }
        CheckSpec::AcceptedValues { column, values } => {
            let t = column_type(schema, column)?;
            if string_like(t) {
                let mut strings = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Literal::Str(s) => strings.push(s.as_bytes().to_vec().into_boxed_slice()),
                        other => {
                            return Err(format!(
                                "column `{column}` holds strings, but the accepted value {} is not a string",
                                other.to_json()
                            ));
                        }
                    }
                }
                if strings.len() <= 8 {
                    Plan::AcceptedValues(ValueSet::FewStr(strings))
                } else {
                    Plan::AcceptedValues(ValueSet::ManyStr(strings.into_iter().collect()))
                }
            } else if matches!(
                t,
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
            ) && values.iter().all(|v| matches!(v, Literal::Int(_)))
            {
                Plan::AcceptedValues(ValueSet::Int(
                    values
                        .iter()
                        .filter_map(|v| match v {
                            Literal::Int(i) => Some(*i),
                            _ => None,
                        })
                        .collect(),
                ))
            } else {
                if values.is_empty() {
                    return Err("`values` is empty: no value could pass".to_string());
                }
                let expr = Expr::InList(
                    Box::new(Expr::Column(column.clone())),
                    values.iter().cloned().map(Expr::Literal).collect(),
                    false,
                );
                expr.check_schema(schema)
                    .map_err(|e| format!("accepted values do not fit column `{column}`: {e}"))?;
                Plan::AcceptedValues(ValueSet::Generic(expr))
            }
        }
        CheckSpec::Range {
            column,
            min,
            max,
            min_inclusive,
            max_inclusive,
        } => {
            let t = value_type(column_type(schema, column)?);
            Plan::Range(range_bounds(
                column,
                t,
                min.as_ref(),
                *min_inclusive,
                max.as_ref(),
                *max_inclusive,
            )?)
        }
        CheckSpec::Regex { column, .. } | CheckSpec::Length { column, .. } => {
            let t = column_type(schema, column)?;
            if !string_like(t) {
                return Err(format!(
                    "column `{column}` is {t}; a `{}` check needs a string column",
                    def.kind()
                ));
            }
            if def.kind() == CheckKind::Regex {
                Plan::Regex
            } else {
                Plan::Length
            }
        }
        CheckSpec::RowCount { .. } => Plan::RowCount,
        CheckSpec::Freshness { column, .. } => match column_type(schema, column)? {
            DataType::Timestamp(unit, _) => Plan::Freshness { unit: *unit },
            DataType::Date32 | DataType::Date64 => Plan::Freshness {
                unit: TimeUnit::Millisecond,
            },
            other => {
                return Err(format!(
                    "column `{column}` is {other}; a `freshness` check needs a timestamp or date column"
                ));
            }
        },
        CheckSpec::Schema {
            columns,
            forbid_extra,
        } => {
            let mut problems = Vec::new();
            for (name, text, spec) in columns {
                match schema.column_with_name(name) {
                    None => problems.push(format!("missing column `{name}`")),
                    Some((_, f)) if !spec.matches(f.data_type()) => problems.push(format!(
                        "column `{name}` is {}, expected {text}",
                        crate::config::type_name(f.data_type())
                    )),
                    Some(_) => {}
                }
            }
            if *forbid_extra {
                for f in schema.fields() {
                    if !columns.iter().any(|(n, _, _)| n == f.name()) {
                        problems.push(format!("unexpected column `{}`", f.name()));
                    }
                }
            }
            Plan::Schema(if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            })
        }
        CheckSpec::Expression { expr, .. } => {
            expr.check_schema(schema)?;
            Plan::Expression
        }
    })
}

fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Some(naive.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

fn instant_in_unit(instant: DateTime<Utc>, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(instant.timestamp()),
        TimeUnit::Millisecond => Some(instant.timestamp_millis()),
        TimeUnit::Microsecond => Some(instant.timestamp_micros()),
        TimeUnit::Nanosecond => instant.timestamp_nanos_opt(),
    }
}

/// The i64-domain value of a bound, or why it does not fit.
fn int_bound(
    column: &str,
    render: Render,
    lit: &Literal,
    is_min: bool,
    inclusive: bool,
) -> std::result::Result<i128, String> {
    let exact = |v: i128| {
        if inclusive {
            v
        } else if is_min {
            v + 1
        } else {
            v - 1
        }
    };
    match (render, lit) {
        (Render::Int, Literal::Int(i)) => Ok(exact(i128::from(*i))),
        (Render::Int, Literal::Float(f)) if f.is_finite() => {
            if f.fract() == 0.0 {
                Ok(exact(*f as i128))
            } else if is_min {
                Ok(f.ceil() as i128)
            } else {
                Ok(f.floor() as i128)
            }
        }
        (Render::Int, other) => Err(format!(
            "column `{column}` holds integers, but the bound {} is not a number",
            other.to_json()
        )),
        (temporal, Literal::Str(s)) => {
            let instant = parse_instant(s).ok_or_else(|| {
                format!("bound `{s}` is not a date or timestamp (write 2024-01-31 or 2024-01-31T12:00:00Z)")
            })?;
            let v = match temporal {
                Render::Date32 => instant.timestamp().div_euclid(86_400),
                Render::Date64 => instant.timestamp_millis(),
                Render::Timestamp(unit) => instant_in_unit(instant, unit)
                    .ok_or_else(|| format!("bound `{s}` is out of the column's range"))?,
                Render::Int => 0,
            };
            Ok(exact(i128::from(v)))
        }
        (_, other) => Err(format!(
            "column `{column}` holds dates or timestamps: write the bound {} as a string such as \"2024-01-31\"",
            other.to_json()
        )),
    }
}

fn range_bounds(
    column: &str,
    t: &DataType,
    min: Option<&Literal>,
    min_inclusive: bool,
    max: Option<&Literal>,
    max_inclusive: bool,
) -> std::result::Result<Bounds, String> {
    let render = match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Some(Render::Int),
        DataType::Date32 => Some(Render::Date32),
        DataType::Date64 => Some(Render::Date64),
        DataType::Timestamp(unit, _) => Some(Render::Timestamp(*unit)),
        _ => None,
    };
    if let Some(render) = render {
        let lo = min
            .map(|l| int_bound(column, render, l, true, min_inclusive))
            .transpose()?
            .unwrap_or(i128::from(i64::MIN));
        let hi = max
            .map(|l| int_bound(column, render, l, false, max_inclusive))
            .transpose()?
            .unwrap_or(i128::from(i64::MAX));
        // Bounds beyond i64 are clamped; an empty interval (lo > hi) makes every value fail.
        let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let (lo, hi) = if lo > hi {
            (i64::MAX, i64::MIN)
        } else {
            (clamp(lo), clamp(hi))
        };
        return Ok(Bounds::Int { lo, hi, render });
    }
    if t.is_numeric() {
        let float = |l: Option<&Literal>, default: f64| -> std::result::Result<f64, String> {
            match l {
                None => Ok(default),
                Some(Literal::Int(i)) => Ok(*i as f64),
                Some(Literal::Float(f)) => Ok(*f),
                Some(other) => Err(format!(
                    "column `{column}` holds numbers, but the bound {} is not a number",
                    other.to_json()
                )),
            }
        };
        return Ok(Bounds::Float {
            lo: float(min, f64::NEG_INFINITY)?,
            lo_inc: min_inclusive || min.is_none(),
            hi: float(max, f64::INFINITY)?,
            hi_inc: max_inclusive || max.is_none(),
        });
    }
    Err(format!(
        "column `{column}` is {t}; a `range` check needs numbers, dates or timestamps"
    ))
}

/// The rows a check judges in one batch.
enum Rows {
    All(usize),
    Mask(BooleanArray),
}

impl Rows {
    /// Rows selected by `filter` (no nulls) and, if given, valid in `valid_of`.
    fn new(
        len: usize,
        filter: Option<&BooleanArray>,
        valid_of: Option<&dyn Array>,
    ) -> std::result::Result<Rows, String> {
        let valid = match valid_of {
            Some(a) if a.logical_null_count() > 0 => {
                Some(arrow_arith::boolean::is_not_null(a).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        Ok(match (filter, valid) {
            (None, None) => Rows::All(len),
            (Some(f), None) => Rows::Mask(f.clone()),
            (None, Some(v)) => Rows::Mask(v),
            (Some(f), Some(v)) => Rows::Mask(and(f, &v).map_err(|e| e.to_string())?),
        })
    }

    fn count(&self) -> u64 {
        match self {
            Rows::All(n) => *n as u64,
            Rows::Mask(m) => m.true_count() as u64,
        }
    }

    #[inline]
    fn for_each(&self, mut f: impl FnMut(usize)) {
        match self {
            Rows::All(n) => (0..*n).for_each(f),
            Rows::Mask(m) => m.values().set_indices().for_each(&mut f),
        }
    }
}

/// Failing rows of one batch: the count, and the first few row indices.
struct Failures {
    count: u64,
    rows: Vec<usize>,
    room: usize,
}

impl Failures {
    fn new(room: usize) -> Failures {
        Failures {
            count: 0,
            rows: Vec::new(),
            room,
        }
    }

    #[inline]
    fn record(&mut self, row: usize) {
        self.count += 1;
        if self.rows.len() < self.room {
            self.rows.push(row);
        }
    }
}

/// A mask with NULL read as false.
fn definite(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        mask.clone()
    } else {
        prep_null_mask_filter(mask)
    }
}

fn json_cell(array: &dyn Array, row: usize) -> Json {
    if array.is_null(row) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Boolean => array.as_boolean().value(row).into(),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => match cast(&array.slice(row, 1), &DataType::Int64) {
            Ok(a) => a.as_primitive::<Int64Type>().value(0).into(),
            Err(_) => Json::Null,
        },
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            match cast(&array.slice(row, 1), &DataType::Float64) {
                Ok(a) => {
                    let v = a.as_primitive::<Float64Type>().value(0);
                    serde_json::Number::from_f64(v)
                        .map(Json::Number)
                        .unwrap_or_else(|| v.to_string().into())
                }
                Err(_) => Json::Null,
            }
        }
        DataType::Utf8 => array.as_string::<i32>().value(row).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).into(),
        DataType::Utf8View => array.as_string_view().value(row).into(),
        _ => match ArrayFormatter::try_new(array, &FormatOptions::default()) {
            Ok(f) => f.value(row).to_string().into(),
            Err(_) => Json::Null,
        },
    }
}

fn sample_rows(
    batch: &RecordBatch,
    rows: &[usize],
    columns: &[String],
    key_columns: &[String],
) -> Vec<Sample> {
    rows.iter()
        .map(|&row| {
            let mut sample = Sample::new();
            for c in key_columns.iter().chain(columns) {
                if let Some(array) = batch.column_by_name(c) {
                    sample.insert(c.clone(), json_cell(array.as_ref(), row));
                }
            }
            sample
        })
        .collect()
}

fn render_num(n: Num, render: Option<Render>) -> Json {
    match (n, render) {
        (Num::F(f), _) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or_else(|| f.to_string().into()),
        (Num::I(i), None | Some(Render::Int)) => i.into(),
        (Num::I(i), Some(Render::Date32)) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(TimeDelta::days(i)))
            .map(|d| Json::from(d.to_string()))
            .unwrap_or_else(|| i.into()),
        (Num::I(i), Some(Render::Date64)) => DateTime::from_timestamp_millis(i)
            .map(|d| Json::from(d.date_naive().to_string()))
            .unwrap_or_else(|| i.into()),
        (Num::I(i), Some(Render::Timestamp(unit))) => instant_from_unit(i, unit)
            .map(|d| Json::from(d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .unwrap_or_else(|| i.into()),
    }
}

fn instant_from_unit(v: i64, unit: TimeUnit) -> Option<DateTime<Utc>> {
    match unit {
        TimeUnit::Second => DateTime::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
    }
}

fn format_age(age: TimeDelta) -> String {
    let total = age.num_seconds();
    let (sign, total) = if total < 0 {
        ("-", -total)
    } else {
        ("", total)
    };
    let (d, h, m, s) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let mut out = String::from(sign);
    if d > 0 {
        out.push_str(&format!("{d}d"));
    }
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.len() == sign.len() {
        out.push_str(&format!("{s}s"));
    }
    out
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

    /// The key columns that [`observe_existing`](Self::observe_existing) needs (those of
    /// `unique` checks with `scope = "table"`), in schema order.
    pub fn existing_columns(&self) -> Vec<String> {
        let wanted: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.is_table_unique() && s.failure.is_none())
            .flat_map(|s| s.def.spec.columns())
            .collect();
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| wanted.contains(name))
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
        let run_schema = self.schema.clone();
        for slot in &mut self.slots {
            if !slot.needs_data() || slot.filter.is_some() {
                continue;
            }
            let Ok(plan) = &slot.plan else { continue };
            let new_state = match (&slot.def.spec, plan) {
                (CheckSpec::RowCount { .. }, _) => Some(State::Count(stats.row_count)),
                (CheckSpec::NotNull { columns }, _) => {
                    let counts: Option<Vec<u64>> = columns
                        .iter()
                        .map(|c| stats.columns.get(c).and_then(|s| s.null_count))
                        .collect();
                    counts.and_then(|counts| {
                        let with_nulls = counts.iter().filter(|n| **n > 0).count();
                        (with_nulls <= 1).then(|| {
                            State::Rows(RowState {
                                checked: stats.row_count,
                                failing: counts.iter().sum(),
                                ..RowState::default()
                            })
                        })
                    })
                }
                (CheckSpec::Range { column, .. }, Plan::Range(bounds)) => {
                    stats.columns.get(column).and_then(|cs| {
                        let nulls = cs.null_count?;
                        let checked = stats.row_count.checked_sub(nulls)?;
                        if checked == 0 {
                            return Some(State::Rows(RowState::default()));
                        }
                        let (min, max) = (cs.min.as_ref()?, cs.max.as_ref()?);
                        let is_float = run_schema
                            .column_with_name(column)
                            .is_some_and(|(_, f)| value_type(f.data_type()).is_floating());
                        match bounds {
                            Bounds::Int { lo, hi, .. } => {
                                let (a, b) = (min.as_i64()?, max.as_i64()?);
                                (a >= *lo && b <= *hi).then(|| {
                                    State::Rows(RowState {
                                        checked,
                                        failing: 0,
                                        extent: Some((Num::I(a), Num::I(b))),
                                        samples: Vec::new(),
                                    })
                                })
                            }
                            Bounds::Float {
                                lo,
                                lo_inc,
                                hi,
                                hi_inc,
                            } => {
                                if is_float && cs.nan_count != Some(0) {
                                    return None;
                                }
                                let (a, b) = (min.as_f64()?, max.as_f64()?);
                                let lo_ok = if *lo_inc { a >= *lo } else { a > *lo };
                                let hi_ok = if *hi_inc { b <= *hi } else { b < *hi };
                                (lo_ok && hi_ok).then(|| {
                                    State::Rows(RowState {
                                        checked,
                                        failing: 0,
                                        extent: Some((Num::F(a), Num::F(b))),
                                        samples: Vec::new(),
                                    })
                                })
                            }
                        }
                    })
                }
                (CheckSpec::Freshness { column, .. }, Plan::Freshness { .. }) => {
                    stats.columns.get(column).and_then(|cs| {
                        let nulls = cs.null_count;
                        if nulls == Some(stats.row_count) {
                            return Some(State::Newest {
                                checked: 0,
                                newest: None,
                            });
                        }
                        let max = cs.max.as_ref()?.as_i64()?;
                        let millis_or_unit = match run_schema
                            .column_with_name(column)
                            .map(|(_, f)| f.data_type())
                        {
                            Some(DataType::Date32) => max.checked_mul(86_400_000)?,
                            _ => max,
                        };
                        Some(State::Newest {
                            checked: stats.row_count - nulls.unwrap_or(0),
                            newest: Some(millis_or_unit),
                        })
                    })
                }
                _ => None,
            };
            if let Some(state) = new_state {
                slot.state = state;
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
            if !slot.is_table_unique() || slot.failure.is_some() {
                continue;
            }
            let State::Unique(st) = &mut slot.state else {
                continue;
            };
            let columns = slot.def.spec.columns();
            let reader = match KeyReader::new(batch, &columns, st.layout) {
                Ok(r) => r,
                Err(KeyError::Missing(column)) => {
                    return Err(Error::MissingColumn {
                        column,
                        check: slot.def.name.clone(),
                    });
                }
                Err(KeyError::Other(e)) => {
                    slot.failure = Some(format!("cannot read existing keys: {e}"));
                    continue;
                }
            };
            let rows = match reader.valid_rows() {
                Some(mask) => Rows::Mask(mask),
                None => Rows::All(batch.num_rows()),
            };
            insert_keys(&mut st.existing, &reader, &rows);
        }
        Ok(())
    }

    /// Feeds one batch of new rows. The batch must contain the columns of
    /// [`required_columns`](Self::required_columns) with the schema's types (it may contain
    /// more, or all). A failure inside one check (say an overflow in an expression) marks that
    /// check `error` and does not stop the others.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
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
                {
                    return Err(Error::ColumnTypeChanged {
                        column,
                        expected: crate::config::type_name(field.data_type()),
                        actual: crate::config::type_name(array.data_type()),
                    });
                }
            }
        }
        self.fed_data = true;
        let options = &self.options;
        for slot in &mut self.slots {
            if !slot.needs_data() {
                continue;
            }
            if let Err(e) = slot.update(batch, options) {
                slot.failure = Some(e);
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
                .map(|s| {
                    let state = if s.evidence == Evidence::Statistics {
                        s.state.clone()
                    } else {
                        fresh_state(&s.def, &s.plan)
                    };
                    Slot {
                        def: s.def.clone(),
                        plan: s.plan.clone(),
                        filter: s.filter.clone(),
                        state,
                        evidence: s.evidence,
                        failure: None,
                    }
                })
                .collect(),
            fed_data: self.fed_data,
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
                .any(|(a, b)| a.def.name != b.def.name)
        {
            return Err(Error::MergeMismatch);
        }
        self.fed_data |= other.fed_data;
        let room = self.options.sample_size;
        for (slot, theirs) in self.slots.iter_mut().zip(other.slots) {
            if slot.failure.is_none() {
                slot.failure = theirs.failure;
            }
            if slot.evidence != Evidence::Data {
                continue;
            }
            slot.state.merge(theirs.state, room, &slot.def);
        }
        Ok(())
    }

    /// Computes every check's verdict.
    pub fn finish(self) -> AuditReport {
        let run_time = self.options.run_time;
        let checks = self
            .slots
            .into_iter()
            .map(|slot| slot.finish(&self.options))
            .collect();
        AuditReport { run_time, checks }
    }
}

fn insert_keys(keys: &mut Keys, reader: &KeyReader, rows: &Rows) {
    match (keys, reader) {
        (Keys::Int(set), KeyReader::Int(values)) => {
            let values = values.values();
            if set.is_runs() {
                if let Some(segments) = segments(values, rows) {
                    for (start, end, _) in segments {
                        set.insert_run(start, end);
                    }
                    return;
                }
                set.make_hashed();
            }
            rows.for_each(|i| {
                set.insert(values[i]);
            });
        }
        (Keys::Bytes(set), reader) => {
            let mut buf = Vec::new();
            rows.for_each(|i| {
                let key: &[u8] = match reader {
                    KeyReader::Str(a) => a.value(i).as_bytes(),
                    _ => {
                        reader.encode(i, &mut buf);
                        &buf
                    }
                };
                if !set.contains(key) {
                    set.insert(key.into());
                }
            });
        }
        _ => {}
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

impl Slot {
    fn needs_data(&self) -> bool {
        self.evidence == Evidence::Data && self.failure.is_none()
    }

    fn is_table_unique(&self) -> bool {
        matches!(
            self.def.spec,
            CheckSpec::Unique {
                scope: UniqueScope::Table,
                ..
            }
        ) && self.plan.is_ok()
    }

    fn update(
        &mut self,
        batch: &RecordBatch,
        options: &EvalOptions,
    ) -> std::result::Result<(), String> {
        let Ok(plan) = &self.plan else { return Ok(()) };
        let filter = match &self.filter {
            None => None,
            Some(expr) => {
                let mask = expr
                    .eval_predicate(batch)
                    .map_err(|e| format!("cannot evaluate `where`: {e}"))?;
                Some(if mask.null_count() > 0 {
                    prep_null_mask_filter(&mask)
                } else {
                    mask
                })
            }
        };
        let filter = filter.as_ref();
        let len = batch.num_rows();
        let column = |name: &str| -> std::result::Result<&ArrayRef, String> {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("column `{name}` is missing"))
        };
        let room = match &self.state {
            State::Rows(st) => options.sample_size.saturating_sub(st.samples.len()),
            State::Unique(st) => options.sample_size.saturating_sub(st.samples.len()),
            _ => 0,
        };
        let mut fails = Failures::new(room);
        let checked: u64;
        let mut extent: Option<(Num, Num)> = None;
        match (&self.def.spec, plan) {
            (CheckSpec::NotNull { columns }, _) => {
                checked = filter.map_or(len as u64, |f| f.true_count() as u64);
                let arrays = columns
                    .iter()
                    .map(|c| column(c))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                if filter.is_none()
                    && arrays.len() == 1
                    && (room == 0 || arrays[0].logical_null_count() == 0)
                {
                    fails.count = arrays[0].logical_null_count() as u64;
                } else {
                    let mut mask: Option<BooleanArray> = None;
                    for a in arrays {
                        if a.logical_null_count() == 0 {
                            continue;
                        }
                        let nulls = is_null(a.as_ref()).map_err(|e| e.to_string())?;
                        mask = Some(match mask {
                            None => nulls,
                            Some(m) => or(&m, &nulls).map_err(|e| e.to_string())?,
                        });
                    }
                    if let Some(mut mask) = mask {
                        if let Some(f) = filter {
                            mask = and(&mask, f).map_err(|e| e.to_string())?;
                        }
                        fails.count = mask.true_count() as u64;
                        fails.rows.extend(mask.values().set_indices().take(room));
                    }
                }
            }
            (CheckSpec::Unique { columns, .. }, Plan::Unique { .. }) => {
                let State::Unique(st) = &mut self.state else {
                    return Ok(());
                };
                let reader = KeyReader::new(batch, columns, st.layout).map_err(|e| match e {
                    KeyError::Missing(c) => format!("column `{c}` is missing"),
                    KeyError::Other(e) => e,
                })?;
                let valid = reader.valid_rows();
                let rows = match (filter, valid) {
                    (None, None) => Rows::All(len),
                    (Some(f), None) => Rows::Mask(f.clone()),
                    (None, Some(v)) => Rows::Mask(v),
                    (Some(f), Some(v)) => Rows::Mask(and(f, &v).map_err(|e| e.to_string())?),
                };
                st.checked += rows.count();
                unique_update(st, &reader, &rows, &mut fails);
                let samples = sample_rows(batch, &fails.rows, columns, &options.key_columns);
                st.samples.extend(samples);
                return Ok(());
            }
            (CheckSpec::AcceptedValues { column: name, .. }, Plan::AcceptedValues(set)) => {
                let array = column(name)?;
                let rows = Rows::new(len, filter, Some(array.as_ref()))?;
                checked = rows.count();
                match set {
                    ValueSet::FewStr(values) => {
                        let strings = as_utf8(array)?;
                        rows.for_each(|i| {
                            let v = strings.value(i).as_bytes();
                            if !values.iter().any(|a| **a == *v) {
                                fails.record(i);
                            }
                        });
                    }
                    ValueSet::ManyStr(values) => {
                        let strings = as_utf8(array)?;
                        rows.for_each(|i| {
                            if !values.contains(strings.value(i).as_bytes()) {
                                fails.record(i);
                            }
                        });
                    }
                    ValueSet::Int(values) => {
                        let ints = as_int64(array)?;
                        let ints = ints.values();
                        rows.for_each(|i| {
                            if !values.contains(&ints[i]) {
                                fails.record(i);
                            }
                        });
                    }
                    ValueSet::Generic(expr) => {
                        let inside = expr.eval_predicate(batch)?;
                        let outside = not(&inside).map_err(|e| e.to_string())?;
                        let outside = definite(&outside);
                        rows.for_each(|i| {
                            if outside.value(i) {
                                fails.record(i);
                            }
                        });
                    }
                }
            }
            (CheckSpec::Range { column: name, .. }, Plan::Range(bounds)) => {
                let array = column(name)?;
                let rows = Rows::new(len, filter, Some(array.as_ref()))?;
                checked = rows.count();
                match bounds {
                    Bounds::Int { lo, hi, .. } => {
                        let ints = as_int64(array)?;
                        let values = ints.values();
                        let (lo, hi) = (*lo, *hi);
                        let (mut min, mut max) = (i64::MAX, i64::MIN);
                        rows.for_each(|i| {
                            let v = values[i];
                            min = min.min(v);
                            max = max.max(v);
                            if v < lo || v > hi {
                                fails.record(i);
                            }
                        });
                        if checked > 0 {
                            extent = Some((Num::I(min), Num::I(max)));
                        }
                    }
                    Bounds::Float {
                        lo,
                        lo_inc,
                        hi,
                        hi_inc,
                    } => {
                        let floats = match array.data_type() {
                            DataType::Float64 => array.clone(),
                            _ => cast(array, &DataType::Float64).map_err(|e| e.to_string())?,
                        };
                        let values = floats.as_primitive::<Float64Type>().values();
                        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
                        let (lo, hi, lo_inc, hi_inc) = (*lo, *hi, *lo_inc, *hi_inc);
                        rows.for_each(|i| {
                            let v = values[i];
                            min = min.min(v);
                            max = max.max(v);
                            let ok = (if lo_inc { v >= lo } else { v > lo })
                                && (if hi_inc { v <= hi } else { v < hi });
                            if !ok {
                                fails.record(i);
                            }
                        });
                        if checked > 0 {
                            extent = Some((Num::F(min), Num::F(max)));
                        }
                    }
                }
            }
            (
                CheckSpec::Regex {
                    column: name,
                    pattern,
                },
                _,
            ) => {
                let array = column(name)?;
                let rows = Rows::new(len, filter, Some(array.as_ref()))?;
                checked = rows.count();
                let strings = as_utf8(array)?;
                rows.for_each(|i| {
                    if !pattern.is_match(strings.value(i)) {
                        fails.record(i);
                    }
                });
            }
            (
                CheckSpec::Length {
                    column: name,
                    min,
                    max,
                },
                _,
            ) => {
                let array = column(name)?;
                let rows = Rows::new(len, filter, Some(array.as_ref()))?;
                checked = rows.count();
                let strings: StringArray = as_utf8(array)?;
                let ascii = strings.value_data().is_ascii();
                let (lo, hi) = (min.unwrap_or(0), max.unwrap_or(u64::MAX));
                let (mut shortest, mut longest) = (i64::MAX, i64::MIN);
                rows.for_each(|i| {
                    let s = strings.value(i);
                    let n = if ascii { s.len() } else { s.chars().count() } as u64;
                    shortest = shortest.min(n as i64);
                    longest = longest.max(n as i64);
                    if n < lo || n > hi {
                        fails.record(i);
                    }
                });
                if checked > 0 {
                    extent = Some((Num::I(shortest), Num::I(longest)));
                }
            }
            (CheckSpec::RowCount { .. }, _) => {
                if let State::Count(n) = &mut self.state {
                    *n += filter.map_or(len as u64, |f| f.true_count() as u64);
                }
                return Ok(());
            }
            (CheckSpec::Freshness { column: name, .. }, Plan::Freshness { .. }) => {
                let array = column(name)?;
                let array = match filter {
                    Some(f) => arrow_select::filter::filter(array.as_ref(), f)
                        .map_err(|e| e.to_string())?,
                    None => array.clone(),
                };
                let seen = (array.len() - array.logical_null_count()) as u64;
                // Dates are compared in milliseconds, timestamps in their own unit.
                let values = match array.data_type() {
                    DataType::Date32 => {
                        let days = cast(&array, &DataType::Int64).map_err(|e| e.to_string())?;
                        arrow_arith::numeric::mul(
                            &days,
                            &arrow_array::Int64Array::new_scalar(86_400_000),
                        )
                        .map_err(|e| e.to_string())?
                    }
                    _ => cast(&array, &DataType::Int64).map_err(|e| e.to_string())?,
                };
                let max = arrow_arith::aggregate::max(values.as_primitive::<Int64Type>());
                if let State::Newest { checked, newest } = &mut self.state {
                    *checked += seen;
                    *newest = match (*newest, max) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                return Ok(());
            }
            (CheckSpec::Expression { expr, .. }, _) => {
                let result = expr.eval_predicate(batch)?;
                checked = filter.map_or(len as u64, |f| f.true_count() as u64);
                // Only FALSE fails: NULL (unknown) passes, as in SQL CHECK constraints.
                let falsy = definite(&not(&result).map_err(|e| e.to_string())?);
                let falsy = match filter {
                    Some(f) => and(&falsy, f).map_err(|e| e.to_string())?,
                    None => falsy,
                };
                fails.count = falsy.true_count() as u64;
                fails.rows.extend(falsy.values().set_indices().take(room));
            }
            _ => return Ok(()),
        }
        if let State::Rows(st) = &mut self.state {
            st.checked += checked;
            st.failing += fails.count;
            if let Some((lo, hi)) = extent {
                widen(&mut st.extent, lo, hi);
            }
            if !fails.rows.is_empty() {
                let columns = self.def.spec.columns();
                st.samples.extend(sample_rows(
                    batch,
                    &fails.rows,
                    &columns,
                    &options.key_columns,
                ));
            }
        }
        Ok(())
    }

    fn finish(self, options: &EvalOptions) -> CheckResult {
        let def = &self.def;
        let kind = def.kind();
        let mut result = CheckResult {
            name: def.name.clone(),
            kind,
            severity: def.severity,
            status: Status::Pass,
            rows_checked: 0,
            rows_failing: 0,
            observed: Json::Null,
            threshold: Json::Null,
            samples: Vec::new(),
            message: String::new(),
            evidence: self.evidence,
        };
        let plan = match (&self.plan, &self.failure) {
            (Err(e), _) | (Ok(_), Some(e)) => {
                result.status = Status::Error;
                result.evidence = Evidence::None;
                result.message = format!("check could not run: {e}");
                return result;
            }
            (Ok(plan), None) => plan,
        };
        let failed_status = match def.severity {
            Severity::Error => Status::Fail,
            Severity::Warn => Status::Warn,
        };
        let ratio = |failing: u64, checked: u64| {
            if checked == 0 {
                0.0
            } else {
                failing as f64 / checked as f64
            }
        };
        let passes_mostly = |failing: u64, checked: u64| {
            checked == 0
                || failing == 0
                || ((checked - failing) as f64 / checked as f64) >= def.mostly
        };
        let mostly_json = |mut t: Json| {
            if def.mostly < 1.0
                && let Json::Object(map) = &mut t
            {
                map.insert("mostly".into(), def.mostly.into());
            }
            t
        };
        match (self.state, plan) {
            (State::Rows(st), plan) => {
                result.rows_checked = st.checked;
                result.rows_failing = st.failing;
                result.samples = st.samples;
                result.samples.truncate(options.sample_size);
                let fraction = ratio(st.failing, st.checked);
                let render = match plan {
                    Plan::Range(Bounds::Int { render, .. }) => Some(*render),
                    _ => None,
                };
                let extent_json = |e: Option<(Num, Num)>| match e {
                    Some((lo, hi)) => (render_num(lo, render), render_num(hi, render)),
                    None => (Json::Null, Json::Null),
                };
                let (noun, observed, threshold) = match (&def.spec, plan) {
                    (CheckSpec::NotNull { columns }, _) => (
                        format!("with a null in {}", columns.join(", ")),
                        json!({ "null_rows": st.failing, "null_fraction": fraction }),
                        json!({ "max_null_fraction": complement(def.mostly) }),
                    ),
                    (CheckSpec::AcceptedValues { column, values }, _) => (
                        format!("with a value of {column} outside the accepted set"),
                        json!({ "unexpected_rows": st.failing, "unexpected_fraction": fraction }),
                        mostly_json(
                            json!({ "values": values.iter().map(Literal::to_json).collect::<Vec<_>>() }),
                        ),
                    ),
                    (
                        CheckSpec::Range {
                            column,
                            min,
                            max,
                            min_inclusive,
                            max_inclusive,
                        },
                        _,
                    ) => {
                        let (lo, hi) = extent_json(st.extent);
                        (
                            format!("with {column} out of range"),
                            json!({ "min": lo, "max": hi, "out_of_range_rows": st.failing }),
                            mostly_json(json!({
                                "min": min.as_ref().map(Literal::to_json),
                                "max": max.as_ref().map(Literal::to_json),
                                "min_inclusive": min_inclusive,
                                "max_inclusive": max_inclusive,
                            })),
                        )
                    }
                    (CheckSpec::Regex { column, pattern }, _) => (
                        format!("with {column} not matching the pattern"),
                        json!({ "non_matching_rows": st.failing, "non_matching_fraction": fraction }),
                        mostly_json(json!({ "pattern": pattern.as_str() })),
                    ),
                    (CheckSpec::Length { column, min, max }, _) => {
                        let (lo, hi) = extent_json(st.extent);
                        (
                            format!("with a length of {column} out of bounds"),
                            json!({ "min_length": lo, "max_length": hi, "out_of_bounds_rows": st.failing }),
                            mostly_json(json!({ "min": min, "max": max })),
                        )
                    }
                    (CheckSpec::Expression { text, .. }, _) => (
                        format!("for which `{text}` is false"),
                        json!({ "false_rows": st.failing, "false_fraction": fraction }),
                        mostly_json(json!({ "expr": text })),
                    ),
                    _ => (String::from("failing"), Json::Null, Json::Null),
                };
                result.observed = observed;
                result.threshold = threshold;
                let passed = passes_mostly(st.failing, st.checked);
                result.status = if passed { Status::Pass } else { failed_status };
                result.message = if st.checked == 0 {
                    "no rows to check".to_string()
                } else if st.failing == 0 {
                    format!("all {} rows pass", st.checked)
                } else {
                    format!(
                        "{} of {} rows ({:.4}%) {noun}{}",
                        st.failing,
                        st.checked,
                        fraction * 100.0,
                        if def.mostly < 1.0 {
                            format!("; at least {} of rows must pass", def.mostly)
                        } else {
                            String::new()
                        }
                    )
                };
                if result.evidence == Evidence::Statistics {
                    result.message.push_str(" (from statistics)");
                }
            }
            (State::Unique(st), _) => {
                let UniqueState {
                    layout,
                    keys,
                    existing,
                    checked,
                    mut samples,
                } = *st;
                let CheckSpec::Unique { columns, scope } = &def.spec else {
                    return result;
                };
                let distinct = keys.len();
                let within = checked - distinct;
                let room = options.sample_size.saturating_sub(samples.len());
                let mut conflict_keys = Vec::new();
                let conflicts = if existing.is_empty() {
                    0
                } else {
                    keys.intersection(&existing, room + options.sample_size, |k| {
                        conflict_keys.push(decode_key(layout, k))
                    })
                };
                for values in conflict_keys {
                    if samples.len() >= options.sample_size {
                        break;
                    }
                    let sample: Sample = columns.iter().cloned().zip(values).collect();
                    let already = samples
                        .iter()
                        .any(|s| columns.iter().all(|c| s.get(c) == sample.get(c)));
                    if !already {
                        samples.push(sample);
                    }
                }
                let failing = within + conflicts;
                result.rows_checked = checked;
                result.rows_failing = failing;
                result.samples = samples;
                result.samples.truncate(options.sample_size);
                let mut observed = json!({ "duplicate_rows": within, "distinct_keys": distinct });
                if *scope == UniqueScope::Table
                    && let Json::Object(map) = &mut observed
                {
                    map.insert("existing_keys".into(), existing.len().into());
                    map.insert("conflicts_with_existing".into(), conflicts.into());
                }
                result.observed = observed;
                result.threshold = mostly_json(json!({ "scope": scope }));
                result.status = if passes_mostly(failing, checked) {
                    Status::Pass
                } else {
                    failed_status
                };
                result.message = if checked == 0 {
                    "no rows to check".to_string()
                } else if failing == 0 {
                    format!("all {checked} keys are unique")
                } else {
                    let mut m = format!(
                        "{failing} of {checked} rows repeat a key of ({})",
                        columns.join(", ")
                    );
                    if *scope == UniqueScope::Table {
                        m.push_str(&format!(
                            ": {within} within the new rows, {conflicts} already in the table"
                        ));
                    }
                    m
                };
            }
            (State::Count(n), _) => {
                let CheckSpec::RowCount { min, max } = &def.spec else {
                    return result;
                };
                result.rows_checked = n;
                result.observed = json!({ "rows": n });
                result.threshold = json!({ "min": min, "max": max });
                let ok = min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
                result.status = if ok { Status::Pass } else { failed_status };
                result.message = if ok {
                    format!("{n} rows")
                } else {
                    format!(
                        "{n} rows, expected {}",
                        match (min, max) {
                            (Some(a), Some(b)) => format!("between {a} and {b}"),
                            (Some(a), None) => format!("at least {a}"),
                            (None, Some(b)) => format!("at most {b}"),
                            (None, None) => String::new(),
                        }
                    )
                };
                if result.evidence == Evidence::Statistics {
                    result.message.push_str(" (from statistics)");
                }
            }
            (State::Newest { checked, newest }, Plan::Freshness { unit }) => {
                let CheckSpec::Freshness {
                    column,
                    max_age,
                    max_age_text,
                } = &def.spec
                else {
                    return result;
                };
                result.rows_checked = checked;
                result.threshold = json!({ "max_age": max_age_text });
                match newest.and_then(|v| instant_from_unit(v, *unit)) {
                    None => {
                        result.status = failed_status;
                        result.observed = json!({ "newest": Json::Null });
                        result.message =
                            format!("no non-null value in {column}: freshness unknown");
                    }
                    Some(instant) => {
                        let age = options.run_time.signed_duration_since(instant);
                        result.observed = json!({
                            "newest": instant.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                            "age": format_age(age),
                        });
                        let ok = age <= *max_age;
                        result.status = if ok { Status::Pass } else { failed_status };
                        result.message = format!(
                            "newest {column} is {} old{}",
                            format_age(age),
                            if ok {
                                String::new()
                            } else {
                                format!(", more than {max_age_text}")
                            }
                        );
                    }
                }
                if result.evidence == Evidence::Statistics {
                    result.message.push_str(" (from statistics)");
                }
            }
            (_, Plan::Schema(outcome)) => {
                let CheckSpec::Schema {
                    columns,
                    forbid_extra,
                } = &def.spec
                else {
                    return result;
                };
                result.threshold = json!({
                    "columns": columns.iter().map(|(n, t, _)| (n.clone(), Json::from(t.clone()))).collect::<serde_json::Map<_, _>>(),
                    "forbid_extra": forbid_extra,
                });
                match outcome {
                    Ok(()) => {
                        result.observed = json!({ "problems": [] });
                        result.message = format!(
                            "all {} required columns present with their types",
                            columns.len()
                        );
                    }
                    Err(problems) => {
                        result.status = failed_status;
                        result.observed =
                            json!({ "problems": problems.split("; ").collect::<Vec<_>>() });
                        result.message = problems.clone();
                    }
                }
            }
            _ => {}
        }
        result
    }
}

fn unique_update(st: &mut UniqueState, reader: &KeyReader, rows: &Rows, fails: &mut Failures) {
    let has_existing = !st.existing.is_empty();
    match (&mut st.keys, reader) {
        (Keys::Int(set), KeyReader::Int(values)) => {
            let values = values.values();
            let existing = match &st.existing {
                Keys::Int(e) => e,
                Keys::Bytes(_) => return,
            };
            if set.is_runs() {
                if let Some(segments) = segments(values, rows) {
                    for (start, end, first_row) in segments {
                        // Only look value by value when a sample may be taken and a conflict exists.
                        let within = fails.rows.len() < fails.room && set.overlaps(start, end);
                        let against = has_existing
                            && fails.rows.len() < fails.room
                            && existing.overlaps(start, end);
                        if within || against {
                            for v in start..=end {
                                if (within && set.contains(v)) || (against && existing.contains(v))
                                {
                                    if fails.rows.len() >= fails.room {
                                        break;
                                    }
                                    fails.rows.push(first_row + (v - start) as usize);
                                }
                            }
                        }
                        set.insert_run(start, end);
                    }
                    return;
                }
                set.make_hashed();
            }
            if let IntSet::Hashed(hashed) = set {
                hashed.reserve(rows.count() as usize);
            }
            rows.for_each(|i| {
                let v = values[i];
                let repeated = !set.insert(v);
                if (repeated || (has_existing && existing.contains(v)))
                    && fails.rows.len() < fails.room
                {
                    fails.rows.push(i);
                }
            });
        }
        (Keys::Bytes(set), reader) => {
            let existing = match &st.existing {
                Keys::Bytes(e) => e,
                Keys::Int(_) => return,
            };
            let mut buf = Vec::new();
            rows.for_each(|i| {
                let key: &[u8] = match reader {
                    KeyReader::Str(a) => a.value(i).as_bytes(),
                    _ => {
                        reader.encode(i, &mut buf);
                        &buf
                    }
                };
                let repeated = if set.contains(key) {
                    true
                } else {
                    set.insert(key.into());
                    false
                };
                if (repeated || (has_existing && existing.contains(key)))
                    && fails.rows.len() < fails.room
                {
                    fails.rows.push(i);
                }
            });
        }
        _ => {}
    }
}

impl State {
    fn merge(&mut self, other: State, room: usize, def: &CheckDef) {
        match (self, other) {
            (State::Rows(a), State::Rows(b)) => {
                a.checked += b.checked;
                a.failing += b.failing;
                if let Some((lo, hi)) = b.extent {
                    widen(&mut a.extent, lo, hi);
                }
                let free = room.saturating_sub(a.samples.len());
                a.samples.extend(b.samples.into_iter().take(free));
            }
            (State::Unique(a), State::Unique(b)) => {
                let b = *b;
                a.checked += b.checked;
                let free = room.saturating_sub(a.samples.len() + b.samples.len());
                // Keys seen by both partitions are duplicates neither could see alone.
                if free > 0 {
                    let columns = def.spec.columns();
                    let layout = a.layout;
                    let mut found = Vec::new();
                    a.keys
                        .intersection(&b.keys, free, |k| found.push(decode_key(layout, k)));
                    a.samples.extend(b.samples);
                    for values in found {
                        a.samples
                            .push(columns.iter().cloned().zip(values).collect());
                    }
                } else {
                    let free = room.saturating_sub(a.samples.len());
                    a.samples.extend(b.samples.into_iter().take(free));
                }
                a.samples.truncate(room);
                a.keys.union(b.keys);
                a.existing.union(b.existing);
            }
            (State::Count(a), State::Count(b)) => *a += b,
            (
                State::Newest { checked, newest },
                State::Newest {
                    checked: c2,
                    newest: n2,
                },
            ) => {
                *checked += c2;
                *newest = match (*newest, n2) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
            }
            _ => {}
        }
    }
}

/// `1 - fraction` without binary floating-point noise (`1 - 0.999` is 0.001, not
/// 0.0010000000000000009): fractions are given in decimal, so they are shown in decimal.
fn complement(fraction: f64) -> f64 {
    let exact = 1.0 - fraction;
    let rounded = (exact * 1e12).round() / 1e12;
    if rounded.is_finite() { rounded } else { exact }
}

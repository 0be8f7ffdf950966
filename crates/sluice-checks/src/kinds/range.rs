//! `range`: a column's values lie between bounds. Numbers, dates and timestamps; nulls are not
//! checked. The result shows the smallest and largest value checked.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_cast::cast;
use arrow_schema::{DataType, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, TimeDelta};
use serde_json::{Value as Json, json};

use super::rows::{Num, RowTally, extent_json, plain_json};
use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};
use crate::expr::Literal;
use crate::keys::as_int64;
use crate::stats::TableStats;
use crate::time::{instant_from_unit, instant_in_unit, parse_instant};

/// `kind = "range"`.
#[derive(Debug)]
pub(crate) struct Range {
    column: String,
    min: Option<Literal>,
    max: Option<Literal>,
    min_inclusive: bool,
    max_inclusive: bool,
}

/// The bounds in the column's domain, and whether the column is floating-point (whose min and
/// max statistics say nothing about NaN).
#[derive(Debug)]
pub(crate) struct RangeBound {
    bounds: Bounds,
    is_float: bool,
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

impl Check for Range {
    const NAME: &'static str = "range";
    const FIELDS: &'static [&'static str] =
        &["column", "min", "max", "min_inclusive", "max_inclusive"];
    const ROW_LEVEL: bool = true;
    type Bound = RangeBound;
    type State = RowTally;

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let column = fields.column()?;
        let min = fields.literal("min")?;
        let max = fields.literal("max")?;
        let min_inclusive = fields.take("min_inclusive")?.unwrap_or(true);
        let max_inclusive = fields.take("max_inclusive")?.unwrap_or(true);
        if min.is_none() && max.is_none() {
            return Err("a `range` check needs `min`, `max` or both".into());
        }
        Ok(Range {
            column,
            min,
            max,
            min_inclusive,
            max_inclusive,
        })
    }

    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }

    fn bind(&self, schema: &Schema) -> Result<RangeBound, String> {
        let t = super::value_type(super::column_type(schema, &self.column)?);
        Ok(RangeBound {
            bounds: range_bounds(
                &self.column,
                t,
                self.min.as_ref(),
                self.min_inclusive,
                self.max.as_ref(),
                self.max_inclusive,
            )?,
            is_float: t.is_floating(),
        })
    }

    fn new_state(&self, _: &RangeBound) -> RowTally {
        RowTally::default()
    }

    /// Answers only a range the statistics show kept: a broken one is read from the data, so
    /// that its rows are counted and sampled.
    fn state_from_stats(&self, bound: &RangeBound, stats: &TableStats) -> Option<RowTally> {
        let cs = stats.columns.get(&self.column)?;
        let nulls = cs.null_count?;
        let checked = stats.row_count.checked_sub(nulls)?;
        if checked == 0 {
            return Some(RowTally::default());
        }
        let (min, max) = (cs.min.as_ref()?, cs.max.as_ref()?);
        let extent = match bound.bounds {
            Bounds::Int { lo, hi, .. } => {
                let (a, b) = (min.as_i64()?, max.as_i64()?);
                (a >= lo && b <= hi).then_some((Num::I(a), Num::I(b)))?
            }
            Bounds::Float {
                lo,
                lo_inc,
                hi,
                hi_inc,
            } => {
                if bound.is_float && cs.nan_count != Some(0) {
                    return None;
                }
                let (a, b) = (min.as_f64()?, max.as_f64()?);
                let lo_ok = if lo_inc { a >= lo } else { a > lo };
                let hi_ok = if hi_inc { b <= hi } else { b < hi };
                (lo_ok && hi_ok).then_some((Num::F(a), Num::F(b)))?
            }
        };
        Some(RowTally {
            checked,
            failing: 0,
            extent: Some(extent),
            samples: Vec::new(),
        })
    }

    fn update(
        &self,
        bound: &RangeBound,
        state: &mut RowTally,
        input: &Input<'_>,
    ) -> Result<(), String> {
        let array = input.column(&self.column)?;
        let rows = input.rows(Some(array.as_ref()))?;
        let checked = rows.count();
        let mut fails = input.failures(input.room(state.samples.len()));
        match bound.bounds {
            Bounds::Int { lo, hi, .. } => {
                let ints = as_int64(array)?;
                let values = ints.values();
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
                    state.widen(Num::I(min), Num::I(max));
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
                    state.widen(Num::F(min), Num::F(max));
                }
            }
        }
        state.add(input, checked, fails, &self.columns());
        Ok(())
    }

    fn merge(
        &self,
        _: &RangeBound,
        state: &mut RowTally,
        other: RowTally,
        sample_size: usize,
    ) -> Result<(), String> {
        state.merge(other, sample_size);
        Ok(())
    }

    fn finish(&self, bound: &RangeBound, state: RowTally, judge: &Judge) -> Outcome {
        let (lo, hi) = match bound.bounds {
            Bounds::Int { render, .. } => extent_json(state.extent, |n| render_num(n, render)),
            Bounds::Float { .. } => extent_json(state.extent, plain_json),
        };
        let observed = json!({ "min": lo, "max": hi, "out_of_range_rows": state.failing });
        let threshold = judge.with_mostly(json!({
            "min": self.min.as_ref().map(Literal::to_json),
            "max": self.max.as_ref().map(Literal::to_json),
            "min_inclusive": self.min_inclusive,
            "max_inclusive": self.max_inclusive,
        }));
        let noun = format!("with {} out of range", self.column);
        state.outcome(judge, &noun, observed, threshold)
    }
}

/// The i64-domain value of a bound, or why it does not fit.
fn int_bound(
    column: &str,
    render: Render,
    lit: &Literal,
    is_min: bool,
    inclusive: bool,
) -> Result<i128, String> {
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
) -> Result<Bounds, String> {
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
        let float = |l: Option<&Literal>, default: f64| -> Result<f64, String> {
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

/// An i64-domain value as the column shows it: a number, a date, an RFC 3339 timestamp.
fn render_num(n: Num, render: Render) -> Json {
    match (n, render) {
        (Num::F(f), _) => plain_json(Num::F(f)),
        (Num::I(i), Render::Int) => i.into(),
        (Num::I(i), Render::Date32) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(TimeDelta::days(i)))
            .map(|d| Json::from(d.to_string()))
            .unwrap_or_else(|| i.into()),
        (Num::I(i), Render::Date64) => DateTime::from_timestamp_millis(i)
            .map(|d| Json::from(d.date_naive().to_string()))
            .unwrap_or_else(|| i.into()),
        (Num::I(i), Render::Timestamp(unit)) => instant_from_unit(i, unit)
            .map(|d| Json::from(d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .unwrap_or_else(|| i.into()),
    }
}

//! Exact column statistics (from parquet footers or Iceberg manifests) that answer some checks
//! without reading data.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A statistic's value, in the column's physical representation: days since the epoch for
/// `Date32`, the column's own time unit since the epoch for timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatValue {
    /// A signed integer, date or timestamp.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl StatValue {
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            StatValue::Int(v) => Some(*v),
            StatValue::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            StatValue::Int(v) => Some(*v as f64),
            StatValue::UInt(v) => Some(*v as f64),
            StatValue::Float(v) => Some(*v),
            _ => None,
        }
    }

    fn min(self, other: StatValue) -> Option<StatValue> {
        ordering(&self, &other).map(|o| if o.is_le() { self } else { other })
    }

    fn max(self, other: StatValue) -> Option<StatValue> {
        ordering(&self, &other).map(|o| if o.is_ge() { self } else { other })
    }
}

fn ordering(a: &StatValue, b: &StatValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (StatValue::Int(x), StatValue::Int(y)) => Some(x.cmp(y)),
        (StatValue::UInt(x), StatValue::UInt(y)) => Some(x.cmp(y)),
        (StatValue::Float(x), StatValue::Float(y)) => x.partial_cmp(y),
        (StatValue::Str(x), StatValue::Str(y)) => Some(x.cmp(y)),
        (StatValue::Bool(x), StatValue::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Exact statistics of one column over all the new rows.
///
/// Every field is optional: a check is answered from statistics only when the fields it needs
/// are present. "Exact" matters: parquet writers may truncate string min/max, and do not count
/// NaN in float min/max. Leave a field `None` when it is not exact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Number of null values.
    pub null_count: Option<u64>,
    /// Number of NaN values (floating-point columns; required to be `Some(0)` before float
    /// min/max are trusted for `range`).
    pub nan_count: Option<u64>,
    /// Smallest non-null value.
    pub min: Option<StatValue>,
    /// Largest non-null value.
    pub max: Option<StatValue>,
}

impl ColumnStats {
    /// Combines the statistics of two disjoint sets of rows (for instance two files).
    pub fn merge(self, other: ColumnStats) -> ColumnStats {
        let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
        let pick = |a: Option<StatValue>,
                    b: Option<StatValue>,
                    f: fn(StatValue, StatValue) -> Option<StatValue>| {
            match (a, b) {
                (Some(a), Some(b)) => f(a, b),
                _ => None,
            }
        };
        ColumnStats {
            null_count: add(self.null_count, other.null_count),
            nan_count: add(self.nan_count, other.nan_count),
            min: pick(self.min, other.min, StatValue::min),
            max: pick(self.max, other.max, StatValue::max),
        }
    }
}

/// Exact statistics of all the new rows: their number and per-column statistics.
///
/// ```
/// use sluice_checks::{ColumnStats, StatValue, TableStats};
/// let stats = TableStats::new(1_000).with_column(
///     "amount",
///     ColumnStats { null_count: Some(0), nan_count: Some(0),
///                   min: Some(StatValue::Float(0.5)), max: Some(StatValue::Float(99.0)) },
/// );
/// assert_eq!(stats.row_count, 1_000);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// Number of rows.
    pub row_count: u64,
    /// Statistics by column name.
    pub columns: HashMap<String, ColumnStats>,
}

impl TableStats {
    /// Statistics for `row_count` rows and no column yet.
    pub fn new(row_count: u64) -> TableStats {
        TableStats {
            row_count,
            columns: HashMap::new(),
        }
    }

    /// Adds (or replaces) one column's statistics.
    pub fn with_column(mut self, name: impl Into<String>, stats: ColumnStats) -> TableStats {
        self.columns.insert(name.into(), stats);
        self
    }

    /// Combines the statistics of two disjoint sets of rows (for instance two files). A column
    /// known to only one side loses its statistics.
    pub fn merge(self, other: TableStats) -> TableStats {
        let mut other_columns = other.columns;
        let columns = self
            .columns
            .into_iter()
            .filter_map(|(name, a)| other_columns.remove(&name).map(|b| (name, a.merge(b))))
            .collect();
        TableStats {
            row_count: self.row_count + other.row_count,
            columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_widens_bounds() {
        let a = TableStats::new(10).with_column(
            "x",
            ColumnStats {
                null_count: Some(1),
                nan_count: None,
                min: Some(StatValue::Int(3)),
                max: Some(StatValue::Int(9)),
            },
        );
        let b = TableStats::new(5)
            .with_column(
                "x",
                ColumnStats {
                    null_count: Some(2),
                    nan_count: None,
                    min: Some(StatValue::Int(-1)),
                    max: Some(StatValue::Int(4)),
                },
            )
            .with_column("y", ColumnStats::default());
        let m = a.merge(b);
        assert_eq!(m.row_count, 15);
        assert_eq!(m.columns.len(), 1);
        let x = &m.columns["x"];
        assert_eq!(x.null_count, Some(3));
        assert_eq!(x.min, Some(StatValue::Int(-1)));
        assert_eq!(x.max, Some(StatValue::Int(9)));
        assert_eq!(x.nan_count, None);
    }
}

//! The check kinds: one type per kind, each behind the [`Check`] trait, in its own file.
//!
//! ```text
//!   [[check]] fields ──Check::parse──► K ──Check::bind(schema)──► K::Bound
//!                                                                   │ Check::new_state ──► K::State
//!               Check::state_from_stats(&TableStats) ─(optional)──► │
//!                                Check::update(&Input)* ──────────► │   (one batch at a time)
//!                        Check::merge(state, other state) ────────► │   (parallel partitions)
//!                                                                   ▼
//!                                                    Check::finish ──► Outcome
//! ```
//!
//! The evaluator never sees a kind's state: [`Accumulator`] pairs a bound check with a state of
//! its own kind, and the evaluator holds accumulators as `Box<dyn BoundCheck>`. Two accumulators
//! merge only when they are of the same kind (anything else is an explicit error), so a state of
//! the wrong kind cannot reach a kind's code.
//!
//! Adding a kind: a new file here with a type implementing [`Check`], its `mod` line, and one
//! line in the `register_kinds!` list below; `docs/checks.md` ("Writing a check kind") walks
//! through it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use crate::config::{ConfigProblem, Fields};
use crate::keys::KeyError;
use crate::profile::RunMetrics;
use crate::report::Sample;
use crate::stats::TableStats;

mod accepted_values;
mod anomaly;
mod expression;
mod freshness;
mod length;
mod not_null;
mod range;
mod regex;
mod relationships;
mod row_count;
pub(crate) mod rows;
mod schema;
mod sql;
mod unique;

pub use unique::UniqueScope;

pub(crate) use rows::Input;

/// One kind of check: how its `[[check]]` fields are read, how it binds to a schema, and how it
/// accumulates a verdict over batches.
///
/// The lifecycle is that of an aggregate function: [`bind`](Check::bind) once per schema,
/// [`new_state`](Check::new_state) once per partition, [`update`](Check::update) once per batch,
/// [`merge`](Check::merge) to combine partitions, [`finish`](Check::finish) once at the end.
/// [`state_from_stats`](Check::state_from_stats) may replace the whole scan.
///
/// # Contract
///
/// * **Merge is the whole.** For any split of the rows into parts, folding
///   [`update`](Check::update) over each part's batches and merging the parts' states (in any
///   grouping and order) gives a state whose [`finish`](Check::finish) equals that of one state
///   fed every batch in order: same counts, same observed values, same verdict. Only *which*
///   failing rows are kept as samples may differ. In algebra terms: `merge` is associative and
///   commutative up to samples, and [`new_state`](Check::new_state) is its identity.
/// * **Batches are independent.** The result of a sequence of `update`s does not depend on how
///   the rows are cut into batches.
/// * **Statistics agree with data.** When [`state_from_stats`](Check::state_from_stats) returns
///   a state, its verdict equals the verdict of a scan of the rows the statistics describe.
///   Return `None` whenever the statistics do not decide the check exactly.
/// * **Bounded memory.** A state keeps counters, at most `sample_size` samples, and nothing that
///   grows with the rows except what the kind is about (the distinct keys of `unique`).
/// * **Errors are the check's own.** An `Err` from [`bind`](Check::bind) or
///   [`update`](Check::update) marks only this check `error` (it never passes); the other checks
///   go on.
pub(crate) trait Check: fmt::Debug + Send + Sync + Sized + 'static {
    /// The name written in `kind = "..."` and shown in reports.
    const NAME: &'static str;
    /// The kind's own fields of a `[[check]]` table (besides `name`, `severity`, `where`,
    /// `description`, and `mostly` for row-level kinds).
    const FIELDS: &'static [&'static str];
    /// Whether the kind judges rows one by one, and so accepts `mostly` and keeps samples.
    const ROW_LEVEL: bool;
    /// Whether the kind reads rows at all (`schema` is answered from the schema alone).
    const READS_DATA: bool = true;
    /// Whether the kind takes a dictionary-encoded string column as it is, looking at each
    /// distinct value once (the others have it decoded to plain strings first).
    const READS_DICTIONARIES: bool = false;

    /// The check resolved against one schema: column types, converted bounds.
    type Bound: fmt::Debug + Send + Sync + 'static;
    /// What the check accumulates over the batches of one partition.
    type State: fmt::Debug + Clone + Send + Sync + 'static;

    /// Reads the kind's fields. Fields not taken are reported as not applying to the kind.
    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem>;

    /// The columns whose values the check reads (without its `where` filter).
    fn columns(&self) -> Vec<String>;

    /// The name of a check without a `name` field.
    fn default_name(&self) -> String {
        format!("{}({})", Self::NAME, self.columns().join(", "))
    }

    /// Resolves the check against the schema of the data, or says why it cannot run on it.
    fn bind(&self, schema: &Schema) -> Result<Self::Bound, String>;

    /// The state of a partition that has seen no row.
    fn new_state(&self, bound: &Self::Bound) -> Self::State;

    /// The state of all the rows, when exact statistics of them decide the check.
    fn state_from_stats(&self, bound: &Self::Bound, stats: &TableStats) -> Option<Self::State> {
        let _ = (bound, stats);
        None
    }

    /// Adds one batch (already narrowed by the check's `where` filter, see [`Input`]).
    fn update(
        &self,
        bound: &Self::Bound,
        state: &mut Self::State,
        input: &Input<'_>,
    ) -> Result<(), String>;

    /// Adds the state of another partition of the rows. `sample_size` caps the samples kept.
    fn merge(
        &self,
        bound: &Self::Bound,
        state: &mut Self::State,
        other: Self::State,
        sample_size: usize,
    ) -> Result<(), String>;

    /// The verdict.
    fn finish(&self, bound: &Self::Bound, state: Self::State, judge: &Judge) -> Outcome;

    /// The query of a `sql` check, which the caller runs (see [`crate::CheckResult::from_query`]);
    /// `None` for every other kind.
    fn sql_query(&self) -> Option<&str> {
        None
    }

    /// How many published runs an `anomaly` check compares with; `None` for every other kind.
    fn history_depth(&self) -> Option<usize> {
        None
    }

    /// Columns of the rows already in the target that [`observe_existing`](Check::observe_existing)
    /// reads; empty for kinds that do not look at existing rows.
    fn existing_columns(&self) -> Vec<String> {
        Vec::new()
    }

    /// The other table and its column whose values the check compares with
    /// ([`observe_reference`](Check::observe_reference) is fed them); `None` for kinds that
    /// look at this table only.
    fn reference(&self) -> Option<(String, String)> {
        None
    }

    /// Adds values of the referenced column (see [`reference`](Check::reference)).
    fn observe_reference(
        &self,
        bound: &Self::Bound,
        state: &mut Self::State,
        column: &ArrayRef,
    ) -> Result<(), String> {
        let _ = (bound, state, column);
        Ok(())
    }

    /// Adds rows already in the target. Called only when
    /// [`existing_columns`](Check::existing_columns) is not empty.
    fn observe_existing(
        &self,
        bound: &Self::Bound,
        state: &mut Self::State,
        batch: &RecordBatch,
    ) -> Result<(), KeyError> {
        let _ = (bound, state, batch);
        Ok(())
    }
}

/// The type of column `name`, or a message naming the columns there are.
pub(crate) fn column_type<'a>(schema: &'a Schema, name: &str) -> Result<&'a DataType, String> {
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

/// The type of a column's values (a dictionary's value type).
pub(crate) fn value_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v,
        other => other,
    }
}

/// Why a `kind` check cannot read column `column` of type `t` unless it holds strings.
pub(crate) fn require_strings(kind: &str, column: &str, t: &DataType) -> Result<(), String> {
    if crate::keys::string_like(t) {
        Ok(())
    } else {
        Err(format!(
            "column `{column}` is {t}; a `{kind}` check needs a string column"
        ))
    }
}

/// What [`Check::finish`] needs to know besides the state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judge<'a> {
    /// The fraction of checked rows that must pass.
    pub mostly: f64,
    /// How many samples a result keeps.
    pub sample_size: usize,
    /// The time `freshness` measures age against.
    pub run_time: DateTime<Utc>,
    /// What the last published runs measured, newest first (`anomaly`).
    pub history: &'a [RunMetrics],
}

impl Judge<'_> {
    /// Whether `failing` of `checked` rows is within `mostly`.
    pub fn passes(&self, failing: u64, checked: u64) -> bool {
        checked == 0 || failing == 0 || ((checked - failing) as f64 / checked as f64) >= self.mostly
    }

    /// `failing / checked`, 0 without rows.
    pub fn fraction(failing: u64, checked: u64) -> f64 {
        if checked == 0 {
            0.0
        } else {
            failing as f64 / checked as f64
        }
    }

    /// A threshold object with `mostly` added when it is below 1.
    pub fn with_mostly(&self, mut threshold: Json) -> Json {
        if self.mostly < 1.0
            && let Json::Object(map) = &mut threshold
        {
            map.insert("mostly".into(), self.mostly.into());
        }
        threshold
    }
}

/// A check's verdict, before the evaluator adds name, kind, severity and evidence.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// Whether the check holds.
    pub passed: bool,
    /// Rows judged (or aggregated).
    pub rows_checked: u64,
    /// Rows that broke the check.
    pub rows_failing: u64,
    /// What was measured.
    pub observed: Json,
    /// What was required.
    pub threshold: Json,
    /// Failing rows kept as examples, at most `sample_size`.
    pub samples: Vec<Sample>,
    /// A sentence for people.
    pub message: String,
}

/// A parsed check of any kind, as the evaluator holds it before a schema is known.
pub(crate) trait ParsedCheck: fmt::Debug + Send + Sync {
    fn columns(&self) -> Vec<String>;
    fn default_name(&self) -> String;
    fn reads_data(&self) -> bool;
    fn existing_columns(&self) -> Vec<String>;
    fn reference(&self) -> Option<(String, String)>;
    fn sql_query(&self) -> Option<&str>;
    fn history_depth(&self) -> Option<usize>;
    fn bind(self: Arc<Self>, schema: &Schema) -> Result<Box<dyn BoundCheck>, String>;
}

impl<K: Check> ParsedCheck for K {
    fn columns(&self) -> Vec<String> {
        Check::columns(self)
    }
    fn default_name(&self) -> String {
        Check::default_name(self)
    }
    fn reads_data(&self) -> bool {
        K::READS_DATA
    }
    fn existing_columns(&self) -> Vec<String> {
        Check::existing_columns(self)
    }
    fn reference(&self) -> Option<(String, String)> {
        Check::reference(self)
    }
    fn sql_query(&self) -> Option<&str> {
        Check::sql_query(self)
    }
    fn history_depth(&self) -> Option<usize> {
        Check::history_depth(self)
    }
    fn bind(self: Arc<Self>, schema: &Schema) -> Result<Box<dyn BoundCheck>, String> {
        let bound = Arc::new(Check::bind(self.as_ref(), schema)?);
        let state = self.new_state(&bound);
        Ok(Box::new(Accumulator {
            check: self,
            bound,
            state,
        }))
    }
}

/// A bound check with its state, of any kind.
pub(crate) trait BoundCheck: fmt::Debug + Send + Sync {
    /// A copy, state included.
    fn clone_box(&self) -> Box<dyn BoundCheck>;
    /// The same bound check with a fresh state.
    fn fork(&self) -> Box<dyn BoundCheck>;
    /// Replaces the state with one from statistics, if they decide the check.
    fn apply_stats(&mut self, stats: &TableStats) -> bool;
    fn update(&mut self, input: &Input<'_>) -> Result<(), String>;
    fn observe_existing(&mut self, batch: &RecordBatch) -> Result<(), KeyError>;
    fn observe_reference(&mut self, column: &ArrayRef) -> Result<(), String>;
    /// Adds the state of `other`, which must be an accumulator of the same kind.
    fn merge(&mut self, other: Box<dyn BoundCheck>, sample_size: usize) -> Result<(), String>;
    fn finish(self: Box<Self>, judge: &Judge) -> Outcome;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A bound check of kind `K` and a state of the same kind.
pub(crate) struct Accumulator<K: Check> {
    check: Arc<K>,
    bound: Arc<K::Bound>,
    state: K::State,
}

impl<K: Check> fmt::Debug for Accumulator<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accumulator")
            .field("check", &self.check)
            .field("bound", &self.bound)
            .field("state", &self.state)
            .finish()
    }
}

impl<K: Check> BoundCheck for Accumulator<K> {
    fn clone_box(&self) -> Box<dyn BoundCheck> {
        Box::new(Accumulator::<K> {
            check: self.check.clone(),
            bound: self.bound.clone(),
            state: self.state.clone(),
        })
    }

    fn fork(&self) -> Box<dyn BoundCheck> {
        Box::new(Accumulator::<K> {
            check: self.check.clone(),
            bound: self.bound.clone(),
            state: self.check.new_state(&self.bound),
        })
    }

    fn apply_stats(&mut self, stats: &TableStats) -> bool {
        match self.check.state_from_stats(&self.bound, stats) {
            Some(state) => {
                self.state = state;
                true
            }
            None => false,
        }
    }

    fn update(&mut self, input: &Input<'_>) -> Result<(), String> {
        self.check.update(&self.bound, &mut self.state, input)
    }

    fn observe_existing(&mut self, batch: &RecordBatch) -> Result<(), KeyError> {
        self.check
            .observe_existing(&self.bound, &mut self.state, batch)
    }

    fn observe_reference(&mut self, column: &ArrayRef) -> Result<(), String> {
        self.check
            .observe_reference(&self.bound, &mut self.state, column)
    }

    fn merge(&mut self, other: Box<dyn BoundCheck>, sample_size: usize) -> Result<(), String> {
        let other = other.into_any().downcast::<Accumulator<K>>().map_err(|_| {
            format!(
                "cannot merge the state of another kind into a `{}` check",
                K::NAME
            )
        })?;
        self.check
            .merge(&self.bound, &mut self.state, other.state, sample_size)
    }

    fn finish(self: Box<Self>, judge: &Judge) -> Outcome {
        let Accumulator {
            check,
            bound,
            state,
        } = *self;
        check.finish(&bound, state, judge)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Declares the kinds: one line per kind, `Variant => module::Type, "what it checks"`. This
/// generates [`CheckKind`] and the dispatch from a kind's name to its [`Check`] implementation.
macro_rules! register_kinds {
    ($($variant:ident => $module:ident::$check:ident, $doc:literal;)*) => {
        /// The kind of a check, as written in `kind = "..."`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CheckKind {
            $(#[doc = $doc] $variant,)*
        }

        impl CheckKind {
            /// Every kind, in the order of the docs.
            pub(crate) const ALL: &'static [CheckKind] = &[$(CheckKind::$variant),*];
            const NAMES: &'static [&'static str] = &[$(<$module::$check as Check>::NAME),*];

            /// The name used in check files and reports.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CheckKind::$variant => <$module::$check as Check>::NAME,)*
                }
            }

            /// Whether the check judges rows one by one (and so accepts `mostly` and yields
            /// samples).
            pub fn is_row_level(self) -> bool {
                match self {
                    $(CheckKind::$variant => <$module::$check as Check>::ROW_LEVEL,)*
                }
            }

            /// See [`Check::READS_DICTIONARIES`].
            pub(crate) fn reads_dictionaries(self) -> bool {
                match self {
                    $(CheckKind::$variant => <$module::$check as Check>::READS_DICTIONARIES,)*
                }
            }

            /// The kind's own fields of a `[[check]]` table.
            pub(crate) fn fields(self) -> &'static [&'static str] {
                match self {
                    $(CheckKind::$variant => <$module::$check as Check>::FIELDS,)*
                }
            }

            /// Reads a check of this kind from its fields.
            pub(crate) fn parse(self, fields: &mut Fields) -> Result<Arc<dyn ParsedCheck>, ConfigProblem> {
                Ok(match self {
                    $(CheckKind::$variant => Arc::new(<$module::$check as Check>::parse(fields)?),)*
                })
            }
        }
    };
}

register_kinds! {
    NotNull => not_null::NotNull, "Columns hold no nulls.";
    Unique => unique::Unique, "A column or a combination of columns holds no duplicate.";
    AcceptedValues => accepted_values::AcceptedValues, "A column only holds values from a set.";
    Range => range::Range, "A column's values lie between bounds.";
    Regex => regex::Regex, "A string column's values match a regular expression.";
    Length => length::Length, "A string column's values have a length between bounds.";
    RowCount => row_count::RowCount, "The number of new rows lies between bounds.";
    Freshness => freshness::Freshness, "The newest timestamp is no older than a duration before the run time.";
    Schema => schema::Schema, "Required columns exist with the given types.";
    Expression => expression::Expression, "A boolean predicate holds for every row.";
    Relationships => relationships::Relationships, "Every value of a column exists in a column of another table.";
    Sql => sql::Sql, "A query returns no rows (it selects the rows that break the rule).";
    Anomaly => anomaly::Anomaly, "A metric of the new rows is in line with the last published runs'.";
}

impl CheckKind {
    /// The kind named `name` in a check file.
    pub(crate) fn from_name(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CheckKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CheckKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        CheckKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, CheckKind::NAMES))
    }
}

//! Data-quality checks that run in one streaming pass over Arrow record batches.
//!
//! A [`CheckSuite`] is read from a TOML file of `[[check]]` tables (the format is described in
//! `docs/checks.md`). [`CheckSuite::evaluator`] binds it to a schema; the [`Evaluator`] then
//! consumes record batches one at a time, keeps a small mergeable state per check, and
//! [`Evaluator::finish`] turns the states into an [`AuditReport`].
//!
//! ```text
//!   checks.toml ──► CheckSuite ──evaluator(schema, options)──► Evaluator
//!                                                                │ apply_stats(&TableStats)   (optional, first)
//!                                                                │ required_columns()         (what to read)
//!                                                                │ observe_existing(&batch)*  (unique, scope = "table")
//!                                                                │ update(&batch)*            (the new rows)
//!                                                                │ fork() ... merge(other)    (parallel partitions)
//!                                                                ▼
//!                                                   finish() ──► AuditReport ──► publishable(), render_table(), JSON
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
//! use arrow_schema::{DataType, Field, Schema};
//! use sluice_checks::{CheckSuite, EvalOptions, Status};
//!
//! let suite = CheckSuite::from_toml_str(r#"
//!     [[check]]
//!     kind = "not_null"
//!     columns = ["user_id"]
//!
//!     [[check]]
//!     kind = "unique"
//!     columns = ["event_id"]
//!
//!     [[check]]
//!     kind = "range"
//!     column = "amount"
//!     min = 0
//!     where = "event_type = 'purchase'"
//!
//!     [[check]]
//!     name = "purchases are rare"
//!     kind = "expression"
//!     expr = "event_type <> 'purchase'"
//!     severity = "warn"
//! "#)?;
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("event_id", DataType::Int64, false),
//!     Field::new("user_id", DataType::Int64, true),
//!     Field::new("event_type", DataType::Utf8, false),
//!     Field::new("amount", DataType::Float64, true),
//! ]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(Int64Array::from(vec![1, 2, 3])),
//!     Arc::new(Int64Array::from(vec![Some(7), Some(8), Some(9)])),
//!     Arc::new(StringArray::from(vec!["view", "purchase", "click"])),
//!     Arc::new(Float64Array::from(vec![None, Some(12.5), Some(-1.0)])),
//! ])?;
//!
//! let options = EvalOptions::default().with_key_columns(["event_id"]);
//! let mut evaluator = suite.evaluator(&schema, options);
//! assert_eq!(evaluator.required_columns(), ["event_id", "user_id", "event_type", "amount"]);
//! evaluator.update(&batch)?;
//! let report = evaluator.finish();
//!
//! // The -1.0 amount is on a click, outside the `where` filter: the range check passes.
//! assert_eq!(report.check("range(amount)").unwrap().status, Status::Pass);
//! assert_eq!(report.check("purchases are rare").unwrap().status, Status::Warn);
//! assert!(report.publishable()); // warnings do not block publishing
//! println!("{}", report.render_table());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Memory
//!
//! Every check keeps counters and at most `sample_size` sample rows. `unique` also keeps the set of
//! distinct keys it has seen (plus, with `scope = "table"`, the keys of the existing rows), so its
//! memory is proportional to the number of distinct keys: about 16 bytes per integer key, and
//! the key's bytes plus about 24 bytes per string or multi-column key. Integer keys that arrive
//! in runs of consecutive values (sequential ids) are stored as ranges, a few bytes per run.
//!
//! # Parallelism
//!
//! [`Evaluator::fork`] gives an empty evaluator with the same checks; feed each one a partition
//! of the batches on its own thread and [`Evaluator::merge`] them. Counts, observed values and
//! verdicts equal those of a single pass; only the choice of sample rows may differ.
//!
//! # Statistics
//!
//! [`Evaluator::apply_stats`] answers `row_count`, `not_null`, passing `range` checks and
//! `freshness` from exact statistics (parquet footers, Iceberg manifests); afterwards
//! [`Evaluator::required_columns`] lists only what the remaining checks read.
#![warn(missing_docs)]

mod config;
mod error;
mod evaluator;
mod expr;
mod keys;
mod kinds;
mod profile;
mod report;
mod sample;
mod stats;
mod time;

pub use config::{CheckDef, CheckSuite, Severity, type_name};
pub use error::{Error, Result};
pub use evaluator::{DataRequirement, EvalOptions, Evaluator};
pub use expr::Literal;
pub use kinds::{CheckKind, UniqueScope};
pub use profile::{ColumnMetrics, Metric, RunMetrics};
pub use report::{AuditReport, CheckResult, Evidence, QueryAnswer, Sample, Status};
pub use sample::samples_of;
pub use stats::{ColumnStats, StatValue, TableStats};

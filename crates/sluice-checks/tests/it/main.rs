//! Integration tests of sluice-checks.
#![allow(clippy::cloned_ref_to_slice_refs)] // tests pass `&[b.clone()]` for readability

mod config;
mod kinds;
mod merge;
mod quarantine;
mod stats;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use chrono::{DateTime, TimeZone, Utc};
use sluice_checks::{AuditReport, CheckResult, CheckSuite, EvalOptions};

/// A batch from named columns; every column is nullable.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

pub fn run_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 22, 12, 0, 0).unwrap()
}

/// Runs a suite over batches (the schema is the first batch's).
pub fn audit(toml: &str, batches: &[RecordBatch]) -> AuditReport {
    let suite = CheckSuite::from_toml_str(toml).unwrap();
    let schema = batches[0].schema();
    let mut ev = suite.evaluator(&schema, EvalOptions::at(run_time()));
    for b in batches {
        ev.update(b).unwrap();
    }
    ev.finish()
}

/// The first check's result.
pub fn first(toml: &str, batches: &[RecordBatch]) -> CheckResult {
    audit(toml, batches).checks.remove(0)
}

//! The audit: the checks see every new row while it is written (an observer of the ingest),
//! the rows already in `main` for table-scoped checks, and, after a rebase, the new rows again
//! against the new `main`.

use futures::TryStreamExt;
use sluice_checks::{
    AuditReport, CheckSuite, ColumnStats, EvalOptions, Evaluator, RunMetrics, StatValue, Status,
    TableStats,
};
use std::collections::HashMap;

use sluice_lake::iceberg_types::{DataFile, Datum, PrimitiveLiteral};
use sluice_lake::{
    ColumnRange, Lake, LoadedTable, RefName, RefSpec, ScanOptions, TableName,
    ingest::{IngestObserver, column_ranges},
    parquet::read_footers,
    partition,
};

use crate::error::{Error, Result};
use crate::options::RunOptions;
use crate::pipeline::Pipeline;
use crate::report::ExistingRead;

/// Rows per batch when the audit reads a table.
const BATCH_ROWS: usize = 64 * 1024;

/// The checks of a run, as an observer of its ingest.
pub(crate) struct Audit(pub(crate) Evaluator);

impl IngestObserver for Audit {
    type Error = Error;

    fn columns(&self) -> Option<Vec<String>> {
        self.0.needs_data().then(|| self.0.required_columns())
    }

    fn dictionary_columns(&self) -> Vec<String> {
        self.0.dictionary_columns()
    }

    fn registered(&mut self, table: &LoadedTable, files: &[DataFile]) -> Result<()> {
        let answered = self.0.apply_stats(&stats_of(table, files))?;
        tracing::debug!(?answered, "checks answered from footer statistics");
        Ok(())
    }

    fn observe(&mut self, batch: &arrow_array::RecordBatch) -> Result<()> {
        Ok(self.0.update(batch)?)
    }

    fn fork(&self) -> Self {
        Audit(self.0.fork())
    }

    fn merge(&mut self, other: Self) -> Result<()> {
        Ok(self.0.merge(other.0)?)
    }

    fn sets_rows_aside(&self) -> bool {
        self.0.quarantines()
    }

    fn observe_split(
        &mut self,
        batch: &arrow_array::RecordBatch,
    ) -> Result<Option<sluice_lake::ingest::SetAside>> {
        Ok(self
            .0
            .update_split(batch)?
            .map(|split| sluice_lake::ingest::SetAside {
                keep: split.keep,
                reasons: split.failed.into_iter().map(|(_, checks)| checks).collect(),
                kept: split.kept,
            }))
    }
}

/// A fresh evaluator of the run's checks over `schema`. Samples of failing rows show the key
/// columns and the partition source columns of `table`, so that their partitions can be named.
pub(crate) fn evaluator(
    options: &RunOptions,
    suite: &CheckSuite,
    schema: &arrow_schema::SchemaRef,
    table: &LoadedTable,
) -> Evaluator {
    let mut keys = options.key_columns.clone();
    for column in partition::partition_source_columns(table) {
        if !keys.contains(&column) {
            keys.push(column);
        }
    }
    suite.evaluator(
        schema,
        EvalOptions::default()
            .with_sample_size(options.sample_size)
            .with_key_columns(keys)
            .with_quarantine(options.mode == crate::options::Mode::Copy && suite.quarantines()),
    )
}

/// Gives the `anomaly` checks of `ev` (if any) what the last publishes of `table` recorded,
/// walking back from snapshot `main` (the table's metadata only; no data file is read).
pub(crate) fn give_history(ev: &mut Evaluator, table: &LoadedTable, main: Option<i64>) {
    if !ev.wants_history() {
        return;
    }
    let history: Vec<RunMetrics> = sluice_lake::summary::along_ancestry(
        table,
        main,
        sluice_lake::summary::METRICS_PROPERTY,
        ev.history_depth(),
    )
    .into_iter()
    .filter_map(|r| RunMetrics::from_summary(&r.value))
    .collect();
    ev.set_history(history);
}

/// Names, for each check with failing samples, the partitions those rows fall in.
pub(crate) fn label_partitions(table: &LoadedTable, report: &mut AuditReport) {
    for check in &mut report.checks {
        let mut partitions: Vec<String> = check
            .samples
            .iter()
            .filter_map(|s| partition::partition_of_sample(table, s))
            .collect();
        partitions.sort();
        partitions.dedup();
        check.partitions = partitions;
    }
}

/// Shows table-scoped checks the rows already at `spec` (e.g. the keys a `unique` check must
/// not see again). Only rows that can matter are read: `new_ranges` holds the range of each
/// key column over the new rows (from their footers), and files of `spec` whose bounds (or
/// partition values) fall outside are skipped. Returns what was read, `None` when no check
/// needs existing rows.
pub(crate) async fn observe_existing(
    lake: &Lake,
    name: &TableName,
    spec: &RefSpec,
    ev: &mut Evaluator,
    new_ranges: &HashMap<String, (Datum, Datum)>,
) -> Result<Option<ExistingRead>> {
    let columns = ev.existing_columns();
    if columns.is_empty() {
        return Ok(None);
    }
    let mut alternatives = Vec::new();
    for keys in ev.existing_key_sets() {
        let ranges: Vec<ColumnRange> = keys
            .iter()
            .filter_map(|c| {
                new_ranges.get(c).map(|(min, max)| ColumnRange {
                    column: c.clone(),
                    min: min.clone(),
                    max: max.clone(),
                })
            })
            .collect();
        if ranges.is_empty() {
            // A check without a known range needs every row.
            alternatives.clear();
            break;
        }
        alternatives.push(ranges);
    }
    let mut scan = lake
        .scan_ranges(
            name,
            spec,
            &ScanOptions {
                columns: Some(columns),
                batch_size: Some(BATCH_ROWS),
            },
            &alternatives,
        )
        .await?;
    while let Some(batch) = scan.stream.try_next().await? {
        ev.observe_existing(&batch)?;
    }
    Ok(Some(ExistingRead {
        files_read: scan.files_read,
        files_in_main: scan.files_total,
    }))
}

/// Feeds the `relationships` checks the values they compare with: each referenced table as
/// it is at `at` (the run's branch, or the ref an ad-hoc audit reads) when it has that ref, so
/// that a job's tables see each other's new rows, else as it is in `main`.
pub(crate) async fn observe_references(
    lake: &sluice_lake::Lake,
    ev: &mut Evaluator,
    at: &RefSpec,
) -> Result<()> {
    for (table, column) in ev.references() {
        let name: TableName = table.parse()?;
        let loaded = lake.load_table(&name).await?;
        let spec = match at {
            RefSpec::Named(n) if loaded.metadata().snapshot_for_ref(n).is_some() => at.clone(),
            _ => RefSpec::main(),
        };
        let (_, mut stream) = lake
            .scan(
                &name,
                &spec,
                &ScanOptions {
                    columns: Some(vec![column.clone()]),
                    batch_size: Some(BATCH_ROWS),
                },
            )
            .await?;
        while let Some(batch) = stream.try_next().await? {
            if let Some(values) = batch.column_by_name(&column) {
                ev.observe_reference(&table, &column, values);
            }
        }
    }
    Ok(())
}

impl Pipeline {
    /// Runs the checks against a ref of a table (an ad-hoc audit; nothing changes).
    pub async fn audit_ref(
        &self,
        table: &TableName,
        spec: &RefSpec,
        suite: &CheckSuite,
        options: EvalOptions,
    ) -> Result<AuditReport> {
        let lake = self.lake();
        let resolved = lake.resolve(table, spec).await?;
        let mut evaluator = suite.evaluator(&resolved.schema, options);
        observe_references(lake, &mut evaluator, spec).await?;
        let columns = evaluator.required_columns();
        if evaluator.needs_data() {
            let (_, mut stream) = lake
                .scan(
                    table,
                    spec,
                    &ScanOptions {
                        columns: Some(columns),
                        batch_size: Some(BATCH_ROWS),
                    },
                )
                .await?;
            while let Some(batch) = stream.try_next().await? {
                evaluator.update(&batch)?;
            }
        }
        let sample_size = evaluator.options().sample_size;
        let mut report = evaluator.finish();
        // A branch other than main: the other tables a query names are read at that branch
        // where they have it, as a run on that branch would see them.
        let default_ref = match spec {
            RefSpec::Named(name) if name != sluice_lake::MAIN => {
                sluice_sql::DefaultRef::BranchOrMain(name.clone())
            }
            _ => sluice_sql::DefaultRef::Main,
        };
        crate::sql_checks::run(
            lake,
            suite,
            &crate::sql_checks::Audited {
                table,
                snapshot_id: resolved.snapshot_id,
                default_ref,
                sample_size,
            },
            &mut report,
        )
        .await?;
        Ok(report)
    }

    /// The run's verdict on its branch: the one-pass checks' report from the write step, with
    /// the `sql` checks run over the branch's snapshot.
    pub(crate) async fn audit_branch(
        &self,
        options: &RunOptions,
        branch: &RefName,
        snapshot_id: i64,
        one_pass: Option<&AuditReport>,
    ) -> Result<Option<AuditReport>> {
        let (Some(suite), Some(report)) = (&options.checks, one_pass) else {
            return Ok(one_pass.cloned());
        };
        let mut report = report.clone();
        crate::sql_checks::run(
            self.lake(),
            suite,
            &crate::sql_checks::Audited {
                table: &options.table,
                snapshot_id: Some(snapshot_id),
                default_ref: sluice_sql::DefaultRef::BranchOrMain(branch.to_string()),
                sample_size: options.sample_size,
            },
            &mut report,
        )
        .await?;
        Ok(Some(report))
    }

    /// The checks again, over the rows the run appended (read from its source files: in
    /// register mode they are the appended files, in copy mode their rows are the same), with
    /// the new `main` as the existing rows.
    pub(crate) async fn reaudit(
        &self,
        options: &RunOptions,
        suite: &CheckSuite,
        branch: &RefName,
        sources: &[String],
        new_main: Option<i64>,
    ) -> Result<AuditReport> {
        let lake = self.lake();
        let name = &options.table;
        let resolved = lake
            .resolve(name, &RefSpec::parse(branch.as_str())?)
            .await?;
        let table = lake.load_table(name).await?;
        let mut ev = evaluator(options, suite, &resolved.schema, &table);
        observe_references(lake, &mut ev, &RefSpec::from(branch)).await?;
        give_history(&mut ev, &table, new_main);
        let footers = read_footers(lake.stores(), sources).await?;
        if let Some(main) = new_main {
            let ranges = column_ranges(&table, &footers, &ev.existing_columns());
            observe_existing(lake, name, &RefSpec::Snapshot(main), &mut ev, &ranges).await?;
        }
        let columns = ev.required_columns();
        let Audit(ev) = lake
            .observe_files(&table, &footers, &columns, Audit(ev), 1)
            .await?;
        let mut report = ev.finish();
        label_partitions(&table, &mut report);
        Ok(report)
    }
}

/// Exact statistics of the registered files, for the checks' statistics shortcut.
fn stats_of(table: &LoadedTable, files: &[DataFile]) -> TableStats {
    let schema = table.metadata().current_schema();
    let mut total: Option<TableStats> = None;
    for file in files {
        let mut stats = TableStats::new(file.record_count());
        for field in schema.as_struct().fields() {
            let column = ColumnStats {
                null_count: file.null_value_counts().get(&field.id).copied(),
                nan_count: file.nan_value_counts().get(&field.id).copied(),
                min: file
                    .lower_bounds()
                    .get(&field.id)
                    .and_then(|d| stat_value(d.literal())),
                max: file
                    .upper_bounds()
                    .get(&field.id)
                    .and_then(|d| stat_value(d.literal())),
            };
            stats = stats.with_column(field.name.clone(), column);
        }
        total = Some(match total {
            Some(t) => t.merge(stats),
            None => stats,
        });
    }
    total.unwrap_or_default()
}

fn stat_value(literal: &PrimitiveLiteral) -> Option<StatValue> {
    match literal {
        PrimitiveLiteral::Boolean(b) => Some(StatValue::Bool(*b)),
        PrimitiveLiteral::Int(v) => Some(StatValue::Int(i64::from(*v))),
        PrimitiveLiteral::Long(v) => Some(StatValue::Int(*v)),
        PrimitiveLiteral::Float(v) => Some(StatValue::Float(f64::from(v.0))),
        PrimitiveLiteral::Double(v) => Some(StatValue::Float(v.0)),
        PrimitiveLiteral::String(s) => Some(StatValue::Str(s.clone())),
        _ => None,
    }
}

/// A short line for the snapshot summary: `passed: 5 checks` or `failed: unique(event_id)`.
pub fn audit_summary(report: &AuditReport) -> String {
    let warned = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .count();
    if report.publishable() {
        let mut s = format!("passed: {} checks", report.checks.len());
        if warned > 0 {
            s.push_str(&format!(" ({warned} warning(s))"));
        }
        s
    } else {
        format!("failed: {}", failing_checks(report))
    }
}

/// The summary line of a branch's write commit: the one-pass checks' verdict, and how many
/// `sql` checks run over the branch next (a published commit passed them too).
pub(crate) fn write_summary(report: &AuditReport, suite: Option<&CheckSuite>) -> String {
    let sql: Vec<&str> = suite
        .map(|s| s.sql_checks().map(|c| c.name()).collect())
        .unwrap_or_default();
    if sql.is_empty() {
        return audit_summary(report);
    }
    let one_pass = AuditReport {
        run_time: report.run_time,
        checks: report
            .checks
            .iter()
            .filter(|c| !sql.contains(&c.name.as_str()))
            .cloned()
            .collect(),
    };
    format!(
        "{}; then {} sql check(s) on the branch",
        audit_summary(&one_pass),
        sql.len()
    )
}

/// The names of the checks that block publishing.
pub(crate) fn failing_checks(report: &AuditReport) -> String {
    report
        .checks
        .iter()
        .filter(|c| {
            c.severity == sluice_checks::Severity::Error
                && matches!(c.status, Status::Fail | Status::Error)
        })
        .map(|c| c.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    const CHECKS: &str = r#"
[[check]]
kind = "not_null"
columns = ["id"]

[[check]]
kind = "unique"
columns = ["id"]
"#;

    fn schema() -> arrow_schema::SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
    }

    fn batch(ids: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
    }

    fn audit() -> Audit {
        let suite = CheckSuite::from_toml_str(CHECKS).unwrap();
        Audit(suite.evaluator(&schema(), EvalOptions::default()))
    }

    #[test]
    fn forks_observe_parts_and_merge_into_the_verdict_of_the_whole() {
        let mut whole = audit();
        let (mut left, mut right) = (whole.fork(), whole.fork());
        left.observe(&batch(vec![Some(1), Some(2)])).unwrap();
        right.observe(&batch(vec![Some(3), Some(2)])).unwrap();
        whole.merge(left).unwrap();
        whole.merge(right).unwrap();
        let report = whole.0.finish();
        assert!(!report.publishable(), "2 is there twice");
        assert_eq!(failing_checks(&report), "unique(id)");
        assert_eq!(audit_summary(&report), "failed: unique(id)");
    }

    #[test]
    fn a_clean_batch_passes_and_the_summary_counts_the_checks() {
        let mut one = audit();
        assert!(one.columns().is_some(), "row checks need the data");
        one.observe(&batch(vec![Some(1), Some(2)])).unwrap();
        let report = one.0.finish();
        assert!(report.publishable());
        assert_eq!(failing_checks(&report), "");
        assert_eq!(audit_summary(&report), "passed: 2 checks");
    }
}

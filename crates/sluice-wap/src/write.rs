//! The write step: the new files land on the run's audit branch, audited on the way.
//!
//! Footers first (a bad file fails before anything is written), then the table is created or
//! its schema evolved, the files are ingested (copy or register) with the audit observing every
//! row, and one commit creates the branch with the new snapshot, whose summary carries the
//! run's identity and the audit verdict.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sluice_checks::{AuditReport, Evaluator, RunMetrics};
use sluice_lake::summary::{
    AUDIT_PROPERTY, AUTHOR_PROPERTY, MESSAGE_PROPERTY, METRICS_PROPERTY, MODE_PROPERTY,
    RUN_ID_PROPERTY, RUN_KEY_PROPERTY, SOURCE_FILE_COUNT_PROPERTY, SOURCE_FILES_PROPERTY,
};
use sluice_lake::{
    AppendRequest, LedgerEntry, LoadedTable, RefName, RefSpec, TableName, WriteOptions,
    ingest::{
        IngestMode, IngestOptions, QuarantineTarget, check_registrable, column_ranges,
        unsupported_table_reason,
    },
    parquet::{ParquetFooter, read_footers},
    partition::{self, PartitionRows},
    schema::{arrow_schema_for, diff_schemas, unsupported_columns},
};

use crate::audit::{Audit, evaluator, label_partitions, observe_existing, write_summary};
use crate::error::{Error, Result};
use crate::interrupt::pause_point;
use crate::options::{Mode, RunOptions, SchemaChange};
use crate::pipeline::{Pipeline, RunState, lock};
use crate::report::ExistingRead;
use crate::source::SourceFile;

/// What the write step produced (journalled as the step's output).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Written {
    pub(crate) snapshot_id: i64,
    pub(crate) base: Option<i64>,
    pub(crate) rows: u64,
    pub(crate) data_files: usize,
    /// Copy mode: source files whose column chunks were copied as they are.
    #[serde(default)]
    pub(crate) copied_as_is: usize,
    /// Partitioned tables: rows and files per partition written.
    #[serde(default)]
    pub(crate) partitions: Vec<PartitionRows>,
    /// What the table-scoped checks read of `main`.
    #[serde(default)]
    pub(crate) main_files_read: Option<ExistingRead>,
    pub(crate) properties: HashMap<String, String>,
    /// The source files, for the ingest ledger and a re-audit after a rebase.
    #[serde(default)]
    pub(crate) sources: Vec<String>,
    pub(crate) audit: Option<AuditReport>,
    /// The rows the checks set aside, on the same branch of the quarantine table.
    #[serde(default)]
    pub(crate) quarantine: Option<QuarantineWritten>,
}

/// What the write step set aside (`on_fail = "quarantine"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct QuarantineWritten {
    /// The quarantine table.
    pub(crate) table: TableName,
    /// Rows set aside.
    pub(crate) rows: u64,
}

impl Written {
    /// What the publish adds to the table's ingest ledger.
    pub(crate) fn ledger_entry(&self) -> LedgerEntry {
        let files = if self.sources.is_empty() {
            // Written by an earlier version, which kept the list in the summary properties.
            self.properties
                .get(SOURCE_FILES_PROPERTY)
                .map(|s| {
                    s.lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            self.sources.clone()
        };
        LedgerEntry {
            run_key: self
                .properties
                .get(RUN_KEY_PROPERTY)
                .cloned()
                .unwrap_or_default(),
            files,
        }
    }
}

/// Where the write step commits.
pub(crate) struct WriteTarget<'a> {
    /// The branch.
    pub(crate) branch: &'a RefName,
    /// Append to the branch as it is (it exists), instead of creating it from `main`.
    pub(crate) append: bool,
    /// Added to the new snapshot's summary.
    pub(crate) properties: HashMap<String, String>,
}

impl Pipeline {
    /// Writes `files` to a new branch `branch` of the table (created from the first file's
    /// schema when missing), audited on the way.
    pub(crate) async fn write(
        &self,
        options: &RunOptions,
        files: &[SourceFile],
        branch: &RefName,
        run_id: &str,
        key: &str,
        state: &Mutex<RunState>,
    ) -> Result<Written> {
        let target = WriteTarget {
            branch,
            append: false,
            properties: HashMap::new(),
        };
        self.write_to(options, files, &target, run_id, key, state)
            .await
    }

    /// [`Pipeline::write`] onto `target`: a new branch cut from `main`, or (`append`) the head
    /// of an existing branch, with `target.properties` added to the snapshot's summary.
    pub(crate) async fn write_to(
        &self,
        options: &RunOptions,
        files: &[SourceFile],
        target: &WriteTarget<'_>,
        run_id: &str,
        key: &str,
        state: &Mutex<RunState>,
    ) -> Result<Written> {
        let branch = target.branch;
        let lake = self.lake();
        let name = &options.table;
        let locations: Vec<String> = files.iter().map(|f| f.location.clone()).collect();
        let existing = match lake.load_table(name).await {
            Ok(t) => Some(t),
            Err(sluice_lake::Error::TableNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        lock(state).table_existed = Some(existing.is_some());
        // Every footer first: a corrupt file fails the run before anything is written.
        let footers = read_footers(lake.stores(), &locations).await?;
        // A column Iceberg cannot store fails the run naming the file and every such column,
        // before a table is created or changed.
        for footer in &footers {
            let problems = unsupported_columns(&footer.schema);
            if !problems.is_empty() {
                return Err(sluice_lake::Error::UnsupportedColumns {
                    path: footer.location.clone(),
                    problems: problems.join("; "),
                }
                .into());
            }
        }
        // Values that only directory names hold (Hive-style partitioned output) are not
        // imported: say so, naming them.
        let located = footers.iter().map(|f| (f.location.as_str(), &f.schema));
        for (column, example) in crate::source::directory_only_columns(&options.source, located) {
            tracing::warn!(
                table = %name,
                "`{column}` appears only in the source's directory names (e.g. `{example}/`, as \
                 Spark and Hive write partitioned output), not in its files: the table gets the \
                 columns inside the files, so `{column}` is not imported; write it into the \
                 files if the table needs it"
            );
        }
        let mut table = match existing {
            Some(t) => t,
            None => {
                // A new table takes the first file's schema: every other file must fit it
                // before the table is created, so that a mismatch leaves no table behind.
                let first = arrow_schema_for(&sluice_lake::schema::iceberg_schema_from_arrow(
                    &footers[0].schema,
                )?)?;
                check_files_fit(options, &first, &footers)?;
                if options.mode == Mode::Register {
                    for footer in &footers {
                        check_registrable(name, &first, footer)?;
                    }
                }
                match lake
                    .create_partitioned_table(
                        name,
                        &footers[0].schema,
                        options.partition_by.as_deref().unwrap_or(""),
                    )
                    .await
                {
                    Ok(t) => {
                        lock(state).table_created = true;
                        t
                    }
                    Err(sluice_lake::Error::TableAlreadyExists { .. }) => {
                        lake.load_table(name).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let Some(reason) = unsupported_table_reason(&table) {
            return Err(sluice_lake::Error::CannotPublish {
                table: name.to_string(),
                source_ref: branch.to_string(),
                target: RefName::main().to_string(),
                reason: reason.to_string(),
            }
            .into());
        }
        if let Some(partition_by) = &options.partition_by {
            ensure_spec(&table, partition_by)?;
        }
        table = self.reconcile_schema(options, table, &footers).await?;
        if options.mode == Mode::Register {
            // Registered files carry no field ids: readers resolve their columns by name.
            lake.ensure_name_mapping(name).await?;
        }
        let table_schema = arrow_schema_for(table.metadata().current_schema())?;
        // The branch is cut from the main the table-scoped checks are run against; if main
        // moves later, publishing rebases and runs them again.
        let base = lake.resolve(name, &RefSpec::main()).await?.snapshot_id;
        let mut audit = options
            .checks
            .as_ref()
            .map(|suite| evaluator(options, suite, &table_schema, &table));
        if let Some(ev) = audit.as_mut() {
            crate::audit::observe_references(lake, ev, &RefSpec::from(branch)).await?;
            crate::audit::give_history(ev, &table, base);
        }
        // on_fail = "quarantine": the quarantine table (created, or given the table's new
        // columns), where the rows the checks reject are written instead.
        let quarantine = match options
            .checks
            .as_ref()
            .filter(|s| s.quarantines() && options.mode == Mode::Copy)
        {
            Some(suite) => {
                let qname: TableName = suite.quarantine_table(&name.to_string()).parse()?;
                let qtable = quarantine_table(lake, &qname, &table_schema).await?;
                Some((qname, qtable))
            }
            None => None,
        };
        let one_pass = options
            .checks
            .as_ref()
            .is_some_and(|s| quarantine.is_some() && s.quarantine_needs_one_pass());
        let mut main_files_read = None;
        if let (Some(ev), Some(base)) = (audit.as_mut(), base) {
            let ranges = column_ranges(&table, &footers, &ev.existing_columns());
            main_files_read =
                observe_existing(lake, name, &RefSpec::Snapshot(base), ev, &ranges).await?;
        }

        let ingest = IngestOptions {
            mode: match options.mode {
                Mode::Copy => IngestMode::Copy,
                Mode::Register => IngestMode::Register,
            },
            // Every data file goes under the run's own directory, so that a rollback (or
            // `recover` after a crash) can delete what the run wrote.
            write: WriteOptions {
                run_id: Some(run_id.to_string()),
                ..options.write.clone()
            },
            rewrite: options.rewrite,
            // A repeated key is only set aside when one pass sees both copies.
            parallelism: if one_pass { 1 } else { options.parallelism },
            progress: options.progress.clone(),
            // Ctrl-C: the workers finish the file in hand and stop; what they wrote is deleted.
            stop: Some(options.cancel.flag()),
            quarantine: quarantine.as_ref().map(|(_, t)| QuarantineTarget {
                table: t.clone(),
                run_id: run_id.to_string(),
            }),
        };
        let mut ingested = lake
            .ingest(&table, footers, &ingest, audit.map(Audit))
            .await?;
        let mut metrics = RunMetrics::default();
        let audit = ingested.observer.map(|Audit(ev)| {
            metrics = ev.metrics();
            let mut report = Evaluator::finish(ev);
            label_partitions(&table, &mut report);
            report
        });
        metrics.rows = ingested.rows;
        let mut properties = HashMap::from([
            (RUN_ID_PROPERTY.to_string(), run_id.to_string()),
            (RUN_KEY_PROPERTY.to_string(), key.to_string()),
            (
                SOURCE_FILE_COUNT_PROPERTY.to_string(),
                files.len().to_string(),
            ),
            (MODE_PROPERTY.to_string(), options.mode.as_str().to_string()),
            (METRICS_PROPERTY.to_string(), metrics.to_summary()),
            (
                AUDIT_PROPERTY.to_string(),
                audit
                    .as_ref()
                    .map(|report| write_summary(report, options.checks.as_ref()))
                    .unwrap_or_else(|| "no checks".to_string()),
            ),
            (
                MESSAGE_PROPERTY.to_string(),
                options.message.clone().unwrap_or_else(|| {
                    format!("ingest {} file(s) from {}", files.len(), options.source)
                }),
            ),
        ]);
        if let Some(author) = &options.author {
            properties.insert(AUTHOR_PROPERTY.to_string(), author.clone());
        }
        properties.extend(target.properties.clone());
        let data_file_count = ingested.files.len();
        let quarantine_files = std::mem::take(&mut ingested.quarantine_files);
        let partitions = partition::rows_per_partition(&table, &ingested.files);
        pause_point(options, "write").await;
        if options.cancel.is_stopped() {
            // Stopped before the branch was committed: the rollback deletes the run's files.
            return Err(Error::Interrupted);
        }
        let outcome = lake
            .commit_append(
                name,
                AppendRequest {
                    branch: branch.clone(),
                    create_from: (!target.append)
                        .then(|| base.map(RefSpec::Snapshot).unwrap_or_else(RefSpec::main)),
                    files: ingested.files,
                    properties: properties.clone(),
                },
            )
            .await?;
        let quarantine = match quarantine {
            Some((qname, _)) if !quarantine_files.is_empty() => {
                // Crash tests: between the table's branch commit and the quarantine's.
                pause_point(options, "quarantine").await;
                let mut q_properties = HashMap::from([
                    (RUN_ID_PROPERTY.to_string(), run_id.to_string()),
                    (
                        MESSAGE_PROPERTY.to_string(),
                        format!(
                            "{} row(s) of {name} set aside by its checks (run {run_id})",
                            ingested.quarantined_rows
                        ),
                    ),
                ]);
                if let Some(author) = &options.author {
                    q_properties.insert(AUTHOR_PROPERTY.to_string(), author.clone());
                }
                lake.commit_append(
                    &qname,
                    AppendRequest {
                        branch: branch.clone(),
                        create_from: Some(RefSpec::main()),
                        files: quarantine_files,
                        properties: q_properties,
                    },
                )
                .await?;
                Some(QuarantineWritten {
                    table: qname,
                    rows: ingested.quarantined_rows,
                })
            }
            _ => None,
        };
        Ok(Written {
            snapshot_id: outcome.snapshot_id,
            base,
            rows: ingested.rows,
            data_files: data_file_count,
            copied_as_is: ingested.copied_as_is,
            partitions,
            main_files_read,
            properties,
            sources: locations,
            audit,
            quarantine,
        })
    }

    /// Fails on drift, or adds the new columns when allowed. Type changes and missing required
    /// columns always fail, naming the file.
    async fn reconcile_schema(
        &self,
        options: &RunOptions,
        table: LoadedTable,
        footers: &[ParquetFooter],
    ) -> Result<LoadedTable> {
        let table_schema = arrow_schema_for(table.metadata().current_schema())?;
        check_files_fit(options, &table_schema, footers)?;
        let mut new_columns: Vec<arrow_schema::Field> = Vec::new();
        for footer in footers {
            let diff = diff_schemas(&table_schema, &footer.schema);
            // A struct column with new fields is passed whole: the table adds what it lacks.
            for f in diff
                .extra
                .into_iter()
                .chain(diff.extra_nested.into_iter().map(|(_, top)| top))
            {
                match new_columns.iter_mut().find(|c| c.name() == f.name()) {
                    // Several files may each bring other new fields of the same struct.
                    Some(existing) => {
                        if let Some(merged) = merged_struct(existing, &f) {
                            *existing = merged;
                        }
                    }
                    None => new_columns.push(f),
                }
            }
        }
        if new_columns.is_empty() {
            return Ok(table);
        }
        let lake = self.lake();
        tracing::info!(table = %options.table, columns = ?new_columns.iter().map(|f| f.name()).collect::<Vec<_>>(), "adding columns");
        lake.add_columns(&options.table, &new_columns).await?;
        Ok(lake.load_table(&options.table).await?)
    }
}

/// Every file fits the table's schema, or differs only by columns the run may add
/// (`--on-schema-change add-columns`); otherwise the first that does not fails the run,
/// naming the file, the table and every difference.
fn check_files_fit(
    options: &RunOptions,
    table_schema: &arrow_schema::Schema,
    footers: &[ParquetFooter],
) -> Result<()> {
    for footer in footers {
        let diff = diff_schemas(table_schema, &footer.schema);
        let shown = if !diff.only_additions() {
            // The differences no option can fix come first, alone.
            sluice_lake::schema::SchemaDiff {
                extra: Vec::new(),
                extra_nested: Vec::new(),
                ..diff
            }
        } else if !diff.is_compatible() && options.on_schema_change == SchemaChange::Fail {
            diff
        } else {
            continue;
        };
        return Err(Error::SchemaDrift(format!(
            "schema of {} does not match table {}: {}",
            footer.location,
            options.table,
            shown.describe()
        )));
    }
    Ok(())
}

/// The union of two input columns of the same name where both are structs (fields of `b` that
/// `a` lacks appended, recursively), or `None` when there is nothing to merge.
fn merged_struct(a: &arrow_schema::Field, b: &arrow_schema::Field) -> Option<arrow_schema::Field> {
    use arrow_schema::DataType;
    let (DataType::Struct(af), DataType::Struct(bf)) = (a.data_type(), b.data_type()) else {
        return None;
    };
    let mut fields: Vec<arrow_schema::FieldRef> = af.iter().cloned().collect();
    for f in bf {
        match fields.iter().position(|e| e.name() == f.name()) {
            Some(i) => {
                if let Some(merged) = merged_struct(&fields[i], f) {
                    fields[i] = Arc::new(merged);
                }
            }
            None => fields.push(f.clone()),
        }
    }
    Some(a.clone().with_data_type(DataType::Struct(fields.into())))
}

impl Pipeline {
    /// A run that names a partition spec fails at once when the table exists with another,
    /// whether or not there is anything new to write (a table that does not exist yet is
    /// created with the spec by the write step).
    pub(crate) async fn check_partition_spec(&self, options: &RunOptions) -> Result<()> {
        let Some(partition_by) = &options.partition_by else {
            return Ok(());
        };
        match self.lake().load_table(&options.table).await {
            Ok(table) => ensure_spec(&table, partition_by),
            Err(sluice_lake::Error::TableNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// An existing table written with `--partition-by` must have that spec already.
fn ensure_spec(table: &LoadedTable, partition_by: &str) -> Result<()> {
    let terms = partition::parse_partition_by(partition_by)?;
    let metadata = table.metadata();
    let (spec, schema) = (metadata.default_partition_spec(), metadata.current_schema());
    if partition::spec_matches(spec, schema, &terms) {
        return Ok(());
    }
    Err(sluice_lake::Error::PartitionSpecDiffers {
        table: table.name().to_string(),
        existing: partition::describe_spec(spec, schema),
        requested: terms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
    .into())
}

/// The quarantine table of a table whose (arrow) schema is `schema`: loaded, with the columns
/// it lacks added, or created.
async fn quarantine_table(
    lake: &sluice_lake::Lake,
    name: &TableName,
    schema: &arrow_schema::SchemaRef,
) -> Result<sluice_lake::LoadedTable> {
    let want = sluice_lake::ingest::quarantine_schema(schema);
    match lake.load_table(name).await {
        Ok(table) => {
            let have = arrow_schema_for(table.metadata().current_schema())?;
            let missing: Vec<arrow_schema::Field> = want
                .fields()
                .iter()
                .filter(|f| have.field_with_name(f.name()).is_err())
                .map(|f| f.as_ref().clone())
                .collect();
            if missing.is_empty() {
                return Ok(table);
            }
            lake.add_columns(name, &missing).await?;
            Ok(lake.load_table(name).await?)
        }
        Err(sluice_lake::Error::TableNotFound { .. }) => match lake.create_table(name, &want).await
        {
            Ok(t) => Ok(t),
            Err(sluice_lake::Error::TableAlreadyExists { .. }) => Ok(lake.load_table(name).await?),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Fields};

    use super::*;

    fn strukt(name: &str, fields: Vec<Field>) -> Field {
        Field::new(name, DataType::Struct(Fields::from(fields)), true)
    }

    #[test]
    fn merged_struct_adds_the_fields_one_side_lacks_recursively() {
        let a = strukt(
            "geo",
            vec![
                Field::new("lat", DataType::Float64, true),
                strukt("place", vec![Field::new("city", DataType::Utf8, true)]),
            ],
        );
        let b = strukt(
            "geo",
            vec![
                Field::new("lon", DataType::Float64, true),
                strukt("place", vec![Field::new("zip", DataType::Utf8, true)]),
            ],
        );
        let merged = merged_struct(&a, &b).unwrap();
        let DataType::Struct(fields) = merged.data_type() else {
            panic!("not a struct: {merged:?}")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["lat", "place", "lon"]);
        let DataType::Struct(place) = fields[1].data_type() else {
            panic!("place is not a struct")
        };
        let names: Vec<&str> = place.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["city", "zip"]);
    }

    #[test]
    fn merged_struct_leaves_non_structs_alone() {
        let a = Field::new("n", DataType::Int64, true);
        assert!(merged_struct(&a, &a.clone()).is_none());
        let s = strukt("s", vec![Field::new("x", DataType::Int32, true)]);
        assert!(merged_struct(&a, &s).is_none());
    }

    #[test]
    fn the_ledger_entry_lists_the_sources_or_the_old_summary_list() {
        let mut written = Written {
            snapshot_id: 1,
            base: None,
            rows: 0,
            data_files: 0,
            copied_as_is: 0,
            partitions: Vec::new(),
            main_files_read: None,
            properties: HashMap::from([
                (RUN_KEY_PROPERTY.to_string(), "k1".to_string()),
                (
                    SOURCE_FILES_PROPERTY.to_string(),
                    "a.parquet\n\nb.parquet\n".to_string(),
                ),
            ]),
            sources: vec!["c.parquet".into()],
            audit: None,
            quarantine: None,
        };
        let entry = written.ledger_entry();
        assert_eq!(entry.run_key, "k1");
        assert_eq!(entry.files, ["c.parquet"]);
        // A step output journalled by an earlier version has no `sources`.
        written.sources.clear();
        assert_eq!(written.ledger_entry().files, ["a.parquet", "b.parquet"]);
    }
}

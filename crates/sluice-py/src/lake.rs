//! `NativeLake`: a lake opened from `sluice.toml`, and every operation the Python `Lake` offers.

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use pyo3::prelude::*;
use sluice_checks::{CheckSuite, EvalOptions};
use sluice_lake::{RefKind, RefName, RefSpec, ScanOptions, TableName};
use sluice_wap::{Mode, Pipeline, RunOptions, RunStatus, SchemaChange, StopSignal};

use crate::convert::{to_python, to_record_batch_reader};
use crate::errors::{self, Kind};
use crate::runtime::{OnInterrupt, block_on};

/// A lake: its catalog, its storage and its run journal, as `sluice.toml` describes them.
#[pyclass(module = "sluice._sluice", frozen)]
pub(crate) struct NativeLake {
    pipeline: Arc<Pipeline>,
    author: Option<String>,
    source: String,
}

fn table_name(py: Python<'_>, table: &str) -> PyResult<TableName> {
    table.parse().map_err(|e| errors::from_lake(py, e))
}

fn ref_spec(py: Python<'_>, reference: &str) -> PyResult<RefSpec> {
    RefSpec::parse(reference).map_err(|e| errors::from_lake(py, e))
}

fn ref_name(py: Python<'_>, name: &str) -> PyResult<RefName> {
    RefName::new(name).map_err(|e| errors::from_lake(py, e))
}

fn invalid(py: Python<'_>, text: impl Into<String>) -> PyErr {
    errors::exception(py, Kind::InvalidInput, text.into())
}

/// A checks file path, or the checks as JSON text (`[{"kind": ...}, ...]`).
fn check_suite(
    py: Python<'_>,
    path: Option<PathBuf>,
    json: Option<String>,
) -> PyResult<CheckSuite> {
    match (path, json) {
        (Some(path), _) => CheckSuite::from_path(path).map_err(|e| errors::from_checks(py, e)),
        (None, Some(json)) => {
            let checks: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| invalid(py, format!("the checks are not valid: {e}")))?;
            let text = toml::to_string(&serde_json::json!({ "check": checks }))
                .map_err(|e| invalid(py, format!("the checks are not valid: {e}")))?;
            CheckSuite::from_toml_str(&text).map_err(|e| errors::from_checks(py, e))
        }
        (None, None) => Err(invalid(
            py,
            "give the checks: a checks file or a list of checks",
        )),
    }
}

/// How files are written, for runs and imports alike.
struct Written<'a> {
    mode: &'a str,
    partition_by: Option<String>,
    message: Option<String>,
    author: Option<String>,
    rewrite: bool,
    add_columns: bool,
    truncate_timestamps: bool,
}

impl NativeLake {
    /// The options of a run or an import of `source` into `table`.
    fn options(
        &self,
        py: Python<'_>,
        source: &str,
        table: &str,
        written: Written<'_>,
    ) -> PyResult<RunOptions> {
        let table = table_name(py, table)?;
        let source = sluice_wap::source_location(source).map_err(|e| errors::from_wap(py, e))?;
        let mut options = RunOptions::new(source, table);
        options.mode = match written.mode {
            "copy" => Mode::Copy,
            "register" => Mode::Register,
            other => {
                return Err(invalid(
                    py,
                    format!("mode must be \"copy\" or \"register\", not {other:?}"),
                ));
            }
        };
        if let Some(spec) = &written.partition_by {
            sluice_lake::partition::parse_partition_by(spec)
                .map_err(|e| errors::from_lake(py, e))?;
        }
        options.partition_by = written.partition_by;
        options.message = written.message;
        options.author = Some(
            written
                .author
                .unwrap_or_else(|| sluice_wap::default_author(self.author.as_deref())),
        );
        options.rewrite = written.rewrite;
        if written.add_columns {
            options.on_schema_change = SchemaChange::AddColumns;
        }
        if written.truncate_timestamps {
            options.write.nanos = sluice_lake::schema::NanosToMicros::Truncate;
        }
        Ok(options)
    }
}

#[pymethods]
impl NativeLake {
    /// Opens the lake `config` describes (a `sluice.toml`); without one: `$SLUICE_CONFIG`, then
    /// `./sluice.toml`, then the embedded default under `./.sluice/`.
    #[staticmethod]
    #[pyo3(signature = (config=None))]
    fn open(py: Python<'_>, config: Option<PathBuf>) -> PyResult<NativeLake> {
        let loaded =
            sluice_wap::config::load(config.as_deref()).map_err(|e| errors::from_wap(py, e))?;
        let pipeline = block_on(
            py,
            || Pipeline::open(&loaded.pipeline),
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        Ok(NativeLake {
            pipeline: Arc::new(pipeline),
            author: loaded.author,
            source: loaded.source,
        })
    }

    /// Where the configuration came from.
    #[getter]
    fn config_source(&self) -> &str {
        &self.source
    }

    #[pyo3(signature = (namespace=None))]
    fn tables(&self, py: Python<'_>, namespace: Option<String>) -> PyResult<Vec<String>> {
        let lake = self.pipeline.clone();
        let tables = block_on(
            py,
            move || async move { lake.lake().list_tables(namespace.as_deref()).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))?;
        Ok(tables.into_iter().map(|t| t.to_string()).collect())
    }

    fn refs<'py>(&self, py: Python<'py>, table: &str) -> PyResult<Bound<'py, PyAny>> {
        let name = table_name(py, table)?;
        let lake = self.pipeline.clone();
        let refs = block_on(
            py,
            move || async move { lake.lake().list_refs(&name).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))?;
        to_python(py, &refs)
    }

    /// Creates a branch (`branch=True`) or a tag; returns its snapshot id.
    fn create_ref(
        &self,
        py: Python<'_>,
        table: &str,
        name: &str,
        at: &str,
        branch: bool,
    ) -> PyResult<Option<i64>> {
        let (table, name, at) = (
            table_name(py, table)?,
            ref_name(py, name)?,
            ref_spec(py, at)?,
        );
        let lake = self.pipeline.clone();
        let id = block_on(
            py,
            move || async move {
                if branch {
                    lake.lake().create_branch(&table, &name, &at).await
                } else {
                    lake.lake().create_tag(&table, &name, &at).await
                }
            },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))?;
        Ok(Some(id))
    }

    /// Deletes a branch (`branch=True`) or a tag; a ref of the other kind is left alone.
    fn delete_ref(&self, py: Python<'_>, table: &str, name: &str, branch: bool) -> PyResult<()> {
        let (table, name) = (table_name(py, table)?, ref_name(py, name)?);
        let kind = if branch {
            RefKind::Branch
        } else {
            RefKind::Tag
        };
        let lake = self.pipeline.clone();
        block_on(
            py,
            move || async move { lake.lake().delete_ref(&table, &name, kind).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))
    }

    /// Publishes `branch` into `into`: a fast-forward, or a rebase of its appends.
    fn merge<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        branch: &str,
        into: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (table, source, target) = (
            table_name(py, table)?,
            ref_name(py, branch)?,
            ref_name(py, into)?,
        );
        let pipeline = self.pipeline.clone();
        let outcome = block_on(
            py,
            move || async move { pipeline.merge(&table, &source, &target).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &outcome)
    }

    /// Publishes `branch` of every table of `tables` into `into` in one atomic catalog commit.
    fn merge_tables<'py>(
        &self,
        py: Python<'py>,
        tables: Vec<String>,
        branch: &str,
        into: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let names = tables
            .iter()
            .map(|t| table_name(py, t))
            .collect::<PyResult<Vec<_>>>()?;
        let (source, target) = (ref_name(py, branch)?, ref_name(py, into)?);
        let pipeline = self.pipeline.clone();
        let outcomes = block_on(
            py,
            move || async move { pipeline.merge_many(&names, &source, &target).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &outcomes)
    }

    /// One job (a job file: several tables written on one branch, audited together,
    /// published together). Ctrl-C stops it at its next safe point and raises
    /// `KeyboardInterrupt`.
    #[pyo3(signature = (job, author=None))]
    fn run_job<'py>(
        &self,
        py: Python<'py>,
        job: PathBuf,
        author: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let author = author.unwrap_or_else(|| sluice_wap::default_author(self.author.as_deref()));
        let job = sluice_wap::JobOptions::from_path(&job, Some(author))
            .map_err(|e| errors::from_wap(py, e))?;
        let stop: StopSignal = job.cancel.clone();
        let pipeline = self.pipeline.clone();
        let report = block_on(
            py,
            move || async move { pipeline.run_job(&job).await },
            OnInterrupt::Stop(&move || stop.stop()),
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &report)
    }

    /// Moves `branch` back to `to` (one of its ancestors); returns the snapshot id.
    fn rollback(&self, py: Python<'_>, table: &str, to: &str, branch: &str) -> PyResult<i64> {
        let (table, to, branch) = (
            table_name(py, table)?,
            ref_spec(py, to)?,
            ref_name(py, branch)?,
        );
        let lake = self.pipeline.clone();
        block_on(
            py,
            move || async move { lake.lake().rollback(&table, &branch, &to).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))
    }

    #[pyo3(signature = (table, reference, limit=None))]
    fn log<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        reference: &str,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (table, spec) = (table_name(py, table)?, ref_spec(py, reference)?);
        let lake = self.pipeline.clone();
        let commits = block_on(
            py,
            move || async move { lake.lake().log(&table, &spec, limit).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))?;
        to_python(py, &commits)
    }

    /// The rows of `table` at `reference` as a `pyarrow.RecordBatchReader`.
    #[pyo3(signature = (table, reference, columns=None, limit=None))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        reference: &str,
        columns: Option<Vec<String>>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (table, spec) = (table_name(py, table)?, ref_spec(py, reference)?);
        let lake = self.pipeline.clone();
        let read = block_on(
            py,
            move || async move {
                let options = ScanOptions {
                    columns,
                    batch_size: None,
                };
                let Some(limit) = limit else {
                    // Everything: the data files are read in parallel.
                    return lake.lake().scan_all(&table, &spec, &options).await;
                };
                let (schema, mut stream) = lake.lake().scan(&table, &spec, &options).await?;
                let mut batches = Vec::new();
                let mut left = limit;
                while left > 0 {
                    let Some(batch) = stream.try_next().await? else {
                        break;
                    };
                    let take = left.min(batch.num_rows());
                    left -= take;
                    batches.push(if take == batch.num_rows() {
                        batch
                    } else {
                        batch.slice(0, take)
                    });
                }
                Ok::<_, sluice_lake::Error>((schema, batches))
            },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_lake(py, e))?;
        // Each batch carries the schema it was read with; the stream takes the ref's.
        let (schema, batches) = read;
        let batches = batches
            .into_iter()
            .map(|b| {
                arrow::array::RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                    .map_err(|e| invalid(py, format!("cannot read the rows: {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        to_record_batch_reader(py, schema, batches)
    }

    /// The rows of one read-only SQL query over the lake's tables at any ref, as a
    /// `pyarrow.RecordBatchReader`.
    fn sql<'py>(&self, py: Python<'py>, query: String) -> PyResult<Bound<'py, PyAny>> {
        let lake = self.pipeline.clone();
        let (schema, batches) = block_on(
            py,
            move || async move {
                let session = sluice_sql::SqlSession::new(lake.lake());
                let frame = session.sql(&query).await?;
                let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
                let batches = frame.collect().await.map_err(sluice_sql::Error::from)?;
                Ok::<_, sluice_sql::Error>((schema, batches))
            },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_sql(py, e))?;
        to_record_batch_reader(py, schema, batches)
    }

    /// Audits `table` at `reference` with a checks file or checks given as JSON text.
    #[pyo3(signature = (table, reference, checks_path=None, checks_json=None, samples=5, key_columns=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn audit<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        reference: &str,
        checks_path: Option<PathBuf>,
        checks_json: Option<String>,
        samples: usize,
        key_columns: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (table, spec) = (table_name(py, table)?, ref_spec(py, reference)?);
        let suite = check_suite(py, checks_path, checks_json)?;
        let pipeline = self.pipeline.clone();
        let options = EvalOptions {
            sample_size: samples,
            key_columns,
            ..EvalOptions::default()
        };
        let report = block_on(
            py,
            move || async move { pipeline.audit_ref(&table, &spec, &suite, options).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        let value = to_python(py, &report)?;
        value.set_item("publishable", report.publishable())?;
        Ok(value)
    }

    /// One Write-Audit-Publish run, in its durable transaction. Ctrl-C stops it at its next
    /// safe point (before publishing it rolls back) and then raises `KeyboardInterrupt`.
    #[pyo3(signature = (source, table, checks_path=None, checks_json=None, mode="copy", partition_by=None, message=None, author=None, rewrite=false, add_columns=false, truncate_timestamps=false, samples=5, key_columns=Vec::new(), keep_failed=false))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        table: &str,
        checks_path: Option<PathBuf>,
        checks_json: Option<String>,
        mode: &str,
        partition_by: Option<String>,
        message: Option<String>,
        author: Option<String>,
        rewrite: bool,
        add_columns: bool,
        truncate_timestamps: bool,
        samples: usize,
        key_columns: Vec<String>,
        keep_failed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = self.options(
            py,
            source,
            table,
            Written {
                mode,
                partition_by,
                message,
                author,
                rewrite,
                add_columns,
                truncate_timestamps,
            },
        )?;
        if checks_path.is_some() || checks_json.is_some() {
            options.checks = Some(check_suite(py, checks_path, checks_json)?);
        }
        options.sample_size = samples;
        options.key_columns = key_columns;
        options.keep_failed = keep_failed;
        let stop: StopSignal = options.cancel.clone();
        let pipeline = self.pipeline.clone();
        let report = block_on(
            py,
            move || async move { pipeline.run(&options).await },
            OnInterrupt::Stop(&move || stop.stop()),
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        let value = to_python(py, &report)?;
        value.set_item("status", report.status.as_str())?;
        if let Some(failure) = &report.failure
            && report.status == RunStatus::Failed
        {
            let kind = failure.error().map_or(Kind::Other, errors::wap_kind);
            value.set_item("error_kind", format!("{kind:?}"))?;
        }
        Ok(value)
    }

    /// Writes the new files of `source` onto `branch` of `table`, without audit or publish.
    #[pyo3(signature = (source, table, branch, mode="copy", partition_by=None, message=None, author=None, rewrite=false, add_columns=false, truncate_timestamps=false))]
    #[allow(clippy::too_many_arguments)]
    fn import_files<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        table: &str,
        branch: &str,
        mode: &str,
        partition_by: Option<String>,
        message: Option<String>,
        author: Option<String>,
        rewrite: bool,
        add_columns: bool,
        truncate_timestamps: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let branch = ref_name(py, branch)?;
        let options = self.options(
            py,
            source,
            table,
            Written {
                mode,
                partition_by,
                message,
                author,
                rewrite,
                add_columns,
                truncate_timestamps,
            },
        )?;
        let pipeline = self.pipeline.clone();
        let report = block_on(
            py,
            move || async move { pipeline.import_files(&options, &branch).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &report)
    }

    /// Past runs, newest first.
    #[pyo3(signature = (limit=None))]
    fn runs<'py>(&self, py: Python<'py>, limit: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
        let pipeline = self.pipeline.clone();
        let filter = sluice_txn::RunFilter {
            limit,
            ..Default::default()
        };
        let runs = block_on(
            py,
            move || async move { pipeline.list_runs(&filter).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &runs)
    }

    /// One run: steps, attempts, errors, compensations.
    fn show_run<'py>(&self, py: Python<'py>, run_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id = uuid::Uuid::parse_str(run_id.trim())
            .map_err(|_| invalid(py, format!("{run_id:?} is not a run id")))?;
        let pipeline = self.pipeline.clone();
        let run = block_on(
            py,
            move || async move { pipeline.show_run(id).await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &run)
    }

    /// Finishes or rolls back what dead processes left open.
    fn recover<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pipeline = self.pipeline.clone();
        let report = block_on(
            py,
            move || async move { pipeline.recover().await },
            OnInterrupt::Abandon,
        )?
        .map_err(|e| errors::from_wap(py, e))?;
        to_python(py, &report)
    }
}

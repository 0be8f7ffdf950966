//! A lake table at one snapshot, as a DataFusion table.
//!
//! Planning a scan hands the projection and the filters to Iceberg's own scan planning
//! (`iceberg-datafusion` turns DataFusion's filter expressions into Iceberg predicates), so
//! manifests are skipped by their partition summaries, data files by their partition values
//! and column bounds, and only the projected columns are read. The files left are shared out
//! among as many partitions as the session has target partitions, each read by its own
//! reader, so a scan decodes on every core (one Iceberg reader stream decodes on one).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{Result as DfResult, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::prelude::Expr;
use futures::{StreamExt, TryStreamExt};
use iceberg::expr::Predicate;
use iceberg::scan::FileScanTask;
use iceberg::table::Table;
use sluice_lake::LoadedTable;

use crate::error::external;

/// Files one partition's reader fetches at a time: a second one in flight hides an object
/// store's latency without holding many files' row groups in memory.
const FILES_IN_FLIGHT: usize = 2;

/// A table at one snapshot (or a table without snapshots, which has no rows), read-only.
#[derive(Debug, Clone)]
pub struct RefTable {
    label: String,
    table: Table,
    snapshot_id: Option<i64>,
    schema: SchemaRef,
    files_total: Option<u64>,
}

impl RefTable {
    /// `table` at `snapshot_id` with that snapshot's schema; `label` (e.g. `ns.t@audit`)
    /// names it in `EXPLAIN` and in errors.
    pub fn new(
        label: impl Into<String>,
        table: &LoadedTable,
        snapshot_id: Option<i64>,
    ) -> sluice_lake::Result<Self> {
        let md = table.metadata();
        let snapshot = snapshot_id.and_then(|id| md.snapshot_by_id(id));
        let schema = match snapshot {
            Some(s) => s.schema(md)?,
            None => md.current_schema().clone(),
        };
        let files_total = snapshot
            .and_then(|s| s.summary().additional_properties.get("total-data-files"))
            .and_then(|v| v.parse().ok());
        Ok(RefTable {
            label: label.into(),
            table: table.iceberg_table().clone(),
            snapshot_id,
            schema: Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?),
            files_total,
        })
    }

    /// The snapshot read; `None` for a table without snapshots.
    pub fn snapshot_id(&self) -> Option<i64> {
        self.snapshot_id
    }
}

#[async_trait]
impl TableProvider for RefTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Iceberg prunes with what it can translate and filters rows with it; DataFusion
        // still applies every filter above the scan, so a filter Iceberg cannot use costs
        // reading, never correctness.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => self.schema.clone(),
        };
        let Some(snapshot_id) = self.snapshot_id else {
            return Ok(Arc::new(EmptyExec::new(schema)));
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let predicate =
            iceberg_datafusion::physical_plan::convert_filters_to_predicate(&pushable(filters));
        let batch_size = state.config().batch_size();
        let mut builder = self
            .table
            .scan()
            .snapshot_id(snapshot_id)
            .select(columns.iter().cloned())
            .with_batch_size(Some(batch_size));
        if let Some(p) = &predicate {
            builder = builder.with_filter(p.clone());
        }
        let scan = builder.build().map_err(external)?;
        let tasks: Vec<FileScanTask> = scan
            .plan_files()
            .await
            .map_err(external)?
            .try_collect()
            .await
            .map_err(external)?;
        let files_read = tasks.len();
        let rows: u64 = tasks.iter().filter_map(|t| t.record_count).sum();
        let all_counted = tasks.iter().all(|t| t.record_count.is_some());
        let groups = share_out(tasks, state.config().target_partitions());
        Ok(Arc::new(RefScanExec {
            label: self.label.clone(),
            table: self.table.clone(),
            snapshot_id,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(groups.len().max(1)),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            schema,
            columns,
            predicate,
            groups,
            files_read,
            files_total: self.files_total,
            rows: all_counted.then_some(rows),
            limit,
            batch_size,
        }))
    }
}

/// The filters whose Iceberg form means the same: none with a cast. Iceberg's translation drops
/// a cast and compares the column itself (`CAST(amount AS BIGINT) = 5` would become
/// `amount = 5`), and the reader filters rows with what it is given, so a rounding cast would
/// lose rows. Those filters are applied by DataFusion above the scan instead.
fn pushable(filters: &[Expr]) -> Vec<Expr> {
    use datafusion::common::tree_node::TreeNode;
    filters
        .iter()
        .filter(|f| {
            !f.exists(|e| Ok(matches!(e, Expr::Cast(_) | Expr::TryCast(_))))
                .unwrap_or(true)
        })
        .cloned()
        .collect()
}

/// Shares files out among at most `partitions` groups, the largest first into the group with
/// the fewest bytes so far, so the readers finish at about the same time.
fn share_out(mut tasks: Vec<FileScanTask>, partitions: usize) -> Vec<Vec<FileScanTask>> {
    let n = partitions.clamp(1, tasks.len().max(1));
    tasks.sort_by_key(|t| std::cmp::Reverse(t.length));
    let mut groups: Vec<(u64, Vec<FileScanTask>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for task in tasks {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += task.length;
        lightest.1.push(task);
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Reads the planned files of a lake table, a group of files per partition.
#[derive(Debug)]
pub struct RefScanExec {
    label: String,
    table: Table,
    snapshot_id: i64,
    properties: Arc<PlanProperties>,
    schema: SchemaRef,
    columns: Vec<String>,
    predicate: Option<Predicate>,
    groups: Vec<Vec<FileScanTask>>,
    files_read: usize,
    files_total: Option<u64>,
    rows: Option<u64>,
    limit: Option<usize>,
    batch_size: usize,
}

impl RefScanExec {
    /// Data files the scan reads, after pruning.
    pub fn files_read(&self) -> usize {
        self.files_read
    }

    /// Data files in the snapshot, when its summary says.
    pub fn files_total(&self) -> Option<u64> {
        self.files_total
    }

    /// The Iceberg predicate the scan was planned with, if any filter translated.
    pub fn predicate(&self) -> Option<&Predicate> {
        self.predicate.as_ref()
    }
}

impl DisplayAs for RefScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SluiceScan: {} snapshot={} columns=[{}]",
            self.label,
            self.snapshot_id,
            self.columns.join(", ")
        )?;
        if let Some(p) = &self.predicate {
            write!(f, " predicate=[{p}]")?;
        }
        match self.files_total {
            Some(total) => write!(f, " files={} of {total}", self.files_read)?,
            None => write!(f, " files={}", self.files_read)?,
        }
        if let Some(limit) = self.limit {
            write!(f, " limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RefScanExec {
    fn name(&self) -> &str {
        "SluiceScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DfResult<Statistics> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if partition.is_none()
            && let Some(rows) = self.rows
        {
            // Deletes and the row filter only take rows away.
            stats.num_rows = Precision::Inexact(rows as usize);
        }
        Ok(stats)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let tasks = self.groups.get(partition).cloned().unwrap_or_default();
        let reader = self
            .table
            .reader_builder()
            .with_batch_size(self.batch_size)
            .with_data_file_concurrency_limit(FILES_IN_FLIGHT)
            .with_row_selection_enabled(true)
            .build();
        let schema = self.schema.clone();
        let stream = reader
            .read(futures::stream::iter(tasks.into_iter().map(Ok)).boxed())
            .map_err(external)?
            .stream();
        let expected = schema.clone();
        let mut left = self.limit.unwrap_or(usize::MAX);
        let stream = stream
            .map_err(external)
            .and_then(move |batch| {
                futures::future::ready(conform(batch, &expected).map_err(Into::into))
            })
            .try_take_while(move |_| futures::future::ready(Ok(left > 0)))
            .map_ok(move |batch| {
                let rows = batch.num_rows().min(left);
                left -= rows;
                batch.slice(0, rows)
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The batch with exactly the scan's schema (the reader's may differ in field metadata).
fn conform(
    batch: RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    if batch.schema_ref() == schema {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    RecordBatch::try_new_with_options(
        schema.clone(),
        batch.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_out_balances_bytes_and_never_makes_empty_groups() {
        let task = |length: u64| FileScanTask {
            file_size_in_bytes: length,
            start: 0,
            length,
            record_count: None,
            data_file_path: format!("f{length}"),
            data_file_format: iceberg::spec::DataFileFormat::Parquet,
            schema: Arc::new(iceberg::spec::Schema::builder().build().unwrap()),
            project_field_ids: Vec::new(),
            predicate: None,
            deletes: Vec::new(),
            partition: None,
            partition_spec: None,
            name_mapping: None,
            case_sensitive: true,
        };
        let groups = share_out(vec![task(10), task(70), task(30), task(40)], 2);
        let bytes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|t| t.length).sum())
            .collect();
        assert_eq!(bytes, [80, 70]);

        let one = share_out(vec![task(5)], 8);
        assert_eq!(one.len(), 1);
        assert_eq!(share_out(Vec::new(), 4).len(), 1);
    }
}

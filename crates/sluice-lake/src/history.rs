//! The commit log of a ref, ref resolution and time-travel reads.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::refs::{self, RefSpec};
use crate::schema::arrow_schema_for;
use crate::table_name::TableName;

/// One snapshot in a ref's history, as `sluice log` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Snapshot id.
    pub snapshot_id: i64,
    /// Parent snapshot id.
    pub parent_id: Option<i64>,
    /// When the snapshot was committed.
    pub timestamp: DateTime<Utc>,
    /// `append`, `overwrite`, `delete` or `replace`.
    pub operation: String,
    /// `sluice.message`, if set.
    pub message: Option<String>,
    /// `sluice.author`, if set.
    pub author: Option<String>,
    /// `sluice.run-id`, if set.
    pub run_id: Option<String>,
    /// Rows this snapshot added.
    pub added_records: Option<u64>,
    /// Rows in the table as of this snapshot.
    pub total_records: Option<u64>,
    /// The schema the snapshot was written with.
    pub schema_id: Option<i32>,
    /// Every summary property.
    pub summary: BTreeMap<String, String>,
}

/// A ref resolved to a snapshot, with the schema to read it with.
#[derive(Clone, Debug)]
pub struct ResolvedRef {
    /// The snapshot (`None`: `main` of a table with nothing committed).
    pub snapshot_id: Option<i64>,
    /// The schema of that snapshot (a renamed column has its name of that time).
    pub schema: ArrowSchemaRef,
}

/// Options of [`Lake::scan`].
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Columns to read (all if `None`).
    pub columns: Option<Vec<String>>,
    /// Rows per batch (iceberg's default if `None`).
    pub batch_size: Option<usize>,
}

/// A stream of record batches.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

impl Lake {
    /// The history of a ref, newest first, walking parent links from the snapshot it resolves
    /// to. `limit` caps the number of entries.
    pub async fn log(
        &self,
        name: &TableName,
        spec: &RefSpec,
        limit: Option<usize>,
    ) -> Result<Vec<Commit>> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let head = refs::resolve(&name.to_string(), md, spec)?;
        let mut out = Vec::new();
        for id in refs::ancestry(md, head)
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
        {
            let Some(s) = md.snapshot_by_id(id) else {
                break;
            };
            let summary: BTreeMap<String, String> = s
                .summary()
                .additional_properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.push(Commit {
                snapshot_id: id,
                parent_id: s.parent_snapshot_id(),
                timestamp: Utc
                    .timestamp_millis_opt(s.timestamp_ms())
                    .single()
                    .unwrap_or_default(),
                operation: s.summary().operation.as_str().to_string(),
                message: summary.get(crate::summary::MESSAGE_PROPERTY).cloned(),
                author: summary.get(crate::summary::AUTHOR_PROPERTY).cloned(),
                run_id: summary.get(crate::summary::RUN_ID_PROPERTY).cloned(),
                added_records: summary.get("added-records").and_then(|v| v.parse().ok()),
                total_records: summary.get("total-records").and_then(|v| v.parse().ok()),
                schema_id: s.schema_id(),
                summary,
            });
        }
        Ok(out)
    }

    /// Resolves a ref to a snapshot and that snapshot's schema.
    pub async fn resolve(&self, name: &TableName, spec: &RefSpec) -> Result<ResolvedRef> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let snapshot_id = refs::resolve(&name.to_string(), md, spec)?;
        let schema = match snapshot_id.and_then(|id| md.snapshot_by_id(id)) {
            Some(s) => s.schema(md)?,
            None => md.current_schema().clone(),
        };
        Ok(ResolvedRef {
            snapshot_id,
            schema: arrow_schema_for(&schema)?,
        })
    }

    /// Reads a ref's rows, with the schema the resolved snapshot had.
    pub async fn scan(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
    ) -> Result<(ArrowSchemaRef, BatchStream)> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let snapshot_id = refs::resolve(&name.to_string(), md, spec)?;
        let schema = match snapshot_id.and_then(|id| md.snapshot_by_id(id)) {
            Some(s) => s.schema(md)?,
            None => md.current_schema().clone(),
        };
        if let Some(columns) = &options.columns {
            for c in columns {
                if schema.field_by_name(c).is_none() {
                    return Err(Error::ColumnNotFound {
                        table: name.to_string(),
                        column: c.clone(),
                    });
                }
            }
        }
        let full = arrow_schema_for(&schema)?;
        let projected = match &options.columns {
            Some(columns) => {
                let indices: Vec<usize> = columns
                    .iter()
                    .filter_map(|c| full.index_of(c).ok())
                    .collect();
                std::sync::Arc::new(full.project(&indices)?)
            }
            None => full,
        };
        let Some(snapshot_id) = snapshot_id else {
            return Ok((projected, futures::stream::empty().boxed()));
        };
        let mut builder = table.iceberg_table().scan().snapshot_id(snapshot_id);
        builder = match &options.columns {
            Some(columns) => builder.select(columns.iter().cloned()),
            None => builder.select_all(),
        };
        if let Some(n) = options.batch_size {
            builder = builder.with_batch_size(Some(n));
        }
        let stream = builder.build()?.to_arrow().await?;
        Ok((projected, stream.map_err(Error::from).boxed()))
    }

    /// Reads a ref's rows into memory (for small tables and tests).
    pub async fn scan_to_vec(
        &self,
        name: &TableName,
        spec: &RefSpec,
        options: &ScanOptions,
    ) -> Result<Vec<RecordBatch>> {
        let (_, stream) = self.scan(name, spec, options).await?;
        stream.try_collect().await
    }
}

//! sluice-lake: git-like branches, commits, publish and time travel over Apache Iceberg tables.
//!
//! Everything is plain Iceberg metadata, readable by every engine:
//!
//! * a **branch** is a snapshot ref in the table's own metadata (one catalog commit to create,
//!   no file copied);
//! * a **commit** is a snapshot with summary properties (`sluice.message`, `sluice.author`, …);
//! * **publish** is a fast-forward of `main`, or a rebase of the branch's appends when `main`
//!   moved meanwhile ([`Lake::publish`]);
//! * **time travel** resolves `ref`, a snapshot id, a tag or `ref@<RFC 3339 time>` and reads
//!   with the schema of that time ([`Lake::scan`]).
//!
//! ```text
//!   Lake::connect(LakeConfig) ── SQL catalog (SQLite) | REST catalog
//!        │                         storage: object_store (file://, s3://, memory://)
//!        ├─ create_table / load_table / list_tables / drop_table
//!        ├─ create_branch / create_tag / delete_ref / list_refs / rollback
//!        ├─ ingest (copy: chunk copy or re-encode | register in place) ──► commit_append
//!        ├─ fast_forward / rebase_appends (staged or not) / publish
//!        └─ log / resolve / scan / rename_column / add_columns
//! ```
//!
//! Every change is one atomic catalog commit with `assert-table-uuid` and
//! `assert-ref-snapshot-id` requirements; conflicts are retried on fresh metadata.
//!
//! # Example
//!
//! ```
//! # use std::sync::Arc;
//! # use arrow_array::{Int64Array, RecordBatch};
//! # use arrow_schema::{DataType, Field, Schema};
//! use sluice_lake::{Lake, LakeConfig, RefMove, RefName, RefSpec, ScanOptions, TableName};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sluice_lake::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let lake = Lake::connect(&LakeConfig::embedded(dir.path())?).await?;
//! let table: TableName = "analytics.events".parse()?;
//! let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
//! lake.create_table(&table, &schema).await?;
//!
//! // Write on an isolated branch; main does not change.
//! let branch = RefName::new("audit")?;
//! lake.create_branch(&table, &branch, &RefSpec::main()).await?;
//! let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?;
//! lake.append_batches(&table, &branch, &[batch], Default::default()).await?;
//! assert!(lake.scan_to_vec(&table, &RefSpec::main(), &ScanOptions::default()).await?.is_empty());
//!
//! // Publish: main now holds the rows.
//! lake.publish(&table, RefMove::into_main(&branch), Default::default()).await?;
//! let rows: usize = lake
//!     .scan_to_vec(&table, &RefSpec::main(), &ScanOptions::default())
//!     .await?
//!     .iter()
//!     .map(|b| b.num_rows())
//!     .sum();
//! assert_eq!(rows, 3);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod append;
mod catalog;
mod cleanup;
mod commit;
mod compact;
mod diff;
mod error;
pub mod expire;
mod history;
pub mod ingest;
mod lake;
mod ledger;
pub mod manifest_merge;
mod manifests;
mod orphans;
pub mod parquet;
pub mod partition;
mod publish;
mod ref_ops;
mod refs;
mod retrying_store;
mod rewrite_manifests;
pub mod schema;
mod schema_change;
mod snapshot_producer;
pub mod storage;
pub mod summary;
mod table_name;
mod writer;

pub use append::{AppendOutcome, AppendRequest};
pub use catalog::{CatalogConfig, LoadedTable, MultiTableCommit};
pub use cleanup::Discarded;
pub use commit::{CommitHook, CommitRetry};
pub use compact::{CompactOptions, Compacted, CompactionPlan};
pub use diff::{ColumnDiff, ColumnSide, DiffSide, RefDiff, SchemaChange};
pub use error::{Error, Result};
pub use expire::{CommittedExpiry, ExpireOptions, Expired, ExpiryIntent};
pub use history::{BatchStream, ColumnRange, Commit, RangeScan, ResolvedRef, ScanOptions};
pub use lake::{Lake, LakeConfig};
pub use ledger::LedgerEntry;
pub use orphans::{OrphanOptions, OrphansRemoved};
pub use publish::{PublishKind, PublishOutcome, RebaseOptions, Rebased, RefMove, TablePublish};
pub use refs::{MAIN, RefInfo, RefKind, RefName, RefSpec};
pub use rewrite_manifests::ManifestsRewritten;
pub use snapshot_producer::WriteOptions;
pub use table_name::TableName;
pub use writer::{DICTIONARY_SIZE_PROPERTY, TARGET_FILE_SIZE_PROPERTY, TableWriter};

/// Re-exports of the iceberg types that appear in this crate's API.
pub mod iceberg_types {
    pub use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};
}

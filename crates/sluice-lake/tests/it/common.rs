use std::collections::HashMap;
use std::path::Path;

use arrow_array::{Array, Int64Array, RecordBatch};
use sluice_lake::{
    Lake, LakeConfig, RefSpec, ScanOptions, TableName, WriteOptions,
    ingest::{IngestObserver, IngestOptions},
};

/// The small `id`, `name`, `amount` table and parquet files as other tools write them.
pub use sluice_testkit::{batch, schema, sum_column, write_parquet};

pub struct TestLake {
    pub dir: tempfile::TempDir,
    pub lake: Lake,
    pub table: TableName,
}

pub async fn lake_in(dir: &Path) -> Lake {
    Lake::connect(&LakeConfig::embedded(dir).unwrap())
        .await
        .unwrap()
}

pub async fn new_lake() -> TestLake {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path()).await;
    let table: TableName = "ns.events".parse().unwrap();
    lake.create_table(&table, &schema()).await.unwrap();
    TestLake { dir, lake, table }
}

/// Sorted ids in a ref.
pub async fn ids(lake: &Lake, table: &TableName, spec: &str) -> Vec<i64> {
    let batches = lake
        .scan_to_vec(
            table,
            &RefSpec::parse(spec).unwrap(),
            &ScanOptions::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        out.extend(col.iter().flatten());
    }
    out.sort_unstable();
    out
}

/// Every ref and the snapshot it points at.
pub async fn ref_state(lake: &Lake, table: &TableName) -> HashMap<String, i64> {
    lake.list_refs(table)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.snapshot_id))
        .collect()
}

pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The sum of `amount` over batches (nulls skipped).
pub fn sum_amount(batches: &[RecordBatch]) -> f64 {
    sum_column(batches, "amount")
}

/// An ingest observer that keeps the ids it is shown and, when asked, fails at its n-th batch
/// (as an audit that gives up would).
#[derive(Debug, Default)]
pub struct SeenIds {
    pub ids: Vec<i64>,
    pub batches: usize,
    pub fail_at: Option<usize>,
}

impl IngestObserver for SeenIds {
    type Error = sluice_lake::Error;

    fn columns(&self) -> Option<Vec<String>> {
        Some(vec!["id".to_string()])
    }

    fn observe(&mut self, batch: &RecordBatch) -> sluice_lake::Result<()> {
        self.batches += 1;
        if self.fail_at == Some(self.batches) {
            return Err(sluice_lake::Error::Config("audit stopped the copy".into()));
        }
        let column = batch.column_by_name("id").expect("an id column");
        let ids = column.as_any().downcast_ref::<Int64Array>().unwrap();
        self.ids.extend(ids.iter().flatten());
        Ok(())
    }

    fn fork(&self) -> Self {
        SeenIds {
            fail_at: self.fail_at,
            ..SeenIds::default()
        }
    }

    fn merge(&mut self, other: Self) -> sluice_lake::Result<()> {
        self.ids.extend(other.ids);
        self.batches += other.batches;
        Ok(())
    }
}

/// Copy mode, one file at a time, with these write options.
pub fn copy_options(write: WriteOptions) -> IngestOptions {
    IngestOptions {
        write,
        parallelism: 1,
        ..IngestOptions::default()
    }
}

/// The manifests of the snapshot `reference` (a branch or tag) points at.
pub async fn manifests_of(
    lake: &Lake,
    table: &TableName,
    reference: &str,
) -> Vec<iceberg::spec::ManifestFile> {
    let loaded = lake.load_table(table).await.unwrap();
    let id = ref_state(lake, table).await[reference];
    let list = loaded
        .metadata()
        .snapshot_by_id(id)
        .unwrap()
        .manifest_list();
    let bytes = loaded
        .iceberg_table()
        .file_io()
        .new_input(list)
        .unwrap()
        .read()
        .await
        .unwrap();
    iceberg::spec::ManifestList::parse_with_version(&bytes, loaded.metadata().format_version())
        .unwrap()
        .entries()
        .to_vec()
}

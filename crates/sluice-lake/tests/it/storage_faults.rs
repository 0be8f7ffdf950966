//! Transient storage faults on reads and listings: a lake whose every store fails a share of
//! its GET, HEAD and LIST requests still creates, writes, publishes and reads a table.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use sluice_lake::{
    AppendRequest, Lake, LakeConfig, RefMove, RefName, RefSpec, WriteOptions,
    storage::{ObjectStores, ReadRetry},
};

use crate::common::*;

/// Local files, but every `every`-th read fails with a server error and every `every`-th
/// listing is cut after its first entry.
#[derive(Debug)]
struct FlakyFiles {
    inner: LocalFileSystem,
    every: usize,
    reads: AtomicUsize,
    lists: AtomicUsize,
    faults: AtomicUsize,
}

impl fmt::Display for FlakyFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlakyFiles")
    }
}

fn fault(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: format!("injected: {what}").into(),
    }
}

#[async_trait]
impl ObjectStore for FlakyFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if self
            .reads
            .fetch_add(1, Ordering::SeqCst)
            .is_multiple_of(self.every)
        {
            self.faults.fetch_add(1, Ordering::SeqCst);
            return Err(fault("503 on GET"));
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let listing = self.inner.list(prefix);
        if self
            .lists
            .fetch_add(1, Ordering::SeqCst)
            .is_multiple_of(self.every)
        {
            self.faults.fetch_add(1, Ordering::SeqCst);
            return listing
                .take(1)
                .chain(futures::stream::once(async {
                    Err(fault("Error getting list response body"))
                }))
                .boxed();
        }
        listing
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        if self
            .lists
            .fetch_add(1, Ordering::SeqCst)
            .is_multiple_of(self.every)
        {
            self.faults.fetch_add(1, Ordering::SeqCst);
            return Err(fault("reset during LIST"));
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_lake_on_flaky_storage_writes_publishes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let config = LakeConfig::embedded(dir.path()).unwrap();
    let flaky = Arc::new(FlakyFiles {
        inner: LocalFileSystem::new(),
        every: 3,
        reads: AtomicUsize::new(0),
        lists: AtomicUsize::new(0),
        faults: AtomicUsize::new(0),
    });
    let stores = ObjectStores::new(config.storage.clone()).with_read_retry(
        ReadRetry::default()
            .with_base_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_millis(5)),
    );
    stores.register("file:///", flaky.clone()).unwrap();
    let lake = Lake::connect_with(&config, stores).await.unwrap();
    let table: sluice_lake::TableName = "ns.events".parse().unwrap();
    lake.create_table(&table, &schema()).await.unwrap();

    for round in 0..3i64 {
        let loaded = lake.load_table(&table).await.unwrap();
        let mut writer = lake
            .table_writer(&loaded, &WriteOptions::default())
            .await
            .unwrap();
        writer
            .write(&batch(round * 10..round * 10 + 10), "a")
            .await
            .unwrap();
        let files = writer.finish().await.unwrap();
        let branch = RefName::new(format!("audit/{round}")).unwrap();
        lake.commit_append(
            &table,
            AppendRequest {
                branch: branch.clone(),
                create_from: Some(RefSpec::main()),
                files,
                properties: Default::default(),
            },
        )
        .await
        .unwrap();
        lake.publish(&table, RefMove::into_main(&branch), Default::default())
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&lake, &table, "main").await,
        (0..30).collect::<Vec<_>>()
    );
    // Listing the table's files goes through the flaky store too.
    let (store, prefix) = lake
        .stores()
        .resolve(&format!(
            "file://{}/warehouse/ns/events/data",
            dir.path().canonicalize().unwrap().display()
        ))
        .unwrap();
    let listed: Vec<ObjectMeta> = futures::TryStreamExt::try_collect(store.list(Some(&prefix)))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(
        flaky.faults.load(Ordering::SeqCst) >= 5,
        "faults were injected: {}",
        flaky.faults.load(Ordering::SeqCst)
    );
}

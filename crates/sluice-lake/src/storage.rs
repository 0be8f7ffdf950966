//! One storage stack for everything sluice touches: Iceberg metadata and data files, source
//! files and (in sluice-txn) the run journal all go through [`object_store`].
//!
//! [`StorageOptions`] is the user-facing configuration. [`ObjectStores`] turns a URL
//! (`file:///…`, `s3://bucket/…`, `memory://…`, or a plain absolute path) into an
//! `(Arc<dyn ObjectStore>, Path)` pair and caches one client per bucket.
//! An `ObjectStoreStorageFactory` plugs the same registry into iceberg's `FileIO`.

pub use crate::retrying_store::{ReadRetry, RetryingStore};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, S3_ACCESS_KEY_ID, S3_ENDPOINT,
    S3_PATH_STYLE_ACCESS, S3_REGION, S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN, Storage,
    StorageConfig, StorageFactory,
};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::{Error, Result};

/// A secret string (an S3 secret key, a catalog token). Its `Debug` and `Display` never show
/// the value, so it cannot leak through logs, errors or reports by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// S3-compatible storage settings. Unset fields fall back to the usual `AWS_*` environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000` for MinIO; unset for AWS.
    pub endpoint: Option<String>,
    /// Region, e.g. `us-east-1`.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
    /// Session token for temporary credentials.
    pub session_token: Option<Secret>,
    /// Use path-style requests (`http://host/bucket/key`), as MinIO and most local servers need.
    pub path_style: Option<bool>,
    /// Allow plain `http://` endpoints.
    pub allow_http: Option<bool>,
}

/// Storage configuration shared by the Iceberg I/O, source listing and the run journal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageOptions {
    /// Settings for `s3://` URLs.
    pub s3: S3Options,
}

impl StorageOptions {
    /// Fills unset S3 settings from Iceberg FileIO properties (`s3.endpoint`, …), e.g. those a
    /// REST catalog hands out with a table. Explicit settings win.
    fn merged_with_iceberg_props(&self, props: &HashMap<String, String>) -> StorageOptions {
        let mut merged = self.clone();
        let s3 = &mut merged.s3;
        if s3.endpoint.is_none() {
            s3.endpoint = props.get(S3_ENDPOINT).cloned();
        }
        if s3.region.is_none() {
            s3.region = props.get(S3_REGION).cloned();
        }
        if s3.access_key_id.is_none() {
            s3.access_key_id = props.get(S3_ACCESS_KEY_ID).cloned();
        }
        if s3.secret_access_key.is_none() {
            s3.secret_access_key = props.get(S3_SECRET_ACCESS_KEY).map(Secret::new);
        }
        if s3.session_token.is_none() {
            s3.session_token = props.get(S3_SESSION_TOKEN).map(Secret::new);
        }
        if s3.path_style.is_none() {
            s3.path_style = props
                .get(S3_PATH_STYLE_ACCESS)
                .map(|v| v.eq_ignore_ascii_case("true"));
        }
        merged
    }

    /// The Iceberg FileIO properties that describe these options (given to catalogs so that
    /// the tables they load read through the same settings).
    pub fn to_iceberg_props(&self) -> HashMap<String, String> {
        let mut props = HashMap::new();
        let s3 = &self.s3;
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                props.insert(k.to_string(), v.to_string());
            }
        };
        put(S3_ENDPOINT, s3.endpoint.as_deref());
        put(S3_REGION, s3.region.as_deref());
        put(S3_ACCESS_KEY_ID, s3.access_key_id.as_deref());
        put(
            S3_SECRET_ACCESS_KEY,
            s3.secret_access_key.as_ref().map(Secret::expose),
        );
        put(
            S3_SESSION_TOKEN,
            s3.session_token.as_ref().map(Secret::expose),
        );
        put(
            S3_PATH_STYLE_ACCESS,
            s3.path_style.map(|b| if b { "true" } else { "false" }),
        );
        props
    }
}

/// Resolves URLs to object stores, one cached client per scheme and bucket.
///
/// Cloning is cheap and clones share the cache, including the in-memory store behind
/// `memory://` URLs (so tests can write through one clone and read through another).
///
/// Every store it hands out retries reads and listings ([`RetryingStore`], policy
/// [`ObjectStores::with_read_retry`]).
#[derive(Clone, Default)]
pub struct ObjectStores {
    options: StorageOptions,
    read_retry: ReadRetry,
    cache: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl fmt::Debug for ObjectStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStores")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ObjectStores {
    /// A registry with the given options.
    pub fn new(options: StorageOptions) -> Self {
        Self {
            options,
            read_retry: ReadRetry::default(),
            cache: Arc::default(),
        }
    }

    /// Sets how the stores this registry hands out retry reads and listings. Set it before
    /// the first lookup: stores already cached keep the policy they were built with.
    pub fn with_read_retry(mut self, policy: ReadRetry) -> Self {
        self.read_retry = policy;
        self
    }

    /// How reads and listings are retried.
    pub fn read_retry(&self) -> ReadRetry {
        self.read_retry
    }

    /// The options this registry builds clients from.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Registers a store for a URL prefix's scheme and authority (e.g. a store that injects
    /// faults in tests). Later lookups of that scheme and bucket use it, wrapped like every
    /// other store so that its reads and listings are retried.
    pub fn register(&self, url: &str, store: Arc<dyn ObjectStore>) -> Result<()> {
        let url = parse_location(url)?;
        let key = cache_key(&url);
        let store: Arc<dyn ObjectStore> = Arc::new(RetryingStore::new(store, self.read_retry));
        self.lock_cache().insert(key, store);
        Ok(())
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn ObjectStore>>> {
        // A poisoned lock only means another thread panicked while inserting; the map is
        // still a valid cache.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store and the object path for a location (`file:///…`, `s3://bucket/key`,
    /// `memory://…` or an absolute local path).
    pub fn resolve(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let url = parse_location(location)?;
        let key = cache_key(&url);
        let path = Path::from_url_path(url.path()).map_err(|e| Error::InvalidLocation {
            location: location.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(store) = self.lock_cache().get(&key) {
            return Ok((store.clone(), path));
        }
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            // Deleting a run's files also removes the directories they leave empty.
            "file" => Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)),
            "memory" => Arc::new(InMemory::new()),
            "s3" | "s3a" | "s3n" => {
                let bucket = url.host_str().ok_or_else(|| Error::InvalidLocation {
                    location: location.to_string(),
                    reason: "an s3 URL needs a bucket: s3://bucket/key".to_string(),
                })?;
                Arc::new(self.build_s3(bucket).map_err(|e| Error::InvalidLocation {
                    location: location.to_string(),
                    reason: e.to_string(),
                })?)
            }
            other => {
                return Err(Error::InvalidLocation {
                    location: location.to_string(),
                    reason: format!(
                        "unsupported scheme `{other}`; use file://, s3:// or memory://"
                    ),
                });
            }
        };
        let store: Arc<dyn ObjectStore> = Arc::new(RetryingStore::new(store, self.read_retry));
        let store = self.lock_cache().entry(key).or_insert(store).clone();
        Ok((store, path))
    }

    fn build_s3(&self, bucket: &str) -> object_store::Result<object_store::aws::AmazonS3> {
        let s3 = &self.options.s3;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
        }
        if let Some(allow) = s3.allow_http {
            builder = builder.with_allow_http(allow);
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &s3.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        if let Some(token) = &s3.session_token {
            builder = builder.with_token(token.expose());
        }
        if let Some(path_style) = s3.path_style {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
        builder.build()
    }
}

/// Parses a location; a plain absolute path is a local file.
pub fn parse_location(location: &str) -> Result<Url> {
    if location.starts_with('/') {
        return Url::from_file_path(location).map_err(|()| Error::InvalidLocation {
            location: location.to_string(),
            reason: "not a valid absolute path".to_string(),
        });
    }
    Url::parse(location).map_err(|e| Error::InvalidLocation {
        location: location.to_string(),
        reason: format!("{e}; expected a URL such as file:///data/raw or s3://bucket/prefix"),
    })
}

fn cache_key(url: &Url) -> String {
    // `s3a://` and `s3n://` (Hadoop's names) reach the same buckets as `s3://`.
    let scheme = match url.scheme() {
        "s3a" | "s3n" => "s3",
        other => other,
    };
    format!("{scheme}://{}", url.host_str().unwrap_or_default())
}

/// A location in the form sluice writes into table metadata: `s3a://` and `s3n://` become
/// `s3://`, and trailing slashes are dropped (`s3://warehouse/` becomes `s3://warehouse`),
/// so that `<location>/<namespace>/<table>` never holds an empty path segment.
pub fn normalize_location(location: &str) -> String {
    let trimmed = location.trim();
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "s3a" | "s3n" => "s3".to_string(),
                _ => scheme.to_string(),
            };
            (Some(scheme), rest)
        }
        None => (None, trimmed),
    };
    let rest = match rest.trim_end_matches('/') {
        // A bare `/` is the root directory: keep it.
        "" if scheme.is_none() && rest.starts_with('/') => "/",
        kept => kept,
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_string(),
    }
}

/// iceberg `StorageFactory` over [`ObjectStores`]. Every Iceberg read and write sluice makes
/// goes through it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ObjectStoreStorageFactory {
    options: StorageOptions,
    #[serde(skip)]
    stores: Option<ObjectStores>,
}

impl ObjectStoreStorageFactory {
    /// A factory whose storages share `stores` (and its cache).
    pub fn new(stores: ObjectStores) -> Self {
        Self {
            options: stores.options().clone(),
            stores: Some(stores),
        }
    }
}

#[typetag::serde(name = "sluice-object-store")]
impl StorageFactory for ObjectStoreStorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        let merged = self.options.merged_with_iceberg_props(config.props());
        let stores = match &self.stores {
            // Settings handed out by the catalog fill gaps only; with nothing new the shared
            // registry (and its cached clients) is reused.
            Some(stores) if merged == self.options => stores.clone(),
            Some(stores) => ObjectStores::new(merged.clone()).with_read_retry(stores.read_retry()),
            None => ObjectStores::new(merged.clone()),
        };
        Ok(Arc::new(ObjectStoreStorage {
            options: merged,
            stores: Some(stores),
        }))
    }
}

/// iceberg `Storage` implemented over [`ObjectStores`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ObjectStoreStorage {
    options: StorageOptions,
    #[serde(skip)]
    stores: Option<ObjectStores>,
}

impl ObjectStoreStorage {
    fn resolve(&self, location: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, Path)> {
        let stores = match &self.stores {
            Some(s) => s.clone(),
            None => ObjectStores::new(self.options.clone()),
        };
        stores.resolve(location).map_err(to_iceberg_error)
    }
}

fn to_iceberg_error(e: impl std::error::Error + Send + Sync + 'static) -> iceberg::Error {
    let message = e.to_string();
    iceberg::Error::new(iceberg::ErrorKind::Unexpected, message).with_source(e)
}

fn os_error(location: &str, e: object_store::Error) -> iceberg::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => iceberg::ErrorKind::DataInvalid,
        _ => iceberg::ErrorKind::Unexpected,
    };
    iceberg::Error::new(kind, format!("storage error at {location}: {e}")).with_source(e)
}

#[async_trait]
#[typetag::serde(name = "sluice-object-store")]
impl Storage for ObjectStoreStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, p) = self.resolve(path)?;
        match store.head(&p).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(os_error(path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, p) = self.resolve(path)?;
        let meta = store.head(&p).await.map_err(|e| os_error(path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, p) = self.resolve(path)?;
        let result = store.get(&p).await.map_err(|e| os_error(path, e))?;
        result.bytes().await.map_err(|e| os_error(path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, p) = self.resolve(path)?;
        Ok(Box::new(ObjectRead {
            store,
            path: p,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, p) = self.resolve(path)?;
        store
            .put(&p, bs.into())
            .await
            .map_err(|e| os_error(path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, p) = self.resolve(path)?;
        Ok(Box::new(ObjectWrite {
            inner: Some(Upload::new(store, p)),
            location: path.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, p) = self.resolve(path)?;
        match store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_error(path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, p) = self.resolve(path)?;
        let locations = store.list(Some(&p)).map(|m| m.map(|m| m.location)).boxed();
        let mut deleted = store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_error(path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    path: Path,
    location: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store
            .get_range(&self.path, range)
            .await
            .map_err(|e| os_error(&self.location, e))
    }
}

/// Bytes an [`Upload`] holds before it sends them as one part (or, for a smaller object, in
/// one request): the smallest part S3 takes, so that the parts in flight and the tail held
/// for the next part cost little memory.
const UPLOAD_CHUNK: usize = 5 * 1024 * 1024;

/// A streaming upload of one object in parts of [`UPLOAD_CHUNK`] bytes. Buffers handed to it
/// are sent without copying, except the tail that does not fill a part: that is copied, so
/// that a whole row group's allocation is not kept alive for a few bytes until the next part
/// fills (object_store's buffered writer holds on to what it was given).
pub(crate) struct Upload {
    writer: BufWriter,
    /// Bytes waiting in the writer for the next part.
    held: usize,
    /// Whether the writer has started sending parts.
    in_parts: bool,
}

impl Upload {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: Path) -> Self {
        Upload {
            writer: BufWriter::with_capacity(store, path, UPLOAD_CHUNK),
            held: 0,
            in_parts: false,
        }
    }

    /// Appends `bytes` to the object.
    pub(crate) async fn put(&mut self, mut bytes: Bytes) -> object_store::Result<()> {
        let total = self.held + bytes.len();
        // The writer switches to parts once it has a part's worth; from then on it holds what
        // does not fill the last part.
        self.in_parts = self.in_parts || total >= UPLOAD_CHUNK;
        self.held = if self.in_parts {
            total % UPLOAD_CHUNK
        } else {
            total
        };
        let tail = self.held.min(bytes.len());
        if self.in_parts && tail > 0 && tail < bytes.len() {
            let tail = bytes.split_off(bytes.len() - tail);
            self.writer.put(bytes).await?;
            self.writer.put(Bytes::copy_from_slice(&tail)).await
        } else {
            self.writer.put(bytes).await
        }
    }

    /// Sends what is held and completes the object.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        self.writer.shutdown().await
    }

    /// Gives the object up: parts already sent are removed.
    pub(crate) async fn abort(&mut self) -> object_store::Result<()> {
        self.writer.abort().await
    }
}

struct ObjectWrite {
    inner: Option<Upload>,
    location: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let writer = self.inner.as_mut().ok_or_else(|| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("write after close of {}", self.location),
            )
        })?;
        writer
            .put(bs)
            .await
            .map_err(|e| os_error(&self.location, e))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let mut writer = self.inner.take().ok_or_else(|| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("{} closed twice", self.location),
            )
        })?;
        writer.finish().await.map_err(|e| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("cannot finish writing {}: {e}", self.location),
            )
            .with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_round_trip_through_iceberg_file_io() {
        let dir = tempfile::tempdir().unwrap();
        let stores = ObjectStores::new(StorageOptions::default());
        let io = iceberg::io::FileIOBuilder::new(Arc::new(ObjectStoreStorageFactory::new(
            stores.clone(),
        )))
        .build();
        let location = format!("file://{}/a/b.bin", dir.path().display());
        let out = io.new_output(&location).unwrap();
        let mut w = out.writer().await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        w.close().await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a/b.bin")).unwrap(),
            b"hello world"
        );
        let input = io.new_input(&location).unwrap();
        assert_eq!(input.read().await.unwrap().as_ref(), b"hello world");
        let r = input.reader().await.unwrap();
        assert_eq!(r.read(6..11).await.unwrap().as_ref(), b"world");
        assert!(io.exists(&location).await.unwrap());
        io.delete(&location).await.unwrap();
        assert!(!io.exists(&location).await.unwrap());
    }

    #[tokio::test]
    async fn uploads_let_go_of_the_buffers_they_sent() {
        // A local store writes parts as they come (the in-memory one keeps every part).
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let path = Path::from("t/data.parquet");
        let mib = 1 << 20;
        let buffer = |len: usize, seed: usize| -> Bytes {
            (0..len)
                .map(|i| ((i + seed) % 251) as u8)
                .collect::<Vec<u8>>()
                .into()
        };
        // With parts of 5 MiB: 3 + 8 + 2 MiB.
        let (a, b, c) = (buffer(3 * mib, 1), buffer(8 * mib, 2), buffer(2 * mib, 3));
        let mut upload = Upload::new(store.clone(), path.clone());
        upload.put(a.clone()).await.unwrap();
        upload.put(b.clone()).await.unwrap();
        // The first 10 MiB went out as two parts; the 1 MiB left of `b` is a copy.
        for _ in 0..500 {
            if a.is_unique() && b.is_unique() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(a.is_unique(), "the first buffer is still held");
        assert!(
            b.is_unique(),
            "the buffer whose tail waits for the next part is still held"
        );
        upload.put(c.clone()).await.unwrap();
        upload.finish().await.unwrap();
        let written = store.get(&path).await.unwrap().bytes().await.unwrap();
        let expected: Vec<u8> = [a, b, c].iter().flat_map(|x| x.iter().copied()).collect();
        assert_eq!(written.len(), expected.len());
        assert!(written == expected, "the object differs from what was put");

        // A small object is sent in one request, as it was given.
        let small = Path::from("t/small.json");
        let mut upload = Upload::new(store.clone(), small.clone());
        upload.put(Bytes::from_static(b"{\"a\"")).await.unwrap();
        upload.put(Bytes::from_static(b": 1}")).await.unwrap();
        upload.finish().await.unwrap();
        let written = store.get(&small).await.unwrap().bytes().await.unwrap();
        assert_eq!(written.as_ref(), b"{\"a\": 1}");
    }

    #[test]
    fn secrets_do_not_print() {
        let opts = S3Options {
            secret_access_key: Some(Secret::new("hunter2")),
            ..Default::default()
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }

    #[test]
    fn plain_paths_are_local_files_and_bad_schemes_are_named() {
        let stores = ObjectStores::default();
        let (_, p) = stores.resolve("/tmp/x/y.parquet").unwrap();
        assert_eq!(p.as_ref(), "tmp/x/y.parquet");
        let err = stores.resolve("ftp://host/x").unwrap_err().to_string();
        assert!(
            err.contains("ftp://host/x") && err.contains("unsupported scheme"),
            "{err}"
        );
    }

    #[test]
    fn locations_are_normalised() {
        for (given, expected) in [
            ("s3://warehouse/", "s3://warehouse"),
            ("s3://warehouse//", "s3://warehouse"),
            ("s3://warehouse/lake/", "s3://warehouse/lake"),
            ("s3a://warehouse/lake/", "s3://warehouse/lake"),
            ("S3N://warehouse", "s3://warehouse"),
            ("s3://warehouse", "s3://warehouse"),
            ("file:///data/warehouse/", "file:///data/warehouse"),
            ("/data/warehouse/", "/data/warehouse"),
            ("/", "/"),
            ("memory://lake/", "memory://lake"),
            (" gs://bucket/x/ ", "gs://bucket/x"),
        ] {
            assert_eq!(normalize_location(given), expected, "{given}");
        }
    }

    #[tokio::test]
    async fn hadoop_s3_schemes_share_the_s3_client_and_trailing_slashes_resolve() {
        let stores = ObjectStores::default();
        let (plain, path) = stores.resolve("s3://bucket/a/b/").unwrap();
        assert_eq!(path.as_ref(), "a/b");
        let (hadoop, _) = stores.resolve("s3a://bucket/a").unwrap();
        assert!(Arc::ptr_eq(&plain, &hadoop));
        let (native, _) = stores.resolve("s3n://bucket/a").unwrap();
        assert!(Arc::ptr_eq(&plain, &native));
    }
}

//! End-to-end test support for sluice: the backends the conformance suite runs against, and
//! small data helpers shared by its modules.
//!
//! A [`Backend`] is one place a lake can live:
//!
//! ```text
//!   Backend::embedded()      SQLite catalog file + local warehouse directory   (always there)
//!   Backend::rest_s3(test)   Iceberg REST catalog + S3 server                  (from SLUICE_TEST_*)
//!        │
//!        ├─ connect()            → a sluice_lake::Lake
//!        ├─ table("prefix")      → a table name no other test uses
//!        ├─ put_raw(lake, …)     → a source file in the raw area (file:// dir or s3://raw/…)
//!        └─ config()/raw_root()  → what a pipeline run needs to reach the same lake
//! ```
//!
//! [`conformance!`] turns one `async fn(Backend)` into a test per backend. The services are
//! read from the variables `cargo xtask services up` writes to `target/xtask/services.env`;
//! when they are absent a REST/S3 test prints a visible `SKIPPED:` line and passes, unless
//! `SLUICE_TEST_REQUIRE_SERVICES` is set (as `cargo xtask e2e` does), in which case it fails.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use sluice_tests::{Backend, batch};
//! use sluice_lake::RefName;
//!
//! let backend = Backend::embedded();
//! let lake = backend.connect().await;
//! let table = backend.table("doc");
//! lake.create_table(&table, &sluice_tests::schema()).await.unwrap();
//! lake.append_batches(&table, &RefName::main(), &[batch(0..3)], Default::default())
//!     .await
//!     .unwrap();
//! assert_eq!(sluice_tests::ids(&lake, &table, "main").await, vec![0, 1, 2]);
//! # }
//! ```
#![warn(missing_docs)]

pub mod fault_proxy;
pub mod table_files;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::{Array, Int64Array, RecordBatch};
use object_store::ObjectStoreExt;
use sluice_lake::{
    CatalogConfig, Lake, LakeConfig, RefSpec, ScanOptions, TableName,
    storage::{S3Options, Secret, StorageOptions},
};

/// When set (to anything), a missing service is a test failure instead of a skip.
pub const REQUIRE_SERVICES_VAR: &str = "SLUICE_TEST_REQUIRE_SERVICES";

/// The namespace every conformance table is created in.
pub const NAMESPACE: &str = "conformance";

/// Which catalog and storage a [`Backend`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite SQL catalog and a local warehouse directory.
    Embedded,
    /// An Iceberg REST catalog and an S3-compatible server.
    RestS3,
}

/// The endpoints and credentials of the test services, as `cargo xtask services up` exports them.
#[derive(Clone, Debug)]
pub struct ServiceEnv {
    /// `SLUICE_TEST_S3_ENDPOINT`, e.g. `http://127.0.0.1:9000`.
    pub s3_endpoint: String,
    /// `SLUICE_TEST_S3_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `SLUICE_TEST_S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `SLUICE_TEST_S3_REGION`.
    pub region: String,
    /// `SLUICE_TEST_S3_BUCKET`: the bucket the REST catalog puts tables in.
    pub warehouse_bucket: String,
    /// `SLUICE_TEST_RAW_BUCKET`: the bucket source files land in.
    pub raw_bucket: String,
    /// `SLUICE_TEST_REST_URI`, e.g. `http://127.0.0.1:8181`.
    pub rest_uri: String,
    /// `SLUICE_TEST_REST_WAREHOUSE`, e.g. `s3://warehouse/`.
    pub rest_warehouse: String,
    /// `SLUICE_TEST_PYTHON`: a python with pyiceberg, pyarrow and duckdb, if configured.
    pub python: Option<PathBuf>,
}

impl ServiceEnv {
    /// Reads the variables; `Err` lists the ones that are missing.
    pub fn from_env() -> Result<ServiceEnv, Vec<&'static str>> {
        let mut missing = Vec::new();
        let mut var = |name: &'static str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                missing.push(name);
                String::new()
            }
        };
        let env = ServiceEnv {
            s3_endpoint: var("SLUICE_TEST_S3_ENDPOINT"),
            access_key_id: var("SLUICE_TEST_S3_ACCESS_KEY_ID"),
            secret_access_key: Secret::new(var("SLUICE_TEST_S3_SECRET_ACCESS_KEY")),
            region: var("SLUICE_TEST_S3_REGION"),
            warehouse_bucket: var("SLUICE_TEST_S3_BUCKET"),
            raw_bucket: var("SLUICE_TEST_RAW_BUCKET"),
            rest_uri: var("SLUICE_TEST_REST_URI"),
            rest_warehouse: var("SLUICE_TEST_REST_WAREHOUSE"),
            python: std::env::var_os("SLUICE_TEST_PYTHON")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        };
        if missing.is_empty() {
            Ok(env)
        } else {
            Err(missing)
        }
    }

    /// The lake configuration that reaches the REST catalog and the S3 server.
    pub fn lake_config(&self) -> LakeConfig {
        LakeConfig {
            catalog: CatalogConfig::Rest {
                uri: self.rest_uri.clone(),
                warehouse: Some(self.rest_warehouse.clone()),
                prefix: None,
                token: None,
                credential: None,
                oauth2_server_uri: None,
                scope: None,
            },
            storage: StorageOptions {
                s3: S3Options {
                    endpoint: Some(self.s3_endpoint.clone()),
                    region: Some(self.region.clone()),
                    access_key_id: Some(self.access_key_id.clone()),
                    secret_access_key: Some(self.secret_access_key.clone()),
                    session_token: None,
                    path_style: Some(true),
                    allow_http: Some(true),
                },
            },
        }
    }

    /// pyiceberg `RestCatalog` properties for the same catalog and storage.
    pub fn pyiceberg_properties(&self) -> serde_json::Value {
        serde_json::json!({
            "uri": self.rest_uri,
            "warehouse": self.rest_warehouse,
            "s3.endpoint": self.s3_endpoint,
            "s3.access-key-id": self.access_key_id,
            "s3.secret-access-key": self.secret_access_key.expose(),
            "s3.region": self.region,
        })
    }
}

/// Reports a test that cannot run because the services are absent: a visible `SKIPPED:` line
/// (written past the test harness's output capture), or a panic when
/// [`REQUIRE_SERVICES_VAR`] is set.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os(REQUIRE_SERVICES_VAR).is_some() {
        panic!("{test}: {why}, but {REQUIRE_SERVICES_VAR} is set so services are required");
    }
    // Straight to the process's stderr: `eprintln!` would be swallowed for a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: {why} (run `cargo xtask e2e`, or `cargo xtask services up` and load target/xtask/services.env)"
    );
}

/// A place for a lake: catalog, warehouse and a raw area for source files, unique to one test.
pub struct Backend {
    kind: BackendKind,
    config: LakeConfig,
    raw_root: String,
    services: Option<ServiceEnv>,
    run: String,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("raw_root", &self.raw_root)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

impl Backend {
    /// The embedded backend: a SQLite catalog and a warehouse in a fresh temporary directory.
    pub fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let config = LakeConfig::embedded(dir.path().join("lake")).expect("embedded lake config");
        let raw = dir.path().join("raw");
        std::fs::create_dir_all(&raw).expect("cannot create the raw directory");
        let raw = raw
            .canonicalize()
            .expect("cannot resolve the raw directory");
        Backend {
            kind: BackendKind::Embedded,
            config,
            raw_root: format!("file://{}/", raw.display()),
            services: None,
            run: unique_suffix(),
            dir,
        }
    }

    /// The REST catalog + S3 backend, or `None` (after [`skip`]) when the services are not
    /// configured. `test` names the test in the skip message.
    pub fn rest_s3(test: &str) -> Option<Backend> {
        let services = match ServiceEnv::from_env() {
            Ok(s) => s,
            Err(missing) => {
                let unset = match missing.as_slice() {
                    [one] => format!("{one} is unset"),
                    [first, ..] => format!("{first} and {} more are unset", missing.len() - 1),
                    [] => unreachable!("from_env only fails with missing variables"),
                };
                skip(
                    test,
                    &format!("REST catalog and S3 server not configured ({unset})"),
                );
                return None;
            }
        };
        let run = unique_suffix();
        let raw_root = format!("s3://{}/{run}/", services.raw_bucket);
        Some(Backend {
            kind: BackendKind::RestS3,
            config: services.lake_config(),
            raw_root,
            services: Some(services),
            run,
            dir: tempfile::tempdir().expect("cannot create a temporary directory"),
        })
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The lake configuration (for a pipeline or a second process to reach the same lake).
    pub fn config(&self) -> &LakeConfig {
        &self.config
    }

    /// The services, for a REST/S3 backend.
    pub fn services(&self) -> Option<&ServiceEnv> {
        self.services.as_ref()
    }

    /// A local scratch directory that lives as long as the backend.
    pub fn local_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL prefix (ending in `/`) of this backend's raw area, unique to it.
    pub fn raw_root(&self) -> &str {
        &self.raw_root
    }

    /// The location of a raw file `name` (a relative path) in the raw area.
    pub fn raw_location(&self, name: &str) -> String {
        format!("{}{name}", self.raw_root)
    }

    /// Connects a new lake handle.
    pub async fn connect(&self) -> Lake {
        Lake::connect(&self.config)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the {:?} lake: {e}", self.kind))
    }

    /// A table name in [`NAMESPACE`] that no other test (or run) uses: `<prefix>_<random>`.
    pub fn table(&self, prefix: &str) -> TableName {
        TableName::new(NAMESPACE, format!("{prefix}_{}", unique_suffix()))
            .expect("a valid table name")
    }

    /// Writes a raw file through the lake's own object stores and returns its location.
    pub async fn put_raw(&self, lake: &Lake, name: &str, bytes: Vec<u8>) -> String {
        let location = self.raw_location(name);
        let (store, path) = lake
            .stores()
            .resolve(&location)
            .unwrap_or_else(|e| panic!("cannot resolve {location}: {e}"));
        store
            .put(&path, bytes.into())
            .await
            .unwrap_or_else(|e| panic!("cannot write {location}: {e}"));
        location
    }
}

/// Runs one `async fn(Backend)` test body against every backend: for each name, a module with
/// the tests `embedded` and `rest_s3`.
///
/// ```ignore
/// async fn branches(backend: Backend) { /* … */ }
/// sluice_tests::conformance!(branches);
/// // → tests `branches::embedded` and `branches::rest_s3`
/// ```
#[macro_export]
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn embedded() {
                    super::$name($crate::Backend::embedded()).await;
                }

                #[tokio::test]
                async fn rest_s3() {
                    if let Some(backend) = $crate::Backend::rest_s3(module_path!()) {
                        super::$name(backend).await;
                    }
                }
            }
        )+
    };
}

/// Runs a python script with arguments and parses the JSON it prints on stdout.
pub fn run_python(python: &Path, script: &str, args: &[String]) -> serde_json::Value {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "python failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("python printed no JSON on its last line ({e}):\n{stdout}"))
}

// ------------------------------------------------------------------ data

/// The conformance tables' schema and rows (`id` long, `name` string, `amount` double), and
/// parquet files as other tools write them: the shared test kit's, here so that tests need
/// only this crate.
pub use sluice_testkit::{
    batch, expected_sum, noisy_amount, noisy_batch, parquet_bytes, schema, sum_column,
    zstd_parquet_bytes,
};

/// Reads a ref (`main`, a branch, a tag, a snapshot id, `ref@time`) into memory.
pub async fn read(lake: &Lake, table: &TableName, spec: &str) -> Vec<RecordBatch> {
    let parsed = RefSpec::parse(spec).unwrap_or_else(|e| panic!("bad ref {spec}: {e}"));
    lake.scan_to_vec(table, &parsed, &ScanOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot read {table}@{spec}: {e}"))
}

/// The sorted values of the `id` column at a ref.
pub async fn ids(lake: &Lake, table: &TableName, spec: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in read(lake, table, spec).await {
        let col = b
            .column_by_name("id")
            .expect("an id column")
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id is a long column");
        out.extend(col.iter().flatten());
    }
    out.sort_unstable();
    out
}

/// Every ref of a table and the snapshot it points at.
pub async fn ref_state(lake: &Lake, table: &TableName) -> HashMap<String, i64> {
    lake.list_refs(table)
        .await
        .unwrap_or_else(|e| panic!("cannot list the refs of {table}: {e}"))
        .into_iter()
        .map(|r| (r.name, r.snapshot_id))
        .collect()
}

/// Writes `bytes` to `location` (e.g. `s3://raw/prefix/file.parquet`) through the lake's object
/// stores.
pub async fn put_location(lake: &Lake, location: &str, bytes: Vec<u8>) {
    let (store, path) = lake
        .stores()
        .resolve(location)
        .unwrap_or_else(|e| panic!("cannot resolve {location}: {e}"));
    store
        .put(&path, bytes.into())
        .await
        .unwrap_or_else(|e| panic!("cannot write {location}: {e}"));
}

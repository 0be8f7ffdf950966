//! [`Lake`]: a connected catalog plus storage, and every operation on tables and refs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_schema::Schema as ArrowSchema;
use iceberg::{NamespaceIdent, TableCreation};
use serde::{Deserialize, Serialize};

use crate::catalog::{Backend, CatalogConfig, LoadedTable};
use crate::commit::{CommitHook, CommitRetry};
use crate::error::{Error, Result};
use crate::schema::{NAME_MAPPING_PROPERTY, iceberg_schema_from_arrow, name_mapping_json};
use crate::storage::{ObjectStores, StorageOptions};
use crate::table_name::TableName;

/// How to connect: a catalog and the storage settings for data and metadata files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// The catalog.
    pub catalog: CatalogConfig,
    /// Storage settings (S3 endpoint, credentials, …).
    #[serde(default)]
    pub storage: StorageOptions,
}

impl LakeConfig {
    /// The embedded default: a SQLite catalog file `catalog.db` and a `warehouse/` directory
    /// under `dir`. Nothing to start.
    pub fn embedded(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir.join("warehouse")).map_err(|e| {
            Error::Config(format!(
                "cannot create the warehouse under {}: {e}",
                dir.display()
            ))
        })?;
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::Config(format!("cannot resolve {}: {e}", dir.display())))?;
        Ok(Self {
            catalog: CatalogConfig::Sql {
                uri: dir.join("catalog.db").display().to_string(),
                name: "default".to_string(),
                warehouse: format!("file://{}", dir.join("warehouse").display()),
            },
            storage: StorageOptions::default(),
        })
    }
}

/// A connected lakehouse: one catalog, one storage configuration.
///
/// All operations that change a table plan against freshly loaded metadata, send one atomic
/// commit with `assert-table-uuid` and `assert-ref-snapshot-id` requirements, and re-plan on
/// a conflict (see [`CommitRetry`]).
pub struct Lake {
    pub(crate) backend: Backend,
    pub(crate) stores: ObjectStores,
    pub(crate) retry: CommitRetry,
    pub(crate) hook: Option<Arc<dyn CommitHook>>,
    pub(crate) commits: AtomicU64,
    pub(crate) conflicts: AtomicU64,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("backend", &self.backend)
            .field("commits", &self.commits)
            .field("conflicts", &self.conflicts)
            .finish_non_exhaustive()
    }
}

impl Lake {
    /// Connects to the catalog described by `config`.
    pub async fn connect(config: &LakeConfig) -> Result<Lake> {
        Self::connect_with(config, ObjectStores::new(config.storage.clone())).await
    }

    /// Connects with a given store registry (e.g. one with a fault-injecting store registered).
    pub async fn connect_with(config: &LakeConfig, stores: ObjectStores) -> Result<Lake> {
        let backend = Backend::connect(&config.catalog, &stores).await?;
        Ok(Lake {
            backend,
            stores,
            retry: CommitRetry::default(),
            hook: None,
            commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        })
    }

    /// Replaces the commit retry policy.
    pub fn with_commit_retry(mut self, retry: CommitRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Installs a hook called before each catalog commit.
    pub fn with_commit_hook(mut self, hook: Arc<dyn CommitHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The object stores (for listing and reading source files with the same settings).
    pub fn stores(&self) -> &ObjectStores {
        &self.stores
    }

    /// Catalog commits this handle has made successfully.
    pub fn commits_made(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Catalog commits this handle sent that were refused because another writer had moved
    /// the table (each was planned again on fresh metadata).
    pub fn commit_conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- tables

    /// Creates a table with a schema derived from an Arrow schema (field ids assigned from 1),
    /// creating the namespace if needed. The table gets a name mapping so that files without
    /// field ids (registered in place) read correctly in every engine.
    pub async fn create_table(
        &self,
        name: &TableName,
        schema: &ArrowSchema,
    ) -> Result<LoadedTable> {
        self.create_partitioned_table(name, schema, "").await
    }

    /// Like [`Lake::create_table`], partitioned by `partition_by` in the syntax of
    /// [`crate::partition::parse_partition_by`] (`day(ts), bucket(16, user_id)`; empty for an
    /// unpartitioned table). A term that does not parse or does not fit the schema is
    /// [`Error::InvalidPartitionSpec`], and nothing is created.
    pub async fn create_partitioned_table(
        &self,
        name: &TableName,
        schema: &ArrowSchema,
        partition_by: &str,
    ) -> Result<LoadedTable> {
        let schema = iceberg_schema_from_arrow(schema)?;
        let terms = crate::partition::parse_partition_by(partition_by)?;
        let spec = crate::partition::unbound_spec(partition_by, &terms, &schema)?;
        let mapping = name_mapping_json(&schema, None)?;
        let creation = TableCreation::builder()
            .name(name.table().to_string())
            .schema(schema)
            .partition_spec(spec)
            .properties([
                (NAME_MAPPING_PROPERTY.to_string(), mapping),
                // Small commits every few minutes: keep few manifests for every reader.
                (
                    crate::manifest_merge::MIN_COUNT_TO_MERGE_PROPERTY.to_string(),
                    crate::manifest_merge::CREATED_MIN_COUNT_TO_MERGE.to_string(),
                ),
            ])
            .build();
        self.backend.create_table(name, creation).await
    }

    /// Loads a table.
    pub async fn load_table(&self, name: &TableName) -> Result<LoadedTable> {
        self.backend.load_table(name).await
    }

    /// Whether a table exists.
    pub async fn table_exists(&self, name: &TableName) -> Result<bool> {
        self.backend.table_exists(name).await
    }

    /// Tables of a namespace (`a` or `a.b`) and of the namespaces nested in it; every table if
    /// `None`. A namespace that does not exist is [`Error::NamespaceNotFound`].
    pub async fn list_tables(&self, namespace: Option<&str>) -> Result<Vec<TableName>> {
        let mut pending = match namespace {
            Some(ns) => {
                let ident = NamespaceIdent::from_vec(ns.split('.').map(str::to_string).collect())?;
                if !self.backend.namespace_exists(&ident).await? {
                    return Err(Error::NamespaceNotFound {
                        namespace: ns.to_string(),
                    });
                }
                vec![ident]
            }
            None => self.backend.list_namespaces(None).await?,
        };
        // Nested namespaces (`a.b.c`) hold tables too.
        let mut tables = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(ns) = pending.pop() {
            if !seen.insert(ns.clone()) {
                continue;
            }
            tables.extend(self.backend.list_tables(&ns).await?);
            pending.extend(self.backend.list_namespaces(Some(&ns)).await?);
        }
        tables.sort();
        tables.dedup();
        Ok(tables)
    }

    /// Drops a table from the catalog (its files stay where they are).
    pub async fn drop_table(&self, name: &TableName) -> Result<()> {
        self.backend.drop_table(name).await
    }
}

//! Catalog backends and the commit path.
//!
//! Tables are created, loaded, listed and dropped through the catalogs of the iceberg crates
//! (`iceberg-catalog-sql`, `iceberg-catalog-rest`). Every *change* to a table is sent by sluice
//! itself as `(requirements, updates)`:
//!
//! * SQL catalog: the updates are applied to the current metadata, a new metadata file is
//!   written, and the catalog row moves with a compare-and-swap `UPDATE … WHERE
//!   metadata_location = <the location we read>` on the `iceberg_tables` schema shared with
//!   pyiceberg's and Java's JDBC catalogs.
//! * REST catalog: a `CommitTableRequest` is POSTed to the table's endpoint; the server checks
//!   the requirements atomically.
//!
//! Either way a lost race is an [`Error::CommitConflict`], which the operations of
//! [`crate::Lake`] retry on fresh metadata.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{
    Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableRequirement, TableUpdate,
};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

mod rest;
mod sql;

use rest::RestCommits;
use sql::{commit_sql, current_metadata_location, moved_lake, sql_error, sqlite_path};

use crate::error::{Error, Result};
use crate::storage::{ObjectStoreStorageFactory, ObjectStores, Secret, normalize_location};
use crate::table_name::TableName;

/// Which catalog to talk to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CatalogConfig {
    /// The SQL catalog on a SQLite file (the embedded default; nothing to start).
    Sql {
        /// Path of the SQLite database file (created if missing), or a `sqlite:` URI.
        uri: String,
        /// Catalog name stored in the `catalog_name` column (pyiceberg's default is `default`).
        #[serde(default = "default_catalog_name")]
        name: String,
        /// Warehouse location where new tables are created, e.g. `file:///data/warehouse`.
        warehouse: String,
    },
    /// Any Iceberg REST catalog.
    Rest {
        /// Base URI, e.g. `http://127.0.0.1:8181`.
        uri: String,
        /// Warehouse identifier or location, if the catalog needs one.
        #[serde(default)]
        warehouse: Option<String>,
        /// URL prefix, when the catalog does not announce it in `/v1/config`.
        #[serde(default)]
        prefix: Option<String>,
        /// A bearer token.
        #[serde(default)]
        token: Option<Secret>,
        /// OAuth2 client credentials as `client_id:client_secret`.
        #[serde(default)]
        credential: Option<Secret>,
        /// OAuth2 token endpoint (default: the catalog's `/v1/oauth/tokens`).
        #[serde(default)]
        oauth2_server_uri: Option<String>,
        /// OAuth2 scope (default `catalog`).
        #[serde(default)]
        scope: Option<String>,
    },
}

fn default_catalog_name() -> String {
    "default".to_string()
}

/// A table as loaded: its metadata and where that metadata lives.
#[derive(Clone, Debug)]
pub struct LoadedTable {
    pub(crate) name: TableName,
    pub(crate) table: Table,
    /// The branches and tags, read out of the metadata once (see [`LoadedTable::refs`]).
    pub(crate) refs:
        std::sync::OnceLock<std::collections::HashMap<String, iceberg::spec::SnapshotReference>>,
}

impl LoadedTable {
    /// The table's name.
    pub fn name(&self) -> &TableName {
        &self.name
    }

    /// The table's current metadata.
    pub fn metadata(&self) -> &TableMetadata {
        self.table.metadata()
    }

    /// Every branch and tag of the table. The iceberg crate does not expose its ref map, so
    /// it is read back from the metadata's serialised form: once per loaded table, since that
    /// form grows with the table's history.
    pub(crate) fn refs(
        &self,
    ) -> &std::collections::HashMap<String, iceberg::spec::SnapshotReference> {
        self.refs
            .get_or_init(|| crate::refs::all(self.table.metadata()))
    }

    /// The location of the metadata file this handle was loaded from.
    pub fn metadata_location(&self) -> Option<&str> {
        self.table.metadata_location()
    }

    /// The snapshot `spec` names in this table (`None`: `main` of a table with no snapshot
    /// yet); a ref that does not exist is [`crate::Error::RefNotFound`].
    pub fn resolve(&self, spec: &crate::RefSpec) -> crate::Result<Option<i64>> {
        crate::refs::resolve(&self.name.to_string(), self.table.metadata(), spec)
    }

    /// Whether the table has a branch or tag of that name.
    pub fn has_ref(&self, name: &str) -> bool {
        self.table.metadata().snapshot_for_ref(name).is_some()
    }

    /// The iceberg `Table`, for reading with iceberg's own scan API.
    pub fn iceberg_table(&self) -> &Table {
        &self.table
    }

    pub(crate) fn file_io(&self) -> &FileIO {
        self.table.file_io()
    }

    /// The same table as of an earlier metadata file (read only).
    pub(crate) async fn at_metadata(&self, location: &str) -> crate::Result<LoadedTable> {
        let metadata = TableMetadata::read_from(self.file_io(), location).await?;
        let table = Table::builder()
            .metadata(metadata)
            .metadata_location(location)
            .identifier(self.table.identifier().clone())
            .file_io(self.file_io().clone())
            .readonly(true)
            .runtime(iceberg::Runtime::try_current()?)
            .build()?;
        Ok(LoadedTable {
            name: self.name.clone(),
            table,
            refs: std::sync::OnceLock::new(),
        })
    }
}

pub(crate) enum Backend {
    Sql {
        catalog: SqlCatalog,
        pool: SqlitePool,
        name: String,
        warehouse: String,
        /// Tables as last loaded or committed, keyed by `namespace.table`. A load asks the
        /// database for the current metadata location and reuses the parsed metadata when it
        /// is the same file (metadata files are never rewritten), so a table's growing
        /// metadata is parsed once per change instead of on every load.
        loaded: Arc<std::sync::Mutex<HashMap<String, LoadedTable>>>,
    },
    Rest {
        catalog: Box<RestCatalog>,
        commits: RestCommits,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sql { name, .. } => f.debug_struct("Sql").field("name", name).finish(),
            Backend::Rest { commits, .. } => {
                f.debug_struct("Rest").field("uri", &commits.uri).finish()
            }
        }
    }
}

impl Backend {
    pub(crate) async fn connect(config: &CatalogConfig, stores: &ObjectStores) -> Result<Backend> {
        let factory = Arc::new(ObjectStoreStorageFactory::new(stores.clone()));
        let io_props = stores.options().to_iceberg_props();
        match config {
            CatalogConfig::Sql {
                uri,
                name,
                warehouse,
            } => {
                let path = sqlite_path(uri);
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Config(format!(
                            "cannot create the directory of the catalog database {path}: {e}"
                        ))
                    })?;
                }
                // Our own pool creates the file and runs the compare-and-swap commits; WAL and a
                // busy timeout let several processes share the catalog file.
                let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
                    .map_err(|e| Error::Config(format!("bad SQLite catalog uri {uri}: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(std::time::Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .map_err(|e| sql_error(None, e))?;
                let mut props = io_props;
                props.insert("uri".to_string(), format!("sqlite://{path}"));
                // The catalog joins `<warehouse>/<namespace>/<table>`: a trailing slash
                // would put an empty segment into every table location.
                props.insert("warehouse".to_string(), normalize_location(warehouse));
                let catalog = SqlCatalogBuilder::default()
                    .with_storage_factory(factory)
                    .load(name.clone(), props)
                    .await
                    .map_err(|e| catalog_error(None, e))?;
                Ok(Backend::Sql {
                    catalog,
                    pool,
                    name: name.clone(),
                    warehouse: warehouse.clone(),
                    loaded: Arc::default(),
                })
            }
            CatalogConfig::Rest {
                uri,
                warehouse,
                prefix,
                token,
                credential,
                oauth2_server_uri,
                scope,
            } => {
                let mut props = io_props;
                props.insert("uri".to_string(), uri.clone());
                let mut put = |k: &str, v: Option<&str>| {
                    if let Some(v) = v {
                        props.insert(k.to_string(), v.to_string());
                    }
                };
                put("warehouse", warehouse.as_deref());
                put("prefix", prefix.as_deref());
                put("token", token.as_ref().map(Secret::expose));
                put("credential", credential.as_ref().map(Secret::expose));
                put("oauth2-server-uri", oauth2_server_uri.as_deref());
                put("scope", scope.as_deref());
                let catalog = RestCatalogBuilder::default()
                    .with_storage_factory(factory)
                    .load("rest", props)
                    .await
                    .map_err(|e| catalog_error(None, e))?;
                let commits = RestCommits::connect(config).await?;
                Ok(Backend::Rest {
                    catalog: Box::new(catalog),
                    commits,
                })
            }
        }
    }

    fn catalog(&self) -> &dyn Catalog {
        match self {
            Backend::Sql { catalog, .. } => catalog,
            Backend::Rest { catalog, .. } => catalog.as_ref(),
        }
    }

    /// Creates a namespace and each namespace it is nested in (`a`, `a.b` for `a.b.c`), so
    /// that listing from the top finds every table.
    pub(crate) async fn ensure_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let levels: Vec<String> = namespace.iter().cloned().collect();
        for depth in 1..=levels.len() {
            let ident = NamespaceIdent::from_vec(levels[..depth].to_vec())?;
            self.ensure_one_namespace(&ident).await?;
        }
        Ok(())
    }

    async fn ensure_one_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let catalog = self.catalog();
        if catalog
            .namespace_exists(namespace)
            .await
            .map_err(|e| catalog_error(None, e))?
        {
            return Ok(());
        }
        match catalog.create_namespace(namespace, HashMap::new()).await {
            Ok(_) => Ok(()),
            // Lost a race with another creator: fine. Some catalogs answer such a race with a
            // server error instead of a conflict, so what counts is whether it exists now.
            Err(e) if e.kind() == iceberg::ErrorKind::NamespaceAlreadyExists => Ok(()),
            Err(e) => match catalog.namespace_exists(namespace).await {
                Ok(true) => Ok(()),
                _ => Err(catalog_error(None, e)),
            },
        }
    }

    pub(crate) async fn create_table(
        &self,
        name: &TableName,
        creation: TableCreation,
    ) -> Result<LoadedTable> {
        let ident = name.ident();
        self.ensure_namespace(ident.namespace()).await?;
        match self
            .catalog()
            .create_table(ident.namespace(), creation)
            .await
        {
            Ok(table) => Ok(LoadedTable {
                refs: Default::default(),
                name: name.clone(),
                table,
            }),
            Err(e) if e.kind() == iceberg::ErrorKind::TableAlreadyExists => {
                Err(Error::TableAlreadyExists {
                    table: name.to_string(),
                })
            }
            // Lost a race with another creator, reported as a failed insert (the SQL
            // catalog's unique key) or a server error: what counts is whether it exists now.
            Err(e) => match self.catalog().table_exists(&ident).await {
                Ok(true) => Err(Error::TableAlreadyExists {
                    table: name.to_string(),
                }),
                _ => Err(catalog_error(Some(name), e)),
            },
        }
    }

    pub(crate) async fn load_table(&self, name: &TableName) -> Result<LoadedTable> {
        if let Backend::Sql {
            pool,
            name: catalog_name,
            loaded,
            ..
        } = self
        {
            let current = current_metadata_location(pool, catalog_name, name).await?;
            let cached = loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name.to_string())
                .cloned();
            if let (Some(current), Some(cached)) = (current, cached)
                && cached.metadata_location() == Some(current.as_str())
            {
                return Ok(cached);
            }
        }
        match self.catalog().load_table(&name.ident()).await {
            Ok(table) => Ok(self.remember(LoadedTable {
                refs: Default::default(),
                name: name.clone(),
                table,
            })),
            Err(e) if is_not_found(&e) => Err(Error::TableNotFound {
                table: name.to_string(),
            }),
            Err(e) => {
                if let Backend::Sql {
                    pool,
                    name: catalog_name,
                    warehouse,
                    ..
                } = self
                    && let Some(moved) = moved_lake(pool, catalog_name, warehouse, name).await
                {
                    return Err(moved);
                }
                Err(catalog_error(Some(name), e))
            }
        }
    }

    pub(crate) async fn table_exists(&self, name: &TableName) -> Result<bool> {
        match self.catalog().table_exists(&name.ident()).await {
            Ok(b) => Ok(b),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(catalog_error(Some(name), e)),
        }
    }

    pub(crate) async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableName>> {
        match self.catalog().list_tables(namespace).await {
            Ok(idents) => Ok(idents.iter().map(TableName::from_ident).collect()),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(catalog_error(None, e)),
        }
    }

    /// The namespaces directly under `parent` (top-level ones without it).
    pub(crate) async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        match self.catalog().list_namespaces(parent).await {
            Ok(namespaces) => Ok(namespaces),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(catalog_error(None, e)),
        }
    }

    pub(crate) async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.catalog()
            .namespace_exists(namespace)
            .await
            .map_err(|e| catalog_error(None, e))
    }

    /// Keeps a loaded or committed table of the SQL catalog for the next load.
    fn remember(&self, table: LoadedTable) -> LoadedTable {
        if let Backend::Sql { loaded, .. } = self {
            loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(table.name.to_string(), table.clone());
        }
        table
    }

    pub(crate) async fn drop_table(&self, name: &TableName) -> Result<()> {
        if let Backend::Sql { loaded, .. } = self {
            loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name.to_string());
        }
        match self.catalog().drop_table(&name.ident()).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::TableNotFound {
                table: name.to_string(),
            }),
            Err(e) => Err(catalog_error(Some(name), e)),
        }
    }

    /// Sends one atomic change. Returns the table as it is after the change.
    pub(crate) async fn commit(
        &self,
        current: &LoadedTable,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<LoadedTable> {
        match self {
            Backend::Sql { pool, name, .. } => {
                let table = commit_sql(pool, name, current, requirements, updates).await?;
                Ok(self.remember(table))
            }
            Backend::Rest { commits, .. } => {
                let metadata = commits.commit(current, requirements, updates).await?;
                let (location, metadata) = metadata;
                let table = Table::builder()
                    .file_io(current.file_io().clone())
                    .identifier(current.name.ident())
                    .metadata(metadata)
                    .metadata_location(location)
                    .runtime(iceberg::Runtime::try_current()?)
                    .build()?;
                Ok(LoadedTable {
                    refs: Default::default(),
                    name: current.name.clone(),
                    table,
                })
            }
        }
    }
}

/// One table's part of a multi-table commit: the table as read, and what to send.
pub(crate) struct TableChange {
    pub(crate) current: LoadedTable,
    pub(crate) requirements: Vec<TableRequirement>,
    pub(crate) updates: Vec<TableUpdate>,
}

/// How a catalog commits changes to several tables at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MultiTableCommit {
    /// All tables' changes land together or not at all (the SQL catalog: one database
    /// transaction; a REST catalog that offers `POST /v1/{prefix}/transactions/commit`).
    Atomic,
    /// The catalog offers no multi-table commit: changes can only be sent table by table.
    Unsupported,
}

impl Backend {
    /// Whether [`Backend::commit_many`] is available.
    pub(crate) fn multi_table_commit(&self) -> MultiTableCommit {
        match self {
            Backend::Sql { .. } => MultiTableCommit::Atomic,
            Backend::Rest { commits, .. } if commits.transactions => MultiTableCommit::Atomic,
            Backend::Rest { .. } => MultiTableCommit::Unsupported,
        }
    }

    /// Sends the changes of several tables as one atomic commit: all apply or none does (a
    /// lost race on any table is an [`Error::CommitConflict`] naming it, and nothing
    /// changed). Returns the tables as they are after the commit, in the order given.
    pub(crate) async fn commit_many(&self, changes: Vec<TableChange>) -> Result<Vec<LoadedTable>> {
        match self {
            Backend::Sql { pool, name, .. } => {
                let tables = sql::commit_many_sql(pool, name, changes).await?;
                Ok(tables.into_iter().map(|t| self.remember(t)).collect())
            }
            Backend::Rest { catalog, commits } => {
                if !commits.transactions {
                    return Err(Error::Catalog {
                        table: None,
                        message: format!(
                            "the REST catalog at {} does not offer multi-table commits \
                             (POST /v1/{{prefix}}/transactions/commit is not among the endpoints of its /v1/config)",
                            commits.uri
                        ),
                        retryable: false,
                    });
                }
                let names: Vec<TableName> =
                    changes.iter().map(|c| c.current.name.clone()).collect();
                commits.commit_transaction(changes).await?;
                let mut tables = Vec::with_capacity(names.len());
                for name in &names {
                    let table = catalog
                        .load_table(&name.ident())
                        .await
                        .map_err(|e| catalog_error(Some(name), e))?;
                    tables.push(LoadedTable {
                        refs: Default::default(),
                        name: name.clone(),
                        table,
                    });
                }
                Ok(tables)
            }
        }
    }
}

fn is_not_found(e: &iceberg::Error) -> bool {
    matches!(
        e.kind(),
        iceberg::ErrorKind::TableNotFound | iceberg::ErrorKind::NamespaceNotFound
    )
}

fn catalog_error(table: Option<&TableName>, e: iceberg::Error) -> Error {
    Error::Catalog {
        table: table.map(ToString::to_string),
        retryable: e.retryable(),
        message: crate::error::iceberg_text(&e),
    }
}

/// Checks the requirements against the metadata we read, as the catalog would.
fn check_requirements(
    table: &TableName,
    metadata: &TableMetadata,
    requirements: &[TableRequirement],
) -> Result<()> {
    for requirement in requirements {
        if let Err(e) = requirement.check(Some(metadata)) {
            return Err(Error::CommitConflict {
                table: table.to_string(),
                reason: e.message().to_string(),
            });
        }
    }
    Ok(())
}

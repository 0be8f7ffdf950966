//! [`Lake`]: a connected catalog plus storage, and every operation on tables and refs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema as ArrowSchema};
use futures::future::BoxFuture;
use iceberg::spec::{DataFile, SnapshotReference, SnapshotRetention};
use iceberg::{NamespaceIdent, TableCreation, TableRequirement, TableUpdate};
use serde::{Deserialize, Serialize};

use crate::catalog::{Backend, CatalogConfig, LoadedTable};
use crate::error::{Error, Result};
use crate::refs::{self, MAIN, RefInfo, RefKind, RefName, RefSpec, ref_kind};
use crate::register::{data_files_for, read_footers};
use crate::schema::{NAME_MAPPING_PROPERTY, iceberg_schema_from_arrow, name_mapping_json};
use crate::snapshot_producer::{
    COMMIT_ID_PROPERTY, SnapshotSpec, TableWriter, WriteOptions, new_snapshot_id,
    write_append_snapshot,
};
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

/// Retry policy for commit conflicts: exponential backoff with full jitter.
#[derive(Clone, Debug)]
pub struct CommitRetry {
    /// Attempts in all (the first included).
    pub max_attempts: u32,
    /// Delay cap of the first retry.
    pub base_delay: Duration,
    /// Largest delay between attempts.
    pub max_delay: Duration,
}

impl Default for CommitRetry {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl CommitRetry {
    fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jitter: f64 = rand::random::<f64>();
        cap.mul_f64(jitter)
    }
}

/// Called before every catalog commit: for metrics, tracing, or to inject a concurrent writer
/// in tests.
pub trait CommitHook: Send + Sync + 'static {
    /// `attempt` counts from 1 for each operation.
    fn before_commit<'a>(&'a self, table: &'a TableName, attempt: u32) -> BoxFuture<'a, ()>;
}

/// What one planning round decided.
pub(crate) enum Plan<T> {
    /// Send these; on success return `T`.
    Commit {
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
        value: T,
    },
    /// Nothing to send (already done, or a no-op).
    Done(T),
}

/// A connected lakehouse: one catalog, one storage configuration.
///
/// All operations that change a table plan against freshly loaded metadata, send one atomic
/// commit with `assert-table-uuid` and `assert-ref-snapshot-id` requirements, and re-plan on
/// a conflict (see [`CommitRetry`]).
pub struct Lake {
    backend: Backend,
    stores: ObjectStores,
    retry: CommitRetry,
    hook: Option<Arc<dyn CommitHook>>,
    commits: AtomicU64,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("backend", &self.backend)
            .field("commits", &self.commits)
            .finish_non_exhaustive()
    }
}

/// The result of an append.
#[derive(Clone, Debug)]
pub struct AppendOutcome {
    /// The new head of the branch.
    pub snapshot_id: i64,
    /// Its parent.
    pub parent_id: Option<i64>,
    /// Data files added.
    pub added_files: usize,
    /// Rows added.
    pub added_records: u64,
    /// Whether the commit had already been made by an earlier attempt (found by commit id).
    pub already_committed: bool,
}

/// An append to commit.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    /// The branch to move.
    pub branch: RefName,
    /// Create the branch from this ref in the same commit (it must not exist yet).
    pub create_from: Option<RefSpec>,
    /// The data files (from a [`TableWriter`] or [`Lake::register_files`]).
    pub files: Vec<DataFile>,
    /// Snapshot summary properties (message, author, run id, …).
    pub properties: HashMap<String, String>,
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

    /// Runs plan → commit, re-planning on fresh metadata after a conflict.
    pub(crate) async fn commit_loop<T, F, Fut>(
        &self,
        name: &TableName,
        mut plan: F,
    ) -> Result<(LoadedTable, T)>
    where
        F: FnMut(LoadedTable) -> Fut,
        Fut: Future<Output = Result<Plan<T>>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let table = self.backend.load_table(name).await?;
            match plan(table.clone()).await? {
                Plan::Done(value) => return Ok((table, value)),
                Plan::Commit {
                    requirements,
                    updates,
                    value,
                } => {
                    if let Some(hook) = &self.hook {
                        hook.before_commit(name, attempt).await;
                    }
                    let added: Vec<iceberg::spec::Snapshot> = updates
                        .iter()
                        .filter_map(|u| match u {
                            TableUpdate::AddSnapshot { snapshot } => Some(snapshot.clone()),
                            _ => None,
                        })
                        .collect();
                    match self.backend.commit(&table, requirements, updates).await {
                        Ok(table) => {
                            self.commits.fetch_add(1, Ordering::Relaxed);
                            return Ok((table, value));
                        }
                        Err(Error::CommitConflict { reason, .. }) => {
                            // A conflict is a definite "no": the manifests this attempt wrote
                            // are referenced by nothing.
                            for snapshot in &added {
                                discard_snapshot_files(&table, snapshot).await;
                            }
                            if attempt >= self.retry.max_attempts {
                                return Err(Error::TooManyConflicts {
                                    table: name.to_string(),
                                    attempts: attempt,
                                    last: reason,
                                });
                            }
                            tracing::debug!(table = %name, attempt, %reason, "commit conflict; retrying on fresh metadata");
                            tokio::time::sleep(self.retry.delay(attempt)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
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
        let schema = iceberg_schema_from_arrow(schema)?;
        let mapping = name_mapping_json(&schema, None)?;
        let creation = TableCreation::builder()
            .name(name.table().to_string())
            .schema(schema)
            .properties([(NAME_MAPPING_PROPERTY.to_string(), mapping)])
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

    // ---------------------------------------------------------------- refs

    /// Branches and tags with their snapshot ids, sorted by name.
    pub async fn list_refs(&self, name: &TableName) -> Result<Vec<RefInfo>> {
        let table = self.load_table(name).await?;
        Ok(refs_of(&table))
    }

    /// Creates a branch at the snapshot `from` resolves to. On a table with no snapshot yet,
    /// branching from `main` first gives `main` an empty snapshot (in the same commit), so
    /// that a brand-new table can be written on a branch.
    pub async fn create_branch(
        &self,
        name: &TableName,
        branch: &RefName,
        from: &RefSpec,
    ) -> Result<i64> {
        self.create_ref(name, branch, from, true).await
    }

    /// Creates a tag at the snapshot `at` resolves to.
    pub async fn create_tag(&self, name: &TableName, tag: &RefName, at: &RefSpec) -> Result<i64> {
        self.create_ref(name, tag, at, false).await
    }

    async fn create_ref(
        &self,
        name: &TableName,
        new: &RefName,
        from: &RefSpec,
        branch: bool,
    ) -> Result<i64> {
        let (_, id) = self
            .commit_loop(name, |table| {
                let new = new.clone();
                let from = from.clone();
                async move {
                    let md = table.metadata();
                    if refs::all(md).contains_key(new.as_str()) {
                        return Err(Error::RefAlreadyExists {
                            table: table.name().to_string(),
                            name: new,
                        });
                    }
                    let mut requirements = vec![
                        TableRequirement::UuidMatch { uuid: md.uuid() },
                        TableRequirement::RefSnapshotIdMatch {
                            r#ref: new.to_string(),
                            snapshot_id: None,
                        },
                    ];
                    let resolved = refs::resolve(&table.name().to_string(), md, &from)?;
                    if let RefSpec::Named(n) = &from {
                        requirements.push(TableRequirement::RefSnapshotIdMatch {
                            r#ref: n.clone(),
                            snapshot_id: resolved,
                        });
                    }
                    let mut updates = Vec::new();
                    let target = match resolved {
                        Some(id) => id,
                        None if branch => {
                            let empty = empty_base_snapshot(&table).await?;
                            let id = empty.snapshot_id();
                            updates.push(TableUpdate::AddSnapshot { snapshot: empty });
                            updates.push(set_branch(MAIN, id));
                            id
                        }
                        None => {
                            return Err(Error::RefNotFound {
                                table: table.name().to_string(),
                                reference: from.to_string(),
                                reason: "main has no snapshot yet, so there is nothing to tag"
                                    .to_string(),
                            });
                        }
                    };
                    updates.push(if branch {
                        set_branch(new.as_str(), target)
                    } else {
                        TableUpdate::SetSnapshotRef {
                            ref_name: new.to_string(),
                            reference: SnapshotReference::new(
                                target,
                                SnapshotRetention::Tag {
                                    max_ref_age_ms: None,
                                },
                            ),
                        }
                    });
                    Ok(Plan::Commit {
                        requirements,
                        updates,
                        value: target,
                    })
                }
            })
            .await?;
        Ok(id)
    }

    /// Deletes a branch or a tag: `kind` says which, and a ref of the other kind is left alone
    /// ([`Error::WrongRefKind`]), so a tag cannot be deleted by a command meant for branches.
    /// `main` cannot be deleted. Deleting a ref that does not exist is an error
    /// ([`Error::RefNotFound`]).
    pub async fn delete_ref(
        &self,
        name: &TableName,
        reference: &RefName,
        kind: RefKind,
    ) -> Result<()> {
        if reference.is_main() {
            return Err(Error::RefNotAllowed {
                message: format!(
                    "cannot delete `main` of {name}: it is the table's published state"
                ),
            });
        }
        self.commit_loop(name, |table| {
            let reference = reference.clone();
            async move {
                let md = table.metadata();
                let all_refs = refs::all(md);
                let Some(current) = all_refs.get(reference.as_str()) else {
                    return Err(Error::RefNotFound {
                        table: table.name().to_string(),
                        reference: reference.to_string(),
                        reason: format!("no {kind} of that name"),
                    });
                };
                refs::expect_kind(&table.name().to_string(), &reference, current, kind)?;
                Ok(Plan::Commit {
                    requirements: vec![
                        TableRequirement::UuidMatch { uuid: md.uuid() },
                        TableRequirement::RefSnapshotIdMatch {
                            r#ref: reference.to_string(),
                            snapshot_id: Some(current.snapshot_id),
                        },
                    ],
                    updates: vec![TableUpdate::RemoveSnapshotRef {
                        ref_name: reference.to_string(),
                    }],
                    value: (),
                })
            }
        })
        .await?;
        Ok(())
    }

    /// Like [`Lake::delete_ref`] for a branch, but a missing branch is not an error (for
    /// compensations that may run more than once). Returns whether a branch was deleted.
    pub async fn delete_ref_if_exists(
        &self,
        name: &TableName,
        reference: &RefName,
    ) -> Result<bool> {
        match self.delete_ref(name, reference, RefKind::Branch).await {
            Ok(()) => Ok(true),
            Err(Error::RefNotFound { .. } | Error::TableNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves a branch back to one of its ancestors (or to a tag on its history), as one commit.
    pub async fn rollback(&self, name: &TableName, branch: &RefName, to: &RefSpec) -> Result<i64> {
        let (_, id) = self
            .commit_loop(name, |table| {
                let branch = branch.clone();
                let to = to.clone();
                async move {
                    let md = table.metadata();
                    let table_name = table.name().to_string();
                    let head = refs::all(md)
                        .get(branch.as_str())
                        .filter(|r| r.is_branch())
                        .map(|r| r.snapshot_id)
                        .ok_or_else(|| Error::BranchNotFound {
                            table: table_name.clone(),
                            branch: branch.to_string(),
                        })?;
                    let target = refs::resolve(&table_name, md, &to)?.ok_or_else(|| Error::RefNotFound {
                        table: table_name.clone(),
                        reference: to.to_string(),
                        reason: "it has no snapshot".to_string(),
                    })?;
                    if !refs::ancestry(md, Some(head)).contains(&target) {
                        return Err(Error::RefNotAllowed {
                            message: format!(
                                "cannot roll back {table_name} `{branch}` to {to} (snapshot {target}): it is not an ancestor of the branch head {head}"
                            ),
                        });
                    }
                    if target == head {
                        return Ok(Plan::Done(head));
                    }
                    Ok(Plan::Commit {
                        requirements: vec![
                            TableRequirement::UuidMatch { uuid: md.uuid() },
                            TableRequirement::RefSnapshotIdMatch {
                                r#ref: branch.to_string(),
                                snapshot_id: Some(head),
                            },
                        ],
                        updates: vec![set_branch(branch.as_str(), target)],
                        value: target,
                    })
                }
            })
            .await?;
        Ok(id)
    }

    // ---------------------------------------------------------------- writes

    /// A writer for copy mode: batches in, parquet data files out (not yet committed).
    pub async fn table_writer(
        &self,
        table: &LoadedTable,
        options: &WriteOptions,
    ) -> Result<TableWriter> {
        TableWriter::new(table, options).await
    }

    /// Copy mode's fast path: copies source files whose column chunks the table can keep as they
    /// are (see [`crate::chunk_copy_blocker`]) without decoding them.
    pub fn chunk_copier(
        &self,
        table: &LoadedTable,
        options: &WriteOptions,
    ) -> Result<crate::ChunkCopier> {
        crate::ChunkCopier::new(table, &self.stores, options)
    }

    /// Register mode: `DataFile` entries for existing parquet files, from their footers only.
    /// Files whose schema does not match the table are rejected, naming the file.
    pub async fn register_files(
        &self,
        table: &LoadedTable,
        locations: &[String],
    ) -> Result<Vec<DataFile>> {
        let footers = read_footers(&self.stores, locations).await?;
        data_files_for(table, &footers).await
    }

    /// Register mode from footers already read (see [`crate::read_footers`]): the same checks
    /// as [`Lake::register_files`] without reading the footers again.
    pub async fn data_files_from_footers(
        &self,
        table: &LoadedTable,
        footers: &[crate::ParquetFooter],
    ) -> Result<Vec<DataFile>> {
        data_files_for(table, footers).await
    }

    /// Commits data files as one new snapshot on a branch whose parent is the branch head,
    /// moving only that branch. Safe to call again after an unknown outcome: an earlier
    /// successful attempt is recognised by the request's commit id.
    pub async fn commit_append(
        &self,
        name: &TableName,
        request: AppendRequest,
    ) -> Result<AppendOutcome> {
        let commit_id = uuid::Uuid::now_v7().to_string();
        let mut properties = request.properties.clone();
        properties.insert(COMMIT_ID_PROPERTY.to_string(), commit_id.clone());
        let request = Arc::new(AppendRequest {
            properties,
            ..request
        });
        let (_, outcome) = self
            .commit_loop(name, |table| {
                let request = request.clone();
                let commit_id = commit_id.clone();
                async move { plan_append(&table, &request, &commit_id).await }
            })
            .await?;
        Ok(outcome)
    }

    /// Convenience: writes batches in copy mode and commits them to `branch` (which must exist).
    pub async fn append_batches(
        &self,
        name: &TableName,
        branch: &RefName,
        batches: &[RecordBatch],
        properties: HashMap<String, String>,
    ) -> Result<AppendOutcome> {
        let table = self.load_table(name).await?;
        let mut writer = self.table_writer(&table, &WriteOptions::default()).await?;
        for batch in batches {
            writer.write(batch, "<batches>").await?;
        }
        let files = writer.finish().await?;
        self.commit_append(
            name,
            AppendRequest {
                branch: branch.clone(),
                create_from: None,
                files,
                properties,
            },
        )
        .await
    }

    // ---------------------------------------------------------------- schema

    /// Renames a top-level column (the field id stays, so old snapshots read under the old
    /// name and new ones under the new name).
    pub async fn rename_column(&self, name: &TableName, old: &str, new: &str) -> Result<()> {
        self.evolve_schema(name, |schema, _| {
            crate::schema::renamed(schema, &name.to_string(), old, new)
        })
        .await
    }

    /// Adds nullable top-level columns that the table does not have yet.
    pub async fn add_columns(&self, name: &TableName, fields: &[Field]) -> Result<()> {
        self.evolve_schema(name, |schema, last_id| {
            crate::schema::with_added_columns(schema, last_id, &name.to_string(), fields)
        })
        .await
    }

    async fn evolve_schema<F>(&self, name: &TableName, change: F) -> Result<()>
    where
        F: Fn(&iceberg::spec::Schema, i32) -> Result<iceberg::spec::Schema>,
    {
        let change = &change;
        self.commit_loop(name, |table| async move {
            let md = table.metadata();
            let current = md.current_schema();
            let new_schema = change(current, md.last_column_id())?;
            if new_schema.as_struct() == current.as_struct() {
                return Ok(Plan::Done(()));
            }
            let mapping = name_mapping_json(
                &new_schema,
                md.properties()
                    .get(NAME_MAPPING_PROPERTY)
                    .map(String::as_str),
            )?;
            Ok(Plan::Commit {
                requirements: vec![
                    TableRequirement::UuidMatch { uuid: md.uuid() },
                    TableRequirement::CurrentSchemaIdMatch {
                        current_schema_id: md.current_schema_id(),
                    },
                    TableRequirement::LastAssignedFieldIdMatch {
                        last_assigned_field_id: md.last_column_id(),
                    },
                ],
                updates: vec![
                    TableUpdate::AddSchema { schema: new_schema },
                    TableUpdate::SetCurrentSchema { schema_id: -1 },
                    TableUpdate::SetProperties {
                        updates: HashMap::from([(NAME_MAPPING_PROPERTY.to_string(), mapping)]),
                    },
                ],
                value: (),
            })
        })
        .await?;
        Ok(())
    }
}

pub(crate) fn set_branch(name: &str, snapshot_id: i64) -> TableUpdate {
    TableUpdate::SetSnapshotRef {
        ref_name: name.to_string(),
        reference: SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
    }
}

pub(crate) fn refs_of(table: &LoadedTable) -> Vec<RefInfo> {
    let mut out: Vec<RefInfo> = refs::all(table.metadata())
        .iter()
        .map(|(name, r)| RefInfo {
            name: name.clone(),
            kind: ref_kind(r),
            snapshot_id: r.snapshot_id,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The empty first snapshot given to `main` of a table that has none, so it can be branched.
async fn empty_base_snapshot(table: &LoadedTable) -> Result<iceberg::spec::Snapshot> {
    let properties = HashMap::from([(
        "sluice.message".to_string(),
        "empty base snapshot (lets a new table be branched)".to_string(),
    )]);
    write_append_snapshot(
        table,
        SnapshotSpec {
            parent: None,
            snapshot_id: new_snapshot_id(table),
            sequence_number: table.metadata().next_sequence_number(),
            files: &[],
            properties: &properties,
            base_manifests: Vec::new(),
            parent_summary: HashMap::new(),
        },
    )
    .await
}

async fn plan_append(
    table: &LoadedTable,
    request: &AppendRequest,
    commit_id: &str,
) -> Result<Plan<AppendOutcome>> {
    let md = table.metadata();
    let table_name = table.name().to_string();
    let branch = request.branch.as_str();
    let head = refs::all(md).get(branch).map(|r| r.snapshot_id);
    let added_records: u64 = request.files.iter().map(DataFile::record_count).sum();

    // An earlier attempt whose answer was lost may have landed: find it by commit id.
    for id in refs::ancestry(md, head).into_iter().take(256) {
        if let Some(s) = md.snapshot_by_id(id)
            && s.summary()
                .additional_properties
                .get(COMMIT_ID_PROPERTY)
                .map(String::as_str)
                == Some(commit_id)
        {
            return Ok(Plan::Done(AppendOutcome {
                snapshot_id: id,
                parent_id: s.parent_snapshot_id(),
                added_files: request.files.len(),
                added_records,
                already_committed: true,
            }));
        }
    }

    let mut requirements = vec![TableRequirement::UuidMatch { uuid: md.uuid() }];
    let mut updates = Vec::new();
    let mut sequence_number = md.next_sequence_number();
    let (parent, base_manifests, parent_summary) = match (head, &request.create_from) {
        (Some(head), None) => {
            if refs::all(md).get(branch).is_some_and(|r| !r.is_branch()) {
                return Err(Error::RefNotAllowed {
                    message: format!(
                        "`{branch}` of {table_name} is a tag; only branches can be appended to"
                    ),
                });
            }
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: branch.to_string(),
                snapshot_id: Some(head),
            });
            let (manifests, summary) = SnapshotSpec::base_of(table, Some(head)).await?;
            (Some(head), manifests, summary)
        }
        (Some(_), Some(_)) => {
            return Err(Error::RefAlreadyExists {
                table: table_name,
                name: request.branch.clone(),
            });
        }
        (None, None) if request.branch.is_main() => {
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN.to_string(),
                snapshot_id: None,
            });
            (None, Vec::new(), HashMap::new())
        }
        (None, None) => {
            return Err(Error::BranchNotFound {
                table: table_name,
                branch: branch.to_string(),
            });
        }
        (None, Some(from)) => {
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: branch.to_string(),
                snapshot_id: None,
            });
            let resolved = refs::resolve(&table_name, md, from)?;
            if let RefSpec::Named(n) = from {
                requirements.push(TableRequirement::RefSnapshotIdMatch {
                    r#ref: n.clone(),
                    snapshot_id: resolved,
                });
            }
            match resolved {
                Some(base) => {
                    let (manifests, summary) = SnapshotSpec::base_of(table, Some(base)).await?;
                    (Some(base), manifests, summary)
                }
                None => {
                    let empty = empty_base_snapshot(table).await?;
                    let id = empty.snapshot_id();
                    let summary = empty.summary().additional_properties.clone();
                    updates.push(TableUpdate::AddSnapshot { snapshot: empty });
                    updates.push(set_branch(MAIN, id));
                    sequence_number += 1;
                    (Some(id), Vec::new(), summary)
                }
            }
        }
    };
    let snapshot = write_append_snapshot(
        table,
        SnapshotSpec {
            parent,
            snapshot_id: new_snapshot_id(table),
            sequence_number,
            files: &request.files,
            properties: &request.properties,
            base_manifests,
            parent_summary,
        },
    )
    .await?;
    let snapshot_id = snapshot.snapshot_id();
    updates.push(TableUpdate::AddSnapshot { snapshot });
    updates.push(set_branch(branch, snapshot_id));
    Ok(Plan::Commit {
        requirements,
        updates,
        value: AppendOutcome {
            snapshot_id,
            parent_id: parent,
            added_files: request.files.len(),
            added_records,
            already_committed: false,
        },
    })
}

/// Deletes the manifest list of a snapshot that was never committed and the manifests it
/// added. Best effort: a file left behind is unused bytes, never a wrong answer.
async fn discard_snapshot_files(table: &LoadedTable, snapshot: &iceberg::spec::Snapshot) {
    let io = table.file_io();
    let list = snapshot.manifest_list();
    let Ok(input) = io.new_input(list) else {
        return;
    };
    if let Ok(bytes) = input.read().await
        && let Ok(parsed) = iceberg::spec::ManifestList::parse_with_version(
            &bytes,
            table.metadata().format_version(),
        )
    {
        for manifest in parsed.entries() {
            if manifest.added_snapshot_id == snapshot.snapshot_id() {
                let _ = io.delete(&manifest.manifest_path).await;
            }
        }
    }
    let _ = io.delete(list).await;
}

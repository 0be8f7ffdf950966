//! The SQL catalog (SQLite, on the `iceberg_tables` schema shared with pyiceberg's and Java's
//! JDBC catalogs): a commit writes the new metadata file, then moves the catalog row with a
//! compare-and-swap `UPDATE … WHERE metadata_location = <the location we read>`.

use std::str::FromStr;

use iceberg::table::Table;
use iceberg::{MetadataLocation, TableRequirement, TableUpdate};
use sqlx::sqlite::SqlitePool;

use super::{LoadedTable, check_requirements};
use crate::error::{Error, Result};
use crate::table_name::TableName;

pub(super) fn sqlite_path(uri: &str) -> &str {
    uri.strip_prefix("sqlite://")
        .or_else(|| uri.strip_prefix("sqlite:"))
        .unwrap_or(uri)
}

/// The metadata location the SQL catalog's row of `name` points at (`None`: no such table).
pub(super) async fn current_metadata_location(
    pool: &SqlitePool,
    catalog_name: &str,
    name: &TableName,
) -> Result<Option<String>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? \
         AND table_namespace = ? AND table_name = ? \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
    )
    .bind(catalog_name)
    .bind(name.ident().namespace().join("."))
    .bind(name.table())
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error(Some(name), e))?;
    Ok(row.and_then(|(location,)| location))
}

/// When a table of the SQL catalog cannot be loaded because its metadata file is missing from
/// local disk and lies outside the configured warehouse, the lake was moved or copied: Iceberg
/// metadata records absolute locations. Returns the error that says so.
pub(super) async fn moved_lake(
    pool: &SqlitePool,
    catalog_name: &str,
    warehouse: &str,
    name: &TableName,
) -> Option<Error> {
    let location: String = sqlx::query_scalar(
        "SELECT metadata_location FROM iceberg_tables \
         WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
    )
    .bind(catalog_name)
    .bind(name.ident().namespace().join("."))
    .bind(name.table())
    .fetch_optional(pool)
    .await
    .ok()??;
    let local = |l: &str| -> Option<String> {
        if let Some(path) = l.strip_prefix("file://") {
            Some(path.to_string())
        } else if l.starts_with('/') {
            Some(l.to_string())
        } else {
            None
        }
    };
    let metadata_path = local(&location)?;
    let warehouse_path = local(warehouse)?;
    let warehouse_path = warehouse_path.trim_end_matches('/');
    if std::path::Path::new(&metadata_path).exists()
        || metadata_path.starts_with(&format!("{warehouse_path}/"))
    {
        return None;
    }
    Some(Error::LakeMoved {
        table: name.to_string(),
        metadata: metadata_path,
        warehouse: warehouse_path.to_string(),
    })
}

pub(super) fn sql_error(table: Option<&TableName>, e: sqlx::Error) -> Error {
    let retryable = matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Database(_)
    );
    Error::Catalog {
        table: table.map(ToString::to_string),
        message: format!("SQL catalog: {e}"),
        retryable,
    }
}

/// A change whose new metadata file is written, ready to move the catalog row.
struct Prepared {
    current: LoadedTable,
    current_location: String,
    new_location: String,
    new_metadata: iceberg::spec::TableMetadata,
}

/// Checks the requirements against the metadata read, applies the updates and writes the new
/// metadata file.
async fn prepare(
    current: LoadedTable,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<Prepared> {
    let name = &current.name;
    let current_location = current
        .metadata_location()
        .ok_or_else(|| Error::Catalog {
            table: Some(name.to_string()),
            message: "the loaded table has no metadata location".to_string(),
            retryable: false,
        })?
        .to_string();
    check_requirements(name, current.metadata(), &requirements)?;
    let mut builder = current
        .metadata()
        .clone()
        .into_builder(Some(current_location.clone()));
    for update in updates {
        builder = update.apply(builder)?;
    }
    let new_metadata = builder.build()?.metadata;
    let new_location = MetadataLocation::from_str(&current_location)?
        .with_next_version()
        .with_new_metadata(&new_metadata);
    new_metadata
        .write_to(current.file_io(), &new_location)
        .await?;
    Ok(Prepared {
        current,
        current_location,
        new_location: new_location.to_string(),
        new_metadata,
    })
}

/// The compare-and-swap of one catalog row, inside `conn`'s transaction or on its own.
async fn move_row(
    conn: &mut sqlx::SqliteConnection,
    catalog_name: &str,
    prepared: &Prepared,
) -> Result<bool> {
    let name = &prepared.current.name;
    let namespace = name.ident().namespace().join(".");
    let result = sqlx::query(
        "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
         WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
    )
    .bind(&prepared.new_location)
    .bind(&prepared.current_location)
    .bind(catalog_name)
    .bind(&namespace)
    .bind(name.table())
    .bind(&prepared.current_location)
    .execute(conn)
    .await
    .map_err(|e| sql_error(Some(name), e))?;
    Ok(result.rows_affected() == 1)
}

fn lost_race(name: &TableName) -> Error {
    Error::CommitConflict {
        table: name.to_string(),
        reason: "the table's metadata changed since it was read".to_string(),
    }
}

impl Prepared {
    fn into_table(self) -> Result<LoadedTable> {
        let name = self.current.name.clone();
        let table = Table::builder()
            .file_io(self.current.file_io().clone())
            .identifier(name.ident())
            .metadata(self.new_metadata)
            .metadata_location(self.new_location)
            .runtime(iceberg::Runtime::try_current()?)
            .build()?;
        Ok(LoadedTable {
            refs: Default::default(),
            name,
            table,
        })
    }

    /// The metadata file of a commit that did not happen is referenced by nothing.
    async fn discard(&self) {
        let _ = self.current.file_io().delete(&self.new_location).await;
    }
}

pub(super) async fn commit_sql(
    pool: &SqlitePool,
    catalog_name: &str,
    current: &LoadedTable,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<LoadedTable> {
    let prepared = prepare(current.clone(), requirements, updates).await?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| sql_error(Some(&current.name), e))?;
    if !move_row(&mut conn, catalog_name, &prepared).await? {
        // Someone else moved the row; our metadata file is an orphan nobody references.
        prepared.discard().await;
        return Err(lost_race(&current.name));
    }
    prepared.into_table()
}

/// Several tables' changes in one database transaction: every row moves, or none does.
pub(super) async fn commit_many_sql(
    pool: &SqlitePool,
    catalog_name: &str,
    changes: Vec<super::TableChange>,
) -> Result<Vec<LoadedTable>> {
    let mut prepared: Vec<Prepared> = Vec::with_capacity(changes.len());
    for change in changes {
        match prepare(change.current, change.requirements, change.updates).await {
            Ok(p) => prepared.push(p),
            Err(e) => {
                for p in &prepared {
                    p.discard().await;
                }
                return Err(e);
            }
        }
    }
    let moved = async {
        let mut tx = pool.begin().await.map_err(|e| sql_error(None, e))?;
        for p in &prepared {
            if !move_row(&mut tx, catalog_name, p).await? {
                tx.rollback().await.map_err(|e| sql_error(None, e))?;
                return Err(lost_race(&p.current.name));
            }
        }
        Ok(tx)
    }
    .await;
    let tx = match moved {
        Ok(tx) => tx,
        Err(e) => {
            for p in &prepared {
                p.discard().await;
            }
            return Err(e);
        }
    };
    // A failed COMMIT leaves its outcome to the database: the metadata files stay, since a
    // row may point at them.
    tx.commit().await.map_err(|e| sql_error(None, e))?;
    prepared.into_iter().map(Prepared::into_table).collect()
}

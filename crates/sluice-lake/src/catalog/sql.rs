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

pub(super) async fn commit_sql(
    pool: &SqlitePool,
    catalog_name: &str,
    current: &LoadedTable,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<LoadedTable> {
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
    let new_location = new_location.to_string();
    let namespace = name.ident().namespace().join(".");
    let result = sqlx::query(
        "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
         WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
    )
    .bind(&new_location)
    .bind(&current_location)
    .bind(catalog_name)
    .bind(&namespace)
    .bind(name.table())
    .bind(&current_location)
    .execute(pool)
    .await
    .map_err(|e| sql_error(Some(name), e))?;
    if result.rows_affected() == 0 {
        // Someone else moved the row; our metadata file is an orphan nobody references.
        let _ = current.file_io().delete(&new_location).await;
        return Err(Error::CommitConflict {
            table: name.to_string(),
            reason: "the table's metadata changed since it was read".to_string(),
        });
    }
    let table = Table::builder()
        .file_io(current.file_io().clone())
        .identifier(name.ident())
        .metadata(new_metadata)
        .metadata_location(new_location)
        .runtime(iceberg::Runtime::try_current()?)
        .build()?;
    Ok(LoadedTable {
        refs: Default::default(),
        name: name.clone(),
        table,
    })
}

//! What differs between two refs of a table, from metadata only: the data files (and rows)
//! one side has and the other lacks, the schema changes, and per column the null counts and
//! bounds of each side (summed from the manifests' file statistics). No data file is read.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{DataContentType, Datum, ManifestStatus, NestedFieldRef, Schema};
use serde::Serialize;

use crate::catalog::LoadedTable;
use crate::error::Result;
use crate::lake::Lake;
use crate::refs::{self, RefSpec};
use crate::snapshot_producer::manifests_of;
use crate::summary::{AUDIT_PROPERTY, MESSAGE_PROPERTY, RUN_ID_PROPERTY};
use crate::table_name::TableName;

/// Manifests read at once.
const MANIFEST_READS: usize = 8;

/// One side of a diff.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffSide {
    /// The ref as given.
    pub reference: String,
    /// The snapshot it resolved to (`None`: nothing committed).
    pub snapshot_id: Option<i64>,
    /// Rows of its live data files.
    pub rows: u64,
    /// Its live data files.
    pub files: u64,
    /// Delete files (written by other engines); their rows are not subtracted above.
    pub delete_files: u64,
    /// `sluice.audit` of the snapshot: the verdict of the run that wrote it.
    pub audit: Option<String>,
    /// `sluice.run-id` of the snapshot.
    pub run_id: Option<String>,
    /// `sluice.message` of the snapshot.
    pub message: Option<String>,
}

/// A column added, dropped, renamed or retyped between the sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaChange {
    /// `added`, `dropped`, `renamed` or `type changed`.
    pub change: String,
    /// The column's name on the newer side (the older side's when dropped).
    pub column: String,
    /// What it was (old name or type), if anything.
    pub before: Option<String>,
    /// What it is (new name or type), if anything.
    pub after: Option<String>,
}

/// A column's statistics on one side, summed over its live data files.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ColumnSide {
    /// Nulls, where every file counted them.
    pub nulls: Option<u64>,
    /// The smallest lower bound, as text (strings may be truncated by the writer).
    pub min: Option<String>,
    /// The largest upper bound, as text.
    pub max: Option<String>,
}

/// A column's statistics on both sides.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnDiff {
    /// The name on the newer side (the older side's when dropped).
    pub column: String,
    /// On the older side (`None`: the column is not there).
    pub from: Option<ColumnSide>,
    /// On the newer side.
    pub to: Option<ColumnSide>,
}

/// What differs between two refs of a table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefDiff {
    /// The table.
    pub table: String,
    /// The older side (`A` of `diff A B`).
    pub from: DiffSide,
    /// The newer side (`B`).
    pub to: DiffSide,
    /// Data files `to` has and `from` lacks, and their rows.
    pub files_added: u64,
    /// Rows of the added files.
    pub rows_added: u64,
    /// Data files `from` has and `to` lacks.
    pub files_removed: u64,
    /// Rows of the removed files.
    pub rows_removed: u64,
    /// Columns added, dropped, renamed or retyped.
    pub schema_changes: Vec<SchemaChange>,
    /// Per top-level column of either side: nulls and bounds on each.
    pub columns: Vec<ColumnDiff>,
}

/// A live data file as a diff needs it.
struct LiveFile {
    rows: u64,
    nulls: HashMap<i32, u64>,
    lower: HashMap<i32, Datum>,
    upper: HashMap<i32, Datum>,
}

/// The live files of one snapshot, by path, and its delete files.
struct Side {
    files: HashMap<String, LiveFile>,
    delete_files: u64,
}

impl Lake {
    /// Compares ref `to` of a table with ref `from` (for example an audit branch with `main`)
    /// from the table's metadata and manifests.
    pub async fn diff(&self, name: &TableName, from: &RefSpec, to: &RefSpec) -> Result<RefDiff> {
        let table = self.load_table(name).await?;
        let md = table.metadata();
        let table_name = name.to_string();
        let from_id = refs::resolve(&table_name, md, from)?;
        let to_id = refs::resolve(&table_name, md, to)?;
        let (old, new) =
            futures::try_join!(live_files(&table, from_id), live_files(&table, to_id))?;

        let (mut files_added, mut rows_added, mut files_removed, mut rows_removed) = (0, 0, 0, 0);
        for (path, f) in &new.files {
            if !old.files.contains_key(path) {
                files_added += 1;
                rows_added += f.rows;
            }
        }
        for (path, f) in &old.files {
            if !new.files.contains_key(path) {
                files_removed += 1;
                rows_removed += f.rows;
            }
        }
        let schema_of = |id: Option<i64>| -> Result<_> {
            Ok(match id.and_then(|id| md.snapshot_by_id(id)) {
                Some(s) => s.schema(md)?,
                None => md.current_schema().clone(),
            })
        };
        let (old_schema, new_schema) = (schema_of(from_id)?, schema_of(to_id)?);
        let side = |spec: &RefSpec, id: Option<i64>, files: &Side| {
            let summary = id
                .and_then(|id| md.snapshot_by_id(id))
                .map(|s| s.summary().additional_properties.clone())
                .unwrap_or_default();
            DiffSide {
                reference: spec.to_string(),
                snapshot_id: id,
                rows: files.files.values().map(|f| f.rows).sum(),
                files: files.files.len() as u64,
                delete_files: files.delete_files,
                audit: summary.get(AUDIT_PROPERTY).cloned(),
                run_id: summary.get(RUN_ID_PROPERTY).cloned(),
                message: summary.get(MESSAGE_PROPERTY).cloned(),
            }
        };
        Ok(RefDiff {
            table: table_name,
            from: side(from, from_id, &old),
            to: side(to, to_id, &new),
            files_added,
            rows_added,
            files_removed,
            rows_removed,
            schema_changes: schema_changes(&old_schema, &new_schema),
            columns: column_diffs(&old_schema, &old, &new_schema, &new),
        })
    }
}

/// The live data files of a snapshot (none for `None`).
async fn live_files(table: &LoadedTable, snapshot: Option<i64>) -> Result<Side> {
    let mut side = Side {
        files: HashMap::new(),
        delete_files: 0,
    };
    let Some(snapshot) = snapshot else {
        return Ok(side);
    };
    let manifests = manifests_of(table, snapshot).await?;
    let loaded: Vec<_> = futures::stream::iter(manifests)
        .map(|m| async move { m.load_manifest(table.file_io()).await })
        .buffer_unordered(MANIFEST_READS)
        .try_collect()
        .await?;
    for manifest in loaded {
        for entry in manifest.entries() {
            if entry.status() == ManifestStatus::Deleted {
                continue;
            }
            let file = entry.data_file();
            if file.content_type() != DataContentType::Data {
                side.delete_files += 1;
                continue;
            }
            side.files.insert(
                file.file_path().to_string(),
                LiveFile {
                    rows: file.record_count(),
                    nulls: file.null_value_counts().clone(),
                    lower: file.lower_bounds().clone(),
                    upper: file.upper_bounds().clone(),
                },
            );
        }
    }
    Ok(side)
}

fn type_text(schema: &Schema, id: i32) -> Option<String> {
    schema.field_by_id(id).map(|f| f.field_type.to_string())
}

/// Columns added, dropped, renamed or retyped, by field id (so a rename is a rename), down to
/// the fields of structs.
fn schema_changes(old: &Schema, new: &Schema) -> Vec<SchemaChange> {
    let mut out = Vec::new();
    let old_leaves = leaves(old);
    let new_leaves = leaves(new);
    for (id, name) in &new_leaves {
        match old_leaves.iter().find(|(i, _)| i == id) {
            None => out.push(SchemaChange {
                change: "added".into(),
                column: name.clone(),
                before: None,
                after: type_text(new, *id),
            }),
            Some((_, before)) => {
                if before != name {
                    out.push(SchemaChange {
                        change: "renamed".into(),
                        column: name.clone(),
                        before: Some(before.clone()),
                        after: Some(name.clone()),
                    });
                }
                let (was, is) = (type_text(old, *id), type_text(new, *id));
                if was != is {
                    out.push(SchemaChange {
                        change: "type changed".into(),
                        column: name.clone(),
                        before: was,
                        after: is,
                    });
                }
            }
        }
    }
    for (id, name) in &old_leaves {
        if !new_leaves.iter().any(|(i, _)| i == id) {
            out.push(SchemaChange {
                change: "dropped".into(),
                column: name.clone(),
                before: type_text(old, *id),
                after: None,
            });
        }
    }
    out
}

fn column_side(side: &Side, field_id: i32) -> ColumnSide {
    let mut nulls = Some(0u64);
    let mut min: Option<&Datum> = None;
    let mut max: Option<&Datum> = None;
    for f in side.files.values() {
        nulls = match (nulls, f.nulls.get(&field_id)) {
            (Some(n), Some(m)) => Some(n + m),
            _ => None,
        };
        if let Some(lo) = f.lower.get(&field_id)
            && min.is_none_or(|m| lo.partial_cmp(m).is_some_and(|o| o.is_lt()))
        {
            min = Some(lo);
        }
        if let Some(hi) = f.upper.get(&field_id)
            && max.is_none_or(|m| hi.partial_cmp(m).is_some_and(|o| o.is_gt()))
        {
            max = Some(hi);
        }
    }
    ColumnSide {
        nulls,
        min: min.map(show),
        max: max.map(show),
    }
}

/// A bound as text; a zero written as -0.0 (parquet's rule for a minimum) reads 0.
fn show(d: &Datum) -> String {
    match d.to_string() {
        zero if zero == "-0" => "0".to_string(),
        text => text,
    }
}

fn column_diffs(
    old_schema: &Schema,
    old: &Side,
    new_schema: &Schema,
    new: &Side,
) -> Vec<ColumnDiff> {
    let mut out: Vec<ColumnDiff> = leaves(new_schema)
        .into_iter()
        .map(|(id, name)| ColumnDiff {
            column: name,
            from: old_schema.field_by_id(id).map(|_| column_side(old, id)),
            to: Some(column_side(new, id)),
        })
        .collect();
    for (id, name) in leaves(old_schema) {
        if new_schema.field_by_id(id).is_none() {
            out.push(ColumnDiff {
                column: name,
                from: Some(column_side(old, id)),
                to: None,
            });
        }
    }
    out
}

/// The columns that carry statistics, in schema order: top-level primitive columns and the
/// fields of structs (`props.page`), nested as deep as they go; lists and maps are shown whole.
fn leaves(schema: &Schema) -> Vec<(i32, String)> {
    fn walk(fields: &[NestedFieldRef], prefix: &str, out: &mut Vec<(i32, String)>) {
        for f in fields {
            let name = format!("{prefix}{}", f.name);
            match f.field_type.as_ref() {
                iceberg::spec::Type::Struct(s) => walk(s.fields(), &format!("{name}."), out),
                _ => out.push((f.id, name)),
            }
        }
    }
    let mut out = Vec::new();
    walk(schema.as_struct().fields(), "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{NestedField, PrimitiveType, StructType, Type};

    use super::*;

    fn schema(fields: Vec<NestedFieldRef>) -> Schema {
        Schema::builder().with_fields(fields).build().unwrap()
    }

    fn long(id: i32, name: &str) -> NestedFieldRef {
        Arc::new(NestedField::optional(
            id,
            name,
            Type::Primitive(PrimitiveType::Long),
        ))
    }

    #[test]
    fn struct_fields_are_columns_and_changes_are_by_field_id() {
        let props = |fields| {
            Arc::new(NestedField::optional(
                2,
                "props",
                Type::Struct(StructType::new(fields)),
            ))
        };
        let old = schema(vec![
            long(1, "id"),
            props(vec![long(3, "page")]),
            long(5, "gone"),
        ]);
        let new = schema(vec![
            long(1, "event_id"),
            props(vec![long(3, "page"), long(4, "ref")]),
        ]);
        assert_eq!(
            leaves(&new),
            [
                (1, "event_id".to_string()),
                (3, "props.page".into()),
                (4, "props.ref".into())
            ]
        );
        let changes: Vec<(String, String)> = schema_changes(&old, &new)
            .into_iter()
            .map(|c| (c.change, c.column))
            .collect();
        assert_eq!(
            changes,
            [
                ("renamed".to_string(), "event_id".to_string()),
                ("added".into(), "props.ref".into()),
                ("dropped".into(), "gone".into()),
            ]
        );
    }
}

//! Schema evolution by field id: renames and new columns, so that old snapshots keep reading
//! with the schema of their time.

use std::collections::HashMap;

use arrow_schema::Field;
use iceberg::{TableRequirement, TableUpdate};

use crate::commit::Plan;
use crate::error::Result;
use crate::lake::Lake;
use crate::schema::{NAME_MAPPING_PROPERTY, name_mapping_json};
use crate::table_name::TableName;

impl Lake {
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

    /// Sets table properties (e.g. `write.parquet.compression-codec`), keeping the others.
    pub async fn set_table_properties(
        &self,
        name: &TableName,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        let properties = &properties;
        self.commit_loop(name, |table| async move {
            let md = table.metadata();
            if properties
                .iter()
                .all(|(k, v)| md.properties().get(k) == Some(v))
            {
                return Ok(Plan::Done(()));
            }
            Ok(Plan::Commit {
                requirements: vec![TableRequirement::UuidMatch { uuid: md.uuid() }],
                updates: vec![TableUpdate::SetProperties {
                    updates: properties.clone(),
                }],
                value: (),
            })
        })
        .await?;
        Ok(())
    }

    /// Gives a table that lacks one (e.g. created by another engine) a name mapping, so that
    /// files without field ids, registered in place, read correctly in every engine.
    pub async fn ensure_name_mapping(&self, name: &TableName) -> Result<()> {
        self.commit_loop(name, |table| async move {
            let md = table.metadata();
            if md.properties().contains_key(NAME_MAPPING_PROPERTY) {
                return Ok(Plan::Done(()));
            }
            let mapping = name_mapping_json(md.current_schema(), None)?;
            Ok(Plan::Commit {
                requirements: vec![TableRequirement::UuidMatch { uuid: md.uuid() }],
                updates: vec![TableUpdate::SetProperties {
                    updates: HashMap::from([(NAME_MAPPING_PROPERTY.to_string(), mapping)]),
                }],
                value: (),
            })
        })
        .await?;
        Ok(())
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

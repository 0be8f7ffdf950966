//! `schema`: required columns exist with the given types; with `forbid_extra`, no other column
//! exists. Answered from the schema alone, without reading rows.

use arrow_schema::Schema as ArrowSchema;
use serde_json::{Value as Json, json};
use toml::Value;

use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields, TypeSpec, type_name};

/// `kind = "schema"`.
#[derive(Debug)]
pub(crate) struct Schema {
    /// Name, type as written, type.
    columns: Vec<(String, String, TypeSpec)>,
    forbid_extra: bool,
}

/// What binding found: `Err` lists the problems, separated by "; ".
type Problems = Result<(), String>;

impl Check for Schema {
    const NAME: &'static str = "schema";
    const FIELDS: &'static [&'static str] = &["columns", "forbid_extra"];
    const ROW_LEVEL: bool = false;
    const READS_DATA: bool = false;
    type Bound = Problems;
    type State = ();

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let columns = match fields.take_value("columns").map(|v| v.into_inner()) {
            None => {
                return Err("a `schema` check needs `columns = { name = \"type\", ... }`".into());
            }
            Some(Value::Table(table)) => table
                .iter()
                .map(|(name, ty)| {
                    let text = ty.as_str().ok_or_else(|| {
                        format!("the type of column `{name}` must be a string such as \"int64\"")
                    })?;
                    let spec = TypeSpec::parse(text).ok_or_else(|| {
                        format!(
                            "unknown type `{text}` for column `{name}`; use one of any, bool, \
                             int8..int64, uint8..uint64, float32, float64, string, binary, date, \
                             decimal, timestamp, timestamp(us), timestamp(us, UTC)"
                        )
                    })?;
                    Ok((name.clone(), text.to_string(), spec))
                })
                .collect::<Result<Vec<_>, String>>()?,
            Some(other) => crate::config::column_list(&other, "columns")?
                .into_iter()
                .map(|name| (name, "any".to_string(), TypeSpec::Any))
                .collect(),
        };
        Ok(Schema {
            columns,
            forbid_extra: fields.take("forbid_extra")?.unwrap_or(false),
        })
    }

    /// None: the check reads no rows.
    fn columns(&self) -> Vec<String> {
        Vec::new()
    }

    fn default_name(&self) -> String {
        Self::NAME.to_string()
    }

    fn bind(&self, schema: &ArrowSchema) -> Result<Problems, String> {
        let mut problems = Vec::new();
        for (name, text, spec) in &self.columns {
            match schema.column_with_name(name) {
                None => problems.push(format!("missing column `{name}`")),
                Some((_, f)) if !spec.matches(f.data_type()) => problems.push(format!(
                    "column `{name}` is {}, expected {text}",
                    type_name(f.data_type())
                )),
                Some(_) => {}
            }
        }
        if self.forbid_extra {
            for f in schema.fields() {
                if !self.columns.iter().any(|(n, _, _)| n == f.name()) {
                    problems.push(format!("unexpected column `{}`", f.name()));
                }
            }
        }
        Ok(if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        })
    }

    fn new_state(&self, _: &Problems) {}

    /// Not called: a kind that does not read data is not fed batches. Should it be, the check
    /// reports an error rather than pass unseen.
    fn update(&self, _: &Problems, _: &mut (), _: &Input<'_>) -> Result<(), String> {
        Err("a `schema` check reads no rows".to_string())
    }

    fn merge(&self, _: &Problems, _: &mut (), _: (), _: usize) -> Result<(), String> {
        Ok(())
    }

    fn finish(&self, problems: &Problems, _: (), _: &Judge) -> Outcome {
        let threshold = json!({
            "columns": self
                .columns
                .iter()
                .map(|(n, t, _)| (n.clone(), Json::from(t.clone())))
                .collect::<serde_json::Map<_, _>>(),
            "forbid_extra": self.forbid_extra,
        });
        match problems {
            Ok(()) => Outcome {
                passed: true,
                observed: json!({ "problems": [] }),
                threshold,
                message: format!(
                    "all {} required columns present with their types",
                    self.columns.len()
                ),
                ..Outcome::default()
            },
            Err(problems) => Outcome {
                passed: false,
                observed: json!({ "problems": problems.split("; ").collect::<Vec<_>>() }),
                threshold,
                message: problems.clone(),
                ..Outcome::default()
            },
        }
    }
}

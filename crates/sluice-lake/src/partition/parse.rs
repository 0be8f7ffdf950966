//! The partition spec syntax of Iceberg's Spark and Trino DDL:
//! `day(ts), bucket(16, user_id), truncate(4, name), country`.

use iceberg::spec::{PartitionSpec, Schema, Transform, UnboundPartitionSpec};

use crate::error::{Error, Result};

/// One term of a partition spec: a transform of a source column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTerm {
    /// The source column (dotted for a field of a struct).
    pub column: String,
    /// The transform.
    pub transform: Transform,
}

impl PartitionTerm {
    /// The partition field's name, as Iceberg's engines name it (`ts_day`, `user_id_bucket`;
    /// the column itself for identity).
    pub fn field_name(&self) -> String {
        let suffix = match self.transform {
            Transform::Identity => return self.column.clone(),
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
            Transform::Hour => "hour",
            Transform::Bucket(_) => "bucket",
            Transform::Truncate(_) => "trunc",
            Transform::Void => "null",
            Transform::Unknown => "unknown",
        };
        format!("{}_{suffix}", self.column)
    }
}

impl std::fmt::Display for PartitionTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.column;
        match self.transform {
            Transform::Identity => write!(f, "{c}"),
            Transform::Year => write!(f, "year({c})"),
            Transform::Month => write!(f, "month({c})"),
            Transform::Day => write!(f, "day({c})"),
            Transform::Hour => write!(f, "hour({c})"),
            Transform::Bucket(n) => write!(f, "bucket({n}, {c})"),
            Transform::Truncate(w) => write!(f, "truncate({w}, {c})"),
            Transform::Void => write!(f, "void({c})"),
            Transform::Unknown => write!(f, "unknown({c})"),
        }
    }
}

/// Parses a partition spec such as `day(ts), bucket(16, user_id)`. Transforms: identity (a
/// bare column or `identity(c)`), `year`, `month`, `day`, `hour` (plural spellings too),
/// `bucket(N, c)`, `truncate(W, c)` (either argument order) and `void(c)`. An empty text is
/// an unpartitioned spec.
pub fn parse_partition_by(text: &str) -> Result<Vec<PartitionTerm>> {
    let invalid = |reason: String| Error::InvalidPartitionSpec {
        spec: text.to_string(),
        reason,
    };
    let mut terms = Vec::new();
    for raw in split_top_level(text).map_err(&invalid)? {
        let term = raw.trim();
        if term.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(invalid("an empty term (two commas in a row?)".to_string()));
        }
        let parsed = parse_term(term).map_err(|reason| invalid(format!("`{term}`: {reason}")))?;
        if terms
            .iter()
            .any(|t: &PartitionTerm| t.field_name() == parsed.field_name())
        {
            return Err(invalid(format!(
                "`{term}` repeats partition field `{}`",
                parsed.field_name()
            )));
        }
        terms.push(parsed);
    }
    Ok(terms)
}

fn split_top_level(text: &str) -> std::result::Result<Vec<&str>, String> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("a `)` without its `(`".to_string());
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a `(` without its `)`".to_string());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn column_name(text: &str) -> std::result::Result<String, String> {
    let name = text.trim();
    let name = name
        .strip_prefix('`')
        .and_then(|n| n.strip_suffix('`'))
        .unwrap_or(name);
    if name.is_empty() {
        return Err("a column name is missing".to_string());
    }
    if name.contains(['(', ')', ' ', '`', '"']) {
        return Err(format!("`{name}` is not a column name"));
    }
    Ok(name.to_string())
}

fn parse_term(term: &str) -> std::result::Result<PartitionTerm, String> {
    let Some(open) = term.find('(') else {
        return Ok(PartitionTerm {
            column: column_name(term)?,
            transform: Transform::Identity,
        });
    };
    if !term.ends_with(')') {
        return Err("text after the closing `)`".to_string());
    }
    let name = term[..open].trim().to_ascii_lowercase();
    let args: Vec<&str> = term[open + 1..term.len() - 1].split(',').collect();
    let one_column = |args: &[&str]| match args {
        [c] => column_name(c),
        _ => Err(format!(
            "`{name}` takes one column, e.g. `{name}(ts)`; got {} arguments",
            args.len()
        )),
    };
    let width_and_column = |args: &[&str]| -> std::result::Result<(u32, String), String> {
        let [a, b] = args else {
            return Err(format!(
                "`{name}` takes a number and a column, e.g. `{name}(16, id)`"
            ));
        };
        let (number, column) = match (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
            (Ok(n), Err(_)) => (n, b),
            (Err(_), Ok(n)) => (n, a),
            _ => {
                return Err(format!(
                    "`{name}` takes a number and a column, e.g. `{name}(16, id)`"
                ));
            }
        };
        if number == 0 {
            return Err(format!("`{name}` needs a number above 0"));
        }
        Ok((number, column_name(column)?))
    };
    let (column, transform) = match name.as_str() {
        "identity" => (one_column(&args)?, Transform::Identity),
        "year" | "years" => (one_column(&args)?, Transform::Year),
        "month" | "months" => (one_column(&args)?, Transform::Month),
        "day" | "days" | "date" => (one_column(&args)?, Transform::Day),
        "hour" | "hours" | "date_hour" => (one_column(&args)?, Transform::Hour),
        "void" => (one_column(&args)?, Transform::Void),
        "bucket" => {
            let (n, c) = width_and_column(&args)?;
            (c, Transform::Bucket(n))
        }
        "truncate" => {
            let (w, c) = width_and_column(&args)?;
            (c, Transform::Truncate(w))
        }
        other => {
            return Err(format!(
                "unknown transform `{other}`; use identity, year, month, day, hour, bucket, truncate or void"
            ));
        }
    };
    Ok(PartitionTerm { column, transform })
}

/// The spec of `terms` over `schema` (field ids assigned from 1000). A term whose column is
/// missing, or whose transform does not apply to the column's type, is an error naming both.
pub fn unbound_spec(
    text: &str,
    terms: &[PartitionTerm],
    schema: &Schema,
) -> Result<UnboundPartitionSpec> {
    let invalid = |reason: String| Error::InvalidPartitionSpec {
        spec: text.to_string(),
        reason,
    };
    let mut builder = PartitionSpec::builder(schema.clone());
    for term in terms {
        let field = schema.field_by_name(&term.column).ok_or_else(|| {
            invalid(format!(
                "`{term}`: column `{}` is not in the data (columns: {})",
                term.column,
                schema
                    .as_struct()
                    .fields()
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if term.transform.result_type(&field.field_type).is_err() {
            return Err(invalid(format!(
                "`{term}`: {} does not apply to column `{}` of type {}",
                transform_name(&term.transform),
                term.column,
                field.field_type
            )));
        }
        builder = builder
            .add_partition_field(&term.column, term.field_name(), term.transform)
            .map_err(|e| invalid(format!("`{term}`: {}", e.message())))?;
    }
    let spec = builder
        .build()
        .map_err(|e| invalid(e.message().to_string()))?;
    Ok(spec.into_unbound())
}

fn transform_name(transform: &Transform) -> &'static str {
    match transform {
        Transform::Identity => "identity",
        Transform::Year => "year",
        Transform::Month => "month",
        Transform::Day => "day",
        Transform::Hour => "hour",
        Transform::Bucket(_) => "bucket",
        Transform::Truncate(_) => "truncate",
        Transform::Void => "void",
        Transform::Unknown => "an unknown transform",
    }
}

/// A spec in the `--partition-by` syntax (`unpartitioned` when it has no fields).
pub fn describe_spec(spec: &PartitionSpec, schema: &Schema) -> String {
    if spec.fields().is_empty() {
        return "nothing (unpartitioned)".to_string();
    }
    spec.fields()
        .iter()
        .map(|f| {
            PartitionTerm {
                column: schema
                    .name_by_field_id(f.source_id)
                    .unwrap_or("?")
                    .to_string(),
                transform: f.transform,
            }
            .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a table's spec is the one `terms` describe (same source columns and transforms, in
/// order; field names aside).
pub fn spec_matches(spec: &PartitionSpec, schema: &Schema, terms: &[PartitionTerm]) -> bool {
    spec.fields().len() == terms.len()
        && spec.fields().iter().zip(terms).all(|(f, t)| {
            f.transform == t.transform
                && schema.field_by_name(&t.column).map(|c| c.id) == Some(f.source_id)
        })
}

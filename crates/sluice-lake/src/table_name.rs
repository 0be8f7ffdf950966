//! `namespace.table` names.

use std::fmt;
use std::str::FromStr;

use iceberg::{NamespaceIdent, TableIdent};

use crate::error::{Error, Result};

/// A table name: one or more namespace levels and a table, written `ns.table` or `a.b.table`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    namespace: Vec<String>,
    table: String,
}

impl TableName {
    /// A name from its parts.
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Result<Self> {
        let namespace: String = namespace.into();
        let table = table.into();
        format!("{namespace}.{table}").parse()
    }

    /// The namespace levels.
    pub fn namespace(&self) -> &[String] {
        &self.namespace
    }

    /// The table part.
    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn ident(&self) -> TableIdent {
        TableIdent::new(
            NamespaceIdent::from_vec(self.namespace.clone())
                .unwrap_or_else(|_| NamespaceIdent::new(self.namespace.join("."))),
            self.table.clone(),
        )
    }

    pub(crate) fn from_ident(ident: &TableIdent) -> Self {
        Self {
            namespace: ident.namespace().clone().inner(),
            table: ident.name().to_string(),
        }
    }
}

impl FromStr for TableName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidTableName {
            name: s.escape_default().to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() < 2 {
            return Err(invalid(
                "write it as namespace.table, e.g. analytics.events",
            ));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(invalid("empty namespace or table part"));
            }
            if part.chars().any(|c| c.is_control() || c == '/' || c == '@') {
                return Err(invalid("control characters, `/` and `@` are not allowed"));
            }
        }
        let (table, namespace) = parts.split_last().ok_or_else(|| invalid("empty name"))?;
        Ok(TableName {
            namespace: namespace.iter().map(|p| p.to_string()).collect(),
            table: table.to_string(),
        })
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace.join("."), self.table)
    }
}

/// Written as `namespace.table`, as on the command line.
impl serde::Serialize for TableName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TableName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_its_text() {
        let t: TableName = "a.b.events".parse().unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"a.b.events\"");
        assert_eq!(serde_json::from_str::<TableName>(&json).unwrap(), t);
        let err = serde_json::from_str::<TableName>("\"events\"").unwrap_err();
        assert!(err.to_string().contains("namespace.table"), "{err}");
    }

    #[test]
    fn parses_and_prints() {
        let t: TableName = "analytics.events".parse().unwrap();
        assert_eq!(t.namespace(), ["analytics"]);
        assert_eq!(t.table(), "events");
        assert_eq!(t.to_string(), "analytics.events");
        let t: TableName = "a.b.c".parse().unwrap();
        assert_eq!(t.namespace(), ["a", "b"]);
        for bad in ["events", "a..b", ".a", "a.", "a.b@main", "a.b/c"] {
            assert!(
                bad.parse::<TableName>().is_err(),
                "{bad} should be rejected"
            );
        }
    }
}

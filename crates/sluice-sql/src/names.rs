//! How SQL names a lake table at a ref.
//!
//! SQL's grammar has no `@`, so the ref goes inside a quoted identifier:
//!
//! | SQL | reads |
//! |---|---|
//! | `ns.t` | `main` of `ns.t` (or, in a check, the audited branch; see [`DefaultRef`]) |
//! | `ns."t@audit"` or `"ns.t@audit"` | branch or tag `audit` |
//! | `ns."t@4417284361532465930"` | that snapshot |
//! | `ns."t@main@2026-11-30T10:00:00Z"` | what `main` pointed at then |
//! | `a.b.t`, `"a.b.t@audit"` | a table in the nested namespace `a.b` |
//!
//! A bare name without a dot (`t`, `"t@x"`) is not a lake table: it is a CTE, a table
//! registered on the context, or unknown.

use datafusion::common::TableReference;
use sluice_lake::{RefSpec, TableName};

use crate::error::Result;

/// A lake table and the ref a query reads it at, as a table reference names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeRef {
    /// The table.
    pub name: TableName,
    /// The ref after `@`; `None` when the reference names none.
    pub spec: Option<RefSpec>,
}

impl LakeRef {
    /// The lake table a SQL table reference names, or `None` when it names no lake table
    /// (a single identifier without a dot). A name that looks like a lake table's but is
    /// malformed (an empty part, a ref that does not parse) is an error.
    pub fn from_reference(reference: &TableReference) -> Result<Option<Self>> {
        let text = match reference {
            TableReference::Bare { table } => {
                if !table.contains('.') {
                    return Ok(None);
                }
                table.to_string()
            }
            TableReference::Partial { schema, table } => format!("{schema}.{table}"),
            TableReference::Full {
                catalog,
                schema,
                table,
            } => format!("{catalog}.{schema}.{table}"),
        };
        Self::parse(&text).map(Some)
    }

    /// Parses `ns.t`, `ns.t@ref` or `ns.t@ref@time`.
    pub fn parse(text: &str) -> Result<Self> {
        let (table, spec) = match text.split_once('@') {
            Some((table, spec)) => (table, Some(RefSpec::parse(spec)?)),
            None => (text, None),
        };
        Ok(LakeRef {
            name: table.parse()?,
            spec,
        })
    }

    /// The quoted identifier that names this table at this ref in SQL, e.g. `"ns.t@audit"`.
    pub fn to_sql(&self) -> String {
        let text = match &self.spec {
            Some(spec) => format!("{}@{spec}", self.name),
            None => self.name.to_string(),
        };
        quote(&text)
    }
}

/// `text` as one SQL identifier: in double quotes, inner quotes doubled.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The ref at which a query reads a table it names without `@`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DefaultRef {
    /// `main`.
    #[default]
    Main,
    /// This branch where the table has it, `main` where it does not: how a check sees the
    /// lake a run is about to publish (the tables of the run at its branch, the others as
    /// they are).
    BranchOrMain(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake_ref(sql_name: TableReference) -> Option<LakeRef> {
        LakeRef::from_reference(&sql_name).unwrap()
    }

    #[test]
    fn each_documented_form_names_its_table_and_ref() {
        let main = lake_ref(TableReference::partial("ns", "t")).unwrap();
        assert_eq!(main.name.to_string(), "ns.t");
        assert_eq!(main.spec, None);

        let branch = lake_ref(TableReference::partial("ns", "t@audit")).unwrap();
        assert_eq!(branch.spec, Some(RefSpec::Named("audit".to_string())));
        assert_eq!(
            lake_ref(TableReference::bare("ns.t@audit")).unwrap(),
            branch
        );

        let at = lake_ref(TableReference::partial("ns", "t@main@2026-11-30T10:00:00Z")).unwrap();
        // A time to the second means the end of that second.
        assert!(
            matches!(at.spec, Some(RefSpec::AsOf(ref base, _)) if **base == RefSpec::main()),
            "{at:?}"
        );

        let nested = lake_ref(TableReference::full("a", "b", "t@x")).unwrap();
        assert_eq!(nested.name.namespace(), ["a", "b"]);
        assert_eq!(nested.name.table(), "t");
    }

    #[test]
    fn a_name_without_a_dot_is_not_a_lake_table() {
        assert_eq!(lake_ref(TableReference::bare("recent")), None);
        assert_eq!(lake_ref(TableReference::bare("t@audit")), None);
    }

    #[test]
    fn a_malformed_ref_is_an_error_that_names_it() {
        let error = LakeRef::from_reference(&TableReference::partial("ns", "t@main@yesterday"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("main@yesterday"), "{error}");
    }

    #[test]
    fn to_sql_quotes_the_whole_name() {
        let r = LakeRef::parse("ns.t@audit").unwrap();
        assert_eq!(r.to_sql(), "\"ns.t@audit\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}

//! A DataFusion session over a lake: the tables a query names are loaded at their refs and
//! registered on the session before it is planned.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use sluice_lake::{Lake, RefSpec, TableName};

use crate::error::{Error, Result};
use crate::names::{DefaultRef, LakeRef};
use crate::table::RefTable;

/// SQL over one lake. Tables are named as in [`crate::names`]; each query reads every table it
/// names at one snapshot, fixed when the query is planned.
pub struct SqlSession<'a> {
    lake: &'a Lake,
    ctx: SessionContext,
    default_ref: DefaultRef,
}

impl<'a> SqlSession<'a> {
    /// A session that reads tables named without `@` at `main`, with as many partitions as
    /// the machine has cores.
    pub fn new(lake: &'a Lake) -> Self {
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(std::thread::available_parallelism().map_or(1, |n| n.get()));
        SqlSession {
            lake,
            ctx: SessionContext::new_with_config(config),
            default_ref: DefaultRef::Main,
        }
    }

    /// Where tables named without `@` are read.
    pub fn with_default_ref(mut self, default_ref: DefaultRef) -> Self {
        self.default_ref = default_ref;
        self
    }

    /// The DataFusion context, for registering more tables or functions, or for
    /// DataFusion's own API. Lake tables are registered on it by [`SqlSession::sql`] and
    /// [`SqlSession::register`].
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers `name` at `spec` under `alias` (a plain name such as `audit`, or any table
    /// reference), so queries can name it that way.
    pub async fn register(&self, alias: &str, name: &TableName, spec: &RefSpec) -> Result<()> {
        let table = self
            .load(&format!("{name}@{spec}"), name, Some(spec))
            .await?;
        self.put(TableReference::from(alias), table)
    }

    /// Parses `sql`, loads every lake table it names at its ref and plans it, read-only:
    /// statements that would create, change or write anything are refused.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let statement = self.parse(sql)?;
        self.register_references(&statement).await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        options.verify_plan(&plan)?;
        Ok(self.ctx.execute_logical_plan(plan).await?)
    }

    /// Parses `sql` without loading anything: the check a query gets before a run writes.
    /// Anything but one query is refused.
    pub fn parse(&self, sql: &str) -> Result<DfStatement> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect)?;
        match &statement {
            DfStatement::Statement(inner) => match inner.as_ref() {
                Statement::Query(_) | Statement::Explain { .. } => Ok(statement),
                other => Err(Error::NotAQuery {
                    statement: statement_kind(other),
                }),
            },
            DfStatement::Explain(_) => Ok(statement),
            _ => Err(Error::NotAQuery {
                statement: "a DataFusion statement (CREATE EXTERNAL TABLE, COPY, ...)".to_string(),
            }),
        }
    }

    /// The lake tables a statement names, in the order they appear, without loading them.
    pub fn lake_references(&self, statement: &DfStatement) -> Result<Vec<LakeRef>> {
        let mut out = Vec::new();
        for reference in self.ctx.state().resolve_table_references(statement)? {
            if let Some(r) = LakeRef::from_reference(&reference)?
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn register_references(&self, statement: &DfStatement) -> Result<()> {
        for reference in self.ctx.state().resolve_table_references(statement)? {
            let Some(lake_ref) = LakeRef::from_reference(&reference)? else {
                continue;
            };
            if self.registered(&reference) {
                continue;
            }
            let label = match &lake_ref.spec {
                Some(spec) => format!("{}@{spec}", lake_ref.name),
                None => lake_ref.name.to_string(),
            };
            let table = self
                .load(&label, &lake_ref.name, lake_ref.spec.as_ref())
                .await?;
            self.put(reference, table)?;
        }
        Ok(())
    }

    /// `name` at `spec`, or at the session's default ref when `spec` is `None`.
    async fn load(
        &self,
        label: &str,
        name: &TableName,
        spec: Option<&RefSpec>,
    ) -> Result<RefTable> {
        let table = self.lake.load_table(name).await?;
        let (snapshot_id, label) = match (spec, &self.default_ref) {
            (Some(spec), _) => (table.resolve(spec)?, label.to_string()),
            (None, DefaultRef::BranchOrMain(branch)) if table.has_ref(branch) => (
                table.resolve(&RefSpec::Named(branch.clone()))?,
                format!("{label}@{branch}"),
            ),
            (None, _) => (
                table.resolve(&RefSpec::main())?,
                format!("{label}@{}", sluice_lake::MAIN),
            ),
        };
        Ok(RefTable::new(label, &table, snapshot_id)?)
    }

    /// Whether a table is registered under `reference` already (by this query, an earlier one,
    /// or the caller).
    fn registered(&self, reference: &TableReference) -> bool {
        let state = self.ctx.state();
        let defaults = &state.config().options().catalog;
        let resolved = reference
            .clone()
            .resolve(&defaults.default_catalog, &defaults.default_schema);
        self.ctx
            .catalog(&resolved.catalog)
            .and_then(|c| c.schema(&resolved.schema))
            .is_some_and(|s| s.table_exist(&resolved.table))
    }

    /// Registers `table` under `reference`, creating its catalog and schema when needed.
    fn put(&self, reference: TableReference, table: RefTable) -> Result<()> {
        let state = self.ctx.state();
        let defaults = &state.config().options().catalog;
        let resolved = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        let catalog = match self.ctx.catalog(&resolved.catalog) {
            Some(c) => c,
            None => {
                let c: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
                self.ctx
                    .register_catalog(resolved.catalog.as_ref(), c.clone());
                c
            }
        };
        let schema = match catalog.schema(&resolved.schema) {
            Some(s) => s,
            None => {
                let s = Arc::new(MemorySchemaProvider::new());
                catalog.register_schema(&resolved.schema, s.clone())?;
                s
            }
        };
        schema.register_table(resolved.table.to_string(), Arc::new(table))?;
        Ok(())
    }
}

/// A statement's kind in words: its first keywords, as SQL writes them.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second]
            if matches!(
                first.to_ascii_uppercase().as_str(),
                "CREATE" | "DROP" | "ALTER" | "SHOW" | "SET"
            ) =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "an empty statement".to_string(),
    }
}

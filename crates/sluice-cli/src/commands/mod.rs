//! One module per command (`branch` and `tag` share one), and what they all need: the
//! context of an invocation and the parsing of a `NS.TABLE@REF` target.

mod backfill;
mod check;
mod demo;
mod diff;
mod init;
mod log;
mod maintain;
mod merge;
mod metrics;
mod recover;
mod refs;
mod rollback;
mod rows;
mod run;
mod runs;
mod scan;
mod serve;
mod sql;
mod tables;
mod watch;

use anyhow::{Context, Result, bail};
use sluice_lake::{RefKind, RefSpec, TableName};
use sluice_wap::Pipeline;

use crate::cli::{Cli, Command};
use crate::render::Style;
use sluice_wap::config;

/// What every command gets: the parsed command line and how to colour its output.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub style: Style,
}

impl Ctx<'_> {
    /// The pipeline of the configuration the command line names (see [`config::load`]).
    pub async fn pipeline(&self) -> Result<Pipeline> {
        let config = config::load(self.cli.config.as_deref())?;
        tracing::info!(config = %config.source, "configuration");
        Pipeline::open(&config.pipeline)
            .await
            .with_context(|| format!("cannot open the lake described by {}", config.source))
    }

    /// Prints the command's JSON document; `watch` prints one compact document per line
    /// (JSON Lines), one per run.
    pub fn print_json(&self, value: &serde_json::Value) {
        let text = if matches!(self.cli.command, Command::Watch { .. }) {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        };
        outln!("{}", text.unwrap_or_default());
    }
}

/// Runs the command of `cli`; returns the process's exit code.
pub async fn execute(cli: &Cli) -> Result<u8> {
    let ctx = Ctx {
        cli,
        style: Style::detect(),
    };
    match &cli.command {
        Command::Init { force } => init::init(&ctx, *force),
        Command::Demo { dir } => demo::demo(&ctx, dir).await,
        Command::Run(args) => run::run(&ctx, args).await,
        Command::Watch {
            run,
            every,
            maintain_every,
        } => watch::watch(&ctx, run, *every, *maintain_every).await,
        Command::Backfill {
            run,
            batch_files,
            window,
        } => backfill::backfill(&ctx, run, *batch_files, *window).await,
        Command::Recover { wait } => recover::recover(&ctx, *wait).await,
        Command::Runs(sub) => runs::runs(&ctx, sub).await,
        Command::Branch(sub) => refs::refs(&ctx, sub.action(), RefKind::Branch).await,
        Command::Tag(sub) => refs::refs(&ctx, sub.action(), RefKind::Tag).await,
        Command::Tables { namespace } => tables::tables(&ctx, namespace.as_deref()).await,
        Command::Log { target, limit } => log::log(&ctx, target, *limit).await,
        Command::Diff { from, to, format } => diff::diff(&ctx, from, to, *format).await,
        Command::Maintain {
            table,
            dry_run,
            only,
            older_than,
            retain_last,
            orphans_older_than,
            min_file_size,
            checks,
        } => {
            maintain::maintain(
                &ctx,
                table,
                maintain::Flags {
                    dry_run: *dry_run,
                    only: only.clone(),
                    older_than: *older_than,
                    retain_last: *retain_last,
                    orphans_older_than: *orphans_older_than,
                    min_file_size: *min_file_size,
                    checks: checks.clone(),
                },
            )
            .await
        }
        Command::Metrics {
            target,
            column,
            last,
        } => metrics::metrics(&ctx, target, column.as_deref(), *last).await,
        Command::Merge {
            table,
            branch,
            tables,
            into,
        } => {
            let (tables, branch) = lake_wide(table, branch.as_deref(), tables, "BRANCH")?;
            merge::merge(&ctx, &tables, branch, into).await
        }
        Command::Rollback { table, to, branch } => {
            rollback::rollback(&ctx, table, to, branch).await
        }
        Command::Scan {
            target,
            columns,
            filter,
            out,
        } => {
            scan::scan(
                &ctx,
                target,
                columns.clone(),
                filter.as_deref(),
                rows_out(cli, target, out),
            )
            .await
        }
        Command::Sql { query, out } => sql::sql(&ctx, query, rows_out(cli, "the query", out)).await,
        Command::Serve(args) => serve::serve(&ctx, args).await,
        Command::Check {
            target,
            checks,
            samples,
            key_columns,
        } => check::check(&ctx, target, checks, *samples, key_columns).await,
    }
}

/// The tables and the ref name of a command that takes `TABLE NAME`, or `--tables A,B NAME`
/// (then the one positional value is the name).
fn lake_wide<'a>(
    first: &'a str,
    second: Option<&'a str>,
    tables: &'a [String],
    what: &str,
) -> Result<(Vec<TableName>, &'a str)> {
    let (names, name): (Vec<&str>, &str) = match (tables.is_empty(), second) {
        (true, Some(name)) => (vec![first], name),
        (true, None) => {
            bail!("give the table and the {what}: TABLE {what}, or --tables A,B {what}")
        }
        (false, None) => (tables.iter().map(String::as_str).collect(), first),
        (false, Some(_)) => bail!(
            "with --tables give only the {what} (the tables come from --tables), e.g. --tables ns.a,ns.b {what}"
        ),
    };
    let mut parsed = Vec::with_capacity(names.len());
    for n in names {
        let t: TableName = n.parse()?;
        if parsed.contains(&t) {
            bail!("--tables names {t} twice");
        }
        parsed.push(t);
    }
    Ok((parsed, name))
}

/// `NS.TABLE` (its `main`) or `NS.TABLE@REF`.
/// Where and how `scan` and `sql` write their rows (`--json` means JSON).
fn rows_out<'a>(cli: &Cli, label: &'a str, args: &'a crate::cli::OutputArgs) -> rows::RowsOut<'a> {
    rows::RowsOut {
        label,
        format: if cli.json {
            crate::cli::Format::Json
        } else {
            args.format
        },
        limit: args.limit,
        output: args.output.as_deref(),
    }
}

fn parse_target(target: &str) -> Result<(TableName, RefSpec)> {
    let (table, reference) = match target.split_once('@') {
        Some((t, r)) => (t, RefSpec::parse(r)?),
        None => (target, RefSpec::main()),
    };
    Ok((table.parse()?, reference))
}

/// Every column named by an option exists in the schema.
fn require_columns(
    table: &TableName,
    schema: &arrow::datatypes::Schema,
    columns: &[String],
    option: &str,
) -> Result<()> {
    for column in columns {
        if schema.field_with_name(column).is_err() {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            bail!(
                "{option}: `{column}` is not a column of {table} (its columns: {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

//! `sluice run`: one Write-Audit-Publish run over the new files of a source; `watch` and
//! `backfill` build their runs' options here too.

use std::io::IsTerminal;
use std::sync::Arc;

use std::path::Path;

use anyhow::{Result, bail};
use sluice_checks::CheckSuite;
use sluice_lake::{RefSpec, TableName};
use sluice_wap::{JobOptions, Mode, Pipeline, RunOptions, SchemaChange};

use super::{Ctx, require_columns};
use crate::cli::{ModeArg, RunArgs, SchemaChangeArg};
use crate::exit_code;
use crate::render::progress::Progress;
use crate::render::report::{print_job, print_run};
use crate::signals::Signals;

pub(super) async fn run(ctx: &Ctx<'_>, args: &RunArgs) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    if let Some(path) = &args.job {
        let job = job_options(ctx, args, path)?;
        let signals = Signals::listen(None, job.cancel.clone());
        let report = pipeline.run_job(&job).await?;
        print_job(ctx, &report);
        return Ok(signals
            .exit_code()
            .unwrap_or(exit_code::of_run(report.status)));
    }
    let options = run_options(ctx, args)?;
    check_key_columns(&pipeline, &options).await?;
    let signals = Signals::listen(None, options.cancel.clone());
    let report = pipeline.run(&options).await?;
    print_run(ctx, &report);
    Ok(signals
        .exit_code()
        .unwrap_or(exit_code::of_run(report.status)))
}

/// `--key-columns` name columns of the table (when it exists already; a first run creates it
/// from the files, whose columns the samples then show).
async fn check_key_columns(pipeline: &Pipeline, options: &RunOptions) -> Result<()> {
    if options.key_columns.is_empty() {
        return Ok(());
    }
    match pipeline
        .lake()
        .resolve(&options.table, &RefSpec::main())
        .await
    {
        Ok(resolved) => require_columns(
            &options.table,
            &resolved.schema,
            &options.key_columns,
            "--key-columns",
        ),
        Err(sluice_lake::Error::TableNotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The job file of `--job`, with the options of the command line that apply to every table.
pub(super) fn job_options(ctx: &Ctx<'_>, args: &RunArgs, path: &Path) -> Result<JobOptions> {
    let mut job = JobOptions::from_path(path, Some(author(ctx, args)?))?;
    for options in &mut job.tables {
        if args.message.is_some() {
            options.message = args.message.clone();
        }
        if args.truncate_timestamps {
            options.write.nanos = sluice_lake::schema::NanosToMicros::Truncate;
        }
        options.rewrite |= args.rewrite;
        options.keep_failed |= args.keep_failed;
        options.sample_size = args.samples;
        if !args.key_columns.is_empty() {
            options.key_columns = args.key_columns.clone();
        }
    }
    Ok(job)
}

fn author(ctx: &Ctx<'_>, args: &RunArgs) -> Result<String> {
    Ok(match &args.author {
        Some(author) => author.clone(),
        None => {
            let config = sluice_wap::config::load(ctx.cli.config.as_deref())?;
            sluice_wap::default_author(config.author.as_deref())
        }
    })
}

pub(super) fn run_options(ctx: &Ctx<'_>, args: &RunArgs) -> Result<RunOptions> {
    let (Some(source), Some(table)) = (&args.source, &args.table) else {
        bail!("give --source and --table, or --job");
    };
    let table: TableName = table.parse()?;
    let mut options = RunOptions::new(sluice_wap::source_location(source)?, table);
    if let Some(path) = &args.checks {
        options.checks = Some(CheckSuite::from_path(path)?);
    }
    options.mode = match args.mode {
        ModeArg::Copy => Mode::Copy,
        ModeArg::Register => Mode::Register,
    };
    options.on_schema_change = match args.on_schema_change {
        SchemaChangeArg::Fail => SchemaChange::Fail,
        SchemaChangeArg::AddColumns => SchemaChange::AddColumns,
    };
    options.rewrite = args.rewrite;
    options.keep_failed = args.keep_failed;
    options.shard = args.shard;
    options.partition_by = args.partition_by.clone();
    if args.truncate_timestamps {
        options.write.nanos = sluice_lake::schema::NanosToMicros::Truncate;
    }
    options.message = args.message.clone();
    options.author = Some(author(ctx, args)?);
    options.sample_size = args.samples;
    options.key_columns = args.key_columns.clone();
    if !ctx.cli.quiet && !ctx.cli.json && std::io::stderr().is_terminal() {
        options.progress = Some(Arc::new(Progress::new()));
    }
    Ok(options)
}

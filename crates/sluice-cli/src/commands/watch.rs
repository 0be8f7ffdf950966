//! `sluice watch`: a run whenever new files arrive, until Ctrl-C or SIGTERM.

use std::time::Duration;

use anyhow::Result;
use sluice_wap::StopSignal;

use super::Ctx;
use super::run::{job_options, run_options};
use crate::cli::RunArgs;
use crate::exit_code;
use crate::render::{
    self,
    report::{print_job, print_run},
};
use crate::signals::Signals;

/// The exit code is 1 when the highest code of its runs is a failure's, else 0: a failed
/// audit rolls back only its own batch, and watching goes on.
pub(super) async fn watch(
    ctx: &Ctx<'_>,
    run: &RunArgs,
    every: Duration,
    maintain_every: Option<Duration>,
) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    if let Some(path) = &run.job {
        return watch_job(ctx, &pipeline, run, path, every, maintain_every).await;
    }
    let options = run_options(ctx, run)?;
    let stop = StopSignal::new();
    let signals = Signals::listen(Some(stop.clone()), options.cancel.clone());
    if !ctx.cli.quiet && !ctx.cli.json {
        eprintln!(
            "watching {} every {} for {} (Ctrl-C stops after the current run)",
            options.source,
            render::duration(every),
            options.table
        );
    }
    let maintain = match maintain_every {
        Some(interval) => Some((interval, maintain_options(ctx, &options)?)),
        None => None,
    };
    let mut worst = exit_code::SUCCESS;
    pipeline
        .watch_maintained(
            &options,
            every,
            maintain,
            &stop,
            |report| {
                worst = worst.max(exit_code::of_run(report.status));
                print_run(ctx, report);
            },
            |maintained| say_maintained(ctx, maintained),
        )
        .await?;
    Ok(signals
        .exit_code()
        .unwrap_or(if worst == exit_code::FAILURE {
            exit_code::FAILURE
        } else {
            exit_code::SUCCESS
        }))
}

/// The maintenance of one table between runs: `[maintenance]` defaults, the compaction
/// audited with the checks its runs use.
fn maintain_options(
    ctx: &Ctx<'_>,
    options: &sluice_wap::RunOptions,
) -> Result<sluice_wap::MaintainOptions> {
    let mut m = super::maintain::maintain_options(
        ctx,
        options.table.clone(),
        &super::maintain::Flags::defaults(),
    )?;
    m.checks = options.checks.clone();
    Ok(m)
}

/// On stderr: with --json, stdout carries one document per run.
fn say_maintained(ctx: &Ctx<'_>, report: &sluice_wap::MaintainReport) {
    if !ctx.cli.quiet {
        for line in super::maintain::report_lines(report) {
            // The run's id is in `sluice runs list`; a line per step is enough here.
            if !line.starts_with("run ") {
                eprintln!("maintained {line}");
            }
        }
    }
}

async fn watch_job(
    ctx: &Ctx<'_>,
    pipeline: &sluice_wap::Pipeline,
    run: &RunArgs,
    path: &std::path::Path,
    every: Duration,
    maintain_every: Option<Duration>,
) -> Result<u8> {
    let job = job_options(ctx, run, path)?;
    let stop = StopSignal::new();
    let signals = Signals::listen(Some(stop.clone()), job.cancel.clone());
    if !ctx.cli.quiet && !ctx.cli.json {
        eprintln!(
            "watching the {} table(s) of {} every {} (Ctrl-C stops after the current run)",
            job.tables.len(),
            path.display(),
            render::duration(every),
        );
    }
    let maintain = match maintain_every {
        Some(interval) => Some((
            interval,
            job.tables
                .iter()
                .map(|t| maintain_options(ctx, t))
                .collect::<Result<Vec<_>>>()?,
        )),
        None => None,
    };
    let mut worst = exit_code::SUCCESS;
    pipeline
        .watch_job_maintained(
            &job,
            every,
            maintain,
            &stop,
            |report| {
                worst = worst.max(exit_code::of_run(report.status));
                print_job(ctx, report);
            },
            |maintained| say_maintained(ctx, maintained),
        )
        .await?;
    Ok(signals
        .exit_code()
        .unwrap_or(if worst == exit_code::FAILURE {
            exit_code::FAILURE
        } else {
            exit_code::SUCCESS
        }))
}

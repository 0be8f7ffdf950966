//! `sluice backfill`: historical files in batches, each its own transaction.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use sluice_wap::{Batching, StopSignal};

use super::Ctx;
use super::run::{job_options, run_options};
use crate::cli::RunArgs;
use crate::exit_code;
use crate::render::report::{job_json, print_job, print_run, run_json};
use crate::signals::Signals;

/// The exit code is the highest of its batches' runs.
pub(super) async fn backfill(
    ctx: &Ctx<'_>,
    run: &RunArgs,
    batch_files: u32,
    window: Option<Duration>,
) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let batching = match window {
        Some(w) => Batching::Window(w),
        None => Batching::Files(batch_files as usize),
    };
    if let Some(path) = &run.job {
        return backfill_job(ctx, &pipeline, run, path, batching).await;
    }
    let options = run_options(ctx, run)?;
    let stop = StopSignal::new();
    let signals = Signals::listen(Some(stop.clone()), options.cancel.clone());
    let mut reports = Vec::new();
    pipeline
        .backfill(&options, batching, &stop, |report| {
            if !ctx.cli.json {
                print_run(ctx, report);
            }
        })
        .await?
        .into_iter()
        .for_each(|r| reports.push(r));
    let code = reports
        .iter()
        .map(|r| exit_code::of_run(r.status))
        .max()
        .unwrap_or(exit_code::SUCCESS);
    if ctx.cli.json {
        ctx.print_json(&json!({
            "table": options.table,
            "batches": reports.iter().map(run_json).collect::<Vec<_>>(),
            "status": if code == exit_code::SUCCESS { "complete" } else { "stopped" },
        }));
    } else if reports.is_empty() {
        outln!(
            "nothing to do: every file under {} is already in {}",
            options.source,
            options.table
        );
    }
    Ok(signals.exit_code().unwrap_or(code))
}

async fn backfill_job(
    ctx: &Ctx<'_>,
    pipeline: &sluice_wap::Pipeline,
    run: &RunArgs,
    path: &std::path::Path,
    batching: Batching,
) -> Result<u8> {
    let job = job_options(ctx, run, path)?;
    let stop = StopSignal::new();
    let signals = Signals::listen(Some(stop.clone()), job.cancel.clone());
    let reports = pipeline
        .backfill_job(&job, batching, &stop, |report| {
            if !ctx.cli.json {
                print_job(ctx, report);
            }
        })
        .await?;
    let code = reports
        .iter()
        .map(|r| exit_code::of_run(r.status))
        .max()
        .unwrap_or(exit_code::SUCCESS);
    if ctx.cli.json {
        ctx.print_json(&json!({
            "job": path.display().to_string(),
            "batches": reports.iter().map(job_json).collect::<Vec<_>>(),
            "status": if code == exit_code::SUCCESS { "complete" } else { "stopped" },
        }));
    } else if reports.is_empty() {
        outln!(
            "nothing to do: every file of the job {} is already in its table",
            path.display()
        );
    }
    Ok(signals.exit_code().unwrap_or(code))
}

//! `sluice backfill`: historical files in batches, each its own transaction.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use sluice_wap::{Batching, StopSignal};

use super::Ctx;
use super::run::run_options;
use crate::cli::RunArgs;
use crate::exit_code;
use crate::render::report::{print_run, run_json};
use crate::signals::Signals;

/// The exit code is the highest of its batches' runs.
pub(super) async fn backfill(
    ctx: &Ctx<'_>,
    run: &RunArgs,
    batch_files: u32,
    window: Option<Duration>,
) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let options = run_options(ctx, run)?;
    let stop = StopSignal::new();
    let signals = Signals::listen(Some(stop.clone()), options.cancel.clone());
    let mut reports = Vec::new();
    pipeline
        .backfill(
            &options,
            match window {
                Some(w) => Batching::Window(w),
                None => Batching::Files(batch_files as usize),
            },
            &stop,
            |report| {
                if !ctx.cli.json {
                    print_run(ctx, report);
                }
            },
        )
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
            "table": run.table,
            "batches": reports.iter().map(run_json).collect::<Vec<_>>(),
            "status": if code == exit_code::SUCCESS { "complete" } else { "stopped" },
        }));
    } else if reports.is_empty() {
        outln!(
            "nothing to do: every file under {} is already in {}",
            run.source,
            run.table
        );
    }
    Ok(signals.exit_code().unwrap_or(code))
}

//! `sluice recover`: finish or roll back what a dead process left open.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use sluice_wap::Pipeline;

use super::Ctx;
use crate::{exit_code, render};
use sluice_wap::config;

/// Exits with 1 when a recovered run still has failures.
pub(super) async fn recover(ctx: &Ctx<'_>, wait: bool) -> Result<u8> {
    let config = config::load(ctx.cli.config.as_deref())?;
    let ttl = config.pipeline.lease_ttl;
    let pipeline = Pipeline::open(&config.pipeline).await?;
    let deadline = Instant::now() + ttl + Duration::from_secs(5);
    let mut recovered = Vec::new();
    let mut announced = false;
    let report = loop {
        let report = pipeline.recover().await?;
        recovered.extend(report.recovered.iter().cloned());
        if !wait || report.still_running.is_empty() || Instant::now() > deadline {
            break report;
        }
        if !announced && !ctx.cli.quiet {
            announced = true;
            let until = chrono::Utc::now()
                + chrono::Duration::from_std(deadline.saturating_duration_since(Instant::now()))
                    .unwrap_or_default();
            let runs: Vec<String> = report
                .still_running
                .iter()
                .map(ToString::to_string)
                .collect();
            eprintln!(
                "waiting until {} UTC at the latest for the lease of run {} to end (it ends early if its process exits; Ctrl-C stops waiting)",
                until.format("%H:%M:%S"),
                runs.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let failed = recovered.iter().any(|r| !r.failures.is_empty());
    if ctx.cli.json {
        ctx.print_json(&json!({
            "recovered": recovered.iter().map(|r| json!({"run_id": r.run_id, "name": r.name, "state": r.state, "hooks_completed": r.hooks_completed, "failures": r.failures})).collect::<Vec<_>>(),
            "still_running": report.still_running,
        }));
    } else {
        if recovered.is_empty() {
            outln!("nothing to recover");
        }
        for r in &recovered {
            outln!(
                "{} {} ({}): {}, {} hook(s) run",
                ctx.style.good("recovered"),
                r.run_id,
                r.name,
                render::word(&r.state),
                r.hooks_completed
            );
            for f in &r.failures {
                outln!("  {} {f}", ctx.style.bad("still failing:"));
            }
        }
        for id in &report.still_running {
            outln!(
                "{} {id}: its process is still running, or ran on another machine; if it stopped there, run `sluice recover --wait` to recover it once its lease ({}s) expires",
                ctx.style.warn("still running"),
                ttl.as_secs()
            );
        }
    }
    Ok(if failed {
        exit_code::FAILURE
    } else {
        exit_code::SUCCESS
    })
}

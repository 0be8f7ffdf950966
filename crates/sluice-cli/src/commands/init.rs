//! `sluice init`: a configuration to start from, with sample checks and events.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::Ctx;
use crate::{exit_code, samples};
use sluice_wap::config;

/// Writes `sluice.toml`, and for a first try a commented `checks.toml` and sample events in
/// `./raw/` when those do not exist yet, so that the README's first commands run as written.
pub(super) fn init(ctx: &Ctx<'_>, force: bool) -> Result<u8> {
    let path = Path::new("sluice.toml");
    if path.exists() && !force {
        bail!("sluice.toml already exists here; use --force to overwrite it");
    }
    std::fs::write(path, config::DEFAULT_CONFIG).context("cannot write sluice.toml")?;
    let dir = std::env::current_dir()?;
    config::parse(config::DEFAULT_CONFIG, &dir)?;
    let mut written = vec!["sluice.toml".to_string()];
    let checks = Path::new("checks.toml");
    if !checks.exists() {
        std::fs::write(checks, samples::SAMPLE_CHECKS).context("cannot write checks.toml")?;
        written.push("checks.toml".to_string());
    }
    let raw = Path::new("raw");
    if !raw.exists() {
        let sample = raw.join("sample-events.parquet");
        samples::write_parquet(&sample, &samples::events(0, 1_000, 1, false))?;
        written.push(sample.display().to_string());
    }
    if ctx.cli.json {
        ctx.print_json(&json!({"config": "sluice.toml", "written": written}));
    } else if !ctx.cli.quiet {
        outln!("wrote sluice.toml (SQLite catalog and warehouse under ./.sluice/)");
        if written.iter().any(|w| w == "checks.toml") {
            outln!("wrote checks.toml (sample audits, explained; see docs/checks.md)");
        }
        if written.iter().any(|w| w.starts_with("raw")) {
            outln!(
                "wrote raw/sample-events.parquet (1000 sample events to try; replace them with your files)"
            );
        }
        outln!("next: sluice run --source ./raw --table analytics.events --checks checks.toml");
    }
    Ok(exit_code::SUCCESS)
}

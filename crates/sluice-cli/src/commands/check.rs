//! `sluice check`: audit a ref with a checks file; nothing changes.

use std::path::Path;

use anyhow::Result;
use sluice_checks::{CheckSuite, EvalOptions};

use super::{Ctx, parse_target, require_columns};
use crate::exit_code;
use crate::render::report::print_audit;

/// Exits with 3, as a run whose audit failed, when the ref is not publishable.
pub(super) async fn check(
    ctx: &Ctx<'_>,
    target: &str,
    checks: &Path,
    samples: usize,
    key_columns: &[String],
) -> Result<u8> {
    let (name, spec) = parse_target(target)?;
    let suite = CheckSuite::from_path(checks)?;
    let pipeline = ctx.pipeline().await?;
    let resolved = pipeline.lake().resolve(&name, &spec).await?;
    require_columns(&name, &resolved.schema, key_columns, "--key-columns")?;
    let options = EvalOptions {
        sample_size: samples,
        key_columns: key_columns.to_vec(),
        ..EvalOptions::default()
    };
    let report = pipeline.audit_ref(&name, &spec, &suite, options).await?;
    if ctx.cli.json {
        ctx.print_json(&serde_json::to_value(&report)?);
    } else {
        print_audit(&report);
        let verdict = if report.publishable() {
            ctx.style.good("publishable")
        } else {
            ctx.style.bad("not publishable")
        };
        outln!("{target}: {verdict}");
    }
    Ok(if report.publishable() {
        exit_code::SUCCESS
    } else {
        exit_code::AUDIT_FAILED
    })
}

//! `sluice merge`: publish a branch into another.

use anyhow::Result;
use sluice_lake::{RefName, TableName};

use super::Ctx;
use crate::{exit_code, render};

pub(super) async fn merge(ctx: &Ctx<'_>, table: &str, branch: &str, into: &str) -> Result<u8> {
    let name: TableName = table.parse()?;
    let pipeline = ctx.pipeline().await?;
    let (source, target) = (RefName::new(branch)?, RefName::new(into)?);
    let outcome = pipeline.merge(&name, &source, &target).await?;
    if ctx.cli.json {
        ctx.print_json(&serde_json::to_value(&outcome)?);
    } else {
        outln!(
            "{} {branch} into {into} of {name} ({}): {into} is at snapshot {}",
            ctx.style.good("merged"),
            render::word(&outcome.kind),
            outcome.snapshot_id
        );
    }
    Ok(exit_code::SUCCESS)
}

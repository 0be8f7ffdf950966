//! `sluice merge`: publish a branch into another, in one table or in several at once.

use anyhow::Result;
use sluice_lake::{RefName, TableName};

use super::Ctx;
use crate::{exit_code, render};

pub(super) async fn merge(
    ctx: &Ctx<'_>,
    tables: &[TableName],
    branch: &str,
    into: &str,
) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let (source, target) = (RefName::new(branch)?, RefName::new(into)?);
    if let [name] = tables {
        let outcome = pipeline.merge(name, &source, &target).await?;
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
        return Ok(exit_code::SUCCESS);
    }
    let outcomes = pipeline.merge_many(tables, &source, &target).await?;
    if ctx.cli.json {
        let tables: Vec<serde_json::Value> = tables
            .iter()
            .zip(&outcomes)
            .map(|(t, o)| {
                let mut v = serde_json::to_value(o).unwrap_or_default();
                v["table"] = serde_json::json!(t.to_string());
                v
            })
            .collect();
        ctx.print_json(&serde_json::json!({ "branch": branch, "into": into, "tables": tables }));
    } else {
        outln!(
            "{} {branch} into {into} of {} table(s) in one commit",
            ctx.style.good("merged"),
            tables.len()
        );
        for (name, outcome) in tables.iter().zip(&outcomes) {
            outln!(
                "  {name} ({}): {into} is at snapshot {}",
                render::word(&outcome.kind),
                outcome.snapshot_id
            );
        }
    }
    Ok(exit_code::SUCCESS)
}

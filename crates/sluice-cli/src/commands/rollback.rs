//! `sluice rollback`: move a branch back to one of its ancestors.

use anyhow::Result;
use serde_json::json;
use sluice_lake::{RefName, RefSpec, TableName};

use super::Ctx;
use crate::exit_code;

pub(super) async fn rollback(ctx: &Ctx<'_>, table: &str, to: &str, branch: &str) -> Result<u8> {
    let name: TableName = table.parse()?;
    let pipeline = ctx.pipeline().await?;
    let id = pipeline
        .lake()
        .rollback(&name, &RefName::new(branch)?, &RefSpec::parse(to)?)
        .await?;
    if ctx.cli.json {
        ctx.print_json(&json!({"table": name.to_string(), "branch": branch, "snapshot_id": id}));
    } else {
        outln!(
            "{} {branch} of {name} to snapshot {id}",
            ctx.style.good("rolled back")
        );
    }
    Ok(exit_code::SUCCESS)
}

//! `sluice tables`: the tables of the catalog.

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::exit_code;

pub(super) async fn tables(ctx: &Ctx<'_>, namespace: Option<&str>) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let tables = pipeline.lake().list_tables(namespace).await?;
    if ctx.cli.json {
        ctx.print_json(&json!(
            tables.iter().map(ToString::to_string).collect::<Vec<_>>()
        ));
    } else {
        for t in tables {
            outln!("{t}");
        }
    }
    Ok(exit_code::SUCCESS)
}

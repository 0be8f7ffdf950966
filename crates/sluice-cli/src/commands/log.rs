//! `sluice log`: the commit history of a ref.

use anyhow::Result;

use super::{Ctx, parse_target};
use crate::exit_code;
use crate::render::{Fit, table};

pub(super) async fn log(ctx: &Ctx<'_>, target: &str, limit: Option<usize>) -> Result<u8> {
    let (name, spec) = parse_target(target)?;
    let pipeline = ctx.pipeline().await?;
    let commits = pipeline.lake().log(&name, &spec, limit).await?;
    if ctx.cli.json {
        ctx.print_json(&serde_json::to_value(&commits)?);
    } else {
        let rows: Vec<Vec<String>> = commits
            .iter()
            .map(|c| {
                vec![
                    c.snapshot_id.to_string(),
                    // RFC 3339, as `REF@<time>` takes it: the time the ref reached the
                    // commit, so that a time copied from here reads a state that includes it.
                    c.reached_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    c.operation.clone(),
                    c.message.clone().unwrap_or_default(),
                    c.author.clone().unwrap_or_default(),
                    c.added_records.map(|n| format!("+{n}")).unwrap_or_default(),
                    c.total_records.map(|n| n.to_string()).unwrap_or_default(),
                    c.summary
                        .get(sluice_lake::summary::AUDIT_PROPERTY)
                        .cloned()
                        .unwrap_or_default(),
                    // The run that made the commit: the same id on every table a job wrote.
                    c.summary
                        .get(sluice_lake::summary::RUN_ID_PROPERTY)
                        .cloned()
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &[
                    "SNAPSHOT",
                    "TIME",
                    "OPERATION",
                    "MESSAGE",
                    "AUTHOR",
                    "ADDED",
                    "ROWS",
                    "AUDIT",
                    "RUN"
                ],
                &rows,
                Fit {
                    whole: &[0, 1, 8],
                    droppable: &[8, 4, 2, 5, 7],
                }
            )
        );
    }
    Ok(exit_code::SUCCESS)
}

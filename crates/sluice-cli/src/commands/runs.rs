//! `sluice runs`: past runs, from the journal.

use anyhow::{Context, Result};
use sluice_txn::RunFilter;

use super::Ctx;
use crate::cli::RunsCommand;
use crate::exit_code;
use crate::render::{self, Fit, table};

pub(super) async fn runs(ctx: &Ctx<'_>, sub: &RunsCommand) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    match sub {
        RunsCommand::List { limit } => {
            let runs = pipeline
                .list_runs(&RunFilter::all().with_limit(*limit))
                .await?;
            if ctx.cli.json {
                ctx.print_json(&serde_json::to_value(&runs)?);
            } else {
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.run_id.to_string(),
                            r.name.clone(),
                            render::word(&r.state),
                            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            r.error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table(
                        &["RUN", "NAME", "STATE", "STARTED (UTC)", "ERROR"],
                        &rows,
                        Fit {
                            whole: &[0, 3],
                            droppable: &[1],
                        }
                    )
                );
            }
        }
        RunsCommand::Show { run_id } => {
            let id: uuid::Uuid = run_id.parse().with_context(|| {
                format!("`{run_id}` is not a run id; list them with `sluice runs list`")
            })?;
            let run = pipeline.show_run(id).await?;
            if ctx.cli.json {
                ctx.print_json(&serde_json::to_value(&run)?);
            } else {
                outln!(
                    "run {} ({}) {}",
                    run.run_id,
                    run.name,
                    render::word(&run.state)
                );
                outln!("params: {}", run.params);
                if let Some(e) = &run.error {
                    outln!("error: {e}");
                }
                let rows: Vec<Vec<String>> = run
                    .steps
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            render::word(&s.state),
                            s.attempts.to_string(),
                            s.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                            s.errors.last().map(|e| e.error.clone()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table(
                        &["STEP", "STATE", "ATTEMPTS", "DURATION", "LAST ERROR"],
                        &rows,
                        Fit {
                            whole: &[3],
                            droppable: &[],
                        }
                    )
                );
                let hooks: Vec<Vec<String>> = run
                    .hooks
                    .iter()
                    .map(|h| {
                        vec![
                            render::word(&h.kind),
                            h.name.clone(),
                            h.payload.to_string(),
                            render::word(&h.state),
                            h.attempts.to_string(),
                        ]
                    })
                    .collect();
                if !hooks.is_empty() {
                    out!(
                        "{}",
                        table(
                            &["HOOK", "NAME", "PAYLOAD", "STATE", "ATTEMPTS"],
                            &hooks,
                            Fit::default()
                        )
                    );
                }
            }
        }
    }
    Ok(exit_code::SUCCESS)
}

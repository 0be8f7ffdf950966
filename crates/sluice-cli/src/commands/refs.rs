//! `sluice branch` and `sluice tag`: the same three actions on either kind of ref.

use anyhow::{Result, bail};
use serde_json::json;
use sluice_lake::{RefKind, RefName, RefSpec, TableName};

use super::Ctx;
use crate::cli::RefAction;
use crate::exit_code;
use crate::render::{Fit, table};

pub(super) async fn refs(ctx: &Ctx<'_>, action: RefAction<'_>, kind: RefKind) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let lake = pipeline.lake();
    match action {
        RefAction::List { table: t } => {
            let name: TableName = t.parse()?;
            let refs: Vec<_> = lake
                .list_refs(&name)
                .await?
                .into_iter()
                .filter(|r| r.kind == kind)
                .collect();
            if ctx.cli.json {
                ctx.print_json(&serde_json::to_value(&refs)?);
            } else {
                let rows: Vec<Vec<String>> = refs
                    .iter()
                    .map(|r| vec![r.name.clone(), r.snapshot_id.to_string()])
                    .collect();
                out!(
                    "{}",
                    table(
                        &[&kind.as_str().to_uppercase(), "SNAPSHOT"],
                        &rows,
                        Fit::default()
                    )
                );
            }
        }
        RefAction::Create {
            table: t,
            name,
            tables,
            from,
        } => {
            let (names, name) = super::lake_wide(t, name, tables, "NAME")?;
            let ref_name = RefName::new(name)?;
            let spec = RefSpec::parse(from)?;
            if !tables.is_empty() {
                let ids = match kind {
                    RefKind::Branch => lake.create_branch_many(&names, &ref_name, &spec).await?,
                    RefKind::Tag => lake.create_tag_many(&names, &ref_name, &spec).await?,
                };
                if ctx.cli.json {
                    let created: Vec<serde_json::Value> = names
                        .iter()
                        .zip(&ids)
                        .map(|(t, id)| json!({"table": t.to_string(), "snapshot_id": id}))
                        .collect();
                    ctx.print_json(&json!({kind.as_str(): name, "tables": created}));
                } else {
                    for (t, id) in names.iter().zip(&ids) {
                        outln!("created {kind} {name} of {t} at snapshot {id}");
                    }
                }
                return Ok(exit_code::SUCCESS);
            }
            let table_name = names[0].clone();
            let t = table_name.to_string();
            let id = match kind {
                RefKind::Branch => lake.create_branch(&table_name, &ref_name, &spec).await?,
                RefKind::Tag => lake.create_tag(&table_name, &ref_name, &spec).await?,
            };
            if ctx.cli.json {
                ctx.print_json(&json!({"table": t, kind.as_str(): name, "snapshot_id": id}));
            } else {
                outln!("created {kind} {name} of {table_name} at snapshot {id}");
            }
        }
        RefAction::Delete { table: t, name } => {
            let table_name: TableName = t.parse()?;
            let ref_name = RefName::new(name)?;
            // A failed batch kept by `run --keep-failed`: its run never published, so the
            // branch goes with the run's snapshots and files.
            if kind == RefKind::Branch
                && let Some(run_id) = name.strip_prefix("sluice/failed/")
                && lake
                    .list_refs(&table_name)
                    .await?
                    .iter()
                    .any(|r| r.name == ref_name.as_str() && r.kind == RefKind::Branch)
            {
                let discarded = lake.discard_run(&table_name, &ref_name, run_id).await?;
                if ctx.cli.json {
                    ctx.print_json(&json!({
                        "table": t,
                        "deleted": name,
                        "kind": kind.as_str(),
                        "files_deleted": discarded.files_deleted,
                    }));
                } else {
                    outln!(
                        "deleted {kind} {name} of {table_name} and the {} file(s) of its failed run",
                        discarded.files_deleted
                    );
                }
                return Ok(exit_code::SUCCESS);
            }
            match lake.delete_ref(&table_name, &ref_name, kind).await {
                Ok(()) => {}
                Err(e @ sluice_lake::Error::WrongRefKind { found, .. }) => {
                    bail!("{e}; delete it with `sluice {found} delete {t} {name}`")
                }
                Err(e) => return Err(e.into()),
            }
            if ctx.cli.json {
                ctx.print_json(&json!({"table": t, "deleted": name, "kind": kind.as_str()}));
            } else {
                outln!("deleted {kind} {name} of {table_name}");
            }
        }
    }
    Ok(exit_code::SUCCESS)
}

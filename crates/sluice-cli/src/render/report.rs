//! Run reports and audit reports, as text and as JSON.

use serde_json::json;
use sluice_checks::AuditReport;
use sluice_wap::{JobReport, RunReport, RunStatus};

use crate::commands::Ctx;
use crate::render::{Fit, table};

/// A run report as `--json` prints it.
pub fn run_json(report: &RunReport) -> serde_json::Value {
    // The same shape as `sluice check --json`: every field of a check result.
    let checks = report
        .audit
        .as_ref()
        .map(|a| serde_json::to_value(&a.checks).unwrap_or_default())
        .unwrap_or_else(|| json!([]));
    let durations: serde_json::Map<String, serde_json::Value> = report
        .steps
        .iter()
        .map(|s| (format!("{}_ms", s.step), json!(s.millis)))
        .collect();
    let mut doc = json!({
        // A run that had nothing to do has no id: "" as ever.
        "run_id": report.run_id.map(|id| id.to_string()).unwrap_or_default(),
        "status": report.status.as_str(),
        "table": report.table,
        "files": report.files,
        "rows": report.rows,
        "mode": report.mode,
        "copied_as_is": report.copied_as_is,
        "partitions": report.partitions,
        "main_files_read": report.main_files_read,
        "snapshot_id": report.snapshot_id,
        "publish": report.publish,
        "run_key": report.run_key,
        "branch": report.branch,
        "checks": checks,
        "table_created": report.table_created,
        "failed_step": report.failed_step,
        "error": run_error(report),
        "durations": durations,
        "commits": report.commits,
        "commit_conflicts": report.commit_conflicts,
    });
    if let Some(kept) = &report.kept_branch {
        doc["kept_branch"] = json!(kept);
    }
    if let Some(q) = &report.quarantine {
        doc["quarantine"] = json!({"table": q.table.to_string(), "rows": q.rows});
    }
    doc
}

/// Why a run failed, with what to do about it, and when its rollback is unfinished.
fn run_error(report: &RunReport) -> Option<String> {
    let mut error = report.error.clone()?;
    if let Some(next) = report
        .failure
        .as_ref()
        .and_then(|f| f.lake_error())
        .and_then(crate::render::error::next_step)
    {
        error.push_str(&next);
    }
    if !report.undo_failed.is_empty() {
        error.push_str("; run `sluice recover` to finish the rollback");
    }
    Some(error)
}

/// A run report: one JSON document with `--json`, else its outcome in a line and the audit.
pub fn print_run(ctx: &Ctx<'_>, report: &RunReport) {
    if ctx.cli.json {
        ctx.print_json(&run_json(report));
        return;
    }
    let s = &ctx.style;
    let total = report
        .steps
        .iter()
        .find(|t| t.step == "total")
        .map(|t| t.millis)
        .unwrap_or(0);
    match report.status {
        RunStatus::Published => outln!(
            "{} {} file(s), {} rows into {} → main {} ({}){} in {:.2}s",
            s.good("published"),
            report.files.len(),
            report.rows,
            report.table,
            report
                .snapshot_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
            match report.publish {
                Some(sluice_lake::PublishKind::Rebase) => "rebased onto a moved main",
                _ => "fast-forward",
            },
            report
                .quarantine
                .as_ref()
                .map(|q| format!(", and set {} row(s) aside in {}", q.rows, q.table))
                .unwrap_or_default(),
            total as f64 / 1000.0
        ),
        RunStatus::NothingToDo => outln!(
            "{}: no new files for {}{}",
            s.dim("nothing to do"),
            report.table,
            report
                .error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        RunStatus::AuditFailed => {
            outln!(
                "{} for {} file(s) into {}: rolled back, {}",
                s.bad("audit failed"),
                report.files.len(),
                report.table,
                if report.table_created {
                    unchanged(report)
                } else {
                    "main unchanged".to_string()
                }
            );
            if let Some(kept) = &report.kept_branch {
                outln!(
                    "the rejected batch is kept on branch {kept}: `sluice diff {t}@main {t}@{kept}` \
                     shows it; `sluice branch delete {t} {kept}` deletes it and its files",
                    t = report.table
                );
            }
        }
        RunStatus::Interrupted => {
            eprintln!(
                "{} in step {}: rolled back, nothing was published; {}",
                s.warn("stopped"),
                report.failed_step.as_deref().unwrap_or("start"),
                unchanged(report)
            );
        }
        RunStatus::Failed => {
            eprintln!(
                "{} in step {}: {}",
                s.bad("run failed"),
                report.failed_step.as_deref().unwrap_or("start"),
                run_error(report).as_deref().unwrap_or("unknown error")
            );
            eprintln!("nothing was published; {}", unchanged(report));
        }
    }
    if !report.partitions.is_empty() && !ctx.cli.quiet {
        print_partitions(&report.partitions);
    }
    if let Some(read) = report.main_files_read
        && !ctx.cli.quiet
    {
        outln!(
            "table-scoped checks read {} of {} data file(s) of main",
            read.files_read,
            read.files_in_main
                .map(|n| n.to_string())
                .unwrap_or_else(|| "the".to_string())
        );
    }
    if let Some(audit) = &report.audit
        && !ctx.cli.quiet
    {
        print_audit(audit);
    }
}

/// A job report as `--json` prints it: the job's outcome and one run document per table.
pub fn job_json(report: &JobReport) -> serde_json::Value {
    let durations: serde_json::Map<String, serde_json::Value> = report
        .steps
        .iter()
        .map(|s| (format!("{}_ms", s.step), json!(s.millis)))
        .collect();
    let mut error = report.error.clone();
    if let Some(e) = &mut error
        && !report.undo_failed.is_empty()
    {
        e.push_str("; run `sluice recover` to finish the rollback");
    }
    json!({
        "run_id": report.run_id.map(|id| id.to_string()).unwrap_or_default(),
        "status": report.status.as_str(),
        "branch": report.branch,
        "run_key": report.run_key,
        "atomic": report.atomic,
        "tables": report.tables.iter().map(run_json).collect::<Vec<_>>(),
        "failed_step": report.failed_step,
        "error": error,
        "durations": durations,
        "commits": report.commits,
        "commit_conflicts": report.commit_conflicts,
    })
}

/// A job report: one JSON document with `--json`, else the job's outcome, then each table's.
pub fn print_job(ctx: &Ctx<'_>, report: &JobReport) {
    if ctx.cli.json {
        ctx.print_json(&job_json(report));
        return;
    }
    let s = &ctx.style;
    let names: Vec<String> = report.tables.iter().map(|t| t.table.to_string()).collect();
    let how = if report.atomic {
        "in one commit"
    } else {
        "table by table"
    };
    match report.status {
        RunStatus::Published => {
            outln!(
                "{} job run {} over {} ({how})",
                s.good("published"),
                report.run_id.map(|i| i.to_string()).unwrap_or_default(),
                names.join(", ")
            );
            for table in &report.tables {
                print_run(ctx, table);
            }
        }
        RunStatus::NothingToDo => outln!(
            "{}: no new files for {}",
            s.dim("nothing to do"),
            names.join(", ")
        ),
        RunStatus::AuditFailed => {
            outln!(
                "{} in job run {}: rolled back, no table was published",
                s.bad("audit failed"),
                report.run_id.map(|i| i.to_string()).unwrap_or_default()
            );
            for table in &report.tables {
                let failed = table.audit.as_ref().is_some_and(|a| !a.publishable());
                if failed {
                    print_run(ctx, table);
                } else if table.status != RunStatus::NothingToDo {
                    outln!(
                        "{}: {} passed its own audit and was rolled back with the job; {}",
                        s.dim("rolled back"),
                        table.table,
                        unchanged(table)
                    );
                }
            }
        }
        RunStatus::Interrupted | RunStatus::Failed => {
            eprintln!(
                "{} in step {}: {}",
                s.bad(if report.status == RunStatus::Failed {
                    "job failed"
                } else {
                    "job stopped"
                }),
                report.failed_step.as_deref().unwrap_or("start"),
                report.error.as_deref().unwrap_or("unknown error")
            );
            if !report.undo_failed.is_empty() {
                eprintln!("undoing it failed too: run `sluice recover` to finish the rollback");
            }
            eprintln!(
                "nothing was published; main of {} is unchanged",
                names.join(", ")
            );
        }
    }
}

/// What a run that did not publish left of the table, in words.
fn unchanged(report: &RunReport) -> String {
    let table = &report.table;
    match (report.table_existed, report.table_created) {
        (_, true) => format!("table {table} was created by this run and has no rows yet"),
        (Some(false), false) => format!("table {table} was not created"),
        _ => format!("main of {table} is unchanged"),
    }
}

/// Rows and files per partition written: every partition when there are few, else the
/// largest and a count of the rest.
fn print_partitions(partitions: &[sluice_lake::partition::PartitionRows]) {
    const SHOWN: usize = 10;
    let mut largest: Vec<_> = partitions.iter().collect();
    largest.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.partition.cmp(&b.partition)));
    let header = ["partition", "rows", "files"];
    let rows: Vec<Vec<String>> = largest
        .iter()
        .take(SHOWN)
        .map(|p| vec![p.partition.clone(), p.rows.to_string(), p.files.to_string()])
        .collect();
    out!(
        "{}",
        table::table(
            &header,
            &rows,
            Fit {
                whole: &[1, 2],
                ..Fit::default()
            }
        )
    );
    if partitions.len() > SHOWN {
        let rest: u64 = largest[SHOWN..].iter().map(|p| p.rows).sum();
        outln!(
            "… and {} more partition(s) with {rest} rows ({} partitions in all)",
            partitions.len() - SHOWN,
            partitions.len()
        );
    }
}

/// The audit table fitted to the terminal, then the failing-row samples of every problem check
/// and the verdict.
pub fn print_audit(audit: &AuditReport) {
    let (header, rows) = audit.table_cells();
    out!(
        "{}",
        table::table_fit(
            &header,
            &rows,
            Fit {
                whole: &[],
                droppable: &[3, 2],
            },
            table::terminal_width()
        )
    );
    out!("{}", audit.render_details());
}

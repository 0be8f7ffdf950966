//! `sluice maintain`: compaction, manifest rewrite, snapshot expiry and orphan removal.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use sluice_checks::CheckSuite;
use sluice_lake::{ExpireOptions, TableName};
use sluice_wap::{MaintainOptions, MaintainReport, MaintainStatus, MaintainStep};

use super::Ctx;
use crate::cli::MaintainStepArg;
use crate::exit_code;

/// The flags of `sluice maintain`.
pub(super) struct Flags {
    pub(super) dry_run: bool,
    pub(super) only: Vec<MaintainStepArg>,
    pub(super) older_than: Option<Duration>,
    pub(super) retain_last: Option<u32>,
    pub(super) orphans_older_than: Option<Duration>,
    pub(super) min_file_size: Option<u64>,
    pub(super) checks: Option<PathBuf>,
}

impl Flags {
    /// No flags: every step, with the defaults of sluice.toml.
    pub(super) fn defaults() -> Self {
        Self {
            dry_run: false,
            only: Vec::new(),
            older_than: None,
            retain_last: None,
            orphans_older_than: None,
            min_file_size: None,
            checks: None,
        }
    }
}

fn step(arg: MaintainStepArg) -> MaintainStep {
    match arg {
        MaintainStepArg::RewriteDataFiles => MaintainStep::RewriteDataFiles,
        MaintainStepArg::RewriteManifests => MaintainStep::RewriteManifests,
        MaintainStepArg::ExpireSnapshots => MaintainStep::ExpireSnapshots,
        MaintainStepArg::RemoveOrphanFiles => MaintainStep::RemoveOrphanFiles,
    }
}

/// The maintenance options: the flags, else the table's `[maintenance.table."NS.T"]` of
/// sluice.toml, else `[maintenance]`, else Iceberg's defaults and each ref's retention.
pub(super) fn maintain_options(
    ctx: &Ctx<'_>,
    table: TableName,
    flags: &Flags,
) -> Result<MaintainOptions> {
    let defaults = sluice_wap::config::load(ctx.cli.config.as_deref())?
        .maintenance
        .for_table(&table.to_string());
    let older_than = flags.older_than.or(defaults.older_than);
    let retain_last = flags.retain_last.or(defaults.retain_last);
    let mut options = MaintainOptions::new(table);
    if !flags.only.is_empty() {
        let mut steps: Vec<MaintainStep> = flags.only.iter().copied().map(step).collect();
        steps.sort();
        steps.dedup();
        options.steps = steps;
    }
    options.dry_run = flags.dry_run;
    options.expire = ExpireOptions {
        older_than_ms: older_than.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        retain_last: retain_last.map(|n| n as usize),
        dry_run: flags.dry_run,
        now_ms: None,
    };
    if let Some(age) = flags.orphans_older_than.or(defaults.orphans_older_than) {
        options.orphans_older_than = age;
    }
    options.min_file_size = flags.min_file_size;
    if let Some(path) = &flags.checks {
        options.checks = Some(CheckSuite::from_path(path)?);
    }
    Ok(options)
}

pub(super) async fn maintain(ctx: &Ctx<'_>, table: &str, flags: Flags) -> Result<u8> {
    let name: TableName = table.parse()?;
    let options = maintain_options(ctx, name, &flags)?;
    let pipeline = ctx.pipeline().await?;
    let report = pipeline.maintain(&options).await?;
    if ctx.cli.json {
        ctx.print_json(&serde_json::to_value(&report)?);
    } else {
        for line in report_lines(&report) {
            outln!("{line}");
        }
    }
    Ok(match report.status {
        MaintainStatus::Ok => exit_code::SUCCESS,
        MaintainStatus::AuditFailed => exit_code::AUDIT_FAILED,
        MaintainStatus::Failed => exit_code::FAILURE,
    })
}

fn mib(bytes: u64) -> String {
    crate::render::bytes(bytes)
}

/// What a maintenance did, a line per step (also printed by `watch --maintain-every`).
pub(super) fn report_lines(report: &MaintainReport) -> Vec<String> {
    let dry = report.dry_run;
    let mut lines = Vec::new();
    let table = &report.table;
    if let Some(c) = &report.rewrite_data_files {
        let plan = &c.plan;
        lines.push(if plan.is_empty() {
            format!(
                "{table}: rewrite-data-files: nothing to compact (no partition has two files below {})",
                mib(plan.min_file_size)
            )
        } else if let Some(done) = &c.compacted {
            let how = match c.published {
                Some(sluice_lake::PublishKind::Rebase) => " (main had moved: re-made on its head)",
                Some(_) => "",
                None => " — not published",
            };
            format!(
                "{table}: rewrite-data-files: {} file(s) ({}) into {} ({}), {} rows and {} column checksums equal{how}",
                done.files_rewritten,
                mib(done.bytes_rewritten),
                done.files_written,
                mib(done.bytes_written),
                done.rows,
                done.columns_checked
            )
        } else {
            format!(
                "{table}: rewrite-data-files: {} {} file(s) ({}) in {} partition(s){}",
                if dry { "would compact" } else { "planned" },
                plan.files,
                mib(plan.bytes),
                plan.groups,
                if dry { "" } else { " — not written" }
            )
        });
        if let Some(audit) = &c.audit {
            lines.push(format!(
                "{table}: checks on the compacted branch: {}",
                sluice_wap::audit_summary(audit)
            ));
        }
    }
    if let Some(m) = &report.rewrite_manifests {
        lines.push(if m.manifests_replaced == 0 {
            format!(
                "{table}: rewrite-manifests: nothing to do ({} manifest(s))",
                m.manifests_before
            )
        } else {
            format!(
                "{table}: rewrite-manifests: {} {} manifest(s) into {} ({} before, {} after)",
                if dry { "would rewrite" } else { "rewrote" },
                m.manifests_replaced,
                m.manifests_written,
                m.manifests_before,
                m.manifests_after
            )
        });
    }
    if let Some(e) = &report.expire_snapshots {
        lines.push(format!(
            "{table}: expire-snapshots: {} {} snapshot(s), {} kept{}; {} {} manifest list(s), {} manifest(s), {} data file(s) ({}){}",
            if dry { "would expire" } else { "expired" },
            e.snapshots.len(),
            e.kept,
            if e.refs.is_empty() {
                String::new()
            } else {
                format!("; refs past their max age: {}", e.refs.join(", "))
            },
            if dry { "would delete" } else { "deleted" },
            e.manifest_lists,
            e.manifests,
            e.data_files,
            mib(e.bytes),
            if e.left_outside > 0 {
                format!(
                    "; {} file(s) outside the table's location left as they are",
                    e.left_outside
                )
            } else {
                String::new()
            }
        ));
    }
    if let Some(o) = &report.remove_orphan_files {
        lines.push(format!(
            "{table}: remove-orphan-files: {} {} orphan file(s) ({}) of {} listed; kept {} too recent, {} of runs in flight",
            if dry { "would delete" } else { "deleted" },
            o.deleted,
            mib(o.bytes),
            o.listed,
            o.too_recent,
            o.in_flight
        ));
    }
    match report.status {
        MaintainStatus::Ok => {}
        _ => lines.push(format!(
            "{table}: maintenance {} at {}: {}; what it had written and not published was undone",
            if report.status == MaintainStatus::AuditFailed {
                "stopped by the checks"
            } else {
                "failed"
            },
            report.failed_step.as_deref().unwrap_or("a step"),
            report.error.as_deref().unwrap_or("unknown error")
        )),
    }
    if let Some(run) = &report.run_id {
        lines.push(format!("run {run} (sluice runs show {run})"));
    }
    lines
}

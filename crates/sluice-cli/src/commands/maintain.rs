//! `sluice maintain`: snapshot expiry under Iceberg's ref retention.

use anyhow::Result;
use sluice_lake::{ExpireOptions, TableName};

use super::Ctx;
use crate::exit_code;

/// The expiry options: the flags, else `[maintenance]` of sluice.toml, else each ref's
/// retention.
pub(super) fn expire_options(
    ctx: &Ctx<'_>,
    older_than: Option<std::time::Duration>,
    retain_last: Option<u32>,
    dry_run: bool,
) -> Result<ExpireOptions> {
    let defaults = sluice_wap::config::load(ctx.cli.config.as_deref())?.maintenance;
    let older_than = older_than.or(defaults.older_than);
    let retain_last = retain_last.or(defaults.retain_last);
    Ok(ExpireOptions {
        older_than_ms: older_than.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        retain_last: retain_last.map(|n| n as usize),
        dry_run,
        now_ms: None,
    })
}

pub(super) async fn maintain(
    ctx: &Ctx<'_>,
    table: &str,
    dry_run: bool,
    older_than: Option<std::time::Duration>,
    retain_last: Option<u32>,
) -> Result<u8> {
    let name: TableName = table.parse()?;
    let options = expire_options(ctx, older_than, retain_last, dry_run)?;
    let pipeline = ctx.pipeline().await?;
    let expired = pipeline.lake().expire_snapshots(&name, &options).await?;
    if ctx.cli.json {
        ctx.print_json(&serde_json::json!({
            "table": name.to_string(),
            "expire_snapshots": expired,
        }));
        return Ok(exit_code::SUCCESS);
    }
    let verb = if dry_run { "would expire" } else { "expired" };
    outln!(
        "{name}: {verb} {} snapshot(s), {} kept; {} ref(s) past their max age{}",
        expired.snapshots.len(),
        expired.kept,
        expired.refs.len(),
        if expired.refs.is_empty() {
            String::new()
        } else {
            format!(" ({})", expired.refs.join(", "))
        }
    );
    outln!(
        "{} {} manifest list(s), {} manifest(s), {} data file(s){}",
        if dry_run { "would delete" } else { "deleted" },
        expired.manifest_lists,
        expired.manifests,
        expired.data_files,
        if expired.left_outside > 0 {
            format!(
                "; {} file(s) outside the table's location left as they are",
                expired.left_outside
            )
        } else {
            String::new()
        }
    );
    Ok(exit_code::SUCCESS)
}

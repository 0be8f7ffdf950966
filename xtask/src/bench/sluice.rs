//! The sluice side: its release build and its `--json` run report.

use std::path::PathBuf;
use std::process::Output;

use anyhow::{Context, Result, bail};

use super::tail;
use super::timing::{Measurement, Steps};
use crate::json::Json;
use crate::layout::Layout;

/// `cargo build --release -p sluice-cli --locked`; returns the binary.
pub(crate) fn build_sluice(layout: &Layout) -> Result<PathBuf> {
    println!("building: cargo build --release -p sluice-cli --locked");
    let status = crate::process::cargo()
        .args(["build", "--release", "-p", "sluice-cli", "--locked"])
        .current_dir(&layout.workspace)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building sluice in release failed ({status})");
    }
    let binary = layout.target_dir().join("release").join("sluice");
    if !binary.is_file() {
        bail!("the release build did not produce {}", binary.display());
    }
    Ok(binary)
}

/// `cargo build --release -p sluice-benches --bin reencode-floor --locked`; returns the binary.
pub(super) fn build_floor(layout: &Layout) -> Result<PathBuf> {
    build_bench_binary(layout, "reencode-floor")
}

/// `cargo build --release -p sluice-benches --bin NAME --locked`; returns the binary.
pub(crate) fn build_bench_binary(layout: &Layout, name: &str) -> Result<PathBuf> {
    println!("building: cargo build --release -p sluice-benches --bin {name} --locked");
    let status = crate::process::cargo()
        .args([
            "build",
            "--release",
            "-p",
            "sluice-benches",
            "--bin",
            name,
            "--locked",
        ])
        .current_dir(&layout.workspace)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building {name} in release failed ({status})");
    }
    let binary = layout.target_dir().join("release").join(name);
    if !binary.is_file() {
        bail!("the release build did not produce {}", binary.display());
    }
    Ok(binary)
}

pub(super) fn sluice_measurement(
    output: &Output,
    wall_s: f64,
    peak_kib: u64,
) -> Result<Measurement> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "sluice run failed ({}):\n{}{}",
            output.status,
            tail(&output.stdout, 40),
            tail(&output.stderr, 20)
        );
    }
    let report = Json::parse(&stdout).context("sluice printed no JSON report")?;
    parse_sluice_report(&report).map(|(rows, steps, commits)| Measurement {
        wall_s,
        peak_kib,
        rows,
        steps,
        commits: Some(commits),
        copied_as_is: report.get("copied_as_is").and_then(Json::as_u64),
        partition_files: partition_files(&report),
    })
}

/// Partitions and data files a run wrote to a partitioned table (`partitions` of its report),
/// or `None` for an unpartitioned table (its report lists no partitions).
fn partition_files(report: &Json) -> Option<(u64, u64)> {
    let Some(Json::Array(partitions)) = report.get("partitions") else {
        return None;
    };
    if partitions.is_empty() {
        return None;
    }
    let files = partitions
        .iter()
        .filter_map(|p| p.get("files").and_then(Json::as_u64))
        .sum();
    Some((partitions.len() as u64, files))
}

/// Rows, step seconds and commits of a `sluice --json run` report that published.
fn parse_sluice_report(report: &Json) -> Result<(u64, Steps, u64)> {
    let status = report.get("status").and_then(Json::as_str).unwrap_or("?");
    if status != "published" {
        bail!("sluice reported status {status:?}, not \"published\"");
    }
    let rows = report
        .get("rows")
        .and_then(Json::as_u64)
        .context("the report has no `rows`")?;
    let commits = report
        .get("commits")
        .and_then(Json::as_u64)
        .context("the report has no `commits`")?;
    let durations = report
        .get("durations")
        .context("the report has no `durations`")?;
    let mut steps = Vec::new();
    for name in ["list", "write", "audit", "publish", "total"] {
        let millis = durations
            .get(&format!("{name}_ms"))
            .and_then(Json::as_u64)
            .with_context(|| format!("the report has no `durations.{name}_ms`"))?;
        steps.push((name.to_string(), millis as f64 / 1000.0));
    }
    Ok((rows, steps, commits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::timing::step;

    #[test]
    fn sluice_report_gives_rows_steps_and_commits() {
        let report = Json::parse(
            r#"{"status": "published", "rows": 40000, "commits": 2,
                "durations": {"list_ms": 3, "write_ms": 111, "audit_ms": 9,
                              "publish_ms": 9, "total_ms": 132}}"#,
        )
        .unwrap();
        let (rows, steps, commits) = parse_sluice_report(&report).unwrap();
        assert_eq!((rows, commits), (40000, 2));
        assert_eq!(step(&steps, "write"), Some(0.111));
        assert_eq!(step(&steps, "total"), Some(0.132));

        let failed = Json::parse(r#"{"status": "audit_failed", "rows": 0}"#).unwrap();
        let message = parse_sluice_report(&failed).unwrap_err().to_string();
        assert!(message.contains("audit_failed"), "{message}");
    }

    #[test]
    fn partition_files_are_counted_only_for_partitioned_tables() {
        let partitioned = Json::parse(
            r#"{"partitions": [{"partition": "ts_day=2026-01-01", "files": 2},
                               {"partition": "ts_day=2026-01-02", "files": 1}]}"#,
        )
        .unwrap();
        assert_eq!(partition_files(&partitioned), Some((2, 3)));
        let unpartitioned = Json::parse(r#"{"partitions": []}"#).unwrap();
        assert_eq!(partition_files(&unpartitioned), None);
        assert_eq!(partition_files(&Json::parse("{}").unwrap()), None);
    }
}

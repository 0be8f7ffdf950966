//! `cargo xtask bench-maintain`: what `sluice maintain` buys a table fed by many small runs.
//! N one-file runs (one commit and one small data file each), then scans of `main` timed
//! before and after `sluice maintain`, in one invocation: inside one process (`scan-main`: a
//! column of every row, and every column, through `Lake::scan_all`), and as a command
//! (`sluice sql` summing a column, process start included). The in-process scan of a column,
//! what a reader pays for the table's layout, must be [`TARGET_SPEED_UP`] times faster.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::{build_bench_binary, build_sluice, generate_events, median, peer_file};
use crate::json::Json;
use crate::layout::Layout;
use crate::python;

/// How much faster the scan of `main` must be after the maintenance.
pub const TARGET_SPEED_UP: f64 = 5.0;

/// Options of `bench-maintain`.
#[derive(Debug, PartialEq, Eq)]
pub struct MaintainBenchOptions {
    /// One-file runs.
    pub runs: u32,
    /// Rows per file.
    pub rows: u64,
    /// Timed scans before and after (the median is compared).
    pub repeat: u32,
    /// Holds gen_events.py.
    pub peer_dir: Option<PathBuf>,
}

impl Default for MaintainBenchOptions {
    fn default() -> Self {
        Self {
            runs: 300,
            rows: 1000,
            repeat: 5,
            peer_dir: None,
        }
    }
}

pub fn parse_options(options: &[&str]) -> Result<MaintainBenchOptions> {
    let mut out = MaintainBenchOptions::default();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (*option, None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => rest
                    .next()
                    .map(|v| v.to_string())
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        let number = |text: String| -> Result<u64> {
            match text.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{flag} takes a whole number above 0, not {text:?}"),
            }
        };
        match flag {
            "--runs" => {
                out.runs = u32::try_from(number(value()?)?).context("--runs is too large")?
            }
            "--rows" => out.rows = number(value()?)?,
            "--repeat" => {
                out.repeat = u32::try_from(number(value()?)?).context("--repeat is too large")?
            }
            "--peer-dir" => out.peer_dir = Some(PathBuf::from(value()?)),
            other => {
                bail!("unknown option {other:?} for `bench-maintain`; see `cargo xtask --help`")
            }
        }
    }
    if out.runs < 2 {
        bail!("--runs must be at least 2: one file has nothing to compact");
    }
    Ok(out)
}

const SCAN: &str = "SELECT count(*) AS n, sum(event_id) AS s FROM bench.events";

/// Runs `sluice --json ARGS` in `lake`; its parsed stdout.
fn sluice_json(sluice: &Path, lake: &Path, args: &[&str]) -> Result<Json> {
    let out = Command::new(sluice)
        .arg("--json")
        .args(args)
        .current_dir(lake)
        .output()?;
    if !out.status.success() {
        bail!(
            "`sluice {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Json::parse(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("`sluice {}` printed no JSON", args.join(" ")))
}

/// The median wall time of `repeat` scans of main, and the scan's answer.
fn time_scans(sluice: &Path, lake: &Path, repeat: u32) -> Result<(f64, String)> {
    let mut times = Vec::new();
    let mut answer = String::new();
    for _ in 0..repeat {
        let started = Instant::now();
        let rows = sluice_json(sluice, lake, &["sql", SCAN])?;
        times.push(started.elapsed().as_secs_f64());
        answer = rows.to_pretty();
    }
    Ok((median(&times), answer))
}

/// The median seconds of `repeat` in-process scans of `columns` (all when empty) of main.
fn in_process(scan_main: &Path, lake: &Path, repeat: u32, columns: &[&str]) -> Result<f64> {
    let out = Command::new(scan_main)
        .arg(lake)
        .arg("bench.events")
        .arg(repeat.to_string())
        .args(columns)
        .output()?;
    if !out.status.success() {
        bail!(
            "scan-main failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("scan-main printed {text:?}"))
}

/// Data files and snapshots of main, from its head's summary and its log.
fn main_shape(sluice: &Path, lake: &Path) -> Result<(u64, usize)> {
    let log = sluice_json(sluice, lake, &["log", "bench.events"])?;
    let Json::Array(commits) = log else {
        bail!("`sluice log` printed no list");
    };
    let files = commits
        .first()
        .and_then(|c| c.get("summary"))
        .and_then(|s| s.get("total-data-files"))
        .and_then(Json::as_str)
        .and_then(|v| v.parse().ok())
        .context("main's head has no total-data-files")?;
    Ok((files, commits.len()))
}

pub fn run(layout: &Layout, options: &MaintainBenchOptions) -> Result<()> {
    let peer_dir = options
        .peer_dir
        .clone()
        .unwrap_or_else(|| layout.workspace.join("..").join("shared").join("bench"));
    let generator = peer_file(&peer_dir, "gen_events.py")?;
    let sluice = build_sluice(layout)?;
    let scan_main = build_bench_binary(layout, "scan-main")?;
    python::ensure(layout, python::BENCH)?;
    let bench_dir = layout.target_dir().join("bench-maintain");
    let data = generate_events(
        &layout.venv_python(),
        &generator,
        &bench_dir,
        options.runs,
        options.rows,
        "snappy",
    )?;
    let lake = bench_dir.join("lake");
    if lake.exists() {
        fs::remove_dir_all(&lake).with_context(|| format!("cannot remove {}", lake.display()))?;
    }
    fs::create_dir_all(&lake)?;
    let init = Command::new(&sluice)
        .args(["-q", "init"])
        .current_dir(&lake)
        .output()?;
    if !init.status.success() {
        bail!(
            "`sluice init` failed:\n{}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    println!(
        "{} one-file runs of {} rows each into bench.events (backfill --batch-files 1)",
        options.runs, options.rows
    );
    let source = data.to_string_lossy().into_owned();
    let started = Instant::now();
    sluice_json(
        &sluice,
        &lake,
        &[
            "backfill",
            "--source",
            &source,
            "--table",
            "bench.events",
            "--batch-files",
            "1",
        ],
    )?;
    println!("  ingested in {:.1} s", started.elapsed().as_secs_f64());
    let (files_before, log_before) = main_shape(&sluice, &lake)?;
    let (before, answer_before) = time_scans(&sluice, &lake, options.repeat)?;
    let column_before = in_process(&scan_main, &lake, options.repeat, &["event_id"])?;
    let all_before = in_process(&scan_main, &lake, options.repeat, &[])?;
    let started = Instant::now();
    let report = sluice_json(
        &sluice,
        &lake,
        &[
            "maintain",
            "bench.events",
            "--older-than",
            "0s",
            "--retain-last",
            "1",
        ],
    )?;
    let maintain_s = started.elapsed().as_secs_f64();
    if report.get("status").and_then(Json::as_str) != Some("ok") {
        bail!("maintain did not finish: {}", report.to_pretty());
    }
    let (files_after, log_after) = main_shape(&sluice, &lake)?;
    let (after, answer_after) = time_scans(&sluice, &lake, options.repeat)?;
    let column_after = in_process(&scan_main, &lake, options.repeat, &["event_id"])?;
    let all_after = in_process(&scan_main, &lake, options.repeat, &[])?;
    if answer_before != answer_after {
        bail!("the scan's answer changed: {answer_before} before, {answer_after} after");
    }
    let manifests = report
        .get("rewrite_manifests")
        .and_then(|m| m.get("manifests_after"))
        .and_then(Json::as_u64);
    let speed_up = column_before / column_after;
    let all_speed_up = all_before / all_after;
    let command_speed_up = before / after;
    println!();
    println!(
        "| main | data files | snapshots | manifests | scan of event_id, in-process | scan of every column, in-process | `sluice sql` sum(event_id), process |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| before | {files_before} | {log_before} | — | {column_before:.4} s | {all_before:.4} s | {before:.3} s |"
    );
    println!(
        "| after `maintain` ({maintain_s:.1} s) | {files_after} | {log_after} | {} | {column_after:.4} s | {all_after:.4} s | {after:.3} s |",
        manifests.map_or("?".to_string(), |m| m.to_string())
    );
    println!(
        "| speed-up | | | | **{speed_up:.1}×** (target ≥ {TARGET_SPEED_UP}×) | {all_speed_up:.1}× | {command_speed_up:.1}× |"
    );
    println!();
    println!(
        "medians of {} scans each; the same answer before and after",
        options.repeat
    );
    let result = Json::object([
        ("runs", Json::number(f64::from(options.runs))),
        ("rows_per_file", Json::number(options.rows as f64)),
        ("data_files_before", Json::number(files_before as f64)),
        ("data_files_after", Json::number(files_after as f64)),
        ("snapshots_before", Json::number(log_before as f64)),
        ("snapshots_after", Json::number(log_after as f64)),
        (
            "manifests_after",
            manifests.map_or(Json::Null, |m| Json::number(m as f64)),
        ),
        ("column_scan_before_s", Json::number(column_before)),
        ("column_scan_after_s", Json::number(column_after)),
        ("full_scan_before_s", Json::number(all_before)),
        ("full_scan_after_s", Json::number(all_after)),
        ("command_before_s", Json::number(before)),
        ("command_after_s", Json::number(after)),
        ("maintain_s", Json::number(maintain_s)),
        ("speed_up", Json::number(speed_up)),
        ("full_scan_speed_up", Json::number(all_speed_up)),
        ("command_speed_up", Json::number(command_speed_up)),
        ("target_speed_up", Json::number(TARGET_SPEED_UP)),
    ]);
    let result_file = bench_dir.join("result.json");
    fs::write(&result_file, result.to_pretty())?;
    println!("wrote {}", result_file.display());
    if files_after > 5 {
        bail!("main still has {files_after} data files after maintain (target ≤ 5)");
    }
    if speed_up < TARGET_SPEED_UP {
        bail!(
            "the scan of a column is {speed_up:.1}× faster after maintain (target ≥ {TARGET_SPEED_UP}×)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!(parse_options(&[]).unwrap(), MaintainBenchOptions::default());
        let o = parse_options(&["--runs", "20", "--rows=100", "--repeat", "3"]).unwrap();
        assert_eq!((o.runs, o.rows, o.repeat), (20, 100, 3));
        assert!(parse_options(&["--runs", "1"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }
}

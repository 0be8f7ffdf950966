//! `cargo xtask bench-sql`: `sluice sql` against DuckDB's `iceberg_scan` over the same Iceberg
//! tables, interleaved in one invocation: a GROUP BY over the whole events table, and a one-day
//! filter on the same events partitioned by day (with the share of files it reads).

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bench::{build_sluice, generate_events, spread_over_days};
use crate::json::Json;
use crate::layout::Layout;
use crate::python;

const SCRIPT: &str = include_str!("bench_sql.py");

/// sluice's wall time over DuckDB's that the GROUP BY must stay within.
const TARGET_RATIO: f64 = 1.5;
/// The share of the partitioned table's files a one-day filter may read.
const TARGET_FILES: f64 = 0.1;

/// Options of `bench-sql`.
#[derive(Debug, PartialEq, Eq)]
pub struct SqlBenchOptions {
    pub files: u32,
    pub rows: u64,
    pub repeat: u32,
    pub peer_dir: Option<PathBuf>,
}

pub fn parse_options(options: &[&str]) -> Result<SqlBenchOptions> {
    let mut out = SqlBenchOptions {
        files: 10,
        rows: 1_000_000,
        repeat: 5,
        peer_dir: None,
    };
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let mut value = || -> Result<&str> {
            inline
                .or_else(|| rest.next().copied())
                .with_context(|| format!("{flag} needs a value"))
        };
        let number = |text: &str| -> Result<u64> {
            text.parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{flag}: {text:?} is not a positive number"))
        };
        match flag {
            "--files" => {
                out.files = u32::try_from(number(value()?)?).context("--files is too large")?
            }
            "--rows" => out.rows = number(value()?)?,
            "--repeat" => {
                out.repeat = u32::try_from(number(value()?)?).context("--repeat is too large")?
            }
            "--peer-dir" => out.peer_dir = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?} for `bench-sql`; see `cargo xtask --help`"),
        }
    }
    Ok(out)
}

pub fn run(layout: &Layout, options: &SqlBenchOptions) -> Result<()> {
    let peer_dir = options
        .peer_dir
        .clone()
        .unwrap_or_else(|| layout.workspace.join("..").join("shared").join("bench"));
    let generator = crate::bench::peer_file(&peer_dir, "gen_events.py")?;
    let sluice = build_sluice(layout)?;
    python::ensure(layout, python::BENCH)?;
    let bench_python = layout.venv_python();
    let duckdb_python = python::ensure_venv(&layout.duckdb_venv(), python::DUCKDB_ICEBERG)?;
    let data = generate_events(
        &bench_python,
        &generator,
        &layout.target_dir().join("bench-wap"),
        options.files,
        options.rows,
        "zstd",
    )?;
    let spread = spread_over_days(&bench_python, &data, 30)?;
    let bench_dir = layout.target_dir().join("bench-sql");
    fs::create_dir_all(&bench_dir)?;
    let script = bench_dir.join("bench_sql.py");
    fs::write(&script, SCRIPT)?;
    println!(
        "{} files x {} rows: writing the tables, then {} queries per tool, interleaved",
        options.files, options.rows, options.repeat
    );
    let output = Command::new(&duckdb_python)
        .arg(&script)
        .arg(&sluice)
        .arg(&data)
        .arg(&spread)
        .arg(&bench_dir)
        .arg(options.repeat.to_string())
        .output()
        .context("cannot run the benchmark script")?;
    if !output.status.success() {
        bail!(
            "the benchmark script failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let result = Json::parse(text.trim()).context("the benchmark script printed no JSON")?;
    let median = |key: &str| {
        let mut values: Vec<f64> = match result.get(key) {
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_f64).collect(),
            _ => Vec::new(),
        };
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let number = |key: &str| result.get(key).and_then(Json::as_f64).unwrap_or(f64::NAN);
    if !matches!(result.get("same_rows"), Some(Json::Bool(true))) {
        bail!("sluice and DuckDB disagree on the GROUP BY's rows: {text}");
    }
    let (ours, theirs) = (median("sluice_s"), median("duckdb_s"));
    let ratio = ours / theirs;
    let (day_ours, day_theirs) = (median("one_day_sluice_s"), median("one_day_duckdb_s"));
    let (read, total) = (number("files_read"), number("files_total"));
    let share = read / total;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "bench-sql: {} files x {} rows, median of {} run(s) per tool, {cores} cores",
        options.files, options.rows, options.repeat
    );
    println!("| query | sluice s | DuckDB s | sluice/DuckDB | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| GROUP BY event_type over every row | {ours:.3} | {theirs:.3} | **{ratio:.2}** | ≤ {TARGET_RATIO} |"
    );
    println!(
        "| one day of 30, partitioned by day(ts) | {day_ours:.3} | {day_theirs:.3} | {:.2} | files read {read} of {total} = **{share:.3}** (≤ {TARGET_FILES}) |",
        day_ours / day_theirs
    );
    fs::write(bench_dir.join("result.json"), text.trim())?;
    println!("\nwrote {}", bench_dir.join("result.json").display());
    let mut missed = Vec::new();
    if ratio > TARGET_RATIO {
        missed.push(format!("GROUP BY ratio {ratio:.2} > {TARGET_RATIO}"));
    }
    if share > TARGET_FILES {
        missed.push(format!("files read {share:.3} > {TARGET_FILES}"));
    }
    if !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let defaults = parse_options(&[]).unwrap();
        assert_eq!(
            (defaults.files, defaults.rows, defaults.repeat),
            (10, 1_000_000, 5)
        );
        let o = parse_options(&["--files", "2", "--rows=500", "--repeat", "3"]).unwrap();
        assert_eq!((o.files, o.rows, o.repeat), (2, 500, 3));
        assert!(parse_options(&["--repeat", "0"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }
}

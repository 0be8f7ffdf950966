//! The source events, generated once per (files, rows, codec) by the peer's `gen_events.py`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::tail;

/// Generates the events once per (files, rows, codec): a finished directory carries a
/// `complete` marker, so an interrupted generation is redone rather than measured. zstd sources
/// keep the directory name they had before the codec could be chosen.
pub(crate) fn generate_events(
    python: &Path,
    generator: &Path,
    bench_dir: &Path,
    files: u32,
    rows: u64,
    compression: &str,
) -> Result<PathBuf> {
    let suffix = match compression {
        "zstd" => String::new(),
        other => format!("-{other}"),
    };
    let data = bench_dir
        .join("data")
        .join(format!("events-f{files}-r{rows}{suffix}"));
    if data.join("complete").is_file() {
        println!("using the events generated before in {}", data.display());
        return Ok(data);
    }
    if data.exists() {
        fs::remove_dir_all(&data)
            .with_context(|| format!("cannot remove the partial data {}", data.display()))?;
    }
    println!(
        "generating {} files x {} rows ({compression}) into {}",
        files,
        rows,
        data.display()
    );
    let output = Command::new(python)
        .arg(generator)
        .arg(&data)
        .arg(files.to_string())
        .arg(rows.to_string())
        .arg("--compression")
        .arg(compression)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            generator.display(),
            output.status,
            tail(&output.stderr, 20)
        );
    }
    let generated = parquet_files(&data)?.len();
    if generated != files as usize {
        bail!(
            "{} wrote {generated} parquet files into {}, expected {}",
            generator.display(),
            data.display(),
            files
        );
    }
    fs::write(
        data.join("complete"),
        format!("files={files} rows={rows} compression={compression}\n"),
    )?;
    Ok(data)
}

pub(super) fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub(super) fn directory_bytes(dir: &Path) -> Result<u64> {
    parquet_files(dir)?
        .iter()
        .map(|path| Ok(fs::metadata(path)?.len()))
        .sum()
}

/// Rewrites `ts` so that the events spread over `days` days in event order (file by file, as
/// producers deliver them): the data of `--mode partitioned`, derived once from `data`.
const SPREAD_OVER_DAYS_PY: &str = r#"
import glob, os, sys
import pyarrow as pa, pyarrow.parquet as pq
source, target, days = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(target, exist_ok=True)
files = sorted(glob.glob(os.path.join(source, "*.parquet")))
total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
# Event ids run from 0 over all files, so the first event is on day 0 and the last on day
# `days - 1`.
step = days * 86_400_000_000 // total
for f in files:
    table = pq.read_table(f)
    ids = table.column("event_id").to_numpy()
    ts = 1_727_000_000_000_000 + ids * step
    table = table.set_column(table.schema.get_field_index("ts"), "ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
    pq.write_table(table, os.path.join(target, os.path.basename(f)), compression="zstd")
"#;

/// The events of `data` spread over `days` days (see [`SPREAD_OVER_DAYS_PY`]), derived once.
pub(crate) fn spread_over_days(python: &Path, data: &Path, days: u32) -> Result<PathBuf> {
    let name = data
        .file_name()
        .context("the data directory has no name")?
        .to_string_lossy()
        .to_string();
    let target = data.with_file_name(format!("{name}-{days}d"));
    if target.join("complete").is_file() {
        return Ok(target);
    }
    if target.exists() {
        fs::remove_dir_all(&target)
            .with_context(|| format!("cannot remove the partial data {}", target.display()))?;
    }
    println!(
        "spreading the events over {days} days into {}",
        target.display()
    );
    let output = Command::new(python)
        .arg("-c")
        .arg(SPREAD_OVER_DAYS_PY)
        .arg(data)
        .arg(&target)
        .arg(days.to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "spreading the events over {days} days failed ({}):\n{}",
            output.status,
            tail(&output.stderr, 20)
        );
    }
    fs::write(target.join("complete"), format!("days={days}\n"))?;
    Ok(target)
}

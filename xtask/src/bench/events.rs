//! The source events, generated once per (files, rows) by the peer's `gen_events.py`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::tail;

/// Generates the events once per (files, rows): a finished directory carries a `complete` marker,
/// so an interrupted generation is redone rather than measured.
pub(crate) fn generate_events(
    python: &Path,
    generator: &Path,
    bench_dir: &Path,
    files: u32,
    rows: u64,
) -> Result<PathBuf> {
    let data = bench_dir
        .join("data")
        .join(format!("events-f{}-r{}", files, rows));
    if data.join("complete").is_file() {
        println!("using the events generated before in {}", data.display());
        return Ok(data);
    }
    if data.exists() {
        fs::remove_dir_all(&data)
            .with_context(|| format!("cannot remove the partial data {}", data.display()))?;
    }
    println!(
        "generating {} files x {} rows into {}",
        files,
        rows,
        data.display()
    );
    let output = Command::new(python)
        .arg(generator)
        .arg(&data)
        .arg(files.to_string())
        .arg(rows.to_string())
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
        format!("files={} rows={}\n", files, rows),
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

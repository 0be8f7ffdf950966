//! A full scan of one table's `main` inside one process: what a reader pays for the table's
//! layout (manifests to plan from, files to open), without process start-up or catalog
//! connection. `cargo xtask bench-maintain` runs it before and after `sluice maintain`.
//!
//! `scan-main LAKE_DIR NS.TABLE REPEAT [COLUMN...]` opens the embedded lake under
//! `LAKE_DIR/.sluice` (as `sluice init` makes it), scans `main` (the columns given, else all)
//! REPEAT times with `Lake::scan_all`, and prints the median seconds and the rows read.

use std::time::Instant;

use sluice_lake::{Lake, LakeConfig, RefSpec, ScanOptions, TableName};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    if let Err(e) = run() {
        eprintln!("scan-main: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: scan-main LAKE_DIR NS.TABLE REPEAT [COLUMN...]";
    let dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let table: TableName = args.next().ok_or(usage)?.parse()?;
    let repeat: usize = args.next().ok_or(usage)?.parse()?;
    if repeat == 0 {
        return Err(usage.into());
    }
    let columns: Vec<String> = args.collect();
    let options = ScanOptions {
        columns: (!columns.is_empty()).then_some(columns),
        ..ScanOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let lake = Lake::connect(&LakeConfig::embedded(dir.join(".sluice"))?).await?;
        let mut times = Vec::with_capacity(repeat);
        let mut rows = 0usize;
        for _ in 0..repeat {
            let started = Instant::now();
            let (_, batches) = lake.scan_all(&table, &RefSpec::main(), &options).await?;
            times.push(started.elapsed().as_secs_f64());
            rows = batches.iter().map(|b| b.num_rows()).sum();
        }
        times.sort_by(f64::total_cmp);
        println!("{:.6} {rows}", times[times.len() / 2]);
        Ok(())
    })
}

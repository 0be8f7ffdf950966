//! The floor of the re-encode path: decode parquet files and write them again with arrow-rs
//! alone, as `sluice run --rewrite` does but with nothing else (no catalog, no audit, no
//! Iceberg writer, no field ids): `threads` workers drain the list of files, each writing one
//! output file with sluice's default writer settings (zstd level 1, chunk statistics, row groups
//! of 1,048,576 rows, 256 KiB dictionaries, 65,536-row batches).
//!
//! `reencode-floor OUT_DIR THREADS FILE...` prints the wall time in seconds and the rows
//! written; `cargo xtask bench-wap` runs it beside the rewrite mode.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    if let Err(e) = run() {
        eprintln!("reencode-floor: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: reencode-floor OUT_DIR THREADS FILE...";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let threads: usize = args.next().ok_or(usage)?.parse()?;
    let files: VecDeque<PathBuf> = args.map(PathBuf::from).collect();
    if files.is_empty() || threads == 0 {
        return Err(usage.into());
    }
    std::fs::create_dir_all(&out)?;
    let queue = Arc::new(Mutex::new(files));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|n| {
            let queue = queue.clone();
            let path = out.join(format!("worker-{n}.parquet"));
            std::thread::spawn(move || worker(&queue, path))
        })
        .collect();
    let mut rows = 0;
    for w in workers {
        rows += w.join().map_err(|_| "a worker panicked")??;
    }
    println!(
        "{{\"seconds\": {:.3}, \"rows\": {rows}}}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn worker(queue: &Mutex<VecDeque<PathBuf>>, out: PathBuf) -> Result<u64, BoxError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(1024 * 1024))
        .set_dictionary_page_size_limit(256 * 1024)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let mut writer = None;
    let mut rows = 0u64;
    loop {
        let next = queue.lock().map_err(|_| "queue poisoned")?.pop_front();
        let Some(path) = next else { break };
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?
            .with_batch_size(64 * 1024)
            .build()?;
        for batch in reader {
            let batch = batch?;
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(ArrowWriter::try_new(
                    File::create(&out)?,
                    batch.schema(),
                    Some(props.clone()),
                )?),
            };
            rows += batch.num_rows() as u64;
            w.write(&batch)?;
        }
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(rows)
}

//! `cargo xtask bench-scale`: several sluice processes publishing into one table at once, as
//! independent workers (cron jobs, Kubernetes Jobs, `watch` loops) do, coordinated only by the
//! catalog's compare-and-swap. For each number of workers, every worker runs `sluice run` over
//! its own source directory, one new small file per run; the runs' reports give the publish
//! latency, how many rebased over another worker's publish, and the catalog commits they made;
//! `sluice sql` then counts the rows and distinct ids of `main`: every file exactly once.
//!
//! `--own-tables` gives each worker a table of its own instead. This first version runs on the
//! embedded catalog (SQLite, local warehouse); the REST catalog and S3 target of `cargo xtask
//! services` is the next step.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::{build_sluice, median};
use crate::json::Json;
use crate::layout::Layout;

/// Options of `bench-scale`.
#[derive(Debug, PartialEq, Eq)]
pub struct ScaleBenchOptions {
    /// The numbers of workers to measure, in order.
    pub workers: Vec<u32>,
    /// Runs each worker makes.
    pub runs: u32,
    /// Rows per file.
    pub rows: u32,
    /// Each worker into a table of its own instead of all into one.
    pub own_tables: bool,
}

impl Default for ScaleBenchOptions {
    fn default() -> Self {
        Self {
            workers: vec![1, 2, 4, 8],
            runs: 20,
            rows: 100,
            own_tables: false,
        }
    }
}

pub fn parse_options(options: &[&str]) -> Result<ScaleBenchOptions> {
    let mut out = ScaleBenchOptions::default();
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
        let number = |text: &str| -> Result<u32> {
            match text.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{flag} takes whole numbers above 0, not {text:?}"),
            }
        };
        match flag {
            "--workers" => {
                out.workers = value()?
                    .split(',')
                    .map(number)
                    .collect::<Result<Vec<_>>>()?
            }
            "--runs" => out.runs = number(&value()?)?,
            "--rows" => out.rows = number(&value()?)?,
            "--own-tables" if inline.is_none() => out.own_tables = true,
            other => bail!("unknown option {other:?} for `bench-scale`; see `cargo xtask --help`"),
        }
    }
    Ok(out)
}

/// The table worker `w` publishes into.
fn table_of(options: &ScaleBenchOptions, w: u32) -> String {
    if options.own_tables {
        format!("bench.events_{w}")
    } else {
        "bench.events".to_string()
    }
}

/// A parquet file of `rows` events with ids from `first`, written with the python of the
/// bench's virtual environment (pyarrow).
fn write_file(python: &Path, path: &Path, first: u64, rows: u32) -> Result<()> {
    let script = "import sys, pyarrow as pa, pyarrow.parquet as pq\n\
                  first, rows, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n\
                  ids = list(range(first, first + rows))\n\
                  pq.write_table(pa.table({'event_id': pa.array(ids, pa.int64()), \
                  'user_id': pa.array([i % 1000 for i in ids], pa.int64())}), path)\n";
    let status = Command::new(python)
        .args(["-c", script, &first.to_string(), &rows.to_string()])
        .arg(path)
        .status()?;
    if !status.success() {
        bail!("cannot write {}", path.display());
    }
    Ok(())
}

/// One round: `workers` processes, each `runs` runs over its own directory.
struct Round {
    workers: u32,
    wall_s: f64,
    runs: usize,
    publish_ms: Vec<f64>,
    rebases: usize,
    commits: u64,
    failed: usize,
}

pub fn run(layout: &Layout, options: &ScaleBenchOptions) -> Result<()> {
    let sluice = build_sluice(layout)?;
    crate::python::ensure(layout, crate::python::BENCH)?;
    let python = layout.venv_python();
    let bench_dir = layout.target_dir().join("bench-scale");
    let mut rounds = Vec::new();
    for &workers in &options.workers {
        let lake = bench_dir.join(format!("lake-{workers}"));
        if lake.exists() {
            fs::remove_dir_all(&lake)
                .with_context(|| format!("cannot remove {}", lake.display()))?;
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
        // The table exists before the workers start: they race on commits, not on creating it.
        let seed = lake.join("seed");
        fs::create_dir_all(&seed)?;
        write_file(&python, &seed.join("seed.parquet"), 1 << 40, 1)?;
        let tables: Vec<String> = (0..workers)
            .map(|w| table_of(options, w))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for table in &tables {
            let out = Command::new(&sluice)
                .args(["-q", "run", "--source", "seed", "--table", table])
                .current_dir(&lake)
                .output()?;
            if !out.status.success() {
                bail!(
                    "the seed run failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // Every worker's files, written before the clock starts.
        let mut all: Vec<Vec<PathBuf>> = Vec::new();
        for w in 0..workers {
            let dir = bench_dir
                .join(format!("sources-{workers}"))
                .join(format!("w{w}"));
            fs::create_dir_all(&dir)?;
            let mut files = Vec::new();
            for r in 0..options.runs {
                let first = (u64::from(w) * u64::from(options.runs) + u64::from(r))
                    * u64::from(options.rows);
                let path = dir.join(format!("{r:05}.parquet"));
                write_file(&python, &path, first, options.rows)?;
                files.push(path);
            }
            all.push(files);
        }
        println!(
            "{workers} worker(s), {} runs each of one {}-row file, into {}",
            options.runs,
            options.rows,
            if options.own_tables {
                "a table each"
            } else {
                "one table"
            }
        );
        let started = Instant::now();
        let handles: Vec<_> = all
            .into_iter()
            .enumerate()
            .map(|(w, files)| {
                let (sluice, lake) = (sluice.clone(), lake.clone());
                let table = table_of(options, w as u32);
                std::thread::spawn(move || -> Result<Vec<Json>> {
                    let inbox = lake.join(format!("in-{w}"));
                    fs::create_dir_all(&inbox)?;
                    let mut reports = Vec::new();
                    for file in files {
                        let name = file.file_name().context("a file has no name")?;
                        fs::copy(&file, inbox.join(name))?;
                        let out = Command::new(&sluice)
                            .args(["--json", "run", "--source"])
                            .arg(&inbox)
                            .args(["--table", &table])
                            .current_dir(&lake)
                            .output()?;
                        let report = Json::parse(&String::from_utf8_lossy(&out.stdout))
                            .with_context(|| {
                                format!(
                                    "a run printed no report:\n{}",
                                    String::from_utf8_lossy(&out.stderr)
                                )
                            })?;
                        reports.push(report);
                    }
                    Ok(reports)
                })
            })
            .collect();
        let mut reports = Vec::new();
        for handle in handles {
            let done = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
            reports.extend(done);
        }
        let wall_s = started.elapsed().as_secs_f64();
        let mut round = Round {
            workers,
            wall_s,
            runs: reports.len(),
            publish_ms: Vec::new(),
            rebases: 0,
            commits: 0,
            failed: 0,
        };
        for report in &reports {
            if report.get("status").and_then(Json::as_str) != Some("published") {
                round.failed += 1;
                continue;
            }
            if let Some(ms) = report
                .get("durations")
                .and_then(|d| d.get("publish_ms"))
                .and_then(Json::as_u64)
            {
                round.publish_ms.push(ms as f64);
            }
            if report.get("publish").and_then(Json::as_str) == Some("rebase") {
                round.rebases += 1;
            }
            round.commits += report.get("commits").and_then(Json::as_u64).unwrap_or(0);
        }
        // Exactly once: every id of every file, once, and each table's seed row.
        let expected = u64::from(workers) * u64::from(options.runs) * u64::from(options.rows)
            + tables.len() as u64;
        let (mut n, mut d) = (0, 0);
        for table in &tables {
            let query = format!("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM {table}");
            let out = Command::new(&sluice)
                .args(["--json", "sql", &query])
                .current_dir(&lake)
                .output()?;
            let rows = Json::parse(&String::from_utf8_lossy(&out.stdout))
                .context("`sluice sql` printed no rows")?;
            let first = match &rows {
                Json::Array(r) => r.first().cloned(),
                _ => None,
            }
            .context("`sluice sql` printed no row")?;
            n += first.get("n").and_then(Json::as_u64).unwrap_or(0);
            d += first.get("d").and_then(Json::as_u64).unwrap_or(0);
        }
        if round.failed > 0 || n != expected || d != expected {
            bail!(
                "{workers} worker(s): {} run(s) failed; main holds {n} rows ({d} distinct), expected {expected}",
                round.failed
            );
        }
        rounds.push(round);
    }
    println!();
    println!(
        "| workers | runs | wall s | runs/min | rows/s | publish p50 ms | publish p99 ms | rebased | catalog commits per run |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for r in &rounds {
        let mut sorted = r.publish_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let p99 = sorted
            .get(((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN);
        let per_min = r.runs as f64 / r.wall_s * 60.0;
        let rows_s = r.runs as f64 * f64::from(options.rows) / r.wall_s;
        println!(
            "| {} | {} | {:.1} | {per_min:.0} | {rows_s:.0} | {:.0} | {p99:.0} | {} | {:.2} |",
            r.workers,
            r.runs,
            r.wall_s,
            median(&r.publish_ms),
            r.rebases,
            r.commits as f64 / r.runs as f64
        );
        results.push(Json::object([
            ("workers", Json::number(f64::from(r.workers))),
            ("runs", Json::number(r.runs as f64)),
            ("wall_s", Json::number(r.wall_s)),
            ("runs_per_min", Json::number(per_min)),
            ("rows_per_s", Json::number(rows_s)),
            ("publish_p50_ms", Json::number(median(&r.publish_ms))),
            ("publish_p99_ms", Json::number(p99)),
            ("rebases", Json::number(r.rebases as f64)),
            ("commits", Json::number(r.commits as f64)),
        ]));
    }
    println!();
    println!("every worker's every file is in main exactly once (count and distinct ids)");
    let result_file = bench_dir.join("result.json");
    fs::write(&result_file, Json::Array(results).to_pretty())?;
    println!("wrote {}", result_file.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!(parse_options(&[]).unwrap(), ScaleBenchOptions::default());
        let o = parse_options(&["--workers", "1,2", "--runs=5", "--rows", "10"]).unwrap();
        assert_eq!((o.workers, o.runs, o.rows), (vec![1, 2], 5, 10));
        assert!(parse_options(&["--own-tables"]).unwrap().own_tables);
        assert!(parse_options(&["--workers", "0"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }
}

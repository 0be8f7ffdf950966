//! `cargo xtask bench-runs`: many small incremental runs into one table. A run's cost must not
//! grow with the table's history: the last runs' median wall time is compared with the first
//! runs', and the size of the table's metadata file is followed from run to run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::{build_sluice, generate_events, median, peer_file};
use crate::json::Json;
use crate::layout::Layout;
use crate::python;

/// The ratio the last window's median may reach, relative to the first window's.
pub const TARGET_RATIO: f64 = 1.2;

/// Options of `bench-runs`.
#[derive(Debug, PartialEq, Eq)]
pub struct RunsOptions {
    /// Runs, each ingesting one new file.
    pub runs: u32,
    /// Rows per file.
    pub rows: u64,
    /// Runs at each end whose medians are compared.
    pub window: u32,
    /// Holds gen_events.py.
    pub peer_dir: Option<PathBuf>,
    /// Audit every run with a table-scoped `unique` check on `event_id`.
    pub unique: bool,
    /// Run `sluice maintain` (as `watch --maintain-every` would) after every this many runs,
    /// keeping the last [`MAINTAIN_RETAIN`] snapshots; its time is reported apart.
    pub maintain_every: Option<u32>,
}

/// Snapshots of `main` a `--maintain-every` maintenance keeps.
const MAINTAIN_RETAIN: &str = "20";

impl Default for RunsOptions {
    fn default() -> Self {
        Self {
            runs: 200,
            rows: 10_000,
            window: 20,
            peer_dir: None,
            unique: false,
            maintain_every: None,
        }
    }
}

pub fn parse_options(options: &[&str]) -> Result<RunsOptions> {
    let mut out = RunsOptions::default();
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
            "--window" => {
                out.window = u32::try_from(number(value()?)?).context("--window is too large")?
            }
            "--peer-dir" => out.peer_dir = Some(PathBuf::from(value()?)),
            "--unique" if inline.is_none() => out.unique = true,
            "--maintain-every" => {
                out.maintain_every = Some(
                    u32::try_from(number(value()?)?).context("--maintain-every is too large")?,
                )
            }
            other => bail!("unknown option {other:?} for `bench-runs`; see `cargo xtask --help`"),
        }
    }
    if out.window * 2 > out.runs {
        bail!(
            "--window {} needs at least {} runs (two windows), not {}",
            out.window,
            out.window * 2,
            out.runs
        );
    }
    Ok(out)
}

/// One run's measurement.
struct Sample {
    wall_s: f64,
    metadata_bytes: u64,
    /// With `--unique`: data files of main the table-scoped check read, and main's files.
    main_files: Option<(u64, u64)>,
    /// Seconds of each step the run report times (`durations`), in [`STEPS`] order, and the
    /// rest of the wall time (start-up, opening the lake, recovery checks, exit).
    steps: Vec<f64>,
}

/// The steps of a run report's `durations`, and the time outside them.
const STEPS: [&str; 5] = ["list", "write", "audit", "publish", "outside"];

pub fn run(layout: &Layout, options: &RunsOptions) -> Result<()> {
    let peer_dir = options
        .peer_dir
        .clone()
        .unwrap_or_else(|| layout.workspace.join("..").join("shared").join("bench"));
    let generator = peer_file(&peer_dir, "gen_events.py")?;
    let sluice = build_sluice(layout)?;
    python::ensure(layout, python::BENCH)?;
    let bench_dir = layout.target_dir().join("bench-runs");
    let data = generate_events(
        &layout.venv_python(),
        &generator,
        &bench_dir,
        options.runs,
        options.rows,
        "zstd",
    )?;
    let mut files: Vec<PathBuf> = fs::read_dir(&data)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();

    let lake = bench_dir.join("lake");
    if lake.exists() {
        fs::remove_dir_all(&lake).with_context(|| format!("cannot remove {}", lake.display()))?;
    }
    let raw = lake.join("raw");
    fs::create_dir_all(&raw)?;
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

    let mut run_args = vec![
        "--json",
        "run",
        "--source",
        "raw",
        "--table",
        "bench.events",
    ];
    if options.unique {
        // Ids grow from file to file, as event ids usually do: no run's keys can collide with
        // the files already in main, so the check should read none of them.
        fs::write(
            lake.join("checks.toml"),
            "[[check]]\nkind = \"unique\"\ncolumns = [\"event_id\"]\nscope = \"table\"\n",
        )?;
        run_args.extend(["--checks", "checks.toml"]);
    }
    println!(
        "{} runs of one {}-row file each into bench.events{}",
        options.runs,
        options.rows,
        if options.unique {
            ", audited by a table-scoped unique check on event_id"
        } else {
            ", no checks"
        }
    );
    if let Some(n) = options.maintain_every {
        println!(
            "`sluice maintain` after every {n} runs (keeping the last {MAINTAIN_RETAIN} snapshots), timed apart"
        );
    }
    let mut maintain_s: Vec<f64> = Vec::new();
    let mut samples = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        if let Some(n) = options.maintain_every
            && i > 0
            && i % n as usize == 0
        {
            let started = Instant::now();
            let out = Command::new(&sluice)
                .args([
                    "--json",
                    "maintain",
                    "bench.events",
                    "--older-than",
                    "0s",
                    "--retain-last",
                    MAINTAIN_RETAIN,
                ])
                .current_dir(&lake)
                .output()?;
            maintain_s.push(started.elapsed().as_secs_f64());
            if !out.status.success() {
                bail!(
                    "maintain after run {i} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let name = file.file_name().context("a generated file has no name")?;
        fs::copy(file, raw.join(name))?;
        let started = Instant::now();
        let out = Command::new(&sluice)
            .args(&run_args)
            .current_dir(&lake)
            .output()?;
        let wall_s = started.elapsed().as_secs_f64();
        let report = Json::parse(&String::from_utf8_lossy(&out.stdout)).with_context(|| {
            format!(
                "run {} printed no report:\n{}",
                i + 1,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let status = report.get("status").and_then(Json::as_str).unwrap_or("");
        let ingested = match report.get("files") {
            Some(Json::Array(files)) => files.len(),
            _ => 0,
        };
        if !out.status.success() || status != "published" || ingested != 1 {
            bail!(
                "run {} did not publish exactly its one new file (status {status:?}, {ingested} files):\n{}",
                i + 1,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let main_files = match report.get("main_files_read") {
            Some(read @ Json::Object(_)) => {
                let count = |key: &str| read.get(key).and_then(Json::as_u64);
                Some((
                    count("files_read").context("main_files_read has no files_read")?,
                    count("files_in_main").context("main_files_read has no files_in_main")?,
                ))
            }
            _ => None,
        };
        if options.unique && i > 0 && main_files.is_none() {
            bail!(
                "run {} has a table-scoped check but its report says nothing of main's files read",
                i + 1
            );
        }
        let durations = report.get("durations");
        let ms = |key: &str| {
            durations
                .and_then(|d| d.get(&format!("{key}_ms")))
                .and_then(Json::as_u64)
                .map(|v| v as f64 / 1000.0)
                .with_context(|| format!("run {}'s report has no durations.{key}_ms", i + 1))
        };
        let mut steps = STEPS[..4]
            .iter()
            .map(|s| ms(s))
            .collect::<Result<Vec<_>>>()?;
        steps.push((wall_s - ms("total")?).max(0.0));
        samples.push(Sample {
            wall_s,
            metadata_bytes: newest_metadata_bytes(&lake.join(".sluice"))?,
            main_files,
            steps,
        });
        if (i + 1) % 20 == 0 {
            let read = match samples[i].main_files {
                Some((read, of)) => format!(", check read {read} of {of} files of main"),
                None => String::new(),
            };
            println!(
                "  run {:>4}: {:.3} s, metadata file {} bytes{read}",
                i + 1,
                wall_s,
                samples[i].metadata_bytes
            );
        }
    }

    let window = options.window as usize;
    let first = median(
        &samples[..window]
            .iter()
            .map(|s| s.wall_s)
            .collect::<Vec<_>>(),
    );
    let last = median(
        &samples[samples.len() - window..]
            .iter()
            .map(|s| s.wall_s)
            .collect::<Vec<_>>(),
    );
    let ratio = last / first;
    let metadata_first = samples[window - 1].metadata_bytes;
    let metadata_last = samples[samples.len() - 1].metadata_bytes;
    let per_run =
        (metadata_last.saturating_sub(metadata_first)) as f64 / (samples.len() - window) as f64;
    println!();
    println!("| runs | median of runs 1–{window} | median of the last {window} | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {first:.3} s | {last:.3} s | **{ratio:.2}** | ≤ {TARGET_RATIO} |",
        samples.len()
    );
    println!();
    println!("| step | median of runs 1–{window} | median of the last {window} |");
    println!("|---|---|---|");
    let mut step_medians = Vec::new();
    for (k, step) in STEPS.iter().enumerate() {
        let of = |runs: &[Sample]| median(&runs.iter().map(|s| s.steps[k]).collect::<Vec<_>>());
        let (a, b) = (
            of(&samples[..window]),
            of(&samples[samples.len() - window..]),
        );
        println!("| {step} | {a:.3} s | {b:.3} s |");
        step_medians.push((
            *step,
            Json::object([("first_s", Json::number(a)), ("last_s", Json::number(b))]),
        ));
    }
    println!();
    println!(
        "metadata file: {metadata_first} bytes after run {window}, {metadata_last} after run {} ({per_run:.0} bytes per run: one snapshot entry and its log lines, no file lists)",
        samples.len()
    );
    if !maintain_s.is_empty() {
        println!(
            "{} maintenances, median {:.3} s (not in the runs' times)",
            maintain_s.len(),
            median(&maintain_s)
        );
    }
    let last_read = samples.last().and_then(|s| s.main_files);
    if let Some((read, of)) = last_read {
        println!(
            "the last run's table-scoped unique check read {read} of the {of} data files of main"
        );
    }
    let result = Json::object([
        ("runs", Json::number(samples.len() as f64)),
        ("unique_check", Json::Bool(options.unique)),
        (
            "maintain_every",
            options
                .maintain_every
                .map_or(Json::Null, |n| Json::number(f64::from(n))),
        ),
        (
            "maintain_median_s",
            if maintain_s.is_empty() {
                Json::Null
            } else {
                Json::number(median(&maintain_s))
            },
        ),
        (
            "last_run_main_files_read",
            last_read.map_or(Json::Null, |(read, _)| Json::number(read as f64)),
        ),
        (
            "last_run_main_files",
            last_read.map_or(Json::Null, |(_, of)| Json::number(of as f64)),
        ),
        ("rows_per_file", Json::number(options.rows as f64)),
        ("window", Json::number(window as f64)),
        ("first_median_s", Json::number(first)),
        ("last_median_s", Json::number(last)),
        ("ratio", Json::number(ratio)),
        ("step_medians", Json::object(step_medians)),
        ("target_ratio", Json::number(TARGET_RATIO)),
        ("metadata_bytes_first", Json::number(metadata_first as f64)),
        ("metadata_bytes_last", Json::number(metadata_last as f64)),
        (
            "wall_s",
            Json::Array(samples.iter().map(|s| Json::number(s.wall_s)).collect()),
        ),
    ]);
    let result_file = bench_dir.join("result.json");
    fs::write(&result_file, result.to_pretty())?;
    println!("wrote {}", result_file.display());
    if ratio > TARGET_RATIO {
        bail!("the last runs took {ratio:.2}× as long as the first (target ≤ {TARGET_RATIO})");
    }
    Ok(())
}

/// The size of the newest `*.metadata.json` below `dir`.
fn newest_metadata_bytes(dir: &Path) -> Result<u64> {
    let mut newest: Option<(std::time::SystemTime, u64)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".metadata.json") {
                let modified = meta.modified()?;
                if newest.is_none_or(|(t, _)| modified > t) {
                    newest = Some((modified, meta.len()));
                }
            }
        }
    }
    newest
        .map(|(_, len)| len)
        .with_context(|| format!("no metadata file below {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_check_the_windows() {
        assert_eq!(parse_options(&[]).unwrap(), RunsOptions::default());
        let o = parse_options(&["--runs", "50", "--rows=100", "--window", "5"]).unwrap();
        assert_eq!((o.runs, o.rows, o.window, o.unique), (50, 100, 5, false));
        assert!(parse_options(&["--unique"]).unwrap().unique);
        assert_eq!(
            parse_options(&["--maintain-every", "20"])
                .unwrap()
                .maintain_every,
            Some(20)
        );
        assert!(parse_options(&["--unique=yes"]).is_err());
        assert!(parse_options(&["--runs", "10", "--window", "6"]).is_err());
        assert!(parse_options(&["--runs", "0"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }
}

//! `cargo xtask bench-scale`: several sluice processes publishing into one lake at once, as
//! independent workers (cron jobs, Kubernetes Jobs, `watch` loops) do, coordinated only by the
//! catalog's compare-and-swap and the journal's leases.
//!
//! ```text
//!   services up (--target rest, the default) ─► source files for every phase (one pyarrow call)
//!   one table:    for N in --workers: N threads, each `sluice run`s its own directory, one new
//!                 file per run, all into one table
//!   own tables:   the same, each worker into a table of its own
//!   same source:  two workers started together on one directory, one new file per round
//!   each phase:   pyiceberg reads every table back: every file's rows exactly once
//!   services down (what this call started)
//! ```
//!
//! Each run's report gives its publish latency, whether it rebased over another worker's
//! publish, and the catalog commits it made and had refused; the bench times each process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::{RestLake, Target, TargetFlags, build_sluice, median, s3_credentials_env};
use crate::json::Json;
use crate::layout::{Layout, Service};
use crate::services;

/// Options of `bench-scale`.
#[derive(Debug, PartialEq, Eq)]
pub struct ScaleBenchOptions {
    /// The numbers of workers to measure, in order.
    pub workers: Vec<u32>,
    /// Runs each worker makes.
    pub runs: u32,
    /// Rows per file.
    pub rows: u32,
    /// Rounds of the two workers on one source (0: none).
    pub pair_rounds: u32,
    pub target: Target,
}

impl Default for ScaleBenchOptions {
    fn default() -> Self {
        Self {
            workers: vec![1, 2, 4, 8],
            runs: 20,
            rows: 100,
            pair_rounds: 20,
            target: Target::Embedded,
        }
    }
}

/// Parses the options after `bench-scale`; the target is the services' REST catalog and S3
/// server unless `--target embedded` says otherwise.
pub fn parse_options(
    options: &[&str],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<ScaleBenchOptions> {
    let mut out = ScaleBenchOptions::default();
    let mut target = TargetFlags::default();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let mut value = || -> Result<&str> {
            match inline {
                Some(v) => Ok(v),
                None => rest
                    .next()
                    .copied()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        let number = |text: &str, zero: bool| -> Result<u32> {
            match text.trim().parse::<u32>() {
                Ok(n) if n > 0 || zero => Ok(n),
                _ => bail!(
                    "{flag} takes whole numbers {}, not {text:?}",
                    if zero { "from 0" } else { "above 0" }
                ),
            }
        };
        match flag {
            "--workers" => {
                out.workers = value()?
                    .split(',')
                    .map(|n| number(n, false))
                    .collect::<Result<Vec<_>>>()?
            }
            "--runs" => out.runs = number(value()?, false)?,
            "--rows" => out.rows = number(value()?, false)?,
            "--pair-rounds" => out.pair_rounds = number(value()?, true)?,
            flag if target.takes(flag) => target.set(flag, value()?)?,
            other => bail!("unknown option {other:?} for `bench-scale`; see `cargo xtask --help`"),
        }
    }
    out.target = target.target(true, env)?;
    Ok(out)
}

/// Where the lakes of the bench live.
struct Site {
    sluice: PathBuf,
    python: PathBuf,
    /// `None`: the embedded catalog, a lake per directory.
    rest: Option<RestLake>,
}

impl Site {
    /// A lake in `dir`: `sluice init` there, or a `sluice.toml` for the REST catalog (the
    /// journal stays in `dir`: see `docs/performance.md`).
    fn new_lake(&self, dir: &Path, tables: &[String]) -> Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        fs::create_dir_all(dir)?;
        match &self.rest {
            None => {
                let init = self.sluice(dir).args(["-q", "init"]).output()?;
                if !init.status.success() {
                    bail!(
                        "`sluice init` failed:\n{}",
                        String::from_utf8_lossy(&init.stderr)
                    );
                }
            }
            Some(rest) => {
                fs::write(dir.join("sluice.toml"), rest.sluice_toml())?;
                // Left by an earlier bench that stopped half way.
                let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
                rest.drop_tables(&self.python, &tables)?;
            }
        }
        Ok(())
    }

    /// `sluice` in `lake`, with the S3 server's credentials in its environment.
    fn sluice(&self, lake: &Path) -> Command {
        let mut command = Command::new(&self.sluice);
        command.current_dir(lake);
        if self.rest.is_some() {
            command.envs(s3_credentials_env());
        }
        command
    }

    /// Each table's row count and distinct `event_id`s, as pyiceberg reads `main`.
    fn count(&self, lake: &Path, tables: &[String]) -> Result<Vec<(u64, u64)>> {
        let properties = match &self.rest {
            Some(rest) => {
                let mut p = Json::parse(&rest.pyiceberg_properties())
                    .context("the REST catalog's properties")?;
                if let Json::Object(fields) = &mut p {
                    fields.push(("type".into(), Json::string("rest")));
                }
                p
            }
            None => Json::object([
                ("type", Json::string("sql")),
                (
                    "uri",
                    Json::string(format!(
                        "sqlite:///{}",
                        lake.join(".sluice/catalog.db").display()
                    )),
                ),
                (
                    "warehouse",
                    Json::string(format!(
                        "file://{}",
                        lake.join(".sluice/warehouse").display()
                    )),
                ),
            ]),
        };
        let mut command = Command::new(&self.python);
        if self.rest.is_some() {
            command.envs(s3_credentials_env());
        }
        let out = command
            .args(["-c", COUNT_PY, &properties.to_pretty()])
            .args(tables)
            .output()?;
        if !out.status.success() {
            bail!(
                "pyiceberg could not read {}:\n{}",
                tables.join(", "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let counts = Json::parse(&String::from_utf8_lossy(&out.stdout))
            .context("pyiceberg printed no counts")?;
        tables
            .iter()
            .map(|t| {
                let pair = counts.get(t).context("pyiceberg left out a table")?;
                let n = |i: usize| match pair {
                    Json::Array(v) => v.get(i).and_then(Json::as_u64).unwrap_or(0),
                    _ => 0,
                };
                Ok((n(0), n(1)))
            })
            .collect()
    }

    /// Drops the bench's tables from the REST catalog, files and all.
    fn drop(&self, tables: &[String]) -> Result<()> {
        if let Some(rest) = &self.rest {
            let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
            rest.drop_tables(&self.python, &tables)?;
        }
        Ok(())
    }

    /// One file into `table` so that workers race on commits, not on creating it.
    fn seed(&self, lake: &Path, seed: &Path, table: &str) -> Result<()> {
        let out = self
            .sluice(lake)
            .args(["-q", "run", "--source"])
            .arg(seed)
            .args(["--table", table])
            .output()?;
        if !out.status.success() {
            bail!(
                "the seed run into {table} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// argv: catalog properties (JSON, with "type": sql or rest), tables. Prints
/// `{table: [rows, distinct event_id]}` of each table's `main`.
const COUNT_PY: &str = r#"
import json, sys
import pyarrow.compute as pc
properties = json.loads(sys.argv[1])
kind = properties.pop("type")
if kind == "sql":
    from pyiceberg.catalog.sql import SqlCatalog
    catalog = SqlCatalog("default", **properties)
else:
    from pyiceberg.catalog.rest import RestCatalog
    catalog = RestCatalog("default", **properties)
out = {}
for name in sys.argv[2:]:
    ids = catalog.load_table(name).scan(selected_fields=("event_id",)).to_arrow().column("event_id")
    out[name] = [len(ids), pc.count_distinct(ids).as_py()]
print(json.dumps(out))
"#;

/// argv: none; stdin: `[[path, first id, rows], ...]`. Writes each file.
const WRITE_PY: &str = r#"
import json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
for path, first, rows in json.load(sys.stdin):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ids = list(range(first, first + rows))
    pq.write_table(pa.table({
        "event_id": pa.array(ids, pa.int64()),
        "user_id": pa.array([i % 1000 for i in ids], pa.int64()),
    }), path)
"#;

/// A source file to write before the clock starts.
struct Planned {
    path: PathBuf,
    first: u64,
    rows: u32,
}

fn write_files(python: &Path, files: &[Planned]) -> Result<()> {
    let list = Json::Array(
        files
            .iter()
            .map(|f| {
                Json::Array(vec![
                    Json::string(f.path.display().to_string()),
                    Json::number(f.first as f64),
                    Json::number(f64::from(f.rows)),
                ])
            })
            .collect(),
    );
    let mut child = Command::new(python)
        .args(["-c", WRITE_PY])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("no stdin")?;
        stdin.write_all(list.to_pretty().as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("writing the source files failed");
    }
    Ok(())
}

/// What one `sluice run` process did.
struct RunOutcome {
    /// The process's exit code.
    code: i32,
    status: String,
    error: String,
    wall_s: f64,
    publish_ms: Option<f64>,
    rebased: bool,
    commits: u64,
    conflicts: u64,
}

impl RunOutcome {
    fn of(output: &Output, wall_s: f64) -> Result<RunOutcome> {
        let report = Json::parse(&String::from_utf8_lossy(&output.stdout)).with_context(|| {
            format!(
                "a run printed no report:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        let text = |key: &str| {
            report
                .get(key)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let count = |key: &str| report.get(key).and_then(Json::as_u64).unwrap_or(0);
        Ok(RunOutcome {
            code: output.status.code().unwrap_or(-1),
            status: text("status"),
            error: text("error"),
            wall_s,
            publish_ms: report
                .get("durations")
                .and_then(|d| d.get("publish_ms"))
                .and_then(Json::as_u64)
                .map(|ms| ms as f64),
            rebased: text("publish") == "rebase",
            commits: count("commits"),
            conflicts: count("commit_conflicts"),
        })
    }

    /// The batch was another process's: it held the lease.
    fn lost_lease(&self) -> bool {
        self.code == 1 && self.error.contains("is being run by another process")
    }
}

/// `sluice --json run` over `source` into `table`, timed.
fn run_once(site: &Site, lake: &Path, source: &Path, table: &str) -> Result<RunOutcome> {
    let started = Instant::now();
    let output = site
        .sluice(lake)
        .args(["--json", "run", "--source"])
        .arg(source)
        .args(["--table", table])
        .output()?;
    RunOutcome::of(&output, started.elapsed().as_secs_f64())
}

/// One measured round: `workers` processes at once, each `runs` runs over its own directory.
struct Round {
    phase: &'static str,
    workers: u32,
    wall_s: f64,
    outcomes: Vec<RunOutcome>,
}

impl Round {
    fn publish_ms(&self) -> Vec<f64> {
        self.outcomes.iter().filter_map(|o| o.publish_ms).collect()
    }

    fn runs_per_min(&self) -> f64 {
        self.outcomes.len() as f64 / self.wall_s * 60.0
    }

    fn max_run_s(&self) -> f64 {
        self.outcomes.iter().map(|o| o.wall_s).fold(0.0, f64::max)
    }

    fn rebases(&self) -> usize {
        self.outcomes.iter().filter(|o| o.rebased).count()
    }

    fn conflicts(&self) -> u64 {
        self.outcomes.iter().map(|o| o.conflicts).sum()
    }

    fn commits(&self) -> u64 {
        self.outcomes.iter().map(|o| o.commits).sum()
    }
}

fn p99(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN)
}

const NAMESPACE: &str = "bench_scale";
const SEED_ID: u64 = 1 << 40;

pub fn run(layout: &Layout, options: &ScaleBenchOptions) -> Result<()> {
    let sluice = build_sluice(layout)?;
    crate::python::ensure(layout, crate::python::BENCH)?;
    let bench_dir = layout.target_dir().join("bench-scale");
    fs::create_dir_all(&bench_dir)?;
    match &options.target {
        Target::Embedded => {
            let site = Site {
                sluice,
                python: layout.venv_python(),
                rest: None,
            };
            measure(&site, &bench_dir, options)
        }
        Target::Rest(config) => {
            let wrapper = bench_dir.join("rest_peer.py");
            fs::write(&wrapper, crate::bench::REST_PEER_PY)?;
            let site = Site {
                sluice,
                python: layout.venv_python(),
                rest: Some(RestLake {
                    config: config.clone(),
                    wrapper,
                }),
            };
            // As `e2e` does: what this call starts is stopped again, even after a failure.
            let running = services::up(layout, config)?;
            let result = measure(&site, &bench_dir, options);
            services::stop_started(layout, &running.started);
            if running.started.len() < Service::ALL.len() {
                println!("services that were running before `bench-scale` are left running");
            }
            result
        }
    }
}

fn measure(site: &Site, bench_dir: &Path, options: &ScaleBenchOptions) -> Result<()> {
    let target = match &site.rest {
        Some(_) => "the REST catalog and S3 server of `cargo xtask services`",
        None => "the embedded catalog (SQLite, local warehouse)",
    };
    println!("bench-scale on {target}");
    let sources = bench_dir.join("sources");
    if sources.exists() {
        fs::remove_dir_all(&sources)?;
    }
    // Every phase's files, written in one call before any clock starts.
    let mut planned = vec![Planned {
        path: sources.join("seed/seed.parquet"),
        first: SEED_ID,
        rows: 1,
    }];
    let worker_dir = |phase: &str, n: u32, w: u32| sources.join(format!("{phase}-{n}/w{w}"));
    for phase in ["one", "own"] {
        for &n in &options.workers {
            for w in 0..n {
                for r in 0..options.runs {
                    planned.push(Planned {
                        path: worker_dir(phase, n, w).join(format!("{r:05}.parquet")),
                        first: (u64::from(w) * u64::from(options.runs) + u64::from(r))
                            * u64::from(options.rows),
                        rows: options.rows,
                    });
                }
            }
        }
    }
    for r in 0..options.pair_rounds {
        planned.push(Planned {
            path: sources.join(format!("pair/{r:05}.parquet")),
            first: u64::from(r) * u64::from(options.rows),
            rows: options.rows,
        });
    }
    write_files(&site.python, &planned)?;
    let seed_dir = sources.join("seed");

    let mut rounds = Vec::new();
    for (phase, own) in [("one table", false), ("own tables", true)] {
        for &n in &options.workers {
            let short = if own { "own" } else { "one" };
            let table = |w: u32| {
                if own {
                    format!("{NAMESPACE}.{short}_{n}_w{w}")
                } else {
                    format!("{NAMESPACE}.{short}_{n}")
                }
            };
            let mut tables: Vec<String> = (0..n).map(table).collect();
            tables.dedup();
            let lake = bench_dir.join(format!("lake-{short}-{n}"));
            site.new_lake(&lake, &tables)?;
            for t in &tables {
                site.seed(&lake, &seed_dir, t)?;
            }
            println!(
                "{phase}: {n} worker(s), {} runs each of one {}-row file",
                options.runs, options.rows
            );
            let started = Instant::now();
            let outcomes = std::thread::scope(|scope| -> Result<Vec<RunOutcome>> {
                let handles: Vec<_> = (0..n)
                    .map(|w| {
                        let (lake, table, files) = (&lake, table(w), worker_dir(short, n, w));
                        scope.spawn(move || -> Result<Vec<RunOutcome>> {
                            let inbox = lake.join(format!("in-{w}"));
                            fs::create_dir_all(&inbox)?;
                            let mut outcomes = Vec::new();
                            for r in 0..options.runs {
                                let name = format!("{r:05}.parquet");
                                fs::copy(files.join(&name), inbox.join(&name))?;
                                outcomes.push(run_once(site, lake, &inbox, &table)?);
                            }
                            Ok(outcomes)
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for handle in handles {
                    all.extend(
                        handle
                            .join()
                            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??,
                    );
                }
                Ok(all)
            })?;
            let round = Round {
                phase,
                workers: n,
                wall_s: started.elapsed().as_secs_f64(),
                outcomes,
            };
            if let Some(failed) = round.outcomes.iter().find(|o| o.status != "published") {
                bail!(
                    "{phase}, {n} worker(s): a run ended {} (exit {}): {}",
                    failed.status,
                    failed.code,
                    failed.error
                );
            }
            // Exactly once: every id of every file once, and each table's seed row.
            let counts = site.count(&lake, &tables)?;
            let expected_total = u64::from(n) * u64::from(options.runs) * u64::from(options.rows)
                + tables.len() as u64;
            let (rows, distinct) = counts.iter().fold((0, 0), |(a, b), (n, d)| (a + n, b + d));
            if rows != expected_total || distinct != expected_total {
                bail!(
                    "{phase}, {n} worker(s): pyiceberg reads {rows} rows ({distinct} distinct ids) in main, expected {expected_total}"
                );
            }
            site.drop(&tables)?;
            rounds.push(round);
        }
    }

    let pair = if options.pair_rounds > 0 {
        Some(same_source(
            site,
            bench_dir,
            &sources.join("pair"),
            &seed_dir,
            options,
        )?)
    } else {
        None
    };

    println!();
    println!(
        "| tables | workers | runs | wall s | runs/min | rows/s | publish p50 ms | publish p99 ms | slowest run s | rebased | conflicts | commits per run |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for r in &rounds {
        let publish = r.publish_ms();
        let rows_s = r.outcomes.len() as f64 * f64::from(options.rows) / r.wall_s;
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {rows_s:.0} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2} |",
            r.phase,
            r.workers,
            r.outcomes.len(),
            r.wall_s,
            r.runs_per_min(),
            median(&publish),
            p99(&publish),
            r.max_run_s(),
            r.rebases(),
            r.conflicts(),
            r.commits() as f64 / r.outcomes.len() as f64
        );
        results.push(Json::object([
            ("tables", Json::string(r.phase)),
            ("workers", Json::number(f64::from(r.workers))),
            ("runs", Json::number(r.outcomes.len() as f64)),
            ("wall_s", Json::number(r.wall_s)),
            ("runs_per_min", Json::number(r.runs_per_min())),
            ("rows_per_s", Json::number(rows_s)),
            ("publish_p50_ms", Json::number(median(&publish))),
            ("publish_p99_ms", Json::number(p99(&publish))),
            ("slowest_run_s", Json::number(r.max_run_s())),
            ("rebases", Json::number(r.rebases() as f64)),
            ("commit_conflicts", Json::number(r.conflicts() as f64)),
            ("commits", Json::number(r.commits() as f64)),
        ]));
    }
    println!();
    println!(
        "pyiceberg reads every worker's every file in main exactly once (rows and distinct ids)"
    );
    let mut document = vec![("rounds", Json::Array(results))];
    if let Some(p) = &pair {
        println!(
            "same source, two workers, {} rounds: each batch published once ({} by the first \
             worker, {} by the second); the other found it published {} time(s), or held by \
             the other's lease {} time(s); slowest run {:.2} s",
            p.rounds, p.published[0], p.published[1], p.found_published, p.lost_lease, p.slowest_s
        );
        document.push((
            "same_source",
            Json::object([
                ("rounds", Json::number(f64::from(p.rounds))),
                ("published_by_first", Json::number(p.published[0] as f64)),
                ("published_by_second", Json::number(p.published[1] as f64)),
                ("found_published", Json::number(p.found_published as f64)),
                ("lost_lease", Json::number(p.lost_lease as f64)),
                ("slowest_run_s", Json::number(p.slowest_s)),
            ]),
        ));
    }
    let result_file = bench_dir.join("result.json");
    fs::write(&result_file, Json::object(document).to_pretty())?;
    println!("wrote {}", result_file.display());
    Ok(())
}

/// What the two workers on one source did.
struct Pair {
    rounds: u32,
    published: [usize; 2],
    found_published: usize,
    lost_lease: usize,
    slowest_s: f64,
}

/// Two workers on one directory: each round a new file lands, both start at once, and exactly
/// one of them publishes it; the other finds it published or held by the other's lease.
fn same_source(
    site: &Site,
    bench_dir: &Path,
    files: &Path,
    seed_dir: &Path,
    options: &ScaleBenchOptions,
) -> Result<Pair> {
    let table = format!("{NAMESPACE}.same_source");
    let lake = bench_dir.join("lake-same-source");
    site.new_lake(&lake, std::slice::from_ref(&table))?;
    site.seed(&lake, seed_dir, &table)?;
    let inbox = lake.join("in");
    fs::create_dir_all(&inbox)?;
    println!(
        "same source: two workers, {} rounds of one {}-row file",
        options.pair_rounds, options.rows
    );
    let mut pair = Pair {
        rounds: options.pair_rounds,
        published: [0, 0],
        found_published: 0,
        lost_lease: 0,
        slowest_s: 0.0,
    };
    for r in 0..options.pair_rounds {
        let name = format!("{r:05}.parquet");
        fs::copy(files.join(&name), inbox.join(&name))?;
        let outcomes = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| run_once(site, &lake, &inbox, &table)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let mut published_now = 0;
        for (w, o) in outcomes.iter().enumerate() {
            pair.slowest_s = pair.slowest_s.max(o.wall_s);
            match o.status.as_str() {
                "published" => {
                    pair.published[w] += 1;
                    published_now += 1;
                }
                "nothing_to_do" => pair.found_published += 1,
                _ if o.lost_lease() => pair.lost_lease += 1,
                other => bail!(
                    "same source, round {r}: a run ended {other} (exit {}): {}",
                    o.code,
                    o.error
                ),
            }
        }
        if published_now != 1 {
            bail!("same source, round {r}: {published_now} workers published the batch, not one");
        }
    }
    let expected = u64::from(options.pair_rounds) * u64::from(options.rows) + 1;
    let counts = site.count(&lake, std::slice::from_ref(&table))?;
    if counts != [(expected, expected)] {
        bail!(
            "same source: pyiceberg reads {:?} (rows, distinct ids) in main, expected {expected}",
            counts
        );
    }
    site.drop(std::slice::from_ref(&table))?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &[&str]) -> Result<ScaleBenchOptions> {
        parse_options(options, &|_| None)
    }

    #[test]
    fn options_parse() {
        let defaults = parse(&[]).unwrap();
        assert!(
            matches!(defaults.target, Target::Rest(_)),
            "the services by default"
        );
        assert_eq!(
            (
                defaults.workers,
                defaults.runs,
                defaults.rows,
                defaults.pair_rounds
            ),
            (vec![1, 2, 4, 8], 20, 100, 20)
        );
        let o = parse(&[
            "--workers",
            "1,2",
            "--runs=5",
            "--rows",
            "10",
            "--pair-rounds",
            "0",
            "--target",
            "embedded",
        ])
        .unwrap();
        assert_eq!(
            (o.workers, o.runs, o.rows, o.pair_rounds, o.target),
            (vec![1, 2], 5, 10, 0, Target::Embedded)
        );
        let rest = parse(&["--rest-port", "18181"]).unwrap();
        assert!(matches!(rest.target, Target::Rest(c) if c.rest_port == 18181));
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--runs", "0"]).is_err());
        assert!(parse(&["--target", "embedded", "--s3-port", "1"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}

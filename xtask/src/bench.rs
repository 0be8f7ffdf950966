//! `cargo xtask bench-wap`: times `sluice run` against the pyiceberg peer
//! (`../shared/bench/wap_pyiceberg.py`) on identical copies of the same synthetic events, in copy
//! and register modes, and reports the ratio of their wall times and their peak memory.
//!
//! Timings are only ever compared as ratios measured in the same invocation, on the same machine,
//! with the two tools interleaved; absolute seconds depend on the machine and its load.
//!
//! Two targets: `embedded` (each tool with a SQLite catalog and a local warehouse, the peer's own
//! setup) and `rest` (both tools on the Iceberg REST catalog and the S3 server of
//! `cargo xtask services up`; the peer's `SqlCatalog` is swapped for a `RestCatalog` by
//! `rest_peer.py`). The source files are local in both.
//!
//! ```text
//! target/bench-wap/
//!   data/events-f10-r1000000/   generated once per (files, rows)
//!   checks.toml                 the peer's audit, as sluice checks
//!   rest_peer.py                (rest) runs the peer against the REST catalog; drops tables
//!   runs/<mode>/<tool>/         a fresh copy of the data and a fresh warehouse per measurement
//!   result.json                 the last result
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::json::Json;
use crate::layout::{Layout, Service};
use crate::python;
use crate::rest_catalog;
use crate::s3_server::{self, S3Backend};
use crate::services::{self, ServicesConfig};

/// GNU time reports a child's wall time and peak resident set size (`%M`, in KiB).
const GNU_TIME: &str = "/usr/bin/time";

/// The peer's audit, expressed as sluice checks: the table is fresh, so uniqueness over the table
/// and over the branch's new rows is the same condition.
pub const CHECKS_TOML: &str = r#"# The audit of wap_pyiceberg.py, as sluice checks.
[[check]]
kind = "not_null"
column = "user_id"

[[check]]
kind = "unique"
column = "event_id"
scope = "table"

[[check]]
kind = "range"
column = "amount"
min = 0

[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "add_to_cart", "purchase", "search"]
"#;

/// Runs the peer against the REST catalog, and drops tables there (see its docstring).
const REST_PEER_PY: &str = include_str!("bench_rest_peer.py");

/// The table the peer always writes.
const PEER_TABLE: &str = "ns.events";
/// sluice's table on the REST catalog: apart from the peer's, so neither sees the other's data.
const SLUICE_REST_TABLE: &str = "bench_wap.events";

/// The options of `services up` that `--target rest` also takes.
const SERVICE_FLAGS: [&str; 4] = ["--s3", "--s3-port", "--rest-port", "--timeout"];

/// Peak memory the target allows sluice for the default data set.
const MEMORY_TARGET_MB: f64 = 300.0;

/// How the source files get into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The data is copied into the warehouse (sluice keeps the column chunks of files the
    /// table would store the same way, and re-encodes the others).
    Copy,
    /// Copy mode with `sluice run --rewrite`: sluice decodes and re-encodes every file, as
    /// the peer does.
    Rewrite,
    /// Files are added to the table where they are.
    Register,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Copy, Mode::Rewrite, Mode::Register];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Rewrite => "rewrite",
            Mode::Register => "register",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "copy" => Ok(Mode::Copy),
            "rewrite" => Ok(Mode::Rewrite),
            "register" => Ok(Mode::Register),
            other => bail!("--mode: {other:?} is not a mode (copy, rewrite or register)"),
        }
    }

    /// The peer's `--mode` (it has no rewrite mode: its copy mode always re-encodes).
    fn peer_mode(self) -> &'static str {
        match self {
            Mode::Copy | Mode::Rewrite => "copy",
            Mode::Register => "register",
        }
    }

    /// `sluice run`'s arguments for this mode.
    fn sluice_args(self) -> &'static [&'static str] {
        match self {
            Mode::Copy => &["--mode", "copy"],
            Mode::Rewrite => &["--mode", "copy", "--rewrite"],
            Mode::Register => &["--mode", "register"],
        }
    }

    /// The largest sluice/peer wall-time ratio that meets the target (rewrite is copy mode).
    pub fn target_ratio(self) -> f64 {
        match self {
            Mode::Copy | Mode::Rewrite => 0.25,
            Mode::Register => 0.20,
        }
    }
}

/// Where both tools keep the catalog and the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite SQL catalog and a local warehouse directory per measurement.
    Embedded,
    /// The Iceberg REST catalog and the S3 server that `services up` starts with this
    /// configuration.
    Rest(ServicesConfig),
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Embedded => "embedded",
            Target::Rest(_) => "rest",
        }
    }

    /// What is measured, for the table and `result.json`.
    fn description(&self) -> String {
        match self {
            Target::Embedded => "SQLite SQL catalog, local warehouse".to_string(),
            Target::Rest(config) => format!(
                "Iceberg REST catalog at {}, {} S3 at {}",
                config.rest_uri(),
                config.s3.name(),
                config.s3_endpoint()
            ),
        }
    }
}

/// What `bench-wap` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    pub files: u32,
    pub rows: u64,
    pub repeat: u32,
    /// Directory holding `gen_events.py` and `wap_pyiceberg.py`; `None`: `../shared/bench`.
    pub peer_dir: Option<PathBuf>,
    pub modes: Vec<Mode>,
    pub target: Target,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            files: 10,
            rows: 1_000_000,
            repeat: 1,
            peer_dir: None,
            modes: Mode::ALL.to_vec(),
            target: Target::Embedded,
        }
    }
}

/// Parses the options after `bench-wap`. With `--target rest`, the services are configured as
/// for `services up`: its options, then its `SLUICE_XTASK_*` variables (read through `env`).
pub fn parse_options(
    options: &[&str],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<BenchOptions> {
    let mut parsed = BenchOptions::default();
    let mut modes = Vec::new();
    let mut rest_target = false;
    let mut service_options = Vec::new();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let mut value = || -> Result<&str> {
            match inline {
                Some(value) => Ok(value),
                None => rest
                    .next()
                    .copied()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--files" => parsed.files = positive(flag, value()?)?,
            "--rows" => parsed.rows = positive(flag, value()?)?,
            "--repeat" => parsed.repeat = positive(flag, value()?)?,
            "--peer-dir" => parsed.peer_dir = Some(PathBuf::from(value()?)),
            "--mode" => {
                let mode = Mode::parse(value()?)?;
                if !modes.contains(&mode) {
                    modes.push(mode);
                }
            }
            "--target" => match value()? {
                "embedded" => rest_target = false,
                "rest" => rest_target = true,
                other => bail!(
                    "--target {other:?} is not a target: embedded (SQLite catalog, local \
                     warehouse) or rest (the REST catalog and S3 server of `services up`)"
                ),
            },
            flag if SERVICE_FLAGS.contains(&flag) => {
                let value = value()?;
                service_options.push(format!("{flag}={value}"));
            }
            _ => bail!("unknown option {option:?} for `bench-wap`; see `cargo xtask --help`"),
        }
    }
    if !modes.is_empty() {
        parsed.modes = modes;
    }
    if rest_target {
        let service_options: Vec<&str> = service_options.iter().map(String::as_str).collect();
        let config = crate::parse_config(&service_options, env)?;
        if config.s3 == S3Backend::Moto {
            bail!(
                "--target rest cannot use moto: pyarrow's S3 client (the peer's writes) fails on \
                 its multipart uploads; use s3s-fs or minio"
            );
        }
        parsed.target = Target::Rest(config);
    } else if let Some(option) = service_options.first() {
        let flag = option.split('=').next().unwrap_or(option);
        bail!("{flag} configures the services, so it goes with --target rest only");
    }
    Ok(parsed)
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(flag: &str, text: &str) -> Result<T> {
    match text.parse::<T>() {
        Ok(number) if number > T::default() => Ok(number),
        _ => bail!("{flag}: {text:?} is not a positive whole number"),
    }
}

/// The two programs being compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Peer,
    Sluice,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Peer => "pyiceberg",
            Tool::Sluice => "sluice",
        }
    }
}

/// Step names and their seconds, in the order a program reports them.
type Steps = Vec<(String, f64)>;

/// One timed process.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    wall_s: f64,
    peak_kib: u64,
    rows: u64,
    /// The steps the program reports about itself, in seconds, in its order.
    steps: Steps,
    /// Catalog commits (sluice reports them).
    commits: Option<u64>,
    /// Source files sluice copied without re-encoding them.
    copied_as_is: Option<u64>,
}

/// Medians (wall time, steps) and maximum (memory) over the repeats of one tool in one mode.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    wall_s: f64,
    peak_mb: f64,
    steps: Vec<(String, f64)>,
}

impl Summary {
    fn of(runs: &[Measurement]) -> Self {
        let steps = runs
            .first()
            .map(|first| {
                first
                    .steps
                    .iter()
                    .map(|(name, _)| {
                        let values: Vec<f64> = runs
                            .iter()
                            .filter_map(|run| step(&run.steps, name))
                            .collect();
                        (name.clone(), median(&values))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            wall_s: median(&runs.iter().map(|run| run.wall_s).collect::<Vec<_>>()),
            peak_mb: runs.iter().map(|run| run.peak_kib).max().unwrap_or(0) as f64 / 1024.0,
            steps,
        }
    }
}

fn step(steps: &[(String, f64)], name: &str) -> Option<f64> {
    steps
        .iter()
        .find(|(step, _)| step == name)
        .map(|(_, seconds)| *seconds)
}

/// The median; NaN for no values.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

/// Both tools in one mode.
struct ModeResult {
    mode: Mode,
    peer_runs: Vec<Measurement>,
    sluice_runs: Vec<Measurement>,
}

impl ModeResult {
    fn ratio(&self) -> f64 {
        Summary::of(&self.sluice_runs).wall_s / Summary::of(&self.peer_runs).wall_s
    }
}

/// Everything a measurement needs.
struct Bench {
    sluice: PathBuf,
    python: PathBuf,
    peer_script: PathBuf,
    data: PathBuf,
    checks: PathBuf,
    runs_dir: PathBuf,
    /// The REST catalog and S3 server, for `--target rest`.
    rest: Option<RestLake>,
}

/// The REST catalog and S3 server both tools use with `--target rest`.
struct RestLake {
    config: ServicesConfig,
    /// `rest_peer.py`, written into `target/bench-wap/`.
    wrapper: PathBuf,
}

/// Runs the benchmark: build, Python, data, (services,) then every mode; prints the table and
/// writes `target/bench-wap/result.json`.
pub fn run(layout: &Layout, options: &BenchOptions) -> Result<()> {
    check_gnu_time()?;
    let peer_dir = match &options.peer_dir {
        Some(dir) => dir.clone(),
        None => layout.workspace.join("..").join("shared").join("bench"),
    };
    let generator = peer_file(&peer_dir, "gen_events.py")?;
    let peer_script = peer_file(&peer_dir, "wap_pyiceberg.py")?;

    let sluice = build_sluice(layout)?;
    python::ensure(layout, python::BENCH)?;
    let python = layout.venv_python();

    let bench_dir = layout.target_dir().join("bench-wap");
    let data = generate_events(&python, &generator, &bench_dir, options.files, options.rows)?;
    let checks = bench_dir.join("checks.toml");
    fs::write(&checks, CHECKS_TOML)
        .with_context(|| format!("cannot write {}", checks.display()))?;
    let rest = match &options.target {
        Target::Embedded => None,
        Target::Rest(config) => {
            let wrapper = bench_dir.join("rest_peer.py");
            fs::write(&wrapper, REST_PEER_PY)
                .with_context(|| format!("cannot write {}", wrapper.display()))?;
            Some(RestLake {
                config: config.clone(),
                wrapper,
            })
        }
    };
    let bench = Bench {
        sluice,
        python,
        peer_script,
        data,
        checks,
        runs_dir: bench_dir.join("runs"),
        rest,
    };

    let results = match &options.target {
        Target::Embedded => bench.measure_all(options)?,
        Target::Rest(config) => {
            // As `e2e` does: what this call starts is stopped again, even after a failure;
            // services that were running before are left running.
            let running = services::up(layout, config)?;
            let results = bench.measure_all(options);
            if results.is_ok() {
                bench.drop_rest_tables();
            }
            services::stop_started(layout, &running.started);
            if running.started.len() < Service::ALL.len() {
                println!("services that were running before `bench-wap` are left running");
            }
            results?
        }
    };

    let data_bytes = directory_bytes(&bench.data)?;
    print!("{}", table(options, data_bytes, &results));
    let result_file = bench_dir.join("result.json");
    let document = result_json(layout, options, data_bytes, &results);
    fs::write(&result_file, document.to_pretty())
        .with_context(|| format!("cannot write {}", result_file.display()))?;
    println!("wrote {}", result_file.display());
    Ok(())
}

fn check_gnu_time() -> Result<()> {
    let output = Command::new(GNU_TIME).arg("--version").output();
    match output {
        Ok(output) if String::from_utf8_lossy(&output.stdout).contains("GNU") => Ok(()),
        Ok(output) if String::from_utf8_lossy(&output.stderr).contains("GNU") => Ok(()),
        _ => bail!(
            "bench-wap measures peak memory with GNU time at {GNU_TIME}; install it \
             (Debian/Ubuntu: `apt-get install time`)"
        ),
    }
}

pub(crate) fn peer_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; point --peer-dir at the directory holding gen_events.py and \
             wap_pyiceberg.py",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// `cargo build --release -p sluice-cli --locked`; returns the binary.
pub(crate) fn build_sluice(layout: &Layout) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    println!("building: cargo build --release -p sluice-cli --locked");
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "sluice-cli", "--locked"])
        .current_dir(&layout.workspace)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("building sluice in release failed ({status})");
    }
    let binary = layout.target_dir().join("release").join("sluice");
    if !binary.is_file() {
        bail!("the release build did not produce {}", binary.display());
    }
    Ok(binary)
}

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

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
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

fn directory_bytes(dir: &Path) -> Result<u64> {
    parquet_files(dir)?
        .iter()
        .map(|path| Ok(fs::metadata(path)?.len()))
        .sum()
}

impl Bench {
    /// Every mode, each tool `repeat` times, interleaved; fails on a wrong row count.
    fn measure_all(&self, options: &BenchOptions) -> Result<Vec<ModeResult>> {
        let expected_rows = u64::from(options.files) * options.rows;
        let mut results = Vec::new();
        for &mode in &options.modes {
            let mut result = ModeResult {
                mode,
                peer_runs: Vec::new(),
                sluice_runs: Vec::new(),
            };
            for repeat in 0..options.repeat {
                // Interleaved, and the first to run alternates, so drift in the machine's load
                // falls on both tools alike.
                let order = if repeat % 2 == 0 {
                    [Tool::Peer, Tool::Sluice]
                } else {
                    [Tool::Sluice, Tool::Peer]
                };
                for tool in order {
                    let measurement = self.measure(tool, mode)?;
                    println!(
                        "  {:<8} {:<9} run {}/{}: {:.2} s, peak {:.0} MB, {} rows{}",
                        mode.name(),
                        tool.name(),
                        repeat + 1,
                        options.repeat,
                        measurement.wall_s,
                        measurement.peak_kib as f64 / 1024.0,
                        measurement.rows,
                        match measurement.copied_as_is {
                            Some(n) if mode != Mode::Register => {
                                format!(", {n} file(s) copied as they are")
                            }
                            _ => String::new(),
                        }
                    );
                    if mode == Mode::Rewrite && measurement.copied_as_is.is_some_and(|n| n > 0) {
                        bail!("sluice run --rewrite copied files as they are");
                    }
                    if measurement.rows != expected_rows {
                        bail!(
                            "{} published {} rows in {} mode, but the source holds \
                             {expected_rows}",
                            tool.name(),
                            measurement.rows,
                            mode.name()
                        );
                    }
                    match tool {
                        Tool::Peer => result.peer_runs.push(measurement),
                        Tool::Sluice => result.sluice_runs.push(measurement),
                    }
                }
            }
            results.push(result);
        }
        Ok(results)
    }

    /// After the last measurement: the tables and their files go, so the S3 server's disk does
    /// not fill up over invocations. A failure here is reported, not fatal.
    fn drop_rest_tables(&self) {
        if let Some(rest) = &self.rest
            && let Err(err) = rest.drop_tables(&self.python, &[PEER_TABLE, SLUICE_REST_TABLE])
        {
            eprintln!("could not drop the benchmark tables: {err:#}");
        }
    }

    /// One run of `tool` on its own fresh copy of the data and a fresh warehouse.
    fn measure(&self, tool: Tool, mode: Mode) -> Result<Measurement> {
        let dir = self.runs_dir.join(mode.name()).join(tool.name());
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        let source = dir.join("source");
        let lake = dir.join("lake");
        fs::create_dir_all(&source)?;
        fs::create_dir_all(&lake)?;
        for file in parquet_files(&self.data)? {
            let name = file.file_name().context("a parquet file without a name")?;
            fs::copy(&file, source.join(name))
                .with_context(|| format!("cannot copy {}", file.display()))?;
        }

        let time_file = dir.join("time.txt");
        let mut command = match (tool, &self.rest) {
            (Tool::Peer, None) => {
                let mut command = timed(&time_file, &self.python);
                command
                    .arg(&self.peer_script)
                    .arg(&lake)
                    .arg(&source)
                    .args(["--mode", mode.peer_mode()]);
                command
            }
            (Tool::Peer, Some(rest)) => {
                // The peer always writes ns.events: the previous measurement's goes first, in
                // a process of its own that is not timed.
                rest.drop_tables(&self.python, &[PEER_TABLE])?;
                let mut command = timed(&time_file, &self.python);
                command
                    .envs(s3_credentials_env())
                    .arg(&rest.wrapper)
                    .arg(rest.pyiceberg_properties())
                    .arg(&self.peer_script)
                    .arg(&lake)
                    .arg(&source)
                    .args(["--mode", mode.peer_mode()]);
                command
            }
            (Tool::Sluice, None) => {
                let init = Command::new(&self.sluice)
                    .arg("init")
                    .current_dir(&lake)
                    .output()
                    .with_context(|| format!("cannot run {}", self.sluice.display()))?;
                if !init.status.success() {
                    bail!("`sluice init` failed:\n{}", tail(&init.stderr, 20));
                }
                self.sluice_run(&time_file, &lake, &source, "ns.events", mode)
            }
            (Tool::Sluice, Some(rest)) => {
                let config = lake.join("sluice.toml");
                fs::write(&config, rest.sluice_toml())
                    .with_context(|| format!("cannot write {}", config.display()))?;
                rest.drop_tables(&self.python, &[SLUICE_REST_TABLE])?;
                let mut command =
                    self.sluice_run(&time_file, &lake, &source, SLUICE_REST_TABLE, mode);
                command
                    .envs(s3_credentials_env())
                    .env_remove("AWS_SESSION_TOKEN");
                command
            }
        };
        command.current_dir(&dir);

        // Dirty pages of the copy are written out now rather than during the measurement.
        let _ = Command::new("sync").status();
        let begin = Instant::now();
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", tool.name()))?;
        let wall_s = begin.elapsed().as_secs_f64();
        let peak_kib = read_peak_kib(&time_file)?;
        let measurement = match tool {
            Tool::Peer => peer_measurement(&output, wall_s, peak_kib),
            Tool::Sluice => sluice_measurement(&output, wall_s, peak_kib),
        }
        .with_context(|| {
            format!(
                "{} in {} mode (its files are kept in {})",
                tool.name(),
                mode.name(),
                dir.display()
            )
        })?;
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        Ok(measurement)
    }
}

impl Bench {
    /// `sluice run` with the `sluice.toml` in `lake`, under GNU time.
    fn sluice_run(
        &self,
        time_file: &Path,
        lake: &Path,
        source: &Path,
        table: &str,
        mode: Mode,
    ) -> Command {
        let mut command = timed(time_file, &self.sluice);
        command
            .arg("--config")
            .arg(lake.join("sluice.toml"))
            .args(["--json", "--quiet", "run", "--source"])
            .arg(source)
            .args(["--table", table])
            .args(mode.sluice_args())
            .arg("--checks")
            .arg(&self.checks);
        command
    }
}

impl RestLake {
    /// sluice's configuration for the REST catalog and the S3 server; the journal stays in the
    /// measurement's directory, and the credentials come from [`sluice_s3_env`].
    fn sluice_toml(&self) -> String {
        format!(
            "# Written by `cargo xtask bench-wap --target rest`.\n\
             [catalog]\n\
             type = \"rest\"\n\
             uri = \"{uri}\"\n\
             warehouse = \"{warehouse}\"\n\
             \n\
             [storage.s3]\n\
             endpoint = \"{endpoint}\"\n\
             region = \"{region}\"\n\
             path_style = true\n\
             allow_http = true\n\
             \n\
             [journal]\n\
             location = \".sluice/journal\"\n",
            uri = self.config.rest_uri(),
            warehouse = rest_catalog::warehouse(),
            endpoint = self.config.s3_endpoint(),
            region = s3_server::REGION,
        )
    }

    /// pyiceberg `RestCatalog` properties (JSON) for the same catalog and S3 server, with the
    /// property names the interoperability tests use. pyiceberg 0.12 has no path-style setting:
    /// pyarrow's S3 client sends path-style requests when it is given an endpoint.
    fn pyiceberg_properties(&self) -> String {
        Json::object([
            ("uri", Json::string(self.config.rest_uri())),
            ("warehouse", Json::string(rest_catalog::warehouse())),
            ("s3.endpoint", Json::string(self.config.s3_endpoint())),
            ("s3.region", Json::string(s3_server::REGION)),
        ])
        .to_pretty()
    }

    /// Drops `tables` with their files where they exist (`rest_peer.py --drop`).
    fn drop_tables(&self, python: &Path, tables: &[&str]) -> Result<()> {
        let output = Command::new(python)
            .envs(s3_credentials_env())
            .arg(&self.wrapper)
            .arg(self.pyiceberg_properties())
            .arg("--drop")
            .args(tables)
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        if !output.status.success() {
            bail!(
                "dropping {} on the REST catalog failed ({}):\n{}",
                tables.join(", "),
                output.status,
                tail(&output.stderr, 20)
            );
        }
        Ok(())
    }
}

/// The S3 server's credentials, given to both tools as AWS variables: never in a file or on a
/// command line.
fn s3_credentials_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_ACCESS_KEY),
        ("AWS_REGION", s3_server::REGION),
    ]
}

/// `program` run under GNU time, which writes "<wall seconds> <peak KiB>" to `time_file`.
fn timed(time_file: &Path, program: &Path) -> Command {
    let mut command = Command::new(GNU_TIME);
    command
        .args(["-f", "%e %M", "-o"])
        .arg(time_file)
        .arg(program);
    command
}

fn read_peak_kib(time_file: &Path) -> Result<u64> {
    let text = fs::read_to_string(time_file)
        .with_context(|| format!("GNU time wrote no {}", time_file.display()))?;
    parse_time_output(&text)
        .with_context(|| format!("cannot read {}: {text:?}", time_file.display()))
}

/// The peak KiB of GNU time's `%e %M` line (the last line: a failed command adds one before it).
fn parse_time_output(text: &str) -> Result<u64> {
    let line = text.lines().last().context("empty")?;
    let mut fields = line.split_whitespace();
    let _wall = fields.next().context("no wall time")?;
    let peak = fields.next().context("no peak memory")?;
    peak.parse()
        .with_context(|| format!("{peak:?} is not a number of KiB"))
}

fn peer_measurement(output: &Output, wall_s: f64, peak_kib: u64) -> Result<Measurement> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the peer failed ({}):\n{}{}",
            output.status,
            tail(&output.stdout, 10),
            tail(&output.stderr, 20)
        );
    }
    let (rows, steps) = parse_peer_line(&stdout)?;
    Ok(Measurement {
        wall_s,
        peak_kib,
        rows,
        steps,
        commits: None,
        copied_as_is: None,
    })
}

/// Rows and step seconds from the peer's
/// `published rows=N files=F write=1.23s audit=0.45s publish=0.01s total=1.69s` line.
fn parse_peer_line(stdout: &str) -> Result<(u64, Steps)> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("published "))
        .with_context(|| format!("the peer printed no `published` line:\n{stdout}"))?;
    let mut rows = None;
    let mut steps = Vec::new();
    for (key, value) in line
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
    {
        match key {
            "rows" => rows = Some(value.parse().context("rows= is not a number")?),
            "write" | "audit" | "publish" | "total" => {
                let seconds = value.strip_suffix('s').unwrap_or(value);
                steps.push((
                    key.to_string(),
                    seconds
                        .parse()
                        .with_context(|| format!("{key}={value} is not seconds"))?,
                ));
            }
            _ => {}
        }
    }
    let rows = rows.with_context(|| format!("no rows= in {line:?}"))?;
    Ok((rows, steps))
}

fn sluice_measurement(output: &Output, wall_s: f64, peak_kib: u64) -> Result<Measurement> {
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
    })
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

/// The last `lines` lines of a process's output.
fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn steps_text(steps: &[(String, f64)], names: &[&str]) -> String {
    names
        .iter()
        .map(|name| match step(steps, name) {
            Some(seconds) => format!("{seconds:.2}"),
            None => "-".to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The human-readable result.
fn table(options: &BenchOptions, data_bytes: u64, results: &[ModeResult]) -> String {
    let mut out = format!(
        "\nbench-wap, target {} ({}): {} files x {} rows ({:.0} MB of parquet), median of {} \
         run(s) per tool, {} cores\n\n",
        options.target.name(),
        options.target.description(),
        options.files,
        options.rows,
        data_bytes as f64 / 1e6,
        options.repeat,
        cores()
    );
    out.push_str(&format!(
        "{:<9} {:>7} {:>8} {:>6} {:>7} {:>8} {:>10}  {:<33} {}\n",
        "mode",
        "peer s",
        "sluice s",
        "ratio",
        "target",
        "peer MB",
        "sluice MB",
        "sluice list/write/audit/publish s",
        "peer write/audit/publish s"
    ));
    for result in results {
        let peer = Summary::of(&result.peer_runs);
        let sluice = Summary::of(&result.sluice_runs);
        out.push_str(&format!(
            "{:<9} {:>7.2} {:>8.2} {:>6.3} {:>7} {:>8.0} {:>10.0}  {:<33} {}\n",
            result.mode.name(),
            peer.wall_s,
            sluice.wall_s,
            result.ratio(),
            format!("<={:.2}", result.mode.target_ratio()),
            peer.peak_mb,
            sluice.peak_mb,
            steps_text(&sluice.steps, &["list", "write", "audit", "publish"]),
            steps_text(&peer.steps, &["write", "audit", "publish"]),
        ));
    }
    out.push('\n');
    for result in results {
        let sluice = Summary::of(&result.sluice_runs);
        let ratio = result.ratio();
        let time_verdict = if ratio <= result.mode.target_ratio() {
            "meets"
        } else {
            "MISSES"
        };
        let memory_verdict = if sluice.peak_mb < MEMORY_TARGET_MB {
            "meets"
        } else {
            "MISSES"
        };
        out.push_str(&format!(
            "{}: time ratio {ratio:.3} {time_verdict} the target {:.2}; peak {:.0} MB \
             {memory_verdict} the {MEMORY_TARGET_MB:.0} MB target\n",
            result.mode.name(),
            result.mode.target_ratio(),
            sluice.peak_mb
        ));
    }
    out
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn result_json(
    layout: &Layout,
    options: &BenchOptions,
    data_bytes: u64,
    results: &[ModeResult],
) -> Json {
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&layout.workspace)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    let unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let modes = results
        .iter()
        .map(|result| {
            let ratio = result.ratio();
            let sluice_peak = Summary::of(&result.sluice_runs).peak_mb;
            Json::object([
                ("mode", Json::string(result.mode.name())),
                ("ratio", Json::number(round(ratio, 4))),
                ("target_ratio", Json::number(result.mode.target_ratio())),
                (
                    "meets_time_target",
                    Json::Bool(ratio <= result.mode.target_ratio()),
                ),
                (
                    "meets_memory_target",
                    Json::Bool(sluice_peak < MEMORY_TARGET_MB),
                ),
                ("peer", tool_json(&result.peer_runs)),
                ("sluice", tool_json(&result.sluice_runs)),
            ])
        })
        .collect();
    Json::object([
        ("benchmark", Json::string("bench-wap")),
        ("date_utc", Json::string(utc_timestamp(unix_seconds))),
        (
            "machine",
            Json::object([
                ("cores", Json::Number(cores().to_string())),
                ("os", Json::string(std::env::consts::OS)),
                ("arch", Json::string(std::env::consts::ARCH)),
            ]),
        ),
        ("sluice_commit", commit.map_or(Json::Null, Json::String)),
        ("target", Json::string(options.target.name())),
        ("target_detail", Json::string(options.target.description())),
        (
            "data",
            Json::object([
                ("files", Json::Number(options.files.to_string())),
                ("rows_per_file", Json::Number(options.rows.to_string())),
                (
                    "rows",
                    Json::Number((u64::from(options.files) * options.rows).to_string()),
                ),
                ("parquet_bytes", Json::Number(data_bytes.to_string())),
            ]),
        ),
        ("repeat", Json::Number(options.repeat.to_string())),
        ("memory_target_mb", Json::number(MEMORY_TARGET_MB)),
        (
            "note",
            Json::string(
                "wall times are medians over the repeats, peak memory the maximum; compare ratios, \
             which were measured in one invocation on one machine",
            ),
        ),
        ("modes", Json::Array(modes)),
    ])
}

fn tool_json(runs: &[Measurement]) -> Json {
    let summary = Summary::of(runs);
    let steps = |steps: &[(String, f64)]| {
        Json::object(
            steps
                .iter()
                .map(|(name, seconds)| (name.clone(), Json::number(round(*seconds, 3)))),
        )
    };
    let mut members = vec![
        ("wall_s".to_string(), Json::number(round(summary.wall_s, 3))),
        (
            "peak_mb".to_string(),
            Json::number(round(summary.peak_mb, 1)),
        ),
        ("steps_s".to_string(), steps(&summary.steps)),
    ];
    let runs = runs
        .iter()
        .map(|run| {
            let mut fields = vec![
                ("wall_s".to_string(), Json::number(round(run.wall_s, 3))),
                (
                    "peak_mb".to_string(),
                    Json::number(round(run.peak_kib as f64 / 1024.0, 1)),
                ),
                ("rows".to_string(), Json::Number(run.rows.to_string())),
                ("steps_s".to_string(), steps(&run.steps)),
            ];
            if let Some(commits) = run.commits {
                fields.push(("commits".to_string(), Json::Number(commits.to_string())));
            }
            Json::Object(fields)
        })
        .collect();
    members.push(("runs".to_string(), Json::Array(runs)));
    Json::Object(members)
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (proleptic Gregorian calendar).
fn utc_timestamp(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let second_of_day = unix_seconds % 86_400;
    // Days to a civil date, counting in 400-year eras that start on 1 March 0000.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(options: &[&str]) -> Result<BenchOptions> {
        parse_options(options, &no_env)
    }

    #[test]
    fn options_default_to_the_issue_data_set_and_every_mode() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.files, 10);
        assert_eq!(options.rows, 1_000_000);
        assert_eq!(options.repeat, 1);
        assert_eq!(options.peer_dir, None);
        assert_eq!(
            options.modes,
            vec![Mode::Copy, Mode::Rewrite, Mode::Register]
        );
        assert_eq!(options.target, Target::Embedded);
    }

    #[test]
    fn options_are_parsed_in_both_spellings() {
        let options = parse(&[
            "--files",
            "3",
            "--rows=100000",
            "--repeat",
            "5",
            "--peer-dir",
            "/opt/peer",
            "--mode",
            "register",
            "--target",
            "embedded",
        ])
        .unwrap();
        assert_eq!(
            options,
            BenchOptions {
                files: 3,
                rows: 100_000,
                repeat: 5,
                peer_dir: Some(PathBuf::from("/opt/peer")),
                modes: vec![Mode::Register],
                target: Target::Embedded,
            }
        );
    }

    #[test]
    fn target_rest_takes_the_services_configuration() {
        let options = parse(&["--target", "rest", "--files", "3"]).unwrap();
        assert_eq!(options.target, Target::Rest(ServicesConfig::default()));
        assert_eq!(options.target.name(), "rest");
        assert_eq!(options.files, 3);

        // The options of `services up` win over its variables, as there.
        let env = |name: &str| match name {
            "SLUICE_XTASK_REST_PORT" => Some("18181".to_string()),
            "SLUICE_XTASK_S3_PORT" => Some("19000".to_string()),
            _ => None,
        };
        let options = parse_options(
            &["--s3-port=29000", "--target=rest", "--timeout", "30"],
            &env,
        )
        .unwrap();
        let Target::Rest(config) = &options.target else {
            panic!("not the rest target: {:?}", options.target);
        };
        assert_eq!((config.s3_port, config.rest_port), (29000, 18181));
        assert_eq!(config.s3, S3Backend::S3sFs);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(
            options.target.description(),
            "Iceberg REST catalog at http://127.0.0.1:18181, s3s-fs S3 at http://127.0.0.1:29000"
        );

        // The last --target counts; the variables do not matter for embedded.
        let options = parse_options(&["--target", "rest", "--target", "embedded"], &env).unwrap();
        assert_eq!(options.target, Target::Embedded);
    }

    #[test]
    fn bad_options_are_named() {
        let error = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(error(&["--files", "0"]).contains("--files"));
        assert!(error(&["--rows", "-5"]).contains("\"-5\""));
        assert!(error(&["--repeat"]).contains("needs a value"));
        assert!(error(&["--mode", "append"]).contains("append"));
        assert_eq!(
            parse(&["--mode", "rewrite"]).unwrap().modes,
            vec![Mode::Rewrite]
        );
        assert!(error(&["--fast"]).contains("--fast"));

        let target = error(&["--target", "glue"]);
        assert!(target.contains("\"glue\" is not a target"), "{target}");
        assert!(
            target.contains("embedded") && target.contains("rest"),
            "{target}"
        );
        assert!(error(&["--target"]).contains("--target needs a value"));

        let services_only = error(&["--rest-port", "18181"]);
        assert!(
            services_only.contains("--rest-port configures the services"),
            "{services_only}"
        );
        assert!(error(&["--target", "rest", "--s3-port", "x"]).contains("\"x\""));
        let moto = error(&["--target", "rest", "--s3", "moto"]);
        assert!(moto.contains("cannot use moto"), "{moto}");
    }

    #[test]
    fn rest_runs_point_both_tools_at_the_same_catalog_and_s3_server() {
        let rest = RestLake {
            config: ServicesConfig {
                s3_port: 19000,
                rest_port: 18181,
                ..ServicesConfig::default()
            },
            wrapper: PathBuf::from("/t/bench-wap/rest_peer.py"),
        };
        let toml = rest.sluice_toml();
        for line in [
            "[catalog]\ntype = \"rest\"\nuri = \"http://127.0.0.1:18181\"\n",
            "warehouse = \"s3://warehouse/\"\n",
            "[storage.s3]\nendpoint = \"http://127.0.0.1:19000\"\nregion = \"us-east-1\"\n",
            "path_style = true\nallow_http = true\n",
            "[journal]\nlocation = \".sluice/journal\"\n",
        ] {
            assert!(toml.contains(line), "{line:?} not in\n{toml}");
        }
        assert!(!toml.contains("secret"), "credentials stay out of the file");
        assert!(s3_credentials_env().contains(&("AWS_SECRET_ACCESS_KEY", "sluice-secret")));

        let properties = Json::parse(&rest.pyiceberg_properties()).unwrap();
        let property = |name: &str| properties.get(name).and_then(Json::as_str);
        assert_eq!(property("uri"), Some("http://127.0.0.1:18181"));
        assert_eq!(property("warehouse"), Some("s3://warehouse/"));
        assert_eq!(property("s3.endpoint"), Some("http://127.0.0.1:19000"));
        assert_eq!(
            property("s3.access-key-id"),
            None,
            "credentials stay off the command line"
        );
        assert_eq!(property("s3.secret-access-key"), None);
        assert_eq!(property("s3.region"), Some("us-east-1"));
        assert_ne!(PEER_TABLE, SLUICE_REST_TABLE);
    }

    #[test]
    fn peer_line_gives_rows_and_steps() {
        let stdout = "some warning\npublished rows=3000000 files=3 write=2.51s audit=1.02s \
                      publish=0.03s total=3.56s\n";
        let (rows, steps) = parse_peer_line(stdout).unwrap();
        assert_eq!(rows, 3_000_000);
        assert_eq!(step(&steps, "write"), Some(2.51));
        assert_eq!(step(&steps, "audit"), Some(1.02));
        assert_eq!(step(&steps, "total"), Some(3.56));
        assert!(parse_peer_line("AUDIT FAILED ['unique(event_id)'] rows=5").is_err());
    }

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
    fn gnu_time_output_gives_peak_kib_even_after_a_failure_line() {
        assert_eq!(parse_time_output("12.34 1634567\n").unwrap(), 1_634_567);
        assert_eq!(
            parse_time_output("Command exited with non-zero status 1\n0.00 1080\n").unwrap(),
            1080
        );
        assert!(parse_time_output("").is_err());
        assert!(parse_time_output("0.00\n").is_err());
    }

    #[test]
    fn summaries_take_medians_of_time_and_the_maximum_of_memory() {
        let run = |wall_s: f64, peak_kib: u64, write: f64| Measurement {
            wall_s,
            peak_kib,
            rows: 10,
            steps: vec![("write".to_string(), write)],
            commits: Some(2),
            copied_as_is: None,
        };
        let summary = Summary::of(&[
            run(3.0, 2048, 1.0),
            run(1.0, 1024, 3.0),
            run(2.0, 4096, 2.0),
        ]);
        assert_eq!(summary.wall_s, 2.0);
        assert_eq!(summary.peak_mb, 4.0);
        assert_eq!(summary.steps, vec![("write".to_string(), 2.0)]);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn timestamps_are_civil_utc() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_727_000_000), "2024-09-22T10:13:20Z");
    }

    #[test]
    fn the_checks_file_holds_the_peers_four_audits() {
        for needle in [
            "kind = \"not_null\"\ncolumn = \"user_id\"",
            "kind = \"unique\"\ncolumn = \"event_id\"\nscope = \"table\"",
            "kind = \"range\"\ncolumn = \"amount\"\nmin = 0",
            "values = [\"view\", \"click\", \"add_to_cart\", \"purchase\", \"search\"]",
        ] {
            assert!(CHECKS_TOML.contains(needle), "{needle}");
        }
        assert_eq!(CHECKS_TOML.matches("[[check]]").count(), 4);
    }
}

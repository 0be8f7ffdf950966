//! One measurement: a tool on its own fresh copy of the data, timed; the tools interleaved over
//! the repeats of every mode.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::events::parquet_files;
use super::options::{BenchOptions, Mode};
use super::peer::{PEER_TABLE, peer_measurement};
use super::rest::{RestLake, SLUICE_REST_TABLE, s3_credentials_env};
use super::sluice::sluice_measurement;
use super::tail;
use super::timing::{Measurement, Summary, read_peak_kib, timed};

/// The two programs being compared, and (rewrite mode) the re-encode floor beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Peer,
    Sluice,
    /// `reencode-floor`: arrow-rs decoding and re-encoding the files, nothing else.
    Floor,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Peer => "pyiceberg",
            Tool::Sluice => "sluice",
            Tool::Floor => "floor",
        }
    }
}

/// Both tools in one mode.
pub(super) struct ModeResult {
    pub(super) mode: Mode,
    pub(super) peer_runs: Vec<Measurement>,
    pub(super) sluice_runs: Vec<Measurement>,
    /// Rewrite mode: the re-encode floor's runs (empty in the other modes).
    pub(super) floor_runs: Vec<Measurement>,
}

impl ModeResult {
    pub(super) fn ratio(&self) -> f64 {
        Summary::of(&self.sluice_runs).wall_s / Summary::of(&self.peer_runs).wall_s
    }

    /// sluice's wall time over the re-encode floor's, when the floor was measured.
    pub(super) fn over_floor(&self) -> Option<f64> {
        (!self.floor_runs.is_empty())
            .then(|| Summary::of(&self.sluice_runs).wall_s / Summary::of(&self.floor_runs).wall_s)
    }
}

/// Everything a measurement needs.
pub(super) struct Bench {
    pub(super) sluice: PathBuf,
    /// `reencode-floor`, measured beside rewrite mode when it was built.
    pub(super) floor: Option<PathBuf>,
    pub(super) python: PathBuf,
    pub(super) peer_script: PathBuf,
    pub(super) data: PathBuf,
    /// The events spread over 30 days (`--mode partitioned`), when that mode is measured.
    pub(super) data_by_day: Option<PathBuf>,
    /// `partitioned_peer.py`: gives the peer's table the spec `day(ts)`.
    pub(super) partitioned_wrapper: PathBuf,
    pub(super) checks: PathBuf,
    pub(super) runs_dir: PathBuf,
    /// The REST catalog and S3 server, for `--target rest`.
    pub(super) rest: Option<RestLake>,
}

impl Bench {
    /// Every mode, each tool `repeat` times, interleaved; fails on a wrong row count.
    pub(super) fn measure_all(&self, options: &BenchOptions) -> Result<Vec<ModeResult>> {
        let expected_rows = u64::from(options.files) * options.rows;
        let mut results = Vec::new();
        for &mode in &options.modes {
            let mut result = ModeResult {
                mode,
                peer_runs: Vec::new(),
                sluice_runs: Vec::new(),
                floor_runs: Vec::new(),
            };
            for repeat in 0..options.repeat {
                // Interleaved, and the first to run alternates, so drift in the machine's load
                // falls on both tools alike.
                let mut order = vec![Tool::Peer, Tool::Sluice];
                if mode == Mode::Rewrite && self.floor.is_some() {
                    order.push(Tool::Floor);
                }
                if repeat % 2 == 1 {
                    order.reverse();
                }
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
                        Tool::Floor => result.floor_runs.push(measurement),
                    }
                }
            }
            results.push(result);
        }
        Ok(results)
    }

    /// After the last measurement: the tables and their files go, so the S3 server's disk does
    /// not fill up over invocations. A failure here is reported, not fatal.
    pub(super) fn drop_rest_tables(&self) {
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
        let data = match (mode.spread_over_days(), &self.data_by_day) {
            (true, Some(by_day)) => by_day,
            (true, None) => bail!("the events spread over days were not generated"),
            (false, _) => &self.data,
        };
        for file in parquet_files(data)? {
            let name = file.file_name().context("a parquet file without a name")?;
            fs::copy(&file, source.join(name))
                .with_context(|| format!("cannot copy {}", file.display()))?;
        }

        let time_file = dir.join("time.txt");
        let mut command = match (tool, &self.rest) {
            (Tool::Peer, None) => {
                let mut command = timed(&time_file, &self.python);
                if mode.spread_over_days() {
                    command.arg(&self.partitioned_wrapper);
                }
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
                    .arg(rest.pyiceberg_properties());
                if mode.spread_over_days() {
                    command.arg(&self.partitioned_wrapper);
                }
                command
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
            (Tool::Floor, _) => {
                let floor = self
                    .floor
                    .as_ref()
                    .context("reencode-floor was not built")?;
                let mut command = timed(&time_file, floor);
                command
                    .arg(dir.join("out"))
                    .arg(cores().to_string())
                    .args(parquet_files(&source)?);
                command
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
            Tool::Floor => floor_measurement(&output, wall_s, peak_kib),
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

/// The floor writes as many files at once as sluice does by default: one per core.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `reencode-floor` prints `{"seconds": S, "rows": N}`.
fn floor_measurement(
    output: &std::process::Output,
    wall_s: f64,
    peak_kib: u64,
) -> Result<Measurement> {
    if !output.status.success() {
        bail!(
            "reencode-floor failed ({}):\n{}",
            output.status,
            tail(&output.stderr, 20)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = crate::json::Json::parse(&stdout).context("reencode-floor printed no JSON")?;
    let rows = report
        .get("rows")
        .and_then(crate::json::Json::as_u64)
        .context("reencode-floor reported no rows")?;
    let seconds = report
        .get("seconds")
        .and_then(crate::json::Json::as_f64)
        .context("reencode-floor reported no seconds")?;
    Ok(Measurement {
        wall_s,
        peak_kib,
        rows,
        steps: vec![("write".to_string(), seconds)],
        commits: None,
        copied_as_is: None,
        partition_files: None,
    })
}

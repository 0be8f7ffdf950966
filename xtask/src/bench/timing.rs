//! Timed processes: wall time and peak memory under GNU time, and their summaries over repeats.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// GNU time reports a child's wall time and peak resident set size (`%M`, in KiB).
const GNU_TIME: &str = "/usr/bin/time";

pub(super) fn check_gnu_time() -> Result<()> {
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

/// `program` run under GNU time, which writes `<wall seconds> <peak KiB>` to `time_file`.
pub(super) fn timed(time_file: &Path, program: &Path) -> Command {
    let mut command = Command::new(GNU_TIME);
    command
        .args(["-f", "%e %M", "-o"])
        .arg(time_file)
        .arg(program);
    command
}

pub(super) fn read_peak_kib(time_file: &Path) -> Result<u64> {
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

/// Step names and their seconds, in the order a program reports them.
pub(super) type Steps = Vec<(String, f64)>;

/// One timed process.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Measurement {
    pub(super) wall_s: f64,
    pub(super) peak_kib: u64,
    pub(super) rows: u64,
    /// The steps the program reports about itself, in seconds, in its order.
    pub(super) steps: Steps,
    /// Catalog commits (sluice reports them).
    pub(super) commits: Option<u64>,
    /// Source files sluice copied without re-encoding them.
    pub(super) copied_as_is: Option<u64>,
    /// Partitioned tables: partitions written and data files written (sluice reports them).
    pub(super) partition_files: Option<(u64, u64)>,
}

/// Medians (wall time, steps) and maximum (memory) over the repeats of one tool in one mode.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Summary {
    pub(super) wall_s: f64,
    pub(super) peak_mb: f64,
    pub(super) steps: Vec<(String, f64)>,
}

impl Summary {
    pub(super) fn of(runs: &[Measurement]) -> Self {
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

pub(super) fn step(steps: &[(String, f64)], name: &str) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            partition_files: None,
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
}

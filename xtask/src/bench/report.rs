//! The result: a table for people and `result.json` for the record.

use std::process::Command;

use chrono::{DateTime, SecondsFormat, Utc};

use super::measure::ModeResult;
use super::options::BenchOptions;
use super::timing::{Measurement, Summary, step};
use crate::json::Json;
use crate::layout::Layout;

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
pub(super) fn table(options: &BenchOptions, data_bytes: u64, results: &[ModeResult]) -> String {
    let mut out = format!(
        "\nbench-wap, target {} ({}): {} files x {} rows ({:.0} MB of {} parquet), median of {} \
         run(s) per tool, {} cores\n\n",
        options.target.name(),
        options.target.description(),
        options.files,
        options.rows,
        data_bytes as f64 / 1e6,
        options.compression,
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
            format!("<={:.2}", result.mode.target_ratio(&options.compression)),
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
        let time_verdict = if ratio <= result.mode.target_ratio(&options.compression) {
            "meets"
        } else {
            "MISSES"
        };
        let memory_target = result.mode.memory_target_mb();
        let memory_verdict = if sluice.peak_mb < memory_target {
            "meets"
        } else {
            "MISSES"
        };
        out.push_str(&format!(
            "{}: time ratio {ratio:.3} {time_verdict} the target {:.2}; peak {:.0} MB \
             {memory_verdict} the {memory_target:.0} MB target{}\n",
            result.mode.name(),
            result.mode.target_ratio(&options.compression),
            sluice.peak_mb,
            match result.sluice_runs.last().and_then(|m| m.partition_files) {
                Some((partitions, files)) => format!(
                    "; {files} data files over {partitions} partitions ({:.1} per partition)",
                    files as f64 / partitions.max(1) as f64
                ),
                None => String::new(),
            }
        ));
        if let Some(over) = result.over_floor() {
            let floor = Summary::of(&result.floor_runs);
            out.push_str(&format!(
                "{}: sluice {:.2} s is {over:.2}x the re-encode floor ({:.2} s, peak {:.0} MB: \
                 arrow-rs decoding and writing the files, no catalog, audit or Iceberg \
                 metadata); the target is 1.30x\n",
                result.mode.name(),
                Summary::of(&result.sluice_runs).wall_s,
                floor.wall_s,
                floor.peak_mb,
            ));
        }
    }
    out
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn result_json(
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
    let modes = results
        .iter()
        .map(|result| {
            let ratio = result.ratio();
            let sluice_peak = Summary::of(&result.sluice_runs).peak_mb;
            Json::object([
                ("mode", Json::string(result.mode.name())),
                ("ratio", Json::number(round(ratio, 4))),
                (
                    "target_ratio",
                    Json::number(result.mode.target_ratio(&options.compression)),
                ),
                (
                    "meets_time_target",
                    Json::Bool(ratio <= result.mode.target_ratio(&options.compression)),
                ),
                (
                    "meets_memory_target",
                    Json::Bool(sluice_peak < result.mode.memory_target_mb()),
                ),
                (
                    "memory_target_mb",
                    Json::number(result.mode.memory_target_mb()),
                ),
                ("peer", tool_json(&result.peer_runs)),
                ("sluice", tool_json(&result.sluice_runs)),
                (
                    "floor",
                    match result.over_floor() {
                        Some(_) => tool_json(&result.floor_runs),
                        None => Json::Null,
                    },
                ),
                (
                    "sluice_over_floor",
                    result
                        .over_floor()
                        .map_or(Json::Null, |r| Json::number(round(r, 3))),
                ),
            ])
        })
        .collect();
    Json::object([
        ("benchmark", Json::string("bench-wap")),
        ("date_utc", Json::string(utc_timestamp(Utc::now()))),
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
                ("compression", Json::string(&options.compression)),
                (
                    "rows",
                    Json::Number((u64::from(options.files) * options.rows).to_string()),
                ),
                ("parquet_bytes", Json::Number(data_bytes.to_string())),
            ]),
        ),
        ("repeat", Json::Number(options.repeat.to_string())),
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

/// `YYYY-MM-DDTHH:MM:SSZ`, the form of `date_utc` in `result.json`.
fn utc_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        let at = |unix_seconds| utc_timestamp(DateTime::from_timestamp(unix_seconds, 0).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_727_000_000), "2024-09-22T10:13:20Z");
    }
}

//! `cargo xtask bench-wap`: times `sluice run` against the pyiceberg peer
//! (`../shared/bench/wap_pyiceberg.py`) on identical copies of the same synthetic events, in copy
//! and register modes and into a table partitioned by day, and reports the ratio of their wall
//! times and their peak memory.
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
//!   data/events-f10-r1000000-30d/  the same events spread over 30 days (mode partitioned)
//!   rest_peer.py                (rest) runs the peer against the REST catalog; drops tables
//!   partitioned_peer.py         (partitioned) gives the peer's table the spec day(ts)
//!   runs/<mode>/<tool>/         a fresh copy of the data and a fresh warehouse per measurement
//!   result.json                 the last result
//! ```
//!
//! `options` parses the command line, `events` generates the data, `measure` times `peer` and
//! `sluice` (with `timing`, optionally on the `rest` target), `report` writes the result.

mod events;
mod measure;
mod options;
mod peer;
mod report;
mod rest;
mod sluice;
mod timing;

use std::fs;

use anyhow::{Context, Result};

pub use options::{BenchOptions, parse_options};

// `bench-runs` builds sluice, finds the peer's generator and summarises its runs the same way.
pub(crate) use events::{generate_events, spread_over_days};
pub(crate) use options::{Target, TargetFlags};
pub(crate) use peer::peer_file;
pub(crate) use rest::{RestLake, s3_credentials_env};
pub(crate) use sluice::{build_bench_binary, build_sluice};
pub(crate) use timing::median;

use crate::layout::{Layout, Service};
use crate::python;
use crate::services;
use events::directory_bytes;
use measure::Bench;
use peer::CHECKS_TOML;
use report::{result_json, table};
pub(crate) use rest::REST_PEER_PY;

/// Runs the peer with its table partitioned by `day(ts)` (see its docstring).
const PARTITIONED_PEER_PY: &str = include_str!("../bench_partitioned_peer.py");
use timing::check_gnu_time;

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
    // Rewrite mode is measured against the floor of re-encoding as well as against the peer.
    let floor = if options.modes.contains(&options::Mode::Rewrite) {
        Some(sluice::build_floor(layout)?)
    } else {
        None
    };
    python::ensure(layout, python::BENCH)?;
    let python = layout.venv_python();

    let bench_dir = layout.target_dir().join("bench-wap");
    let data = generate_events(
        &python,
        &generator,
        &bench_dir,
        options.files,
        options.rows,
        &options.compression,
    )?;
    let data_by_day = if options.modes.iter().any(|m| m.spread_over_days()) {
        Some(spread_over_days(&python, &data, 30)?)
    } else {
        None
    };
    let partitioned_wrapper = bench_dir.join("partitioned_peer.py");
    fs::write(&partitioned_wrapper, PARTITIONED_PEER_PY)
        .with_context(|| format!("cannot write {}", partitioned_wrapper.display()))?;
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
        floor,
        python,
        peer_script,
        data,
        data_by_day,
        partitioned_wrapper,
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

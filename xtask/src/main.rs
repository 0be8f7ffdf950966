//! `cargo xtask`: developer tasks for sluice. See `cargo xtask --help`.

mod bench;
mod bench_maintain;
mod bench_py;
mod bench_runs;
mod bench_scale;
mod bench_serve;
mod bench_sql;
mod ci;
mod http;
mod json;
mod layout;
mod process;
mod py_test;
mod python;
mod rest_catalog;
mod s3_server;
mod services;

use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::BenchOptions;
use crate::layout::Layout;
use crate::s3_server::S3Backend;
use crate::services::ServicesConfig;

const HELP: &str = "\
cargo xtask: developer tasks for sluice

USAGE:
    cargo xtask services up [OPTIONS]    start the S3 server and the Iceberg REST catalog
    cargo xtask services down [--wipe]   stop them (by recorded pid); --wipe deletes their data
    cargo xtask services status          report each service; exit code 1 unless both are up
    cargo xtask e2e [OPTIONS] [-- ARGS]  services up, `cargo test -p sluice-tests` with the
                                         services' variables, then (without ARGS) the short
                                         storage-fault suite, services down; ARGS go to cargo test
    cargo xtask faults [OPTIONS] [--short]
                                         services up, the storage-fault matrix (SLUICE_FAULTS_*
                                         variables, see docs/transactions.md), services down;
                                         figures in target/faults/report.md; --short runs the
                                         suite that e2e runs
    cargo xtask ci [OPTIONS]             everything CI runs, in CI's order
    cargo xtask bench-py [--files N] [--rows N] [--repeat N]
                                         the Python package in release against the CLI (a
                                         whole run: `sluice.run` vs `sluice run`) and against
                                         pyiceberg (a scan into pyarrow), on bench-wap's events
                                         (default 10 x 1000000, 3 runs each, interleaved)
    cargo xtask bench-sql [--files N] [--rows N] [--repeat N]
                                         `sluice sql` against DuckDB's iceberg_scan (with its
                                         iceberg extension, in target/xtask/duckdb-iceberg-venv)
                                         on bench-wap's events: a GROUP BY over every row
                                         (target: at most 1.5x DuckDB's time) and one day of 30
                                         on a table partitioned by day (target: at most 1/10 of
                                         the files read); default 10 x 1000000, 5 runs each
    cargo xtask bench-serve [--rate N] [--seconds N] [--rows N] [--workers N]
                            [--duplicate-every N] [--drain-timeout SECS (1200)]
                                         `sluice serve` on the embedded default, its source
                                         bucket on an s3s-fs of its own: N S3 notifications a
                                         second (default 1000 for 30 s, one new file each, every
                                         50th a late duplicate) sent open-loop on keep-alive
                                         connections; fails unless p99 accept latency < 50 ms
                                         and, once drained, main holds every file once
    cargo xtask py-test [-- PYTEST ARGS] build the Python package (crates/sluice-py) in the dev
                                         profile with maturin, install it into xtask's venv
                                         (target/xtask/venv) and run its pytest suite
    cargo xtask bench-wap [BENCH OPTIONS]
                                         time `sluice run` against the pyiceberg peer on the same
                                         synthetic events (copy and register modes): wall-time
                                         ratio and peak memory, also in target/bench-wap/result.json;
                                         --target rest runs both on the services (up and down as
                                         for e2e)
    cargo xtask bench-maintain [--runs N] [--rows N] [--repeat N]
                                         N one-file runs into one table (default 300 of 1000
                                         rows), then scans of main timed before and after
                                         `sluice maintain` (in-process with scan-main, and
                                         `sluice sql`); fails unless main has at most 5 data
                                         files after and the in-process scan of a column is
                                         at least 5x faster
    cargo xtask bench-scale [--workers 1,2,4,8] [--runs N] [--rows N] [--pair-rounds N]
                            [--target rest|embedded] [SERVICES OPTIONS]
                                         N `sluice run` processes at once, each over its own
                                         source directory (default 20 runs of one 100-row file
                                         each), into one table, then into a table each, on the
                                         services' REST catalog and S3 server (up and down as
                                         for e2e; --target embedded: SQLite, local files):
                                         runs/min, publish p50/p99, slowest run, rebases,
                                         commit conflicts; then two workers on one source for
                                         --pair-rounds rounds (default 20); fails unless
                                         pyiceberg reads every file in main exactly once and
                                         each same-source batch was published once
    cargo xtask bench-runs [--runs N] [--rows N] [--window N] [--unique] [--maintain-every N]
                                         N one-file `sluice run`s into one table (default 200
                                         of 10000 rows); fails unless the median of the last
                                         --window runs (default 20) is within 1.2x the first's;
                                         also reports the metadata file's growth per run;
                                         --unique audits each run with a table-scoped unique
                                         check on event_id and reports main's files it read;
                                         --maintain-every N runs `sluice maintain` (keeping 20
                                         snapshots) after every N runs, timed apart

OPTIONS (for services up, e2e, faults, ci, bench-wap --target rest and bench-scale):
    --s3 <s3s-fs|moto|minio>  S3 server [env SLUICE_XTASK_S3, default s3s-fs]
    --s3-port <PORT>          S3 port on 127.0.0.1 [env SLUICE_XTASK_S3_PORT, default 9000]
    --rest-port <PORT>        REST catalog port [env SLUICE_XTASK_REST_PORT, default 8181]
    --timeout <SECONDS>       health-check limit per service [env SLUICE_XTASK_TIMEOUT, default 120]

BENCH OPTIONS:
    --files <N>         parquet files to generate [default 10]
    --rows <N>          rows per file [default 1000000]
    --repeat <N>        runs per tool and mode, interleaved; medians are compared [default 1]
    --mode <MODE>       copy, rewrite (copy with `sluice run --rewrite`), register, or
                        partitioned (copy into a table partitioned by day(ts), the events
                        spread over 30 days); repeat the flag for several [default all four]
    --peer-dir <DIR>    holds gen_events.py and wap_pyiceberg.py [default ../shared/bench]
    --compression <C>   the generated sources' codec: zstd, snappy (pyarrow's and Spark's
                        default), gzip or none [default zstd]
    --target <TARGET>   embedded: SQLite catalog and local warehouse per run; rest: the REST
                        catalog and S3 server of `services up` (sluice writes bench_wap.events,
                        the peer ns.events, both dropped before each run) [default embedded]

`services up` prints the variables the tests read and writes them to target/xtask/services.env
(load with `. target/xtask/services.env`). Tools, data, pids and logs live under target/xtask/.
If an e2e or bench-wap --target rest run is interrupted, stop the services with
`cargo xtask services down`.
";

/// What to do, parsed from the command line.
#[derive(Debug, PartialEq, Eq)]
enum Task {
    Help,
    ServicesUp(ServicesConfig),
    ServicesDown { wipe: bool },
    ServicesStatus,
    E2e(ServicesConfig, Vec<String>),
    Faults { config: ServicesConfig, short: bool },
    Ci(ServicesConfig),
    BenchWap(BenchOptions),
    BenchRuns(bench_runs::RunsOptions),
    BenchMaintain(bench_maintain::MaintainBenchOptions),
    BenchScale(bench_scale::ScaleBenchOptions),
    PyTest(Vec<String>),
    BenchPy(bench_py::PyBenchOptions),
    BenchSql(bench_sql::SqlBenchOptions),
    BenchServe(bench_serve::ServeBenchOptions),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args, |name| std::env::var(name).ok()).and_then(run) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    let layout = Layout::discover()?;
    match task {
        Task::Help => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Task::ServicesUp(config) => {
            services::up(&layout, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::ServicesDown { wipe } => {
            services::down(&layout, wipe)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::ServicesStatus => Ok(if services::status(&layout)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Task::E2e(config, test_args) => Ok(exit_code(ci::e2e(&layout, &config, &test_args)?)),
        Task::Faults { config, short } => Ok(exit_code(ci::faults(&layout, &config, short)?)),
        Task::Ci(config) => Ok(exit_code(ci::ci(&layout, &config)?)),
        Task::BenchWap(options) => {
            bench::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::BenchRuns(options) => {
            bench_runs::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::BenchMaintain(options) => {
            bench_maintain::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::BenchScale(options) => {
            bench_scale::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::PyTest(args) => Ok(exit_code(py_test::run(&layout, &args)?)),
        Task::BenchPy(options) => {
            bench_py::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::BenchSql(options) => {
            bench_sql::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::BenchServe(options) => {
            bench_serve::run(&layout, &options)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The child's exit code, or 1 when it was killed by a signal.
fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Task> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if words.iter().any(|w| *w == "--help" || *w == "-h") && !words.starts_with(&["e2e"]) {
        return Ok(Task::Help);
    }
    match words.as_slice() {
        [] | ["help"] => Ok(Task::Help),
        ["services", "up", options @ ..] => Ok(Task::ServicesUp(parse_config(options, &env)?)),
        ["services", "down", options @ ..] => {
            let mut wipe = false;
            for option in options {
                match *option {
                    "--wipe" => wipe = true,
                    other => bail!("unknown option {other:?} for `services down`; see --help"),
                }
            }
            Ok(Task::ServicesDown { wipe })
        }
        ["services", "status"] => Ok(Task::ServicesStatus),
        ["services", ..] => bail!("expected `services up`, `services down` or `services status`"),
        ["e2e", rest @ ..] => {
            let (options, test_args) = match rest.iter().position(|w| *w == "--") {
                Some(split) => (&rest[..split], &rest[split + 1..]),
                None => (rest, &[][..]),
            };
            if options.iter().any(|w| *w == "--help" || *w == "-h") {
                return Ok(Task::Help);
            }
            let test_args = test_args.iter().map(|arg| arg.to_string()).collect();
            Ok(Task::E2e(parse_config(options, &env)?, test_args))
        }
        ["faults", options @ ..] => {
            let short = options.contains(&"--short");
            let options: Vec<&str> = options
                .iter()
                .copied()
                .filter(|o| *o != "--short")
                .collect();
            Ok(Task::Faults {
                config: parse_config(&options, &env)?,
                short,
            })
        }
        ["ci", options @ ..] => Ok(Task::Ci(parse_config(options, &env)?)),
        ["bench-wap", options @ ..] => Ok(Task::BenchWap(bench::parse_options(options, &env)?)),
        ["bench-runs", options @ ..] => Ok(Task::BenchRuns(bench_runs::parse_options(options)?)),
        ["bench-scale", options @ ..] => {
            Ok(Task::BenchScale(bench_scale::parse_options(options, &env)?))
        }
        ["bench-maintain", options @ ..] => {
            Ok(Task::BenchMaintain(bench_maintain::parse_options(options)?))
        }
        ["bench-py", options @ ..] => Ok(Task::BenchPy(bench_py::parse_options(options)?)),
        ["bench-sql", options @ ..] => Ok(Task::BenchSql(bench_sql::parse_options(options)?)),
        ["bench-serve", options @ ..] => Ok(Task::BenchServe(bench_serve::parse_options(options)?)),
        ["py-test", rest @ ..] => {
            let args = match rest {
                ["--", args @ ..] => args,
                [] => &[][..],
                [other, ..] => {
                    bail!("unknown option {other:?} for `py-test`; pytest's go after `--`")
                }
            };
            Ok(Task::PyTest(args.iter().map(|a| a.to_string()).collect()))
        }
        [other, ..] => bail!("unknown task {other:?}; see `cargo xtask --help`"),
    }
}

/// Options override environment variables, which override the defaults.
fn parse_config(options: &[&str], env: &impl Fn(&str) -> Option<String>) -> Result<ServicesConfig> {
    let mut values = [
        ("--s3", "SLUICE_XTASK_S3", env("SLUICE_XTASK_S3")),
        (
            "--s3-port",
            "SLUICE_XTASK_S3_PORT",
            env("SLUICE_XTASK_S3_PORT"),
        ),
        (
            "--rest-port",
            "SLUICE_XTASK_REST_PORT",
            env("SLUICE_XTASK_REST_PORT"),
        ),
        (
            "--timeout",
            "SLUICE_XTASK_TIMEOUT",
            env("SLUICE_XTASK_TIMEOUT"),
        ),
    ];
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let Some(slot) = values.iter_mut().find(|(name, _, _)| *name == flag) else {
            bail!("unknown option {option:?}; see `cargo xtask --help`");
        };
        let value = match inline {
            Some(value) => value,
            None => rest
                .next()
                .with_context(|| format!("{flag} needs a value"))?,
        };
        slot.2 = Some(value.to_string());
    }

    let mut config = ServicesConfig::default();
    let [s3, s3_port, rest_port, timeout] = values;
    if let Some(name) = s3.2 {
        config.s3 = S3Backend::parse(&name)?;
    }
    if let Some(value) = s3_port.2 {
        config.s3_port = parse_port(s3_port.0, s3_port.1, &value)?;
    }
    if let Some(value) = rest_port.2 {
        config.rest_port = parse_port(rest_port.0, rest_port.1, &value)?;
    }
    if let Some(value) = timeout.2 {
        let seconds: u64 = value.parse().with_context(|| {
            format!(
                "{} / {}: {value:?} is not a number of seconds",
                timeout.0, timeout.1
            )
        })?;
        config.timeout = Duration::from_secs(seconds);
    }
    if config.s3_port == config.rest_port {
        bail!(
            "the S3 server and the REST catalog cannot share port {}",
            config.s3_port
        );
    }
    Ok(config)
}

fn parse_port(flag: &str, var: &str, value: &str) -> Result<u16> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => bail!("{flag} / {var}: {value:?} is not a port number (1-65535)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn services_up_uses_defaults_without_options() {
        let task = parse(&args("services up"), no_env).unwrap();
        assert_eq!(task, Task::ServicesUp(ServicesConfig::default()));
        let ServicesConfig {
            s3,
            s3_port,
            rest_port,
            ..
        } = ServicesConfig::default();
        assert_eq!((s3, s3_port, rest_port), (S3Backend::S3sFs, 9000, 8181));
    }

    #[test]
    fn flags_override_environment_which_overrides_defaults() {
        let env = |name: &str| match name {
            "SLUICE_XTASK_S3" => Some("moto".to_string()),
            "SLUICE_XTASK_S3_PORT" => Some("19000".to_string()),
            "SLUICE_XTASK_REST_PORT" => Some("18181".to_string()),
            _ => None,
        };
        let Task::ServicesUp(config) =
            parse(&args("services up --s3-port 29000 --timeout=30"), env).unwrap()
        else {
            panic!("not services up");
        };
        assert_eq!(config.s3, S3Backend::Moto);
        assert_eq!(config.s3_port, 29000);
        assert_eq!(config.rest_port, 18181);
        assert_eq!(config.timeout, Duration::from_secs(30));
    }

    #[test]
    fn e2e_passes_arguments_after_double_dash_to_cargo_test() {
        let task = parse(&args("e2e --s3 moto -- rest_catalog --nocapture"), no_env).unwrap();
        let expected = ServicesConfig {
            s3: S3Backend::Moto,
            ..ServicesConfig::default()
        };
        assert_eq!(task, Task::E2e(expected, args("rest_catalog --nocapture")));
        // `--help` after `--` belongs to the test binary.
        assert!(matches!(
            parse(&args("e2e -- --help"), no_env).unwrap(),
            Task::E2e(_, _)
        ));
    }

    #[test]
    fn down_status_ci_and_help() {
        assert_eq!(
            parse(&args("services down --wipe"), no_env).unwrap(),
            Task::ServicesDown { wipe: true }
        );
        assert_eq!(
            parse(&args("services status"), no_env).unwrap(),
            Task::ServicesStatus
        );
        assert_eq!(
            parse(&args("ci"), no_env).unwrap(),
            Task::Ci(ServicesConfig::default())
        );
        assert_eq!(parse(&args("--help"), no_env).unwrap(), Task::Help);
        assert_eq!(parse(&args("services up -h"), no_env).unwrap(), Task::Help);
        assert_eq!(parse(&[], no_env).unwrap(), Task::Help);
    }

    #[test]
    fn faults_takes_the_services_options_and_short() {
        assert_eq!(
            parse(&args("faults --s3-port 29000 --short"), no_env).unwrap(),
            Task::Faults {
                config: ServicesConfig {
                    s3_port: 29000,
                    ..ServicesConfig::default()
                },
                short: true,
            }
        );
        assert_eq!(
            parse(&args("faults"), no_env).unwrap(),
            Task::Faults {
                config: ServicesConfig::default(),
                short: false,
            }
        );
        assert!(parse(&args("faults --verbose"), no_env).is_err());
    }

    #[test]
    fn bench_wap_takes_its_own_options() {
        let Task::BenchWap(options) =
            parse(&args("bench-wap --files 3 --rows 100000"), no_env).unwrap()
        else {
            panic!("not bench-wap");
        };
        assert_eq!(
            (options.files, options.rows, options.repeat),
            (3, 100_000, 1)
        );
        assert_eq!(
            parse(&args("bench-wap --help"), no_env).unwrap(),
            Task::Help
        );
        let error = parse(&args("bench-wap --s3 moto"), no_env).unwrap_err();
        assert!(error.to_string().contains("--s3"), "{error}");
    }

    #[test]
    fn bad_input_is_named_in_the_error() {
        let error = |line: &str| parse(&args(line), no_env).unwrap_err().to_string();
        assert!(error("deploy").contains("deploy"));
        assert!(error("services up --s3 ceph").contains("ceph"));
        assert!(error("services up --s3-port 70000").contains("70000"));
        assert!(error("services up --rest-port").contains("needs a value"));
        assert!(error("services up --verbose").contains("--verbose"));
        assert!(error("services down --force").contains("--force"));
        assert!(error("services up --s3-port 8181").contains("share port 8181"));
    }

    #[test]
    fn exit_codes_of_children_are_passed_on() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(0)), ExitCode::SUCCESS);
        assert_eq!(
            exit_code(ExitStatus::from_raw(101 << 8)),
            ExitCode::from(101)
        );
        // Killed by SIGKILL: no code.
        assert_eq!(exit_code(ExitStatus::from_raw(9)), ExitCode::FAILURE);
    }
}

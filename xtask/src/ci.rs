//! `cargo xtask e2e` and `cargo xtask ci`: the end-to-end suite against real services, and the
//! whole CI sequence so that a developer reproduces CI with one command.

use std::process::{Command, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::layout::Layout;
use crate::process::cargo;
use crate::services::{self, ServicesConfig};

/// Makes a missing service a test failure instead of a skip.
pub const REQUIRE_SERVICES_VAR: &str = "SLUICE_TEST_REQUIRE_SERVICES";

/// Services up, `cargo test -p sluice-tests` with their variables, services down (even when the
/// tests fail). Services that were already running before are left running.
pub fn e2e(layout: &Layout, config: &ServicesConfig, test_args: &[String]) -> Result<ExitStatus> {
    let running = services::up(layout, config)?;
    let already_running = running.started.len() < 2;

    let mut command = cargo();
    command
        .args(["test", "-p", "sluice-tests", "--locked"])
        .args(test_args)
        .current_dir(&layout.workspace)
        .envs(config.test_env(layout))
        .env(REQUIRE_SERVICES_VAR, "1");
    println!("running {}", describe(&command));
    let mut result = command.status().context("cannot run cargo test");

    // The short storage-fault suite and `sluice serve` on the S3 server run the `sluice`
    // binary, so they live in the CLI's tests. Arguments for cargo test select tests of
    // sluice-tests only.
    if test_args.is_empty() && result.as_ref().is_ok_and(|status| status.success()) {
        let mut command = fault_suite(layout, config, &[SHORT_FAULT_SUITE, SERVE_SUITE]);
        println!("running {}", describe(&command));
        result = command.status().context("cannot run cargo test");
    }

    services::stop_started(layout, &running.started);
    if already_running {
        println!("services that were running before `e2e` are left running");
    }
    result
}

/// The storage-fault suite's test that `e2e` runs.
const SHORT_FAULT_SUITE: &str = "faults::short_seeded_suite";
/// The tests of `sluice serve` (with S3 notifications for files on the S3 server) `e2e` runs.
const SERVE_SUITE: &str = "serve::";
/// Where `cargo xtask faults` collects the figures (relative to the workspace).
pub const FAULT_REPORT: &str = "target/faults/report.md";

/// `cargo test` of the storage-fault suite in the CLI's tests, with the services' variables.
fn fault_suite(layout: &Layout, config: &ServicesConfig, test_args: &[&str]) -> Command {
    let mut command = cargo();
    command
        .args(["test", "-p", "sluice-cli", "--test", "it", "--locked", "--"])
        .args(test_args)
        .current_dir(&layout.workspace)
        .envs(config.test_env(layout))
        .env(REQUIRE_SERVICES_VAR, "1");
    command
}

/// `cargo xtask faults`: services up, the whole storage-fault matrix (or, with `short`, the
/// suite `e2e` runs), services down. The figures go to [`FAULT_REPORT`].
pub fn faults(layout: &Layout, config: &ServicesConfig, short: bool) -> Result<ExitStatus> {
    let report = layout.workspace.join(FAULT_REPORT);
    if let Some(dir) = report.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::remove_file(&report).ok();
    let running = services::up(layout, config)?;
    let test_args: &[&str] = if short {
        &[SHORT_FAULT_SUITE, "--nocapture"]
    } else {
        &["faults::matrix", "--ignored", "--nocapture"]
    };
    let mut command = fault_suite(layout, config, test_args);
    command.env("SLUICE_FAULTS_REPORT", &report);
    println!("running {}", describe(&command));
    let begin = Instant::now();
    let result = command.status().context("cannot run cargo test");
    services::stop_started(layout, &running.started);
    println!(
        "storage-fault suite finished in {:.0}s; figures in {}",
        begin.elapsed().as_secs_f64(),
        report.display()
    );
    result
}

/// One step of CI.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// What `.ci/run` runs, in order, the fastest failures first; the end-to-end suite runs after
/// the unit tests. Clippy's `--all-targets` type-checks the benchmarks too, so they need no
/// build of their own.
const STEPS_BEFORE_E2E: &[Step] = &[
    Step {
        name: "formatting",
        args: &["fmt", "--all", "--", "--check"],
        env: &[],
    },
    Step {
        name: "lints",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "docs",
        args: &["doc", "--workspace", "--no-deps", "--locked"],
        env: &[("RUSTDOCFLAGS", "-D rustdoc::broken_intra_doc_links")],
    },
    Step {
        name: "unit and integration tests",
        args: &["test", "--workspace", "--locked"],
        env: &[],
    },
    Step {
        name: "python package",
        args: &["xtask", "py-test"],
        env: &[],
    },
];
const STEPS_AFTER_E2E: &[Step] = &[];

/// Runs every CI step, stopping at the first failure, whose status is returned.
pub fn ci(layout: &Layout, config: &ServicesConfig) -> Result<ExitStatus> {
    let begin = Instant::now();
    for step in STEPS_BEFORE_E2E {
        let status = run_step(layout, step)?;
        if !status.success() {
            return Ok(failed(step.name, status));
        }
    }

    println!("==> end-to-end tests: cargo xtask e2e");
    let step_begin = Instant::now();
    let status = e2e(layout, config, &[])?;
    println!(
        "<== end-to-end tests: {status} in {:.0}s",
        step_begin.elapsed().as_secs_f64()
    );
    if !status.success() {
        return Ok(failed("end-to-end tests", status));
    }

    for step in STEPS_AFTER_E2E {
        let status = run_step(layout, step)?;
        if !status.success() {
            return Ok(failed(step.name, status));
        }
    }
    println!(
        "ci: all steps passed in {:.0}s",
        begin.elapsed().as_secs_f64()
    );
    Ok(status)
}

fn run_step(layout: &Layout, step: &Step) -> Result<ExitStatus> {
    let mut command = cargo();
    command
        .args(step.args)
        .envs(step.env.iter().copied())
        .current_dir(&layout.workspace);
    println!("==> {}: {}", step.name, describe(&command));
    let begin = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    println!(
        "<== {}: {status} in {:.0}s",
        step.name,
        begin.elapsed().as_secs_f64()
    );
    Ok(status)
}

fn failed(name: &str, status: ExitStatus) -> ExitStatus {
    eprintln!("ci: step \"{name}\" failed ({status})");
    status
}

fn describe(command: &Command) -> String {
    let args: Vec<String> = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    format!("cargo {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Each dependency (not a workspace member) with the features `cargo tree` resolves for
    /// `selection`, on this machine's target.
    fn feature_sets(selection: &[&str]) -> BTreeMap<String, String> {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let output = crate::process::cargo()
            .args([
                "tree", "--locked", "--prefix", "none", "--format", "{p}|{f}",
            ])
            .args(selection)
            .current_dir(&workspace)
            .output()
            .expect("cargo tree runs");
        assert!(
            output.status.success(),
            "cargo tree {selection:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut sets = BTreeMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let line = line.trim_end_matches(" (*)");
            let Some((package, features)) = line.split_once('|') else {
                continue;
            };
            // Members carry a path; their own features may differ by design (test hooks).
            if !package.contains(" (/") {
                sets.insert(package.to_string(), features.to_string());
            }
        }
        sets
    }

    #[test]
    fn the_later_ci_builds_reuse_the_workspace_test_build() {
        let workspace = feature_sets(&["--workspace", "-e", "normal,build,dev"]);
        assert!(workspace.len() > 100, "{workspace:?}");
        for (build, selection) in [
            (
                "cargo test -p sluice-tests (tests/Cargo.toml)",
                &["-p", "sluice-tests", "-e", "normal,build,dev"][..],
            ),
            (
                "cargo test -p sluice-cli (crates/sluice-cli/Cargo.toml)",
                &["-p", "sluice-cli", "-e", "normal,build,dev"],
            ),
            (
                "the test wheel: maturin build --features test-hooks (crates/sluice-py/Cargo.toml)",
                &[
                    "-p",
                    "sluice-py",
                    "--features",
                    "test-hooks",
                    "-e",
                    "normal,build",
                ],
            ),
        ] {
            let differ: Vec<String> = feature_sets(selection)
                .into_iter()
                .filter_map(|(package, features)| {
                    let wanted = workspace.get(&package)?;
                    (*wanted != features)
                        .then(|| format!("{package}: [{features}], the workspace has [{wanted}]"))
                })
                .collect();
            assert!(
                differ.is_empty(),
                "{build} gives these dependencies other features than `cargo test --workspace`, so \
                 CI would compile them again; name the features in its dev-dependencies (or, for \
                 the wheel, its test-hooks feature):\n{}",
                differ.join("\n")
            );
        }
    }

    #[test]
    fn ci_runs_the_documented_commands_in_order() {
        let commands: Vec<String> = STEPS_BEFORE_E2E
            .iter()
            .map(|step| step.args.join(" "))
            .chain(["xtask e2e".to_string()])
            .chain(STEPS_AFTER_E2E.iter().map(|step| step.args.join(" ")))
            .collect();
        assert_eq!(
            commands,
            [
                "fmt --all -- --check",
                "clippy --workspace --all-targets --locked -- -D warnings",
                "doc --workspace --no-deps --locked",
                "test --workspace --locked",
                "xtask py-test",
                "xtask e2e",
            ]
        );
    }
}

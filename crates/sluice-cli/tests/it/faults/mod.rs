//! Storage faults: WAP runs of the real `sluice` binary with the warehouse, the journal and the
//! source on S3 behind a fault-injecting proxy (`sluice_tests::fault_proxy`), retried the way a
//! user would (`run`; on failure `recover --wait`, a pause of 1 s and `run` again, at most 8 runs
//! per batch),
//! with SIGKILLs at random moments. The catalog is the local SQL catalog.
//!
//! ```text
//!   per batch:  upload raw/<scenario>/batch-NNN.parquet (straight to the S3 server)
//!               run ──exit 0──► next batch
//!                 └─ failed / killed ─► recover --wait ─► run again
//!   then:       faults off ─► recover --wait ─► run ─► recover ─► checks
//! ```
//!
//! After every scenario, strictly: each source file's rows are in `main` exactly once (row
//! count, no duplicate key, sum of `amount`), no `sluice/` ref is left, every data file the
//! metadata references exists and `main` reads, no panic, no command over its time limit, the
//! S3 secret key in no output, and the fault-free recover and run succeed. Also asserted unless
//! `SLUICE_FAULTS_STRICT=0` (which only reports them): attempts per batch (at most 3 at fault
//! rates up to 5%, at most 6 up to 20%) and no orphan file under the table location.
//!
//! `cargo xtask e2e` runs `short_seeded_suite`; `cargo xtask faults` runs the ignored `matrix`
//! (see docs/transactions.md for its variables).

mod report;
mod scenario;
mod verdict;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use sluice_tests::fault_proxy::{FaultKind, FaultPlan, FaultStats, RequestKind};
use sluice_tests::{ServiceEnv, skip};

use report::{REPORT_HEADER, print_now, report_row};
use scenario::run_scenario;

const ROWS_PER_FILE: i64 = 100;
/// Runs per batch before the retry loop gives the batch up.
const MAX_ATTEMPTS: u32 = 8;
/// Any one `sluice` command taking longer than this is a hang.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(150);
const LEASE_TTL_SECS: u64 = 5;
/// How long the retry loop waits after a recover before it runs again, as a scheduler would.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
const TABLE: &str = "ns.events";
/// Set to 1 to assert the availability targets (attempts, orphans) too.
const STRICT_VAR: &str = "SLUICE_FAULTS_STRICT";
/// A file the report rows are appended to (markdown).
const REPORT_VAR: &str = "SLUICE_FAULTS_REPORT";

/// One scenario: a fault plan, a number of one-file batches and a chance to SIGKILL each run.
#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    plan: FaultPlan,
    batches: usize,
    kill_rate: f64,
}

impl Scenario {
    /// The attempt limit of the acceptance targets at this fault rate.
    fn attempt_target(&self) -> u32 {
        if self.plan.rate <= 0.05 { 3 } else { 6 }
    }
}

/// What one `sluice` command did.
struct Invocation {
    code: Option<i32>,
    killed: bool,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// The figures of one scenario.
#[derive(Default)]
struct Outcome {
    runs: u32,
    recovers: u32,
    kills: u32,
    /// Per batch: runs until one exited 0 (`MAX_ATTEMPTS + 1` when none did).
    attempts: Vec<u32>,
    /// Per batch: the same, killed runs left out.
    unkilled_attempts: Vec<u32>,
    stats: FaultStats,
    lost_files: Vec<usize>,
    duplicated_files: Vec<usize>,
    foreign_rows: usize,
    sum_matches: bool,
    leftover_refs: Vec<String>,
    orphans: Vec<String>,
    missing: Vec<String>,
    panics: Vec<String>,
    hangs: Vec<String>,
    secret_leaks: Vec<String>,
    final_failures: Vec<String>,
    /// Failure messages of runs and recovers under faults, normalised, with counts.
    errors: BTreeMap<String, u32>,
    elapsed: Duration,
}

/// Runs the scenarios, prints (and appends to `SLUICE_FAULTS_REPORT`) the figures, then fails
/// on any safety violation, and on availability shortfalls and orphans unless
/// `SLUICE_FAULTS_STRICT=0`.
fn run_suite(test: &str, scenarios: &[Scenario], seed: u64) {
    let services = match ServiceEnv::from_env() {
        Ok(services) => services,
        Err(missing) => {
            skip(
                test,
                &format!(
                    "the S3 server is not configured ({} unset)",
                    missing.join(", ")
                ),
            );
            return;
        }
    };
    let strict = std::env::var(STRICT_VAR).map_or(true, |v| v != "0");
    let report_file = std::env::var_os(REPORT_VAR).map(std::path::PathBuf::from);
    let mut report = format!(
        "\n### {test}: seed {seed}, {} scenario(s), strict {}\n\n{REPORT_HEADER}\n",
        scenarios.len(),
        if strict { "on" } else { "off" }
    );
    print_now(report.trim_end());
    let mut errors_seen = String::new();
    let mut requests_seen = String::new();
    let mut violations = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let scenario_seed = seed.wrapping_add(i as u64).wrapping_mul(0x9E37_79B9);
        let mut scenario = scenario.clone();
        scenario.plan.seed = scenario_seed;
        let outcome = run_scenario(&services, &scenario, scenario_seed);
        let row = report_row(&scenario, &outcome);
        print_now(&row);
        report.push_str(&row);
        report.push('\n');
        let by_kind: Vec<String> = RequestKind::ALL
            .iter()
            .zip(outcome.stats.requests)
            .map(|(kind, n)| format!("{} {n}", kind.name()))
            .collect();
        let _ = writeln!(requests_seen, "- {}: {}", scenario.name, by_kind.join(", "));
        for (message, count) in &outcome.errors {
            let _ = writeln!(errors_seen, "- {} — {count}× `{message}`", scenario.name);
        }
        for v in outcome.safety_violations() {
            violations.push(format!("{}: {v}", scenario.name));
        }
        if strict {
            for v in outcome.availability_violations(&scenario) {
                violations.push(format!("{}: {v}", scenario.name));
            }
        }
    }
    let section = format!("\nRequests by kind:\n\n{requests_seen}");
    print_now(&section);
    report.push_str(&section);
    if !errors_seen.is_empty() {
        let section = format!("\nFailures seen under faults (normalised):\n\n{errors_seen}");
        print_now(&section);
        report.push_str(&section);
    }
    if let Some(path) = report_file {
        append(&path, &report);
    }
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.write_all(text.as_bytes()).unwrap();
}

fn scenario(name: &str, plan: FaultPlan, batches: usize, kill_rate: f64) -> Scenario {
    Scenario {
        name: name.to_string(),
        plan,
        batches,
        kill_rate,
    }
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not valid")),
        Err(_) => default,
    }
}

/// A short, seeded version that `cargo xtask e2e` runs: every fault kind at 5% with kills, cut
/// responses at 20% and ambiguous answers at 20%.
#[test]
fn short_seeded_suite() {
    let latency = Duration::from_millis(500);
    run_suite(
        "faults::short_seeded_suite",
        &[
            scenario(
                "mixed 5%, kills 30%",
                FaultPlan::new(0, 0.05).with_latency(latency),
                4,
                0.3,
            ),
            scenario(
                "cut 20%",
                FaultPlan::new(0, 0.2)
                    .with_faults(&[FaultKind::Cut])
                    .with_latency(latency),
                3,
                0.0,
            ),
            scenario(
                "ambiguous 20%",
                FaultPlan::new(0, 0.2)
                    .with_faults(&[FaultKind::Ambiguous])
                    .with_latency(latency),
                3,
                0.0,
            ),
        ],
        var("SLUICE_FAULTS_SEED", 20261201),
    );
}

/// The whole matrix: each fault kind alone and all mixed, at each rate, plus kills. Run by
/// `cargo xtask faults`; the variables are described in docs/transactions.md.
#[test]
#[ignore = "long; run with `cargo xtask faults`"]
fn matrix() {
    let seed = var("SLUICE_FAULTS_SEED", 1u64);
    let batches = var("SLUICE_FAULTS_BATCHES", 12usize);
    let kill_rate = var("SLUICE_FAULTS_KILL_RATE", 0.25f64);
    let latency = Duration::from_millis(var("SLUICE_FAULTS_LATENCY_MS", 1000u64));
    let rates: Vec<f64> = var("SLUICE_FAULTS_RATES", "1,5,20".to_string())
        .split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .expect("SLUICE_FAULTS_RATES: percentages")
                / 100.0
        })
        .collect();
    let kinds = var(
        "SLUICE_FAULTS_KINDS",
        "error,ambiguous,cut,latency,mixed,kills".to_string(),
    );
    let requests: Vec<_> = match std::env::var("SLUICE_FAULTS_REQUESTS") {
        Ok(list) => list
            .split(',')
            .map(|r| {
                RequestKind::parse(r.trim())
                    .unwrap_or_else(|| panic!("SLUICE_FAULTS_REQUESTS: unknown request kind {r:?}"))
            })
            .collect(),
        Err(_) => RequestKind::ALL.to_vec(),
    };
    let on = if requests.len() == RequestKind::ALL.len() {
        String::new()
    } else {
        format!(
            " on {}",
            requests
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join("+")
        )
    };
    let mut scenarios = Vec::new();
    for kind in kinds.split(',').map(str::trim) {
        for rate in &rates {
            let plan = FaultPlan::new(0, *rate)
                .with_requests(&requests)
                .with_latency(latency);
            let percent = rate * 100.0;
            match kind {
                "mixed" => scenarios.push(scenario(
                    &format!("mixed {percent}%{on}"),
                    plan,
                    batches,
                    0.0,
                )),
                "kills" => scenarios.push(scenario(
                    &format!("mixed {percent}%{on}, kills {:.0}%", kill_rate * 100.0),
                    plan,
                    batches,
                    kill_rate,
                )),
                name => {
                    let fault = FaultKind::parse(name).unwrap_or_else(|| {
                        panic!("SLUICE_FAULTS_KINDS: unknown kind {name:?} (error, ambiguous, cut, latency, mixed, kills)")
                    });
                    scenarios.push(scenario(
                        &format!("{name} {percent}%{on}"),
                        plan.with_faults(&[fault]),
                        batches,
                        0.0,
                    ));
                }
            }
        }
    }
    run_suite("faults::matrix", &scenarios, seed);
}

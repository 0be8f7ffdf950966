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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array};
use sluice_lake::{
    CatalogConfig, Lake, LakeConfig, RefSpec, S3Options, ScanOptions, StorageOptions, TableName,
};
use sluice_tests::fault_proxy::{
    FaultKind, FaultPlan, FaultProxy, FaultStats, RequestKind, SplitMix64,
};
use sluice_tests::{ServiceEnv, batch, expected_sum, parquet_bytes, skip, sum_column};

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

impl Outcome {
    /// Safety violations: these fail the test whatever the strictness.
    fn safety_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut add = |what: &str, items: &[String]| {
            if !items.is_empty() {
                v.push(format!("{what}: {}", items.join("; ")));
            }
        };
        add(
            "files lost",
            &self
                .lost_files
                .iter()
                .map(|i| format!("batch {i}"))
                .collect::<Vec<_>>(),
        );
        add(
            "files duplicated",
            &self
                .duplicated_files
                .iter()
                .map(|i| format!("batch {i}"))
                .collect::<Vec<_>>(),
        );
        add("refs left", &self.leftover_refs);
        add("referenced files missing", &self.missing);
        add("panics", &self.panics);
        add("hangs", &self.hangs);
        add("secret in output", &self.secret_leaks);
        add("fault-free convergence failed", &self.final_failures);
        if self.foreign_rows > 0 {
            v.push(format!(
                "{} rows in main from no source file",
                self.foreign_rows
            ));
        }
        if !self.sum_matches && v.is_empty() {
            v.push("sum of amount in main differs from the source files".to_string());
        }
        v
    }

    /// Availability shortfalls against the acceptance targets.
    fn availability_violations(&self, scenario: &Scenario) -> Vec<String> {
        let mut v = Vec::new();
        let target = scenario.attempt_target();
        for (batch, attempts) in self.unkilled_attempts.iter().enumerate() {
            if *attempts > target {
                v.push(format!(
                    "batch {batch} needed {} attempts (target {target})",
                    describe_attempts(*attempts)
                ));
            }
        }
        if !self.orphans.is_empty() {
            v.push(format!(
                "{} orphan files, e.g. {}",
                self.orphans.len(),
                self.orphans[0]
            ));
        }
        v
    }
}

fn describe_attempts(attempts: u32) -> String {
    if attempts > MAX_ATTEMPTS {
        format!("more than {MAX_ATTEMPTS}")
    } else {
        attempts.to_string()
    }
}

/// The harness of one scenario: a proxy, a working directory with `sluice.toml`, and a unique
/// prefix for the source, the warehouse and the journal.
struct Harness<'a> {
    services: &'a ServiceEnv,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    prefix: String,
    rng: SplitMix64,
    /// Durations of successful runs, to aim the kills inside a run.
    run_durations: Vec<Duration>,
    outcome: Outcome,
}

impl<'a> Harness<'a> {
    fn new(services: &'a ServiceEnv, seed: u64) -> Harness<'a> {
        let upstream = upstream_addr(&services.s3_endpoint);
        let proxy = FaultProxy::start(upstream, FaultPlan::none()).expect("start the fault proxy");
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!(
            "faults-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let config = format!(
            "[catalog]\n\
             type = \"sql\"\n\
             uri = \".sluice/catalog.db\"\n\
             warehouse = \"s3://{bucket}/{prefix}/warehouse\"\n\
             \n\
             [storage.s3]\n\
             endpoint = \"{endpoint}\"\n\
             region = \"{region}\"\n\
             path_style = true\n\
             allow_http = true\n\
             \n\
             [journal]\n\
             location = \"s3://{bucket}/{prefix}/journal\"\n\
             lease_ttl_secs = {LEASE_TTL_SECS}\n",
            bucket = services.warehouse_bucket,
            endpoint = proxy.endpoint(),
            region = services.region,
        );
        std::fs::write(dir.path().join("sluice.toml"), config).unwrap();
        std::fs::write(
            dir.path().join("checks.toml"),
            "[[check]]\nkind = \"not_null\"\ncolumns = [\"id\"]\n",
        )
        .unwrap();
        Harness {
            services,
            proxy,
            dir,
            prefix,
            rng: SplitMix64(seed),
            run_durations: Vec::new(),
            outcome: Outcome::default(),
        }
    }

    fn source(&self) -> String {
        format!("s3://{}/{}/", self.services.raw_bucket, self.prefix)
    }

    fn source_file(&self, batch: usize) -> String {
        format!("{}batch-{batch:03}.parquet", self.source())
    }

    /// The same lake, reached without the proxy (and, for uploads, through another catalog).
    fn direct_config(&self, catalog_file: &str) -> LakeConfig {
        LakeConfig {
            catalog: CatalogConfig::Sql {
                uri: self.dir.path().join(catalog_file).display().to_string(),
                name: "default".to_string(),
                warehouse: format!(
                    "s3://{}/{}/warehouse",
                    self.services.warehouse_bucket, self.prefix
                ),
            },
            storage: StorageOptions {
                s3: S3Options {
                    endpoint: Some(self.services.s3_endpoint.clone()),
                    region: Some(self.services.region.clone()),
                    access_key_id: Some(self.services.access_key_id.clone()),
                    secret_access_key: Some(self.services.secret_access_key.clone()),
                    session_token: None,
                    path_style: Some(true),
                    allow_http: Some(true),
                },
            },
        }
    }

    /// Runs `sluice --json ARGS`; SIGKILLs it after `kill_after` if given, and after
    /// [`COMMAND_TIMEOUT`] in any case. Checks the output for panics and the secret.
    fn sluice(&mut self, args: &[&str], kill_after: Option<Duration>) -> Invocation {
        let secret = self.services.secret_access_key.expose().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(self.dir.path())
            .arg("--json")
            .args(args)
            .env_remove("SLUICE_CONFIG")
            .env_remove("SLUICE_PAUSE_AT")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", &self.services.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_REGION", &self.services.region)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let begin = Instant::now();
        let (mut killed, mut timed_out) = (false, false);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            let elapsed = begin.elapsed();
            if kill_after.is_some_and(|at| elapsed >= at) {
                killed = true;
            } else if elapsed >= COMMAND_TIMEOUT {
                timed_out = true;
            } else {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            child.kill().unwrap();
            break child.wait().unwrap();
        };
        let elapsed = begin.elapsed();
        let invocation = Invocation {
            code: status.code(),
            killed,
            timed_out,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        };
        let what = format!("`sluice {}`", args.join(" "));
        let output = format!("{}\n{}", invocation.stdout, invocation.stderr);
        if output.contains(&secret) {
            self.outcome.secret_leaks.push(what.clone());
        }
        if output.contains("panicked at") || invocation.code == Some(101) {
            self.outcome.panics.push(format!(
                "{what}: {}",
                first_lines(&output.replace(&secret, "***"))
            ));
        }
        if invocation.timed_out {
            self.outcome.hangs.push(format!(
                "{what} still running after {}s",
                COMMAND_TIMEOUT.as_secs()
            ));
        }
        if invocation.code == Some(0) && args.first() == Some(&"run") {
            self.run_durations.push(elapsed);
        }
        invocation
    }

    /// A moment inside a typical run: uniform over 1.2× the median successful run so far.
    fn kill_moment(&mut self) -> Duration {
        let mut sorted = self.run_durations.clone();
        sorted.sort();
        let typical = sorted
            .get(sorted.len() / 2)
            .copied()
            .unwrap_or(Duration::from_secs(2));
        typical.mul_f64(1.2 * self.rng.next_f64())
    }

    fn note_failure(&mut self, command: &str, invocation: &Invocation) {
        if invocation.killed || invocation.timed_out {
            return;
        }
        let secret = self.services.secret_access_key.expose();
        let message = error_line(&invocation.stderr, &invocation.stdout).replace(secret, "***");
        *self
            .outcome
            .errors
            .entry(format!("{command}: {}", normalise(&message)))
            .or_default() += 1;
    }
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn first_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The line of a failed command that says why: the `error:` line, or the JSON error field, or
/// the first line of stderr.
fn error_line(stderr: &str, stdout: &str) -> String {
    if let Some(line) = stderr.lines().find(|l| l.starts_with("error")) {
        return line.to_string();
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(stdout)
        && let Some(error) = json.get("error").and_then(|e| e.as_str())
    {
        return error.to_string();
    }
    stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .to_string()
}

/// Replaces run ids, pids, numbers and ports by placeholders so that the same failure counts
/// once, and shortens it.
fn normalise(message: &str) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let digits = token.chars().filter(char::is_ascii_digit).count();
        if digits >= 3 || (digits > 0 && token.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) {
            out.push('N');
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    let mut short: String = out.chars().take(220).collect();
    if out.chars().count() > 220 {
        short.push('…');
    }
    short
}

fn upstream_addr(endpoint: &str) -> SocketAddr {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    host.parse().unwrap_or_else(|e| {
        panic!("SLUICE_TEST_S3_ENDPOINT {endpoint:?} is not http://IP:PORT: {e}")
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs one scenario to the end and checks the lake it leaves.
fn run_scenario(services: &ServiceEnv, scenario: &Scenario, seed: u64) -> Outcome {
    let begin = Instant::now();
    let rt = runtime();
    let mut h = Harness::new(services, seed);
    let source = h.source();
    let run_args = [
        "run",
        "--source",
        &source,
        "--table",
        TABLE,
        "--checks",
        "checks.toml",
    ];
    let uploads = rt
        .block_on(Lake::connect(&h.direct_config("uploads.db")))
        .unwrap();
    h.proxy.set_plan(scenario.plan.clone());

    for index in 0..scenario.batches {
        let ids = index as i64 * ROWS_PER_FILE..(index as i64 + 1) * ROWS_PER_FILE;
        let location = h.source_file(index);
        rt.block_on(sluice_tests::put_location(
            &uploads,
            &location,
            parquet_bytes(&batch(ids)),
        ));
        let (mut attempts, mut unkilled, mut published) = (0, 0, false);
        while attempts < MAX_ATTEMPTS {
            attempts += 1;
            let kill_after = (h.rng.next_f64() < scenario.kill_rate).then(|| h.kill_moment());
            let run = h.sluice(&run_args, kill_after);
            h.outcome.runs += 1;
            if run.killed {
                h.outcome.kills += 1;
            } else {
                unkilled += 1;
            }
            if run.code == Some(0) {
                published = true;
                break;
            }
            h.note_failure("run", &run);
            let recover = h.sluice(&["recover", "--wait"], None);
            h.outcome.recovers += 1;
            if recover.code != Some(0) {
                h.note_failure("recover", &recover);
            }
            thread::sleep(RETRY_PAUSE);
        }
        let gave_up = MAX_ATTEMPTS + 1;
        h.outcome
            .attempts
            .push(if published { attempts } else { gave_up });
        h.outcome
            .unkilled_attempts
            .push(if published { unkilled.max(1) } else { gave_up });
    }

    // The faults stop; whatever is left must converge to exactly once.
    h.proxy.set_plan(FaultPlan::none());
    h.outcome.stats = h.proxy.stats();
    for args in [
        &["recover", "--wait"][..],
        &run_args[..],
        &["recover", "--wait"][..],
    ] {
        let invocation = h.sluice(args, None);
        if invocation.code != Some(0) {
            let secret = services.secret_access_key.expose();
            h.outcome.final_failures.push(format!(
                "`sluice {}` exited {:?}: {}",
                args.join(" "),
                invocation.code,
                first_lines(&format!("{}\n{}", invocation.stderr, invocation.stdout))
                    .replace(secret, "***")
            ));
        }
    }
    let config = h.direct_config(".sluice/catalog.db");
    let mut outcome = std::mem::take(&mut h.outcome);
    rt.block_on(check_lake(&config, scenario.batches, &mut outcome));
    outcome.elapsed = begin.elapsed();
    outcome
}

/// The checks after a scenario: rows, refs, files.
async fn check_lake(config: &LakeConfig, batches: usize, outcome: &mut Outcome) {
    let lake = match Lake::connect(config).await {
        Ok(lake) => lake,
        Err(e) => {
            outcome
                .final_failures
                .push(format!("cannot open the catalog: {e}"));
            return;
        }
    };
    let table: TableName = TABLE.parse().unwrap();
    match lake.list_refs(&table).await {
        Ok(refs) => {
            outcome.leftover_refs = refs
                .into_iter()
                .map(|r| r.name)
                .filter(|n| n.starts_with("sluice/"))
                .collect();
        }
        Err(e) => outcome
            .final_failures
            .push(format!("cannot list the refs of {TABLE}: {e}")),
    }
    let rows = match lake
        .scan_to_vec(&table, &RefSpec::main(), &ScanOptions::default())
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            outcome
                .final_failures
                .push(format!("cannot read {TABLE}@main: {e}"));
            return;
        }
    };
    let mut counts: HashMap<i64, u32> = HashMap::new();
    for b in &rows {
        let ids = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for i in 0..ids.len() {
            *counts.entry(ids.value(i)).or_default() += 1;
        }
    }
    let total = batches as i64 * ROWS_PER_FILE;
    for index in 0..batches {
        let ids = index as i64 * ROWS_PER_FILE..(index as i64 + 1) * ROWS_PER_FILE;
        if ids.clone().any(|id| !counts.contains_key(&id)) {
            outcome.lost_files.push(index);
        }
        if ids
            .clone()
            .any(|id| counts.get(&id).is_some_and(|n| *n > 1))
        {
            outcome.duplicated_files.push(index);
        }
    }
    outcome.foreign_rows = counts
        .iter()
        .filter(|(id, _)| !(0..total).contains(*id))
        .map(|(_, n)| *n as usize)
        .sum();
    let sum = sum_column(&rows, "amount");
    outcome.sum_matches = (sum - expected_sum(0..total)).abs() < 1e-6;
    match sluice_tests::table_files::table_files(&lake, &table).await {
        Ok(files) => {
            outcome.orphans = files.orphans();
            outcome.missing = files.missing_data_files();
        }
        Err(e) => outcome.final_failures.push(e),
    }
}

// ------------------------------------------------------------------ reports

const REPORT_HEADER: &str = "\
| scenario | batches | runs | kills | requests | faults injected | attempts per batch | batches over target | lost | duplicated | orphans | refs left | panics | hangs | secrets | time |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One markdown row: the figures of `outcome`.
fn report_row(scenario: &Scenario, outcome: &Outcome) -> String {
    let mut histogram: BTreeMap<u32, u32> = BTreeMap::new();
    for a in &outcome.unkilled_attempts {
        *histogram.entry(*a).or_default() += 1;
    }
    let attempts = histogram
        .iter()
        .map(|(a, n)| format!("{}×{n}", describe_attempts(*a).replace("more than ", ">")))
        .collect::<Vec<_>>()
        .join(" ");
    let over = outcome
        .unkilled_attempts
        .iter()
        .filter(|a| **a > scenario.attempt_target())
        .count();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {over} (≤{}) | {} | {} | {} | {} | {} | {} | {} | {:.0}s |",
        scenario.name,
        scenario.batches,
        outcome.runs,
        outcome.kills,
        outcome.stats.requests(),
        fault_summary(&outcome.stats),
        attempts,
        scenario.attempt_target(),
        outcome.lost_files.len(),
        outcome.duplicated_files.len(),
        outcome.orphans.len(),
        outcome.leftover_refs.len(),
        outcome.panics.len(),
        outcome.hangs.len(),
        outcome.secret_leaks.len(),
        outcome.elapsed.as_secs_f64(),
    )
}

fn fault_summary(stats: &FaultStats) -> String {
    let parts: Vec<String> = FaultKind::ALL
        .iter()
        .filter(|k| stats.faults_of(**k) > 0)
        .map(|k| format!("{} {}", k.name(), stats.faults_of(*k)))
        .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("{} ({})", stats.faults(), parts.join(", "))
    }
}

/// Writes past the test harness's capture, so the figures show for passing tests too.
fn print_now(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
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

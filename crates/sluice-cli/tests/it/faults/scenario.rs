//! One scenario run to its end: the harness around every `sluice` command, the retry loop,
//! and the checks of the lake it leaves.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array};
use sluice_lake::{
    CatalogConfig, Lake, LakeConfig, RefSpec, ScanOptions, TableName,
    storage::{S3Options, StorageOptions},
};
use sluice_tests::fault_proxy::{FaultPlan, FaultProxy, SplitMix64};
use sluice_tests::{ServiceEnv, batch, expected_sum, parquet_bytes, sum_column};

use super::{
    COMMAND_TIMEOUT, Invocation, LEASE_TTL_SECS, MAX_ATTEMPTS, Outcome, RETRY_PAUSE, ROWS_PER_FILE,
    Scenario, TABLE,
};

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
pub(super) fn run_scenario(services: &ServiceEnv, scenario: &Scenario, seed: u64) -> Outcome {
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

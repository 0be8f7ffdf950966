//! `cargo xtask bench-serve`: `sluice serve` on the embedded default under a steady stream of S3
//! event notifications. Posts are sent open-loop at a fixed rate (each at its scheduled time, and
//! its latency counted from that time, so a stalled server cannot hide behind a slowed client);
//! afterwards the queue drains and every file must be in `main` exactly once.
//!
//! ```text
//!   s3s-fs (source bucket, files written straight into its directory)
//!     ▲ HEAD/GET                      POST /v1/events/s3 × rate × seconds
//!   sluice serve (release) ◄──────── worker threads, keep-alive connections
//!     └─ runs into the embedded catalog ─► count(*), count(DISTINCT file_no) in main
//! ```

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::build_sluice;
use crate::http;
use crate::json::Json;
use crate::layout::Layout;
use crate::python;
use crate::s3_server::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, install_s3s_fs};

const SCRIPT: &str = include_str!("bench_serve.py");

/// The accept latency (seconds) the 99th percentile must stay under.
const TARGET_P99: f64 = 0.05;
/// The bucket the source files are in, and the prefix under it.
const BUCKET: &str = "raw";
const PREFIX: &str = "events";

/// Options of `bench-serve`.
#[derive(Debug, PartialEq, Eq)]
pub struct ServeBenchOptions {
    /// Event posts per second.
    pub rate: u32,
    /// Seconds of posting.
    pub seconds: u32,
    /// Rows in each source file.
    pub rows: u64,
    /// Client threads, each with one keep-alive connection.
    pub workers: u32,
    /// Every Nth post repeats an earlier file's notification (a late duplicate); 0 for none.
    pub duplicate_every: u32,
    /// How long the queue may take to drain after the last post.
    pub drain_timeout: Duration,
}

impl Default for ServeBenchOptions {
    fn default() -> Self {
        Self {
            rate: 1_000,
            seconds: 30,
            rows: 10,
            workers: 32,
            duplicate_every: 50,
            drain_timeout: Duration::from_secs(1200),
        }
    }
}

pub fn parse_options(options: &[&str]) -> Result<ServeBenchOptions> {
    let mut out = ServeBenchOptions::default();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let mut value = || -> Result<&str> {
            inline
                .or_else(|| rest.next().copied())
                .with_context(|| format!("{flag} needs a value"))
        };
        let number = |text: &str, zero_ok: bool| -> Result<u64> {
            text.parse()
                .ok()
                .filter(|n| zero_ok || *n > 0)
                .with_context(|| format!("{flag}: {text:?} is not a positive number"))
        };
        let small = |n: u64| u32::try_from(n).with_context(|| format!("{flag} is too large"));
        match flag {
            "--rate" => out.rate = small(number(value()?, false)?)?,
            "--seconds" => out.seconds = small(number(value()?, false)?)?,
            "--rows" => out.rows = number(value()?, false)?,
            "--workers" => out.workers = small(number(value()?, false)?)?,
            "--duplicate-every" => out.duplicate_every = small(number(value()?, true)?)?,
            "--drain-timeout" => {
                out.drain_timeout = Duration::from_secs(number(value()?, false)?);
            }
            other => bail!("unknown option {other:?} for `bench-serve`; see `cargo xtask --help`"),
        }
    }
    if out.duplicate_every == 1 {
        bail!("--duplicate-every 1 would name no new file; use 0 (none) or 2 and above");
    }
    Ok(out)
}

/// Which file post `i` names: a new one, or every `duplicate_every`th post an earlier one again.
/// Returns the file number and whether it is a duplicate.
fn file_of_post(i: u64, duplicate_every: u32) -> (u64, bool) {
    let every = u64::from(duplicate_every);
    if every == 0 {
        return (i, false);
    }
    // Posts every-1, 2*every-1, … are duplicates; the others name files 0, 1, 2, … in order.
    let new_before = i - i / every;
    if (i + 1).is_multiple_of(every) {
        // A late duplicate: a file notified up to ~1,000 posts ago.
        (new_before.saturating_sub(1 + (i * 7919) % 1_000), true)
    } else {
        (new_before, false)
    }
}

pub fn run(layout: &Layout, options: &ServeBenchOptions) -> Result<()> {
    let posts = u64::from(options.rate) * u64::from(options.seconds);
    let files = (0..posts)
        .filter(|i| !file_of_post(*i, options.duplicate_every).1)
        .count() as u64;
    let sluice = build_sluice(layout)?;
    let s3s_fs = install_s3s_fs(layout)?;
    python::ensure(layout, python::BENCH)?;

    let bench_dir = layout.target_dir().join("bench-serve");
    let s3_root = bench_dir.join("s3");
    let source = s3_root.join(BUCKET).join(PREFIX);
    generate_files(layout, &bench_dir, &source, files, options.rows)?;
    let sizes = file_sizes(&source, files)?;

    let s3_port = free_port()?;
    let mut s3 = Guard(
        Command::new(&s3s_fs)
            .args(["--host", "127.0.0.1", "--port", &s3_port.to_string()])
            .args([
                "--access-key",
                ACCESS_KEY_ID,
                "--secret-key",
                SECRET_ACCESS_KEY,
            ])
            .arg(&s3_root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start s3s-fs")?,
    );
    wait_for(
        || http::get(local(s3_port), "/").is_ok(),
        "s3s-fs to answer",
    )?;

    let lake = bench_dir.join("lake");
    if lake.exists() {
        fs::remove_dir_all(&lake).with_context(|| format!("cannot remove {}", lake.display()))?;
    }
    fs::create_dir_all(&lake)?;
    sluice_ok(&sluice, &lake, &["-q", "init"])?;
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(lake.join("sluice.toml"))?;
    write!(
        config,
        "\n[storage.s3]\nendpoint = \"http://127.0.0.1:{s3_port}\"\nregion = \"{REGION}\"\n\
         path_style = true\nallow_http = true\n\n[[trigger]]\nprefix = \"s3://{BUCKET}/{PREFIX}/\"\n\
         table = \"bench.events\"\n"
    )?;
    drop(config);

    let port = free_port()?;
    let log_path = bench_dir.join("serve.log");
    let log = fs::File::create(&log_path)?;
    let mut server = Guard(
        Command::new(&sluice)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(&lake)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start sluice serve")?,
    );
    wait_for(
        || http::get(local(port), "/readyz").is_ok_and(|r| r.status == 200),
        "sluice serve to be ready",
    )?;

    println!(
        "posting {posts} S3 notifications ({files} files of {} rows, every {}th post a late \
         duplicate) at {}/s for {} s from {} connections",
        options.rows, options.duplicate_every, options.rate, options.seconds, options.workers
    );
    let load = post_events(local(port), options, &sizes)?;
    let drain_started = Instant::now();
    let drained = wait_until_drained(local(port), options.drain_timeout)?;
    let drain_s = drain_started.elapsed().as_secs_f64();
    let metrics = http::get(local(port), "/metrics")?.body;

    terminate(&mut server.0)?;
    drop(s3.0.kill());
    let _ = s3.0.wait();

    let counts = sluice_ok(
        &sluice,
        &lake,
        &[
            "-q",
            "sql",
            "SELECT count(*), count(DISTINCT file_no) FROM bench.events",
            "--format",
            "csv",
        ],
    )?;
    let (rows_in_main, files_in_main) = parse_counts(&counts)?;

    let accept = Histogram::parse(&metrics, "sluice_accept_duration_seconds", "/v1/events/s3");
    let runs = counter_values(&metrics, "sluice_runs_total");
    let mut latencies = load.latencies.clone();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&latencies, p);
    let achieved = load.sent as f64 / load.elapsed_s;
    let server_within = accept.share_within(TARGET_P99);

    println!();
    println!(
        "bench-serve: {posts} posts at {}/s for {} s, {} cores",
        options.rate,
        options.seconds,
        thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| posts sent / answered 202 | {} / {} (achieved {achieved:.0}/s) | all 202 |",
        load.sent, load.accepted
    );
    println!(
        "| accept latency, client, from each post's scheduled time: p50 / p99 / max | {:.1} / **{:.1}** / {:.1} ms | p99 < {} ms |",
        pct(0.50) * 1e3,
        pct(0.99) * 1e3,
        pct(1.0) * 1e3,
        TARGET_P99 * 1e3
    );
    println!(
        "| accept latency, server histogram: answered within {} ms | {:.2} % of {} | ≥ 99 % |",
        TARGET_P99 * 1e3,
        server_within * 100.0,
        accept.count
    );
    println!(
        "| drain after the last post | {drain_s:.1} s{} | < {} s |",
        if drained { "" } else { " (timed out)" },
        options.drain_timeout.as_secs()
    );
    println!(
        "| files published per second, first post to drained | {:.1} | (reported) |",
        files as f64 / (load.elapsed_s + drain_s)
    );
    println!(
        "| runs by status | {} | no failed |",
        runs.iter()
            .map(|(labels, v)| format!("{labels} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| files / rows in main | {files_in_main} / {rows_in_main} | {files} / {} |",
        files * options.rows
    );

    let result = Json::object([
        ("posts", Json::number(posts as f64)),
        ("files", Json::number(files as f64)),
        ("rate", Json::number(f64::from(options.rate))),
        ("achieved_rate", Json::number(achieved)),
        ("accepted", Json::number(load.accepted as f64)),
        ("p50_ms", Json::number(pct(0.50) * 1e3)),
        ("p99_ms", Json::number(pct(0.99) * 1e3)),
        ("max_ms", Json::number(pct(1.0) * 1e3)),
        ("server_within_target", Json::number(server_within)),
        ("drain_s", Json::number(drain_s)),
        ("files_in_main", Json::number(files_in_main as f64)),
        ("rows_in_main", Json::number(rows_in_main as f64)),
    ]);
    fs::write(bench_dir.join("result.json"), result.to_pretty())?;
    println!(
        "\nwrote {} (server log {})",
        bench_dir.join("result.json").display(),
        log_path.display()
    );

    let mut missed = Vec::new();
    if load.accepted != posts {
        missed.push(format!(
            "{} of {posts} posts were not answered 202 (first error: {})",
            posts - load.accepted,
            load.first_error.as_deref().unwrap_or("none")
        ));
    }
    if pct(0.99) >= TARGET_P99 {
        missed.push(format!(
            "p99 accept latency {:.1} ms ≥ {} ms",
            pct(0.99) * 1e3,
            TARGET_P99 * 1e3
        ));
    }
    if !drained {
        missed.push("the queue did not drain in time".to_string());
    }
    if runs.iter().any(|(labels, _)| labels.contains("\"failed\"")) {
        missed.push("some runs failed (see the server log)".to_string());
    }
    if files_in_main != files || rows_in_main != files * options.rows {
        missed.push(format!(
            "main holds {files_in_main} files / {rows_in_main} rows, not {files} / {}",
            files * options.rows
        ));
    }
    if !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// Kills the child when dropped (an early error must not leave servers behind).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for {what}")
}

fn sluice_ok(sluice: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(sluice)
        .args(args)
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .output()
        .with_context(|| format!("cannot run {}", sluice.display()))?;
    if !output.status.success() {
        bail!(
            "`sluice {}` failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes the source files once; a later invocation with the same counts reuses them.
fn generate_files(
    layout: &Layout,
    bench_dir: &Path,
    source: &Path,
    files: u64,
    rows: u64,
) -> Result<()> {
    let stamp = source.join(".generated");
    let want = format!("{files} files x {rows} rows\n");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        println!("reusing {want}in {}", source.display());
        return Ok(());
    }
    if source.exists() {
        fs::remove_dir_all(source)
            .with_context(|| format!("cannot remove {}", source.display()))?;
    }
    fs::create_dir_all(bench_dir)?;
    let script = bench_dir.join("bench_serve.py");
    fs::write(&script, SCRIPT)?;
    println!(
        "writing {files} source files of {rows} rows to {}",
        source.display()
    );
    let status = Command::new(layout.venv_python())
        .arg(&script)
        .arg(source)
        .arg(files.to_string())
        .arg(rows.to_string())
        .status()
        .context("cannot run the generator script")?;
    if !status.success() {
        bail!("generating the source files failed ({status})");
    }
    fs::write(&stamp, want)?;
    Ok(())
}

fn file_name(k: u64) -> String {
    format!("part-{k:06}.parquet")
}

fn file_sizes(source: &Path, files: u64) -> Result<Vec<u64>> {
    (0..files)
        .map(|k| {
            let path = source.join(file_name(k));
            Ok(fs::metadata(&path)
                .with_context(|| format!("missing source file {}", path.display()))?
                .len())
        })
        .collect()
}

fn event_body(k: u64, size: u64) -> String {
    format!(
        r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"{REGION}","eventTime":"2026-12-05T00:00:00.000Z","eventName":"ObjectCreated:Put","s3":{{"s3SchemaVersion":"1.0","bucket":{{"name":"{BUCKET}","arn":"arn:aws:s3:::{BUCKET}"}},"object":{{"key":"{PREFIX}/{}","size":{size},"eTag":"","sequencer":"{k:016X}"}}}}}}]}}"#,
        file_name(k)
    )
}

/// What the load saw.
struct Load {
    sent: u64,
    accepted: u64,
    /// Seconds from each post's scheduled time to its answer.
    latencies: Vec<f64>,
    elapsed_s: f64,
    first_error: Option<String>,
}

fn post_events(addr: SocketAddr, options: &ServeBenchOptions, sizes: &[u64]) -> Result<Load> {
    let posts = u64::from(options.rate) * u64::from(options.seconds);
    let interval = 1.0 / f64::from(options.rate);
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let start = Instant::now() + Duration::from_millis(200);
    let workers: Vec<_> = (0..options.workers)
        .map(|_| {
            let (next, accepted, first_error) =
                (next.clone(), accepted.clone(), first_error.clone());
            let sizes = sizes.to_vec();
            let duplicate_every = options.duplicate_every;
            thread::spawn(move || {
                let mut client = Client::new(addr);
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= posts {
                        break;
                    }
                    let due = start + Duration::from_secs_f64(i as f64 * interval);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let (k, _) = file_of_post(i, duplicate_every);
                    let body = event_body(k, sizes[k as usize]);
                    match client.post("/v1/events/s3", &body) {
                        Ok(202) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(code) => note(&first_error, format!("post {i}: HTTP {code}")),
                        Err(e) => note(&first_error, format!("post {i}: {e:#}")),
                    }
                    latencies.push(Instant::now().duration_since(due).as_secs_f64());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(posts as usize);
    for worker in workers {
        latencies.extend(
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))?,
        );
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(Load {
        sent: latencies.len() as u64,
        accepted: accepted.load(Ordering::Relaxed),
        latencies,
        elapsed_s,
        first_error,
    })
}

fn note(slot: &Mutex<Option<String>>, error: String) {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(error);
    }
}

/// One keep-alive HTTP/1.1 connection, opened again after an error.
struct Client {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    fn post(&mut self, path: &str, body: &str) -> Result<u16> {
        let result = self.try_post(path, body);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_post(&mut self, path: &str, body: &str) -> Result<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self.stream.as_mut().expect("connected above");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse()?,
                    "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                    "connection" => close = value.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)?;
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut rest = vec![0; length];
            reader.read_exact(&mut rest)?;
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

/// Waits until no file waits and no run is in progress; false on timeout.
fn wait_until_drained(addr: SocketAddr, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let response = http::get(addr, "/v1/queue")?;
        let queue = Json::parse(&response.body).context("GET /v1/queue is not JSON")?;
        let running = queue.get("running").and_then(Json::as_u64).unwrap_or(1);
        let pending: u64 = match queue.get("tables") {
            Some(Json::Array(tables)) => tables
                .iter()
                .map(|t| t.get("pending").and_then(Json::as_u64).unwrap_or(1))
                .sum(),
            _ => 1,
        };
        if running == 0 && pending == 0 {
            return Ok(true);
        }
        thread::sleep(Duration::from_millis(250));
    }
    Ok(false)
}

/// SIGTERM, then wait (up to a minute) for the server to exit.
fn terminate(child: &mut Child) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("sluice serve did not exit within a minute of SIGTERM")
}

/// The two numbers of `count(*), count(DISTINCT file_no)` printed as CSV with a header.
fn parse_counts(csv: &str) -> Result<(u64, u64)> {
    let row = csv
        .lines()
        .nth(1)
        .with_context(|| format!("no row in {csv:?}"))?;
    let mut numbers = row.split(',').map(|n| n.trim().parse::<u64>());
    match (numbers.next(), numbers.next()) {
        (Some(Ok(rows)), Some(Ok(files))) => Ok((rows, files)),
        _ => bail!("cannot read the counts from {csv:?}"),
    }
}

/// The `q`-quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A Prometheus histogram's cumulative buckets for one route.
#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
}

impl Histogram {
    fn parse(text: &str, name: &str, route: &str) -> Self {
        let mut out = Histogram::default();
        let bucket = format!("{name}_bucket{{");
        let route = format!("route=\"{route}\"");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&bucket) else {
                continue;
            };
            if !rest.contains(&route) {
                continue;
            }
            let Some((labels, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Some(le) = labels
                .split("le=\"")
                .nth(1)
                .and_then(|l| l.split('"').next())
            else {
                continue;
            };
            let value: u64 = value.parse().unwrap_or(0);
            if le == "+Inf" {
                out.count = value;
            } else if let Ok(bound) = le.parse() {
                out.buckets.push((bound, value));
            }
        }
        out
    }

    /// The share of observations at or under `bound` (which must be a bucket bound).
    fn share_within(&self, bound: f64) -> f64 {
        let within = self
            .buckets
            .iter()
            .find(|(b, _)| (*b - bound).abs() < 1e-9)
            .map_or(0, |(_, n)| *n);
        within as f64 / self.count.max(1) as f64
    }
}

/// A counter's series as (labels, value).
fn counter_values(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !rest.starts_with('{') {
                return None;
            }
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let d = parse_options(&[]).unwrap();
        assert_eq!((d.rate, d.seconds, d.workers), (1_000, 30, 32));
        let o = parse_options(&["--rate", "50", "--seconds=2", "--duplicate-every", "0"]).unwrap();
        assert_eq!((o.rate, o.seconds, o.duplicate_every), (50, 2, 0));
        assert!(parse_options(&["--rate", "0"]).is_err());
        assert!(parse_options(&["--duplicate-every", "1"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }

    #[test]
    fn posts_name_every_file_once_plus_earlier_duplicates() {
        let every = 5;
        let posts: Vec<(u64, bool)> = (0..1_000).map(|i| file_of_post(i, every)).collect();
        let new: Vec<u64> = posts.iter().filter(|p| !p.1).map(|p| p.0).collect();
        assert_eq!(new, (0..800).collect::<Vec<_>>());
        for (i, (k, duplicate)) in posts.iter().enumerate() {
            if *duplicate {
                let seen = posts[..i].iter().filter(|p| !p.1).count() as u64;
                assert!(*k < seen, "post {i} repeats file {k}, not yet notified");
            }
        }
        assert_eq!(posts.iter().filter(|p| p.1).count(), 200);
        let none: Vec<u64> = (0..10).map(|i| file_of_post(i, 0).0).collect();
        assert_eq!(none, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn histogram_share_and_counters_are_read_from_the_exposition() {
        let text = "\
sluice_accept_duration_seconds_bucket{route=\"/v1/events/s3\",le=\"0.025\"} 90
sluice_accept_duration_seconds_bucket{route=\"/v1/events/s3\",le=\"0.05\"} 99
sluice_accept_duration_seconds_bucket{route=\"/v1/events/s3\",le=\"+Inf\"} 100
sluice_accept_duration_seconds_bucket{route=\"/v1/runs\",le=\"+Inf\"} 7
sluice_runs_total{status=\"published\",table=\"bench.events\"} 12
";
        let h = Histogram::parse(text, "sluice_accept_duration_seconds", "/v1/events/s3");
        assert_eq!(h.count, 100);
        assert!((h.share_within(0.05) - 0.99).abs() < 1e-9);
        let runs = counter_values(text, "sluice_runs_total");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1, 12.0);
        assert_eq!(
            parse_counts("count(*),count(x)\n300,30\n").unwrap(),
            (300, 30)
        );
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
    }
}

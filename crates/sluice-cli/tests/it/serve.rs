//! `sluice serve` as a process: runs started over HTTP publish each file once, also when the
//! server is SIGKILLed right after answering `202`; S3 notifications for files on the S3
//! server of `cargo xtask services` (skipped visibly without it, required by `cargo xtask e2e`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_tests::{ServiceEnv, skip};

use crate::common::{Env, events, write};

/// A request over a fresh connection; the status and the body as JSON (or a string).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    try_http(port, method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// As [`http`], with I/O errors returned: a server still starting may accept and reset.
fn try_http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // Read the head, then the body by its length: some servers (chromedriver) keep the
    // connection open after `Connection: close`.
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {head:?}"),
            )
        })?;
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            stream.read_exact(&mut body)?;
        }
        None => {
            stream.read_to_end(&mut body)?;
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let text = if lower.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serving {
    child: Child,
    port: u16,
}

impl Serving {
    fn start(env: &Env, port: u16, extra_env: &[(&str, String)]) -> Serving {
        Self::start_in(env, env.dir.path(), &[], port, extra_env)
    }

    fn start_in(
        env: &Env,
        dir: &std::path::Path,
        args: &[&str],
        port: u16,
        extra_env: &[(&str, String)],
    ) -> Serving {
        let mut command = env.cmd();
        command
            .current_dir(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let mut serving = Serving { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if try_http(port, "GET", "/readyz", "").is_ok_and(|(code, _)| code == 200) {
                return serving;
            }
            if let Ok(Some(status)) = serving.child.try_wait() {
                panic!("sluice serve exited with {status} before it listened");
            }
            assert!(Instant::now() < deadline, "sluice serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        http(self.port, "POST", path, body)
    }

    /// Polls a batch until it is done; returns it.
    fn wait_done(&self, batch: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, state) = http(self.port, "GET", &format!("/v1/batches/{batch}"), "");
            if state["state"] == "done" {
                return state;
            }
            assert!(Instant::now() < deadline, "batch {batch} not done: {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and the exit code once it has stopped.
    fn terminate(mut self) -> i32 {
        // SAFETY: the child's pid, still ours (not yet waited for).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_trigger(env: &Env, trigger: &str) {
    let path = env.path("sluice.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(trigger);
    std::fs::write(path, config).unwrap();
}

#[test]
fn runs_asked_over_http_publish_once_even_when_the_server_is_killed_after_the_202() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("raw")).unwrap();
    write(&env.path("raw/a.parquet"), &events(0..100, false));
    with_trigger(
        &env,
        "\n[[trigger]]\nprefix = \"raw\"\ntable = \"ns.events\"\nchecks = \"checks.toml\"\nbatch_window = \"100ms\"\n",
    );
    let port = free_port();
    let server = Serving::start(&env, port, &[]);
    let (code, body) = server.post("/v1/runs", r#"{"table": "ns.events"}"#);
    assert_eq!(code, 202, "{body}");
    let state = server.wait_done(body["batches"][0]["id"].as_str().unwrap());
    assert_eq!(state["runs"][0]["status"], "published", "{state}");
    assert_eq!(env.event_ids("ns.events").len(), 100);

    // A bad batch is rejected by the checks and rolled back; main keeps what it had.
    write(&env.path("raw/b.parquet"), &events(100..150, true));
    let (_, body) = server.post("/v1/runs", r#"{"table": "ns.events"}"#);
    let state = server.wait_done(body["batches"][0]["id"].as_str().unwrap());
    assert_eq!(state["runs"][0]["status"], "audit_failed", "{state}");
    std::fs::remove_file(env.path("raw/b.parquet")).unwrap();

    // Killed right after the 202: the request is in the event log, and the next server runs it.
    write(&env.path("raw/c.parquet"), &events(200..260, false));
    let (code, _) = server.post("/v1/runs", r#"{"table": "ns.events"}"#);
    assert_eq!(code, 202);
    server.kill();
    let server = Serving::start(&env, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.event_ids("ns.events").len() < 160 {
        assert!(
            Instant::now() < deadline,
            "c.parquet was not published after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once, with every audit branch gone, and the event log emptied.
    let ids = env.event_ids("ns.events");
    let expected: Vec<i64> = (0..100).chain(200..260).collect();
    assert_eq!(ids, expected);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.branches() != ["main"] {
        assert!(
            Instant::now() < deadline,
            "branches left: {:?}",
            env.branches()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.terminate(), 0);
    let left: usize = std::fs::read_dir(env.path(".sluice/events"))
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(left, 0, "events left in the log after a clean stop");
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let env = Env::new();
    let out = env.sluice(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0.0") && stderr.contains("SLUICE_SERVE_TOKEN"),
        "{stderr}"
    );
}

fn s3_event(bucket: &str, key: &str, size: usize) -> String {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-12-05T10:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": "x"}}
    }]})
    .to_string()
}

#[test]
fn s3_notifications_publish_uploaded_files_once_also_across_a_kill() {
    const TEST: &str = "serve::s3_notifications_publish_uploaded_files_once_also_across_a_kill";
    let services = match ServiceEnv::from_env() {
        Ok(s) => s,
        Err(missing) => {
            skip(
                TEST,
                &format!(
                    "the S3 server is not configured ({} unset)",
                    missing.join(", ")
                ),
            );
            return;
        }
    };
    let env = Env::new();
    let prefix = format!("serve-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let bucket = services.raw_bucket.clone();
    with_trigger(
        &env,
        &format!(
            "\n[storage.s3]\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\nallow_http = true\n\n[[trigger]]\nprefix = \"s3://{bucket}/{prefix}/\"\ntable = \"ns.events\"\nchecks = \"checks.toml\"\nbatch_window = \"200ms\"\n",
            services.s3_endpoint, services.region
        ),
    );
    let secret = services.secret_access_key.expose().to_string();
    let aws = [
        ("AWS_ACCESS_KEY_ID", services.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", services.region.clone()),
    ];
    let upload = |name: &str, ids: std::ops::Range<i64>| -> (String, usize) {
        let local = env.path(name);
        write(&local, &events(ids, false));
        let bytes = std::fs::read(&local).unwrap();
        let size = bytes.len();
        let key = format!("{prefix}/{name}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let lake = sluice_lake::Lake::connect(&sluice_lake::LakeConfig {
                catalog: sluice_lake::CatalogConfig::Sql {
                    uri: env.path("upload.db").display().to_string(),
                    name: "default".into(),
                    warehouse: format!("file://{}", env.path("upload-warehouse").display()),
                },
                storage: services.lake_config().storage,
            })
            .await
            .unwrap();
            sluice_tests::put_location(&lake, &format!("s3://{bucket}/{key}"), bytes).await;
        });
        (key, size)
    };

    let port = free_port();
    let server = Serving::start(&env, port, &aws);
    let (key, size) = upload("a.parquet", 0..100);
    let event = s3_event(&bucket, &key, size);
    let (code, first) = server.post("/v1/events/s3", &event);
    assert_eq!(code, 202, "{first}");
    assert_eq!(first["accepted"], 1);
    // The same notification again (S3 delivers at least once).
    let (code, _) = server.post("/v1/events/s3", &event);
    assert_eq!(code, 202);
    let state = server.wait_done(first["batches"][0]["id"].as_str().unwrap());
    assert_eq!(state["runs"][0]["status"], "published", "{state}");
    assert_eq!(env.event_ids("ns.events").len(), 100);
    // A late duplicate after the publish: nothing to do.
    let (_, late) = server.post("/v1/events/s3", &event);
    let state = server.wait_done(late["batches"][0]["id"].as_str().unwrap());
    assert_eq!(state["runs"][0]["status"], "nothing_to_do", "{state}");

    // SIGKILL right after the 202; the restarted server publishes the file.
    let (key, size) = upload("b.parquet", 100..130);
    let (code, _) = server.post("/v1/events/s3", &s3_event(&bucket, &key, size));
    assert_eq!(code, 202);
    server.kill();
    let server = Serving::start(&env, port, &aws);
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.event_ids("ns.events").len() < 130 {
        assert!(
            Instant::now() < deadline,
            "b.parquet was not published after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(env.event_ids("ns.events"), (0..130).collect::<Vec<i64>>());
    assert_eq!(server.terminate(), 0);
}

/// A WebDriver session of headless Chromium, through chromedriver's HTTP API.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` when Chromium or chromedriver is not installed.
    fn start() -> Option<Browser> {
        let chromium =
            std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let driver =
            std::env::var("SLUICE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !std::path::Path::new(&chromium).exists() || !std::path::Path::new(&driver).exists() {
            return None;
        }
        let port = free_port();
        let driver = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let (code, session) = http(port, "POST", "/session", &capabilities.to_string());
        assert_eq!(code, 200, "no browser session: {session}");
        let session = session["value"]["sessionId"].as_str().unwrap().to_string();
        Some(Browser {
            driver,
            port,
            session,
            _profile: profile,
        })
    }

    fn command(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (code, answer) = http(self.port, method, &path, &body);
        assert_eq!(code, 200, "{method} {what}: {answer}");
        answer["value"].clone()
    }

    /// Opens a page; returns its text and the console messages of level SEVERE (errors,
    /// failed loads).
    fn visit(&self, url: &str) -> (String, Vec<String>) {
        self.command("POST", "url", json!({ "url": url }));
        let text = self.script("return document.body.innerText");
        let logs = self.command("POST", "se/log", json!({"type": "browser"}));
        let errors = logs
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect();
        (text.as_str().unwrap_or_default().to_string(), errors)
    }

    fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn screenshot(&self, path: &std::path::Path) {
        let png = self.command("GET", "screenshot", Value::Null);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, base64(png.as_str().unwrap())).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            "",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn the_web_view_of_the_demo_lake_loads_in_a_browser_and_shows_the_rejected_batch() {
    const TEST: &str =
        "serve::the_web_view_of_the_demo_lake_loads_in_a_browser_and_shows_the_rejected_batch";
    let Some(browser) = Browser::start() else {
        skip(
            TEST,
            "no Chromium and chromedriver (apt-get install chromium chromium-driver; or set SLUICE_CHROMIUM and SLUICE_CHROMEDRIVER)",
        );
        return;
    };
    let env = Env::new();
    let out = env.sluice(&["demo", "--dir", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let demo = env.path("demo");
    let port = free_port();
    let server = Serving::start_in(&env, &demo, &["--ui-only"], port, &[]);
    let base = format!("http://127.0.0.1:{port}");

    let (text, errors) = browser.visit(&format!("{base}/"));
    assert!(errors.is_empty(), "console errors on /: {errors:?}");
    assert!(
        text.contains("demo.events") && text.contains("Latest runs"),
        "{text}"
    );
    // The script ran: times are shown in local time with UTC in the tooltip.
    assert!(
        browser
            .script("return document.querySelectorAll('time[title]').length")
            .as_u64()
            > Some(0)
    );

    let (text, errors) = browser.visit(&format!("{base}/tables/demo.events"));
    assert!(
        errors.is_empty(),
        "console errors on the table page: {errors:?}"
    );
    assert!(
        text.contains("History of main") && text.contains("day-1"),
        "{text}"
    );
    assert!(
        text.contains("rejected") && text.contains("audit failed: not_null(event_id, user_id)"),
        "the commit log does not show the rejected batch:\n{text}"
    );
    // The first two charts: rows per publish and duration per run.
    assert_eq!(
        browser
            .script(
                "return Array.from(document.querySelectorAll('figure.chart')).slice(0, 2)\
                 .reduce((n, f) => n + f.querySelectorAll('circle').length, 0)"
            )
            .as_u64(),
        Some(5),
        "a point per publish (2) and per run (3)"
    );
    // Then the metrics the publishes recorded, a point per publish in each chart.
    assert!(text.contains("Recorded metrics"), "{text}");
    let metric_points = browser
        .script(
            "return Array.from(document.querySelectorAll('figure.chart')).slice(2)\
             .map(f => f.querySelectorAll('circle').length)",
        )
        .to_string();
    assert!(
        metric_points.starts_with("[2,") || metric_points == "[2]",
        "metric charts: {metric_points}"
    );
    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    browser.screenshot(&screenshots.join("table.png"));
    eprintln!("screenshot: {}", screenshots.join("table.png").display());

    // The rejected run: its audit report with the failing rows.
    let rejected = browser.script(
        "return Array.from(document.querySelectorAll('tr.rejected a')).map(a => a.getAttribute('href'))[0]",
    );
    let (text, errors) = browser.visit(&format!("{base}{}", rejected.as_str().unwrap()));
    assert!(
        errors.is_empty(),
        "console errors on the run page: {errors:?}"
    );
    assert!(
        text.contains("rolled_back")
            && text.contains("Failing rows of not_null(event_id, user_id)"),
        "{text}"
    );
    browser.screenshot(&screenshots.join("rejected-run.png"));

    let (text, errors) = browser.visit(&format!("{base}/runs"));
    assert!(errors.is_empty(), "console errors on /runs: {errors:?}");
    assert!(text.contains("run demo.events"), "{text}");
    // A page that does not exist is a 404 page, which the browser logs as a failed load.
    let (_, errors) = browser.visit(&format!("{base}/tables/demo.nothing"));
    assert!(errors.iter().any(|e| e.contains("404")), "{errors:?}");
    drop(browser);
    assert_eq!(server.terminate(), 0);
}

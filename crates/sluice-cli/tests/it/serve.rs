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
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status: u16 = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let text = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
    )
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
        let mut command = env.cmd();
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let mut serving = Serving { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/readyz", "").0 == 200
            {
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

//! The server over HTTP: every route and status code, runs that publish, and events that
//! outlive the process that accepted them. (S3 notifications for objects on a real S3 server,
//! and a SIGKILL after a 202, are in the `sluice` command's tests.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_lake::{Lake, RefSpec, ScanOptions, TableName};
use sluice_serve::{ServeOptions, Server};
use sluice_wap::StopSignal;

const TOKEN: &str = "s3cret-token";

/// A server on its own thread and runtime (its future is not `Send`), on an ephemeral port.
struct Served {
    addr: SocketAddr,
    stop: StopSignal,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(dir: &Path, configure: impl FnOnce(&mut ServeOptions) + Send + 'static) -> Served {
        let (sender, receiver) = std::sync::mpsc::channel();
        let stop = StopSignal::new();
        let dir = dir.to_path_buf();
        let stop_server = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let config = sluice_wap::config::load(Some(&dir.join("sluice.toml"))).unwrap();
                let mut options =
                    ServeOptions::new("127.0.0.1:0".parse().unwrap(), dir.join("events"));
                configure(&mut options);
                let server = Server::open(&config.pipeline, config.triggers, options)
                    .await
                    .unwrap();
                sender.send(server.local_addr()).unwrap();
                server.serve(stop_server, StopSignal::new()).await.unwrap();
            });
        });
        let addr = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        Served {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn stop(mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

fn lake_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("raw")).unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        r#"
[catalog]
type = "sql"
uri = ".sluice/catalog.db"
warehouse = ".sluice/warehouse"

[journal]
location = ".sluice/journal"

[[trigger]]
prefix = "s3://raw/events/"
table = "web.clicks"
batch_window = "1h"

[[trigger]]
prefix = "raw"
table = "web.local"
batch_window = "100ms"
"#,
    )
    .unwrap();
    dir
}

fn s3_event(keys: &[&str]) -> String {
    let records: Vec<Value> = keys
        .iter()
        .map(|key| {
            json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": "2026-12-05T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "raw"}, "object": {"key": key, "size": 100, "eTag": "e"}}
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_its_status_codes() {
    let dir = lake_dir();
    let server = Served::start(dir.path(), |o| {
        o.token = Some(TOKEN.to_string());
        o.max_queue = 3;
        o.max_body = 2048;
    });
    let client = reqwest::Client::new();
    let events = server.url("/v1/events/s3");

    // Probes need no token.
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    // Everything else does, and a wrong one is refused the same way.
    let without = client
        .post(&events)
        .body(s3_event(&["events/a.parquet"]))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status().as_u16(), 401);
    assert!(without.headers().contains_key("www-authenticate"));
    let wrong = client
        .post(&events)
        .bearer_auth("s3cret-tokem")
        .body(s3_event(&["events/a.parquet"]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.text().await.unwrap().contains("SLUICE_SERVE_TOKEN"));

    // Malformed and unknown input.
    let (code, body) = post(&client, &events, "{\"Records\": [".to_string()).await;
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON document"),
        "{body}"
    );
    let (code, body) = post(
        &client,
        &events,
        r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"raw"}}}]}"#.into(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("s3.object.key"),
        "{body}"
    );
    let (code, body) = post(&client, &events, s3_event(&["elsewhere/a.parquet"])).await;
    assert_eq!(code, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("s3://raw/elsewhere/a.parquet") && message.contains("s3://raw/events/"),
        "{message}"
    );

    // Accepted: a batch id, the same for a duplicate, and one file queued for both.
    let (code, body) = post(&client, &events, s3_event(&["events/a.parquet"])).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["batches"][0]["table"], "web.clicks");
    let batch = body["batches"][0]["id"].as_str().unwrap().to_string();
    let (code, again) = post(&client, &events, s3_event(&["events/a.parquet"])).await;
    assert_eq!(code, 202);
    assert_eq!(again["batches"][0]["id"], batch.as_str());
    let (code, queue) = get(&client, &server.url("/v1/queue")).await;
    assert_eq!(code, 200);
    let queue: Value = serde_json::from_str(&queue).unwrap();
    let clicks = queue["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "web.clicks")
        .unwrap();
    assert_eq!(clicks["pending"], 1, "{queue}");
    let (code, state) = get(&client, &server.url(&format!("/v1/batches/{batch}"))).await;
    assert_eq!(code, 200);
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["state"], "queued", "{state}");
    assert_eq!(state["table"], "web.clicks");
    let (code, _) = get(
        &client,
        &server.url("/v1/batches/00000000-0000-0000-0000-000000000000"),
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = get(&client, &server.url("/v1/batches/not-a-uuid")).await;
    assert_eq!(code, 400);

    // Removals, non-parquet objects and S3's test event are harmless.
    let removed = json!({"Records": [{"eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": "raw"}, "object": {"key": "events/a.parquet"}}}]});
    let (code, body) = post(&client, &events, removed.to_string()).await;
    assert_eq!((code, body["accepted"].clone()), (202, json!(0)), "{body}");
    let (code, body) = post(&client, &events, s3_event(&["events/_SUCCESS"])).await;
    assert_eq!(code, 202);
    assert_eq!(body["ignored"][0]["reason"], "not a parquet file");
    let (code, body) = post(
        &client,
        &events,
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.into(),
    )
    .await;
    assert_eq!((code, body["test_event"].clone()), (202, json!(true)));

    // Too large, then a full queue (3 files at most).
    let (code, body) = post(
        &client,
        &events,
        format!("{{\"pad\": \"{}\"}}", "x".repeat(4096)),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    let (code, _) = post(
        &client,
        &events,
        s3_event(&["events/b.parquet", "events/c.parquet"]),
    )
    .await;
    assert_eq!(code, 202);
    let full = client
        .post(&events)
        .bearer_auth(TOKEN)
        .body(s3_event(&["events/d.parquet"]))
        .send()
        .await
        .unwrap();
    assert_eq!(full.status().as_u16(), 429);
    assert!(full.headers().contains_key("retry-after"));

    // Run requests name a table with a trigger, and nothing else.
    let runs = server.url("/v1/runs");
    let (code, body) = post(&client, &runs, r#"{"table": "web.nope"}"#.into()).await;
    assert_eq!(code, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("web.nope") && message.contains("web.local"),
        "{message}"
    );
    let (code, body) = post(&client, &runs, r#"{"table": "web.local", "x": 1}"#.into()).await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("\"x\""));
    let (code, _) = post(&client, &runs, "table=web.local".into()).await;
    assert_eq!(code, 400);

    // Unknown pages and methods.
    let (code, _) = get(&client, &server.url("/nope")).await;
    assert_eq!(code, 404);
    let (code, _) = get(&client, &runs).await;
    assert_eq!(code, 405);

    // The metrics saw all of it.
    let (code, metrics) = get(&client, &server.url("/metrics")).await;
    assert_eq!(code, 200);
    for line in [
        "sluice_http_requests_total{route=\"/v1/events/s3\",code=\"401\"} 2",
        "sluice_http_requests_total{route=\"/v1/events/s3\",code=\"413\"} 1",
        "sluice_http_requests_total{route=\"/v1/events/s3\",code=\"429\"} 1",
        "sluice_event_files_total{table=\"web.clicks\"} 4",
        "sluice_event_files_ignored_total{reason=\"not_parquet\"} 1",
        "sluice_queue_depth{table=\"web.clicks\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert!(!metrics.contains(TOKEN));
    server.stop();
}

fn write_files(dir: &Path, first: i64, files: usize, rows: i64) {
    for i in 0..files as i64 {
        let start = first + i * rows;
        sluice_testkit::write_parquet(
            &dir.join(format!("part-{start:06}.parquet")),
            &sluice_testkit::batch(start..start + rows),
        );
    }
}

async fn rows_in_main(dir: &Path, table: &str) -> usize {
    let config = sluice_wap::config::load(Some(&dir.join("sluice.toml"))).unwrap();
    let lake = Lake::connect(&config.pipeline.lake).await.unwrap();
    let table: TableName = table.parse().unwrap();
    lake.scan_to_vec(&table, &RefSpec::main(), &ScanOptions::default())
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

async fn wait_done(client: &reqwest::Client, server: &Served, batch: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(client, &server.url(&format!("/v1/batches/{batch}"))).await;
        let state: Value = serde_json::from_str(&text).unwrap();
        if state["state"] == "done" {
            return state;
        }
        assert!(Instant::now() < deadline, "batch {batch} not done: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_request_publishes_new_files_once() {
    let dir = lake_dir();
    write_files(&dir.path().join("raw"), 0, 2, 10);
    let server = Served::start(dir.path(), |o| o.token = Some(TOKEN.to_string()));
    let client = reqwest::Client::new();
    let runs = server.url("/v1/runs");

    let (code, body) = post(&client, &runs, r#"{"table": "web.local"}"#.into()).await;
    assert_eq!(code, 202, "{body}");
    let batch = body["batches"][0]["id"].as_str().unwrap().to_string();
    let state = wait_done(&client, &server, &batch).await;
    assert_eq!(state["runs"][0]["status"], "published", "{state}");
    assert!(state["runs"][0]["run_id"].is_string(), "{state}");

    // Asked again with nothing new: nothing to do, nothing published twice.
    let (_, body) = post(&client, &runs, r#"{"table": "web.local"}"#.into()).await;
    let again = wait_done(&client, &server, body["batches"][0]["id"].as_str().unwrap()).await;
    assert_eq!(again["runs"][0]["status"], "nothing_to_do", "{again}");

    let (_, metrics) = get(&client, &server.url("/metrics")).await;
    assert!(
        metrics.contains("sluice_runs_total{table=\"web.local\",status=\"published\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_rows_published_total{table=\"web.local\"} 20"));
    assert!(metrics.contains("sluice_step_duration_seconds_count{step=\"write\"} 1"));
    server.stop();
    assert_eq!(rows_in_main(dir.path(), "web.local").await, 20);
    // Every handled event is gone from the log.
    assert_eq!(log_records(&dir.path().join("events")), 0);
}

fn log_records(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_are_queued_again_by_the_next_server() {
    let dir = lake_dir();
    let server = Served::start(dir.path(), |o| o.token = Some(TOKEN.to_string()));
    let client = reqwest::Client::new();
    let (code, _) = post(
        &client,
        &server.url("/v1/events/s3"),
        s3_event(&["events/a.parquet", "events/b.parquet"]),
    )
    .await;
    assert_eq!(code, 202);
    server.stop();
    assert_eq!(log_records(&dir.path().join("events")), 2);

    let server = Served::start(dir.path(), |o| o.token = Some(TOKEN.to_string()));
    let (_, queue) = get(&client, &server.url("/v1/queue")).await;
    let queue: Value = serde_json::from_str(&queue).unwrap();
    let clicks = queue["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "web.clicks")
        .unwrap();
    assert_eq!(clicks["pending"], 2, "{queue}");
    server.stop();
}

#[tokio::test]
async fn a_public_address_needs_a_token() {
    let dir = lake_dir();
    let config = sluice_wap::config::load(Some(&dir.path().join("sluice.toml"))).unwrap();
    let options = ServeOptions::new("0.0.0.0:0".parse().unwrap(), dir.path().join("events"));
    let err = match Server::open(&config.pipeline, config.triggers, options).await {
        Ok(_) => panic!("a server without a token listened on 0.0.0.0"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("0.0.0.0") && err.contains("SLUICE_SERVE_TOKEN"),
        "{err}"
    );
}

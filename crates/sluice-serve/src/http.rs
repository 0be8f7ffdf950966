//! The HTTP side: routes, the bearer token, body limits, and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sluice_wap::{Pipeline, PipelineConfig, SourceFile, StopSignal, Trigger};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::events::parse_notification;
use crate::log::EventLog;
use crate::metrics::{Metrics, RetryCounter};
use crate::queue::{Accepted, Queue, Refused};
use crate::{Error, Result, ServeOptions, SharedMetrics};

/// How long open connections get to finish their requests after a stop.
const DRAIN: Duration = Duration::from_secs(10);

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

struct App {
    pipeline: Arc<Pipeline>,
    queue: Option<Arc<Queue>>,
    metrics: SharedMetrics,
    token: Option<String>,
    max_body: usize,
}

type Reply = Response<Full<Bytes>>;

impl Server {
    /// Opens the lake, reads the event log (queueing what a previous process left), and binds
    /// the address. `triggers` are ignored with `ui_only`.
    pub async fn open(
        pipeline: &PipelineConfig,
        triggers: Vec<Trigger>,
        options: ServeOptions,
    ) -> Result<Server> {
        if options.token.is_none() && !options.listen.ip().is_loopback() {
            return Err(Error::NoToken(options.listen));
        }
        let metrics: SharedMetrics = Arc::new(Metrics::new());
        let pipeline = Arc::new(
            Pipeline::open_with(pipeline, Some(Arc::new(RetryCounter(metrics.clone())))).await?,
        );
        let queue = if options.ui_only {
            None
        } else {
            let (log, replay) =
                EventLog::open(&options.queue_dir).map_err(|source| Error::Log {
                    dir: options.queue_dir.clone(),
                    source,
                })?;
            Some(Queue::new(
                log,
                replay,
                pipeline.clone(),
                triggers,
                metrics.clone(),
                options.max_queue,
                options.max_concurrent_runs,
                StopSignal::new(),
            ))
        };
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: options.listen,
                source,
            })?;
        Ok(Server {
            listener,
            app: Arc::new(App {
                pipeline,
                queue,
                metrics,
                token: options.token,
                max_body: options.max_body,
            }),
        })
    }

    /// The address it listens on (the port chosen when it was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The triggers it serves.
    pub fn triggers(&self) -> &[Trigger] {
        self.app.queue.as_ref().map_or(&[], |q| q.triggers())
    }

    /// Serves until `stop`: then it takes no more connections, lets open requests finish,
    /// and waits for the runs in progress to end. Raising `cancel_runs` makes them stop at
    /// their next safe point (they roll back; their events run again at the next start).
    ///
    /// The future is not `Send` (runs share one thread of a `LocalSet`): await it from the
    /// runtime's `block_on`, or from a thread of its own.
    pub async fn serve(self, stop: StopSignal, cancel_runs: StopSignal) -> Result<()> {
        let Server { listener, app } = self;
        if let Some(queue) = app.queue.clone() {
            let cancel = cancel_runs.clone();
            tokio::spawn(async move {
                cancel.stopped().await;
                queue.cancel_runs();
            });
        }
        let scheduler = async {
            if let Some(queue) = &app.queue {
                queue.schedule(&stop).await;
            }
        };
        let local = tokio::task::LocalSet::new();
        let ((), ()) = local
            .run_until(async { tokio::join!(scheduler, accept(listener, app.clone(), &stop)) })
            .await;
        Ok(())
    }
}

/// Takes connections until `stop`, then lets open ones finish their requests.
async fn accept(listener: TcpListener, app: Arc<App>, stop: &StopSignal) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let service = service_fn(move |request| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(request).await) }
                });
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.stopped() => break,
        }
    }
    drop(listener);
    tracing::info!("stopping: no new connections; open requests and runs in progress finish");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, json!({ "error": message.into() }))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Whether a location names a parquet file (the same rule as listing a source).
fn is_parquet(location: &str) -> bool {
    let name = location.rsplit('/').next().unwrap_or(location);
    name.to_ascii_lowercase().ends_with(".parquet") && !name.starts_with('.')
}

impl App {
    async fn handle(&self, request: Request<Incoming>) -> Reply {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let (route, response) = self.route(request).await;
        let code = response.status().as_u16().to_string();
        self.metrics.add(
            "sluice_http_requests_total",
            &[("route", route), ("code", &code)],
            1.0,
        );
        if matches!(route, "/v1/events/s3" | "/v1/runs") {
            self.metrics.observe(
                "sluice_accept_duration_seconds",
                &[("route", route)],
                started.elapsed().as_secs_f64(),
            );
        }
        tracing::debug!(%method, %path, status = %code, "request");
        response
    }

    async fn route(&self, request: Request<Incoming>) -> (&'static str, Reply) {
        let method = request.method().clone();
        let path = request.uri().path().trim_end_matches('/').to_string();
        match (method.clone(), path.as_str()) {
            (Method::GET, "/healthz") => {
                return ("/healthz", reply(StatusCode::OK, json!({"status": "ok"})));
            }
            (Method::GET, "/readyz") => {
                let stopping = self.queue.as_ref().is_some_and(|q| q.is_stopping());
                return (
                    "/readyz",
                    if stopping {
                        error(StatusCode::SERVICE_UNAVAILABLE, "stopping")
                    } else {
                        reply(StatusCode::OK, json!({"status": "ready"}))
                    },
                );
            }
            _ => {}
        }
        if method == Method::GET
            && let Some(response) = static_file(&path)
        {
            return ("/ui", response);
        }
        // A browser signs in once with `?token=`: the token becomes a cookie, and the address
        // loses it.
        if method == Method::GET
            && let Some(given) = query_token(&request)
        {
            return ("/ui", self.sign_in(&path, &given));
        }
        let route = match path.as_str() {
            "" | "/" => "/",
            "/runs" => "/runs",
            p if p.starts_with("/tables/") => "/tables",
            p if p.starts_with("/runs/") => "/runs/ID",
            "/metrics" => "/metrics",
            "/v1/events/s3" => "/v1/events/s3",
            "/v1/runs" => "/v1/runs",
            "/v1/queue" => "/v1/queue",
            p if p.starts_with("/v1/batches/") => "/v1/batches",
            _ => "other",
        };
        if !self.authorized(&request) {
            if matches!(route, "/" | "/runs" | "/tables" | "/runs/ID") {
                return (route, html(401, &crate::ui::sign_in_page()));
            }
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "a valid token is required: send `Authorization: Bearer <token>` with the server's SLUICE_SERVE_TOKEN",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice\""),
            );
            return (route, response);
        }
        let response = match (method, route) {
            (Method::GET, "/") => {
                page(crate::ui::index(&self.pipeline, self.queue.as_deref()).await)
            }
            (Method::GET, "/runs") => page(crate::ui::runs(&self.pipeline).await),
            (Method::GET, "/tables") => {
                let name = crate::ui::decode_segment(path.trim_start_matches("/tables/"));
                page(crate::ui::table(&self.pipeline, &name).await)
            }
            (Method::GET, "/runs/ID") => {
                page(crate::ui::run(&self.pipeline, path.trim_start_matches("/runs/")).await)
            }
            (Method::GET, "/metrics") => self.metrics_page(),
            (Method::POST, "/v1/events/s3") => match self.body(request).await {
                Ok(body) => self.events(&body).await,
                Err(response) => response,
            },
            (Method::POST, "/v1/runs") => match self.body(request).await {
                Ok(body) => self.run_now(&body).await,
                Err(response) => response,
            },
            (Method::GET, "/v1/queue") => match &self.queue {
                Some(queue) => reply(
                    StatusCode::OK,
                    json!({"running": queue.running(), "tables": queue.status()}),
                ),
                None => ui_only(),
            },
            (Method::GET, "/v1/batches") => self.batch(&path),
            (_, "other") => error(
                StatusCode::NOT_FOUND,
                format!("no such page: {path}; see docs/serve.md for the routes"),
            ),
            (method, route) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{route} does not take {method}"),
            ),
        };
        (route, response)
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let cookie = request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                pair.trim()
                    .strip_prefix(&format!("{TOKEN_COOKIE}="))
                    .map(str::to_string)
            });
        match bearer.map(str::to_string).or(cookie) {
            Some(given) => same_token(&given, token),
            None => false,
        }
    }

    /// `?token=`: a right token becomes a cookie and the page is loaded again without it.
    fn sign_in(&self, path: &str, given: &str) -> Reply {
        let right = self.token.as_deref().is_none_or(|t| same_token(given, t));
        if !right {
            return html(401, &crate::ui::sign_in_page());
        }
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SEE_OTHER;
        let location = if path.is_empty() { "/" } else { path };
        if let Ok(value) = HeaderValue::from_str(location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        if let Ok(cookie) = HeaderValue::from_str(&format!(
            "{TOKEN_COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"
        )) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        response
    }

    /// The body, at most `max_body` bytes.
    async fn body(&self, request: Request<Incoming>) -> Result<Bytes, Reply> {
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} bytes (--max-body)",
                    self.max_body
                ),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        match Limited::new(request.into_body(), self.max_body)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(e) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )),
        }
    }

    fn metrics_page(&self) -> Reply {
        let mut gauges = Vec::new();
        if let Some(queue) = &self.queue {
            let status = queue.status();
            gauges.push((
                "sluice_queue_depth",
                "Files (and run requests) waiting for a run, by table.",
                status
                    .iter()
                    .map(|t| (vec![("table", t.table.clone())], t.pending as f64))
                    .collect(),
            ));
            gauges.push((
                "sluice_runs_in_progress",
                "Runs in progress.",
                vec![(Vec::new(), queue.running() as f64)],
            ));
        }
        text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            self.metrics.render(&gauges),
        )
    }

    async fn events(&self, body: &[u8]) -> Reply {
        let Some(queue) = &self.queue else {
            return ui_only();
        };
        let notification = match parse_notification(body) {
            Ok(n) => n,
            Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
        };
        if notification.test {
            return reply(
                StatusCode::ACCEPTED,
                json!({"accepted": 0, "batches": [], "ignored": [], "test_event": true}),
            );
        }
        let mut accepted = Vec::new();
        let mut ignored = Vec::new();
        let mut unmatched = Vec::new();
        for object in notification.created {
            if !is_parquet(&object.location) {
                ignored.push(json!({"location": object.location, "reason": "not a parquet file"}));
                self.metrics.add(
                    "sluice_event_files_ignored_total",
                    &[("reason", "not_parquet")],
                    1.0,
                );
                continue;
            }
            let mut matched = false;
            for (trigger, t) in queue.triggers().iter().enumerate() {
                if t.matches(&object.location) {
                    matched = true;
                    accepted.push(Accepted {
                        trigger,
                        file: SourceFile {
                            location: object.location.clone(),
                            size: object.size.unwrap_or(0),
                            etag: object.etag.clone(),
                            modified: object.time,
                        },
                    });
                }
            }
            if !matched {
                unmatched.push(object.location);
            }
        }
        for (location, name) in notification.other {
            ignored.push(json!({"location": location, "reason": format!("{name} is not an object creation")}));
            self.metrics.add(
                "sluice_event_files_ignored_total",
                &[("reason", "not_created")],
                1.0,
            );
        }
        if accepted.is_empty() && !unmatched.is_empty() {
            self.metrics.add(
                "sluice_event_files_ignored_total",
                &[("reason", "no_trigger")],
                unmatched.len() as f64,
            );
            let prefixes: Vec<&str> = queue.triggers().iter().map(|t| t.prefix.as_str()).collect();
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "no [[trigger]] covers {}; the triggers' prefixes are: {}",
                    unmatched.join(", "),
                    if prefixes.is_empty() {
                        "none (add a [[trigger]] to sluice.toml)".to_string()
                    } else {
                        prefixes.join(", ")
                    }
                ),
            );
        }
        for location in unmatched {
            ignored.push(json!({"location": location, "reason": "no trigger covers it"}));
            self.metrics.add(
                "sluice_event_files_ignored_total",
                &[("reason", "no_trigger")],
                1.0,
            );
        }
        let tables: Vec<String> = accepted
            .iter()
            .map(|a| queue.triggers()[a.trigger].table().to_string())
            .collect();
        match queue.accept(accepted, None).await {
            Ok(batches) => {
                for table in &tables {
                    self.metrics
                        .add("sluice_event_files_total", &[("table", table)], 1.0);
                }
                accepted_reply(&batches, ignored)
            }
            Err(refused) => refusal(refused),
        }
    }

    async fn run_now(&self, body: &[u8]) -> Reply {
        let Some(queue) = &self.queue else {
            return ui_only();
        };
        let request: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "the body is not a JSON document: {e}; send {{\"table\": \"ns.table\"}}"
                    ),
                );
            }
        };
        let Some(table) = request.get("table").and_then(Value::as_str) else {
            return error(
                StatusCode::BAD_REQUEST,
                "no \"table\": send {\"table\": \"ns.table\"} naming a table with a [[trigger]]",
            );
        };
        if let Some(other) = request
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "table"))
        {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown field \"{other}\"; send {{\"table\": \"ns.table\"}}"),
            );
        }
        let Some(index) = queue.trigger_of(table) else {
            let known: Vec<String> = queue
                .triggers()
                .iter()
                .map(|t| t.table().to_string())
                .collect();
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "no [[trigger]] for table {table}; tables with a trigger: {}",
                    if known.is_empty() {
                        "none (add a [[trigger]] to sluice.toml)".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        };
        match queue.accept(Vec::new(), Some(index)).await {
            Ok(batches) => accepted_reply(&batches, Vec::new()),
            Err(refused) => refusal(refused),
        }
    }

    fn batch(&self, path: &str) -> Reply {
        let Some(queue) = &self.queue else {
            return ui_only();
        };
        let id = path.trim_start_matches("/v1/batches/");
        let Ok(id) = id.parse::<uuid::Uuid>() else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`{id}` is not a batch id (a UUID, as a 202 names it)"),
            );
        };
        match queue.batch(id) {
            Some(batch) => reply(
                StatusCode::OK,
                serde_json::to_value(&batch).unwrap_or(Value::Null),
            ),
            None => error(
                StatusCode::NOT_FOUND,
                format!(
                    "no batch {id} (the server keeps the last 10,000 and forgets them when it restarts)"
                ),
            ),
        }
    }
}

/// The cookie a browser keeps the token in after `?token=`.
const TOKEN_COOKIE: &str = "sluice_token";

fn same_token(given: &str, token: &str) -> bool {
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

fn query_token(request: &Request<Incoming>) -> Option<String> {
    request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(crate::ui::decode_segment)
    })
}

fn html(status: u16, body: &str) -> Reply {
    let mut response = text(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        "text/html; charset=utf-8",
        body.to_string(),
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
        ),
    );
    response
}

fn page(page: crate::ui::Page) -> Reply {
    html(page.status, &page.html)
}

fn static_file(path: &str) -> Option<Reply> {
    let (content_type, body) = match path {
        "/ui/style.css" => ("text/css; charset=utf-8", crate::ui::STYLE),
        "/ui/app.js" => ("text/javascript; charset=utf-8", crate::ui::SCRIPT),
        _ => return None,
    };
    let mut response = text(StatusCode::OK, content_type, body.to_string());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    Some(response)
}

fn ui_only() -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "this server shows the lake only (--ui-only): it takes no events",
    )
}

fn accepted_reply(batches: &[(String, uuid::Uuid, usize)], ignored: Vec<Value>) -> Reply {
    let accepted: usize = batches.iter().map(|(_, _, n)| n).sum();
    reply(
        StatusCode::ACCEPTED,
        json!({
            "accepted": accepted,
            "batches": batches
                .iter()
                .map(|(table, id, files)| json!({"id": id, "table": table, "files": files}))
                .collect::<Vec<_>>(),
            "ignored": ignored,
        }),
    )
}

fn refusal(refused: Refused) -> Reply {
    match refused {
        Refused::Full(n) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the queue is full ({n} files wait for runs; --max-queue): send it again later"
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        Refused::Stopping => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping: send it again once it is back",
        ),
        Refused::Log(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the event to the event log: {e}; nothing was accepted"),
        ),
    }
}

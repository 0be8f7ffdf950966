//! A fault-injecting HTTP proxy for an S3 server: point a client at [`FaultProxy::endpoint`]
//! and the proxy forwards each request to the real server, unless the [`FaultPlan`] draws a
//! fault for it.
//!
//! ```text
//!   client ──HTTP/1.1──► FaultProxy ──same bytes──► S3 server (cargo xtask services)
//!                          │ per request: kind (PUT, GET, HEAD, LIST, DELETE, multipart)
//!                          │ seeded draw: no fault, or one of
//!                          ├─ Error      answer 500/503 without forwarding
//!                          ├─ Ambiguous  forward (the server applies it), answer 500/503
//!                          ├─ Cut        forward, send part of the response, close the socket
//!                          └─ Latency    wait, then forward
//! ```
//!
//! Requests and responses are relayed byte for byte, headers included: the `Host` header the
//! client signed stays `127.0.0.1:<proxy port>`, and the server recomputes the AWS SigV4
//! signature from the headers it receives, so signatures stay valid. The proxy only parses
//! enough HTTP/1.1 (request line, `Content-Length`, chunked bodies, `Connection`,
//! `Expect: 100-continue`) to know where each message ends on a kept-alive connection.
//!
//! It runs on its own threads, so synchronous tests (that run the `sluice` binary) and async
//! tests can use it alike. Dropping the proxy stops accepting connections.
//!
//! ```no_run
//! use sluice_tests::fault_proxy::{FaultKind, FaultPlan, FaultProxy, RequestKind};
//!
//! let upstream = "127.0.0.1:9000".parse().unwrap();
//! let proxy = FaultProxy::start(upstream, FaultPlan::new(7, 0.05)).unwrap();
//! // Only ambiguous PUTs, at 20%:
//! proxy.set_plan(
//!     FaultPlan::new(7, 0.2)
//!         .with_faults(&[FaultKind::Ambiguous])
//!         .with_requests(&[RequestKind::Put]),
//! );
//! println!("{} faults so far", proxy.stats().faults());
//! ```

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// What an S3 request does, as the proxy classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `PUT` of an object (also a copy).
    Put,
    /// `GET` of an object (also a range).
    Get,
    /// `HEAD` of an object or a bucket.
    Head,
    /// `GET` of a bucket: a listing.
    List,
    /// `DELETE` of an object, or a bulk `POST ?delete`.
    Delete,
    /// Create, upload part, complete or abort of a multipart upload.
    Multipart,
}

impl RequestKind {
    /// Every kind, in the order [`FaultStats`] counts them.
    pub const ALL: [RequestKind; 6] = [
        RequestKind::Put,
        RequestKind::Get,
        RequestKind::Head,
        RequestKind::List,
        RequestKind::Delete,
        RequestKind::Multipart,
    ];

    /// The lower-case name used in plans and reports (`put`, `get`, …).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Put => "put",
            RequestKind::Get => "get",
            RequestKind::Head => "head",
            RequestKind::List => "list",
            RequestKind::Delete => "delete",
            RequestKind::Multipart => "multipart",
        }
    }

    /// The kind named `name` (as [`RequestKind::name`] spells it).
    pub fn parse(name: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Classifies a path-style S3 request from its method and target (`/bucket/key?query`).
    pub fn classify(method: &str, target: &str) -> RequestKind {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let has = |name: &str| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        };
        if has("uploads") || has("uploadId") {
            return RequestKind::Multipart;
        }
        let bucket_only = path.trim_matches('/').split('/').count() <= 1;
        match method {
            "GET" if has("list-type") || bucket_only => RequestKind::List,
            "GET" => RequestKind::Get,
            "HEAD" => RequestKind::Head,
            "DELETE" => RequestKind::Delete,
            "POST" if has("delete") => RequestKind::Delete,
            _ => RequestKind::Put,
        }
    }

    fn index(self) -> usize {
        RequestKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in ALL")
    }
}

/// What the proxy does to a request it picked for a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Answer `500 InternalError` or `503 SlowDown` without forwarding: nothing happened.
    Error,
    /// Forward the request (the server applies it), then answer `500`/`503` instead of the
    /// server's answer: the client cannot tell whether it happened.
    Ambiguous,
    /// Forward the request, send part of the response (half the body, or half the head when
    /// there is no body), then close the connection.
    Cut,
    /// Wait (up to [`FaultPlan::latency`]) before forwarding.
    Latency,
}

impl FaultKind {
    /// Every kind, in the order [`FaultStats`] counts them.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Error,
        FaultKind::Ambiguous,
        FaultKind::Cut,
        FaultKind::Latency,
    ];

    /// The lower-case name used in plans and reports (`error`, `ambiguous`, `cut`, `latency`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::Ambiguous => "ambiguous",
            FaultKind::Cut => "cut",
            FaultKind::Latency => "latency",
        }
    }

    /// The kind named `name` (as [`FaultKind::name`] spells it).
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn index(self) -> usize {
        FaultKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in ALL")
    }
}

/// Which requests get which faults, how often.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Seeds the proxy's random draws; the same seed and the same request order give the same
    /// faults.
    pub seed: u64,
    /// Probability that an eligible request gets a fault, in `[0, 1]`.
    pub rate: f64,
    /// The faults drawn from (uniformly) when a request gets one.
    pub faults: Vec<FaultKind>,
    /// The request kinds eligible for a fault.
    pub requests: Vec<RequestKind>,
    /// The longest delay a [`FaultKind::Latency`] fault adds (each draws a delay between half
    /// of it and all of it).
    pub latency: Duration,
}

impl FaultPlan {
    /// Every fault kind on every request kind at `rate`, with latency faults of up to 2 s.
    pub fn new(seed: u64, rate: f64) -> FaultPlan {
        FaultPlan {
            seed,
            rate: rate.clamp(0.0, 1.0),
            faults: FaultKind::ALL.to_vec(),
            requests: RequestKind::ALL.to_vec(),
            latency: Duration::from_secs(2),
        }
    }

    /// No faults at all: the proxy relays everything.
    pub fn none() -> FaultPlan {
        FaultPlan::new(0, 0.0)
    }

    /// Only these faults.
    pub fn with_faults(mut self, faults: &[FaultKind]) -> FaultPlan {
        self.faults = faults.to_vec();
        self
    }

    /// Only on these request kinds.
    pub fn with_requests(mut self, requests: &[RequestKind]) -> FaultPlan {
        self.requests = requests.to_vec();
        self
    }

    /// Latency faults of up to `latency`.
    pub fn with_latency(mut self, latency: Duration) -> FaultPlan {
        self.latency = latency;
        self
    }
}

/// What the proxy saw and did since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received, by [`RequestKind::ALL`] index.
    pub requests: [u64; 6],
    /// Faults injected, by request kind ([`RequestKind::ALL`]) and fault kind
    /// ([`FaultKind::ALL`]).
    pub injected: [[u64; 4]; 6],
}

impl FaultStats {
    /// All requests received.
    pub fn requests(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// All faults injected.
    pub fn faults(&self) -> u64 {
        self.injected.iter().flatten().sum()
    }

    /// Faults of one kind injected, over every request kind.
    pub fn faults_of(&self, fault: FaultKind) -> u64 {
        self.injected.iter().map(|row| row[fault.index()]).sum()
    }

    /// Faults injected into requests of one kind.
    pub fn faults_on(&self, request: RequestKind) -> u64 {
        self.injected[request.index()].iter().sum()
    }
}

impl fmt::Display for FaultStats {
    /// `12 faults in 340 requests (error 3, ambiguous 4, cut 5)`; kinds with none are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} faults in {} requests",
            self.faults(),
            self.requests()
        )?;
        let parts: Vec<String> = FaultKind::ALL
            .iter()
            .filter(|k| self.faults_of(**k) > 0)
            .map(|k| format!("{} {}", k.name(), self.faults_of(*k)))
            .collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// The plan, the random state and the counters, shared by every connection.
struct Shared {
    upstream: SocketAddr,
    stopping: AtomicBool,
    state: Mutex<State>,
}

struct State {
    plan: FaultPlan,
    rng: SplitMix64,
    stats: FaultStats,
    /// `METHOD /path` of every request, in arrival order (the query left out).
    seen: Vec<String>,
}

/// The fault drawn for one request.
#[derive(Clone, Copy, Debug)]
struct Draw {
    fault: Option<FaultKind>,
    /// 500 or 503, for error answers.
    status: u16,
    delay: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread leaves valid counters behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn draw(&self, kind: RequestKind) -> Draw {
        let mut state = self.lock();
        state.stats.requests[kind.index()] += 1;
        let State {
            plan, rng, stats, ..
        } = &mut *state;
        let eligible = plan.requests.contains(&kind) && !plan.faults.is_empty();
        // Every request draws the same number of values, so one request's kind does not shift
        // the faults of the ones after it.
        let hit = rng.next_f64() < plan.rate;
        let which = rng.next_u64();
        let status = if rng.next_u64() % 2 == 0 { 500 } else { 503 };
        let fraction = 0.5 + rng.next_f64() / 2.0;
        let fault =
            (eligible && hit).then(|| plan.faults[(which % plan.faults.len() as u64) as usize]);
        if let Some(fault) = fault {
            stats.injected[kind.index()][fault.index()] += 1;
        }
        Draw {
            fault,
            status,
            delay: plan.latency.mul_f64(fraction),
        }
    }
}

/// A running fault-injecting proxy on `127.0.0.1`.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listens on a free port of `127.0.0.1` and relays to `upstream` under `plan`.
    pub fn start(upstream: SocketAddr, plan: FaultPlan) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            stopping: AtomicBool::new(false),
            state: Mutex::new(State {
                rng: SplitMix64(plan.seed),
                plan,
                stats: FaultStats::default(),
                seen: Vec::new(),
            }),
        });
        let accept_shared = shared.clone();
        thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(FaultProxy { addr, shared })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the S3 endpoint to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the plan for the requests that arrive from now on; the random state is
    /// re-seeded from the new plan's seed.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut state = self.shared.lock();
        state.rng = SplitMix64(plan.seed);
        state.plan = plan;
    }

    /// Counters since the proxy started.
    pub fn stats(&self) -> FaultStats {
        self.shared.lock().stats.clone()
    }

    /// `METHOD /path` of every request relayed since the proxy started, oldest first: with
    /// [`FaultPlan::none`] the proxy is a recorder of what a client sent (to any HTTP server).
    pub fn requests_seen(&self) -> Vec<String> {
        self.shared.lock().seen.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let shared = shared.clone();
        let _ = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                // An error only ends this connection, as a dropped connection would.
                let _ = relay_connection(client, &shared);
            });
    }
}

/// How long the proxy waits on a silent peer before it gives the connection up.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Relays requests of one client connection until either side closes it or a cut fault ends it.
fn relay_connection(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_nodelay(true)?;
    let mut client_writer = client.try_clone()?;
    let mut client_reader = BufReader::new(client);
    let mut upstream: Option<Upstream> = None;
    loop {
        let Some(request) = read_request(&mut client_reader, &mut client_writer)? else {
            return Ok(());
        };
        let kind = RequestKind::classify(&request.method, &request.target);
        {
            let path = request.target.split('?').next().unwrap_or_default();
            shared
                .lock()
                .seen
                .push(format!("{} {path}", request.method));
        }
        let draw = shared.draw(kind);
        let error_answer = || error_response(draw.status, request.method == "HEAD");
        match draw.fault {
            Some(FaultKind::Error) => {
                client_writer.write_all(&error_answer())?;
            }
            Some(FaultKind::Ambiguous) => {
                let response = forward(&mut upstream, shared.upstream, &request)?;
                client_writer.write_all(&error_answer())?;
                if response.close {
                    upstream = None;
                }
            }
            Some(FaultKind::Cut) => {
                let response = forward(&mut upstream, shared.upstream, &request)?;
                let cut_at = if response.body_len > 0 {
                    response.head_len + response.body_len / 2
                } else {
                    response.head_len / 2
                };
                client_writer.write_all(&response.bytes[..cut_at])?;
                client_writer.flush()?;
                let _ = client_writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(FaultKind::Latency) | None => {
                if draw.fault.is_some() {
                    thread::sleep(draw.delay);
                }
                let response = forward(&mut upstream, shared.upstream, &request)?;
                client_writer.write_all(&response.bytes)?;
                if response.close {
                    client_writer.flush()?;
                    let _ = client_writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
        }
        client_writer.flush()?;
        if request.close {
            let _ = client_writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// An S3 error document with the given status, as a complete HTTP response.
fn error_response(status: u16, head_only: bool) -> Vec<u8> {
    let (reason, code) = match status {
        503 => ("Service Unavailable", "SlowDown"),
        _ => ("Internal Server Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>fault injected by the test proxy</Message></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n",
        if head_only { 0 } else { body.len() }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// One request as received: its bytes and what the proxy needs to know about it.
struct Request {
    method: String,
    target: String,
    bytes: Vec<u8>,
    close: bool,
}

/// One response as received from the server.
struct Response {
    bytes: Vec<u8>,
    head_len: usize,
    body_len: usize,
    close: bool,
}

/// A connection to the server, opened when the first request of a client connection is
/// forwarded and again after the server closed it.
struct Upstream {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

fn forward(
    upstream: &mut Option<Upstream>,
    addr: SocketAddr,
    request: &Request,
) -> io::Result<Response> {
    // A kept-alive connection the server has closed in the meantime fails on first use; the
    // request is then sent once more on a fresh one (nothing reached the server).
    for fresh in [false, true] {
        if fresh || upstream.is_none() {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_nodelay(true)?;
            *upstream = Some(Upstream {
                writer: stream.try_clone()?,
                reader: BufReader::new(stream),
            });
        }
        let conn = upstream.as_mut().expect("connected above");
        let sent = conn
            .writer
            .write_all(&request.bytes)
            .and_then(|()| conn.writer.flush());
        let result = sent.and_then(|()| read_response(&mut conn.reader, &request.method));
        match result {
            Ok(Some(response)) => {
                if response.close {
                    *upstream = None;
                }
                return Ok(response);
            }
            Ok(None) if !fresh => continue,
            Err(e) if !fresh && is_stale(&e) => continue,
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection without answering",
                ));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its second pass")
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// The head of a message: its raw lines and the parsed start line and headers.
struct Head {
    bytes: Vec<u8>,
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        self.header("content-length")
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad content-length {v:?}")))
            })
            .transpose()
    }

    fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads a message head; `None` when the peer closed the connection before sending anything.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut bytes = Vec::new();
    let mut start = String::new();
    let mut headers = Vec::new();
    loop {
        let before = bytes.len();
        let n = reader.read_until(b'\n', &mut bytes)?;
        if n == 0 {
            if bytes.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        let line = String::from_utf8_lossy(&bytes[before..]);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if start.is_empty() {
                // Stray blank line between messages.
                bytes.clear();
                continue;
            }
            return Ok(Some(Head {
                bytes,
                start,
                headers,
            }));
        }
        if start.is_empty() {
            start = line.to_string();
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// Reads a body framed by `Content-Length` or chunked encoding, appending its raw bytes.
fn read_framed_body(reader: &mut impl BufRead, head: &Head, out: &mut Vec<u8>) -> io::Result<()> {
    if head.is_chunked() {
        loop {
            let before = out.len();
            if reader.read_until(b'\n', out)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
            let line = String::from_utf8_lossy(&out[before..]).to_string();
            let size_text = line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let before = out.len();
                    if reader.read_until(b'\n', out)? == 0 {
                        return Ok(());
                    }
                    if out[before..].iter().all(|b| *b == b'\r' || *b == b'\n') {
                        return Ok(());
                    }
                }
            }
            read_exact_append(reader, size + 2, out)?;
        }
    } else if let Some(length) = head.content_length()? {
        read_exact_append(reader, length, out)
    } else {
        Ok(())
    }
}

fn read_exact_append(reader: &mut impl Read, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    out.resize(start + n, 0);
    reader.read_exact(&mut out[start..])
}

/// Reads one request from the client; answers `Expect: 100-continue` itself so that the body
/// arrives before the request is forwarded.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> io::Result<Option<Request>> {
    let Some(head) = read_head(reader)? else {
        return Ok(None);
    };
    let mut parts = head.start.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    if head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let close = head.wants_close();
    let mut bytes = head.bytes.clone();
    read_framed_body(reader, &head, &mut bytes)?;
    Ok(Some(Request {
        method,
        target,
        bytes,
        close,
    }))
}

/// Reads one final response (skipping interim `1xx` ones); `None` when the server closed the
/// connection before answering.
fn read_response(reader: &mut BufReader<TcpStream>, method: &str) -> io::Result<Option<Response>> {
    let head = loop {
        let Some(head) = read_head(reader)? else {
            return Ok(None);
        };
        let status = status_of(&head)?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break head;
    };
    let status = status_of(&head)?;
    let head_len = head.bytes.len();
    let mut bytes = head.bytes.clone();
    let mut close = head.wants_close();
    let no_body = method == "HEAD" || status == 204 || status == 304;
    if !no_body {
        if head.is_chunked() || head.content_length()?.is_some() {
            read_framed_body(reader, &head, &mut bytes)?;
        } else {
            // Delimited by the end of the connection.
            reader.read_to_end(&mut bytes)?;
            close = true;
        }
    }
    let body_len = bytes.len() - head_len;
    Ok(Some(Response {
        bytes,
        head_len,
        body_len,
        close,
    }))
}

fn status_of(head: &Head) -> io::Result<u16> {
    head.start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {:?}", head.start)))
}

/// SplitMix64: a small, fast, seedable generator; plenty for drawing faults.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_query() {
        let k = RequestKind::classify;
        assert_eq!(k("PUT", "/warehouse/t/data/a.parquet"), RequestKind::Put);
        assert_eq!(k("GET", "/warehouse/t/data/a.parquet"), RequestKind::Get);
        assert_eq!(k("HEAD", "/warehouse/t/a"), RequestKind::Head);
        assert_eq!(k("GET", "/raw?list-type=2&prefix=x%2F"), RequestKind::List);
        assert_eq!(k("GET", "/raw/"), RequestKind::List);
        assert_eq!(k("DELETE", "/warehouse/t/a"), RequestKind::Delete);
        assert_eq!(k("POST", "/warehouse?delete"), RequestKind::Delete);
        assert_eq!(k("POST", "/warehouse/big?uploads"), RequestKind::Multipart);
        assert_eq!(
            k("PUT", "/warehouse/big?partNumber=2&uploadId=abc"),
            RequestKind::Multipart
        );
        assert_eq!(
            k("DELETE", "/warehouse/big?uploadId=abc"),
            RequestKind::Multipart
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in RequestKind::ALL {
            assert_eq!(RequestKind::parse(kind.name()), Some(kind));
        }
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(FaultKind::parse("flaky"), None);
    }

    /// A one-connection HTTP server that answers every request with its own method and target,
    /// counting them.
    fn echo_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let conn = conn.unwrap();
                let log = log.clone();
                thread::spawn(move || {
                    let mut writer = conn.try_clone().unwrap();
                    let mut reader = BufReader::new(conn);
                    while let Ok(Some(request)) = read_request(&mut reader, &mut writer) {
                        let text = format!("{} {}", request.method, request.target);
                        log.lock().unwrap().push(text.clone());
                        let body = if request.method == "HEAD" {
                            String::new()
                        } else {
                            text.repeat(10)
                        };
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            if request.method == "HEAD" {
                                7
                            } else {
                                body.len()
                            }
                        );
                        if writer.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    /// Sends one request on `conn` and reads the answer: `(status, body)`, or `None` when the
    /// connection was cut.
    fn exchange(
        conn: &mut (TcpStream, BufReader<TcpStream>),
        method: &str,
        target: &str,
        body: &str,
    ) -> Option<(u16, Vec<u8>)> {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.0.write_all(request.as_bytes()).ok()?;
        let response = read_response(&mut conn.1, method).ok()??;
        let head = String::from_utf8_lossy(&response.bytes[..response.head_len]).to_string();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, response.bytes[response.head_len..].to_vec()))
    }

    fn connect(proxy: &FaultProxy) -> (TcpStream, BufReader<TcpStream>) {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (stream.try_clone().unwrap(), BufReader::new(stream))
    }

    #[test]
    fn without_faults_requests_and_answers_pass_unchanged_on_one_connection() {
        let (upstream, seen) = echo_server();
        let proxy = FaultProxy::start(upstream, FaultPlan::none()).unwrap();
        let mut conn = connect(&proxy);
        let (status, body) = exchange(&mut conn, "PUT", "/b/k", "payload").unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "PUT /b/k".repeat(10).into_bytes());
        let (status, body) = exchange(&mut conn, "HEAD", "/b/k", "").unwrap();
        assert_eq!((status, body.len()), (200, 0));
        let (status, _) = exchange(&mut conn, "GET", "/b?list-type=2", "").unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            *seen.lock().unwrap(),
            ["PUT /b/k", "HEAD /b/k", "GET /b?list-type=2"]
        );
        let stats = proxy.stats();
        assert_eq!(stats.requests(), 3);
        assert_eq!(stats.faults(), 0);
        assert_eq!(stats.requests[RequestKind::List.index()], 1);
    }

    #[test]
    fn an_error_fault_is_answered_without_reaching_the_server() {
        let (upstream, seen) = echo_server();
        let plan = FaultPlan::new(1, 1.0).with_faults(&[FaultKind::Error]);
        let proxy = FaultProxy::start(upstream, plan).unwrap();
        let mut conn = connect(&proxy);
        let (status, body) = exchange(&mut conn, "PUT", "/b/k", "x").unwrap();
        assert!(status == 500 || status == 503, "{status}");
        assert!(String::from_utf8_lossy(&body).contains("<Error>"));
        assert!(seen.lock().unwrap().is_empty(), "nothing was forwarded");
        // The connection stays usable.
        assert!(exchange(&mut conn, "GET", "/b/k", "").is_some());
        assert_eq!(proxy.stats().faults_of(FaultKind::Error), 2);
    }

    #[test]
    fn an_ambiguous_fault_reaches_the_server_but_answers_an_error() {
        let (upstream, seen) = echo_server();
        let plan = FaultPlan::new(1, 1.0)
            .with_faults(&[FaultKind::Ambiguous])
            .with_requests(&[RequestKind::Put]);
        let proxy = FaultProxy::start(upstream, plan).unwrap();
        let mut conn = connect(&proxy);
        let (status, _) = exchange(&mut conn, "PUT", "/b/k", "x").unwrap();
        assert!(status >= 500, "{status}");
        // Not eligible: passes.
        let (status, _) = exchange(&mut conn, "GET", "/b/k", "").unwrap();
        assert_eq!(status, 200);
        assert_eq!(*seen.lock().unwrap(), ["PUT /b/k", "GET /b/k"]);
        let stats = proxy.stats();
        assert_eq!(stats.faults_on(RequestKind::Put), 1);
        assert_eq!(stats.faults_on(RequestKind::Get), 0);
    }

    #[test]
    fn a_cut_fault_sends_part_of_the_answer_and_closes() {
        let (upstream, seen) = echo_server();
        let plan = FaultPlan::new(1, 1.0).with_faults(&[FaultKind::Cut]);
        let proxy = FaultProxy::start(upstream, plan).unwrap();
        let mut conn = connect(&proxy);
        conn.0
            .write_all(b"GET /b/k HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut received = Vec::new();
        conn.1.read_to_end(&mut received).unwrap();
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(body.len(), "GET /b/k".len() * 10 / 2, "half the body");
        assert_eq!(*seen.lock().unwrap(), ["GET /b/k"], "the server answered");
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let draws = |seed| {
            let (upstream, _) = echo_server();
            let proxy = FaultProxy::start(upstream, FaultPlan::new(seed, 0.3)).unwrap();
            (0..200)
                .map(|_| proxy.shared.draw(RequestKind::Get).fault)
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(42), draws(42));
        assert_ne!(draws(42), draws(43));
        let hits = draws(42).iter().filter(|d| d.is_some()).count();
        assert!((30..90).contains(&hits), "about 30% of 200: {hits}");
    }
}

//! sluice-serve: `sluice serve`, an HTTP server that starts Write-Audit-Publish runs when an
//! object store (S3, MinIO) or an upstream job says new files arrived, and reports what it does
//! as Prometheus metrics.
//!
//! Events are written to a log on disk before they are acknowledged and handled by the same
//! runs as `sluice run`: a file already in `main` is skipped, so duplicate, late and replayed
//! notifications publish each file once. Triggers (`[[trigger]]` in `sluice.toml`) say which
//! prefix feeds which table, with which checks, and how events are gathered into runs.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_serve::{ServeOptions, Server};
//! let config = sluice_wap::config::load(None)?;
//! let options = ServeOptions::new("127.0.0.1:8080".parse()?, config.dir.join(".sluice/events"));
//! let server = Server::open(&config.pipeline, config.triggers, options).await?;
//! let stop = sluice_wap::StopSignal::new();
//! server.serve(stop, sluice_wap::StopSignal::new()).await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod events;
mod http;
pub mod log;
pub mod metrics;
pub mod queue;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use http::Server;

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A non-loopback address without a token.
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could start runs. Set SLUICE_SERVE_TOKEN (clients then send `Authorization: Bearer <token>`), or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
    /// The event log cannot be opened.
    #[error("cannot open the event log in {dir}: {source}")]
    Log {
        /// Its directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The lake or the journal cannot be opened.
    #[error(transparent)]
    Pipeline(#[from] sluice_wap::Error),
}

/// A `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the server runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The bearer token clients must send (every route but `/healthz` and `/readyz`); required
    /// on an address that is not a loopback one.
    pub token: Option<String>,
    /// Runs in progress at once (each of a different table).
    pub max_concurrent_runs: usize,
    /// Files waiting in the queue at most; events beyond get `429`.
    pub max_queue: usize,
    /// The largest request body accepted; larger ones get `413`.
    pub max_body: usize,
    /// The event log's directory.
    pub queue_dir: PathBuf,
    /// Serve the read-only view of the lake only: no triggers, no event routes.
    pub ui_only: bool,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("max_queue", &self.max_queue)
            .field("max_body", &self.max_body)
            .field("queue_dir", &self.queue_dir)
            .field("ui_only", &self.ui_only)
            .finish()
    }
}

impl ServeOptions {
    /// Defaults: no token, 2 runs at once, 100,000 queued files, 1 MiB bodies.
    pub fn new(listen: SocketAddr, queue_dir: PathBuf) -> Self {
        ServeOptions {
            listen,
            token: None,
            max_concurrent_runs: 2,
            max_queue: 100_000,
            max_body: 1 << 20,
            queue_dir,
            ui_only: false,
        }
    }
}

pub(crate) type SharedMetrics = Arc<metrics::Metrics>;

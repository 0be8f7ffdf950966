use uuid::Uuid;

/// Errors returned by the transaction engine and the journal.
///
/// A failing step or hook is not an `Error`: it ends the transaction with an
/// [`Outcome`](crate::Outcome) that says what happened. An `Error` means the
/// engine itself could not do its job (storage unavailable, lease held, fenced).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store rejected or failed an operation. Usually retryable.
    #[error("journal storage failed to {operation} {path}: {source}")]
    Storage {
        /// What was being done (`append`, `read`, `list`).
        operation: &'static str,
        /// The object path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },

    /// The journal directory could not be opened.
    #[error("cannot open journal directory {path}: {reason}")]
    JournalDirectory {
        /// The directory.
        path: String,
        /// Why it failed.
        reason: String,
    },

    /// Another writer already wrote this sequence number of the stream.
    #[error(
        "journal stream {stream} already has a record at sequence {seq}; another process wrote to it concurrently"
    )]
    AppendConflict {
        /// The stream (e.g. `runs/<id>`).
        stream: String,
        /// The sequence number that was taken.
        seq: u64,
    },

    /// A record could not be encoded or decoded.
    #[error("cannot encode or decode journal record of {stream}: {source}")]
    Serde {
        /// The stream involved.
        stream: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A caller-supplied value (parameters, outputs, payloads) could not be serialised.
    #[error("cannot serialise {what}: {source}")]
    Payload {
        /// What was being serialised.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// The lease on a key is held by a live process (or one on another host, whose lease has
    /// not expired yet) and the run was configured to fail instead of waiting.
    #[error(
        "transaction key {key} is being run by another process ({holder}, lease token {token}), which holds it until {expires_at} unless it renews the lease"
    )]
    LeaseHeld {
        /// The transaction key.
        key: String,
        /// The holder's identity (`host:pid:nonce`).
        holder: String,
        /// The holder's fencing token.
        token: u64,
        /// When the holder's lease expires unless renewed.
        expires_at: chrono::DateTime<chrono::Utc>,
    },

    /// Waiting for a key's lease took longer than the configured limit.
    #[error("gave up waiting for the lease on transaction key {key} after {waited_ms} ms")]
    LeaseWaitTimeout {
        /// The transaction key.
        key: String,
        /// How long the engine waited.
        waited_ms: u64,
    },

    /// This process lost its lease: another process took it over after it expired and
    /// fenced this run. Nothing this run writes afterwards is accepted.
    #[error(
        "run {run_id} was fenced by {by} with token {token} (ours was {ours}); its lease expired and another process took over"
    )]
    Fenced {
        /// The fenced run.
        run_id: Uuid,
        /// Our (stale) fencing token.
        ours: u64,
        /// The newer token.
        token: u64,
        /// Who fenced the run.
        by: String,
    },

    /// No run with this id is in the journal.
    #[error("run {run_id} not found in the journal")]
    RunNotFound {
        /// The requested run id.
        run_id: Uuid,
    },

    /// The run's journal stream is not usable (it has no start record).
    #[error("run journal {stream} is unusable: {reason}")]
    CorruptRun {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Storage { .. } | Error::LeaseHeld { .. } | Error::LeaseWaitTimeout { .. }
        )
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of sluice-lake.

use crate::refs::RefName;

/// What went wrong, with the table, ref, file or snapshot it happened to.
///
/// [`Error::is_retryable`] tells which errors a caller may retry as they are
/// (operations of [`crate::Lake`] already retry commit conflicts on fresh metadata).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table does not exist in the catalog.
    #[error("table {table} does not exist")]
    TableNotFound {
        /// `namespace.table`
        table: String,
    },
    /// The namespace does not exist in the catalog.
    #[error("namespace {namespace} does not exist")]
    NamespaceNotFound {
        /// The namespace, dot-separated.
        namespace: String,
    },
    /// A table with that name already exists.
    #[error("table {table} already exists")]
    TableAlreadyExists {
        /// `namespace.table`
        table: String,
    },
    /// A table name is malformed.
    #[error("invalid table name `{name}`: {reason}")]
    InvalidTableName {
        /// The name as given.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The branch does not exist.
    #[error("branch `{branch}` does not exist in table {table}")]
    BranchNotFound {
        /// `namespace.table`
        table: String,
        /// The branch name.
        branch: String,
    },
    /// A ref (branch, tag, snapshot id, `ref@time`) does not resolve.
    #[error("ref `{reference}` does not resolve in table {table}: {reason}")]
    RefNotFound {
        /// `namespace.table`
        table: String,
        /// The ref as written.
        reference: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// A branch or tag with that name already exists.
    #[error("ref `{name}` already exists in table {table}; delete it first or choose another name")]
    RefAlreadyExists {
        /// `namespace.table`
        table: String,
        /// The ref name.
        name: RefName,
    },
    /// A branch or tag name breaks the naming rules.
    #[error("invalid ref name `{name}`: {reason}")]
    InvalidRefName {
        /// The name as given (control characters escaped).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A branch was named where a tag is needed, or a tag where a branch is needed.
    #[error("`{name}` in table {table} is a {found}, not a {expected}; it was left unchanged")]
    WrongRefKind {
        /// `namespace.table`
        table: String,
        /// The ref name.
        name: String,
        /// The kind the operation acts on.
        expected: crate::refs::RefKind,
        /// The kind the ref is.
        found: crate::refs::RefKind,
    },
    /// The operation is not allowed on this ref (e.g. deleting `main`).
    #[error("{message}")]
    RefNotAllowed {
        /// What is not allowed and why.
        message: String,
    },
    /// Another writer changed the table between our read and our commit.
    #[error("commit conflict on table {table}: {reason}")]
    CommitConflict {
        /// `namespace.table`
        table: String,
        /// What the catalog reported (e.g. which ref moved).
        reason: String,
    },
    /// Conflicts kept happening after every retry.
    #[error(
        "gave up committing to {table} after {attempts} attempts in {seconds} s because other writers kept changing it (last: {last}); run it again, or give this table fewer writers or larger batches"
    )]
    TooManyConflicts {
        /// `namespace.table`
        table: String,
        /// How many attempts were made.
        attempts: u32,
        /// Seconds from the first attempt to giving up.
        seconds: u64,
        /// The last conflict.
        last: String,
    },
    /// A snapshot between the fork point and the source head is not a pure append.
    #[error(
        "cannot rebase {table} branch `{branch}`: snapshot {snapshot} is a `{operation}`, and only appends can be re-applied on a moved target; publish it by hand or recreate the branch from the new target"
    )]
    NotAnAppend {
        /// `namespace.table`
        table: String,
        /// The branch being rebased.
        branch: String,
        /// The offending snapshot.
        snapshot: i64,
        /// Its operation.
        operation: String,
    },
    /// The target cannot be rebased onto (e.g. it rewrote data since the fork point).
    #[error("cannot publish {table} `{source_ref}` into `{target}`: {reason}")]
    CannotPublish {
        /// `namespace.table`
        table: String,
        /// The source branch.
        source_ref: String,
        /// The target branch.
        target: String,
        /// Why.
        reason: String,
    },
    /// A data file is corrupt, truncated or not parquet.
    #[error("cannot read {path}: {reason}")]
    CorruptFile {
        /// The file's location.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file's schema does not match the table's schema.
    #[error("schema of {path} does not match table {table}: {diff}")]
    SchemaMismatch {
        /// `namespace.table`
        table: String,
        /// The file's location (or `<input>` for in-memory batches).
        path: String,
        /// A readable description of the differences.
        diff: String,
    },
    /// Register mode: a file stores a column otherwise than the table does (a narrower
    /// integer, nanosecond timestamps), and registered files are read as they are.
    #[error(
        "{path} cannot be registered in table {table}: {difference}; copy mode converts it{producer_advice}",
        producer_advice = microseconds_advice(*.nanoseconds)
    )]
    StoredDifferently {
        /// The source file.
        path: String,
        /// `namespace.table`
        table: String,
        /// The column and how the file and the table store it.
        difference: String,
        /// Whether the file holds nanosecond timestamps (pandas' and Spark's INT96 default).
        nanoseconds: bool,
    },
    /// Columns of a source file have types Iceberg cannot store.
    #[error("{path} has columns Iceberg cannot store: {problems}")]
    UnsupportedColumns {
        /// The file's location (or what else the schema came from).
        path: String,
        /// Every offending column with its type and what to use instead.
        problems: String,
    },
    /// sluice cannot write to this table (a format version or partition transform sluice
    /// does not write).
    #[error("cannot write to table {table}: {reason}")]
    UnsupportedTable {
        /// `namespace.table`
        table: String,
        /// What about the table is not supported.
        reason: String,
    },
    /// A partition spec (`--partition-by`) that does not parse or does not fit the table.
    #[error("invalid partition spec `{spec}`: {reason}")]
    InvalidPartitionSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong, naming the term.
        reason: String,
    },
    /// The partition spec asked for is not the table's.
    #[error(
        "table {table} is partitioned by {existing}, not by {requested}; drop the partition spec to write with the table's own, or choose another table"
    )]
    PartitionSpecDiffers {
        /// `namespace.table`
        table: String,
        /// The table's current spec.
        existing: String,
        /// The spec asked for.
        requested: String,
    },
    /// Register mode: a file's rows fall into more than one partition (or its statistics
    /// cannot prove they fall into one).
    #[error(
        "{path} cannot be registered in table {table}: {reason}; copy mode splits its rows by partition"
    )]
    SpansPartitions {
        /// The source file.
        path: String,
        /// `namespace.table`
        table: String,
        /// The partition field and the values seen.
        reason: String,
    },
    /// A column does not exist.
    #[error("column `{column}` does not exist in table {table}")]
    ColumnNotFound {
        /// `namespace.table`
        table: String,
        /// The column name.
        column: String,
    },
    /// A location is not a usable URL or path.
    #[error("invalid location `{location}`: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The table's ingest ledger (the record of the source files `main` holds) cannot be read.
    #[error(
        "the ingest ledger of {table} at {location} cannot be read: {reason}. Nothing is ingested into this table until it can be, so that no source file is published twice; restore the file, or remove the table property `sluice.ingest-ledger` to rebuild the ledger from the snapshots the table still has (files published only in expired snapshots would then be ingested again)"
    )]
    LedgerUnreadable {
        /// The table.
        table: String,
        /// The ledger file.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An ingest was asked to stop ([`crate::ingest::IngestOptions::stop`]) before it
    /// finished; what it wrote was deleted.
    #[error("writing to table {table} was stopped, as asked; what it wrote was deleted")]
    Stopped {
        /// The table.
        table: String,
    },
    /// A worker of an ingest stopped without an answer (it panicked or was cancelled).
    #[error("a worker writing to table {table} stopped: {reason}")]
    WorkerFailed {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
    /// A compaction cannot run or did not keep the rows as they were.
    #[error("cannot compact table {table}: {reason}")]
    Compaction {
        /// `namespace.table`
        table: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Configuration is incomplete or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Object storage failed.
    #[error("storage error at {location}: {source}")]
    Storage {
        /// The location being accessed.
        location: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// The catalog failed.
    #[error("catalog error{}: {message}", table.as_ref().map(|t| format!(" on {t}")).unwrap_or_default())]
    Catalog {
        /// The table, when the error is about one.
        table: Option<String>,
        /// What the catalog said.
        message: String,
        /// Whether retrying the same call may succeed (network errors, 5xx).
        retryable: bool,
    },
    /// The table's metadata lies outside the configured warehouse and is gone: the lake was
    /// moved or copied, and Iceberg metadata records absolute locations.
    #[error(
        "table {table} cannot be read: its metadata file {metadata} is missing and lies outside the warehouse {warehouse}; Iceberg metadata records absolute paths, so a lake directory that was moved or copied must be moved back to where it was created (see docs/lake.md, \"Moving a lake\")"
    )]
    LakeMoved {
        /// `namespace.table`
        table: String,
        /// Where the catalog says the metadata is.
        metadata: String,
        /// The warehouse of the configuration in use.
        warehouse: String,
    },
    /// An error from the iceberg library.
    #[error("{}", iceberg_text(.0))]
    Iceberg(#[from] iceberg::Error),
    /// An error from the parquet library.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An error from the arrow library.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl Error {
    /// Whether repeating the same operation may succeed without any change by the caller.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::CommitConflict { .. } => true,
            Error::Catalog { retryable, .. } => *retryable,
            Error::Iceberg(e) => e.retryable(),
            Error::Storage { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            _ => false,
        }
    }
}

/// How producers write microsecond timestamps, for files that hold nanoseconds.
fn microseconds_advice(nanoseconds: bool) -> &'static str {
    if nanoseconds {
        ", or the producer can write microseconds (pandas: df.to_parquet(path, \
         coerce_timestamps=\"us\"); Spark: spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS)"
    } else {
        ""
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An iceberg error as a sentence: its message, then each cause not already part of the text.
/// (iceberg's own `Display` shows the kind's Rust name and `=>`, and repeats causes that the
/// message already quotes.)
pub(crate) fn iceberg_text(e: &iceberg::Error) -> String {
    let mut text = e.message().to_string();
    if text.is_empty() {
        text = "the iceberg library failed".to_string();
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

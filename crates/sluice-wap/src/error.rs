//! The one error type of sluice-wap.

/// What went wrong in the pipeline outside the data itself (a failed audit is not an error:
/// it is a verdict, reported as [`crate::RunStatus::AuditFailed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lakehouse layer failed.
    #[error(transparent)]
    Lake(#[from] sluice_lake::Error),
    /// The transaction engine failed (journal unreachable, lease held, …).
    #[error(transparent)]
    Txn(#[from] sluice_txn::Error),
    /// The checks file is invalid.
    #[error(transparent)]
    Checks(#[from] sluice_checks::Error),
    /// `on_fail = "quarantine"` cannot be honoured by this run (checked before anything is
    /// written).
    #[error("cannot quarantine rows into {quarantine}: {reason}")]
    Quarantine {
        /// The quarantine table.
        quarantine: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A `sql` check's query is not a query sluice can run (checked before anything is
    /// written).
    #[error("check `{check}` (sql): {message}")]
    InvalidSqlCheck {
        /// The check's name.
        check: String,
        /// The parser's message, with its line and column.
        message: String,
    },
    /// A `sql` check's query could not read the lake (storage, catalog).
    #[error("check `{check}` (sql): {source}")]
    SqlCheckRead {
        /// The check's name.
        check: String,
        /// What failed.
        source: Box<sluice_lake::Error>,
    },
    /// The source cannot be listed.
    #[error("cannot list the source {source_url}: {reason}")]
    Source {
        /// The source as given.
        source_url: String,
        /// Why.
        reason: String,
    },
    /// The source given is not one a run can read: a path that does not exist, a local file
    /// that is not parquet.
    #[error("the source {source_url} {reason}")]
    InvalidSource {
        /// The source as given.
        source_url: String,
        /// What is wrong with it, and what to give instead.
        reason: String,
    },
    /// Incoming files do not fit the table and the schema may not change.
    #[error("{0}")]
    SchemaDrift(String),
    /// The run was asked to stop ([`crate::RunOptions::cancel`]) before it published.
    #[error("stopped before publishing, as asked")]
    Interrupted,
    /// `sluice.toml` cannot be read or is not valid.
    #[error("{0}")]
    Config(String),
    /// Arrow failed (projection of schemas).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of this crate.

use std::path::PathBuf;

/// Errors returned by sluice-checks.
///
/// Problems of a single check while evaluating (an unknown column, a column of the wrong type, an
/// expression that overflows) are not errors of this type: they are recorded in the
/// [`AuditReport`](crate::AuditReport) as a check with status `error`, so that one bad check never
/// hides the verdict of the others. None of these errors is retryable: each one needs a change to
/// the check file or to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The check file is not valid TOML, or a check in it is malformed.
    #[error("invalid check file{}: {message} (line {line}, column {column})", display_source(.source_name))]
    InvalidConfig {
        /// The file the text came from, when it came from a file.
        source_name: Option<PathBuf>,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// What is wrong and, where possible, what is expected instead.
        message: String,
    },

    /// A `where` filter or an `expression` check could not be parsed.
    #[error("cannot parse expression `{text}` at character {position}: {message}")]
    InvalidExpression {
        /// The expression text.
        text: String,
        /// 0-based character offset of the problem inside `text`.
        position: usize,
        /// What was expected.
        message: String,
    },

    /// The check file could not be read.
    #[error("cannot read check file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A record batch handed to the evaluator lacks a column that a pending check reads.
    /// Read the columns listed by [`Evaluator::required_columns`](crate::Evaluator::required_columns).
    #[error(
        "record batch has no column `{column}`, which check `{check}` reads; \
         read at least the columns listed by Evaluator::required_columns"
    )]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The check that reads it.
        check: String,
    },

    /// A record batch's column has a different type than the schema the evaluator was built for.
    #[error(
        "column `{column}` of the record batch is {actual}, but the evaluator was built for {expected}"
    )]
    ColumnTypeChanged {
        /// The column.
        column: String,
        /// The type in the schema given to [`CheckSuite::evaluator`](crate::CheckSuite::evaluator).
        expected: String,
        /// The type found in the batch.
        actual: String,
    },

    /// Statistics were applied after data had already been fed to the evaluator; they would
    /// count the same rows twice.
    #[error("statistics must be applied before the first record batch is fed to the evaluator")]
    StatsAfterData,

    /// The rows quarantining checks rejected could not be separated from the others.
    #[error("cannot set the rejected rows aside: {0}")]
    SetAside(String),

    /// Two evaluators built from different suites or schemas cannot be merged.
    #[error("cannot merge evaluators built for different check suites or schemas")]
    MergeMismatch,
}

fn display_source(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

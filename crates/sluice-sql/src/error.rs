//! Errors of SQL over a lake, worded for the people who wrote the query.

use datafusion::error::DataFusionError;

/// What went wrong with a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A table or ref the query names could not be read (not found, bad name, storage).
    #[error(transparent)]
    Lake(#[from] sluice_lake::Error),

    /// The text is not SQL the engine understands.
    #[error("the SQL does not parse: {message}")]
    Parse {
        /// The parser's message, with the line and column it stopped at.
        message: String,
    },

    /// The SQL parses but cannot be planned or run (unknown column, wrong types, ...).
    #[error("{message}")]
    Query {
        /// What the engine said, without its internal prefixes.
        message: String,
    },

    /// The statement is not a read-only query.
    #[error("only queries can run here (SELECT, WITH, VALUES, EXPLAIN); {statement} is refused")]
    NotAQuery {
        /// The kind of statement found.
        statement: String,
    },
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<DataFusionError> for Error {
    fn from(error: DataFusionError) -> Self {
        let root = error.find_root();
        match root {
            DataFusionError::SQL(parser, _) => Error::Parse {
                message: parser
                    .to_string()
                    .trim_start_matches("sql parser error: ")
                    .to_string(),
            },
            DataFusionError::External(inner) => match inner.downcast_ref::<sluice_lake::Error>() {
                Some(_) => match error_into_lake(error) {
                    Ok(lake) => Error::Lake(lake),
                    Err(message) => Error::Query { message },
                },
                None => Error::Query {
                    message: inner.to_string(),
                },
            },
            other => Error::Query {
                message: strip(&other.message()),
            },
        }
    }
}

/// Takes a lake error back out of the DataFusion error that carried it through the engine.
fn error_into_lake(error: DataFusionError) -> std::result::Result<sluice_lake::Error, String> {
    let message = error.find_root().message().to_string();
    let mut current = error;
    loop {
        current = match current {
            DataFusionError::External(inner) => {
                return inner
                    .downcast::<sluice_lake::Error>()
                    .map(|e| *e)
                    .map_err(|_| message);
            }
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => *inner,
            DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => inner,
                Err(_) => return Err(message),
            },
            DataFusionError::Collection(mut errors) if !errors.is_empty() => errors.remove(0),
            _ => return Err(message),
        };
    }
}

/// The message without a backtrace.
fn strip(message: &str) -> String {
    message
        .split(DataFusionError::BACK_TRACE_SEP)
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Carries a lake error through DataFusion, from which [`Error::from`] takes it back out.
pub(crate) fn external(error: impl Into<sluice_lake::Error>) -> DataFusionError {
    DataFusionError::External(Box::new(error.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lake_error_comes_back_out_unchanged() {
        let lake = sluice_lake::Error::TableNotFound {
            table: "analytics.events".to_string(),
        };
        let wrapped = external(lake).context("while planning");
        match Error::from(wrapped) {
            Error::Lake(sluice_lake::Error::TableNotFound { table }) => {
                assert_eq!(table, "analytics.events")
            }
            other => panic!("expected the lake error, got {other:?}"),
        }
    }

    #[test]
    fn a_plan_error_loses_its_prefix() {
        let error = Error::from(DataFusionError::Plan("no field named x".to_string()));
        assert_eq!(error.to_string(), "no field named x");
    }
}

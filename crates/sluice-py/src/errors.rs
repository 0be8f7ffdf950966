//! Errors as the exceptions of `sluice._errors`, with the messages the `sluice` command prints
//! (without its command hints).

use pyo3::prelude::*;

/// The exception classes a failure maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `sluice.NotFound`: a table, namespace, ref, column or run that does not exist.
    NotFound,
    /// `sluice.ConflictError`: another writer got there first, or the name is taken.
    Conflict,
    /// `sluice.InvalidInput`: a bad name, file, schema, spec or checks file.
    InvalidInput,
    /// `sluice.SluiceError`: anything else.
    Other,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::NotFound => "NotFound",
            Kind::Conflict => "ConflictError",
            Kind::InvalidInput => "InvalidInput",
            Kind::Other => "SluiceError",
        }
    }
}

fn lake_kind(error: &sluice_lake::Error) -> Kind {
    use sluice_lake::Error as E;
    match error {
        E::TableNotFound { .. }
        | E::NamespaceNotFound { .. }
        | E::BranchNotFound { .. }
        | E::RefNotFound { .. }
        | E::ColumnNotFound { .. } => Kind::NotFound,
        E::CommitConflict { .. }
        | E::TooManyConflicts { .. }
        | E::CannotPublish { .. }
        | E::NotAnAppend { .. }
        | E::RefAlreadyExists { .. }
        | E::TableAlreadyExists { .. } => Kind::Conflict,
        E::InvalidRefName { .. }
        | E::InvalidTableName { .. }
        | E::InvalidPartitionSpec { .. }
        | E::PartitionSpecDiffers { .. }
        | E::SchemaMismatch { .. }
        | E::StoredDifferently { .. }
        | E::UnsupportedColumns { .. }
        | E::UnsupportedTable { .. }
        | E::SpansPartitions { .. }
        | E::CorruptFile { .. }
        | E::WrongRefKind { .. }
        | E::RefNotAllowed { .. } => Kind::InvalidInput,
        _ => Kind::Other,
    }
}

/// The kind of a pipeline error.
pub(crate) fn wap_kind(error: &sluice_wap::Error) -> Kind {
    use sluice_wap::Error as E;
    match error {
        E::Lake(e) => lake_kind(e),
        E::Checks(_) | E::SchemaDrift(_) | E::InvalidSource { .. } | E::Config(_) => {
            Kind::InvalidInput
        }
        E::Txn(sluice_txn::Error::LeaseHeld { .. }) => Kind::Conflict,
        _ => Kind::Other,
    }
}

/// An error and its causes joined by `: `, each said once (libraries often repeat their
/// cause in their own message).
pub(crate) fn message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// A new exception of `kind` saying `text`.
pub(crate) fn exception(py: Python<'_>, kind: Kind, text: String) -> PyErr {
    match py
        .import("sluice._errors")
        .and_then(|m| m.getattr(kind.class_name()))
    {
        Ok(class) => PyErr::from_value(match class.call1((text.clone(),)) {
            Ok(instance) => instance,
            Err(e) => return e,
        }),
        Err(e) => e,
    }
}

/// A pipeline error as its exception.
pub(crate) fn from_wap(py: Python<'_>, error: sluice_wap::Error) -> PyErr {
    exception(py, wap_kind(&error), message(&error))
}

/// A lake error as its exception.
pub(crate) fn from_lake(py: Python<'_>, error: sluice_lake::Error) -> PyErr {
    exception(py, lake_kind(&error), message(&error))
}

/// A query error: a missing table or ref as the lake's, a query that does not parse or
/// cannot be planned as `InvalidInput`.
pub(crate) fn from_sql(py: Python<'_>, error: sluice_sql::Error) -> PyErr {
    match error {
        sluice_sql::Error::Lake(e) => from_lake(py, e),
        other => exception(py, Kind::InvalidInput, message(&other)),
    }
}

/// A checks file error as `InvalidInput`.
pub(crate) fn from_checks(py: Python<'_>, error: sluice_checks::Error) -> PyErr {
    exception(py, Kind::InvalidInput, message(&error))
}

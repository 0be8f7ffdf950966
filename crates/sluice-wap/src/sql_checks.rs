//! `sql` checks: queries that return the rows breaking a rule, run over the audited snapshot
//! after the one-pass checks.
//!
//! In a query, `{{ this }}` is the audited table at exactly the audited snapshot; a table named
//! without `@` is read at the audited branch where it has that branch (the tables of a job),
//! and at `main` otherwise. The queries are parsed before a run writes anything, so a query
//! that is not SQL fails the run at once, naming the check.

use futures::StreamExt;
use sluice_checks::{AuditReport, CheckResult, CheckSuite, QueryAnswer, samples_of};
use sluice_lake::{Lake, RefSpec, TableName};
use sluice_sql::{DefaultRef, LakeRef, SqlSession};

use crate::error::{Error, Result};

/// `query` with every `{{ this }}` (spaces inside the braces optional) replaced by `this`.
pub(crate) fn render(query: &str, this: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let inner = after.trim_start();
        let placeholder = inner
            .strip_prefix("this")
            .map(str::trim_start)
            .and_then(|tail| tail.strip_prefix("}}"));
        match placeholder {
            Some(tail) => {
                out.push_str(&rest[..start]);
                out.push_str(this);
                rest = tail;
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses the query of every `sql` check of `suite` (with `{{ this }}` as `table`): the first
/// that is not one read-only query is [`Error::InvalidSqlCheck`].
pub(crate) fn validate(lake: &Lake, suite: &CheckSuite, table: &TableName) -> Result<()> {
    let session = SqlSession::new(lake);
    let this = LakeRef {
        name: table.clone(),
        spec: None,
    }
    .to_sql();
    for def in suite.sql_checks() {
        let query = render(def.sql_query().unwrap_or_default(), &this);
        if let Err(e) = session.parse(&query) {
            return Err(Error::InvalidSqlCheck {
                check: def.name().to_string(),
                message: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Where a suite's `sql` checks look.
pub(crate) struct Audited<'a> {
    /// The audited table.
    pub table: &'a TableName,
    /// The audited snapshot (`None`: a table without snapshots).
    pub snapshot_id: Option<i64>,
    /// Where tables named without `@` are read.
    pub default_ref: DefaultRef,
    /// Failing rows kept per check.
    pub sample_size: usize,
}

/// Runs the `sql` checks of `suite` over `at` and puts their results in `report`, in place of
/// the `error` the one-pass evaluator gave them. A query that cannot be planned or run is that
/// check's `error`; a failure to read the lake (storage, catalog) is the run's error.
pub(crate) async fn run(
    lake: &Lake,
    suite: &CheckSuite,
    at: &Audited<'_>,
    report: &mut AuditReport,
) -> Result<()> {
    if suite.sql_checks().next().is_none() {
        return Ok(());
    }
    let session = SqlSession::new(lake).with_default_ref(at.default_ref.clone());
    let this = LakeRef {
        name: at.table.clone(),
        spec: Some(match at.snapshot_id {
            Some(id) => RefSpec::Snapshot(id),
            None => RefSpec::main(),
        }),
    }
    .to_sql();
    for def in suite.sql_checks() {
        let query = render(def.sql_query().unwrap_or_default(), &this);
        let answer = answer(&session, &query, at.sample_size)
            .await
            .map_err(|source| Error::SqlCheckRead {
                check: def.name().to_string(),
                source: Box::new(source),
            })?;
        let result = CheckResult::from_query(def, answer);
        match report.checks.iter_mut().find(|c| c.name == def.name()) {
            Some(slot) => *slot = result,
            None => report.checks.push(result),
        }
    }
    Ok(())
}

/// The rows `query` returns: how many, and the first `sample_size` as samples. `Err` only for
/// a failure to read the lake that is not the query's fault.
async fn answer(
    session: &SqlSession<'_>,
    query: &str,
    sample_size: usize,
) -> std::result::Result<QueryAnswer, sluice_lake::Error> {
    let failed = |e: sluice_sql::Error| match e {
        sluice_sql::Error::Lake(lake) if !names_something_missing(&lake) => Err(lake),
        other => Ok(QueryAnswer::Failed(other.to_string())),
    };
    let frame = match session.sql(query).await {
        Ok(frame) => frame,
        Err(e) => return failed(e),
    };
    let mut stream = match frame.execute_stream().await {
        Ok(stream) => stream,
        Err(e) => return failed(e.into()),
    };
    let mut failing = 0u64;
    let mut samples = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => return failed(e.into()),
        };
        let keep = sample_size
            .saturating_sub(samples.len())
            .min(batch.num_rows());
        if keep > 0 {
            samples.extend(samples_of(&batch, 0..keep));
        }
        failing += batch.num_rows() as u64;
    }
    Ok(QueryAnswer::Rows { failing, samples })
}

/// Whether a lake error says the query names something that is not there (the query's fault,
/// so the check's `error`), rather than that the lake could not be read.
fn names_something_missing(error: &sluice_lake::Error) -> bool {
    matches!(
        error,
        sluice_lake::Error::TableNotFound { .. }
            | sluice_lake::Error::NamespaceNotFound { .. }
            | sluice_lake::Error::RefNotFound { .. }
            | sluice_lake::Error::InvalidRefName { .. }
            | sluice_lake::Error::InvalidTableName { .. }
            | sluice_lake::Error::ColumnNotFound { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_is_replaced_with_or_without_spaces_and_nothing_else_is() {
        assert_eq!(
            render("SELECT * FROM {{ this }} WHERE x < 0", "\"ns.t@1\""),
            "SELECT * FROM \"ns.t@1\" WHERE x < 0"
        );
        assert_eq!(render("{{this}} {{  this  }}", "T"), "T T");
        assert_eq!(
            render("SELECT '{{ that }}' {{", "T"),
            "SELECT '{{ that }}' {{"
        );
        assert_eq!(render("no placeholder", "T"), "no placeholder");
    }
}

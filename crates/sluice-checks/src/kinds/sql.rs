//! `sql`: a query that returns the rows breaking a rule; the check passes when it returns
//! none. The query runs in the SQL engine of the caller (the pipeline runs it over the audited
//! ref, after the one-pass checks); this crate only reads it and turns its answer into a
//! result (see [`crate::CheckResult::from_query`]).

use arrow_schema::Schema as ArrowSchema;

use super::{Check, Input, Judge, Outcome};
use crate::config::{ConfigProblem, Fields};

/// `kind = "sql"`.
#[derive(Debug)]
pub(crate) struct Sql {
    query: String,
}

/// Why an evaluator reports a SQL check it was given as `error`: it cannot run queries.
pub(crate) const NOT_RUN: &str =
    "a `sql` check runs as a query over the audited ref, and this audit ran no queries";

impl Check for Sql {
    const NAME: &'static str = "sql";
    const FIELDS: &'static [&'static str] = &["query"];
    const ROW_LEVEL: bool = false;
    const READS_DATA: bool = false;
    type Bound = ();
    type State = ();

    fn parse(fields: &mut Fields) -> Result<Self, ConfigProblem> {
        let query: Option<String> = fields.take("query")?;
        match query {
            Some(q) if !q.trim().is_empty() => Ok(Sql { query: q }),
            _ => Err(
                "a `sql` check needs `query = \"SELECT ...\"`: a query returning the rows that \
                 break the rule (the check passes when it returns none)"
                    .into(),
            ),
        }
    }

    fn columns(&self) -> Vec<String> {
        Vec::new()
    }

    fn default_name(&self) -> String {
        Self::NAME.to_string()
    }

    fn sql_query(&self) -> Option<&str> {
        Some(&self.query)
    }

    /// Never bound by the one-pass evaluator: it reports the check as `error` unless the
    /// caller ran the query and replaced the result.
    fn bind(&self, _schema: &ArrowSchema) -> Result<(), String> {
        Err(NOT_RUN.to_string())
    }

    fn new_state(&self, _: &()) {}

    fn update(&self, _: &(), _: &mut (), _: &Input<'_>) -> Result<(), String> {
        Err(NOT_RUN.to_string())
    }

    fn merge(&self, _: &(), _: &mut (), _: (), _: usize) -> Result<(), String> {
        Ok(())
    }

    fn finish(&self, _: &(), _: (), _: &Judge) -> Outcome {
        Outcome {
            passed: false,
            message: NOT_RUN.to_string(),
            ..Outcome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field};

    use crate::{CheckResult, CheckSuite, EvalOptions, Evidence, QueryAnswer, Status};

    const SUITE: &str = r#"
[[check]]
name = "negative"
kind = "sql"
severity = "warn"
query = "SELECT * FROM {{ this }} WHERE amount < 0"
"#;

    #[test]
    fn the_query_is_kept_and_an_evaluator_alone_reports_the_check_as_error() {
        let suite = CheckSuite::from_toml_str(SUITE).unwrap();
        let def = suite.sql_checks().next().unwrap();
        assert_eq!(
            def.sql_query(),
            Some("SELECT * FROM {{ this }} WHERE amount < 0")
        );
        let schema = arrow_schema::Schema::new(vec![Field::new("amount", DataType::Float64, true)]);
        let report = suite.evaluator(&schema, EvalOptions::default()).finish();
        assert_eq!(report.checks[0].status, Status::Error);
        // Even a warn-severity sql check that never ran is not a pass.
        assert!(report.checks[0].message.contains("ran no queries"));
    }

    #[test]
    fn an_answer_becomes_a_result_by_severity() {
        let suite = CheckSuite::from_toml_str(SUITE).unwrap();
        let def = suite.sql_checks().next().unwrap();
        let none = CheckResult::from_query(
            def,
            QueryAnswer::Rows {
                failing: 0,
                samples: Vec::new(),
            },
        );
        assert_eq!(
            (none.status, none.evidence),
            (Status::Pass, Evidence::Query)
        );
        let some = CheckResult::from_query(
            def,
            QueryAnswer::Rows {
                failing: 7,
                samples: vec![Default::default()],
            },
        );
        assert_eq!((some.status, some.rows_failing), (Status::Warn, 7));
        let failed = CheckResult::from_query(def, QueryAnswer::Failed("no field x".into()));
        assert_eq!(failed.status, Status::Error);
        assert!(failed.message.contains("no field x"));
    }

    #[test]
    fn where_and_an_empty_query_are_refused_with_their_line() {
        let with_where = "[[check]]\nkind = \"sql\"\nquery = \"SELECT 1\"\nwhere = \"x > 1\"\n";
        let error = CheckSuite::from_toml_str(with_where)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`where` does not apply to a `sql` check"),
            "{error}"
        );
        let empty = "[[check]]\nkind = \"sql\"\nquery = \" \"\n";
        let error = CheckSuite::from_toml_str(empty).unwrap_err().to_string();
        assert!(error.contains("needs `query"), "{error}");
        assert!(error.contains("line 1") || error.contains(":1:"), "{error}");
    }
}

//! What every kind shares: checks that cannot run, severities, the report, rejected batches.

use super::aggregates::ROW_COUNT;
use super::not_null::NOT_NULL;
use super::*;

#[test]
fn checks_that_cannot_run_are_errors_never_passes() {
    let b = batch(vec![
        ("n", ints(vec![Some(1)])),
        ("s", strs(vec![Some("x")])),
    ]);
    let report = audit(
        r#"
[[check]]
kind = "not_null"
columns = ["missing"]
[[check]]
kind = "regex"
column = "n"
pattern = "x"
[[check]]
kind = "expression"
expr = "s > 1 AND"
"#
        .replace("expr = \"s > 1 AND\"", "expr = \"s + 1 > 0\"")
        .as_str(),
        &[b],
    );
    assert!(
        report.checks.iter().all(|c| c.status == Status::Error),
        "{report:#?}"
    );
    assert!(
        report.checks[0]
            .message
            .contains("unknown column `missing`")
    );
    assert!(report.checks[1].message.contains("needs a string column"));
    assert!(!report.publishable());
}

#[test]
fn warn_severity_does_not_block_publishing_but_error_does() {
    let b = batch(vec![("user_id", ints(vec![None]))]);
    let warn = audit(&format!("{NOT_NULL}severity = \"warn\"\n"), &[b.clone()]);
    assert_eq!(warn.checks[0].status, Status::Warn);
    assert!(warn.publishable());
    let err = audit(NOT_NULL, &[b.clone()]);
    assert!(!err.publishable());
    // A warn-severity check that cannot run is an error but does not block.
    let broken = audit(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"nope\"]\nseverity = \"warn\"\n",
        &[b],
    );
    assert_eq!(broken.checks[0].status, Status::Error);
    assert!(broken.publishable());
}

#[test]
fn report_round_trips_through_json_and_renders_a_table() {
    let b = batch(vec![("user_id", ints(vec![Some(1), None]))]);
    let report = audit(&format!("{NOT_NULL}{ROW_COUNT}"), &[b]);
    let json = report.to_json_pretty();
    let back: sluice_checks::AuditReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["checks"][0]["status"], json!("fail"));
    assert_eq!(value["checks"][0]["kind"], json!("not_null"));
    assert_eq!(value["checks"][0]["severity"], json!("error"));
    let table = report.render_table();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("FAIL ") && l.contains("not_null(user_id)")),
        "{table}"
    );
    assert!(table.contains("user_id=null"), "{table}");
    assert!(
        table.contains("NOT PUBLISHABLE: 2 checks, 0 pass, 0 warn, 2 fail, 0 error"),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "no colour codes");
}

#[test]
fn update_rejects_batches_without_required_columns_or_with_changed_types() {
    let b = batch(vec![
        ("user_id", ints(vec![Some(1)])),
        ("x", ints(vec![Some(1)])),
    ]);
    let suite = CheckSuite::from_toml_str(NOT_NULL).unwrap();
    let mut ev = suite.evaluator(&b.schema(), EvalOptions::default());
    let no_user = batch(vec![("x", ints(vec![Some(1)]))]);
    let err = ev.update(&no_user).unwrap_err();
    assert!(
        matches!(err, sluice_checks::Error::MissingColumn { ref column, .. } if column == "user_id"),
        "{err}"
    );
    let retyped = batch(vec![("user_id", strs(vec![Some("1")]))]);
    assert!(matches!(
        ev.update(&retyped),
        Err(sluice_checks::Error::ColumnTypeChanged { .. })
    ));
    // A projection with only the required columns is enough.
    assert_eq!(ev.required_columns(), ["user_id"]);
    ev.update(&batch(vec![("user_id", ints(vec![None]))]))
        .unwrap();
    assert_eq!(ev.finish().checks[0].rows_failing, 1);
}

#[test]
fn string_columns_only_dictionary_readers_use_may_come_dictionary_encoded() {
    use arrow_array::types::Int32Type;
    use arrow_array::{DictionaryArray, Int32Array, StringArray};
    let plain = batch(vec![
        ("event_type", strs(vec![Some("view")])),
        ("country", strs(vec![Some("FR")])),
    ]);
    let encoded = |values: Vec<&str>, keys: Vec<i32>| -> ArrayRef {
        Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(keys),
                Arc::new(StringArray::from(values)),
            )
            .unwrap(),
        )
    };
    let toml = r#"
[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click"]

[[check]]
kind = "not_null"
column = "country"
"#;
    let suite = CheckSuite::from_toml_str(toml).unwrap();
    let mut ev = suite.evaluator(&plain.schema(), EvalOptions::default());
    // country is read by not_null, which wants plain strings.
    assert_eq!(ev.dictionary_columns(), ["event_type"]);
    ev.update(&batch(vec![
        ("event_type", encoded(vec!["view", "refund"], vec![0, 1, 0])),
        ("country", strs(vec![Some("FR"), Some("DE"), None])),
    ]))
    .unwrap();
    let report = ev.finish();
    assert_eq!(
        report
            .checks
            .iter()
            .map(|c| c.rows_failing)
            .collect::<Vec<_>>(),
        [1, 1]
    );
    // A check that wants plain strings is not handed a dictionary.
    let mut ev = suite.evaluator(&plain.schema(), EvalOptions::default());
    let err = ev
        .update(&batch(vec![
            ("event_type", strs(vec![Some("view")])),
            ("country", encoded(vec!["FR"], vec![0])),
        ]))
        .unwrap_err();
    assert!(
        matches!(err, sluice_checks::Error::ColumnTypeChanged { ref column, .. } if column == "country"),
        "{err}"
    );
    // With a `where`, the column is read as plain strings too.
    let filtered = format!(
        "{toml}\n[[check]]\nkind = \"accepted_values\"\ncolumn = \"country\"\nvalues = [\"FR\"]\nwhere = \"event_type = 'view'\"\n"
    );
    let suite = CheckSuite::from_toml_str(&filtered).unwrap();
    let ev = suite.evaluator(&plain.schema(), EvalOptions::default());
    assert!(
        ev.dictionary_columns().is_empty(),
        "{:?}",
        ev.dictionary_columns()
    );
}

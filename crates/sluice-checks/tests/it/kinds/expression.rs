//! The `expression` kind.

use super::*;

const EXPRESSION: &str =
    "[[check]]\nkind = \"expression\"\nexpr = \"amount >= 0 OR event_type <> 'purchase'\"\n";

fn expr_batch(amounts: Vec<Option<f64>>, types: Vec<Option<&str>>) -> RecordBatch {
    batch(vec![
        ("amount", floats(amounts)),
        ("event_type", strs(types)),
    ])
}

#[test]
fn expression_pass() {
    let r = first(
        EXPRESSION,
        &[expr_batch(
            vec![Some(1.0), Some(-1.0)],
            vec![Some("purchase"), Some("view")],
        )],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 2, 0)
    );
}

#[test]
fn expression_fail() {
    let r = first(
        EXPRESSION,
        &[expr_batch(
            vec![Some(-1.0), Some(2.0)],
            vec![Some("purchase"), Some("purchase")],
        )],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 1));
    assert_eq!(r.samples[0]["amount"], json!(-1.0));
    assert_eq!(r.samples[0]["event_type"], json!("purchase"));
}

#[test]
fn expression_mostly_edge() {
    let toml = format!("{EXPRESSION}mostly = 0.5\n");
    let b = expr_batch(
        vec![Some(-1.0), Some(2.0)],
        vec![Some("purchase"), Some("purchase")],
    );
    assert_eq!(first(&toml, &[b]).status, Status::Pass);
    let b = expr_batch(
        vec![Some(-1.0), Some(-2.0), Some(2.0)],
        vec![Some("purchase"); 3],
    );
    assert_eq!(first(&toml, &[b]).status, Status::Fail);
}

#[test]
fn expression_null_result_passes() {
    // NULL >= 0 is unknown and 'purchase' <> 'purchase' is false: unknown, which passes.
    let r = first(
        EXPRESSION,
        &[expr_batch(vec![None], vec![Some("purchase")])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 1, 0)
    );
    let r = first(
        "[[check]]\nkind = \"expression\"\nexpr = \"amount IS NOT NULL\"\n",
        &[expr_batch(vec![None], vec![Some("purchase")])],
    );
    assert_eq!(r.rows_failing, 1);
}

#[test]
fn expression_empty_input_passes() {
    let b = expr_batch(vec![Some(1.0)], vec![Some("view")]);
    assert_eq!(first(EXPRESSION, &[empty_like(&b)]).status, Status::Pass);
}

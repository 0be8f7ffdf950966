//! The string kinds: `regex` and `length`.

use super::*;

const REGEX: &str =
    "[[check]]\nkind = \"regex\"\ncolumn = \"session_id\"\npattern = \"^s-[0-9a-f]{4}$\"\n";

#[test]
fn regex_pass() {
    let r = first(
        REGEX,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("s-00af"), Some("s-1234")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Pass, 0));
}

#[test]
fn regex_fail() {
    let r = first(
        REGEX,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("s-00af"), Some("x-1234")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 1));
    assert_eq!(r.samples[0]["session_id"], json!("x-1234"));
}

#[test]
fn regex_mostly_edge() {
    let toml = format!("{REGEX}mostly = 0.5\n");
    let r = first(
        &toml,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("bad"), Some("s-0000")]),
        )])],
    );
    assert_eq!(r.status, Status::Pass);
    let r = first(
        &toml,
        &[batch(vec![(
            "session_id",
            strs(vec![Some("bad"), Some("bad"), Some("s-0000")]),
        )])],
    );
    assert_eq!(r.status, Status::Fail);
}

#[test]
fn regex_skips_nulls() {
    let r = first(
        REGEX,
        &[batch(vec![(
            "session_id",
            strs(vec![None, Some("s-0000")]),
        )])],
    );
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 1));
}

#[test]
fn regex_empty_input_passes() {
    let b = batch(vec![("session_id", strs(vec![Some("s")]))]);
    assert_eq!(first(REGEX, &[empty_like(&b)]).status, Status::Pass);
}

const LENGTH: &str = "[[check]]\nkind = \"length\"\ncolumn = \"country\"\nmin = 2\nmax = 2\n";

#[test]
fn length_pass() {
    let r = first(
        LENGTH,
        &[batch(vec![("country", strs(vec![Some("US"), Some("IT")]))])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Pass, 0));
    assert_eq!(r.observed["max_length"], json!(2));
}

#[test]
fn length_fail_counts_characters_not_bytes() {
    let r = first(
        LENGTH,
        &[batch(vec![(
            "country",
            strs(vec![Some("USA"), Some("é"), Some("éé")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 2));
}

#[test]
fn length_mostly_edge() {
    let toml = format!("{LENGTH}mostly = 0.5\n");
    assert_eq!(
        first(
            &toml,
            &[batch(vec![(
                "country",
                strs(vec![Some("USA"), Some("US")])
            )])]
        )
        .status,
        Status::Pass
    );
    assert_eq!(
        first(
            &toml,
            &[batch(vec![(
                "country",
                strs(vec![Some("USA"), Some("U"), Some("US")])
            )])]
        )
        .status,
        Status::Fail
    );
}

#[test]
fn length_skips_nulls() {
    let r = first(
        LENGTH,
        &[batch(vec![("country", strs(vec![None, Some("US")]))])],
    );
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 1));
}

#[test]
fn length_empty_input_passes() {
    let b = batch(vec![("country", strs(vec![Some("US")]))]);
    assert_eq!(first(LENGTH, &[empty_like(&b)]).status, Status::Pass);
}

//! The check file format and its errors.

use sluice_checks::{CheckKind, CheckSuite, Error, Severity};

fn config_error(text: &str) -> (usize, usize, String) {
    match CheckSuite::from_toml_str(text) {
        Err(Error::InvalidConfig {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn the_documented_example_parses() {
    let suite = CheckSuite::from_toml_str(
        r#"
[[check]]
name = "user_id present"          # optional, a default is derived from kind and columns
kind = "not_null"
columns = ["user_id"]
severity = "error"                # default "error"
mostly = 0.999                    # optional fraction that must pass

[[check]]
kind = "unique"
columns = ["event_id"]
scope = "table"                   # "batch" (default) or "table"

[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "add_to_cart", "purchase", "search"]

[[check]]
kind = "range"
column = "amount"
min = 0
where = "event_type = 'purchase'" # optional row filter, same grammar as `expression`
"#,
    )
    .unwrap();
    let names: Vec<&str> = suite.checks().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "user_id present",
            "unique(event_id)",
            "accepted_values(event_type)",
            "range(amount)"
        ]
    );
    assert_eq!(suite.checks()[0].mostly(), 0.999);
    assert_eq!(suite.checks()[1].kind(), CheckKind::Unique);
    assert_eq!(suite.checks()[2].severity(), Severity::Error);
    assert_eq!(suite.checks()[3].filter(), Some("event_type = 'purchase'"));
    assert_eq!(suite.checks()[3].columns(), ["amount", "event_type"]);
}

#[test]
fn invalid_toml_reports_line_and_column() {
    let (line, column, message) =
        config_error("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"\n");
    assert_eq!(line, 3, "{message}");
    assert!(column >= 1, "{message}");
    let err = CheckSuite::from_toml_str("[[check]]\nkind = = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2, column 8"), "{err}");
}

#[test]
fn unknown_kind_and_fields_are_clear_errors() {
    let (line, column, message) =
        config_error("[[check]]\nkind = \"not_nul\"\ncolumns = [\"a\"]\n");
    assert_eq!((line, column), (2, 8));
    assert!(
        message.contains("not_nul") && message.contains("not_null"),
        "{message}"
    );

    let (line, _, message) = config_error(
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\n\n[[check]]\nkind = \"unique\"\ncolums = [\"a\"]\n",
    );
    assert_eq!(line, 7, "{message}");
    assert!(message.contains("unknown field `colums`"), "{message}");

    let (_, _, message) =
        config_error("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\nvalues = [1]\n");
    assert!(
        message.contains("field `values` does not apply to a `not_null` check"),
        "{message}"
    );

    let (_, _, message) =
        config_error("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\nseverity = \"fatal\"\n");
    assert!(message.contains("fatal"), "{message}");

    let (_, _, message) = config_error("[[checks]]\nkind = \"not_null\"\n");
    assert!(message.contains("unknown field `checks`"), "{message}");
}

#[test]
fn semantic_errors_point_at_the_check() {
    let (line, _, message) = config_error(
        "[[check]]\nkind = \"row_count\"\nmin = 1\n\n[[check]]\nkind = \"range\"\ncolumn = \"a\"\n",
    );
    assert!(line >= 5, "line {line}: {message}");
    assert!(message.contains("needs `min`, `max` or both"), "{message}");
    let (_, _, message) = config_error("[[check]]\nkind = \"expression\"\nexpr = \"a >= \"\n");
    assert!(
        message.contains("cannot parse `expr` expression"),
        "{message}"
    );
    let (_, _, message) =
        config_error("[[check]]\nkind = \"freshness\"\ncolumn = \"ts\"\nmax_age = \"2 hours\"\n");
    assert!(message.contains("invalid duration"), "{message}");
    let (_, _, message) =
        config_error("[[check]]\nkind = \"regex\"\ncolumn = \"s\"\npattern = \"(\"\n");
    assert!(message.contains("invalid regular expression"), "{message}");
    let (_, _, message) =
        config_error("[[check]]\nkind = \"not_null\"\ncolumns = [\"a\"]\nmostly = 1.5\n");
    assert!(message.contains("between 0 and 1"), "{message}");
    let (_, _, message) = config_error(
        "[[check]]\nname = \"x\"\nkind = \"row_count\"\nmin = 1\n[[check]]\nname = \"x\"\nkind = \"row_count\"\nmax = 1\n",
    );
    assert!(message.contains("two checks are named `x`"), "{message}");
}

#[test]
fn derived_names_are_made_unique() {
    let suite = CheckSuite::from_toml_str(
        "[[check]]\nkind = \"range\"\ncolumn = \"a\"\nmin = 0\n[[check]]\nkind = \"range\"\ncolumn = \"a\"\nmax = 9\n",
    )
    .unwrap();
    assert_eq!(suite.checks()[1].name(), "range(a)#2");
}

#[test]
fn from_path_reads_files_and_names_them_in_errors() {
    let dir = std::env::temp_dir().join(format!("sluice-checks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "[[check]]\nkind = \"row_count\"\nmin = 1\n").unwrap();
    assert_eq!(CheckSuite::from_path(&good).unwrap().checks().len(), 1);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[check]\n").unwrap();
    let err = CheckSuite::from_path(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("line 1"), "{err}");
    assert!(matches!(
        CheckSuite::from_path(dir.join("none.toml")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

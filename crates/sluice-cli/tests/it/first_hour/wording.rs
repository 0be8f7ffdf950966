//! Output in the user's words: no Rust names, no cause said twice, states as words.

use super::*;

/// Words that only Rust code says: variant and type names seen in past output.
const RUST_NAMES: &[&str] = &[
    "LeaseConflict",
    "DataInvalid",
    "RolledBack",
    "UpToDate",
    "FastForward",
    "Completed",
    "Running",
    "Compensated",
    "NotFound",
    "Unexpected",
    "Some(",
    "None",
    "Err(",
    "Ok(",
    "::",
    "Timestamp(",
    "Int64",
    "Utf8",
    "Float64",
    "attempt(s)",
];

/// Problems of user-facing text: Rust names, `=>`, CamelCase identifiers, a cause twice.
fn speech_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if text.contains("=>") {
        problems.push("`=>`".to_string());
    }
    for name in RUST_NAMES {
        if text.contains(name) {
            problems.push(format!("Rust name `{name}`"));
        }
    }
    // lowerUpper inside a word: a Rust type or variant name (DuckDB and pyiceberg aside).
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let chars: Vec<char> = word.chars().collect();
        let camel = chars.first().is_some_and(char::is_ascii_uppercase)
            && chars
                .windows(2)
                .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
        if camel && !["DuckDB", "MinIO"].contains(&word) {
            problems.push(format!("CamelCase `{word}`"));
        }
    }
    // The same cause twice: a segment of 12+ characters between `: ` separators, repeated.
    for line in text.lines() {
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for (i, p) in parts.iter().enumerate() {
            if p.len() >= 12 && parts[i + 1..].iter().any(|q| q.contains(p)) {
                problems.push(format!("`{p}` twice"));
            }
        }
    }
    problems
}

#[test]
fn error_output_speaks_the_users_words_in_text_and_json() {
    let env = seeded();
    write(&env.path("more/m.parquet"), &events(10..20, false));
    // `amount` as text, where the table has a double.
    let typed = arrow_array::RecordBatch::try_new(
        std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "amount",
            arrow_schema::DataType::LargeUtf8,
            true,
        )])),
        vec![std::sync::Arc::new(arrow_array::LargeStringArray::from(
            vec!["1.5"],
        ))],
    )
    .unwrap();
    write(&env.path("typed/t.parquet"), &typed);
    std::fs::write(env.path("notes.txt"), "not parquet").unwrap();
    std::fs::write(
        env.path("broken.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\"\n",
    )
    .unwrap();
    assert!(
        env.sluice(&["tag", "create", "ns.events", "t1"])
            .status
            .success()
    );
    assert!(
        env.sluice(&["branch", "create", "ns.events", "dev"])
            .status
            .success()
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--source", "nope", "--table", "ns.events"],
        vec!["run", "--source", "notes.txt", "--table", "ns.events"],
        vec![
            "run",
            "--source",
            "more",
            "--table",
            "ns.events",
            "--checks",
            "broken.toml",
        ],
        vec![
            "run",
            "--source",
            "more",
            "--table",
            "ns.events",
            "--checks",
            "missing.toml",
        ],
        vec!["run", "--source", "more", "--table", "bad name"],
        vec!["run", "--source", "typed", "--table", "ns.events"],
        vec!["log", "ns.nope"],
        vec!["log", "ns.events@nope"],
        vec!["scan", "ns.events@main@yesterday"],
        vec!["scan", "ns.events", "--columns", "nope"],
        vec!["branch", "delete", "ns.events", "t1"],
        vec!["branch", "delete", "ns.events", "main"],
        vec!["branch", "delete", "ns.events", "nope"],
        vec!["tag", "delete", "ns.events", "dev"],
        vec!["branch", "create", "ns.events", "bad..name"],
        vec!["branch", "create", "ns.events", "dev"],
        vec!["tag", "create", "ns.events", "t2", "--at", "nope"],
        vec!["merge", "ns.events", "nope"],
        vec!["merge", "ns.events", "t1"],
        vec!["rollback", "ns.events", "--to", "nope"],
        vec!["check", "ns.events", "--checks", "missing.toml"],
        vec!["check", "ns.nope", "--checks", "checks.toml"],
        vec!["runs", "show", "nope"],
        vec!["runs", "show", "00000000-0000-0000-0000-000000000000"],
        vec!["tables", "nope"],
        vec!["--config", "missing.toml", "tables"],
        vec!["run", "--table", "ns.events"],
        vec![
            "backfill",
            "--source",
            "more",
            "--table",
            "ns.events",
            "--batch-files",
            "0",
        ],
    ];
    for args in &cases {
        let out = env.sluice(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        let problems = speech_problems(&text);
        assert!(problems.is_empty(), "{args:?}: {problems:?} in:\n{text}");

        let out = env.cmd().arg("--json").args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?} --json: not one JSON document ({e}): {stdout}"));
        assert_eq!(doc["status"], "failed", "{args:?}: {doc}");
        let problems = speech_problems(doc["error"].as_str().unwrap_or_default());
        assert!(
            problems.is_empty(),
            "{args:?} --json: {problems:?} in {doc}"
        );
    }
}

#[test]
fn states_and_kinds_are_printed_as_words() {
    let env = seeded();
    let out = env.sluice(&["runs", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(speech_problems(&text).is_empty(), "{text}");
    assert!(text.contains("completed"), "{text}");
    let run_id = text
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = env.sluice(&["runs", "show", &run_id]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(speech_problems(&text).is_empty(), "{text}");

    assert!(
        env.sluice(&["branch", "create", "ns.events", "dev"])
            .status
            .success()
    );
    let out = env.sluice(&["merge", "ns.events", "dev"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(speech_problems(&text).is_empty(), "{text}");
    assert!(!text.contains('→'), "{text}");

    // Narrow terminals: log and the audit table fit and keep every number whole.
    write(&env.path("more/m.parquet"), &events(10..20, true));
    let out = env
        .cmd()
        .env("COLUMNS", "80")
        .args(run_args(
            "more",
            &[
                "--message",
                "a long commit message that a narrow terminal cannot show on one line",
            ],
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let audit = String::from_utf8_lossy(&out.stdout).into_owned();
    let table: Vec<&str> = audit.lines().take_while(|l| !l.is_empty()).collect();
    assert!(table.iter().all(|l| l.chars().count() <= 80), "{audit}");
    assert!(audit.contains("FAIL"), "{audit}");
    let out = env
        .cmd()
        .env("COLUMNS", "80")
        .args(["log", "ns.events"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(log.lines().all(|l| l.chars().count() <= 80), "{log}");
    let (_, commits) = env.json(&["log", "ns.events"]);
    let id = commits[0]["snapshot_id"].as_i64().unwrap().to_string();
    assert!(log.contains(&id), "{id} cut in:\n{log}");
}

//! `--json`: one document per invocation (one per line for `watch`), one shape per result.

use super::*;

#[test]
fn every_json_invocation_prints_one_document_and_check_results_have_one_shape() {
    let env = seeded();
    // Failures before any report exists: one document, status failed, the error.
    for args in [
        vec!["run", "--source", "nope", "--table", "ns.events"],
        vec!["log", "ns.nope"],
        vec!["run", "--table", "ns.events"],
    ] {
        let (code, doc) = env.json(&args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(doc["status"], "failed", "{args:?}: {doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{args:?}: {doc}"
        );
    }

    // `run --json` and `check --json` give a check result the same fields.
    write(&env.path("more/m.parquet"), &events(10..20, false));
    let (code, run) = env.json(&run_args("more", &[]));
    assert_eq!(code, 0, "{run}");
    let (code, check) = env.json(&["check", "ns.events", "--checks", "checks.toml"]);
    assert_eq!(code, 0, "{check}");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let from_run = &run["checks"][0];
    let from_check = &check["checks"][0];
    assert_eq!(keys(from_run), keys(from_check));
    for field in ["kind", "rows_checked", "threshold", "evidence"] {
        assert!(from_run.get(field).is_some(), "{field}: {from_run}");
    }
}

#[test]
fn watch_json_prints_one_compact_document_per_line() {
    use std::io::{BufRead, BufReader};
    let env = seeded();
    write(&env.path("raw/a.parquet"), &events(100..110, false));
    let mut child = env
        .cmd()
        .args(["--json", "watch", "--source", "raw", "--table", "ns.events"])
        .args(["--checks", "checks.toml", "--every", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    child.wait().unwrap();
    for line in std::iter::once(&first).chain(&rest) {
        let doc: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON document per line ({e}): {line}"));
        assert!(doc.get("status").is_some(), "{line}");
    }
    let doc: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(doc["status"], "published", "{doc}");
}

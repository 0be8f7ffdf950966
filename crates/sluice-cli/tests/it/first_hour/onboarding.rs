//! The first commands: the README's, `init`, and the messages that lead from one to the next.

use super::*;

#[test]
fn a_moved_lake_is_detected_and_the_error_says_what_to_do() {
    let env = seeded();
    let commits = env.main_log_len();
    assert!(commits > 0);
    let home = env.dir.path().to_path_buf();
    let moved = home.with_extension("moved");
    std::fs::rename(&home, &moved).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&moved)
        .env_remove("SLUICE_CONFIG")
        .env("NO_COLOR", "1")
        .args(["log", "ns.events"])
        .output()
        .unwrap();
    std::fs::rename(&moved, &home).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("table ns.events cannot be read")
            && err.contains(&home.display().to_string())
            && err.contains("moved back"),
        "{err}"
    );
    assert!(!err.contains("=>") && !err.contains("DataInvalid"), "{err}");
    // Back where it was created, the lake reads again.
    assert_eq!(env.main_log_len(), commits);
}

#[test]
fn a_time_copied_from_log_includes_the_commit_it_shows() {
    let env = seeded();
    let out = env.sluice(&["log", "ns.events", "--limit", "1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text.lines().nth(2).unwrap();
    let mut cells = row.split_whitespace();
    let (_snapshot, time) = (cells.next().unwrap(), cells.next().unwrap());
    let (whole, millis) = time.split_once('.').expect("log shows milliseconds");
    assert!(millis.len() == 4 && millis.ends_with('Z'), "{row}");
    // The time as a user copies it, cut to the second.
    let target = format!("ns.events@main@{whole}Z");
    assert_eq!(env.event_ids(&target), (0..10).collect::<Vec<_>>());
}

/// The commands of the README's "Use it" block, comments dropped.
fn readme_use_it_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../../../../../README.md");
    let section = readme
        .split("## Use it")
        .nth(1)
        .expect("README has a Use it section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Use it section starts with a sh block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(shell_words)
        .collect()
}

/// A command line split as a shell splits it: on blanks, except inside single or double
/// quotes (which are removed).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn the_readme_use_it_commands_run_as_written_after_init() {
    let dir = tempfile::tempdir().unwrap();
    let commands = readme_use_it_commands();
    assert_eq!(commands[0], ["sluice", "init"], "{commands:?}");
    for command in &commands {
        assert_eq!(command[0], "sluice", "{command:?}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir.path())
            .env_remove("SLUICE_CONFIG")
            .env("NO_COLOR", "1")
            .args(&command[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
    assert!(dir.path().join("checks.toml").exists());
}

#[test]
fn onboarding_messages_lead_somewhere() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir.path())
            .env_remove("SLUICE_CONFIG")
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap()
    };
    // `init -q` is quiet.
    let out = sluice(&["init", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // A missing table says how it comes to exist.
    let out = sluice(&["log", "analytics.events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a first `sluice run --table analytics.events` creates it"),
        "{}",
        stderr(&out)
    );
    // A single file that is not parquet is named as such, not "nothing to do".
    std::fs::write(dir.path().join("events.csv"), "event_id\n1\n").unwrap();
    let out = sluice(&[
        "run",
        "--source",
        "events.csv",
        "--table",
        "analytics.events",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("events.csv is not a parquet file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn smaller_first_hour_defects_are_gone() {
    let env = seeded();
    // --columns items are trimmed.
    let (code, rows) = env.json(&[
        "scan",
        "ns.events",
        "--columns",
        "event_id, user_id",
        "--limit",
        "1",
    ]);
    assert_eq!(code, 0, "{rows}");
    assert!(rows[0].get("user_id").is_some(), "{rows}");

    // Nested namespaces are listed; a missing namespace is an error.
    write(&env.path("nested/n.parquet"), &events(0..3, false));
    let out = env.sluice(&["run", "--source", "nested", "--table", "a.b.c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, tables) = env.json(&["tables"]);
    assert_eq!(code, 0, "{tables}");
    assert_eq!(tables, serde_json::json!(["a.b.c", "ns.events"]));
    let (code, tables) = env.json(&["tables", "a"]);
    assert_eq!((code, tables), (0, serde_json::json!(["a.b.c"])));
    let out = env.sluice(&["tables", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("namespace nope does not exist"),
        "{}",
        stderr(&out)
    );

    // Unknown key columns are named, for run and check alike.
    write(&env.path("more/m.parquet"), &events(10..20, false));
    let out = env.sluice(&run_args("more", &["--key-columns", "nope"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`nope` is not a column of ns.events"),
        "{}",
        stderr(&out)
    );
    let out = env.sluice(&[
        "check",
        "ns.events",
        "--checks",
        "checks.toml",
        "--key-columns",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`nope` is not a column of ns.events"),
        "{}",
        stderr(&out)
    );

    // check takes --samples and --key-columns.
    std::fs::write(
        env.path("nulls.toml"),
        "[[check]]\nkind = \"range\"\ncolumn = \"event_id\"\nmax = 3\n",
    )
    .unwrap();
    let (code, report) = env.json(&[
        "check",
        "ns.events",
        "--checks",
        "nulls.toml",
        "--samples",
        "2",
        "--key-columns",
        "user_id",
    ]);
    assert_eq!(code, 3, "{report}");
    let samples = report["checks"][0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "{report}");
    assert!(samples[0].get("user_id").is_some(), "{report}");

    // Zero batch sizes and intervals are usage errors.
    let out = env.sluice(&[
        "backfill",
        "--source",
        "seed",
        "--table",
        "ns.events",
        "--batch-files",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.sluice(&[
        "watch",
        "--source",
        "seed",
        "--table",
        "ns.events",
        "--every",
        "0s",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // Comparisons between strings and numbers are errors both ways.
    for expr in ["event_type > 1", "event_id = 'abc'"] {
        std::fs::write(
            env.path("expr.toml"),
            format!("[[check]]\nkind = \"expression\"\nexpr = \"{expr}\"\n"),
        )
        .unwrap();
        let (code, report) = env.json(&["check", "ns.events", "--checks", "expr.toml"]);
        assert_eq!(code, 3, "{expr}: {report}");
        assert_eq!(report["checks"][0]["status"], "error", "{expr}: {report}");
        let message = report["checks"][0]["message"].as_str().unwrap();
        assert!(message.contains("cannot compare"), "{expr}: {message}");
    }

    // No binary noise in a threshold.
    std::fs::write(
        env.path("mostly.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\"]\nmostly = 0.999\n",
    )
    .unwrap();
    let out = env.sluice(&["check", "ns.events", "--checks", "mostly.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_null_fraction=0.001"), "{text}");
    assert!(!text.contains("0.0010000"), "{text}");

    // tag --help speaks of tags and --at.
    let out = env.sluice(&["tag", "create", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--at") && !help.contains("--from"), "{help}");
    assert!(
        help.contains("sluice tag create") && !help.contains("sluice branch"),
        "{help}"
    );
    let out = env.sluice(&["tag", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("`main` cannot be deleted"), "{help}");

    // A rebase commit keeps the message and author of the commit it re-applies: a run paused
    // before publishing while another run moves main publishes by a rebase.
    write(&env.path("late/l.parquet"), &events(30..35, false));
    write(&env.path("early/e.parquet"), &events(40..45, false));
    let late = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "publish")
        .env("SLUICE_PAUSE_SECS", "4")
        .args(run_args(
            "late",
            &["--message", "late batch", "--author", "alice"],
        ))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut late = late;
    {
        use std::io::{BufRead, BufReader};
        let mut lines = BufReader::new(late.stderr.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("paused at publish")));
    }
    let (code, report) = env.json(&run_args("early", &[]));
    assert_eq!(code, 0, "{report}");
    assert!(late.wait().unwrap().success());
    let (code, log) = env.json(&["log", "ns.events", "--limit", "1"]);
    assert_eq!(code, 0, "{log}");
    let head = &log[0];
    assert!(
        head["summary"].get("source-snapshot-id").is_some(),
        "not a rebase: {head}"
    );
    assert_eq!(head["message"], "late batch", "{head}");
    assert_eq!(head["author"], "alice", "{head}");

    // Credentials in the configuration file are warned about.
    let config = std::fs::read_to_string(env.path("sluice.toml")).unwrap();
    std::fs::write(
        env.path("sluice.toml"),
        format!("{config}\n[storage.s3]\nsecret_access_key = \"hush\"\n"),
    )
    .unwrap();
    let out = env.sluice(&["tables"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`secret_access_key`") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("hush"), "{err}");
}

//! `sluice run --job`: several tables on one branch, audited together, published in one
//! catalog commit or not at all; killed at every step, recovered, exactly once.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::*;

const JOB: &str = r#"
[[table]]
name = "shop.orders"
source = "raw/orders"
checks = "orders.toml"

[[table]]
name = "shop.order_lines"
source = "raw/lines"
checks = "lines.toml"
"#;

/// A lake with the job file, the checks of both tables (order lines: no null user), and a
/// first batch of both tables published.
fn job_env() -> Env {
    let env = Env::new();
    std::fs::write(env.path("wap.toml"), JOB).unwrap();
    std::fs::write(
        env.path("orders.toml"),
        "[[check]]\nkind = \"unique\"\ncolumns = [\"event_id\"]\nscope = \"table\"\n",
    )
    .unwrap();
    std::fs::write(
        env.path("lines.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\"]\n",
    )
    .unwrap();
    write(&env.path("raw/orders/o0.parquet"), &events(0..10, false));
    write(&env.path("raw/lines/l0.parquet"), &events(100..130, false));
    let (code, first) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["status"], "published", "{first}");
    env
}

fn ids(env: &Env, table: &str) -> Vec<i64> {
    env.event_ids(table)
}

fn branches_of(env: &Env, table: &str) -> Vec<String> {
    let (code, refs) = env.json(&["branch", "list", table]);
    assert_eq!(code, 0, "{refs}");
    refs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn no_run_branches(env: &Env) {
    for table in ["shop.orders", "shop.order_lines"] {
        let branches = branches_of(env, table);
        assert!(
            branches.iter().all(|b| !b.starts_with("sluice/")),
            "{table}: {branches:?}"
        );
    }
}

#[test]
fn a_job_publishes_every_table_in_one_commit_and_a_rerun_only_what_is_new() {
    let env = job_env();
    assert_eq!(ids(&env, "shop.orders"), (0..10).collect::<Vec<_>>());
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..130).collect::<Vec<_>>()
    );
    no_run_branches(&env);

    // New files for both: one job run, one publish commit for both tables.
    write(&env.path("raw/orders/o1.parquet"), &events(10..15, false));
    write(&env.path("raw/lines/l1.parquet"), &events(130..140, false));
    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "published");
    assert_eq!(report["atomic"], true);
    assert!(report["durations"]["write_ms"].is_u64(), "{report}");
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0]["rows"], 5);
    assert_eq!(tables[1]["rows"], 10);
    // Each table: one write commit; both tables: one publish commit.
    assert_eq!(report["commits"], 3, "{report}");
    // Every table's commit names the shared run.
    for table in ["shop.orders", "shop.order_lines"] {
        let (_, log) = env.json(&["log", table]);
        assert_eq!(log[0]["summary"]["sluice.run-id"], run_id, "{table}: {log}");
    }

    // Only the lines have new files: the orders are left alone.
    write(&env.path("raw/lines/l2.parquet"), &events(140..145, false));
    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["tables"][0]["status"], "nothing_to_do");
    assert_eq!(report["tables"][1]["status"], "published");
    assert_eq!(ids(&env, "shop.orders"), (0..15).collect::<Vec<_>>());
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..145).collect::<Vec<_>>()
    );

    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0);
    assert_eq!(report["status"], "nothing_to_do");
}

#[test]
fn one_failing_audit_publishes_no_table_and_leaves_no_branch() {
    let env = job_env();
    write(&env.path("raw/orders/o1.parquet"), &events(10..15, false));
    // Null users: the order lines' audit fails.
    write(&env.path("raw/lines/l1.parquet"), &events(130..140, true));
    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["status"], "audit_failed");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("shop.order_lines"), "{error}");
    assert_eq!(report["tables"][0]["checks"][0]["status"], "pass");
    assert_eq!(report["tables"][1]["checks"][0]["status"], "fail");
    assert_eq!(ids(&env, "shop.orders"), (0..10).collect::<Vec<_>>());
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..130).collect::<Vec<_>>()
    );
    no_run_branches(&env);

    // In words: the job's verdict, then each table's.
    let out = env.sluice(&["run", "--job", "wap.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no table was published"), "{text}");
    assert!(text.contains("shop.order_lines"), "{text}");
}

#[test]
fn a_job_file_with_a_mistake_is_refused_before_anything_is_written() {
    let env = Env::new();
    std::fs::write(
        env.path("wap.toml"),
        "[[table]]\nname = \"shop.orders\"\nsource = \"raw/missing\"\n",
    )
    .unwrap();
    let out = env.sluice(&["run", "--job", "wap.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wap.toml") && err.contains("shop.orders"),
        "{err}"
    );
    assert!(err.contains("raw/missing"), "{err}");
    let out = env.sluice(&["run", "--job", "wap.toml", "--table", "x.y"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_job_killed_at_any_step_lands_both_tables_or_neither_exactly_once() {
    for point in ["write", "after-write", "audit", "publish", "after-publish"] {
        let env = job_env();
        write(&env.path("raw/orders/o1.parquet"), &events(10..15, false));
        write(&env.path("raw/lines/l1.parquet"), &events(130..140, false));
        let mut child = env
            .cmd()
            .env("SLUICE_PAUSE_AT", point)
            .args(["run", "--job", "wap.toml"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reached = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(&format!("paused at {point}")));
        assert!(reached, "the job never reached {point}");
        child.kill().unwrap();
        child.wait().unwrap();

        let (code, recovered) = env.json(&["recover", "--wait"]);
        assert_eq!(code, 0, "{point}: {recovered}");
        no_run_branches(&env);
        let orders = ids(&env, "shop.orders");
        let lines = ids(&env, "shop.order_lines");
        // Both or neither.
        assert_eq!(orders.len() > 10, lines.len() > 30, "{point}");
        if point == "after-publish" {
            assert_eq!(orders.len(), 15, "{point}: published before the kill");
        } else {
            assert_eq!(orders.len(), 10, "{point}: nothing may be published");
        }
        let (code, rerun) = env.json(&["run", "--job", "wap.toml"]);
        assert_eq!(code, 0, "{point}: {rerun}");
        assert_eq!(
            ids(&env, "shop.orders"),
            (0..15).collect::<Vec<_>>(),
            "{point}"
        );
        assert_eq!(
            ids(&env, "shop.order_lines"),
            (100..140).collect::<Vec<_>>(),
            "{point}"
        );
    }
}

#[test]
fn a_table_whose_main_moved_during_the_job_is_rebased_audited_and_published_with_the_other() {
    let env = job_env();
    write(&env.path("raw/orders/o1.parquet"), &events(10..15, false));
    write(&env.path("raw/lines/l1.parquet"), &events(130..140, false));
    // The job waits before its publish commit while another writer appends to the orders.
    let mut child = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "publish")
        .env("SLUICE_PAUSE_SECS", "4")
        .args(["--json", "run", "--job", "wap.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("paused at publish"));
    assert!(reached);
    write(&env.path("other/o9.parquet"), &events(900..905, false));
    let (code, other) = env.json(&["run", "--source", "other", "--table", "shop.orders"]);
    assert_eq!(code, 0, "{other}");
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["status"], "published");
    assert_eq!(report["tables"][0]["publish"], "rebase", "{report}");
    assert_eq!(report["tables"][1]["publish"], "fast_forward", "{report}");
    let expected: Vec<i64> = (0..15).chain(900..905).collect();
    assert_eq!(ids(&env, "shop.orders"), expected);
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..140).collect::<Vec<_>>()
    );
    no_run_branches(&env);
}

fn head_of(env: &Env, table: &str, reference: &str) -> Option<i64> {
    let (code, refs) = env.json(&["branch", "list", table]);
    assert_eq!(code, 0, "{refs}");
    let (_, tags) = env.json(&["tag", "list", table]);
    refs.as_array()
        .unwrap()
        .iter()
        .chain(tags.as_array().unwrap())
        .find(|r| r["name"] == reference)
        .map(|r| r["snapshot_id"].as_i64().unwrap())
}

#[test]
fn lake_wide_branches_and_tags_are_made_and_merged_in_every_table_at_once() {
    let env = job_env();
    let tables = "shop.orders,shop.order_lines";
    let (code, created) = env.json(&["branch", "create", "--tables", tables, "dev"]);
    assert_eq!(code, 0, "{created}");
    assert_eq!(created["tables"].as_array().unwrap().len(), 2);

    // main moves in both tables; `dev` stays behind.
    write(&env.path("raw/orders/o1.parquet"), &events(10..15, false));
    write(&env.path("raw/lines/l1.parquet"), &events(130..140, false));
    assert_eq!(env.json(&["run", "--job", "wap.toml"]).0, 0);
    assert_ne!(
        head_of(&env, "shop.orders", "dev"),
        head_of(&env, "shop.orders", "main")
    );

    // One merge brings `dev` of both tables up to main.
    let (code, merged) = env.json(&["merge", "--tables", tables, "main", "--into", "dev"]);
    assert_eq!(code, 0, "{merged}");
    for table in ["shop.orders", "shop.order_lines"] {
        assert_eq!(
            head_of(&env, table, "dev"),
            head_of(&env, table, "main"),
            "{table}"
        );
    }
    assert_eq!(
        ids(&env, "shop.order_lines@dev"),
        (100..140).collect::<Vec<_>>()
    );

    let (code, tagged) = env.json(&["tag", "create", "--tables", tables, "v1"]);
    assert_eq!(code, 0, "{tagged}");
    assert_eq!(
        head_of(&env, "shop.orders", "v1"),
        head_of(&env, "shop.orders", "main")
    );

    // `v1` exists in the orders: creating it in both fails and creates it in neither.
    let (code, _) = env.json(&["tag", "create", "shop.order_lines", "v2"]);
    assert_eq!(code, 0);
    let out = env.sluice(&["tag", "create", "--tables", tables, "v2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("v2") && err.contains("shop.order_lines"),
        "{err}"
    );
    assert_eq!(head_of(&env, "shop.orders", "v2"), None);

    // Both ways of naming the tables at once is a usage mistake, said in the command's words.
    let out = env.sluice(&["branch", "create", "--tables", tables, "shop.orders", "x"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tables"));
}

#[test]
fn relationships_see_the_other_tables_rows_on_the_same_branch() {
    let env = Env::new();
    // The lines come first in the file; they reference the orders, so the orders are written
    // first and the lines' check sees the orders of the same batch.
    std::fs::write(
        env.path("wap.toml"),
        r#"
[[table]]
name = "shop.order_lines"
source = "raw/lines"
checks = "lines.toml"

[[table]]
name = "shop.orders"
source = "raw/orders"
"#,
    )
    .unwrap();
    std::fs::write(
        env.path("lines.toml"),
        "[[check]]\nkind = \"relationships\"\ncolumn = \"user_id\"\nto_table = \"shop.orders\"\nto_column = \"event_id\"\n",
    )
    .unwrap();
    write(&env.path("raw/orders/o0.parquet"), &events(0..10, false));
    // user ids 0..9: the orders of this very batch.
    write(&env.path("raw/lines/l0.parquet"), &events(100..110, false));
    let (code, first) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{first}");
    let check = &first["tables"][0]["checks"][0];
    assert_eq!(check["kind"], "relationships", "{first}");
    assert_eq!(check["status"], "pass", "{check}");

    // user ids 30..39 exist nowhere: the job fails, naming them.
    write(&env.path("raw/lines/l1.parquet"), &events(130..140, false));
    let (code, second) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 3, "{second}");
    let check = &second["tables"][0]["checks"][0];
    assert_eq!(check["status"], "fail", "{check}");
    assert_eq!(check["rows_failing"], 10, "{check}");
    let samples = check["samples"].as_array().unwrap();
    assert!(
        !samples.is_empty() && samples[0]["user_id"].as_i64().unwrap() >= 30,
        "{check}"
    );
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..110).collect::<Vec<_>>()
    );

    // Once the orders arrive (in the same job run as the waiting lines), everything lands.
    write(&env.path("raw/orders/o1.parquet"), &events(30..40, false));
    let (code, third) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{third}");
    assert_eq!(ids(&env, "shop.order_lines").len(), 20);
    assert_eq!(ids(&env, "shop.orders").len(), 20);
}

#[test]
fn a_job_published_table_by_table_rolls_forward_after_a_crash_between_tables() {
    let env = job_env();
    let job = std::fs::read_to_string(env.path("wap.toml")).unwrap();
    std::fs::write(env.path("wap.toml"), format!("atomic = false\n{job}")).unwrap();
    write(&env.path("raw/orders/o1.parquet"), &events(10..15, false));
    write(&env.path("raw/lines/l1.parquet"), &events(130..140, false));
    // Killed after the orders were published, before the lines were.
    let mut child = env
        .cmd()
        .env("SLUICE_PAUSE_AT", "between-tables")
        .args(["run", "--job", "wap.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("paused at between-tables"));
    assert!(reached, "the job never published its first table");
    child.kill().unwrap();
    child.wait().unwrap();
    // What a reader sees in between: the first table's new rows, not yet the second's.
    assert_eq!(ids(&env, "shop.orders"), (0..15).collect::<Vec<_>>());
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..130).collect::<Vec<_>>()
    );

    // The journal has the commit: recovery publishes the rest instead of undoing it.
    let (code, recovered) = env.json(&["recover", "--wait"]);
    assert_eq!(code, 0, "{recovered}");
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..140).collect::<Vec<_>>()
    );
    assert_eq!(ids(&env, "shop.orders"), (0..15).collect::<Vec<_>>());
    no_run_branches(&env);
    let (code, again) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0);
    assert_eq!(again["status"], "nothing_to_do", "{again}");

    // Without a crash: both published, and the report says how.
    write(&env.path("raw/orders/o2.parquet"), &events(15..20, false));
    write(&env.path("raw/lines/l2.parquet"), &events(140..150, false));
    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["atomic"], false);
    assert_eq!(report["tables"][1]["publish"], "fast_forward", "{report}");
    assert!(report["tables"][1]["snapshot_id"].is_i64(), "{report}");
    assert_eq!(
        ids(&env, "shop.order_lines"),
        (100..150).collect::<Vec<_>>()
    );
    no_run_branches(&env);
}

/// A REST catalog that answers `GET /v1/config` without listing multi-table commits (the
/// spec's default endpoint set), and 404 to everything else; records each request line.
fn catalog_without_transactions() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let line = text.lines().next().unwrap_or_default().to_string();
            let (status, body) = if line.starts_with("GET /v1/config") {
                ("200 OK", r#"{"defaults": {}, "overrides": {}}"#)
            } else {
                (
                    "404 Not Found",
                    r#"{"error": {"message": "not here", "type": "NotFoundException", "code": 404}}"#,
                )
            };
            log.lock().unwrap().push(line);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn a_rest_catalog_without_multi_table_commits_fails_the_job_before_anything_is_written() {
    let env = Env::new();
    let (uri, seen) = catalog_without_transactions();
    std::fs::write(
        env.path("sluice.toml"),
        format!(
            "[catalog]\ntype = \"rest\"\nuri = \"{uri}\"\nwarehouse = \"w\"\n\n[journal]\nlocation = \".sluice/journal\"\n"
        ),
    )
    .unwrap();
    std::fs::write(env.path("wap.toml"), JOB).unwrap();
    std::fs::write(env.path("orders.toml"), "").unwrap();
    std::fs::write(env.path("lines.toml"), "").unwrap();
    write(&env.path("raw/orders/o0.parquet"), &events(0..10, false));
    write(&env.path("raw/lines/l0.parquet"), &events(100..130, false));

    let out = env.sluice(&["run", "--job", "wap.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "wap.toml",
        "transactions/commit",
        "nothing was written",
        "atomic = false",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in: {stderr}");
    }
    // Only the configuration was read: no table loaded, created or committed.
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the catalog was never asked");
    assert!(
        seen.iter().all(|l| l.starts_with("GET /v1/config")),
        "requests beyond /v1/config: {seen:?}"
    );
    // No journal entry: nothing to roll back or recover.
    let journal = env.path(".sluice/journal");
    let entries = std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        entries,
        0,
        "journal entries written under {}",
        journal.display()
    );
}

#[test]
fn a_sql_check_of_a_job_sees_the_other_tables_at_the_jobs_branch() {
    let env = job_env();
    std::fs::write(
        env.path("lines.toml"),
        r#"
[[check]]
name = "lines_have_orders"
kind = "sql"
query = """
SELECT l.event_id FROM {{ this }} l
LEFT JOIN shop.orders o ON l.user_id = o.user_id
WHERE l.event_id >= 1000 AND o.user_id IS NULL
"""
"#,
    )
    .unwrap();
    // Users 15..17 are in the new orders only: on main they are unknown, on the job's branch
    // they are there.
    write(&env.path("raw/orders/o1.parquet"), &events(10..20, false));
    write(
        &env.path("raw/lines/l1.parquet"),
        &events(1015..1018, false),
    );
    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "published", "{report}");
    let lines = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "shop.order_lines")
        .unwrap();
    assert_eq!(lines["checks"][0]["name"], "lines_have_orders", "{lines}");
    assert_eq!(lines["checks"][0]["status"], "pass", "{lines}");
    assert_eq!(ids(&env, "shop.order_lines").len(), 33);

    // Lines of users no order has fail the job, and nothing of it lands.
    write(&env.path("raw/orders/o2.parquet"), &events(20..22, false));
    write(
        &env.path("raw/lines/l2.parquet"),
        &events(1050..1052, false),
    );
    let (code, report) = env.json(&["run", "--job", "wap.toml"]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(ids(&env, "shop.orders").len(), 20);
    assert_eq!(ids(&env, "shop.order_lines").len(), 33);
    no_run_branches(&env);
}

//! `sluice sql` gives the rows DuckDB's `iceberg_scan` gives over the same metadata file:
//! aggregates, filters on the partition column and on other columns, and joins of main with a
//! branch, on user-interaction events in a table partitioned by day.
//!
//! DuckDB's iceberg extension is not bundled with DuckDB; `.ci/run` installs DuckDB with it (as
//! the pip packages `duckdb-extension-iceberg` and `-avro`) in a virtual environment of its own
//! and names its python in `SLUICE_DUCKDB_ICEBERG_PYTHON`.

use std::process::Command;

use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sluice_testkit::{EventGenerator, write_parquet_with};

use crate::common::*;

/// 2026-11-01T00:00:00Z in microseconds; the events span 30 days from it.
const START_MICROS: i64 = 1_793_491_200_000_000;
const ROWS_PER_FILE: usize = 20_000;

/// argv: metadata file, main's and the dev branch's snapshot ids, a JSON list of queries with
/// `{main}` and `{dev}` for the table at those snapshots; prints each query's rows as objects
/// without their null values (as `sluice --json` prints rows).
const DUCKDB: &str = r#"
import glob, json, os, sys
import duckdb, duckdb_extension_avro, duckdb_extension_iceberg
metadata, main_id, dev_id, queries = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
for module in (duckdb_extension_avro, duckdb_extension_iceberg):
    path = glob.glob(os.path.join(os.path.dirname(module.__file__), "extensions", "*", "*.duckdb_extension"))[0]
    con.sql(f"LOAD '{path}'")
con.sql("SET TimeZone = 'UTC'")
def table(snapshot):
    return f"iceberg_scan('{metadata}', snapshot_from_id => {snapshot})"
out = []
for q in queries:
    result = con.sql(q.replace("{main}", table(main_id)).replace("{dev}", table(dev_id)))
    names = result.columns
    out.append([{n: v for n, v in zip(names, row) if v is not None} for row in result.fetchall()])
print(json.dumps(out, default=str))
"#;

/// The same question in both dialects: sluice's table names, DuckDB's `iceberg_scan`.
struct Query {
    sluice: &'static str,
    duckdb: &'static str,
}

const QUERIES: &[Query] = &[
    Query {
        sluice: "SELECT event_type, count(*) AS n, sum(amount) AS total FROM ns.events GROUP BY 1 ORDER BY 1",
        duckdb: "SELECT event_type, count(*) AS n, sum(amount) AS total FROM {main} GROUP BY 1 ORDER BY 1",
    },
    // The partition column: two of the thirty days.
    Query {
        sluice: "SELECT count(*) AS n, sum(amount) AS total, min(event_id) AS first FROM ns.events \
                 WHERE ts >= '2026-11-10T00:00:00Z' AND ts < '2026-11-12T00:00:00Z'",
        duckdb: "SELECT count(*) AS n, sum(amount) AS total, min(event_id) AS first FROM {main} \
                 WHERE ts >= TIMESTAMPTZ '2026-11-10 00:00:00+00' AND ts < TIMESTAMPTZ '2026-11-12 00:00:00+00'",
    },
    // Other columns, with nulls (amount is null for everything but purchases).
    Query {
        sluice: "SELECT country, count(*) AS n, max(amount) AS top FROM ns.events \
                 WHERE amount > 100 AND country IN ('IT', 'DE', 'FR') GROUP BY 1 ORDER BY 1",
        duckdb: "SELECT country, count(*) AS n, max(amount) AS top FROM {main} \
                 WHERE amount > 100 AND country IN ('IT', 'DE', 'FR') GROUP BY 1 ORDER BY 1",
    },
    Query {
        sluice: "SELECT count(*) AS n FROM ns.events WHERE amount IS NULL AND user_id < 5000",
        duckdb: "SELECT count(*) AS n FROM {main} WHERE amount IS NULL AND user_id < 5000",
    },
    // main × the dev branch: the rows main has and dev lacks, per type.
    Query {
        sluice: "SELECT m.event_type, count(*) AS n FROM ns.events m \
                 LEFT JOIN ns.\"events@dev\" d ON m.event_id = d.event_id \
                 WHERE d.event_id IS NULL GROUP BY 1 ORDER BY 1",
        duckdb: "SELECT m.event_type, count(*) AS n FROM {main} m \
                 LEFT JOIN {dev} d ON m.event_id = d.event_id \
                 WHERE d.event_id IS NULL GROUP BY 1 ORDER BY 1",
    },
    Query {
        sluice: "SELECT count(*) AS n, sum(m.amount) AS total FROM ns.events m \
                 JOIN \"ns.events@dev\" d ON m.event_id = d.event_id AND m.user_id = d.user_id",
        duckdb: "SELECT count(*) AS n, sum(m.amount) AS total FROM {main} m \
                 JOIN {dev} d ON m.event_id = d.event_id AND m.user_id = d.user_id",
    },
];

/// The interpreter with DuckDB and its iceberg extension, or `None` (skipped visibly, and a
/// failure where the interoperability tests are required).
fn duckdb_iceberg_python() -> Option<String> {
    match std::env::var("SLUICE_DUCKDB_ICEBERG_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ => {
            assert!(
                std::env::var_os("SLUICE_REQUIRE_PYICEBERG").is_none(),
                "SLUICE_DUCKDB_ICEBERG_PYTHON is not set; .ci/run sets it"
            );
            eprintln!(
                "SKIPPED sql_matches_duckdb_iceberg_scan: set SLUICE_DUCKDB_ICEBERG_PYTHON to a \
                 python with duckdb==1.5.5, duckdb-extension-iceberg==1.5.5 and \
                 duckdb-extension-avro==1.5.5"
            );
            None
        }
    }
}

fn events_file(env: &Env, name: &str, first_id: i64) {
    events_file_from(env, name, first_id, first_id);
}

/// Events with ids from `first_id`, timed as the events with ids from `time_of` are.
fn events_file_from(env: &Env, name: &str, first_id: i64, time_of: i64) {
    let step = 30 * 24 * 3600 * 1_000_000 / (3 * ROWS_PER_FILE as i64);
    let mut generator = EventGenerator::new(first_id as u64 + 11)
        .first_id(first_id)
        .timestamps(START_MICROS + time_of * step, step);
    let snappy = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    write_parquet_with(
        &env.path(&format!("raw/{name}.parquet")),
        &generator.batches(ROWS_PER_FILE, 8192),
        snappy,
    );
}

/// sluice's rows of `query`, as JSON objects.
fn sluice_rows(env: &Env, query: &str) -> Vec<serde_json::Value> {
    let (code, rows) = env.json(&["sql", query]);
    assert_eq!(code, 0, "{query}: {rows}");
    rows.as_array().unwrap().clone()
}

/// Whether two rows hold the same values, floats equal to 1e-9 of their size (the engines sum
/// in different orders).
fn same_row(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().all(|(k, x)| {
            b.get(k).is_some_and(|y| match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) if !(x.fract() == 0.0 && y.fract() == 0.0) => {
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0)
                }
                _ => x == y,
            })
        })
}

#[test]
fn sql_matches_duckdb_iceberg_scan() {
    let Some(python) = duckdb_iceberg_python() else {
        return;
    };
    let env = Env::new();
    events_file(&env, "a", 0);
    events_file(&env, "b", ROWS_PER_FILE as i64);
    let (code, report) = env.json(&[
        "run",
        "--source",
        "raw",
        "--table",
        "ns.events",
        "--partition-by",
        "day(ts)",
    ]);
    assert_eq!(code, 0, "{report}");
    let out = env.sluice(&["branch", "create", "ns.events", "dev"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events_file(&env, "c", 2 * ROWS_PER_FILE as i64);
    let (code, report) = env.json(&["run", "--source", "raw", "--table", "ns.events"]);
    assert_eq!(code, 0, "{report}");

    let duckdb_rows = || {
        let (_, refs) = env.json(&["branch", "list", "ns.events"]);
        let snapshot = |name: &str| {
            refs.as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .unwrap()["snapshot_id"]
                .to_string()
        };
        let catalog = current_metadata_file(&env);
        let duckdb_queries: Vec<&str> = QUERIES.iter().map(|q| q.duckdb).collect();
        let out = Command::new(&python)
            .arg("-c")
            .arg(DUCKDB)
            .arg(&catalog)
            .arg(snapshot("main"))
            .arg(snapshot("dev"))
            .arg(serde_json::to_string(&duckdb_queries).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Vec<serde_json::Value>>>(&out.stdout).unwrap()
    };
    let by_duckdb = duckdb_rows();
    for (query, expected) in QUERIES.iter().zip(&by_duckdb) {
        assert!(!expected.is_empty(), "{}", query.duckdb);
        let got = sluice_rows(&env, query.sluice);
        assert!(
            got.len() == expected.len() && got.iter().zip(expected).all(|(a, b)| same_row(a, b)),
            "{}\nsluice: {got:?}\nduckdb: {expected:?}",
            query.sluice
        );
    }

    // A late batch for the first ten days gives those days a second small file each. After a
    // full maintenance (those files compacted per day, manifests merged, history expired,
    // orphans removed), both engines read the same as before, main and dev.
    events_file_from(&env, "late", 3 * ROWS_PER_FILE as i64, 0);
    let (code, report) = env.json(&["run", "--source", "raw", "--table", "ns.events"]);
    assert_eq!(code, 0, "{report}");
    let by_duckdb = duckdb_rows();
    let (code, report) = env.json(&[
        "maintain",
        "ns.events",
        "--older-than",
        "0s",
        "--retain-last",
        "1",
        "--orphans-older-than",
        "0s",
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report["rewrite_data_files"]["compacted"]["files_rewritten"].as_u64() >= Some(20),
        "{report}"
    );
    let after = duckdb_rows();
    for ((query, before), now) in QUERIES.iter().zip(&by_duckdb).zip(&after) {
        assert!(
            before.len() == now.len() && before.iter().zip(now).all(|(a, b)| same_row(a, b)),
            "{}\nbefore: {before:?}\nafter: {now:?}",
            query.duckdb
        );
        let got = sluice_rows(&env, query.sluice);
        assert!(
            got.len() == now.len() && got.iter().zip(now).all(|(a, b)| same_row(a, b)),
            "{}\nsluice: {got:?}\nduckdb: {now:?}",
            query.sluice
        );
    }

    // The partition filter opened 2 or 3 of the 30 days' files (a day's rows may straddle the
    // files of two runs).
    let (code, plan) = env.json(&[
        "sql",
        "EXPLAIN SELECT count(*) FROM ns.events WHERE ts >= '2026-11-10T00:00:00Z' AND ts < '2026-11-12T00:00:00Z'",
    ]);
    assert_eq!(code, 0, "{plan}");
    let text = plan.to_string();
    let files = text
        .split("files=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((2..=4).contains(&files), "{text}");
}

/// The table's current metadata file, as the SQLite catalog records it.
fn current_metadata_file(env: &Env) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\
             \"SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'ns' AND table_name = 'events'\"\
             ).fetchone()[0].removeprefix('file://'))",
        )
        .arg(env.path(".sluice/catalog.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

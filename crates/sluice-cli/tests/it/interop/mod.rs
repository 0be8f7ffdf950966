//! Tables sluice writes hold every type producers commonly write, nested several levels, and
//! independent readers (pyiceberg, DuckDB) read them back as the source files hold them.

mod metadata;
mod partitioned;
mod refusals;
mod schema_evolution;
mod sql_duckdb;
mod type_zoo;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

use crate::common::*;

/// Whether python with pyiceberg (SQLite catalog), pyarrow and DuckDB is available.
fn python_readers(test: &str) -> bool {
    python_available(test, "pyiceberg.catalog.sql, pyarrow, duckdb")
}

fn python(env: &Env, script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .current_dir(env.dir.path())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Compares what pyiceberg and DuckDB read from a table with the rows of source files:
/// argv = catalog db, warehouse, table, source files...
const READ_BACK: &str = r#"
import json, sys
import duckdb, pyarrow as pa, pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
db, warehouse, ident, sources = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def rows(table):
    out = table.to_pylist()
    return sorted(out, key=lambda r: r["id"])
expected = rows(pa.concat_tables([pq.read_table(s) for s in sources], promote_options="permissive"))
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
table = catalog.load_table(ident)
scan = table.scan()
by_pyiceberg = rows(scan.to_arrow())
files = [t.file.file_path.removeprefix("file://") for t in scan.plan_files()]
by_duckdb = rows(duckdb.sql(f"SELECT * FROM read_parquet({files!r}, union_by_name=true)").fetch_arrow_table())
def first_difference(got):
    if len(got) != len(expected):
        return f"{len(got)} rows, expected {len(expected)}"
    for g, e in zip(got, expected):
        for k, v in e.items():
            if g.get(k) != v:
                return f"id {e['id']} column {k}: {g.get(k)!r}, expected {v!r}"
    return None
print(json.dumps({
    "rows": len(expected),
    "pyiceberg": first_difference(by_pyiceberg),
    "duckdb": first_difference(by_duckdb),
    "schema": str(table.schema()),
}))
"#;

fn read_back(env: &Env, table: &str, sources: &[&Path]) -> serde_json::Value {
    let db = env.path(".sluice/catalog.db");
    let warehouse = env.path(".sluice/warehouse");
    let mut args = vec![
        db.to_str().unwrap().to_string(),
        warehouse.to_str().unwrap().to_string(),
        table.to_string(),
    ];
    args.extend(sources.iter().map(|p| p.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    python(env, READ_BACK, &args)
}

fn struct_of(fields: Vec<Field>) -> DataType {
    DataType::Struct(Fields::from(fields))
}

fn map_of(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            struct_of(vec![
                Field::new("keys", key, false),
                Field::new("values", value, true),
            ]),
            false,
        )),
        false,
    )
}

/// Runs `sluice run` into `table` without checks; returns the exit code and the JSON report.
fn run_into(env: &Env, source: &str, table: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["run", "--source", source, "--table", table];
    args.extend_from_slice(extra);
    env.json(&args)
}

fn scanned_rows(env: &Env, table: &str) -> usize {
    let (code, rows) = env.json(&["scan", table, "--limit", "100000"]);
    assert_eq!(code, 0, "{rows}");
    rows.as_array().unwrap().len()
}

fn assert_read_back_identically(env: &Env, table: &str, sources: &[&Path]) {
    if !python_readers(table) {
        return;
    }
    let read = read_back(env, table, sources);
    assert_eq!(
        read["pyiceberg"],
        serde_json::Value::Null,
        "{table}: {read}"
    );
    assert_eq!(read["duckdb"], serde_json::Value::Null, "{table}: {read}");
}

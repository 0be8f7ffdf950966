//! Timestamps as files carry them: nanoseconds, and every spelling of UTC.

use super::*;

/// Events with a `ts` column of nanosecond UTC timestamps (pandas' default), `sub_micro`
/// nanoseconds past whole microseconds.
fn nanosecond_events(ids: std::ops::Range<i64>, sub_micro: i64) -> arrow_array::RecordBatch {
    use arrow_array::Array;
    use std::sync::Arc;
    let base = 1_764_547_200_000_000_000i64; // 2025-12-01T00:00:00Z
    let ts = arrow_array::TimestampNanosecondArray::from(
        ids.clone()
            .map(|i| base + i * 1_000_000 + sub_micro)
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("event_id", arrow_schema::DataType::Int64, true),
        arrow_schema::Field::new("ts", ts.data_type().clone(), true),
    ]);
    arrow_array::RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.collect::<Vec<_>>())),
            Arc::new(ts),
        ],
    )
    .unwrap()
}

/// pyiceberg reads the table; DuckDB reads the data files pyiceberg plans. Prints
/// `{"rows", "iceberg_type", "duckdb_rows", "duckdb_type", "first"}`.
const NANOS_READER: &str = r#"
import json, sys
import duckdb
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("default", uri=f"sqlite:///{sys.argv[1]}", warehouse=sys.argv[2])
t = cat.load_table("ns.nanos")
data = t.scan().to_arrow()
files = [task.file.file_path.removeprefix("file://") for task in t.scan().plan_files()]
con = duckdb.connect()
duckdb_rows = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()[0][0]
described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()
print(json.dumps({
    "format_version": t.metadata.format_version,
    "rows": data.num_rows,
    "iceberg_type": str(t.schema().find_field("ts").field_type),
    "duckdb_rows": duckdb_rows,
    "duckdb_type": {row[0]: row[1] for row in described}["ts"],
    "first": str(min(data.column("ts").to_pylist())),
}))
"#;

#[test]
fn nanosecond_timestamps_are_stored_as_microseconds_other_engines_read() {
    let env = Env::new();
    write(&env.path("whole/a.parquet"), &nanosecond_events(0..10, 0));
    let nanos = |source: &str, extra: &[&str]| {
        let mut args = vec!["run", "--source", source, "--table", "ns.nanos"];
        args.extend_from_slice(extra);
        env.json(&args)
    };
    let (code, report) = nanos("whole", &[]);
    assert_eq!(code, 0, "{report}");

    // A value that would lose its nanoseconds is refused, naming the column and the way out.
    write(
        &env.path("exact/b.parquet"),
        &nanosecond_events(10..20, 789),
    );
    let out = env.sluice(&["run", "--source", "exact", "--table", "ns.nanos"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("column `ts`") && err.contains("--truncate-timestamps"),
        "{err}"
    );
    let (code, report) = nanos("exact", &["--truncate-timestamps"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["rows"], 10);

    if !python_available(
        "nanosecond timestamps",
        "pyiceberg.catalog.sql, pyarrow, duckdb",
    ) {
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", NANOS_READER])
        .arg(env.path(".sluice/catalog.db"))
        .arg(env.path(".sluice/warehouse"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["format_version"], 2, "{read}");
    assert_eq!(read["rows"], 20, "{read}");
    assert_eq!(read["iceberg_type"], "timestamptz", "{read}");
    assert_eq!(read["duckdb_rows"], 20, "{read}");
    assert_eq!(read["duckdb_type"], "TIMESTAMP WITH TIME ZONE", "{read}");
    assert_eq!(read["first"], "2025-12-01 00:00:00+00:00", "{read}");
}

/// Events with a `ts` column of microsecond timestamps in `zone`.
fn utc_events(ids: std::ops::Range<i64>, zone: &str) -> arrow_array::RecordBatch {
    use arrow_array::Array;
    use std::sync::Arc;
    let ts = arrow_array::TimestampMicrosecondArray::from(
        ids.clone()
            .map(|i| 1_764_547_200_000_000 + i)
            .collect::<Vec<_>>(),
    )
    .with_timezone(zone);
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("event_id", arrow_schema::DataType::Int64, true),
        arrow_schema::Field::new("ts", ts.data_type().clone(), true),
    ]);
    arrow_array::RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.collect::<Vec<_>>())),
            Arc::new(ts),
        ],
    )
    .unwrap()
}

#[test]
fn the_documented_schema_check_accepts_every_spelling_of_utc() {
    let env = Env::new();
    std::fs::write(
        env.path("schema.toml"),
        r#"
[[check]]
kind = "schema"
columns = { event_id = "int64", ts = "timestamp(us, UTC)" }

[[check]]
name = "iceberg_spelling"
kind = "schema"
columns = { ts = "timestamptz" }
"#,
    )
    .unwrap();
    for (i, zone) in ["UTC", "+00:00", "Z"].into_iter().enumerate() {
        let start = 100 * i as i64;
        write(
            &env.path(&format!("raw/{i}.parquet")),
            &utc_events(start..start + 10, zone),
        );
        let (code, report) = env.json(&[
            "run",
            "--source",
            "raw",
            "--table",
            "ns.times",
            "--checks",
            "schema.toml",
        ]);
        assert_eq!(code, 0, "{zone}: {report}");
    }
    // The table's own column (read back as +00:00) passes too.
    let (code, report) = env.json(&["check", "ns.times", "--checks", "schema.toml"]);
    assert_eq!(code, 0, "{report}");

    // A mismatch names the type in the docs' notation.
    std::fs::write(
        env.path("wrong.toml"),
        "[[check]]\nkind = \"schema\"\ncolumns = { ts = \"int64\" }\n",
    )
    .unwrap();
    let out = env.sluice(&["check", "ns.times", "--checks", "wrong.toml"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("column `ts` is timestamp(us, UTC), expected int64"),
        "{text}"
    );
    assert!(!text.contains("Timestamp("), "{text}");
}

/// Writes nanosecond timestamps as pandas does (pandas 2 always, pandas 3 when the values came
/// with nanoseconds) to `path` and, with `coerce_timestamps="us"` as docs/lake.md says, to
/// `micros`: argv = path, micros.
const PANDAS_WRITER: &str = r#"
import sys
import pandas as pd
df = pd.DataFrame({
    "event_id": pd.Series(range(10), dtype="int64"),
    "ts": pd.date_range("2025-12-01", periods=10, freq="s", tz="UTC").astype("datetime64[ns, UTC]"),
})
df.to_parquet(sys.argv[1])
df.to_parquet(sys.argv[2], coerce_timestamps="us")
"#;

#[test]
fn register_mode_names_the_way_out_for_nanosecond_files() {
    let env = Env::new();
    write(&env.path("ns/a.parquet"), &nanosecond_events(0..10, 0));
    let out = env.sluice(&[
        "run", "--source", "ns", "--table", "ns.reg", "--mode", "register",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for needle in [
        "a.parquet cannot be registered in table ns.reg",
        "column `ts` is stored as timestamptz (nanoseconds) but the table has timestamptz (microseconds)",
        "coerce_timestamps=\"us\"",
        "`sluice run --mode copy`",
        "--truncate-timestamps",
        // Refused before the table was created.
        "table ns.reg was not created",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // Copy mode converts the same file.
    let (code, report) = env.json(&["run", "--source", "ns", "--table", "ns.reg"]);
    assert_eq!(code, 0, "{report}");

    if !python_available("pandas' files in register mode", "pandas, pyarrow") {
        return;
    }
    std::fs::create_dir_all(env.path("pandas")).unwrap();
    std::fs::create_dir_all(env.path("pandas-us")).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", PANDAS_WRITER])
        .arg(env.path("pandas/default.parquet"))
        .arg(env.path("pandas-us/micros.parquet"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let register = |source: &str| {
        env.sluice(&[
            "run",
            "--source",
            source,
            "--table",
            "ns.pandas",
            "--mode",
            "register",
        ])
    };
    let out = register("pandas");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("(nanoseconds)"), "{}", stderr(&out));
    // The documented one-liner writes a file register mode takes as it is.
    let out = register("pandas-us");
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, rows) = env.json(&["scan", "ns.pandas"]);
    assert_eq!(code, 0, "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 10);
}

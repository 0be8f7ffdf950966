//! Partitioned tables: a table pyiceberg created with day + bucket transforms receives copy and
//! register runs; every file holds one partition whose tuple pyiceberg's own transforms agree
//! with; pyiceberg prunes by the partition values; `inspect.partitions()` matches the rows per
//! partition sluice reported. New tables get a spec from `--partition-by`.

use std::collections::BTreeMap;

use super::*;

/// Writes the source files (snappy, as pandas and Spark write them) and creates `ns.events_p`,
/// partitioned by day(ts) and bucket(4, user_id): argv = catalog db, warehouse, source dir.
const SETUP: &str = r#"
import datetime as dt, json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType, TimestamptzType
from pyiceberg.partitioning import PartitionSpec, PartitionField
from pyiceberg.transforms import DayTransform, BucketTransform
db, warehouse, src = sys.argv[1], sys.argv[2], sys.argv[3]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
catalog.create_namespace_if_not_exists("ns")
schema = Schema(
    NestedField(1, "event_id", LongType(), required=False),
    NestedField(2, "user_id", LongType(), required=False),
    NestedField(3, "ts", TimestamptzType(), required=False),
    NestedField(4, "event_type", StringType(), required=False),
)
spec = PartitionSpec(
    PartitionField(source_id=3, field_id=1000, transform=DayTransform(), name="ts_day"),
    PartitionField(source_id=2, field_id=1001, transform=BucketTransform(4), name="user_id_bucket"),
)
catalog.create_table("ns.events_p", schema=schema, partition_spec=spec)
start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
def table(ids, user, ts):
    return pa.table({
        "event_id": pa.array(ids, pa.int64()),
        "user_id": pa.array([user(i) for i in ids], pa.int64()),
        "ts": pa.array([ts(i) for i in ids], pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(["click" if i % 3 else "view" for i in ids], pa.string()),
    })
for d in ("copy", "register", "spans"):
    os.makedirs(os.path.join(src, d), exist_ok=True)
# Copy mode: 3,000 rows over three days and many users, in two files.
for n, ids in enumerate((range(0, 1500), range(1500, 3000))):
    pq.write_table(table(list(ids), lambda i: i % 37, lambda i: start + dt.timedelta(minutes=1.44 * i)),
                   os.path.join(src, "copy", f"part-{n}.parquet"), compression="snappy")
# Register mode: one user on one day.
pq.write_table(table(list(range(5000, 5100)), lambda i: 7, lambda i: start + dt.timedelta(days=1, seconds=i - 5000)),
               os.path.join(src, "register", "one-partition.parquet"), compression="snappy")
# A file over two days cannot be registered.
pq.write_table(table(list(range(6000, 6010)), lambda i: 7, lambda i: start + dt.timedelta(hours=5 * (i - 6000))),
               os.path.join(src, "spans", "two-days.parquet"), compression="snappy")
print(json.dumps({"created": True}))
"#;

/// What pyiceberg and DuckDB see of `ns.events_p`: argv = catalog db, warehouse.
const INSPECT: &str = r#"
import datetime as dt, json, sys
import duckdb, pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.transforms import DayTransform, BucketTransform
from pyiceberg.types import LongType, TimestamptzType
db, warehouse = sys.argv[1], sys.argv[2]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
table = catalog.load_table("ns.events_p")
tasks = list(table.scan().plan_files())
day = DayTransform().transform(TimestamptzType())
bucket = BucketTransform(4).transform(LongType())
epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
mixed = []
for t in tasks:
    f = t.file
    rows = pq.read_table(f.file_path.removeprefix("file://")).to_pylist()
    expected = (f.partition[0], f.partition[1])
    for r in rows:
        micros = (r["ts"] - epoch) // dt.timedelta(microseconds=1)
        got = (day(micros), bucket(r["user_id"]))
        if got != expected:
            mixed.append(f"{f.file_path}: row {r['event_id']} is in {got}, the file says {expected}")
            break
files = [t.file.file_path.removeprefix("file://") for t in tasks]
pruned = list(table.scan(row_filter="ts >= '2024-05-02T00:00:00+00:00' and ts < '2024-05-03T00:00:00+00:00'").plan_files())
in_day = table.scan(row_filter="ts >= '2024-05-02T00:00:00+00:00' and ts < '2024-05-03T00:00:00+00:00'").to_arrow().num_rows
bucket_files = list(table.scan(row_filter="user_id == 7").plan_files())
partitions = {}
for p in table.inspect.partitions().to_pylist():
    d = epoch.date() + dt.timedelta(days=p["partition"]["ts_day"]) if isinstance(p["partition"]["ts_day"], int) else p["partition"]["ts_day"]
    partitions[f"ts_day={d.isoformat()}/user_id_bucket={p['partition']['user_id_bucket']}"] = p["record_count"]
print(json.dumps({
    "pyiceberg_rows": table.scan().to_arrow().num_rows,
    "duckdb_rows": duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchall()[0][0],
    "files": len(tasks),
    "mixed": mixed,
    "files_for_one_day": len(pruned),
    "days_of_pruned_files": sorted({str(epoch.date() + dt.timedelta(days=t.file.partition[0])) if isinstance(t.file.partition[0], int) else str(t.file.partition[0]) for t in pruned}),
    "rows_in_one_day": in_day,
    "files_for_one_user": len(bucket_files),
    "partitions": partitions,
}))
"#;

fn reported_partitions(report: &serde_json::Value, into: &mut BTreeMap<String, u64>) {
    for p in report["partitions"].as_array().expect("a partitions list") {
        *into
            .entry(p["partition"].as_str().unwrap().to_string())
            .or_default() += p["rows"].as_u64().unwrap();
    }
}

#[test]
fn a_table_pyiceberg_partitioned_by_day_and_bucket_takes_copy_and_register_runs() {
    let test = "a_table_pyiceberg_partitioned_by_day_and_bucket_takes_copy_and_register_runs";
    if !python_readers(test) {
        return;
    }
    let env = Env::new();
    // A first run creates the catalog database.
    write(&env.path("seed/s.parquet"), &events(0..10, false));
    assert_eq!(env.run("seed").0, 0);
    let db = env.path(".sluice/catalog.db");
    let warehouse = env.path(".sluice/warehouse");
    let src = env.path("src");
    let (db, warehouse, src) = (
        db.to_str().unwrap(),
        warehouse.to_str().unwrap(),
        src.to_str().unwrap(),
    );
    python(&env, SETUP, &[db, warehouse, src]);

    let mut reported = BTreeMap::new();
    let (code, copy) = run_into(&env, "src/copy", "ns.events_p", &[]);
    assert_eq!(code, 0, "{copy}");
    assert_eq!(copy["rows"], 3000, "{copy}");
    reported_partitions(&copy, &mut reported);
    // Three days, four buckets each.
    assert_eq!(reported.len(), 12, "{copy}");
    assert_eq!(reported.values().sum::<u64>(), 3000);

    let (code, register) = run_into(&env, "src/register", "ns.events_p", &["--mode", "register"]);
    assert_eq!(code, 0, "{register}");
    reported_partitions(&register, &mut reported);
    assert_eq!(register["partitions"].as_array().unwrap().len(), 1);
    assert!(
        register["partitions"][0]["partition"]
            .as_str()
            .unwrap()
            .starts_with("ts_day=2024-05-02/"),
        "{register}"
    );

    // A file over two days is refused before anything is written, naming what to do.
    let out = env.sluice(&[
        "run",
        "--source",
        "src/spans",
        "--table",
        "ns.events_p",
        "--mode",
        "register",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "two-days.parquet",
        "`ts_day`",
        "2024-05-01",
        "2024-05-02",
        "copy mode",
    ] {
        assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    }

    let seen = python(&env, INSPECT, &[db, warehouse]);
    assert_eq!(seen["pyiceberg_rows"], 3100, "{seen}");
    assert_eq!(seen["duckdb_rows"], 3100, "{seen}");
    assert_eq!(seen["mixed"], serde_json::json!([]), "{seen}");
    // Pruning by day plans only that day's files.
    let files = seen["files"].as_u64().unwrap();
    let one_day = seen["files_for_one_day"].as_u64().unwrap();
    assert!(one_day < files, "{seen}");
    assert_eq!(
        seen["days_of_pruned_files"],
        serde_json::json!(["2024-05-02"]),
        "{seen}"
    );
    assert_eq!(
        seen["rows_in_one_day"],
        1000 + 100,
        "rows of 2024-05-02: {seen}"
    );
    assert!(
        seen["files_for_one_user"].as_u64().unwrap() < files,
        "{seen}"
    );
    let inspected: BTreeMap<String, u64> =
        serde_json::from_value(seen["partitions"].clone()).unwrap();
    assert_eq!(inspected, reported, "{seen}");

    // Compaction of the table pyiceberg made: the day partition the register run added to
    // holds two files, rewritten into one under the same (day, bucket) tuple; every reader
    // sees the same rows in the same partitions, and each file still holds one partition by
    // pyiceberg's own transforms.
    let (code, maintained) = env.json(&[
        "maintain",
        "ns.events_p",
        "--only",
        "rewrite-data-files,rewrite-manifests",
    ]);
    assert_eq!(code, 0, "{maintained}");
    let compacted = &maintained["rewrite_data_files"]["compacted"];
    assert!(
        compacted["files_rewritten"].as_u64() >= Some(2),
        "{maintained}"
    );
    let after = python(&env, INSPECT, &[db, warehouse]);
    assert_eq!(after["pyiceberg_rows"], 3100, "{after}");
    assert_eq!(after["duckdb_rows"], 3100, "{after}");
    assert_eq!(after["mixed"], serde_json::json!([]), "{after}");
    assert_eq!(after["rows_in_one_day"], 1100, "{after}");
    assert_eq!(after["partitions"], seen["partitions"], "{after}");
    assert!(after["files"].as_u64() < seen["files"].as_u64(), "{after}");
}

/// The spec, and for each data file its partition tuple and the distinct values of the
/// partitioned column: argv = catalog db, warehouse, table.
const SPEC_AND_FILES: &str = r#"
import json, sys
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
db, warehouse, ident = sys.argv[1], sys.argv[2], sys.argv[3]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
table = catalog.load_table(ident)
files = []
for t in table.scan().plan_files():
    rows = pq.read_table(t.file.file_path.removeprefix("file://"), columns=["event_type"]).to_pylist()
    files.append({"partition": [str(v) if v is not None else None for v in t.file.partition],
                  "event_types": sorted({str(r["event_type"]) for r in rows})})
print(json.dumps({
    "spec": [f"{f.transform}:{table.schema().find_column_name(f.source_id)}" for f in table.spec().fields],
    "files": files,
    "rows": table.scan().to_arrow().num_rows,
    "null_rows": table.scan(row_filter="event_type is null").to_arrow().num_rows,
}))
"#;

#[test]
fn partition_by_creates_the_spec_and_nulls_land_in_the_null_partition() {
    let test = "partition_by_creates_the_spec_and_nulls_land_in_the_null_partition";
    let env = Env::new();
    // `events` has a null event_type in some rows (null_users adds null user ids).
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    let ids: Vec<i64> = (0..600).collect();
    let kinds: Vec<Option<&str>> = ids
        .iter()
        .map(|i| match i % 4 {
            0 => None,
            1 => Some("click"),
            2 => Some("view"),
            _ => Some("buy"),
        })
        .collect();
    let ts: Vec<i64> = ids
        .iter()
        .map(|i| 1_714_521_600_000_000 + i * 7_200_000_000)
        .collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow_array::Int64Array::from(ids)),
            Arc::new(arrow_array::StringArray::from(kinds)),
            Arc::new(arrow_array::TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
        ],
    )
    .unwrap();
    write(&env.path("in/e.parquet"), &batch);

    // A bad term is a usage error naming it; nothing is created.
    let out = env.sluice(&[
        "run",
        "--source",
        "in",
        "--table",
        "ns.p",
        "--partition-by",
        "event_type, weekly(ts)",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`weekly(ts)`"), "{stderr}");
    // A column that is not in the data fails the run before a table exists.
    let out = env.sluice(&[
        "run",
        "--source",
        "in",
        "--table",
        "ns.p",
        "--partition-by",
        "day(when)",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("column `when`"), "{stderr}");
    let (_, tables) = env.json(&["tables"]);
    assert!(!tables.to_string().contains("ns.p"), "{tables}");

    let (code, report) = run_into(
        &env,
        "in",
        "ns.p",
        &["--partition-by", "event_type, month(ts)"],
    );
    assert_eq!(code, 0, "{report}");
    let partitions = report["partitions"].as_array().unwrap();
    // 1,200 hours span May and June 2024: four event types (null included) by two months.
    assert_eq!(partitions.len(), 8, "{report}");
    assert!(
        partitions.iter().any(|p| p["partition"]
            .as_str()
            .unwrap()
            .starts_with("event_type=null/")),
        "{report}"
    );

    // Another spec for the existing table names both.
    write(&env.path("more/e.parquet"), &batch);
    let out = env.sluice(&[
        "run",
        "--source",
        "more",
        "--table",
        "ns.p",
        "--partition-by",
        "day(ts)",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("event_type, month(ts)") && stderr.contains("day(ts)"),
        "{stderr}"
    );

    // A failing check names the partitions of its failing rows.
    std::fs::write(
        env.path("kinds.toml"),
        "[[check]]\nkind = \"accepted_values\"\ncolumn = \"event_type\"\nvalues = [\"click\", \"view\"]\n",
    )
    .unwrap();
    write(&env.path("bad/e.parquet"), &batch);
    let (code, failed) = run_into(&env, "bad", "ns.p", &["--checks", "kinds.toml"]);
    assert_eq!(code, 3, "{failed}");
    assert_eq!(
        failed["checks"][0]["partitions"],
        serde_json::json!(["event_type=buy/ts_month=2024-05"]),
        "{failed}"
    );
    let out = env.sluice(&[
        "run",
        "--source",
        "bad",
        "--table",
        "ns.p",
        "--checks",
        "kinds.toml",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("in partition(s): event_type=buy/ts_month=2024-05"),
        "{stdout}"
    );

    if !python_readers(test) {
        return;
    }
    let db = env.path(".sluice/catalog.db");
    let warehouse = env.path(".sluice/warehouse");
    let seen = python(
        &env,
        SPEC_AND_FILES,
        &[db.to_str().unwrap(), warehouse.to_str().unwrap(), "ns.p"],
    );
    assert_eq!(
        seen["spec"],
        serde_json::json!(["identity:event_type", "month:ts"]),
        "{seen}"
    );
    assert_eq!(seen["rows"], 600, "{seen}");
    assert_eq!(seen["null_rows"], 150, "{seen}");
    for file in seen["files"].as_array().unwrap() {
        let kinds = file["event_types"].as_array().unwrap();
        assert_eq!(kinds.len(), 1, "a file mixes partitions: {seen}");
        let partition = &file["partition"][0];
        match partition.as_str() {
            Some(kind) => assert_eq!(kinds[0], kind, "{seen}"),
            None => assert_eq!(kinds[0], "None", "{seen}"),
        }
    }
}

/// A table-scoped `unique` reads only the files of `main` whose key bounds (or partition
/// values) can hold a new key: none while ids only grow, and the overlapping ones otherwise,
/// where it still finds the conflict.
#[test]
fn table_scoped_unique_reads_only_files_whose_keys_can_collide() {
    let env = Env::new();
    std::fs::write(
        env.path("checks.toml"),
        "[[check]]\nkind = \"unique\"\ncolumns = [\"event_id\"]\nscope = \"table\"\n",
    )
    .unwrap();
    let run = |source: &str| {
        env.json(&[
            "run",
            "--source",
            source,
            "--table",
            "ns.keys",
            "--checks",
            "checks.toml",
            "--partition-by",
            "truncate(1000, event_id)",
        ])
    };
    for n in 0..5i64 {
        write(
            &env.path(&format!("b{n}/e.parquet")),
            &events(n * 1000..(n + 1) * 1000, false),
        );
        let (code, report) = run(&format!("b{n}"));
        assert_eq!(code, 0, "{report}");
        if n > 0 {
            assert_eq!(
                report["main_files_read"],
                serde_json::json!({"files_read": 0, "files_in_main": n}),
                "run {n}: {report}"
            );
        }
    }
    // Keys 2500 and 9999: only the files of 2000..4999 can hold them (range pruning), and
    // the conflict on 2500 is found.
    write(&env.path("dup/e.parquet"), &events(2500..2501, false));
    write(&env.path("dup/f.parquet"), &events(9999..10000, false));
    let (code, report) = run("dup");
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["main_files_read"]["files_read"], 3, "{report}");
    assert_eq!(report["checks"][0]["rows_failing"], 1, "{report}");
}

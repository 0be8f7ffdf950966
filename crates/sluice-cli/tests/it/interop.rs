//! Tables sluice writes hold every type producers commonly write, nested several levels, and
//! independent readers (pyiceberg, DuckDB) read them back as the source files hold them.

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

/// Every type a producer commonly writes: decimal, date, timestamps with and without zone,
/// float32, binary, dictionary-encoded and large strings, lists, large lists, maps and structs
/// nested several levels.
fn zoo_schema() -> Schema {
    let item = |t: DataType| Arc::new(Field::new("item", t, true));
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Decimal128(12, 3), true),
        Field::new("day", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "ts_utc",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("ratio", DataType::Float32, true),
        Field::new("blob", DataType::Binary, true),
        Field::new(
            "kind",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("note", DataType::LargeUtf8, true),
        Field::new("tags", DataType::List(item(DataType::Utf8)), true),
        Field::new("counts", DataType::LargeList(item(DataType::Int64)), true),
        Field::new("attrs", map_of(DataType::Utf8, DataType::Int64), true),
        Field::new(
            "loc",
            struct_of(vec![
                Field::new("lat", DataType::Float64, true),
                Field::new("lon", DataType::Float64, true),
                Field::new(
                    "place",
                    struct_of(vec![
                        Field::new("name", DataType::Utf8, true),
                        Field::new(
                            "codes",
                            DataType::List(item(struct_of(vec![
                                Field::new("k", DataType::Utf8, true),
                                Field::new("v", DataType::Int32, true),
                            ]))),
                            true,
                        ),
                    ]),
                    true,
                ),
            ]),
            true,
        ),
        Field::new(
            "events",
            DataType::List(item(map_of(
                DataType::Utf8,
                DataType::List(item(DataType::Float64)),
            ))),
            true,
        ),
    ])
}

/// Rows `ids` of the zoo; some values null, some lists empty.
fn zoo(ids: std::ops::Range<i64>) -> RecordBatch {
    let kinds = ["click", "view", "buy"];
    let mut lines = String::new();
    for i in ids {
        let row = serde_json::json!({
            "id": i,
            "price": if i % 5 == 0 { serde_json::Value::Null } else { format!("{}.{:03}", i * 7, i % 1000).into() },
            "day": 19_000 + i,
            "ts": 1_700_000_000_000_000i64 + i * 1_000_001,
            "ts_utc": 1_600_000_000_000_000i64 + i * 3_000_007,
            "ratio": (i as f64) / 8.0,
            "blob": format!("{:02x}{:02x}00ff", i % 256, (i * 3) % 256),
            "kind": kinds[(i % 3) as usize],
            "note": format!("note {i} ✓"),
            "tags": if i % 4 == 0 { serde_json::json!([]) } else { serde_json::json!([format!("t{i}"), null, "x"]) },
            "counts": (0..(i % 3)).collect::<Vec<_>>(),
            "attrs": if i % 6 == 0 { serde_json::Value::Null } else { serde_json::json!({"a": i, "b": null}) },
            "loc": if i % 7 == 0 { serde_json::Value::Null } else { serde_json::json!({
                "lat": 48.0 + i as f64 / 100.0,
                "lon": 2.0 - i as f64 / 100.0,
                "place": {"name": format!("p{i}"), "codes": [{"k": "zip", "v": i}, {"k": null, "v": null}]},
            })},
            "events": [{"m": [i as f64, 0.5]}, {}],
        });
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    // Arrow's JSON reader cannot decode dictionaries: decode `kind` as strings, then encode it.
    let schema = zoo_schema();
    let plain = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, v) => f.as_ref().clone().with_data_type(v.as_ref().clone()),
                // The JSON reader knows offsets only; the zone is set by the cast below.
                DataType::Timestamp(unit, Some(_)) => f
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, Some("+00:00".into()))),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let batch = arrow::json::ReaderBuilder::new(plain)
        .build(std::io::Cursor::new(lines))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| arrow::compute::cast(c, f.data_type()).unwrap())
        .collect();
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
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

#[test]
fn a_type_zoo_round_trips_in_copy_and_register_mode() {
    let env = Env::new();
    let first = env.path("zoo1/a.parquet");
    let second = env.path("zoo2/b.parquet");
    write(&first, &zoo(0..40));
    // The second file is zstd-compressed with statistics, as the chunk copier wants it.
    write_zstd(&second, &zoo(40..90));
    for (table, extra) in [
        ("ns.zoo_copy", &[][..]),
        ("ns.zoo_rewrite", &["--rewrite"][..]),
        ("ns.zoo_register", &["--mode", "register"][..]),
    ] {
        // The first run creates the table from the file; the second appends to it.
        let (code, report) = run_into(&env, "zoo1", table, extra);
        assert_eq!(code, 0, "{table}: {report}");
        let (code, report) = run_into(&env, "zoo2", table, extra);
        assert_eq!(code, 0, "{table}: {report}");
        assert_eq!(report["rows"], 50, "{table}: {report}");
        // The iceberg crate's reader does not yet map nested columns of files without field
        // ids (registered ones) to the table's: sluice reads the copied tables only.
        if !table.ends_with("register") {
            assert_eq!(scanned_rows(&env, table), 90, "{table}");
        }
        assert_read_back_identically(&env, table, &[&first, &second]);
    }
}

fn located(ids: std::ops::Range<i64>, with_alt: bool) -> RecordBatch {
    let mut point = vec![
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
    ];
    if with_alt {
        point.push(Field::new("alt", DataType::Float64, true));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "loc",
            struct_of(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("point", struct_of(point), true),
            ]),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
    ]));
    let lines: String = ids
        .map(|i| {
            let mut point = serde_json::json!({"lat": i as f64, "lon": -(i as f64)});
            if with_alt {
                point["alt"] = serde_json::json!(i as f64 * 10.0);
            }
            format!(
                "{}\n",
                serde_json::json!({"id": i, "loc": {"name": format!("n{i}"), "point": point}, "tags": ["a", format!("t{i}")]})
            )
        })
        .collect();
    arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(lines))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// Prints `[id, loc.point.alt]` of every row, sorted: argv = catalog db, warehouse, table.
const READ_ALT: &str = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
db, warehouse, ident = sys.argv[1], sys.argv[2], sys.argv[3]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
print(json.dumps(sorted([r["id"], ((r["loc"] or {}).get("point") or {}).get("alt")] for r in rows)))
"#;

#[test]
fn a_new_struct_field_is_added_with_add_columns_in_both_modes() {
    for (table, extra) in [
        ("ns.geo_copy", &[][..]),
        ("ns.geo_register", &["--mode", "register"][..]),
    ] {
        let env = Env::new();
        let old = env.path("old/a.parquet");
        let new = env.path("new/b.parquet");
        let late = env.path("late/c.parquet");
        write(&old, &located(0..10, false));
        write(&new, &located(10..20, true));
        write(&late, &located(20..30, false));
        let (code, report) = run_into(&env, "old", table, extra);
        assert_eq!(code, 0, "{table}: {report}");

        // Without the option, the new nested field is drift that names its path.
        let mut args = vec!["run", "--source", "new", "--table", table];
        args.extend_from_slice(extra);
        let out = env.sluice(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{table}: {stderr}");
        assert!(
            stderr.contains("new/b.parquet")
                && stderr.contains("`loc.point.alt`")
                && stderr.contains("--on-schema-change add-columns"),
            "{table}: {stderr}"
        );

        let mut with_evolution = extra.to_vec();
        with_evolution.extend_from_slice(&["--on-schema-change", "add-columns"]);
        let (code, report) = run_into(&env, "new", table, &with_evolution);
        assert_eq!(code, 0, "{table}: {report}");
        // Files of the old shape still fit: the field reads as null for them.
        let (code, report) = run_into(&env, "late", table, extra);
        assert_eq!(code, 0, "{table}: {report}");

        // The iceberg crate's reader cannot yet fill a struct field missing from older files,
        // so the rows are read back by pyiceberg and DuckDB only.
        if !python_readers(table) {
            continue;
        }
        let alts = python(
            &env,
            READ_ALT,
            &[
                env.path(".sluice/catalog.db").to_str().unwrap(),
                env.path(".sluice/warehouse").to_str().unwrap(),
                table,
            ],
        );
        let alts: Vec<(i64, Option<f64>)> = alts
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64()))
            .collect();
        assert_eq!(alts.len(), 30, "{table}: {alts:?}");
        for (id, alt) in alts {
            let expected = (10..20).contains(&id).then_some(id as f64 * 10.0);
            assert_eq!(alt, expected, "{table}: id {id}");
        }
        assert_read_back_identically(&env, table, &[&old, &new, &late]);
    }
}

#[test]
fn unsupported_types_name_the_file_and_every_column() {
    let env = Env::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("big", DataType::UInt64, true),
        Field::new(
            "inner",
            struct_of(vec![Field::new("count", DataType::UInt64, true)]),
            true,
        ),
    ]));
    let lines = r#"{"id": 1, "big": 18446744073709551615, "inner": {"count": 3}}"#;
    let batch = arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(lines))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    write(&env.path("u/unsigned.parquet"), &batch);
    let out = env.sluice(&["run", "--source", "u", "--table", "ns.unsigned"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "u/unsigned.parquet",
        "column `big`",
        "column `inner.count`",
        // The hint of what to use instead is kept.
        "Decimal(20,0)",
    ] {
        assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    }
    for internal in ["DataInvalid", "=>", "iceberg:"] {
        assert!(!stderr.contains(internal), "`{internal}` in: {stderr}");
    }
    // Nothing was created.
    let (_, tables) = env.json(&["tables"]);
    assert!(
        !tables.to_string().contains("unsigned"),
        "a table was created: {tables}"
    );
}

/// Creates `ns.events_p`, partitioned by identity on `event_type`: argv = catalog db, warehouse.
const CREATE_PARTITIONED: &str = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType, DoubleType
from pyiceberg.partitioning import PartitionSpec, PartitionField
from pyiceberg.transforms import IdentityTransform
db, warehouse = sys.argv[1], sys.argv[2]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
catalog.create_namespace_if_not_exists("ns")
schema = Schema(
    NestedField(1, "event_id", LongType()),
    NestedField(2, "user_id", LongType()),
    NestedField(3, "event_type", StringType()),
    NestedField(4, "amount", DoubleType()),
)
spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=IdentityTransform(), name="event_type"))
catalog.create_table("ns.events_p", schema=schema, partition_spec=spec)
print(json.dumps({"created": True}))
"#;

#[test]
fn the_partitioned_table_refusal_names_the_table_and_refs() {
    let test = "the_partitioned_table_refusal_names_the_table_and_refs";
    if !python_readers(test) {
        return;
    }
    let env = Env::new();
    // A first run creates the catalog database.
    write(&env.path("seed/s.parquet"), &events(0..10, false));
    assert_eq!(env.run("seed").0, 0);
    let db = env.path(".sluice/catalog.db");
    let warehouse = env.path(".sluice/warehouse");
    python(
        &env,
        CREATE_PARTITIONED,
        &[db.to_str().unwrap(), warehouse.to_str().unwrap()],
    );
    write(&env.path("p/p.parquet"), &events(10..20, false));
    for mode in ["copy", "register"] {
        let out = env.sluice(&[
            "run",
            "--source",
            "p",
            "--table",
            "ns.events_p",
            "--mode",
            mode,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {stderr}");
        assert!(
            stderr.contains("ns.events_p")
                && stderr.contains("`sluice/")
                && stderr.contains("into `main`")
                && stderr.contains("partitioned"),
            "{mode}: {stderr}"
        );
        assert!(!stderr.contains("``"), "{mode}: {stderr}");
    }
}

/// Reads the current snapshot's manifest list and manifests of a table with fastavro and
/// checks them against the spec's format version 2 schemas (written out here, from the spec):
/// argv = catalog db, warehouse, table. Prints what it found.
const CHECK_MANIFESTS: &str = r#"
import json, sys
import fastavro
from pyiceberg.catalog.sql import SqlCatalog

def opt(fid, name, t):
    return {"name": name, "type": ["null", t], "default": None, "field-id": fid}
def req(fid, name, t):
    return {"name": name, "type": t, "field-id": fid}
def int_map(fid, name, kid, vid, v):
    return opt(fid, name, {"type": "array", "logicalType": "map", "items": {
        "type": "record", "name": f"k{kid}_v{vid}",
        "fields": [req(kid, "key", "int"), req(vid, "value", v)]}})

# Format version 2, from the Iceberg spec (Manifests, Manifest Lists).
MANIFEST_V2 = {"type": "record", "name": "manifest_entry", "fields": [
    req(0, "status", "int"),
    opt(1, "snapshot_id", "long"),
    opt(3, "sequence_number", "long"),
    opt(4, "file_sequence_number", "long"),
    req(2, "data_file", {"type": "record", "name": "r2", "fields": [
        req(134, "content", "int"),
        req(100, "file_path", "string"),
        req(101, "file_format", "string"),
        req(102, "partition", {"type": "record", "name": "r102", "fields": []}),
        req(103, "record_count", "long"),
        req(104, "file_size_in_bytes", "long"),
        int_map(108, "column_sizes", 117, 118, "long"),
        int_map(109, "value_counts", 119, 120, "long"),
        int_map(110, "null_value_counts", 121, 122, "long"),
        int_map(137, "nan_value_counts", 138, 139, "long"),
        int_map(125, "lower_bounds", 126, 127, "bytes"),
        int_map(128, "upper_bounds", 129, 130, "bytes"),
        opt(131, "key_metadata", "bytes"),
        opt(132, "split_offsets", {"type": "array", "items": "long", "element-id": 133}),
        opt(135, "equality_ids", {"type": "array", "items": "int", "element-id": 136}),
        opt(140, "sort_order_id", "int"),
        opt(143, "referenced_data_file", "string"),
    ]}),
]}
MANIFEST_LIST_V2 = {"type": "record", "name": "manifest_file", "fields": [
    req(500, "manifest_path", "string"),
    req(501, "manifest_length", "long"),
    req(502, "partition_spec_id", "int"),
    req(517, "content", "int"),
    req(515, "sequence_number", "long"),
    req(516, "min_sequence_number", "long"),
    req(503, "added_snapshot_id", "long"),
    req(504, "added_files_count", "int"),
    req(505, "existing_files_count", "int"),
    req(506, "deleted_files_count", "int"),
    req(512, "added_rows_count", "long"),
    req(513, "existing_rows_count", "long"),
    req(514, "deleted_rows_count", "long"),
    opt(507, "partitions", {"type": "array", "element-id": 508, "items": {
        "type": "record", "name": "r508", "fields": [
            req(509, "contains_null", "boolean"),
            opt(518, "contains_nan", "boolean"),
            opt(510, "lower_bound", "bytes"),
            opt(511, "upper_bound", "bytes")]}}),
    opt(519, "key_metadata", "bytes"),
]}

def field_ids(schema, out):
    if isinstance(schema, dict):
        if "field-id" in schema:
            out[schema["field-id"]] = schema["name"]
        for v in schema.values():
            field_ids(v, out)
    elif isinstance(schema, list):
        for v in schema:
            field_ids(v, out)
    return out

problems = []
def check_file(path, spec_schema, required_meta):
    with open(path.removeprefix("file://"), "rb") as f:
        reader = fastavro.reader(f)
        meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in reader.metadata.items()}
        records = list(reader)
        written = field_ids(reader.writer_schema, {})
    if meta.get("avro.codec") != "deflate":
        problems.append(f"{path}: codec {meta.get('avro.codec')}")
    for key in required_meta:
        if key not in meta:
            problems.append(f"{path}: no `{key}` metadata")
    if meta.get("format-version") != "2":
        problems.append(f"{path}: format-version {meta.get('format-version')}")
    spec_ids = field_ids(spec_schema, {})
    extra = {i: n for i, n in written.items() if i not in spec_ids}
    if extra:
        problems.append(f"{path}: fields outside the v2 schema {extra}")
    parsed = fastavro.parse_schema(spec_schema)
    for r in records:
        try:
            fastavro.validate(r, parsed, strict=True)
        except Exception as e:
            problems.append(f"{path}: record does not validate: {e}")
    # The file must also read with the spec's schema as the reader schema.
    with open(path.removeprefix("file://"), "rb") as f:
        list(fastavro.reader(f, reader_schema=parsed))
    return meta, records

db, warehouse, ident = sys.argv[1], sys.argv[2], sys.argv[3]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
table = catalog.load_table(ident)
snapshot = table.current_snapshot()
_, manifests = check_file(snapshot.manifest_list, MANIFEST_LIST_V2,
    ["snapshot-id", "parent-snapshot-id", "sequence-number", "format-version", "iceberg.schema"])
entries = []
for m in manifests:
    meta, recs = check_file(m["manifest_path"], MANIFEST_V2,
        ["schema", "schema-id", "partition-spec", "partition-spec-id", "format-version", "content", "iceberg.schema"])
    if meta.get("content") != "data":
        problems.append(f"content {meta.get('content')}")
    entries.extend(recs)
ratio_id = table.schema().find_field("ratio").field_id
amount_id = table.schema().find_field("amount").field_id
print(json.dumps({
    "problems": problems,
    "manifests": len(manifests),
    "entries": len(entries),
    "sort_order_ids": sorted({e["data_file"]["sort_order_id"] for e in entries}, key=str),
    "nan_ratio": sum(dict((kv["key"], kv["value"]) for kv in (e["data_file"]["nan_value_counts"] or [])).get(ratio_id, -1000) for e in entries),
    "nan_amount": sum(dict((kv["key"], kv["value"]) for kv in (e["data_file"]["nan_value_counts"] or [])).get(amount_id, -1000) for e in entries),
    "rows": table.scan().to_arrow().num_rows,
}))
"#;

fn floats(ids: std::ops::Range<i64>) -> RecordBatch {
    use arrow_array::{Float32Array, Float64Array, Int64Array};
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ratio", DataType::Float32, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let ratio: Vec<Option<f32>> = ids
        .clone()
        .map(|i| match i % 4 {
            0 => Some(f32::NAN),
            1 => None,
            _ => Some(i as f32 / 3.0),
        })
        .collect();
    let amount: Vec<f64> = ids
        .clone()
        .map(|i| if i % 5 == 0 { f64::NAN } else { i as f64 })
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.collect::<Vec<_>>())),
            Arc::new(Float32Array::from(ratio)),
            Arc::new(Float64Array::from(amount)),
        ],
    )
    .unwrap()
}

#[test]
fn manifests_and_manifest_lists_follow_the_v2_spec() {
    let test = "manifests_and_manifest_lists_follow_the_v2_spec";
    if !python_available(test, "fastavro, pyiceberg.catalog.sql") {
        return;
    }
    let env = Env::new();
    write(&env.path("f1/a.parquet"), &floats(0..20));
    write(&env.path("f2/b.parquet"), &floats(20..40));
    assert_eq!(run_into(&env, "f1", "ns.floats", &[]).0, 0);
    assert_eq!(run_into(&env, "f2", "ns.floats", &[]).0, 0);
    let db = env.path(".sluice/catalog.db");
    let warehouse = env.path(".sluice/warehouse");
    let found = python(
        &env,
        CHECK_MANIFESTS,
        &[
            db.to_str().unwrap(),
            warehouse.to_str().unwrap(),
            "ns.floats",
        ],
    );
    assert_eq!(found["problems"], serde_json::json!([]), "{found}");
    // Both runs' manifests are in the list, one entry each.
    assert_eq!(found["manifests"], 2, "{found}");
    assert_eq!(found["entries"], 2, "{found}");
    assert_eq!(found["sort_order_ids"], serde_json::json!([0]), "{found}");
    // NaN counts of float and double columns: every fourth ratio, every fifth amount.
    assert_eq!(found["nan_ratio"], 10, "{found}");
    assert_eq!(found["nan_amount"], 8, "{found}");
    assert_eq!(found["rows"], 40, "{found}");
}

#[test]
fn init_writes_the_catalog_name_other_engines_must_use() {
    let env = Env::new();
    std::fs::remove_file(env.path("sluice.toml")).unwrap();
    let out = env.sluice(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(env.path("sluice.toml")).unwrap();
    let catalog: Vec<&str> = config
        .lines()
        .skip_while(|l| l.trim() != "[catalog]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .collect();
    assert!(
        catalog.iter().any(|l| l.trim() == "name = \"default\""),
        "{config}"
    );
}

/// The zoo's primitive columns, `n` rows of values that do not compress well, so that a zstd
/// file of them has row groups large enough for their chunks to be copied as they are.
fn primitive_zoo(n: i64) -> RecordBatch {
    use arrow_array::{
        BinaryArray, Date32Array, Float32Array, Int64Array, LargeStringArray,
        TimestampMicrosecondArray,
    };
    let mix = |i: i64| {
        let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let blobs: Vec<Vec<u8>> = (0..n).map(|i| mix(i).to_le_bytes().repeat(2)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "ts_utc",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("ratio", DataType::Float32, true),
        Field::new("blob", DataType::Binary, true),
        Field::new("note", DataType::LargeUtf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(
                (0..n)
                    .map(|i| 19_000 + (i % 500) as i32)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMicrosecondArray::from(
                (0..n).map(|i| (mix(i) >> 12) as i64).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..n)
                        .map(|i| (mix(i + n) >> 12) as i64)
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float32Array::from(
                (0..n)
                    .map(|i| (mix(i) >> 40) as f32 / 7.0)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(BinaryArray::from(
                blobs.iter().map(|b| Some(b.as_slice())).collect::<Vec<_>>(),
            )),
            Arc::new(LargeStringArray::from(
                (0..n).map(|i| format!("{:x}", mix(i))).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

#[test]
fn primitive_zoo_columns_are_copied_as_they_are_and_read_back_identically() {
    let env = Env::new();
    let source = env.path("prim/p.parquet");
    write_zstd(&source, &primitive_zoo(100_000));
    let (code, report) = run_into(&env, "prim", "ns.prim", &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["copied_as_is"], 1, "{report}");
    assert_eq!(scanned_rows(&env, "ns.prim"), 100_000);
    assert_read_back_identically(&env, "ns.prim", &[&source]);
}

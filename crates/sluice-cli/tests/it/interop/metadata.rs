//! What other engines read besides the data: the catalog name, manifests and manifest lists.

use super::*;

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
    "statuses": sorted(e["status"] for e in entries),
    "existing_without_sequence": sum(
        1 for e in entries if e["status"] == 0 and e["sequence_number"] is None),
    "rows_at": {s.snapshot_id: table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows
                for s in table.snapshots()} if len(sys.argv) > 4 else {},
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

/// Many small runs: the manifests are merged as the table says (sluice's tables: 16), every
/// file is still read once, carried-over entries keep their sequence numbers, and other
/// engines read the table and every older snapshot as before.
#[test]
fn manifests_of_many_runs_are_merged_and_read_the_same_by_other_engines() {
    let test = "manifests_of_many_runs_are_merged_and_read_the_same_by_other_engines";
    if !python_available(test, "fastavro, pyiceberg.catalog.sql") {
        return;
    }
    let env = Env::new();
    for run in 0..18 {
        let dir = format!("f{run}");
        write(
            &env.path(&format!("{dir}/a.parquet")),
            &floats(run * 20..run * 20 + 20),
        );
        assert_eq!(run_into(&env, &dir, "ns.floats", &[]).0, 0, "run {run}");
    }
    let db = env.path(".sluice/catalog.db");
    let warehouse = env.path(".sluice/warehouse");
    let found = python(
        &env,
        CHECK_MANIFESTS,
        &[
            db.to_str().unwrap(),
            warehouse.to_str().unwrap(),
            "ns.floats",
            "every-snapshot",
        ],
    );
    assert_eq!(found["problems"], serde_json::json!([]), "{found}");
    // The 16th run merged the 16 manifests; two more runs added one each.
    assert_eq!(found["manifests"], 3, "{found}");
    assert_eq!(found["entries"], 18, "{found}");
    let statuses = found["statuses"].as_array().unwrap();
    assert_eq!(statuses.iter().filter(|s| *s == 0).count(), 15, "{found}");
    assert_eq!(found["existing_without_sequence"], 0, "{found}");
    assert_eq!(found["rows"], 18 * 20, "{found}");
    // Every snapshot reads what it held: 20 more rows per run (the first is empty).
    let mut rows: Vec<u64> = found["rows_at"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    rows.sort_unstable();
    assert_eq!(
        rows,
        (0..=18).map(|n| n * 20).collect::<Vec<_>>(),
        "{found}"
    );
    // sluice reads it too, and the log counts every run.
    assert_eq!(scanned_rows(&env, "ns.floats"), 18 * 20);
}

//! What sluice does not write names what to change: unsupported types, partitioned tables.

use super::*;

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

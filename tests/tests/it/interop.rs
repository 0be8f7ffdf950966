//! Interoperability through the REST catalog: pyiceberg reads what sluice published, and
//! sluice reads and appends to a table that pyiceberg created and wrote.

use std::path::PathBuf;

use sluice_lake::{RefMove, RefName, RefSpec};
use sluice_tests::{
    Backend, ServiceEnv, batch, expected_sum, ids, read, ref_state, run_python, schema, skip,
    sum_column,
};

/// Prints the rows, `amount` sum, ids and snapshot id of a ref: argv = props, table, ref.
const READ_REF: &str = r#"
import json, sys
from pyiceberg.catalog.rest import RestCatalog
props, ident, ref = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
table = RestCatalog("rest", **props).load_table(ident)
snap = table.snapshot_by_name(ref)
data = table.scan(snapshot_id=snap.snapshot_id).to_arrow()
amounts = [v for v in data.column("amount").to_pylist() if v is not None]
print(json.dumps({
    "snapshot_id": snap.snapshot_id,
    "rows": data.num_rows,
    "sum": sum(amounts),
    "ids": sorted(data.column("id").to_pylist()),
}))
"#;

/// Creates a table and appends ids [lo, hi): argv = props, table, lo, hi.
const CREATE_AND_APPEND: &str = r#"
import json, sys
import pyarrow as pa
from pyiceberg.catalog.rest import RestCatalog
props, ident, lo, hi = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
catalog = RestCatalog("rest", **props)
catalog.create_namespace_if_not_exists(ident.rsplit(".", 1)[0])
schema = pa.schema([
    pa.field("id", pa.int64()),
    pa.field("name", pa.string()),
    pa.field("amount", pa.float64()),
])
table = catalog.create_table(ident, schema=schema)
ids = list(range(lo, hi))
table.append(pa.table({"id": ids, "name": [f"n{i}" for i in ids], "amount": [i / 2 for i in ids]}, schema=schema))
print(json.dumps({"snapshot_id": table.current_snapshot().snapshot_id}))
"#;

/// The REST backend and its python, or `None` after a visible skip.
fn rest_with_python(test: &str) -> Option<(Backend, ServiceEnv, PathBuf)> {
    let backend = Backend::rest_s3(test)?;
    let services = backend
        .services()
        .expect("a REST backend has services")
        .clone();
    let Some(python) = services.python.clone() else {
        skip(
            test,
            "SLUICE_TEST_PYTHON (a python with pyiceberg) is not set",
        );
        return None;
    };
    Some((backend, services, python))
}

fn pyiceberg_read(
    python: &std::path::Path,
    services: &ServiceEnv,
    table: &str,
    reference: &str,
) -> serde_json::Value {
    run_python(
        python,
        READ_REF,
        &[
            services.pyiceberg_properties().to_string(),
            table.to_string(),
            reference.to_string(),
        ],
    )
}

#[tokio::test]
async fn pyiceberg_reads_what_sluice_published() {
    let Some((backend, services, python)) =
        rest_with_python("interop::pyiceberg_reads_what_sluice_published")
    else {
        return;
    };
    let lake = backend.connect().await;
    let table = backend.table("to_pyiceberg");
    lake.create_table(&table, &schema()).await.unwrap();
    let main = RefName::main();
    lake.append_batches(&table, &main, &[batch(0..30)], Default::default())
        .await
        .unwrap();
    // One copy-mode and one registered file on an audit branch, then published by a rebase
    // (main moved meanwhile), so pyiceberg reads every kind of snapshot sluice writes.
    let branch = RefName::new("audit").unwrap();
    lake.create_branch(&table, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&table, &branch, &[batch(30..50)], Default::default())
        .await
        .unwrap();
    let raw = backend
        .put_raw(
            &lake,
            "in/part-0.parquet",
            sluice_tests::parquet_bytes(&batch(50..60)),
        )
        .await;
    let loaded = lake.load_table(&table).await.unwrap();
    let files = lake.register_files(&loaded, &[raw]).await.unwrap();
    lake.commit_append(
        &table,
        sluice_lake::AppendRequest {
            branch: branch.clone(),
            create_from: None,
            files,
            properties: Default::default(),
        },
    )
    .await
    .unwrap();
    lake.append_batches(&table, &main, &[batch(60..65)], Default::default())
        .await
        .unwrap();
    let published = lake
        .publish(
            &table,
            RefMove {
                source: &branch,
                target: &main,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(published.kind, sluice_lake::PublishKind::Rebase);

    let sluice_rows = read(&lake, &table, "main").await;
    let sluice_sum = sum_column(&sluice_rows, "amount");
    assert_eq!(sluice_sum, expected_sum(0..65));

    let py = pyiceberg_read(&python, &services, &table.to_string(), "main");
    assert_eq!(py["snapshot_id"], published.snapshot_id);
    assert_eq!(py["rows"], 65);
    assert_eq!(py["sum"].as_f64().unwrap(), sluice_sum);
    let py_ids: Vec<i64> = serde_json::from_value(py["ids"].clone()).unwrap();
    assert_eq!(py_ids, (0..65).collect::<Vec<_>>());
    // The branch is readable by name too.
    let py_branch = pyiceberg_read(&python, &services, &table.to_string(), "audit");
    assert_eq!(py_branch["rows"], 60);
    assert_eq!(
        py_branch["snapshot_id"],
        ref_state(&lake, &table).await["audit"]
    );
}

#[tokio::test]
async fn sluice_appends_to_a_table_pyiceberg_wrote() {
    let Some((backend, services, python)) =
        rest_with_python("interop::sluice_appends_to_a_table_pyiceberg_wrote")
    else {
        return;
    };
    let table = backend.table("from_pyiceberg");
    let written = run_python(
        &python,
        CREATE_AND_APPEND,
        &[
            services.pyiceberg_properties().to_string(),
            table.to_string(),
            "1000".to_string(),
            "1010".to_string(),
        ],
    );

    let lake = backend.connect().await;
    assert_eq!(
        ref_state(&lake, &table).await["main"],
        written["snapshot_id"]
    );
    assert_eq!(
        ids(&lake, &table, "main").await,
        (1000..1010).collect::<Vec<_>>()
    );
    assert_eq!(
        sum_column(&read(&lake, &table, "main").await, "amount"),
        expected_sum(1000..1010)
    );

    let branch = RefName::new("sluice-run").unwrap();
    lake.create_branch(&table, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&table, &branch, &[batch(0..5)], Default::default())
        .await
        .unwrap();
    let published = lake
        .publish(&table, RefMove::into_main(&branch), Default::default())
        .await
        .unwrap();
    assert_eq!(published.kind, sluice_lake::PublishKind::FastForward);
    let expected: Vec<i64> = (0..5).chain(1000..1010).collect();
    assert_eq!(ids(&lake, &table, "main").await, expected);

    // And pyiceberg sees both its rows and sluice's.
    let py = pyiceberg_read(&python, &services, &table.to_string(), "main");
    assert_eq!(py["snapshot_id"], published.snapshot_id);
    assert_eq!(py["rows"], 15);
    let py_ids: Vec<i64> = serde_json::from_value(py["ids"].clone()).unwrap();
    assert_eq!(py_ids, expected);
    assert_eq!(
        py["sum"].as_f64().unwrap(),
        expected_sum(expected.iter().copied())
    );
}

/// Creates a table partitioned by bucket(4, id) and truncate(10, id): argv = props, table.
const CREATE_PARTITIONED: &str = r#"
import json, sys
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType, DoubleType
from pyiceberg.partitioning import PartitionSpec, PartitionField
from pyiceberg.transforms import BucketTransform, TruncateTransform
props, ident = json.loads(sys.argv[1]), sys.argv[2]
catalog = RestCatalog("rest", **props)
catalog.create_namespace_if_not_exists(ident.rsplit(".", 1)[0])
schema = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "name", StringType(), required=False),
    NestedField(3, "amount", DoubleType(), required=False),
)
spec = PartitionSpec(
    PartitionField(source_id=1, field_id=1000, transform=BucketTransform(4), name="id_bucket"),
    PartitionField(source_id=1, field_id=1001, transform=TruncateTransform(10), name="id_trunc"),
)
catalog.create_table(ident, schema=schema, partition_spec=spec)
print(json.dumps({"created": True}))
"#;

/// Rows per partition, and files planned for all rows and for ids 10..19: argv = props, table.
const INSPECT_PARTITIONED: &str = r#"
import json, sys
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.transforms import BucketTransform, TruncateTransform
from pyiceberg.types import LongType
props, ident = json.loads(sys.argv[1]), sys.argv[2]
table = RestCatalog("rest", **props).load_table(ident)
bucket = BucketTransform(4).transform(LongType())
mixed = 0
for task in table.scan().plan_files():
    ids = table.io.new_input(task.file.file_path)
    import pyarrow.parquet as pq
    with ids.open() as f:
        values = pq.read_table(f, columns=["id"]).column("id").to_pylist()
    if any((bucket(v), v - v % 10) != tuple(task.file.partition) for v in values):
        mixed += 1
print(json.dumps({
    "rows": table.scan().to_arrow().num_rows,
    "files": len(list(table.scan().plan_files())),
    "files_for_tens": len(list(table.scan(row_filter="id >= 10 and id < 20").plan_files())),
    "rows_for_tens": table.scan(row_filter="id >= 10 and id < 20").to_arrow().num_rows,
    "partitions": sum(1 for _ in table.inspect.partitions().to_pylist()),
    "mixed": mixed,
}))
"#;

#[tokio::test]
async fn sluice_writes_and_rebases_into_a_table_pyiceberg_partitioned() {
    let Some((backend, services, python)) =
        rest_with_python("interop::sluice_writes_and_rebases_into_a_table_pyiceberg_partitioned")
    else {
        return;
    };
    let table = backend.table("partitioned_by_pyiceberg");
    let props = services.pyiceberg_properties().to_string();
    run_python(
        &python,
        CREATE_PARTITIONED,
        &[props.clone(), table.to_string()],
    );

    let lake = backend.connect().await;
    let main = RefName::main();
    lake.append_batches(&table, &main, &[batch(0..30)], Default::default())
        .await
        .unwrap();
    // A branch's appends rebased onto a main that moved, across partitions.
    let branch = RefName::new("audit").unwrap();
    lake.create_branch(&table, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&table, &branch, &[batch(30..50)], Default::default())
        .await
        .unwrap();
    lake.append_batches(&table, &main, &[batch(50..60)], Default::default())
        .await
        .unwrap();
    let published = lake
        .publish(
            &table,
            RefMove {
                source: &branch,
                target: &main,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(published.kind, sluice_lake::PublishKind::Rebase);
    assert_eq!(
        ids(&lake, &table, "main").await,
        (0..60).collect::<Vec<_>>()
    );

    let seen = run_python(&python, INSPECT_PARTITIONED, &[props, table.to_string()]);
    assert_eq!(seen["rows"], 60, "{seen}");
    assert_eq!(seen["mixed"], 0, "{seen}");
    assert_eq!(seen["rows_for_tens"], 10, "{seen}");
    assert!(
        seen["files_for_tens"].as_u64().unwrap() < seen["files"].as_u64().unwrap(),
        "{seen}"
    );
    // Six tens by up to four buckets each.
    assert!(seen["partitions"].as_u64().unwrap() >= 6, "{seen}");
}

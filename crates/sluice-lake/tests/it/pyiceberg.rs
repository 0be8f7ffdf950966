//! Metadata written by sluice is valid Iceberg: pyiceberg opens the SQLite catalog and reads it.

use std::process::Command;

use sluice_lake::{RefName, RefSpec, ScanOptions};

use crate::common::*;

fn pyiceberg_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pyiceberg.catalog.sql, pyarrow"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("SLUICE_REQUIRE_PYICEBERG").is_some() {
            panic!(
                "pyiceberg is required (SLUICE_REQUIRE_PYICEBERG is set) but cannot be imported"
            );
        }
        eprintln!(
            "SKIPPED: pyiceberg is not installed (pip install \"pyiceberg[sql-sqlite,pyarrow]\")"
        );
    }
    ok
}

const READER: &str = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
uri, warehouse = sys.argv[1], sys.argv[2]
cat = SqlCatalog("default", uri=f"sqlite:///{uri}", warehouse=warehouse)
t = cat.load_table("ns.events")
out = {}
for ref in ("main", "dev"):
    snap = t.snapshot_by_name(ref)
    data = t.scan(snapshot_id=snap.snapshot_id).to_arrow()
    out[ref] = {"rows": data.num_rows, "sum": sum(v for v in data.column("amount").to_pylist() if v is not None)}
print(json.dumps(out))
"#;

#[tokio::test]
async fn pyiceberg_reads_main_and_a_branch_written_by_sluice() {
    if !pyiceberg_available() {
        return;
    }
    let t = new_lake().await;
    let main = RefName::main();
    let dev = RefName::new("dev").unwrap();
    // main gets a copy-mode append; dev gets a registered file and a chunk-copied one on top.
    t.lake
        .append_batches(&t.table, &main, &[batch(0..40)], Default::default())
        .await
        .unwrap();
    t.lake
        .create_branch(&t.table, &dev, &RefSpec::main())
        .await
        .unwrap();
    let raw = t.dir.path().join("raw.parquet");
    write_parquet(&raw, &batch(40..50));
    let table = t.lake.load_table(&t.table).await.unwrap();
    let mut files = t
        .lake
        .register_files(&table, &[file_url(&raw)])
        .await
        .unwrap();
    let zstd = t.dir.path().join("zstd.parquet");
    sluice_testkit::write_zstd_parquet(&zstd, &batch(50..60), 10);
    let options = sluice_lake::WriteOptions {
        min_copied_row_group_bytes: 0,
        ..Default::default()
    };
    let footer = sluice_lake::parquet::read_footer(t.lake.stores(), &file_url(&zstd))
        .await
        .unwrap();
    assert_eq!(
        sluice_lake::ingest::chunk_copy_blocker(&table, &footer, &options),
        None
    );
    let ingested = t
        .lake
        .ingest(
            &table,
            vec![footer],
            &crate::common::copy_options(options),
            None::<sluice_lake::ingest::NoObserver>,
        )
        .await
        .unwrap();
    assert_eq!(ingested.copied_as_is, 1);
    files.extend(ingested.files);
    t.lake
        .commit_append(
            &t.table,
            sluice_lake::AppendRequest {
                branch: dev.clone(),
                create_from: None,
                files,
                properties: Default::default(),
            },
        )
        .await
        .unwrap();
    let main_sum = sum_amount(
        &t.lake
            .scan_to_vec(&t.table, &RefSpec::main(), &ScanOptions::default())
            .await
            .unwrap(),
    );
    let dev_sum = sum_amount(
        &t.lake
            .scan_to_vec(
                &t.table,
                &RefSpec::parse("dev").unwrap(),
                &ScanOptions::default(),
            )
            .await
            .unwrap(),
    );

    let dir = t.dir.path().canonicalize().unwrap();
    let output = Command::new("python3")
        .args(["-c", READER])
        .arg(dir.join("catalog.db"))
        .arg(format!("file://{}", dir.join("warehouse").display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyiceberg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(read["main"]["rows"], 40);
    assert_eq!(read["dev"]["rows"], 60);
    assert_eq!(read["main"]["sum"].as_f64().unwrap(), main_sum);
    assert_eq!(read["dev"]["sum"].as_f64().unwrap(), dev_sum);
    assert_eq!(main_sum, (0..40).map(|i| i as f64 / 2.0).sum::<f64>());
    assert_eq!(dev_sum, (0..60).map(|i| i as f64 / 2.0).sum::<f64>());
}

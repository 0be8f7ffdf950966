use std::sync::Arc;

use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use sluice_lake::{Error, RefMove, RefName, RefSpec, TableName};

use crate::common::*;

/// Every bad input leaves every ref exactly where it was.
async fn assert_unchanged(t: &TestLake, before: &std::collections::HashMap<String, i64>) {
    assert_eq!(&ref_state(&t.lake, &t.table).await, before);
}

async fn seeded() -> TestLake {
    let t = new_lake().await;
    t.lake
        .append_batches(
            &t.table,
            &RefName::main(),
            &[batch(0..3)],
            Default::default(),
        )
        .await
        .unwrap();
    t.lake
        .create_branch(&t.table, &RefName::new("dev").unwrap(), &RefSpec::main())
        .await
        .unwrap();
    t
}

#[tokio::test]
async fn truncated_empty_and_non_parquet_files_are_named() {
    let t = seeded().await;
    let before = ref_state(&t.lake, &t.table).await;
    let table = t.lake.load_table(&t.table).await.unwrap();
    let good = t.dir.path().join("good.parquet");
    write_parquet(&good, &batch(0..100));
    let bytes = std::fs::read(&good).unwrap();
    let truncated = t.dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let csv = t.dir.path().join("csv.parquet");
    std::fs::write(&csv, "id,name\n1,a\n").unwrap();
    let empty = t.dir.path().join("empty.parquet");
    std::fs::write(&empty, "").unwrap();
    let missing = t.dir.path().join("missing.parquet");
    for (path, needle) in [
        (&truncated, "parquet"),
        (&csv, "parquet"),
        (&empty, "empty"),
        (&missing, "does not exist"),
    ] {
        let err = t
            .lake
            .register_files(&table, &[file_url(&good), file_url(path)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(needle),
            "{msg}"
        );
    }
    assert_unchanged(&t, &before).await;
}

#[tokio::test]
async fn register_rejects_a_schema_mismatch_naming_file_and_column() {
    let t = seeded().await;
    let before = ref_state(&t.lake, &t.table).await;
    let table = t.lake.load_table(&t.table).await.unwrap();
    let drifted = t.dir.path().join("drift.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)])),
        vec![Arc::new(Int32Array::from(vec![1, 2]))],
    )
    .unwrap();
    write_parquet(&drifted, &batch);
    let err = t
        .lake
        .register_files(&table, &[file_url(&drifted)])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{msg}");
    assert!(
        msg.contains("drift.parquet") && msg.contains("`id`") && msg.contains("ns.events"),
        "{msg}"
    );
    // Copy mode refuses it too (an int32 is not silently widened into the table's long).
    let mut writer = t
        .lake
        .table_writer(&table, &Default::default())
        .await
        .unwrap();
    let err = writer.write(&batch, "drift.parquet").await.unwrap_err();
    assert!(err.to_string().contains("drift.parquet"), "{err}");
    assert_unchanged(&t, &before).await;
}

#[tokio::test]
async fn invalid_names_and_missing_tables_and_refs_are_typed_errors() {
    let t = seeded().await;
    let before = ref_state(&t.lake, &t.table).await;
    for bad in ["", "/x", "a..b", "bad\u{7}name", "a@b"] {
        assert!(
            matches!(RefName::new(bad), Err(Error::InvalidRefName { .. })),
            "{bad:?}"
        );
    }
    let missing: TableName = "ns.nope".parse().unwrap();
    let err = t.lake.load_table(&missing).await.unwrap_err();
    assert!(
        matches!(err, Error::TableNotFound { .. }) && err.to_string().contains("ns.nope"),
        "{err}"
    );
    let err = t
        .lake
        .create_branch(&missing, &RefName::new("x").unwrap(), &RefSpec::main())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TableNotFound { .. }), "{err}");
    let err = t
        .lake
        .create_branch(
            &t.table,
            &RefName::new("x").unwrap(),
            &RefSpec::parse("ghost").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RefNotFound { .. }) && err.to_string().contains("ghost"),
        "{err}"
    );
    let err = t
        .lake
        .create_branch(&t.table, &RefName::new("dev").unwrap(), &RefSpec::main())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RefAlreadyExists { .. }), "{err}");
    let err = t
        .lake
        .delete_ref(
            &t.table,
            &RefName::new("ghost").unwrap(),
            sluice_lake::RefKind::Tag,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RefNotFound { .. }), "{err}");
    let err = t
        .lake
        .fast_forward(
            &t.table,
            RefMove::into_main(&RefName::new("ghost").unwrap()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::BranchNotFound { .. }) && err.to_string().contains("ghost"),
        "{err}"
    );
    let err = t
        .lake
        .resolve(&t.table, &RefSpec::Snapshot(42))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("42"), "{err}");
    assert_unchanged(&t, &before).await;
}

//! Time travel across a column rename: old snapshots read under the old name.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use sluice_lake::{RefName, RefSpec, ScanOptions};
use sluice_tests::{Backend, batch, ids, read, ref_state, schema, sum_column};

fn renamed_batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let b = batch(ids);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
    ]));
    RecordBatch::try_new(schema, b.columns().to_vec()).unwrap()
}

async fn time_travel_across_rename(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("rename");
    lake.create_table(&table, &schema()).await.unwrap();
    let main = RefName::main();
    lake.append_batches(&table, &main, &[batch(0..4)], Default::default())
        .await
        .unwrap();
    let old = ref_state(&lake, &table).await["main"];
    lake.create_tag(
        &table,
        &RefName::new("before-rename").unwrap(),
        &RefSpec::main(),
    )
    .await
    .unwrap();
    // Timestamps are in milliseconds; step clear of the old snapshot's.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    lake.rename_column(&table, "amount", "price").await.unwrap();
    lake.append_batches(&table, &main, &[renamed_batch(4..6)], Default::default())
        .await
        .unwrap();

    for spec in [
        old.to_string(),
        "before-rename".to_string(),
        format!("main@{}", between.to_rfc3339()),
    ] {
        let resolved = lake
            .resolve(&table, &RefSpec::parse(&spec).unwrap())
            .await
            .unwrap();
        assert_eq!(resolved.snapshot_id, Some(old), "{spec}");
        assert!(resolved.schema.field_with_name("amount").is_ok(), "{spec}");
        let rows = read(&lake, &table, &spec).await;
        assert!(
            rows.iter()
                .all(|b| b.schema().field_with_name("amount").is_ok()
                    && b.schema().field_with_name("price").is_err()),
            "{spec} must read under the old name"
        );
        assert_eq!(sum_column(&rows, "amount"), 3.0, "{spec}");
        assert_eq!(ids(&lake, &table, &spec).await, vec![0, 1, 2, 3]);
    }

    let now = read(&lake, &table, "main").await;
    assert!(
        now.iter()
            .all(|b| b.schema().field_with_name("price").is_ok()
                && b.schema().field_with_name("amount").is_err())
    );
    assert_eq!(
        sum_column(&now, "price"),
        7.5,
        "old rows read under the new name too"
    );
    assert_eq!(ids(&lake, &table, "main").await, (0..6).collect::<Vec<_>>());

    // Projection by the old name works on the old snapshot and not on the new one.
    let projected = lake
        .scan_to_vec(
            &table,
            &RefSpec::Snapshot(old),
            &ScanOptions {
                columns: Some(vec!["amount".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(projected[0].num_columns(), 1);
    assert_eq!(sum_column(&projected, "amount"), 3.0);
    let err = lake
        .scan_to_vec(
            &table,
            &RefSpec::main(),
            &ScanOptions {
                columns: Some(vec!["amount".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, sluice_lake::Error::ColumnNotFound { .. })
            && err.to_string().contains("amount"),
        "{err}"
    );

    // SQL at the old refs names the old column; at main, the new one.
    let session = sluice_sql::SqlSession::new(&lake);
    let sum = |sql: String| {
        let session = &session;
        async move {
            let batches = session
                .sql(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .collect()
                .await
                .unwrap();
            sum_column(&batches, "s")
        }
    };
    let at = |spec: &str| sluice_sql::names::quote(&format!("{table}@{spec}"));
    for spec in [
        old.to_string(),
        "before-rename".to_string(),
        format!("main@{}", between.to_rfc3339()),
    ] {
        assert_eq!(
            sum(format!("SELECT sum(amount) AS s FROM {}", at(&spec))).await,
            3.0,
            "{spec}"
        );
    }
    assert_eq!(
        sum(format!("SELECT sum(price) AS s FROM {}", at("main"))).await,
        7.5
    );
    let error = session
        .sql(&format!("SELECT amount FROM {}", at("main")))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("amount"), "{error}");
}

sluice_tests::conformance!(time_travel_across_rename);

//! Bad input gets a typed error naming the file, and leaves every ref and row where it was.

use std::sync::Arc;

use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use sluice_lake::{Error, RefName, RefSpec};
use sluice_tests::{Backend, batch, ids, parquet_bytes, ref_state, schema};

async fn bad_input_leaves_refs_unchanged(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("bad");
    lake.create_table(&table, &schema()).await.unwrap();
    lake.append_batches(&table, &RefName::main(), &[batch(0..3)], Default::default())
        .await
        .unwrap();
    lake.create_branch(&table, &RefName::new("dev").unwrap(), &RefSpec::main())
        .await
        .unwrap();
    let before = ref_state(&lake, &table).await;

    let good_bytes = parquet_bytes(&batch(100..200));
    let good = backend
        .put_raw(&lake, "good.parquet", good_bytes.clone())
        .await;
    let truncated = backend
        .put_raw(
            &lake,
            "truncated.parquet",
            good_bytes[..good_bytes.len() / 2].to_vec(),
        )
        .await;
    let csv = backend
        .put_raw(&lake, "csv.parquet", b"id,name\n1,a\n".to_vec())
        .await;
    let empty = backend.put_raw(&lake, "empty.parquet", Vec::new()).await;
    let missing = backend.raw_location("missing.parquet");

    let loaded = lake.load_table(&table).await.unwrap();
    for (location, reason) in [
        (&truncated, "not a readable parquet file"),
        (&csv, "not a readable parquet file"),
        (&empty, "empty"),
        (&missing, "does not exist"),
    ] {
        // A good file next to the bad one: nothing of the batch may be registered.
        let err = lake
            .register_files(&loaded, &[good.clone(), location.clone()])
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::CorruptFile { .. }),
            "{location}: {msg}"
        );
        assert!(
            msg.contains(location.as_str()),
            "the error must name {location}: {msg}"
        );
        assert!(msg.contains(reason), "{msg}");
    }

    // A file whose schema drifted is refused in register mode, naming file, table and column.
    let drifted = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)])),
        vec![Arc::new(Int32Array::from(vec![1, 2]))],
    )
    .unwrap();
    let drift = backend
        .put_raw(&lake, "drift.parquet", parquet_bytes(&drifted))
        .await;
    let err = lake
        .register_files(&loaded, std::slice::from_ref(&drift))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&drift) && msg.contains("`id`") && msg.contains(&table.to_string()),
        "{msg}"
    );

    assert_eq!(ref_state(&lake, &table).await, before);
    assert_eq!(ids(&lake, &table, "main").await, vec![0, 1, 2]);
    assert_eq!(ids(&lake, &table, "dev").await, vec![0, 1, 2]);
    // The good file alone still registers: the failures left nothing half-done.
    let files = lake.register_files(&loaded, &[good]).await.unwrap();
    assert_eq!(files[0].record_count(), 100);
}

sluice_tests::conformance!(bad_input_leaves_refs_unchanged);

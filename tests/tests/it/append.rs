//! Appending to a branch in both modes: copy (batches rewritten into the warehouse) and
//! register (existing parquet files added in place).

use sluice_lake::{AppendRequest, PublishKind, RefMove, RefName, RefSpec, WriteOptions};
use sluice_tests::{
    Backend, BackendKind, batch, expected_sum, ids, parquet_bytes, read, ref_state, schema,
    sum_column,
};

async fn append_copy_mode(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("copy");
    let created = lake.create_table(&table, &schema()).await.unwrap();
    let table_location = created.metadata().location().to_string();

    let loaded = lake.load_table(&table).await.unwrap();
    let mut writer = lake
        .table_writer(&loaded, &WriteOptions::default())
        .await
        .unwrap();
    writer.write(&batch(0..60), "first").await.unwrap();
    writer.write(&batch(60..100), "second").await.unwrap();
    let files = writer.finish().await.unwrap();
    assert_eq!(files.iter().map(|f| f.record_count()).sum::<u64>(), 100);
    for f in &files {
        assert!(
            f.file_path().starts_with(&table_location),
            "{} is not under the table location {table_location}",
            f.file_path()
        );
        if backend.kind() == BackendKind::RestS3 {
            assert!(f.file_path().starts_with("s3://"), "{}", f.file_path());
        }
        // The data file really is in storage, with the size the manifest records.
        let (store, path) = lake.stores().resolve(f.file_path()).unwrap();
        let meta = object_store::ObjectStoreExt::head(store.as_ref(), &path)
            .await
            .unwrap();
        assert_eq!(meta.size, f.file_size_in_bytes());
    }

    let branch = RefName::new("audit/copy").unwrap();
    let outcome = lake
        .commit_append(
            &table,
            AppendRequest {
                branch: branch.clone(),
                create_from: Some(RefSpec::main()),
                files,
                properties: [
                    ("sluice.message".to_string(), "copy 100 rows".to_string()),
                    ("sluice.author".to_string(), "conformance".to_string()),
                ]
                .into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome.added_records, 100);
    assert_eq!(
        ids(&lake, &table, "audit/copy").await,
        (0..100).collect::<Vec<_>>()
    );
    assert!(
        ids(&lake, &table, "main").await.is_empty(),
        "main must not see branch rows"
    );
    let refs = ref_state(&lake, &table).await;
    assert_eq!(refs["audit/copy"], outcome.snapshot_id);
    assert_eq!(Some(refs["main"]), outcome.parent_id);

    let published = lake
        .publish(&table, RefMove::into_main(&branch), Default::default())
        .await
        .unwrap();
    assert_eq!(published.kind, PublishKind::FastForward);
    assert_eq!(published.snapshot_id, outcome.snapshot_id);
    let main = read(&lake, &table, "main").await;
    assert_eq!(main.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    assert_eq!(sum_column(&main, "amount"), expected_sum(0..100));
    let log = lake.log(&table, &RefSpec::main(), None).await.unwrap();
    assert_eq!(log[0].snapshot_id, outcome.snapshot_id);
    assert_eq!(log[0].message.as_deref(), Some("copy 100 rows"));
    assert_eq!(log[0].author.as_deref(), Some("conformance"));
    assert_eq!(log[0].added_records, Some(100));
    assert_eq!(log[0].total_records, Some(100));
}

async fn append_register_mode(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("register");
    lake.create_table(&table, &schema()).await.unwrap();
    let a = backend
        .put_raw(&lake, "day=1/a.parquet", parquet_bytes(&batch(0..10)))
        .await;
    let b = backend
        .put_raw(&lake, "day=1/b.parquet", parquet_bytes(&batch(10..25)))
        .await;
    assert!(a.starts_with(backend.raw_root()));
    if backend.kind() == BackendKind::RestS3 {
        assert!(a.starts_with("s3://"), "{a}");
    }

    let loaded = lake.load_table(&table).await.unwrap();
    let files = lake
        .register_files(&loaded, &[a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        files[0].file_path(),
        a,
        "registered files stay where they are"
    );
    assert_eq!(files[1].file_path(), b);
    assert_eq!(files[0].record_count(), 10);
    assert_eq!(files[1].record_count(), 15);
    let id_field = loaded
        .metadata()
        .current_schema()
        .field_by_name("id")
        .unwrap()
        .id;
    assert_eq!(
        files[1].lower_bounds()[&id_field],
        sluice_lake::iceberg_types::Datum::long(10)
    );
    assert_eq!(
        files[1].upper_bounds()[&id_field],
        sluice_lake::iceberg_types::Datum::long(24)
    );

    let branch = RefName::new("audit/register").unwrap();
    let outcome = lake
        .commit_append(
            &table,
            AppendRequest {
                branch: branch.clone(),
                create_from: Some(RefSpec::main()),
                files,
                properties: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome.added_files, 2);
    assert_eq!(
        ids(&lake, &table, "audit/register").await,
        (0..25).collect::<Vec<_>>()
    );
    assert!(ids(&lake, &table, "main").await.is_empty());
    lake.publish(&table, RefMove::into_main(&branch), Default::default())
        .await
        .unwrap();
    let main = read(&lake, &table, "main").await;
    assert_eq!(main.iter().map(|b| b.num_rows()).sum::<usize>(), 25);
    assert_eq!(sum_column(&main, "amount"), expected_sum(0..25));
    assert_eq!(ref_state(&lake, &table).await["main"], outcome.snapshot_id);
}

sluice_tests::conformance!(append_copy_mode, append_register_mode);

use sluice_lake::{AppendRequest, RefMove, RefName, RefSpec, WriteOptions};

use crate::common::*;

#[tokio::test]
async fn copy_mode_round_trip_leaves_main_alone_until_publish() {
    let t = new_lake().await;
    let branch = RefName::new("audit/1").unwrap();
    let table = t.lake.load_table(&t.table).await.unwrap();
    let mut writer = t
        .lake
        .table_writer(&table, &WriteOptions::default())
        .await
        .unwrap();
    writer.write(&batch(0..50), "a").await.unwrap();
    writer.write(&batch(50..100), "b").await.unwrap();
    let files = writer.finish().await.unwrap();
    assert_eq!(files.iter().map(|f| f.record_count()).sum::<u64>(), 100);
    let outcome = t
        .lake
        .commit_append(
            &t.table,
            AppendRequest {
                branch: branch.clone(),
                create_from: Some(RefSpec::main()),
                files,
                properties: [("sluice.message".to_string(), "first".to_string())].into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome.added_records, 100);
    assert_eq!(
        ids(&t.lake, &t.table, "audit/1").await,
        (0..100).collect::<Vec<_>>()
    );
    assert!(
        ids(&t.lake, &t.table, "main").await.is_empty(),
        "main must not see branch rows"
    );

    let published = t
        .lake
        .publish(&t.table, RefMove::into_main(&branch), Default::default())
        .await
        .unwrap();
    assert_eq!(published.kind, sluice_lake::PublishKind::FastForward);
    assert_eq!(
        ids(&t.lake, &t.table, "main").await,
        (0..100).collect::<Vec<_>>()
    );
    let log = t.lake.log(&t.table, &RefSpec::main(), None).await.unwrap();
    assert_eq!(log[0].message.as_deref(), Some("first"));
    assert_eq!(log[0].total_records, Some(100));
    // Creating the branch on a brand-new table gave main an empty base snapshot in the same commit.
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].total_records, Some(0));
}

#[tokio::test]
async fn register_mode_adds_files_in_place_with_footer_statistics() {
    let t = new_lake().await;
    let raw = t.dir.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let f1 = raw.join("a.parquet");
    let f2 = raw.join("b.parquet");
    write_parquet(&f1, &batch(0..10));
    write_parquet(&f2, &batch(10..25));
    let table = t.lake.load_table(&t.table).await.unwrap();
    let files = t
        .lake
        .register_files(&table, &[file_url(&f1), file_url(&f2)])
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        files[0].file_path(),
        file_url(&f1),
        "registered files stay where they are"
    );
    assert_eq!(files[1].record_count(), 15);
    let id_field = table
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
    assert_eq!(files[1].null_value_counts()[&id_field], 0);

    let branch = RefName::new("reg").unwrap();
    t.lake
        .commit_append(
            &t.table,
            AppendRequest {
                branch: branch.clone(),
                create_from: Some(RefSpec::main()),
                files,
                properties: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&t.lake, &t.table, "reg").await,
        (0..25).collect::<Vec<_>>()
    );
    assert!(ids(&t.lake, &t.table, "main").await.is_empty());
    t.lake
        .publish(&t.table, RefMove::into_main(&branch), Default::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&t.lake, &t.table, "main").await,
        (0..25).collect::<Vec<_>>()
    );
    // No data file was written into the warehouse: the files are referenced in place.
    let data_dir = t.dir.path().join("warehouse/ns/events/data");
    assert!(!data_dir.exists() || std::fs::read_dir(&data_dir).unwrap().next().is_none());
}

#[tokio::test]
async fn refs_are_created_listed_and_deleted() {
    let t = new_lake().await;
    let b = RefName::new("dev").unwrap();
    t.lake
        .create_branch(&t.table, &b, &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &b, &[batch(0..3)], Default::default())
        .await
        .unwrap();
    let tag = RefName::new("v1").unwrap();
    let tagged = t
        .lake
        .create_tag(&t.table, &tag, &RefSpec::parse("dev").unwrap())
        .await
        .unwrap();
    let refs = t.lake.list_refs(&t.table).await.unwrap();
    let names: Vec<_> = refs.iter().map(|r| (r.name.as_str(), r.kind)).collect();
    assert_eq!(
        names,
        [
            ("dev", sluice_lake::RefKind::Branch),
            ("main", sluice_lake::RefKind::Branch),
            ("v1", sluice_lake::RefKind::Tag)
        ]
    );
    assert_eq!(refs[2].snapshot_id, tagged);
    // A branch from a tag and from a snapshot id.
    t.lake
        .create_branch(
            &t.table,
            &RefName::new("from-tag").unwrap(),
            &RefSpec::parse("v1").unwrap(),
        )
        .await
        .unwrap();
    t.lake
        .create_branch(
            &t.table,
            &RefName::new("from-id").unwrap(),
            &RefSpec::Snapshot(tagged),
        )
        .await
        .unwrap();
    assert_eq!(ids(&t.lake, &t.table, "from-id").await, vec![0, 1, 2]);
    assert_eq!(ids(&t.lake, &t.table, "from-tag").await, vec![0, 1, 2]);
    // Each kind of delete leaves the other kind alone.
    use sluice_lake::RefKind;
    let err = t
        .lake
        .delete_ref(&t.table, &tag, RefKind::Branch)
        .await
        .unwrap_err();
    assert!(
        matches!(err, sluice_lake::Error::WrongRefKind { .. }),
        "{err}"
    );
    let err = t
        .lake
        .delete_ref(&t.table, &b, RefKind::Tag)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a branch, not a tag"), "{err}");
    t.lake
        .delete_ref(&t.table, &tag, RefKind::Tag)
        .await
        .unwrap();
    t.lake
        .delete_ref(&t.table, &b, RefKind::Branch)
        .await
        .unwrap();
    let left: Vec<_> = t
        .lake
        .list_refs(&t.table)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(left, ["from-id", "from-tag", "main"]);
    let err = t
        .lake
        .delete_ref(&t.table, &RefName::main(), RefKind::Branch)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot delete `main`"), "{err}");
}

#[tokio::test]
async fn rollback_moves_a_branch_to_an_ancestor_or_tag() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..2)], Default::default())
        .await
        .unwrap();
    t.lake
        .create_tag(&t.table, &RefName::new("good").unwrap(), &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &main, &[batch(2..4)], Default::default())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &main, &[batch(4..6)], Default::default())
        .await
        .unwrap();
    assert_eq!(ids(&t.lake, &t.table, "main").await.len(), 6);
    let before = t.lake.commits_made();
    t.lake
        .rollback(&t.table, &main, &RefSpec::parse("good").unwrap())
        .await
        .unwrap();
    assert_eq!(
        t.lake.commits_made() - before,
        1,
        "a rollback is one commit"
    );
    assert_eq!(ids(&t.lake, &t.table, "main").await, vec![0, 1]);
    // A snapshot that is not an ancestor is refused.
    let other = RefName::new("other").unwrap();
    t.lake
        .create_branch(&t.table, &other, &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &other, &[batch(9..10)], Default::default())
        .await
        .unwrap();
    let err = t
        .lake
        .rollback(&t.table, &main, &RefSpec::parse("other").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an ancestor"), "{err}");
}

#[tokio::test]
async fn a_warehouse_with_a_trailing_slash_creates_and_publishes_tables() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sluice_lake::LakeConfig::embedded(dir.path()).unwrap();
    let sluice_lake::CatalogConfig::Sql { warehouse, .. } = &mut config.catalog else {
        unreachable!("the embedded lake uses the SQL catalog")
    };
    warehouse.push('/');
    let expected_root = warehouse.trim_end_matches('/').to_string();
    let lake = sluice_lake::Lake::connect(&config).await.unwrap();
    let table: sluice_lake::TableName = "ns.events".parse().unwrap();
    lake.create_table(&table, &schema()).await.unwrap();

    let loaded = lake.load_table(&table).await.unwrap();
    assert_eq!(
        loaded.metadata().location(),
        format!("{expected_root}/ns/events"),
        "no empty path segment in the table location"
    );
    let mut writer = lake
        .table_writer(&loaded, &WriteOptions::default())
        .await
        .unwrap();
    writer.write(&batch(0..10), "a").await.unwrap();
    let files = writer.finish().await.unwrap();
    let branch = RefName::new("audit/1").unwrap();
    lake.commit_append(
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
    lake.publish(&table, RefMove::into_main(&branch), Default::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&lake, &table, "main").await,
        (0..10).collect::<Vec<_>>()
    );
    let data_dir = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("warehouse/ns/events/data");
    assert!(
        std::fs::read_dir(&data_dir).unwrap().next().is_some(),
        "data files under {}",
        data_dir.display()
    );
}

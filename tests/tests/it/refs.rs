//! Branches and tags: created from main, a branch, a tag or a snapshot id; listed; deleted.

use sluice_lake::{Error, RefKind, RefName, RefSpec};
use sluice_tests::{Backend, batch, ids, ref_state, schema};

async fn branches_and_tags(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("refs");
    lake.create_table(&table, &schema()).await.unwrap();

    // A brand-new table can be branched: main gets an empty base snapshot in the same commit.
    let dev = RefName::new("dev").unwrap();
    let base = lake
        .create_branch(&table, &dev, &RefSpec::main())
        .await
        .unwrap();
    assert_eq!(ref_state(&lake, &table).await["main"], base);
    let appended = lake
        .append_batches(&table, &dev, &[batch(0..3)], Default::default())
        .await
        .unwrap();
    assert_eq!(appended.parent_id, Some(base));
    assert_eq!(ids(&lake, &table, "dev").await, vec![0, 1, 2]);
    assert!(ids(&lake, &table, "main").await.is_empty());

    let tag = RefName::new("v1").unwrap();
    let tagged = lake
        .create_tag(&table, &tag, &RefSpec::parse("dev").unwrap())
        .await
        .unwrap();
    assert_eq!(tagged, appended.snapshot_id);
    lake.create_branch(
        &table,
        &RefName::new("from-tag").unwrap(),
        &RefSpec::parse("v1").unwrap(),
    )
    .await
    .unwrap();
    lake.create_branch(
        &table,
        &RefName::new("from-id").unwrap(),
        &RefSpec::Snapshot(base),
    )
    .await
    .unwrap();

    let refs = lake.list_refs(&table).await.unwrap();
    let listed: Vec<_> = refs
        .iter()
        .map(|r| (r.name.as_str(), r.kind, r.snapshot_id))
        .collect();
    assert_eq!(
        listed,
        [
            ("dev", RefKind::Branch, appended.snapshot_id),
            ("from-id", RefKind::Branch, base),
            ("from-tag", RefKind::Branch, appended.snapshot_id),
            ("main", RefKind::Branch, base),
            ("v1", RefKind::Tag, appended.snapshot_id),
        ]
    );
    assert_eq!(ids(&lake, &table, "v1").await, vec![0, 1, 2]);
    assert_eq!(ids(&lake, &table, "from-tag").await, vec![0, 1, 2]);
    assert!(ids(&lake, &table, "from-id").await.is_empty());

    // A tag cannot be appended to; an existing name cannot be created again.
    let err = lake
        .append_batches(&table, &tag, &[batch(9..10)], Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a tag"), "{err}");
    let err = lake
        .create_branch(&table, &dev, &RefSpec::main())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RefAlreadyExists { .. }), "{err}");

    // Each kind of ref is deleted only as that kind.
    let err = lake
        .delete_ref(&table, &tag, RefKind::Branch)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongRefKind { .. }), "{err}");
    lake.delete_ref(&table, &tag, RefKind::Tag).await.unwrap();
    lake.delete_ref(&table, &dev, RefKind::Branch)
        .await
        .unwrap();
    let mut left: Vec<_> = ref_state(&lake, &table).await.into_keys().collect();
    left.sort();
    assert_eq!(left, ["from-id", "from-tag", "main"]);
    let err = lake
        .delete_ref(&table, &RefName::main(), RefKind::Branch)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot delete `main`"), "{err}");
    let err = lake
        .delete_ref(&table, &dev, RefKind::Branch)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RefNotFound { .. }) && err.to_string().contains("dev"),
        "{err}"
    );

    // A second handle (another process, in effect) sees the same refs.
    let other = backend.connect().await;
    assert_eq!(
        ref_state(&other, &table).await,
        ref_state(&lake, &table).await
    );
}

sluice_tests::conformance!(branches_and_tags);

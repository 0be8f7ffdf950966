//! Rollback: a branch moves back to an ancestor or a tag, in one commit.

use sluice_lake::{RefName, RefSpec};
use sluice_tests::{Backend, batch, ids, ref_state, schema};

async fn rollback(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("rollback");
    lake.create_table(&table, &schema()).await.unwrap();
    let main = RefName::main();
    let first = lake
        .append_batches(&table, &main, &[batch(0..2)], Default::default())
        .await
        .unwrap();
    let good = lake
        .create_tag(&table, &RefName::new("good").unwrap(), &RefSpec::main())
        .await
        .unwrap();
    let second = lake
        .append_batches(&table, &main, &[batch(2..4)], Default::default())
        .await
        .unwrap();
    lake.append_batches(&table, &main, &[batch(4..6)], Default::default())
        .await
        .unwrap();
    assert_eq!(ids(&lake, &table, "main").await, (0..6).collect::<Vec<_>>());

    // To a snapshot id of main's history.
    let before = lake.commits_made();
    let at = lake
        .rollback(&table, &main, &RefSpec::Snapshot(second.snapshot_id))
        .await
        .unwrap();
    assert_eq!(lake.commits_made() - before, 1, "a rollback is one commit");
    assert_eq!(at, second.snapshot_id);
    assert_eq!(ref_state(&lake, &table).await["main"], second.snapshot_id);
    assert_eq!(ids(&lake, &table, "main").await, (0..4).collect::<Vec<_>>());

    // To a tag.
    let at = lake
        .rollback(&table, &main, &RefSpec::parse("good").unwrap())
        .await
        .unwrap();
    assert_eq!(at, good);
    assert_eq!(good, first.snapshot_id);
    assert_eq!(ids(&lake, &table, "main").await, vec![0, 1]);

    // Appends continue from the rolled-back head.
    let next = lake
        .append_batches(&table, &main, &[batch(10..11)], Default::default())
        .await
        .unwrap();
    assert_eq!(next.parent_id, Some(good));
    assert_eq!(ids(&lake, &table, "main").await, vec![0, 1, 10]);

    // A snapshot that is not an ancestor is refused and nothing moves.
    let refs = ref_state(&lake, &table).await;
    let err = lake
        .rollback(&table, &main, &RefSpec::Snapshot(second.snapshot_id))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an ancestor"), "{err}");
    assert_eq!(ref_state(&lake, &table).await, refs);
}

sluice_tests::conformance!(rollback);

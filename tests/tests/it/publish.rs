//! Publishing a branch: fast-forward when main has not moved, rebase of the appends when it has.

use sluice_lake::summary::SOURCE_SNAPSHOT_PROPERTY;
use sluice_lake::{Error, PublishKind, RefMove, RefName, RefSpec};
use sluice_tests::{Backend, batch, expected_sum, ids, read, ref_state, schema, sum_column};

async fn fast_forward(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("ff");
    lake.create_table(&table, &schema()).await.unwrap();
    let main = RefName::main();
    let seeded = lake
        .append_batches(&table, &main, &[batch(0..5)], Default::default())
        .await
        .unwrap();
    let branch = RefName::new("feature").unwrap();
    lake.create_branch(&table, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&table, &branch, &[batch(5..10)], Default::default())
        .await
        .unwrap();
    let head = lake
        .append_batches(&table, &branch, &[batch(10..12)], Default::default())
        .await
        .unwrap();
    assert_eq!(ids(&lake, &table, "main").await, (0..5).collect::<Vec<_>>());

    let before = lake.commits_made();
    let outcome = lake
        .fast_forward(
            &table,
            RefMove {
                source: &branch,
                target: &main,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        lake.commits_made() - before,
        1,
        "a fast-forward is one commit"
    );
    assert_eq!(outcome.kind, PublishKind::FastForward);
    assert_eq!(outcome.previous, Some(seeded.snapshot_id));
    assert_eq!(outcome.snapshot_id, head.snapshot_id);
    let refs = ref_state(&lake, &table).await;
    assert_eq!(refs["main"], head.snapshot_id);
    assert_eq!(refs["feature"], head.snapshot_id);
    assert_eq!(
        ids(&lake, &table, "main").await,
        (0..12).collect::<Vec<_>>()
    );
    // main's history is the branch's: no merge snapshot was written.
    let log = lake.log(&table, &RefSpec::main(), None).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].snapshot_id, seeded.snapshot_id);

    // Again: nothing to do.
    let again = lake
        .fast_forward(
            &table,
            RefMove {
                source: &branch,
                target: &main,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.kind, PublishKind::UpToDate);

    // Once main has moved on its own, a fast-forward is refused and changes nothing.
    lake.append_batches(&table, &branch, &[batch(20..21)], Default::default())
        .await
        .unwrap();
    lake.append_batches(&table, &main, &[batch(30..31)], Default::default())
        .await
        .unwrap();
    let refs = ref_state(&lake, &table).await;
    let err = lake
        .fast_forward(
            &table,
            RefMove {
                source: &branch,
                target: &main,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CannotPublish { .. }), "{err}");
    assert!(err.to_string().contains("rebase"), "{err}");
    assert_eq!(ref_state(&lake, &table).await, refs);
}

async fn rebase_two_branches(backend: Backend) {
    let lake = backend.connect().await;
    let table = backend.table("rebase");
    lake.create_table(&table, &schema()).await.unwrap();
    let main = RefName::main();
    lake.append_batches(&table, &main, &[batch(0..10)], Default::default())
        .await
        .unwrap();
    let a = RefName::new("run-a").unwrap();
    let b = RefName::new("run-b").unwrap();
    lake.create_branch(&table, &a, &RefSpec::main())
        .await
        .unwrap();
    lake.create_branch(&table, &b, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&table, &a, &[batch(100..120)], Default::default())
        .await
        .unwrap();
    lake.append_batches(&table, &b, &[batch(200..205)], Default::default())
        .await
        .unwrap();
    let b_head = lake
        .append_batches(&table, &b, &[batch(205..215)], Default::default())
        .await
        .unwrap();

    let first = lake
        .publish(
            &table,
            RefMove {
                source: &a,
                target: &main,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(first.kind, PublishKind::FastForward);
    let second = lake
        .publish(
            &table,
            RefMove {
                source: &b,
                target: &main,
            },
            [("sluice.message".to_string(), "publish run-b".to_string())].into(),
        )
        .await
        .unwrap();
    assert_eq!(second.kind, PublishKind::Rebase);
    assert_eq!(second.previous, Some(first.snapshot_id));

    let expected: Vec<i64> = (0..10).chain(100..120).chain(200..215).collect();
    assert_eq!(
        ids(&lake, &table, "main").await,
        expected,
        "each row exactly once"
    );
    let rows = read(&lake, &table, "main").await;
    assert_eq!(
        sum_column(&rows, "amount"),
        expected_sum(expected.iter().copied())
    );
    let refs = ref_state(&lake, &table).await;
    assert_eq!(refs["main"], second.snapshot_id);
    assert_eq!(
        refs["run-b"], b_head.snapshot_id,
        "the source branch is left as it was"
    );

    let log = lake.log(&table, &RefSpec::main(), Some(1)).await.unwrap();
    let rebased = &log[0];
    assert_eq!(rebased.snapshot_id, second.snapshot_id);
    assert_eq!(rebased.parent_id, Some(first.snapshot_id));
    assert_eq!(rebased.added_records, Some(15));
    assert_eq!(rebased.total_records, Some(45));
    assert_eq!(rebased.message.as_deref(), Some("publish run-b"));
    assert_eq!(
        rebased.summary.get(SOURCE_SNAPSHOT_PROPERTY),
        Some(&b_head.snapshot_id.to_string())
    );
}

sluice_tests::conformance!(fast_forward, rebase_two_branches);

use sluice_lake::summary::SOURCE_SNAPSHOT_PROPERTY;
use sluice_lake::{PublishKind, RebaseOptions, RefMove, RefName, RefSpec};

use crate::common::*;

#[tokio::test]
async fn two_branches_from_one_main_both_publish_and_the_second_rebases() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..5)], Default::default())
        .await
        .unwrap();
    let a = RefName::new("a").unwrap();
    let b = RefName::new("b").unwrap();
    t.lake
        .create_branch(&t.table, &a, &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .create_branch(&t.table, &b, &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &a, &[batch(100..110)], Default::default())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &b, &[batch(200..203)], Default::default())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &b, &[batch(203..206)], Default::default())
        .await
        .unwrap();

    let first = t
        .lake
        .publish(
            &t.table,
            RefMove {
                source: &a,
                target: &main,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(first.kind, PublishKind::FastForward);
    let before = t.lake.commits_made();
    let second = t
        .lake
        .publish(
            &t.table,
            RefMove {
                source: &b,
                target: &main,
            },
            [("sluice.message".to_string(), "b".to_string())].into(),
        )
        .await
        .unwrap();
    assert_eq!(second.kind, PublishKind::Rebase);
    assert_eq!(
        t.lake.commits_made() - before,
        1,
        "a rebase is a single commit"
    );
    let mut expected: Vec<i64> = (0..5).chain(100..110).chain(200..206).collect();
    expected.sort_unstable();
    assert_eq!(
        ids(&t.lake, &t.table, "main").await,
        expected,
        "each batch exactly once"
    );
    let log = t
        .lake
        .log(&t.table, &RefSpec::main(), Some(1))
        .await
        .unwrap();
    let b_head = ref_state(&t.lake, &t.table).await["b"];
    assert_eq!(log[0].summary[SOURCE_SNAPSHOT_PROPERTY], b_head.to_string());
    assert_eq!(log[0].parent_id, Some(first.snapshot_id));
    assert_eq!(log[0].added_records, Some(6));
    assert_eq!(log[0].total_records, Some(21));
}

#[tokio::test]
async fn a_staged_rebase_moves_main_only_when_published() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..1)], Default::default())
        .await
        .unwrap();
    let b = RefName::new("b").unwrap();
    t.lake
        .create_branch(&t.table, &b, &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &b, &[batch(10..12)], Default::default())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &main, &[batch(1..2)], Default::default())
        .await
        .unwrap();
    let err = t
        .lake
        .fast_forward(
            &t.table,
            RefMove {
                source: &b,
                target: &main,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, sluice_lake::Error::CannotPublish { .. }),
        "{err}"
    );

    let staged = t
        .lake
        .rebase_appends(
            &t.table,
            RefMove {
                source: &b,
                target: &main,
            },
            RebaseOptions {
                stage: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(staged.staged);
    assert_eq!(
        ids(&t.lake, &t.table, "main").await,
        vec![0, 1],
        "staging does not move main"
    );
    assert_eq!(
        ids(&t.lake, &t.table, &staged.snapshot_id.to_string()).await,
        vec![0, 1, 10, 11]
    );
    t.lake
        .publish_staged(&t.table, &main, staged.snapshot_id)
        .await
        .unwrap();
    assert_eq!(ids(&t.lake, &t.table, "main").await, vec![0, 1, 10, 11]);

    // Staged on a main that then moves: publishing it is a conflict, main keeps the other write.
    t.lake
        .append_batches(&t.table, &b, &[batch(20..21)], Default::default())
        .await
        .unwrap();
    let stale = t
        .lake
        .rebase_appends(
            &t.table,
            RefMove {
                source: &b,
                target: &main,
            },
            RebaseOptions {
                stage: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &main, &[batch(30..31)], Default::default())
        .await
        .unwrap();
    let err = t
        .lake
        .publish_staged(&t.table, &main, stale.snapshot_id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, sluice_lake::Error::CommitConflict { .. }) && err.is_retryable(),
        "{err}"
    );
    assert_eq!(ids(&t.lake, &t.table, "main").await, vec![0, 1, 10, 11, 30]);
}

/// Merged manifests (the table merges at 16) on both sides of a rebase: the branch's appends
/// are found in its merged manifest and re-committed once, and main stays merged.
#[tokio::test]
async fn a_rebase_over_merged_manifests_publishes_each_batch_once() {
    let t = new_lake().await;
    let main = RefName::main();
    let append = async |branch: &RefName, n: i64| {
        t.lake
            .append_batches(
                &t.table,
                branch,
                &[batch(n * 10..n * 10 + 10)],
                Default::default(),
            )
            .await
            .unwrap();
    };
    for n in 0..14 {
        append(&main, n).await;
    }
    let b = RefName::new("b").unwrap();
    t.lake
        .create_branch(&t.table, &b, &RefSpec::main())
        .await
        .unwrap();
    // b: 14 + 2 manifests, merged by its second append.
    append(&b, 100).await;
    append(&b, 101).await;
    // main: 14 + 3, merged by its 16th.
    for n in 14..17 {
        append(&main, n).await;
    }
    let manifests = async |reference: &str| manifests_of(&t.lake, &t.table, reference).await.len();
    assert_eq!(manifests("b").await, 1);
    assert_eq!(manifests("main").await, 2);

    let published = t
        .lake
        .publish(
            &t.table,
            RefMove {
                source: &b,
                target: &main,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(published.kind, PublishKind::Rebase);
    let mut expected: Vec<i64> = (0..170).chain(1000..1020).collect();
    expected.sort_unstable();
    assert_eq!(ids(&t.lake, &t.table, "main").await, expected);
    assert_eq!(manifests("main").await, 3);
}

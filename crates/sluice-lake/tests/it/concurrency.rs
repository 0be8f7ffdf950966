use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use sluice_lake::{CommitHook, Lake, RefMove, RefName, RefSpec, TableName};

use crate::common::*;

/// Before the first commit attempt of the watched handle, another writer appends to main.
struct Interloper {
    other: Lake,
    table: TableName,
    fired: AtomicBool,
}

impl CommitHook for Interloper {
    fn before_commit<'a>(&'a self, _table: &'a TableName, attempt: u32) -> BoxFuture<'a, ()> {
        async move {
            if attempt == 1 && !self.fired.swap(true, Ordering::SeqCst) {
                self.other
                    .append_batches(
                        &self.table,
                        &RefName::main(),
                        &[batch(1000..1001)],
                        Default::default(),
                    )
                    .await
                    .unwrap();
            }
        }
        .boxed()
    }
}

#[tokio::test]
async fn a_ref_moved_between_read_and_commit_is_retried_and_ends_correct() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..3)], Default::default())
        .await
        .unwrap();
    let other = lake_in(t.dir.path()).await;
    let hook = Arc::new(Interloper {
        other,
        table: t.table.clone(),
        fired: AtomicBool::new(false),
    });
    let watched = lake_in(t.dir.path()).await.with_commit_hook(hook.clone());

    // An append to main: the interloper's append lands first, ours must be re-planned on top.
    watched
        .append_batches(&t.table, &main, &[batch(3..6)], Default::default())
        .await
        .unwrap();
    assert!(hook.fired.load(Ordering::SeqCst));
    assert_eq!(
        ids(&t.lake, &t.table, "main").await,
        vec![0, 1, 2, 3, 4, 5, 1000]
    );
    assert_eq!(
        watched.commits_made(),
        1,
        "the conflicting attempt did not count as a commit"
    );
    assert_eq!(
        watched.commit_conflicts(),
        1,
        "the refused attempt counts as a conflict"
    );
}

#[tokio::test]
async fn a_fast_forward_racing_another_publish_becomes_a_rebase() {
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
        .append_batches(&t.table, &b, &[batch(5..7)], Default::default())
        .await
        .unwrap();
    let other = lake_in(t.dir.path()).await;
    let hook = Arc::new(Interloper {
        other,
        table: t.table.clone(),
        fired: AtomicBool::new(false),
    });
    let watched = lake_in(t.dir.path()).await.with_commit_hook(hook);
    let outcome = watched
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
    assert_eq!(outcome.kind, sluice_lake::PublishKind::Rebase);
    assert_eq!(ids(&t.lake, &t.table, "main").await, vec![0, 5, 6, 1000]);
}

#[tokio::test]
async fn concurrent_appends_from_many_tasks_lose_nothing() {
    let t = new_lake().await;
    let main = RefName::main();
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let dir = t.dir.path().to_path_buf();
        let table = t.table.clone();
        let main = main.clone();
        tasks.push(tokio::spawn(async move {
            let lake = lake_in(&dir).await;
            for k in 0..3i64 {
                let start = w * 100 + k * 10;
                lake.append_batches(
                    &table,
                    &main,
                    &[batch(start..start + 2)],
                    Default::default(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut expected: Vec<i64> = (0..4)
        .flat_map(|w| (0..3).flat_map(move |k| [w * 100 + k * 10, w * 100 + k * 10 + 1]))
        .collect();
    expected.sort_unstable();
    assert_eq!(ids(&t.lake, &t.table, "main").await, expected);
}

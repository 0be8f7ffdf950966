//! Several tables in one atomic catalog commit (the SQL catalog's database transaction).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use sluice_lake::{
    CommitHook, Error, Lake, LedgerEntry, MultiTableCommit, PublishKind, RefMove, RefName, RefSpec,
    TableName, TablePublish,
};

use crate::common::*;

struct TwoTables {
    dir: tempfile::TempDir,
    lake: Lake,
    orders: TableName,
    lines: TableName,
}

/// Two tables with a row each in `main`, and a branch `run` in both with new rows.
async fn two_tables_on_a_branch() -> TwoTables {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path()).await;
    let orders: TableName = "shop.orders".parse().unwrap();
    let lines: TableName = "shop.order_lines".parse().unwrap();
    let main = RefName::main();
    for (t, base) in [(&orders, 0), (&lines, 100)] {
        lake.create_table(t, &schema()).await.unwrap();
        lake.append_batches(t, &main, &[batch(base..base + 1)], Default::default())
            .await
            .unwrap();
    }
    let branch = RefName::new("run").unwrap();
    let heads = lake
        .create_branch_many(&[orders.clone(), lines.clone()], &branch, &RefSpec::main())
        .await
        .unwrap();
    assert_eq!(heads.len(), 2);
    for (t, base) in [(&orders, 10), (&lines, 110)] {
        lake.append_batches(t, &branch, &[batch(base..base + 2)], Default::default())
            .await
            .unwrap();
    }
    TwoTables {
        dir,
        lake,
        orders,
        lines,
    }
}

fn entry(key: &str, file: &str) -> LedgerEntry {
    LedgerEntry {
        run_key: key.to_string(),
        files: vec![file.to_string()],
    }
}

#[tokio::test]
async fn both_tables_publish_in_one_commit_with_their_ledgers() {
    let t = two_tables_on_a_branch().await;
    assert_eq!(t.lake.multi_table_commit(), MultiTableCommit::Atomic);
    let branch = RefName::new("run").unwrap();
    let (a, b) = (
        entry("k-orders", "s3://raw/o1"),
        entry("k-lines", "s3://raw/l1"),
    );
    let before = t.lake.commits_made();
    let outcomes = t
        .lake
        .publish_many(&[
            TablePublish {
                table: &t.orders,
                refs: RefMove::into_main(&branch),
                staged: None,
                delete_source: true,
                ingested: Some(&a),
            },
            TablePublish {
                table: &t.lines,
                refs: RefMove::into_main(&branch),
                staged: None,
                delete_source: true,
                ingested: Some(&b),
            },
        ])
        .await
        .unwrap();
    assert_eq!(t.lake.commits_made() - before, 1, "one catalog commit");
    assert!(outcomes.iter().all(|o| o.kind == PublishKind::FastForward));
    assert_eq!(ids(&t.lake, &t.orders, "main").await, vec![0, 10, 11]);
    assert_eq!(ids(&t.lake, &t.lines, "main").await, vec![100, 110, 111]);
    for table in [&t.orders, &t.lines] {
        let refs = ref_state(&t.lake, table).await;
        assert!(!refs.contains_key("run"), "branch removed in {table}");
    }
    assert!(
        t.lake
            .run_key_published(&t.orders, "k-orders")
            .await
            .unwrap()
    );
    assert!(t.lake.run_key_published(&t.lines, "k-lines").await.unwrap());
    assert!(
        !t.lake
            .run_key_published(&t.orders, "k-lines")
            .await
            .unwrap()
    );
}

/// Before the first attempt, another writer appends to `main` of the watched table.
struct MoveMain {
    other: Lake,
    table: TableName,
    fired: AtomicBool,
}

impl CommitHook for MoveMain {
    fn before_commit<'a>(&'a self, table: &'a TableName, attempt: u32) -> BoxFuture<'a, ()> {
        async move {
            if *table == self.table && attempt == 1 && !self.fired.swap(true, Ordering::SeqCst) {
                self.other
                    .append_batches(
                        &self.table,
                        &RefName::main(),
                        &[batch(999..1000)],
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
async fn when_the_second_table_moves_between_read_and_commit_the_first_is_untouched() {
    let t = two_tables_on_a_branch().await;
    let branch = RefName::new("run").unwrap();
    let orders_before = ref_state(&t.lake, &t.orders).await;
    let hook = Arc::new(MoveMain {
        other: lake_in(t.dir.path()).await,
        table: t.lines.clone(),
        fired: AtomicBool::new(false),
    });
    let watched = lake_in(t.dir.path()).await.with_commit_hook(hook.clone());
    let a = entry("k-orders", "s3://raw/o1");
    let err = watched
        .publish_many(&[
            TablePublish {
                table: &t.orders,
                refs: RefMove::into_main(&branch),
                staged: None,
                delete_source: true,
                ingested: Some(&a),
            },
            TablePublish {
                table: &t.lines,
                refs: RefMove::into_main(&branch),
                staged: None,
                delete_source: true,
                ingested: None,
            },
        ])
        .await
        .unwrap_err();
    assert!(hook.fired.load(Ordering::SeqCst));
    // The retry sees that a fast-forward of the second table is impossible now.
    match &err {
        Error::CannotPublish { table, .. } => assert_eq!(table, "shop.order_lines"),
        other => panic!("expected CannotPublish, got {other:?}"),
    }
    assert_eq!(watched.commits_made(), 0);
    // The first table's compare-and-swap was rolled back with the second's.
    assert_eq!(ref_state(&t.lake, &t.orders).await, orders_before);
    assert_eq!(ids(&t.lake, &t.orders, "main").await, vec![0]);
    assert!(
        !t.lake
            .run_key_published(&t.orders, "k-orders")
            .await
            .unwrap()
    );
    // The ledger files of the attempts are gone too: only the table's own are left.
    assert_eq!(ids(&t.lake, &t.lines, "main").await, vec![100, 999]);

    // Rebased (staged) and published together, the way a run does it after re-auditing.
    let staged = t
        .lake
        .rebase_appends(
            &t.lines,
            RefMove::into_main(&branch),
            sluice_lake::RebaseOptions {
                properties: Default::default(),
                stage: true,
            },
        )
        .await
        .unwrap();
    let outcomes = t
        .lake
        .publish_many(&[
            TablePublish {
                table: &t.orders,
                refs: RefMove::into_main(&branch),
                staged: None,
                delete_source: true,
                ingested: Some(&a),
            },
            TablePublish {
                table: &t.lines,
                refs: RefMove::into_main(&branch),
                staged: Some(staged.snapshot_id),
                delete_source: true,
                ingested: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(outcomes[1].kind, PublishKind::Rebase);
    assert_eq!(ids(&t.lake, &t.orders, "main").await, vec![0, 10, 11]);
    assert_eq!(
        ids(&t.lake, &t.lines, "main").await,
        vec![100, 110, 111, 999]
    );
    assert!(
        t.lake
            .run_key_published(&t.orders, "k-orders")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_lake_wide_ref_is_created_in_every_table_or_in_none() {
    let t = two_tables_on_a_branch().await;
    let tag = RefName::new("release-1").unwrap();
    let tables = [t.orders.clone(), t.lines.clone()];
    let heads = t
        .lake
        .create_tag_many(&tables, &tag, &RefSpec::main())
        .await
        .unwrap();
    for (table, head) in tables.iter().zip(&heads) {
        assert_eq!(ref_state(&t.lake, table).await["release-1"], *head);
    }
    // `run` exists in both: creating it again fails and creates nothing anywhere.
    let other: TableName = "shop.customers".parse().unwrap();
    t.lake.create_table(&other, &schema()).await.unwrap();
    let err = t
        .lake
        .create_branch_many(
            &[other.clone(), t.orders.clone()],
            &RefName::new("run").unwrap(),
            &RefSpec::main(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RefAlreadyExists { .. }), "{err:?}");
    assert!(!ref_state(&t.lake, &other).await.contains_key("run"));
}

/// Before every attempt, another writer appends to `main` of the watched table.
struct AlwaysMoving {
    other: Lake,
    table: TableName,
    attempts: std::sync::atomic::AtomicU32,
}

impl CommitHook for AlwaysMoving {
    fn before_commit<'a>(&'a self, table: &'a TableName, _attempt: u32) -> BoxFuture<'a, ()> {
        async move {
            if *table == self.table {
                let n = self.attempts.fetch_add(1, Ordering::SeqCst) as i64;
                self.other
                    .append_batches(
                        &self.table,
                        &RefName::main(),
                        &[batch(2000 + n..2001 + n)],
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
async fn a_multi_table_commit_retries_as_the_refused_tables_properties_say() {
    let t = two_tables_on_a_branch().await;
    let properties = [
        ("commit.retry.num-retries", "2"),
        ("commit.retry.min-wait-ms", "1"),
        ("commit.retry.max-wait-ms", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    t.lake
        .set_table_properties(&t.lines, properties)
        .await
        .unwrap();
    let hook = Arc::new(AlwaysMoving {
        other: lake_in(t.dir.path()).await,
        table: t.lines.clone(),
        attempts: Default::default(),
    });
    let watched = lake_in(t.dir.path()).await.with_commit_hook(hook.clone());
    let tag = RefName::new("release-1").unwrap();
    let err = watched
        .create_tag_many(&[t.orders.clone(), t.lines.clone()], &tag, &RefSpec::main())
        .await
        .unwrap_err();
    match &err {
        Error::TooManyConflicts {
            table, attempts, ..
        } => {
            assert_eq!(table, "shop.order_lines");
            // The first attempt and the two retries the table allows.
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected TooManyConflicts, got {other:?}"),
    }
    assert_eq!(hook.attempts.load(Ordering::SeqCst), 3);
    // Neither table got the tag.
    for table in [&t.orders, &t.lines] {
        assert!(!ref_state(&t.lake, table).await.contains_key("release-1"));
    }
}

//! Snapshot expiry keeps what every branch and tag needs and deletes only what nothing reads.

use sluice_lake::{ExpireOptions, RefName, RefSpec};

use crate::common::*;

/// Files under the table's metadata directory that are manifest lists (`snap-*.avro`).
fn manifest_lists(dir: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path, out: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap-"))
            {
                *out += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

#[tokio::test]
async fn expiry_keeps_every_refs_rows_and_deletes_only_unread_files() {
    let t = new_lake().await;
    let main = RefName::main();
    for k in 0..6i64 {
        t.lake
            .append_batches(
                &t.table,
                &main,
                &[batch(k * 10..k * 10 + 10)],
                Default::default(),
            )
            .await
            .unwrap();
        if k == 1 {
            t.lake
                .create_tag(&t.table, &RefName::new("v1").unwrap(), &RefSpec::main())
                .await
                .unwrap();
        }
        if k == 2 {
            let dev = RefName::new("dev").unwrap();
            t.lake
                .create_branch(&t.table, &dev, &RefSpec::main())
                .await
                .unwrap();
            t.lake
                .append_batches(&t.table, &dev, &[batch(1000..1005)], Default::default())
                .await
                .unwrap();
        }
    }
    let refs_before = ref_state(&t.lake, &t.table).await;
    let reads_before: Vec<Vec<i64>> =
        futures::future::join_all(["main", "v1", "dev"].map(|r| ids(&t.lake, &t.table, r))).await;
    let snapshots_before = t
        .lake
        .load_table(&t.table)
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .count();
    let lists_before = manifest_lists(t.dir.path());

    // Ten days on, keeping the last two snapshots of each branch.
    let later = chrono::Utc::now().timestamp_millis() + 10 * 24 * 3600 * 1000;
    let options = ExpireOptions {
        retain_last: Some(2),
        now_ms: Some(later),
        dry_run: true,
        ..ExpireOptions::default()
    };
    let dry = t.lake.expire_snapshots(&t.table, &options).await.unwrap();
    assert!(dry.dry_run);
    assert!(!dry.snapshots.is_empty(), "{dry:?}");
    assert_eq!(
        manifest_lists(t.dir.path()),
        lists_before,
        "a dry run deletes nothing"
    );
    assert_eq!(
        t.lake
            .load_table(&t.table)
            .await
            .unwrap()
            .metadata()
            .snapshots()
            .count(),
        snapshots_before
    );

    let done = t
        .lake
        .expire_snapshots(
            &t.table,
            &ExpireOptions {
                dry_run: false,
                ..options.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        done.snapshots, dry.snapshots,
        "the dry run said what would happen"
    );
    assert_eq!(done.manifest_lists, dry.manifest_lists);
    // main keeps 2, dev keeps 2 (its head and main's third snapshot), v1 keeps 1.
    assert_eq!(done.kept, 5, "{done:?}");
    let table = t.lake.load_table(&t.table).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 5);
    assert_eq!(snapshots_before - done.snapshots.len(), 5);
    assert_eq!(
        manifest_lists(t.dir.path()),
        lists_before - done.manifest_lists
    );
    assert!(
        done.manifest_lists > 0 && done.data_files == 0,
        "appends only: every data file is live: {done:?}"
    );
    assert_eq!(ref_state(&t.lake, &t.table).await, refs_before);
    let reads_after: Vec<Vec<i64>> =
        futures::future::join_all(["main", "v1", "dev"].map(|r| ids(&t.lake, &t.table, r))).await;
    assert_eq!(
        reads_after, reads_before,
        "every ref reads what it read before"
    );

    // Again: nothing left to do.
    let again = t
        .lake
        .expire_snapshots(
            &t.table,
            &ExpireOptions {
                dry_run: false,
                ..options
            },
        )
        .await
        .unwrap();
    assert!(
        again.snapshots.is_empty() && again.manifest_lists == 0,
        "{again:?}"
    );
}

#[tokio::test]
async fn young_snapshots_are_kept_whatever_retain_last_says() {
    let t = new_lake().await;
    for k in 0..4i64 {
        t.lake
            .append_batches(
                &t.table,
                &RefName::main(),
                &[batch(k..k + 1)],
                Default::default(),
            )
            .await
            .unwrap();
    }
    // Default max age (5 days): nothing is that old.
    let done = t
        .lake
        .expire_snapshots(
            &t.table,
            &ExpireOptions {
                retain_last: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(done.snapshots.is_empty(), "{done:?}");
}

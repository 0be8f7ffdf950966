use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use iceberg::TableRequirement;

use super::*;
use crate::commit::Plan;
use crate::{LakeConfig, RefMove, RefName, RefSpec};

fn rows(ids: Vec<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap()
}

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Removes every snapshot but main's head, as `expire_snapshots` in any engine does.
async fn expire_all_but_main(lake: &Lake, name: &TableName) -> usize {
    let (_, removed) = lake
        .commit_loop(name, |table| async move {
            let md = table.metadata();
            let head = md.current_snapshot_id();
            let ids: Vec<i64> = md
                .snapshots()
                .map(|s| s.snapshot_id())
                .filter(|id| Some(*id) != head)
                .collect();
            Ok(Plan::Commit {
                requirements: vec![TableRequirement::UuidMatch { uuid: md.uuid() }],
                updates: vec![TableUpdate::RemoveSnapshots {
                    snapshot_ids: ids.clone(),
                }],
                value: ids.len(),
            })
        })
        .await
        .unwrap();
    removed
}

#[tokio::test]
async fn older_tables_migrate_and_the_ledger_survives_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::connect(&LakeConfig::embedded(dir.path()).unwrap())
        .await
        .unwrap();
    let name: TableName = "ns.t".parse().unwrap();
    assert!(
        lake.published_files(&name, &["a".into()])
            .await
            .unwrap()
            .is_empty()
    );
    lake.create_table(&name, &rows(vec![]).schema())
        .await
        .unwrap();
    let main = RefName::main();
    // A publish the way older versions recorded it: in the snapshot summary only.
    lake.append_batches(
        &name,
        &main,
        &[rows(vec![1])],
        HashMap::from([
            (
                SOURCE_FILES_PROPERTY.to_string(),
                "file:///a\nfile:///b".to_string(),
            ),
            (RUN_KEY_PROPERTY.to_string(), "k1".to_string()),
        ]),
    )
    .await
    .unwrap();
    let candidates: Vec<String> = ["file:///a", "file:///b", "file:///c", "file:///d"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        lake.published_files(&name, &candidates).await.unwrap(),
        set(&["file:///a", "file:///b"])
    );
    assert!(lake.run_key_published(&name, "k1").await.unwrap());
    assert!(!lake.run_key_published(&name, "k2").await.unwrap());

    // The first publish with a ledger entry writes out the migrated history too.
    let branch = RefName::new("b").unwrap();
    lake.create_branch(&name, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&name, &branch, &[rows(vec![2])], HashMap::new())
        .await
        .unwrap();
    let entry = LedgerEntry {
        run_key: "k2".into(),
        files: vec!["file:///c".into()],
    };
    lake.fast_forward_and_delete(
        &name,
        RefMove {
            source: &branch,
            target: &main,
        },
        Some(&entry),
    )
    .await
    .unwrap();
    let table = lake.load_table(&name).await.unwrap();
    assert!(table.metadata().properties().contains_key(LEDGER_PROPERTY));

    assert_eq!(expire_all_but_main(&lake, &name).await, 1);
    let table = lake.load_table(&name).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);
    assert_eq!(
        lake.published_files(&name, &candidates).await.unwrap(),
        set(&["file:///a", "file:///b", "file:///c"])
    );
    assert!(lake.run_key_published(&name, "k1").await.unwrap());
    assert!(lake.run_key_published(&name, "k2").await.unwrap());

    // A second publish replaces only the buckets it touches; the old root is deleted.
    lake.create_branch(&name, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&name, &branch, &[rows(vec![3])], HashMap::new())
        .await
        .unwrap();
    let entry = LedgerEntry {
        run_key: "k3".into(),
        files: vec!["file:///d".into()],
    };
    lake.fast_forward_and_delete(
        &name,
        RefMove {
            source: &branch,
            target: &main,
        },
        Some(&entry),
    )
    .await
    .unwrap();
    assert_eq!(
        lake.published_files(&name, &candidates).await.unwrap(),
        set(&["file:///a", "file:///b", "file:///c", "file:///d"])
    );
    let ledger_dir = dir.path().join("warehouse/ns/t/metadata/sluice-ledger");
    let names: Vec<String> = std::fs::read_dir(&ledger_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", ledger_dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".root.json")).count(),
        1,
        "{names:?}"
    );
    // Every bucket file left is one the root refers to.
    let root: Root = serde_json::from_slice(
        &std::fs::read(table_root_path(&lake.load_table(&name).await.unwrap())).unwrap(),
    )
    .unwrap();
    let referenced = root.buckets.iter().flatten().count();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".ledger")).count(),
        referenced,
        "{names:?}"
    );

    // A large publish splits the buckets; every entry is still found.
    let many: Vec<String> = (0..9000)
        .map(|i| format!("s3://raw/p-{i:05}.parquet"))
        .collect();
    lake.create_branch(&name, &branch, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&name, &branch, &[rows(vec![4])], HashMap::new())
        .await
        .unwrap();
    let entry = LedgerEntry {
        run_key: "k4".into(),
        files: many.clone(),
    };
    lake.fast_forward_and_delete(
        &name,
        RefMove {
            source: &branch,
            target: &main,
        },
        Some(&entry),
    )
    .await
    .unwrap();
    let table = lake.load_table(&name).await.unwrap();
    let root: Root =
        serde_json::from_slice(&std::fs::read(table_root_path(&table)).unwrap()).unwrap();
    assert_eq!(root.buckets.len(), 4);
    assert_eq!(
        root.entries,
        4 + 4 + 9000,
        "files a-d, keys k1-k4, the 9,000 new files"
    );
    let mut probe = many[..50].to_vec();
    probe.push("s3://raw/not-there.parquet".into());
    probe.push("file:///a".into());
    let found = lake.published_files(&name, &probe).await.unwrap();
    assert_eq!(found.len(), 51);
    assert!(!found.contains("s3://raw/not-there.parquet"));
    assert!(lake.run_key_published(&name, "k1").await.unwrap());
    let left = std::fs::read_dir(&ledger_dir).unwrap().count();
    assert_eq!(left, 1 + 4, "one root and its four buckets");
}

fn table_root_path(table: &LoadedTable) -> String {
    table.metadata().properties()[LEDGER_PROPERTY]
        .trim_start_matches("file://")
        .to_string()
}

#[test]
fn lines_round_trip_any_location() {
    for item in [
        Item::File("s3://b/raw/a b.parquet".into()),
        Item::File("file:///x/\"quoted\"\nnewline.parquet".into()),
        Item::Key("0123abcd".into()),
    ] {
        assert_eq!(Item::parse(&item.line()), Some(item.clone()));
        assert!(!item.line().contains('\n'));
    }
    assert_eq!(Item::parse("x \"y\""), None);
    assert_eq!(Item::parse("garbage"), None);
}

#[test]
fn buckets_are_stable_and_spread() {
    // The bucket of an entry is part of the file format: it must never change.
    assert_eq!(
        Item::Key("k".into()).bucket(64),
        Item::Key("k".into()).bucket(64)
    );
    let used: HashSet<usize> = (0..1000)
        .map(|i| Item::File(format!("s3://raw/events/part-{i:05}.parquet")).bucket(64))
        .collect();
    assert!(used.len() > 56, "only {} of 64 buckets used", used.len());
    assert_ne!(
        Item::File("a".into()).bucket(1 << 20),
        Item::Key("a".into()).bucket(1 << 20)
    );
}

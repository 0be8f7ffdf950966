use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use iceberg::spec::{Snapshot, Summary};

use super::*;
use crate::{LakeConfig, RefSpec};

fn rows(ids: Vec<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap()
}

/// Commits a snapshot on `branch` whose operation is `operation` (as another engine's
/// delete or compaction would).
async fn commit_non_append(
    lake: &Lake,
    name: &TableName,
    branch: &str,
    operation: Operation,
) -> i64 {
    let (_, id) = lake
        .commit_loop(name, |table| {
            let operation = operation.clone();
            async move {
                let head = refs::all(table.metadata())
                    .get(branch)
                    .map(|r| r.snapshot_id);
                let (base_manifests, parent_summary) = SnapshotSpec::base_of(&table, head).await?;
                let props = HashMap::new();
                let s = write_append_snapshot(
                    &table,
                    SnapshotSpec {
                        parent: head,
                        snapshot_id: new_snapshot_id(&table),
                        sequence_number: table.metadata().next_sequence_number(),
                        files: &[],
                        properties: &props,
                        base_manifests,
                        parent_summary,
                        metadata_run: None,
                    },
                )
                .await?;
                let rewritten = Snapshot::builder()
                    .with_snapshot_id(s.snapshot_id())
                    .with_parent_snapshot_id(s.parent_snapshot_id())
                    .with_sequence_number(s.sequence_number())
                    .with_timestamp_ms(s.timestamp_ms())
                    .with_manifest_list(s.manifest_list())
                    .with_summary(Summary {
                        operation: operation.clone(),
                        additional_properties: HashMap::new(),
                    })
                    .build();
                let id = rewritten.snapshot_id();
                Ok(Plan::Commit {
                    requirements: vec![],
                    updates: vec![
                        TableUpdate::AddSnapshot {
                            snapshot: rewritten,
                        },
                        set_branch(branch, id),
                    ],
                    value: id,
                })
            }
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn non_appends_on_either_side_stop_a_rebase_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::connect(&LakeConfig::embedded(dir.path()).unwrap())
        .await
        .unwrap();
    let name: TableName = "ns.t".parse().unwrap();
    lake.create_table(&name, &rows(vec![]).schema())
        .await
        .unwrap();
    let main = RefName::main();
    let b = RefName::new("b").unwrap();
    lake.append_batches(&name, &main, &[rows(vec![1])], HashMap::new())
        .await
        .unwrap();
    lake.create_branch(&name, &b, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&name, &b, &[rows(vec![2])], HashMap::new())
        .await
        .unwrap();

    // main gains an overwrite since the fork.
    let overwrite = commit_non_append(&lake, &name, "main", Operation::Overwrite).await;
    let before = lake.list_refs(&name).await.unwrap();
    let err = lake
        .rebase_appends(
            &name,
            RefMove {
                source: &b,
                target: &main,
            },
            RebaseOptions::default(),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::CannotPublish { .. }), "{msg}");
    assert!(
        msg.contains(&overwrite.to_string()) && msg.contains("overwrite"),
        "{msg}"
    );
    assert_eq!(lake.list_refs(&name).await.unwrap(), before);

    // The branch itself holds a delete: NotAnAppend names it.
    let c = RefName::new("c").unwrap();
    lake.create_branch(&name, &c, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&name, &main, &[rows(vec![3])], HashMap::new())
        .await
        .unwrap();
    let delete = commit_non_append(&lake, &name, "c", Operation::Delete).await;
    let before = lake.list_refs(&name).await.unwrap();
    let err = lake
        .rebase_appends(
            &name,
            RefMove {
                source: &c,
                target: &main,
            },
            RebaseOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotAnAppend { snapshot, .. } if snapshot == delete),
        "{err}"
    );
    assert_eq!(lake.list_refs(&name).await.unwrap(), before);
}

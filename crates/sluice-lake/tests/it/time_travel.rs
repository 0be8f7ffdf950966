use std::sync::Arc;

use arrow_array::Array;
use sluice_lake::{RefMove, RefName, RefSpec, ScanOptions};

use crate::common::*;

#[tokio::test]
async fn old_snapshots_read_under_the_old_column_name() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..3)], Default::default())
        .await
        .unwrap();
    let old = ref_state(&t.lake, &t.table).await["main"];
    t.lake
        .create_tag(
            &t.table,
            &RefName::new("before-rename").unwrap(),
            &RefSpec::main(),
        )
        .await
        .unwrap();
    t.lake
        .rename_column(&t.table, "amount", "price")
        .await
        .unwrap();
    // New rows are written under the new name.
    let renamed = t.lake.load_table(&t.table).await.unwrap();
    let new_schema =
        sluice_lake::schema::arrow_schema_for(renamed.metadata().current_schema()).unwrap();
    let b = batch(3..5);
    let b = arrow_array::RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("id", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("name", arrow_schema::DataType::Utf8, true),
            arrow_schema::Field::new("price", arrow_schema::DataType::Float64, true),
        ])),
        b.columns().to_vec(),
    )
    .unwrap();
    t.lake
        .append_batches(&t.table, &main, &[b], Default::default())
        .await
        .unwrap();

    for spec in [old.to_string(), "before-rename".to_string()] {
        let resolved = t
            .lake
            .resolve(&t.table, &RefSpec::parse(&spec).unwrap())
            .await
            .unwrap();
        assert!(resolved.schema.field_with_name("amount").is_ok(), "{spec}");
        let batches = t
            .lake
            .scan_to_vec(
                &t.table,
                &RefSpec::parse(&spec).unwrap(),
                &ScanOptions::default(),
            )
            .await
            .unwrap();
        assert!(
            batches
                .iter()
                .all(|b| b.schema().field_with_name("amount").is_ok()
                    && b.schema().field_with_name("price").is_err())
        );
        assert_eq!(sum_amount(&batches), 1.5);
    }
    let now = t
        .lake
        .scan_to_vec(&t.table, &RefSpec::main(), &ScanOptions::default())
        .await
        .unwrap();
    assert!(
        now.iter()
            .all(|b| b.schema().field_with_name("price").is_ok())
    );
    assert_eq!(
        new_schema.field_with_name("price").unwrap().data_type(),
        &arrow_schema::DataType::Float64
    );
    let total: f64 = now
        .iter()
        .map(|b| {
            let p = b
                .column_by_name("price")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap();
            (0..p.len()).map(|i| p.value(i)).sum::<f64>()
        })
        .sum();
    assert_eq!(total, 5.0, "old rows read under the new name too");
    // Projection by the old name on the old snapshot.
    let projected = t
        .lake
        .scan_to_vec(
            &t.table,
            &RefSpec::Snapshot(old),
            &ScanOptions {
                columns: Some(vec!["amount".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(projected[0].num_columns(), 1);
}

#[tokio::test]
async fn main_at_a_time_is_what_main_held_then() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..2)], Default::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    // A branch written before `between`... is published after it.
    let b = RefName::new("late").unwrap();
    t.lake
        .create_branch(&t.table, &b, &RefSpec::main())
        .await
        .unwrap();
    t.lake
        .append_batches(&t.table, &b, &[batch(2..4)], Default::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let before_publish = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    t.lake
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

    let at = |t: chrono::DateTime<chrono::Utc>| format!("main@{}", t.to_rfc3339());
    assert_eq!(ids(&t.lake, &t.table, &at(between)).await, vec![0, 1]);
    // The branch's snapshot existed at `before_publish`, but main did not hold it yet.
    assert_eq!(
        ids(&t.lake, &t.table, &at(before_publish)).await,
        vec![0, 1]
    );
    assert_eq!(ids(&t.lake, &t.table, "main").await, vec![0, 1, 2, 3]);
    let long_ago = chrono::DateTime::parse_from_rfc3339("2001-01-01T00:00:00Z").unwrap();
    let err = t
        .lake
        .resolve(
            &t.table,
            &RefSpec::parse(&format!("main@{}", long_ago.to_rfc3339())).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("main had no snapshot"), "{err}");
}

/// `sluice log` of main shows when main reached each commit: a time copied from it includes
/// the commit, a millisecond earlier does not, also for a commit a fast-forward went past.
#[tokio::test]
async fn the_log_of_main_shows_when_main_reached_each_commit() {
    let t = new_lake().await;
    let main = RefName::main();
    t.lake
        .append_batches(&t.table, &main, &[batch(0..2)], Default::default())
        .await
        .unwrap();
    let dev = RefName::new("dev").unwrap();
    t.lake
        .create_branch(&t.table, &dev, &RefSpec::main())
        .await
        .unwrap();
    for ids in [2..4, 4..6] {
        t.lake
            .append_batches(&t.table, &dev, &[batch(ids)], Default::default())
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    t.lake
        .publish(
            &t.table,
            RefMove {
                source: &dev,
                target: &main,
            },
            Default::default(),
        )
        .await
        .unwrap();

    let log = t.lake.log(&t.table, &RefSpec::main(), None).await.unwrap();
    assert_eq!(log.len(), 3);
    let (newest, skipped, first) = (&log[0], &log[1], &log[2]);
    // Both dev commits entered main with the fast-forward, after they were written.
    assert_eq!(newest.reached_at, skipped.reached_at);
    assert!(newest.reached_at > newest.timestamp, "{newest:?}");
    assert!(first.reached_at < skipped.reached_at);
    let at =
        |t: chrono::DateTime<chrono::Utc>| format!("main@{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    let a_millisecond_before =
        |c: &sluice_lake::Commit| at(c.reached_at - chrono::Duration::milliseconds(1));
    for (commit, its_first_id) in [(newest, 4), (skipped, 2), (first, 0)] {
        let held = ids(&t.lake, &t.table, &at(commit.reached_at)).await;
        assert!(held.contains(&its_first_id), "{commit:?}: {held:?}");
        if commit.snapshot_id != first.snapshot_id {
            let before = ids(&t.lake, &t.table, &a_millisecond_before(commit)).await;
            assert!(!before.contains(&its_first_id), "{commit:?}: {before:?}");
        }
    }
    let err = t
        .lake
        .resolve(
            &t.table,
            &RefSpec::parse(&a_millisecond_before(first)).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("main had no snapshot"), "{err}");
    // The log of the branch goes by commit times, as `dev@<time>` does.
    let dev_log = t
        .lake
        .log(&t.table, &RefSpec::parse("dev").unwrap(), None)
        .await
        .unwrap();
    assert!(dev_log.iter().all(|c| c.reached_at == c.timestamp));
}

/// A parallel read of every row returns what the stream returns, at any ref.
#[tokio::test]
async fn scan_all_reads_the_same_rows_as_the_stream() {
    let t = new_lake().await;
    let main = RefName::main();
    for k in 0..5 {
        t.lake
            .append_batches(
                &t.table,
                &main,
                &[batch(k * 10..k * 10 + 10)],
                Default::default(),
            )
            .await
            .unwrap();
    }
    let first = t.lake.log(&t.table, &RefSpec::main(), None).await.unwrap();
    let oldest = first.last().unwrap().snapshot_id;
    for spec in [RefSpec::main(), RefSpec::Snapshot(oldest)] {
        let options = ScanOptions {
            columns: Some(vec!["id".to_string()]),
            ..Default::default()
        };
        let (schema, batches) = t.lake.scan_all(&t.table, &spec, &options).await.unwrap();
        assert_eq!(schema.fields().len(), 1);
        let mut all: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        all.sort_unstable();
        let expected = ids(&t.lake, &t.table, &spec.to_string()).await;
        assert_eq!(all, expected, "{spec}");
    }
}

//! Whole Write-Audit-Publish runs (sluice-wap) against every backend: publish, audit failure,
//! and recovery after a run was killed mid-way. The run journal lives on the backend's storage
//! (a local directory, or the S3 server).

use std::time::Duration;

use sluice_checks::CheckSuite;
use sluice_lake::{Lake, TableName};
use sluice_tests::{
    Backend, batch, ids, noisy_amount, noisy_batch, parquet_bytes, read, sum_column,
    zstd_parquet_bytes,
};
use sluice_wap::{Pipeline, PipelineConfig, RunOptions, RunStatus};

const CHECKS: &str = r#"
[[check]]
kind = "not_null"
columns = ["id"]

[[check]]
kind = "unique"
columns = ["id"]
scope = "table"
"#;

async fn pipeline(backend: &Backend, lease_ttl: Duration) -> Pipeline {
    let journal = match backend.services() {
        Some(_) => backend.raw_location("journal"),
        None => format!(
            "file://{}/journal",
            backend.local_dir().canonicalize().unwrap().display()
        ),
    };
    Pipeline::open(&PipelineConfig {
        lake: backend.config().clone(),
        journal,
        lease_ttl,
    })
    .await
    .unwrap()
}

fn options(backend: &Backend, dir: &str, table: &TableName) -> RunOptions {
    let mut options = RunOptions::new(backend.raw_location(dir), table.clone());
    options.checks = Some(CheckSuite::from_toml_str(CHECKS).unwrap());
    options
}

async fn audit_branches(lake: &Lake, table: &TableName) -> Vec<String> {
    lake.list_refs(table)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name.starts_with("sluice/"))
        .map(|r| r.name)
        .collect()
}

async fn wap_publish_and_incremental(backend: Backend) {
    let p = pipeline(&backend, Duration::from_secs(30)).await;
    let lake = p.lake();
    let table = backend.table("wap");
    backend
        .put_raw(lake, "in/a.parquet", parquet_bytes(&batch(0..40)))
        .await;
    backend
        .put_raw(lake, "in/b.parquet", parquet_bytes(&batch(40..70)))
        .await;
    let report = p.run(&options(&backend, "in/", &table)).await.unwrap();
    assert_eq!(report.status, RunStatus::Published, "{report:?}");
    assert_eq!(report.rows, 70);
    assert_eq!(report.commits, 2, "write + publish");
    assert_eq!(ids(lake, &table, "main").await, (0..70).collect::<Vec<_>>());
    assert!(audit_branches(lake, &table).await.is_empty());

    backend
        .put_raw(lake, "in/c.parquet", parquet_bytes(&batch(70..80)))
        .await;
    let second = p.run(&options(&backend, "in/", &table)).await.unwrap();
    assert_eq!(second.status, RunStatus::Published);
    assert_eq!(second.files.len(), 1, "only the new file");
    let third = p.run(&options(&backend, "in/", &table)).await.unwrap();
    assert_eq!(third.status, RunStatus::NothingToDo);
    assert_eq!(ids(lake, &table, "main").await, (0..80).collect::<Vec<_>>());
}

/// Workers with their own sources and their own catalog connections publish into one table at
/// once: each commit that lost a race (on `main`, or on another worker's audit branch of the
/// same table) is planned again, and every file lands once.
async fn wap_concurrent_workers_publish_into_one_table(backend: Backend) {
    let workers = 4;
    let mut pipelines = Vec::new();
    for _ in 0..workers {
        pipelines.push(pipeline(&backend, Duration::from_secs(30)).await);
    }
    let lake = pipelines[0].lake();
    let table = backend.table("wap_workers");
    backend
        .put_raw(
            lake,
            "workers/seed/s.parquet",
            parquet_bytes(&batch(1000..1001)),
        )
        .await;
    let seeded = pipelines[0]
        .run(&options(&backend, "workers/seed/", &table))
        .await
        .unwrap();
    assert_eq!(seeded.status, RunStatus::Published, "{seeded:?}");
    let mut expected: Vec<i64> = vec![1000];
    for round in 0..3i64 {
        for w in 0..workers as i64 {
            let first = (round * workers as i64 + w) * 10;
            backend
                .put_raw(
                    lake,
                    &format!("workers/w{w}/{round}.parquet"),
                    parquet_bytes(&batch(first..first + 10)),
                )
                .await;
            expected.extend(first..first + 10);
        }
        let runs: Vec<_> = (0..workers)
            .map(|w| {
                let p = &pipelines[w];
                let options = options(&backend, &format!("workers/w{w}/"), &table);
                async move { p.run(&options).await }
            })
            .collect();
        for report in futures::future::join_all(runs).await {
            let report = report.unwrap();
            assert_eq!(report.status, RunStatus::Published, "{report:?}");
            assert_eq!(report.files.len(), 1, "{report:?}");
        }
    }
    expected.sort_unstable();
    assert_eq!(ids(lake, &table, "main").await, expected);
    assert!(audit_branches(lake, &table).await.is_empty());
}

async fn wap_audit_failure_publishes_nothing(backend: Backend) {
    let p = pipeline(&backend, Duration::from_secs(30)).await;
    let lake = p.lake();
    let table = backend.table("wap_bad");
    backend
        .put_raw(lake, "ok/a.parquet", parquet_bytes(&batch(0..10)))
        .await;
    assert_eq!(
        p.run(&options(&backend, "ok/", &table))
            .await
            .unwrap()
            .status,
        RunStatus::Published
    );
    // Ids 5..15 collide with rows already in main: the table-scoped unique check fails.
    backend
        .put_raw(lake, "dup/b.parquet", parquet_bytes(&batch(5..15)))
        .await;
    let report = p.run(&options(&backend, "dup/", &table)).await.unwrap();
    assert_eq!(report.status, RunStatus::AuditFailed, "{report:?}");
    let audit = report.audit.unwrap();
    let failing: Vec<_> = audit.problems().map(|c| c.name.clone()).collect();
    assert_eq!(failing, ["unique(id)"]);
    assert_eq!(ids(lake, &table, "main").await, (0..10).collect::<Vec<_>>());
    assert!(audit_branches(lake, &table).await.is_empty());
}

async fn wap_recovery_after_a_killed_run(backend: Backend) {
    let ttl = Duration::from_secs(1);
    let p = pipeline(&backend, ttl).await;
    let table = backend.table("wap_crash");
    backend
        .put_raw(p.lake(), "seed/s.parquet", parquet_bytes(&batch(0..5)))
        .await;
    assert_eq!(
        p.run(&options(&backend, "seed/", &table))
            .await
            .unwrap()
            .status,
        RunStatus::Published
    );
    backend
        .put_raw(p.lake(), "new/n.parquet", parquet_bytes(&batch(100..120)))
        .await;

    // Run until the audit branch is committed, then drop the run mid-flight: no rollback code
    // runs in this process, as with a killed one.
    let mut paused = options(&backend, "new/", &table);
    paused.pause_at = Some("after-write".into());
    let watcher = async {
        loop {
            if !audit_branches(p.lake(), &table).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        r = p.run(&paused) => panic!("the run should have paused: {r:?}"),
        _ = tokio::time::timeout(Duration::from_secs(60), watcher) => {}
    }
    assert_eq!(
        audit_branches(p.lake(), &table).await.len(),
        1,
        "the dangling branch exists"
    );

    // Another process recovers once the dead run's lease has expired.
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    let other = pipeline(&backend, ttl).await;
    let recovered = other.recover().await.unwrap();
    assert_eq!(recovered.recovered.len(), 1, "{recovered:?}");
    assert!(
        audit_branches(other.lake(), &table).await.is_empty(),
        "the branch was deleted"
    );
    assert_eq!(
        ids(other.lake(), &table, "main").await,
        (0..5).collect::<Vec<_>>()
    );
    // The next run ingests the file exactly once.
    let rerun = other.run(&options(&backend, "new/", &table)).await.unwrap();
    assert_eq!(rerun.status, RunStatus::Published);
    let expected: Vec<i64> = (0..5).chain(100..120).collect();
    assert_eq!(ids(other.lake(), &table, "main").await, expected);
}

/// Copy mode keeps a large zstd file's column chunks as they are (two row groups, over 10 MB,
/// so the upload is a multipart one on S3) and re-encodes a small file; the table reads both.
async fn wap_copy_keeps_large_files_as_they_are(backend: Backend) {
    let p = pipeline(&backend, Duration::from_secs(30)).await;
    let lake = p.lake();
    let table = backend.table("asis");
    let big = zstd_parquet_bytes(&noisy_batch(0..1_500_000), 1_000_000);
    assert!(big.len() > 10 * 1024 * 1024, "{} bytes", big.len());
    backend.put_raw(lake, "asis/big.parquet", big).await;
    backend
        .put_raw(
            lake,
            "asis/small.parquet",
            zstd_parquet_bytes(&noisy_batch(2_000_000..2_000_010), 1_000_000),
        )
        .await;
    let report = p.run(&options(&backend, "asis/", &table)).await.unwrap();
    assert_eq!(report.status, RunStatus::Published, "{report:?}");
    assert_eq!(report.copied_as_is, 1, "{report:?}");
    assert_eq!(report.rows, 1_500_010);
    let expected: Vec<i64> = (0..1_500_000).chain(2_000_000..2_000_010).collect();
    assert_eq!(ids(lake, &table, "main").await, expected);
    let sum = sum_column(&read(lake, &table, "main").await, "amount");
    let expected_sum: f64 = expected.iter().map(|i| noisy_amount(*i)).sum();
    assert!(
        (sum - expected_sum).abs() < 1e-6 * expected_sum,
        "{sum} vs {expected_sum}"
    );
}

sluice_tests::conformance!(
    wap_copy_keeps_large_files_as_they_are,
    wap_publish_and_incremental,
    wap_concurrent_workers_publish_into_one_table,
    wap_audit_failure_publishes_nothing,
    wap_recovery_after_a_killed_run,
);

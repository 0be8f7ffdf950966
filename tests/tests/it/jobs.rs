//! Jobs (one WAP run over several tables) against every backend. Against the REST catalog the
//! requests go through a recording proxy, which shows that the publish of both tables is ONE
//! `POST /v1/{prefix}/transactions/commit`.

use std::time::Duration;

use sluice_checks::CheckSuite;
use sluice_lake::{CatalogConfig, LakeConfig, RefSpec};
use sluice_tests::fault_proxy::{FaultPlan, FaultProxy};
use sluice_tests::{Backend, batch, ids, parquet_bytes};
use sluice_wap::{JobOptions, Pipeline, PipelineConfig, RunOptions, RunStatus};

/// The backend's lake, with REST requests relayed (and recorded) by a proxy.
fn through_proxy(backend: &Backend) -> (LakeConfig, Option<FaultProxy>) {
    let mut config = backend.config().clone();
    let CatalogConfig::Rest { uri, .. } = &mut config.catalog else {
        return (config, None);
    };
    let upstream = uri
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the REST catalog uri is http://host:port");
    let proxy = FaultProxy::start(upstream, FaultPlan::none()).unwrap();
    *uri = proxy.endpoint();
    (config, Some(proxy))
}

async fn pipeline(backend: &Backend, lake: LakeConfig) -> Pipeline {
    let journal = match backend.services() {
        Some(_) => backend.raw_location("journal"),
        None => format!(
            "file://{}/journal",
            backend.local_dir().canonicalize().unwrap().display()
        ),
    };
    Pipeline::open(&PipelineConfig {
        lake,
        journal,
        lease_ttl: Duration::from_secs(30),
    })
    .await
    .unwrap()
}

async fn job_publishes_every_table_in_one_commit(backend: Backend) {
    let (config, proxy) = through_proxy(&backend);
    let p = pipeline(&backend, config).await;
    let lake = p.lake();
    let (orders, lines) = (backend.table("job_orders"), backend.table("job_lines"));
    let job = |checks: &str| {
        let mut a = RunOptions::new(backend.raw_location("orders/"), orders.clone());
        let mut b = RunOptions::new(backend.raw_location("lines/"), lines.clone());
        a.checks = Some(CheckSuite::from_toml_str(checks).unwrap());
        b.checks = Some(
            CheckSuite::from_toml_str(&format!(
                "[[check]]\nkind = \"relationships\"\ncolumn = \"id\"\nto_table = \"{orders}\"\nto_column = \"id\"\n"
            ))
            .unwrap(),
        );
        JobOptions::new(vec![b, a])
    };
    let not_null = "[[check]]\nkind = \"not_null\"\ncolumns = [\"id\"]\n";
    backend
        .put_raw(lake, "orders/o0.parquet", parquet_bytes(&batch(0..20)))
        .await;
    backend
        .put_raw(lake, "lines/l0.parquet", parquet_bytes(&batch(0..10)))
        .await;
    let first = p.run_job(&job(not_null)).await.unwrap();
    assert_eq!(first.status, RunStatus::Published, "{first:?}");
    assert_eq!(
        ids(lake, &orders, "main").await,
        (0..20).collect::<Vec<_>>()
    );
    assert_eq!(ids(lake, &lines, "main").await, (0..10).collect::<Vec<_>>());

    // The second batch: the tables exist; what is sent to the catalog is recorded.
    let before = proxy.as_ref().map(|p| p.requests_seen().len()).unwrap_or(0);
    backend
        .put_raw(lake, "orders/o1.parquet", parquet_bytes(&batch(20..30)))
        .await;
    backend
        .put_raw(lake, "lines/l1.parquet", parquet_bytes(&batch(20..25)))
        .await;
    let second = p.run_job(&job(not_null)).await.unwrap();
    assert_eq!(second.status, RunStatus::Published, "{second:?}");
    assert_eq!(
        ids(lake, &orders, "main").await,
        (0..30).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(lake, &lines, "main").await,
        (0..10).chain(20..25).collect::<Vec<_>>()
    );
    for table in [&orders, &lines] {
        let refs = lake.list_refs(table).await.unwrap();
        assert!(
            refs.iter().all(|r| !r.name.starts_with("sluice/")),
            "{refs:?}"
        );
        let head = lake.log(table, &RefSpec::main(), Some(1)).await.unwrap();
        assert_eq!(
            head[0].summary.get("sluice.run-id").map(String::as_str),
            second.run_id.map(|id| id.to_string()).as_deref()
        );
    }
    if let Some(proxy) = &proxy {
        let seen = proxy.requests_seen()[before..].to_vec();
        let commits: Vec<&String> = seen
            .iter()
            .filter(|r| {
                r.starts_with("POST ") && !r.ends_with("/tables") && !r.ends_with("/namespaces")
            })
            .collect();
        let transactions = commits
            .iter()
            .filter(|r| r.ends_with("/transactions/commit"))
            .count();
        assert_eq!(transactions, 1, "one multi-table commit: {commits:?}");
        // The two writes commit their branches table by table; the publish is the last commit.
        assert!(
            commits.last().unwrap().ends_with("/transactions/commit"),
            "{commits:?}"
        );
    }

    // A failing audit in one table: neither table's main moves.
    backend
        .put_raw(lake, "orders/o2.parquet", parquet_bytes(&batch(30..35)))
        .await;
    backend
        .put_raw(lake, "lines/l2.parquet", parquet_bytes(&batch(90..95)))
        .await;
    let third = p.run_job(&job(not_null)).await.unwrap();
    assert_eq!(third.status, RunStatus::AuditFailed, "{third:?}");
    assert_eq!(
        ids(lake, &orders, "main").await,
        (0..30).collect::<Vec<_>>()
    );
    for table in [&orders, &lines] {
        let refs = lake.list_refs(table).await.unwrap();
        assert!(
            refs.iter().all(|r| !r.name.starts_with("sluice/")),
            "{refs:?}"
        );
    }
}

sluice_tests::conformance!(job_publishes_every_table_in_one_commit);

//! The append path of sluice-lake on the embedded catalog (SQLite + local warehouse), in rows
//! per second:
//!
//! * `append/copy`: batches written as parquet data files and committed to a branch;
//! * `append/register`: existing parquet files added to a branch in place (footers only);
//! * `publish/fast_forward`: `main` moved to a branch head holding those rows;
//! * `publish/rebase`: the branch's appends re-committed on a `main` that moved meanwhile.
//!
//! Every iteration gets a fresh table; creating it (and its branch, and dropping it afterwards)
//! is not timed. `SLUICE_BENCH_ROWS` sets the rows per append (default 1,000,000), e.g.
//! `SLUICE_BENCH_ROWS=20000 cargo bench -p sluice-benches --bench lake`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parquet::file::properties::WriterProperties;
use sluice_lake::{
    AppendRequest, Lake, LakeConfig, PublishKind, RefMove, RefName, RefSpec, TableName,
    WriteOptions,
};
use sluice_testkit::{DEFAULT_START_MICROS, EventGenerator, events_schema, write_parquet_with};
use tokio::runtime::Runtime;

const DEFAULT_ROWS: usize = 1_000_000;
const BATCH_ROWS: usize = 65_536;
/// Register mode adds this many files per append (fewer when the row count is small).
const REGISTER_FILES: usize = 8;

fn rows_from_env() -> usize {
    std::env::var("SLUICE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_ROWS)
}

/// Events `first..first + rows` in batches, one millisecond apart; the seed follows `first` so
/// that every range holds its own users and event types.
fn events(first: usize, rows: usize) -> Vec<RecordBatch> {
    EventGenerator::new(first as u64 ^ 0x5EED)
        .first_id(first as i64)
        .timestamps(DEFAULT_START_MICROS + first as i64 * 1_000, 1_000)
        .batches(rows, BATCH_ROWS)
}

/// Writes `rows` events as `files` parquet files (without field ids, as an upstream tool
/// would) and returns their `file://` locations.
fn write_raw_files(dir: &Path, rows: usize, files: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("create the raw directory");
    let per_file = rows.div_ceil(files);
    let mut locations = Vec::new();
    let mut first = 0;
    while first < rows {
        let n = per_file.min(rows - first);
        let path = dir.join(format!("part-{:05}.parquet", locations.len()));
        write_parquet_with(&path, &events(first, n), WriterProperties::default());
        locations.push(format!("file://{}", path.display()));
        first += n;
    }
    locations
}

/// The lake under benchmark and a counter for fresh table names.
struct Bench {
    lake: Lake,
    next_table: std::sync::atomic::AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn new(dir: tempfile::TempDir) -> Bench {
        let config = LakeConfig::embedded(dir.path().join("lake")).expect("embedded config");
        let lake = Lake::connect(&config).await.expect("connect the lake");
        Bench {
            lake,
            next_table: Default::default(),
            _dir: dir,
        }
    }

    /// A new empty table with a branch `audit` cut from `main`.
    async fn fresh_table(&self) -> TableName {
        let n = self
            .next_table
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = TableName::new("bench", format!("events_{n}")).expect("a table name");
        self.lake
            .create_table(&name, &events_schema())
            .await
            .expect("create a table");
        self.lake
            .create_branch(&name, &audit(), &RefSpec::main())
            .await
            .expect("create the audit branch");
        name
    }

    /// Drops a table and deletes its directory, so that iterations do not fill the disk.
    async fn drop_table(&self, name: &TableName) {
        let table = self.lake.load_table(name).await.expect("load a table");
        let location = table.metadata().location().to_string();
        self.lake.drop_table(name).await.expect("drop a table");
        if let Some(path) = location.strip_prefix("file://") {
            let _ = std::fs::remove_dir_all(PathBuf::from(path));
        }
    }

    async fn append_copy(&self, name: &TableName, batches: &[RecordBatch]) -> u64 {
        let table = self.lake.load_table(name).await.expect("load a table");
        let mut writer = self
            .lake
            .table_writer(&table, &WriteOptions::default())
            .await
            .expect("a table writer");
        for batch in batches {
            writer.write(batch, "bench").await.expect("write a batch");
        }
        let files = writer.finish().await.expect("finish the data files");
        self.commit(name, files).await
    }

    async fn append_register(&self, name: &TableName, locations: &[String]) -> u64 {
        let table = self.lake.load_table(name).await.expect("load a table");
        let files = self
            .lake
            .register_files(&table, locations)
            .await
            .expect("register the raw files");
        self.commit(name, files).await
    }

    async fn commit(
        &self,
        name: &TableName,
        files: Vec<sluice_lake::iceberg_types::DataFile>,
    ) -> u64 {
        let outcome = self
            .lake
            .commit_append(
                name,
                AppendRequest {
                    branch: audit(),
                    create_from: None,
                    files,
                    properties: Default::default(),
                },
            )
            .await
            .expect("commit the append");
        outcome.added_records
    }
}

fn audit() -> RefName {
    RefName::new("audit").expect("a valid branch name")
}

fn bench_lake(c: &mut Criterion) {
    let rows = rows_from_env();
    let runtime = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let raw = write_raw_files(
        &dir.path().join("raw"),
        rows,
        REGISTER_FILES.min(rows.div_ceil(10_000)).max(1),
    );
    let batches = events(0, rows);
    let bench = runtime.block_on(Bench::new(dir));
    let bench = &bench;

    let mut append = c.benchmark_group("append");
    append.throughput(Throughput::Elements(rows as u64));
    append.sample_size(10);
    append.bench_function("copy", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let batches = &batches;
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let table = bench.fresh_table().await;
                    let start = Instant::now();
                    let added = bench.append_copy(&table, batches).await;
                    timed += start.elapsed();
                    assert_eq!(added, rows as u64);
                    bench.drop_table(&table).await;
                }
                timed
            }
        });
    });
    append.bench_function("register", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let raw = &raw;
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let table = bench.fresh_table().await;
                    let start = Instant::now();
                    let added = bench.append_register(&table, raw).await;
                    timed += start.elapsed();
                    assert_eq!(added, rows as u64);
                    bench.drop_table(&table).await;
                }
                timed
            }
        });
    });
    append.finish();

    // Publishing is metadata work; the branch holds `rows` registered rows so the throughput
    // reads as rows made visible on main per second.
    let mut publish = c.benchmark_group("publish");
    publish.throughput(Throughput::Elements(rows as u64));
    publish.sample_size(10);
    for (name, main_moves, expected) in [
        ("fast_forward", false, PublishKind::FastForward),
        ("rebase", true, PublishKind::Rebase),
    ] {
        publish.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let raw = &raw;
                async move {
                    let mut timed = Duration::ZERO;
                    for i in 0..iters {
                        let table = bench.fresh_table().await;
                        bench.append_register(&table, raw).await;
                        if main_moves {
                            let head = events(rows + i as usize, 1);
                            bench
                                .lake
                                .append_batches(&table, &RefName::main(), &head, Default::default())
                                .await
                                .expect("move main");
                        }
                        let start = Instant::now();
                        let outcome = bench
                            .lake
                            .publish(&table, RefMove::into_main(&audit()), Default::default())
                            .await
                            .expect("publish");
                        timed += start.elapsed();
                        assert_eq!(outcome.kind, expected);
                        bench.drop_table(&table).await;
                    }
                    timed
                }
            });
        });
    }
    publish.finish();
}

criterion_group!(benches, bench_lake);
criterion_main!(benches);

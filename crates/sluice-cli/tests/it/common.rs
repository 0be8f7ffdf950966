use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

pub struct Env {
    pub dir: tempfile::TempDir,
}

pub const CHECKS: &str = r#"
[[check]]
kind = "not_null"
columns = ["user_id"]

[[check]]
kind = "unique"
columns = ["event_id"]
scope = "table"
"#;

/// `run --source SOURCE --table ns.events --checks checks.toml EXTRA...`
pub fn run_args<'a>(source: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--source",
        source,
        "--table",
        "ns.events",
        "--checks",
        "checks.toml",
    ];
    args.extend_from_slice(extra);
    args
}

impl Env {
    /// A directory with a sluice.toml (short lease, so killed runs are recoverable quickly).
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = "[catalog]\ntype = \"sql\"\nuri = \".sluice/catalog.db\"\nwarehouse = \".sluice/warehouse\"\n\n[journal]\nlocation = \".sluice/journal\"\nlease_ttl_secs = 2\n";
        std::fs::write(dir.path().join("sluice.toml"), config).unwrap();
        std::fs::write(dir.path().join("checks.toml"), CHECKS).unwrap();
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.current_dir(self.dir.path())
            .env_remove("SLUICE_CONFIG")
            .env_remove("SLUICE_PAUSE_AT")
            .env("NO_COLOR", "1");
        c
    }

    pub fn sluice(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// `sluice --json ARGS`, parsed; panics with stderr when stdout is not JSON.
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): stdout={} stderr={}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), value)
    }

    pub fn run(&self, source: &str) -> (i32, serde_json::Value) {
        self.json(&run_args(source, &[]))
    }

    /// Sorted event ids in a ref.
    pub fn event_ids(&self, target: &str) -> Vec<i64> {
        let (code, rows) = self.json(&[
            "scan",
            target,
            "--columns",
            "event_id",
            "--limit",
            "1000000",
        ]);
        assert_eq!(code, 0, "{rows}");
        let mut ids: Vec<i64> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["event_id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn branches(&self) -> Vec<String> {
        let (code, refs) = self.json(&["branch", "list", "ns.events"]);
        assert_eq!(code, 0, "{refs}");
        refs.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn main_log_len(&self) -> usize {
        let (_, log) = self.json(&["log", "ns.events"]);
        log.as_array().map(Vec::len).unwrap_or(0)
    }
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

/// Events with ids `ids`; user ids null where `null_users` says.
pub fn events(ids: std::ops::Range<i64>, null_users: bool) -> RecordBatch {
    events_with(ids, null_users, |i| i % 100, |i| i as f64)
}

/// Events whose user ids and amounts look random, so a zstd file of 100,000 rows holds row
/// groups of more than 1 MiB: large enough to be copied as they are in copy mode.
pub fn random_events(ids: std::ops::Range<i64>, null_users: bool) -> RecordBatch {
    let mix = |i: i64| {
        let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    events_with(
        ids,
        null_users,
        |i| (mix(i) >> 20) as i64,
        |i| (mix(i) >> 11) as f64 / (1u64 << 53) as f64 * 1000.0,
    )
}

/// Events of type `view`; with `null_users`, every seventh user id is null.
fn events_with(
    ids: std::ops::Range<i64>,
    null_users: bool,
    user: impl Fn(i64) -> i64,
    amount: impl Fn(i64) -> f64,
) -> RecordBatch {
    let n = (ids.end - ids.start) as usize;
    let users: Vec<Option<i64>> = ids
        .clone()
        .map(|i| (!(null_users && i % 7 == 0)).then(|| user(i)))
        .collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone().collect::<Vec<_>>())),
            Arc::new(Int64Array::from(users)),
            Arc::new(StringArray::from(vec!["view"; n])),
            Arc::new(Float64Array::from(ids.map(amount).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

/// Writes a parquet file with the writer's defaults (uncompressed).
pub fn write(path: &Path, batch: &RecordBatch) {
    write_with(path, batch, None);
}

/// Writes a zstd file with column statistics in one row group, the way pyarrow writes them.
pub fn write_zstd(path: &Path, batch: &RecordBatch) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(batch.num_rows()))
        .build();
    write_with(path, batch, Some(props));
}

fn write_with(
    path: &Path,
    batch: &RecordBatch,
    props: Option<parquet::file::properties::WriterProperties>,
) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), props).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Every file below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether `python3` can import `modules` (e.g. `"pyiceberg.catalog.sql, pyarrow"`); prints a
/// visible skip for `test` otherwise, and fails when `SLUICE_REQUIRE_PYICEBERG` is set (CI
/// installs them, so there the test must run).
pub fn python_available(test: &str, modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_PYICEBERG").is_none(),
            "{test}: python with {modules} is required (SLUICE_REQUIRE_PYICEBERG is set)"
        );
        eprintln!(
            "SKIPPED {test}: python with {modules} is not installed (see the README's test section)"
        );
    }
    ok
}

/// Runs `script` with python3 and pyiceberg's SQL catalog opened on the lake as `catalog`;
/// returns what it printed, trimmed. Call only when [`python_available`] said so.
pub fn with_pyiceberg(env: &Env, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys\nfrom pyiceberg.catalog.sql import SqlCatalog\n\
             catalog = SqlCatalog(\"default\", uri=f\"sqlite:///{{sys.argv[1]}}\", \
             warehouse=f\"file://{{sys.argv[2]}}\")\n{script}"
        ))
        .arg(env.path(".sluice/catalog.db"))
        .arg(env.path(".sluice/warehouse"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::common::*;

/// Runs a source that must fail: exit 1, stderr names `needle`, main unchanged, no branch left.
fn assert_rejected(env: &Env, source: &str, needle: &str) {
    let before = env.event_ids("ns.events");
    let out = env.sluice(&run_args(source, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{source}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{source}: expected `{needle}` in: {stderr}"
    );
    assert_eq!(env.event_ids("ns.events"), before, "{source}: main changed");
    assert!(
        env.branches().iter().all(|b| !b.starts_with("sluice/")),
        "{source}: {:?}",
        env.branches()
    );
}

fn seeded() -> Env {
    let env = Env::new();
    write(&env.path("seed/s.parquet"), &events(0..10, false));
    assert_eq!(env.run("seed").0, 0);
    env
}

#[test]
fn corrupt_files_are_named_and_nothing_is_published() {
    let env = seeded();
    // A good file next to each bad one: the good one must not be published either.
    write(&env.path("trunc/good.parquet"), &events(100..110, false));
    write(&env.path("trunc/bad.parquet"), &events(110..200, false));
    let bytes = std::fs::read(env.path("trunc/bad.parquet")).unwrap();
    std::fs::write(env.path("trunc/bad.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    assert_rejected(&env, "trunc", "trunc/bad.parquet");

    std::fs::create_dir_all(env.path("empty")).unwrap();
    std::fs::write(env.path("empty/zero.parquet"), b"").unwrap();
    assert_rejected(&env, "empty", "empty/zero.parquet");

    std::fs::create_dir_all(env.path("csv")).unwrap();
    std::fs::write(env.path("csv/data.parquet"), "event_id,user_id\n1,2\n").unwrap();
    assert_rejected(&env, "csv", "csv/data.parquet");
}

#[test]
fn schema_drift_is_a_clear_error_unless_columns_may_be_added() {
    let env = seeded();
    let changed = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, true),
            Field::new("user_id", DataType::Int64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    write(&env.path("typed/t.parquet"), &changed);
    assert_rejected(
        &env,
        "typed",
        "`event_id` is string in the file but long in the table",
    );

    let extra = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Int64, true),
            Field::new("user_id", DataType::Int64, true),
            Field::new("referrer", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![500])),
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["ad"])),
        ],
    )
    .unwrap();
    write(&env.path("extra/e.parquet"), &extra);
    assert_rejected(&env, "extra", "add-columns");
    let (code, report) = env.json(&run_args("extra", &["--on-schema-change", "add-columns"]));
    assert_eq!(code, 0, "{report}");
    let (_, rows) = env.json(&[
        "scan",
        "ns.events",
        "--columns",
        "event_id,referrer",
        "--limit",
        "100",
    ]);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["referrer"] == "ad" && r["event_id"] == 500),
        "{rows}"
    );
}

#[test]
fn a_missing_required_column_is_named() {
    let env = Env::new();
    let strict = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Int64, false),
            Field::new("user_id", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    write(&env.path("seed/s.parquet"), &strict);
    assert_eq!(env.run("seed").0, 0);
    let missing = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "user_id",
            DataType::Int64,
            true,
        )])),
        vec![Arc::new(Int64Array::from(vec![3]))],
    )
    .unwrap();
    write(&env.path("missing/m.parquet"), &missing);
    let out = env.sluice(&["run", "--source", "missing", "--table", "ns.events"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing/m.parquet") && stderr.contains("required column `event_id`"),
        "{stderr}"
    );
}

#[test]
fn user_errors_name_what_is_wrong() {
    let env = seeded();
    let out = env.sluice(&["scan", "ns.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("table ns.nope does not exist"));

    let out = env.sluice(&["branch", "create", "ns.events", "bad..name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid ref name `bad..name`"));

    std::fs::write(
        env.path("broken.toml"),
        "[[check]]\nkind = \"not_null\"\ncolumns = [\"user_id\"\n",
    )
    .unwrap();
    let out = env.sluice(&[
        "run",
        "--source",
        "seed",
        "--table",
        "ns.events",
        "--checks",
        "broken.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.toml") && stderr.contains("line"),
        "{stderr}"
    );

    let out = env.sluice(&["run", "--table", "ns.events"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");

    let out = env.sluice(&["run", "--source", "does-not-exist", "--table", "ns.events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist"));
}

#[test]
fn a_damaged_page_in_a_file_copied_as_it_is_fails_the_run() {
    let env = seeded();
    // A file that qualifies for copying its column chunks as they are, with the header of its
    // `amount` chunk (a column no check reads) overwritten.
    let path = env.path("damaged/big.parquet");
    write_zstd(&path, &random_events(1_000..101_000, false));
    let metadata = {
        let file = std::fs::File::open(&path).unwrap();
        parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap()
    };
    let amount = metadata.row_group(0).column(3);
    assert_eq!(amount.column_path().string(), "amount");
    let (start, _) = amount.byte_range();
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[start as usize..start as usize + 16] {
        *b = 0xFF;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_rejected(&env, "damaged", "damaged/big.parquet");
    assert_rejected(&env, "damaged", "a page cannot be decoded");
    // Nothing was left in the warehouse but the seed's data file.
    let data_files: Vec<_> = walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(data_files.len(), 1, "{data_files:?}");
}

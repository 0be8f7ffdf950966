//! What sluice does not write names what to change: unsupported types.

use super::*;

#[test]
fn unsupported_types_name_the_file_and_every_column() {
    let env = Env::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("big", DataType::UInt64, true),
        Field::new(
            "inner",
            struct_of(vec![Field::new("count", DataType::UInt64, true)]),
            true,
        ),
    ]));
    let lines = r#"{"id": 1, "big": 18446744073709551615, "inner": {"count": 3}}"#;
    let batch = arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(lines))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    write(&env.path("u/unsigned.parquet"), &batch);
    let out = env.sluice(&["run", "--source", "u", "--table", "ns.unsigned"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "u/unsigned.parquet",
        "column `big`",
        "column `inner.count`",
        // The hint of what to use instead is kept.
        "Decimal(20,0)",
    ] {
        assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    }
    for internal in ["DataInvalid", "=>", "iceberg:"] {
        assert!(!stderr.contains(internal), "`{internal}` in: {stderr}");
    }
    // Nothing was created.
    let (_, tables) = env.json(&["tables"]);
    assert!(
        !tables.to_string().contains("unsigned"),
        "a table was created: {tables}"
    );
}

//! A struct field that appears in later files, added with `--on-schema-change add-columns`.

use super::*;

fn located(ids: std::ops::Range<i64>, with_alt: bool) -> RecordBatch {
    let mut point = vec![
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
    ];
    if with_alt {
        point.push(Field::new("alt", DataType::Float64, true));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "loc",
            struct_of(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("point", struct_of(point), true),
            ]),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
    ]));
    let lines: String = ids
        .map(|i| {
            let mut point = serde_json::json!({"lat": i as f64, "lon": -(i as f64)});
            if with_alt {
                point["alt"] = serde_json::json!(i as f64 * 10.0);
            }
            format!(
                "{}\n",
                serde_json::json!({"id": i, "loc": {"name": format!("n{i}"), "point": point}, "tags": ["a", format!("t{i}")]})
            )
        })
        .collect();
    arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(lines))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// Prints `[id, loc.point.alt]` of every row, sorted: argv = catalog db, warehouse, table.
const READ_ALT: &str = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
db, warehouse, ident = sys.argv[1], sys.argv[2], sys.argv[3]
catalog = SqlCatalog("default", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
print(json.dumps(sorted([r["id"], ((r["loc"] or {}).get("point") or {}).get("alt")] for r in rows)))
"#;

#[test]
fn a_new_struct_field_is_added_with_add_columns_in_both_modes() {
    for (table, extra) in [
        ("ns.geo_copy", &[][..]),
        ("ns.geo_register", &["--mode", "register"][..]),
    ] {
        let env = Env::new();
        let old = env.path("old/a.parquet");
        let new = env.path("new/b.parquet");
        let late = env.path("late/c.parquet");
        write(&old, &located(0..10, false));
        write(&new, &located(10..20, true));
        write(&late, &located(20..30, false));
        let (code, report) = run_into(&env, "old", table, extra);
        assert_eq!(code, 0, "{table}: {report}");

        // Without the option, the new nested field is drift that names its path.
        let mut args = vec!["run", "--source", "new", "--table", table];
        args.extend_from_slice(extra);
        let out = env.sluice(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{table}: {stderr}");
        assert!(
            stderr.contains("new/b.parquet")
                && stderr.contains("`loc.point.alt`")
                && stderr.contains("--on-schema-change add-columns"),
            "{table}: {stderr}"
        );

        let mut with_evolution = extra.to_vec();
        with_evolution.extend_from_slice(&["--on-schema-change", "add-columns"]);
        let (code, report) = run_into(&env, "new", table, &with_evolution);
        assert_eq!(code, 0, "{table}: {report}");
        // Files of the old shape still fit: the field reads as null for them.
        let (code, report) = run_into(&env, "late", table, extra);
        assert_eq!(code, 0, "{table}: {report}");

        // The iceberg crate's reader cannot yet fill a struct field missing from older files,
        // so the rows are read back by pyiceberg and DuckDB only.
        if !python_readers(table) {
            continue;
        }
        let alts = python(
            &env,
            READ_ALT,
            &[
                env.path(".sluice/catalog.db").to_str().unwrap(),
                env.path(".sluice/warehouse").to_str().unwrap(),
                table,
            ],
        );
        let alts: Vec<(i64, Option<f64>)> = alts
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64()))
            .collect();
        assert_eq!(alts.len(), 30, "{table}: {alts:?}");
        for (id, alt) in alts {
            let expected = (10..20).contains(&id).then_some(id as f64 * 10.0);
            assert_eq!(alt, expected, "{table}: id {id}");
        }
        assert_read_back_identically(&env, table, &[&old, &new, &late]);
    }
}

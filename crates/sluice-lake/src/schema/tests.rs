use super::*;
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::TimeUnit;

fn table_schema() -> ArrowSchemaRef {
    let arrow = ArrowSchema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]);
    arrow_schema_for(&iceberg_schema_from_arrow(&arrow).unwrap()).unwrap()
}

#[test]
fn conform_reorders_fills_and_rejects() {
    let schema = table_schema();
    let input = Arc::new(ArrowSchema::new(vec![
        Field::new("name", DataType::LargeUtf8, true),
        Field::new("id", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        input,
        vec![
            Arc::new(arrow_array::LargeStringArray::from(vec!["a", "b"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    let out = conform_batch("ns.t", "f.parquet", &schema, &batch).unwrap();
    assert_eq!(out.schema(), schema);
    assert_eq!(out.column(2).null_count(), 2);
    let names = out
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(1), "b");

    let wrong = RecordBatch::try_new(
        Arc::new(ArrowSchema::new(vec![Field::new(
            "id",
            DataType::Int32,
            false,
        )])),
        vec![Arc::new(Int32Array::from(vec![1]))],
    )
    .unwrap();
    let err = conform_batch("ns.t", "bad.parquet", &schema, &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.parquet")
            && err.contains("`id` is int in the file but long in the table"),
        "{err}"
    );
}

#[test]
fn a_batch_projected_to_no_column_keeps_its_row_count() {
    // A reader that only counts rows asks for no column.
    let batch = RecordBatch::try_new(
        Arc::new(ArrowSchema::new(vec![Field::new(
            "id",
            DataType::Int64,
            false,
        )])),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
    )
    .unwrap()
    .project(&[])
    .unwrap();
    let none = Arc::new(ArrowSchema::empty());
    let out = conform_batch("ns.t", "f.parquet", &none, &batch).unwrap();
    assert_eq!((out.num_columns(), out.num_rows()), (0, 3));
}

#[test]
fn rename_keeps_ids_and_mapping_keeps_old_names() {
    let schema = iceberg_schema_from_arrow(&ArrowSchema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Utf8, true),
    ]))
    .unwrap();
    let mapping = name_mapping_json(&schema, None).unwrap();
    let renamed = renamed(&schema, "ns.t", "b", "c").unwrap();
    assert_eq!(
        renamed.field_by_name("c").unwrap().id,
        schema.field_by_name("b").unwrap().id
    );
    let mapping2 = name_mapping_json(&renamed, Some(&mapping)).unwrap();
    assert!(
        mapping2.contains("\"c\"") && mapping2.contains("\"b\""),
        "{mapping2}"
    );
    assert!(matches!(renamed_err(&schema), Error::ColumnNotFound { .. }));
}

#[test]
fn nested_columns_conform_by_name_and_report_new_fields_by_path() {
    let point = |fields: Vec<Field>| DataType::Struct(fields.into());
    let table_arrow = ArrowSchema::new(vec![
        Field::new(
            "loc",
            point(vec![
                Field::new("lat", DataType::Float64, true),
                Field::new("lon", DataType::Float64, true),
            ]),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
    ]);
    let table = arrow_schema_for(&iceberg_schema_from_arrow(&table_arrow).unwrap()).unwrap();
    // The input lacks `loc.lon`, spells the list element `item`, stores large strings.
    let lat = Arc::new(arrow_array::Float64Array::from(vec![1.0, 2.0]));
    let loc = StructArray::try_new(
        vec![Field::new("lat", DataType::Float64, true)].into(),
        vec![lat as ArrayRef],
        None,
    )
    .unwrap();
    let mut tags =
        arrow_array::builder::ListBuilder::new(arrow_array::builder::LargeStringBuilder::new());
    tags.append_value([Some("a"), None]);
    tags.append_null();
    let tags = tags.finish();
    let input = Arc::new(ArrowSchema::new(vec![
        Field::new("loc", loc.data_type().clone(), true),
        Field::new("tags", tags.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(input.clone(), vec![Arc::new(loc), Arc::new(tags)]).unwrap();
    let diff = diff_schemas(&table, &input);
    assert!(diff.is_compatible(), "{}", diff.describe());
    assert_eq!(diff.missing_optional, vec!["loc.lon".to_string()]);
    let out = conform_batch("ns.t", "f.parquet", &table, &batch).unwrap();
    assert_eq!(out.schema(), table);
    let loc = out.column(0).as_struct();
    assert_eq!(loc.column_by_name("lon").unwrap().null_count(), 2);
    let tags = out.column(1).as_list::<i32>();
    assert!(tags.is_null(1));
    assert_eq!(tags.value(0).as_string::<i32>().value(0), "a");

    // A struct with a field the table lacks: an addition named by its path.
    let wider = ArrowSchema::new(vec![Field::new(
        "loc",
        point(vec![
            Field::new("lat", DataType::Float64, true),
            Field::new("lon", DataType::Float64, true),
            Field::new("alt", DataType::Float64, true),
        ]),
        true,
    )]);
    let diff = diff_schemas(&table, &wider);
    assert!(diff.only_additions() && !diff.is_compatible());
    assert_eq!(diff.extra_nested[0].0, "loc.alt");
    let schema = iceberg_schema_from_arrow(&table_arrow).unwrap();
    let evolved = with_added_columns(
        &schema,
        schema.highest_field_id(),
        "ns.t",
        &[wider.field(0).clone()],
    )
    .unwrap();
    let alt = evolved.field_by_name("loc.alt").unwrap();
    assert!(!alt.required);
    assert_eq!(alt.id, schema.highest_field_id() + 1);
}

#[test]
fn unsupported_columns_are_all_named_with_the_hint() {
    let schema = ArrowSchema::new(vec![
        Field::new("a", DataType::UInt64, true),
        Field::new(
            "s",
            DataType::Struct(vec![Field::new("b", DataType::UInt64, true)].into()),
            true,
        ),
    ]);
    let problems = unsupported_columns(&schema);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("column `a` is UInt64: UInt64 is not supported"));
    assert!(problems[1].starts_with("column `s.b`"));
    let err = iceberg_schema_from_arrow(&schema).unwrap_err().to_string();
    assert!(
        !err.contains("=>") && err.contains("Decimal(20,0)"),
        "{err}"
    );
}

#[test]
fn an_all_null_column_says_to_give_it_a_type() {
    let schema = ArrowSchema::new(vec![Field::new(
        "props",
        DataType::Struct(vec![Field::new("ref", DataType::Null, true)].into()),
        true,
    )]);
    let problems = unsupported_columns(&schema);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("column `props.ref` has no type (Arrow null")
            && problems[0].contains(r#"df["ref"].astype("string")"#),
        "{problems:?}"
    );
}

fn renamed_err(schema: &Schema) -> Error {
    renamed(schema, "ns.t", "zz", "y").unwrap_err()
}

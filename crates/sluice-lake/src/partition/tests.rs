use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, NestedField, PrimitiveType,
    Schema, Transform, Type,
};

use super::*;

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
            NestedField::optional(3, "country", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .unwrap()
}

#[test]
fn the_spark_syntax_parses_into_terms() {
    let terms =
        parse_partition_by("days(ts), bucket(16, id), truncate(country, 2), `country`").unwrap();
    let got: Vec<String> = terms.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "day(ts)",
            "bucket(16, id)",
            "truncate(2, country)",
            "country"
        ]
    );
    assert_eq!(terms[1].field_name(), "id_bucket");
    assert_eq!(terms[2].field_name(), "country_trunc");
    assert_eq!(terms[3].field_name(), "country");
    assert!(parse_partition_by("  ").unwrap().is_empty());
}

#[test]
fn bad_terms_are_named() {
    for (text, needle) in [
        ("weekday(ts)", "unknown transform `weekday`"),
        ("bucket(id)", "`bucket(id)`"),
        ("bucket(0, id)", "above 0"),
        ("day(ts", "without its `)`"),
        ("day(ts), , id", "empty term"),
        ("day(ts), days(ts)", "repeats partition field `ts_day`"),
        ("day(ts, id)", "takes one column"),
    ] {
        let err = parse_partition_by(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
        assert!(err.contains(text), "{text}: {err}");
    }
}

#[test]
fn binding_names_missing_columns_and_wrong_types() {
    let schema = schema();
    let bind = |text: &str| unbound_spec(text, &parse_partition_by(text).unwrap(), &schema);
    let err = bind("day(when)").unwrap_err().to_string();
    assert!(
        err.contains("column `when`") && err.contains("id, ts, country"),
        "{err}"
    );
    let err = bind("day(country)").unwrap_err().to_string();
    assert!(
        err.contains("day does not apply to column `country`"),
        "{err}"
    );
    let spec = bind("day(ts), bucket(8, id)")
        .unwrap()
        .bind(schema.clone())
        .unwrap();
    assert_eq!(describe_spec(&spec, &schema), "day(ts), bucket(8, id)");
    assert!(spec_matches(
        &spec,
        &schema,
        &parse_partition_by("days(ts), bucket(8, id)").unwrap()
    ));
    assert!(!spec_matches(
        &spec,
        &schema,
        &parse_partition_by("day(ts)").unwrap()
    ));
}

fn file(lower: Datum, upper: Datum, nulls: u64, rows: u64) -> DataFile {
    let mut b = DataFileBuilder::default();
    b.content(DataContentType::Data)
        .file_path("f.parquet".to_string())
        .file_format(DataFileFormat::Parquet)
        .record_count(rows)
        .file_size_in_bytes(10)
        .partition(Struct::empty())
        .null_value_counts([(2, nulls), (1, 0)].into())
        .lower_bounds([(2, lower.clone()), (1, Datum::long(5))].into())
        .upper_bounds([(2, upper.clone()), (1, Datum::long(5))].into());
    b.build().unwrap()
}

const DAY_MICROS: i64 = 86_400_000_000;

#[test]
fn a_file_within_one_day_has_one_partition_and_one_spanning_two_is_refused() {
    let schema = schema();
    let spec = PartitionSpec::builder(schema.clone())
        .add_partition_field("ts", "ts_day", Transform::Day)
        .unwrap()
        .add_partition_field("id", "id_bucket", Transform::Bucket(4))
        .unwrap()
        .build()
        .unwrap();
    let day = 19_000;
    let start = day as i64 * DAY_MICROS;
    let within = file(
        Datum::timestamptz_micros(start + 1),
        Datum::timestamptz_micros(start + DAY_MICROS - 1),
        0,
        10,
    );
    let tuple = partition_from_stats(&spec, &schema, &within).unwrap();
    assert_eq!(
        tuple.fields()[0],
        Some(Literal::Primitive(PrimitiveLiteral::Int(day)))
    );
    assert!(partition_path(&spec, &schema, &tuple).starts_with("ts_day=2022-01-08/id_bucket="));

    let across = file(
        Datum::timestamptz_micros(start),
        Datum::timestamptz_micros(start + DAY_MICROS),
        0,
        10,
    );
    let reason = partition_from_stats(&spec, &schema, &across).unwrap_err();
    assert!(
        reason.contains("`ts_day` has 2022-01-08 and 2022-01-09"),
        "{reason}"
    );

    let with_nulls = file(
        Datum::timestamptz_micros(start),
        Datum::timestamptz_micros(start),
        3,
        10,
    );
    let reason = partition_from_stats(&spec, &schema, &with_nulls).unwrap_err();
    assert!(reason.contains("null and 2022-01-08"), "{reason}");

    let all_null = file(
        Datum::timestamptz_micros(start),
        Datum::timestamptz_micros(start),
        10,
        10,
    );
    let tuple = partition_from_stats(&spec, &schema, &all_null).unwrap();
    assert_eq!(tuple.fields()[0], None);
}

#[test]
fn decimals_serialise_in_the_fewest_bytes() {
    assert_eq!(minimal_be(0), vec![0]);
    assert_eq!(minimal_be(127), vec![0x7f]);
    assert_eq!(minimal_be(128), vec![0x00, 0x80]);
    assert_eq!(minimal_be(-1), vec![0xff]);
    assert_eq!(minimal_be(-129), vec![0xff, 0x7f]);
}

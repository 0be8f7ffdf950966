//! Every partition transform round-trips: random rows written through each spec land in files
//! whose partition tuple is what Iceberg's own transform functions give for every row of the
//! file, so no file mixes partitions, and no row is lost, also when the fan-out has to close
//! writers early.

use std::sync::Arc;

use arrow_array::{
    Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use iceberg::spec::{Datum, Literal};
use iceberg::transform::create_transform_function;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use sluice_lake::{TableName, WriteOptions};

use crate::common::{ids, lake_in, manifests_of};

const SPECS: &[&str] = &[
    "id",
    "name",
    "year(ts)",
    "month(ts)",
    "day(ts)",
    "hour(ts)",
    "bucket(7, id)",
    "bucket(3, name)",
    "truncate(10, n)",
    "truncate(2, name)",
    "void(name)",
    "day(ts), bucket(4, id)",
    "month(ts), name, truncate(100, id)",
];

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("name", DataType::Utf8, true),
        Field::new("n", DataType::Int32, true),
    ]))
}

type Row = (i64, Option<i64>, Option<String>, Option<i32>);

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// Row `i` of column `column` of a file read back, as an Iceberg value.
fn datum(batch: &RecordBatch, column: &str, i: usize) -> Option<Datum> {
    let array = batch.column_by_name(column).unwrap();
    if array.is_null(i) {
        return None;
    }
    Some(match column {
        "id" => Datum::long(
            array
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(i),
        ),
        "ts" => Datum::timestamptz_micros(
            array
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap()
                .value(i),
        ),
        "name" => Datum::string(
            array
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(i),
        ),
        "n" => Datum::int(
            array
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .value(i),
        ),
        other => panic!("no column {other}"),
    })
}

async fn round_trip(spec_text: &str, rows: Vec<Row>, max_open_writers: usize, budget: usize) {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path()).await;
    let name: TableName = "ns.p".parse().unwrap();
    let table = lake
        .create_partitioned_table(&name, &schema(), spec_text)
        .await
        .unwrap();
    let options = WriteOptions {
        max_open_writers,
        memory_budget: budget,
        ..WriteOptions::default()
    };
    let mut writer = lake.table_writer(&table, &options).await.unwrap();
    let half = rows.len() / 2;
    for part in [&rows[..half], &rows[half..]] {
        if !part.is_empty() {
            writer.write(&batch(part), "test").await.unwrap();
        }
    }
    let files = writer.finish().await.unwrap();
    let metadata = table.metadata();
    let spec = metadata.default_partition_spec();
    let iceberg_schema = metadata.current_schema();
    assert_eq!(
        spec.fields().len(),
        sluice_lake::partition::parse_partition_by(spec_text)
            .unwrap()
            .len(),
        "{spec_text}: {spec:?}"
    );
    let mut seen = 0usize;
    for file in &files {
        let path = file.file_path().strip_prefix("file://").unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let tuple = file.partition();
        assert_eq!(
            tuple.fields().len(),
            spec.fields().len(),
            "{spec_text}: {path}"
        );
        for b in reader {
            let b = b.unwrap();
            for i in 0..b.num_rows() {
                for (k, field) in spec.fields().iter().enumerate() {
                    let column = iceberg_schema.name_by_field_id(field.source_id).unwrap();
                    let function = create_transform_function(&field.transform).unwrap();
                    let expected = datum(&b, column, i)
                        .and_then(|d| function.transform_literal(&d).unwrap())
                        .map(|d| Literal::Primitive(d.literal().clone()));
                    assert_eq!(
                        tuple.fields()[k],
                        expected,
                        "{spec_text}: row {i} of {path} is not in the file's partition"
                    );
                }
            }
            seen += b.num_rows();
        }
        assert_eq!(file.record_count() as usize, {
            let f = std::fs::File::open(path).unwrap();
            ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows() as usize
        });
    }
    assert_eq!(seen, rows.len(), "{spec_text}: rows lost or duplicated");
}

fn row() -> impl Strategy<Value = Row> {
    // Timestamps from 1950 to 2090 (before the epoch too); a few names so that partitions
    // repeat; nulls in every nullable column.
    (
        -1_000i64..1_000,
        proptest::option::weighted(0.9, -631_152_000_000_000i64..3_786_912_000_000_000),
        proptest::option::weighted(0.9, "[a-c]{0,3}"),
        proptest::option::weighted(0.9, -500i32..500),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 26, max_shrink_iters: 20, ..ProptestConfig::default() })]
    #[test]
    fn every_transform_puts_each_row_in_its_files_partition(
        spec in 0..SPECS.len(),
        rows in proptest::collection::vec(row(), 1..120),
        max_open in 1usize..4,
        tiny_budget in any::<bool>(),
    ) {
        let budget = if tiny_budget { 1 } else { 64 << 20 };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(round_trip(SPECS[spec], rows, max_open, budget));
    }
}

#[tokio::test]
async fn every_spec_round_trips_once() {
    let rows: Vec<Row> = (0..50)
        .map(|i| {
            (
                i * 37 - 900,
                (i % 7 != 0).then_some(i * 86_400_000_000 * 11 - 400_000_000_000_000),
                (i % 5 != 0).then(|| ["a", "ab", "abc", "b", ""][(i % 5) as usize].to_string()),
                (i % 3 != 0).then_some((i * 13 - 300) as i32),
            )
        })
        .collect();
    for spec in SPECS {
        round_trip(spec, rows.clone(), 2, 1).await;
    }
}

/// Whether any data page of `column` in the file at `path` is plain-encoded (the column's
/// dictionary overflowed), and whether any is dictionary-encoded.
fn page_encodings(path: &str, column: &str) -> (bool, bool) {
    use parquet::basic::Encoding;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let (mut plain, mut dictionary) = (false, false);
    for group in reader.metadata().row_groups() {
        let chunk = group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == column)
            .unwrap();
        // The encodings of the chunk's data pages (the dictionary page is not among them).
        let mask = chunk.page_encoding_stats_mask().expect("page encodings");
        plain |= mask.is_set(Encoding::PLAIN);
        dictionary |=
            mask.is_set(Encoding::RLE_DICTIONARY) || mask.is_set(Encoding::PLAIN_DICTIONARY);
    }
    (plain, dictionary)
}

#[tokio::test]
async fn high_cardinality_columns_stop_dictionary_encoding_at_the_bound() {
    // 100,000 distinct names of 16 bytes: 1.6 MB of distinct values, far over the default
    // 256 KiB dictionary bound, and under a 16 MiB one.
    let rows: Vec<Row> = (0..100_000)
        .map(|i| {
            (
                i,
                None,
                Some(format!("session-{i:08}")),
                Some((i % 4) as i32),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path()).await;
    let table = lake
        .create_table(&"ns.d".parse().unwrap(), &schema())
        .await
        .unwrap();
    let mut encodings = Vec::new();
    for bound in [WriteOptions::default().dictionary_page_size, 16 << 20] {
        let options = WriteOptions {
            dictionary_page_size: bound,
            ..WriteOptions::default()
        };
        let mut writer = lake.table_writer(&table, &options).await.unwrap();
        writer.write(&batch(&rows), "test").await.unwrap();
        let files = writer.finish().await.unwrap();
        assert_eq!(files.len(), 1);
        let path = files[0].file_path().strip_prefix("file://").unwrap();
        encodings.push((page_encodings(path, "name"), page_encodings(path, "n")));
    }
    let [(default_name, default_n), (large_name, large_n)] = encodings[..] else {
        unreachable!()
    };
    assert!(
        default_name.0,
        "names fall back to plain under 256 KiB: {default_name:?}"
    );
    assert!(
        !large_name.0,
        "names stay dictionary-encoded under 16 MiB: {large_name:?}"
    );
    assert!(large_name.1);
    // A low-cardinality column keeps its dictionary either way.
    for n in [default_n, large_n] {
        assert_eq!(n, (false, true), "{n:?}");
    }
}

/// Appends to a table partitioned by day merge only with the manifests of the days they write:
/// older days' manifests stay apart, so readers keep skipping them by partition summaries.
#[tokio::test]
async fn appends_merge_only_the_manifests_of_the_days_they_write() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(dir.path()).await;
    let name: TableName = "ns.days".parse().unwrap();
    lake.create_partitioned_table(&name, &schema(), "day(ts)")
        .await
        .unwrap();
    let main = sluice_lake::RefName::main();
    const DAY: i64 = 86_400_000_000;
    let mut id = 0;
    let mut append = async |day: i64| {
        let rows: Vec<Row> = (0..3)
            .map(|k| {
                id += 1;
                (id, Some(day * DAY + k * 1_000_000), None, None)
            })
            .collect();
        lake.append_batches(&name, &main, &[batch(&rows)], Default::default())
            .await
            .unwrap();
    };
    // Twenty days, one append each: no two manifests share a day, none is merged.
    for day in 0..20 {
        append(20_000 + day).await;
    }
    assert_eq!(manifests_of(&lake, &name, "main").await.len(), 20);
    // Sixteen appends to one new day: its manifests merge (sluice's tables merge at 16); the
    // twenty others are left as they were.
    for _ in 0..16 {
        append(20_100).await;
    }
    let manifests = manifests_of(&lake, &name, "main").await;
    assert_eq!(manifests.len(), 21, "{manifests:#?}");
    let merged = manifests
        .iter()
        .find(|m| m.existing_files_count == Some(15))
        .expect("a merged manifest");
    assert_eq!(merged.added_files_count, Some(1));
    assert_eq!(
        ids(&lake, &name, "main").await,
        (1..=(20 + 16) * 3).collect::<Vec<_>>()
    );
}

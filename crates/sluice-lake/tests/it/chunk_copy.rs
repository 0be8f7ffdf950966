//! Copy mode's fast path: column chunks copied as they are, under a footer with field ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use sluice_lake::{
    AppendRequest, RefName, RefSpec, ScanOptions, WriteOptions,
    ingest::{IngestObserver, chunk_copy_blocker},
    parquet::ParquetFooter,
    parquet::read_footer,
};
use sluice_testkit::write_parquet_with;

use crate::common::{
    SeenIds, TestLake, batch, copy_options, file_url, ids, new_lake, schema, sum_amount,
};

fn props(compression: Compression, stats: EnabledStatistics, rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(stats)
        .set_max_row_group_row_count(Some(rows))
        .build()
}

fn zstd() -> Compression {
    Compression::ZSTD(ZstdLevel::default())
}

/// Options that copy chunks of any size, so the tests' small files qualify.
fn any_size() -> WriteOptions {
    WriteOptions {
        min_copied_row_group_bytes: 0,
        ..WriteOptions::default()
    }
}

/// `a.parquet` in a directory of its own: the rows `ids` in zstd row groups of `group_rows`,
/// with chunk statistics; and its footer.
async fn zstd_source(
    t: &TestLake,
    ids: std::ops::Range<i64>,
    group_rows: usize,
) -> (tempfile::TempDir, PathBuf, ParquetFooter) {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("a.parquet");
    write_parquet_with(
        &path,
        &[batch(ids)],
        props(zstd(), EnabledStatistics::Chunk, group_rows),
    );
    let footer = read_footer(t.lake.stores(), &file_url(&path))
        .await
        .unwrap();
    (src, path, footer)
}

/// The parquet files under the lake's warehouse.
fn warehouse_parquet(t: &TestLake) -> Vec<PathBuf> {
    walk(&t.dir.path().join("warehouse"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

#[tokio::test]
async fn eligible_files_are_copied_chunk_by_chunk_with_field_ids() {
    let t = new_lake().await;
    // Three row groups of 400 rows, ids 0..1200.
    let (_src, path, footer) = zstd_source(&t, 0..1200, 400).await;
    let table = t.lake.load_table(&t.table).await.unwrap();
    assert_eq!(chunk_copy_blocker(&table, &footer, &any_size()), None);

    let ingested = t
        .lake
        .ingest(
            &table,
            vec![footer.clone()],
            &copy_options(any_size()),
            Some(SeenIds::default()),
        )
        .await
        .unwrap();
    assert_eq!(ingested.copied_as_is, 1);
    assert_eq!(ingested.files.len(), 1);
    let file = &ingested.files[0];
    // The observer saw every row, decoded from the bytes held for the copy.
    let seen = ingested.observer.unwrap().ids;
    assert_eq!(seen, (0..1200).collect::<Vec<_>>());
    assert_eq!(file.record_count(), 1200);
    assert!(file.file_path().contains("/data/"), "{}", file.file_path());

    // The new file: same row groups, field ids on every column, pages byte for byte the same.
    let copied_path = file
        .file_path()
        .strip_prefix("file://")
        .unwrap()
        .to_string();
    let copied = SerializedFileReader::new(std::fs::File::open(&copied_path).unwrap()).unwrap();
    let metadata = copied.metadata();
    assert_eq!(metadata.num_row_groups(), 3);
    let field_ids: Vec<i32> = metadata
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.get_basic_info().id())
        .collect();
    let iceberg_schema = table.metadata().current_schema();
    let expected: Vec<i32> = ["id", "name", "amount"]
        .iter()
        .map(|n| iceberg_schema.field_by_name(n).unwrap().id)
        .collect();
    assert_eq!(field_ids, expected);
    assert_eq!(
        file.file_size_in_bytes(),
        std::fs::metadata(&copied_path).unwrap().len()
    );
    let source_bytes = std::fs::read(&path).unwrap();
    let copied_bytes = std::fs::read(&copied_path).unwrap();
    for (rg_src, rg_dst) in footer
        .metadata
        .row_groups()
        .iter()
        .zip(metadata.row_groups())
    {
        for (c_src, c_dst) in rg_src.columns().iter().zip(rg_dst.columns()) {
            let (s, l) = c_src.byte_range();
            let (d, m) = c_dst.byte_range();
            assert_eq!(l, m);
            assert_eq!(
                source_bytes[s as usize..(s + l) as usize],
                copied_bytes[d as usize..(d + m) as usize]
            );
        }
    }
    // Metrics from the copied statistics.
    let id_field = iceberg_schema.field_by_name("id").unwrap().id;
    assert_eq!(
        file.lower_bounds().get(&id_field),
        Some(&sluice_lake::iceberg_types::Datum::long(0))
    );
    assert_eq!(
        file.upper_bounds().get(&id_field),
        Some(&sluice_lake::iceberg_types::Datum::long(1199))
    );
    assert_eq!(file.null_value_counts().get(&id_field), Some(&0));

    // Committed and published, the table reads the rows back through Iceberg.
    let branch = RefName::new("copy").unwrap();
    t.lake
        .commit_append(
            &t.table,
            AppendRequest {
                branch: branch.clone(),
                create_from: Some(RefSpec::main()),
                files: vec![file.clone()],
                properties: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&t.lake, &t.table, "copy").await,
        (0..1200).collect::<Vec<_>>()
    );
    let batches = t
        .lake
        .scan_to_vec(
            &t.table,
            &RefSpec::parse("copy").unwrap(),
            &ScanOptions::default(),
        )
        .await
        .unwrap();
    let expected_sum: f64 = (0..1200).map(|i| i as f64 / 2.0).sum();
    assert_eq!(sum_amount(&batches), expected_sum);
}

#[tokio::test]
async fn files_the_table_would_store_differently_are_not_copied() {
    let t = new_lake().await;
    let src = tempfile::tempdir().unwrap();
    let table = t.lake.load_table(&t.table).await.unwrap();
    let blocker = |name: &str, batches: Vec<RecordBatch>, props: WriterProperties| {
        let path = src.path().join(name);
        write_parquet_with(&path, &batches, props);
        let (lake, table) = (&t.lake, &table);
        async move {
            let footer = read_footer(lake.stores(), &file_url(&path)).await.unwrap();
            chunk_copy_blocker(table, &footer, &any_size())
        }
    };
    let good = || props(zstd(), EnabledStatistics::Chunk, 1000);

    let uncompressed = blocker(
        "uncompressed.parquet",
        vec![batch(0..10)],
        props(Compression::UNCOMPRESSED, EnabledStatistics::Chunk, 1000),
    )
    .await
    .unwrap();
    assert!(
        uncompressed.contains("UNCOMPRESSED") && uncompressed.contains("re-encodes"),
        "{uncompressed}"
    );

    let no_stats = blocker(
        "nostats.parquet",
        vec![batch(0..10)],
        props(zstd(), EnabledStatistics::None, 1000),
    )
    .await
    .unwrap();
    assert!(no_stats.contains("statistics"), "{no_stats}");

    // int32 where the table stores long.
    let narrow = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
    let narrow_batch =
        RecordBatch::try_new(narrow, vec![Arc::new(Int32Array::from(vec![1, 2]))]).unwrap();
    let int32 = blocker("int32.parquet", vec![narrow_batch], good())
        .await
        .unwrap();
    assert!(int32.contains("`id`") && int32.contains("Int32"), "{int32}");

    // Required in the file, optional in the table.
    let required = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let required_batch =
        RecordBatch::try_new(required, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
    let nullability = blocker("required.parquet", vec![required_batch], good())
        .await
        .unwrap();
    assert!(nullability.contains("required"), "{nullability}");

    // Small row groups under the default threshold.
    let path = src.path().join("small.parquet");
    write_parquet_with(&path, &[batch(0..100)], good());
    let footer = read_footer(t.lake.stores(), &file_url(&path))
        .await
        .unwrap();
    let small = chunk_copy_blocker(&table, &footer, &WriteOptions::default()).unwrap();
    assert!(small.contains("average"), "{small}");
    assert_eq!(chunk_copy_blocker(&table, &footer, &any_size()), None);

    // Row groups larger than the table writes.
    let tight = WriteOptions {
        max_row_group_rows: 50,
        ..any_size()
    };
    let large = chunk_copy_blocker(&table, &footer, &tight).unwrap();
    assert!(large.contains("100 rows"), "{large}");

    // A dictionary offset of 0 (a known writer bug) would copy the wrong bytes.
    let bad_offsets = {
        let mut f = footer.clone();
        let row_groups = f
            .metadata
            .row_groups()
            .iter()
            .map(|rg| {
                let columns = rg
                    .columns()
                    .iter()
                    .map(|c| {
                        c.clone()
                            .into_builder()
                            .set_dictionary_page_offset(Some(0))
                            .build()
                            .unwrap()
                    })
                    .collect();
                rg.clone()
                    .into_builder()
                    .set_column_metadata(columns)
                    .build()
                    .unwrap()
            })
            .collect();
        f.metadata = Arc::new(
            f.metadata
                .as_ref()
                .clone()
                .into_builder()
                .set_row_groups(row_groups)
                .build(),
        );
        f
    };
    let offsets = chunk_copy_blocker(&table, &bad_offsets, &any_size()).unwrap();
    assert!(offsets.contains("offsets"), "{offsets}");

    // Such a file is re-encoded rather than copied; its rows arrive all the same.
    let ingested = t
        .lake
        .ingest(
            &table,
            vec![footer.clone()],
            &copy_options(tight.clone()),
            Some(SeenIds::default()),
        )
        .await
        .unwrap();
    assert_eq!(ingested.copied_as_is, 0);
    assert_eq!(
        ingested.rows,
        footer.metadata.file_metadata().num_rows() as u64
    );
    assert_eq!(
        ingested.observer.unwrap().ids.len() as u64,
        ingested.rows,
        "the observer sees every re-encoded row"
    );
    assert_eq!(schema().fields().len(), 3);
}

#[tokio::test]
async fn a_failed_copy_leaves_no_file_behind() {
    let t = new_lake().await;
    let (_src, _, footer) = zstd_source(&t, 0..300, 100).await;
    let table = t.lake.load_table(&t.table).await.unwrap();
    // The observer gives up at the second row group.
    let err = t
        .lake
        .ingest(
            &table,
            vec![footer],
            &copy_options(any_size()),
            Some(SeenIds {
                fail_at: Some(2),
                ..SeenIds::default()
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("audit stopped"), "{err}");
    let data_dir = t.dir.path().join("warehouse");
    assert!(
        walk(&data_dir)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json")),
        "the table's metadata should be under {}",
        data_dir.display()
    );
    let parquet_files = warehouse_parquet(&t);
    assert!(parquet_files.is_empty(), "{parquet_files:?}");
}

/// An observer that reads `id` and takes `name` as a dictionary, and keeps what it was shown.
#[derive(Debug, Default)]
struct SeenNames {
    /// The columns of each batch, with their types.
    columns: Vec<Vec<(String, DataType)>>,
    /// The names of the rows, decoded.
    names: Vec<String>,
}

impl IngestObserver for SeenNames {
    type Error = sluice_lake::Error;

    fn columns(&self) -> Option<Vec<String>> {
        Some(vec!["id".to_string(), "name".to_string()])
    }

    fn dictionary_columns(&self) -> Vec<String> {
        vec!["name".to_string()]
    }

    fn observe(&mut self, batch: &RecordBatch) -> sluice_lake::Result<()> {
        let schema = batch.schema();
        self.columns.push(
            schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect(),
        );
        let names =
            arrow_cast::cast(batch.column_by_name("name").unwrap(), &DataType::Utf8).unwrap();
        self.names.extend(
            names
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string),
        );
        Ok(())
    }

    fn fork(&self) -> Self {
        SeenNames::default()
    }

    fn merge(&mut self, other: Self) -> sluice_lake::Result<()> {
        self.columns.extend(other.columns);
        self.names.extend(other.names);
        Ok(())
    }
}

#[tokio::test]
async fn a_copied_file_shows_the_observer_its_columns_and_strings_as_dictionaries() {
    let t = new_lake().await;
    let (_src, _, footer) = zstd_source(&t, 0..600, 200).await;
    let table = t.lake.load_table(&t.table).await.unwrap();
    let ingested = t
        .lake
        .ingest(
            &table,
            vec![footer],
            &copy_options(any_size()),
            Some(SeenNames::default()),
        )
        .await
        .unwrap();
    assert_eq!(ingested.copied_as_is, 1);
    let seen = ingested.observer.unwrap();
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    // One batch per row group, each with only the observer's columns.
    assert_eq!(seen.columns.len(), 3);
    for columns in &seen.columns {
        assert_eq!(
            columns,
            &vec![
                ("id".to_string(), DataType::Int64),
                ("name".to_string(), dictionary.clone())
            ]
        );
    }
    let expected: Vec<String> = (0..600).map(|i| format!("n{i}")).collect();
    assert_eq!(seen.names, expected);
}

#[tokio::test]
async fn a_damaged_string_column_no_observer_reads_fails_the_copy() {
    let t = new_lake().await;
    // The header of the `name` chunk (the observer reads `id` only) is overwritten.
    let (_src, path, footer) = zstd_source(&t, 0..600, 600).await;
    let name = footer.metadata.row_group(0).column(1);
    assert_eq!(name.column_path().string(), "name");
    let (start, _) = name.byte_range();
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[start as usize..start as usize + 16] {
        *b = 0xFF;
    }
    std::fs::write(&path, &bytes).unwrap();
    let table = t.lake.load_table(&t.table).await.unwrap();
    for observer in [Some(SeenIds::default()), None] {
        let err = t
            .lake
            .ingest(
                &table,
                vec![footer.clone()],
                &copy_options(any_size()),
                observer,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("a.parquet"), "{err}");
        assert!(err.to_string().contains("cannot be decoded"), "{err}");
    }
    let parquet_files = warehouse_parquet(&t);
    assert!(parquet_files.is_empty(), "{parquet_files:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Copy mode keeps the codecs every Iceberg reader decodes, and the table's own; the table's
/// `write.parquet.compression-codec` is what re-encoded files are written with.
#[tokio::test]
async fn copy_mode_keeps_readable_codecs_and_writes_the_tables_codec() {
    let t = new_lake().await;
    let src = tempfile::tempdir().unwrap();
    let footer_of = |name: &str, compression: Compression| {
        let path = src.path().join(name);
        write_parquet_with(
            &path,
            &[batch(0..500)],
            props(compression, EnabledStatistics::Chunk, 1000),
        );
        let lake = &t.lake;
        async move { read_footer(lake.stores(), &file_url(&path)).await.unwrap() }
    };
    let table = t.lake.load_table(&t.table).await.unwrap();
    let kept = [
        ("zstd", zstd()),
        ("snappy", Compression::SNAPPY),
        ("gzip", Compression::GZIP(Default::default())),
        ("lz4_raw", Compression::LZ4_RAW),
    ];
    for (name, codec) in kept {
        let footer = footer_of(&format!("{name}.parquet"), codec).await;
        assert_eq!(
            chunk_copy_blocker(&table, &footer, &any_size()),
            None,
            "{name} chunks are kept"
        );
    }
    let re_encoded = [
        ("uncompressed", Compression::UNCOMPRESSED),
        ("lz4", Compression::LZ4),
        ("brotli", Compression::BROTLI(Default::default())),
    ];
    for (name, codec) in re_encoded {
        let footer = footer_of(&format!("{name}.parquet"), codec).await;
        let why = chunk_copy_blocker(&table, &footer, &any_size())
            .unwrap_or_else(|| panic!("{name} chunks must be re-encoded"));
        assert!(why.contains(&codec.to_string()), "{why}");
    }

    // A snappy source file is copied as it is: the new file's chunks are snappy.
    let snappy = footer_of("copied.parquet", Compression::SNAPPY).await;
    let ingested = t
        .lake
        .ingest(
            &table,
            vec![snappy.clone()],
            &copy_options(any_size()),
            None::<SeenIds>,
        )
        .await
        .unwrap();
    assert_eq!(ingested.copied_as_is, 1);
    assert_eq!(
        codecs_of(ingested.files[0].file_path()),
        vec![Compression::SNAPPY]
    );

    // A table written uncompressed keeps uncompressed chunks too; re-encoded files follow the
    // table's codec.
    t.lake
        .set_table_properties(
            &t.table,
            [(
                "write.parquet.compression-codec".to_string(),
                "uncompressed".to_string(),
            )]
            .into(),
        )
        .await
        .unwrap();
    let table = t.lake.load_table(&t.table).await.unwrap();
    let uncompressed = footer_of("plain.parquet", Compression::UNCOMPRESSED).await;
    assert_eq!(chunk_copy_blocker(&table, &uncompressed, &any_size()), None);

    t.lake
        .set_table_properties(
            &t.table,
            [(
                "write.parquet.compression-codec".to_string(),
                "gzip".to_string(),
            )]
            .into(),
        )
        .await
        .unwrap();
    let table = t.lake.load_table(&t.table).await.unwrap();
    let rewrite = sluice_lake::ingest::IngestOptions {
        rewrite: true,
        ..copy_options(any_size())
    };
    let ingested = t
        .lake
        .ingest(&table, vec![snappy.clone()], &rewrite, None::<SeenIds>)
        .await
        .unwrap();
    assert_eq!(ingested.copied_as_is, 0);
    let codecs = codecs_of(ingested.files[0].file_path());
    assert!(
        matches!(codecs[..], [Compression::GZIP(_)]),
        "re-encoded with the table's codec: {codecs:?}"
    );

    // A codec sluice does not write is named, with the property and the table.
    t.lake
        .set_table_properties(
            &t.table,
            [(
                "write.parquet.compression-codec".to_string(),
                "lzo".to_string(),
            )]
            .into(),
        )
        .await
        .unwrap();
    let table = t.lake.load_table(&t.table).await.unwrap();
    let err = t
        .lake
        .ingest(&table, vec![snappy], &rewrite, None::<SeenIds>)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("write.parquet.compression-codec")
            && err.contains("lzo")
            && err.contains(&t.table.to_string()),
        "{err}"
    );
}

/// The distinct codecs of a data file's column chunks.
fn codecs_of(location: &str) -> Vec<Compression> {
    let path = location.strip_prefix("file://").unwrap_or(location);
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut codecs: Vec<Compression> = Vec::new();
    for rg in reader.metadata().row_groups() {
        for c in rg.columns() {
            if !codecs.contains(&c.compression()) {
                codecs.push(c.compression());
            }
        }
    }
    codecs
}

//! Reading source files whose footers were read before (no second footer request), with
//! errors that name the file.

use std::sync::Arc;

use arrow_schema::{DataType, FieldRef, Schema};
use futures::TryStreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::basic::{Encoding, PageType};
use parquet::file::metadata::ColumnChunkMetaData;

use crate::error::{Error, Result};
use crate::parquet::ParquetFooter;
use crate::schema::conform_batch;
use crate::storage::ObjectStores;

/// Rows per batch read from a source file.
pub(crate) const BATCH_ROWS: usize = 64 * 1024;

/// A reader over a source file that reuses its footer.
pub(crate) fn open_reader(
    stores: &ObjectStores,
    footer: &ParquetFooter,
) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
    open_reader_with(stores, footer, ArrowReaderOptions::new())
}

/// [`open_reader`] with reader options (a schema that asks for other Arrow types).
fn open_reader_with(
    stores: &ObjectStores,
    footer: &ParquetFooter,
    options: ArrowReaderOptions,
) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
    let (store, path) = stores.resolve(&footer.location)?;
    let reader = ParquetObjectReader::new(store, path).with_file_size(footer.size);
    let metadata = ArrowReaderMetadata::try_new(footer.metadata.clone(), options)
        .map_err(|e| corrupt_file(footer, e))?;
    Ok(ParquetRecordBatchStreamBuilder::new_with_metadata(
        reader, metadata,
    ))
}

/// The file cannot be read as parquet.
pub(crate) fn corrupt_file(footer: &ParquetFooter, e: parquet::errors::ParquetError) -> Error {
    Error::CorruptFile {
        path: footer.location.clone(),
        reason: e.to_string(),
    }
}

/// A page of a file that cannot be decoded, named by the file.
pub(crate) fn undecodable(footer: &ParquetFooter, e: arrow_schema::ArrowError) -> Error {
    let reason = match e {
        arrow_schema::ArrowError::ParquetError(message) => message,
        arrow_schema::ArrowError::ExternalError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    Error::CorruptFile {
        path: footer.location.clone(),
        reason: format!("the file is damaged, a page cannot be decoded ({reason})"),
    }
}

/// `schema` with the string columns (`string` or `large_string`) named in `columns` as
/// `Dictionary(Int32, Utf8)`.
pub(crate) fn with_dictionaries(schema: &Schema, columns: &[String]) -> Schema {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_string(f.data_type()) && columns.contains(f.name()) {
                Arc::new(f.as_ref().clone().with_data_type(string_dictionary()))
            } else {
                f.clone()
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8)
}

fn string_dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The top-level columns of a file that it stores as strings (`string`, or `large_string` as
/// pandas writes them), dictionary-encoded in every page, and `pick` picks. Only those are
/// worth reading as dictionaries: a chunk that fell back to plain pages would have every row's
/// string hashed into a new dictionary.
pub(crate) fn stored_strings(footer: &ParquetFooter, pick: impl Fn(&str) -> bool) -> Vec<String> {
    let leaves = footer.metadata.file_metadata().schema_descr().columns();
    footer
        .schema
        .fields()
        .iter()
        .filter(|f| is_string(f.data_type()) && pick(f.name()))
        .filter(|f| {
            let top_level = std::slice::from_ref(f.name());
            leaves
                .iter()
                .position(|leaf| leaf.path().parts() == top_level)
                .is_some_and(|leaf| {
                    footer
                        .metadata
                        .row_groups()
                        .iter()
                        .all(|rg| dictionary_only(rg.column(leaf)))
                })
        })
        .map(|f| f.name().clone())
        .collect()
}

/// Whether every data page of a chunk refers to its dictionary page; `false` when the chunk's
/// page encoding statistics are not known.
fn dictionary_only(chunk: &ColumnChunkMetaData) -> bool {
    let dictionary =
        |e: Encoding| matches!(e, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY);
    chunk.dictionary_page_offset().is_some()
        && (chunk
            .page_encoding_stats_mask()
            .is_some_and(|data_pages| data_pages.encodings().all(dictionary))
            || chunk.page_encoding_stats().is_some_and(|pages| {
                pages
                    .iter()
                    .filter(|p| matches!(p.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2))
                    .all(|p| dictionary(p.encoding))
            }))
}

/// Reader options that decode the `encoded` columns of a file (see [`stored_strings`]) to
/// `Dictionary(Int32, Utf8)`, the file's dictionary pages kept as they are.
pub(crate) fn dictionary_options(footer: &ParquetFooter, encoded: &[String]) -> ArrowReaderOptions {
    let options = ArrowReaderOptions::new();
    if encoded.is_empty() {
        return options;
    }
    options.with_schema(Arc::new(with_dictionaries(&footer.schema, encoded)))
}

/// The given top-level columns of a file, conformed to `projected` (the table's schema
/// projected to them). Those of `dictionaries` the file stores as strings are read as
/// `Dictionary(Int32, Utf8)`, the file's dictionary pages kept as they are.
pub(crate) async fn read_columns(
    stores: &ObjectStores,
    footer: &ParquetFooter,
    projected: &arrow_schema::SchemaRef,
    columns: &[String],
    dictionaries: &[String],
    table: &str,
) -> Result<Vec<arrow_array::RecordBatch>> {
    let corrupt = |e| corrupt_file(footer, e);
    let encoded = stored_strings(footer, |c| dictionaries.iter().any(|d| d == c));
    let builder = open_reader_with(stores, footer, dictionary_options(footer, &encoded))?;
    let projected = Arc::new(with_dictionaries(projected, &encoded));
    let roots: Vec<usize> = columns
        .iter()
        .filter_map(|c| footer.schema.index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(corrupt)?;
    let batches: Vec<arrow_array::RecordBatch> = stream.try_collect().await.map_err(corrupt)?;
    batches
        .iter()
        .map(|b| conform_batch(table, &footer.location, &projected, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, LargeStringArray, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::parquet::read_footer;
    use crate::storage::StorageOptions;

    #[tokio::test]
    async fn string_columns_asked_for_as_dictionaries_come_dictionary_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        let kinds = StringArray::from(vec![Some("view"), Some("click"), None, Some("view")]);
        let long = LargeStringArray::from(vec!["a", "b", "c", "d"]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, true),
            Field::new("note", DataType::LargeUtf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(kinds.clone()), Arc::new(long)],
        )
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let stores = ObjectStores::new(StorageOptions::default());
        let footer = read_footer(&stores, path.to_str().unwrap()).await.unwrap();
        // The table's schema has both as strings.
        let table = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, false),
        ]));
        let columns = ["kind".to_string(), "note".to_string()];
        let plain = read_columns(&stores, &footer, &table, &columns, &[], "ns.t")
            .await
            .unwrap()
            .remove(0);
        assert_eq!(plain.column(0).data_type(), &DataType::Utf8);
        assert_eq!(plain.column(1).data_type(), &DataType::Utf8);
        // `note` is a large string in the file (as pandas writes strings): it comes as a
        // dictionary of strings all the same.
        let encoded = read_columns(&stores, &footer, &table, &columns, &columns, "ns.t")
            .await
            .unwrap()
            .remove(0);
        for i in 0..2 {
            assert_eq!(encoded.column(i).data_type(), &string_dictionary());
            let decoded = arrow_cast::cast(encoded.column(i), &DataType::Utf8).unwrap();
            assert_eq!(decoded.as_ref(), plain.column(i).as_ref());
        }
        assert_eq!(encoded.column(0).logical_null_count(), 1);
    }

    #[tokio::test]
    async fn only_strings_dictionary_encoded_in_every_page_are_read_as_dictionaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        let rows = 20_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("session", DataType::Utf8, false),
            Field::new("plain", DataType::Utf8, false),
        ]));
        let kinds: StringArray = (0..rows).map(|i| Some(["view", "click"][i % 2])).collect();
        let sessions: StringArray = (0..rows).map(|i| Some(format!("s{i:08}"))).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(kinds),
                Arc::new(sessions.clone()),
                Arc::new(sessions),
            ],
        )
        .unwrap();
        // `session` outgrows a small dictionary page and falls back to plain pages; `plain`
        // has no dictionary at all.
        let props = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_page_size_limit(4096)
            .set_data_page_row_count_limit(1000)
            .set_column_dictionary_enabled("plain".into(), false)
            .build();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props))
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let stores = ObjectStores::new(StorageOptions::default());
        let footer = read_footer(&stores, path.to_str().unwrap()).await.unwrap();
        let session = footer.metadata.row_group(0).column(1);
        assert!(session.dictionary_page_offset().is_some());
        assert_eq!(stored_strings(&footer, |_| true), vec!["kind".to_string()]);
        assert!(stored_strings(&footer, |c| c != "kind").is_empty());
    }
}

//! Reading source files whose footers were read before (no second footer request), with
//! errors that name the file.

use futures::TryStreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

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
    let (store, path) = stores.resolve(&footer.location)?;
    let reader = ParquetObjectReader::new(store, path).with_file_size(footer.size);
    let metadata = ArrowReaderMetadata::try_new(footer.metadata.clone(), ArrowReaderOptions::new())
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

/// The given top-level columns of a file, conformed to `projected` (the table's schema
/// projected to them).
pub(crate) async fn read_columns(
    stores: &ObjectStores,
    footer: &ParquetFooter,
    projected: &arrow_schema::SchemaRef,
    columns: &[String],
    table: &str,
) -> Result<Vec<arrow_array::RecordBatch>> {
    let corrupt = |e| corrupt_file(footer, e);
    let builder = open_reader(stores, footer)?;
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
        .map(|b| conform_batch(table, &footer.location, projected, b))
        .collect()
}

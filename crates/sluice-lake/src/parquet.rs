//! Source parquet files as sluice first sees them: their footers (schema, row groups,
//! statistics), read once and reused by every later step, so that a bad file fails a run
//! before anything is written.

use arrow_schema::Schema as ArrowSchema;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Error, Result};
use crate::storage::ObjectStores;

/// What a parquet footer says about a file: its Arrow schema and metadata.
#[derive(Debug, Clone)]
pub struct ParquetFooter {
    /// The file's location.
    pub location: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's Arrow schema.
    pub schema: ArrowSchema,
    /// The parquet metadata.
    pub metadata: std::sync::Arc<ParquetMetaData>,
}

/// Reads a parquet file's footer (a few KB; the data is not read). A missing, empty, truncated
/// or non-parquet file is an [`Error::CorruptFile`] naming it.
pub async fn read_footer(stores: &ObjectStores, location: &str) -> Result<ParquetFooter> {
    let (store, path) = stores.resolve(location)?;
    let meta = store.head(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => Error::CorruptFile {
            path: location.to_string(),
            reason: "the file does not exist".to_string(),
        },
        source => Error::Storage {
            location: location.to_string(),
            source,
        },
    })?;
    if meta.size == 0 {
        return Err(Error::CorruptFile {
            path: location.to_string(),
            reason: "the file is empty (0 bytes)".to_string(),
        });
    }
    let reader = ParquetObjectReader::new(store, path).with_file_size(meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::CorruptFile {
            path: location.to_string(),
            reason: format!("not a readable parquet file ({e})"),
        })?;
    Ok(ParquetFooter {
        location: location.to_string(),
        size: meta.size,
        schema: builder.schema().as_ref().clone(),
        metadata: builder.metadata().clone(),
    })
}

/// Reads the footers of many files, a few at a time.
pub async fn read_footers(
    stores: &ObjectStores,
    locations: &[String],
) -> Result<Vec<ParquetFooter>> {
    futures::stream::iter(locations.iter().map(|l| read_footer(stores, l)))
        .buffered(16)
        .try_collect()
        .await
}

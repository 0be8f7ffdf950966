//! Parquet files as an upstream tool writes them: no Iceberg field ids, the writer's defaults
//! or zstd with column statistics (pyarrow's defaults).

use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Zstd compression, column statistics (the writer's default), and row groups of at most
/// `row_group_rows` rows.
pub fn zstd_properties(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build()
}

/// A parquet file (the writer's defaults: uncompressed) holding `batch`.
pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    write_to(Vec::new(), std::slice::from_ref(batch), None)
}

/// A zstd parquet file with column statistics holding `batch`, in row groups of at most
/// `row_group_rows` rows: what pyarrow writes by default, and what copy mode can keep as it is.
pub fn zstd_parquet_bytes(batch: &RecordBatch, row_group_rows: usize) -> Vec<u8> {
    write_to(
        Vec::new(),
        std::slice::from_ref(batch),
        Some(zstd_properties(row_group_rows)),
    )
}

/// Writes `batch` to a parquet file at `path` with the writer's defaults, creating the
/// directories above it.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    write_file(path, std::slice::from_ref(batch), None);
}

/// Writes `batch` as zstd parquet with column statistics, in row groups of at most
/// `row_group_rows` rows, creating the directories above it.
pub fn write_zstd_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    write_file(
        path,
        std::slice::from_ref(batch),
        Some(zstd_properties(row_group_rows)),
    );
}

/// Writes `batches` (one schema, that of the first) to one parquet file with `properties`,
/// creating the directories above it.
pub fn write_parquet_with(path: &Path, batches: &[RecordBatch], properties: WriterProperties) {
    write_file(path, batches, Some(properties));
}

fn write_file(path: &Path, batches: &[RecordBatch], properties: Option<WriterProperties>) {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    let file = std::fs::File::create(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    write_to(file, batches, properties);
}

fn write_to<W: std::io::Write + Send>(
    out: W,
    batches: &[RecordBatch],
    properties: Option<WriterProperties>,
) -> W {
    let first = batches
        .first()
        .expect("a parquet file needs at least one batch for its schema");
    let mut writer =
        ArrowWriter::try_new(out, first.schema(), properties).expect("a parquet writer");
    for batch in batches {
        writer.write(batch).expect("write a batch");
    }
    writer.into_inner().expect("close the parquet writer")
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::batch;

    #[test]
    fn zstd_files_have_the_row_groups_asked_for() {
        let bytes = zstd_parquet_bytes(&batch(0..1_000), 300);
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 4);
        assert_eq!(meta.file_metadata().num_rows(), 1_000);
        let column = meta.row_group(0).column(0);
        assert_eq!(column.compression(), Compression::ZSTD(Default::default()));
        assert!(column.statistics().is_some());
    }

    #[test]
    fn files_on_disk_hold_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/two.parquet");
        write_parquet_with(
            &path,
            &[batch(0..5), batch(5..8)],
            WriterProperties::default(),
        );
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 8);
        assert_eq!(
            reader.metadata().row_group(0).column(0).compression(),
            Compression::UNCOMPRESSED
        );
    }
}

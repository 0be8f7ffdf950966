//! Rows out of `sluice scan` and `sluice sql`: as a table, CSV, JSON or Parquet, on standard
//! output or into a file.
//!
//! A table is for eyes: it shows the first [`TABLE_ROWS`] rows unless `--limit` says otherwise,
//! and says on stderr when it left rows out. CSV, JSON and Parquet are for programs: they carry
//! every row unless `--limit` caps them, with the header (or `[]`, or the schema) even when
//! there are none; CSV writes struct, list and map values as JSON text. A file given with
//! `--output` appears whole or not at all: rows go to a temporary file beside it, renamed at
//! the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use futures::stream::BoxStream;

use crate::cli::Format;

/// Rows a table shows without `--limit`.
pub const TABLE_ROWS: usize = 20;

/// Batches of rows, from a scan or a query.
pub type Batches = BoxStream<'static, Result<RecordBatch>>;

/// Where and how to write rows.
pub struct RowsOut<'a> {
    /// What the rows are of, for the table's footer and messages (`analytics.events@main`).
    pub label: &'a str,
    pub format: Format,
    /// `--limit`.
    pub limit: Option<usize>,
    /// `--output`.
    pub output: Option<&'a Path>,
}

impl RowsOut<'_> {
    /// The rows the format shows at most: `--limit`, or [`TABLE_ROWS`] for a table.
    pub fn effective_limit(&self) -> Option<usize> {
        match (self.limit, self.format) {
            (Some(n), _) => Some(n),
            (None, Format::Table) if self.output.is_none() => Some(TABLE_ROWS),
            (None, _) => None,
        }
    }

    /// Writes the rows; returns how many were written.
    pub async fn write(&self, schema: SchemaRef, stream: Batches) -> Result<usize> {
        if self.format == Format::Parquet && self.output.is_none() {
            bail!("--format parquet needs --output FILE (Parquet is not written to a terminal)");
        }
        let mut rows = Rows {
            stream,
            left: self.effective_limit().unwrap_or(usize::MAX),
            written: 0,
        };
        match self.output {
            None => {
                let out = Stdout::default();
                let gone = out.gone.clone();
                self.write_to(schema, &mut rows, out, &gone).await?;
            }
            Some(path) => {
                let partial = partial_path(path);
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("cannot create {}", partial.display()))?;
                let gone = Arc::new(AtomicBool::new(false));
                let written = self.write_to(schema, &mut rows, file, &gone).await;
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
                std::fs::rename(&partial, path).with_context(|| {
                    format!("cannot move {} to {}", partial.display(), path.display())
                })?;
            }
        }
        Ok(rows.written)
    }

    async fn write_to<W: Write + Send>(
        &self,
        schema: SchemaRef,
        rows: &mut Rows,
        out: W,
        gone: &AtomicBool,
    ) -> Result<()> {
        let label = self.label;
        match self.format {
            Format::Table => {
                let mut batches = Vec::new();
                while let Some(batch) = rows.next().await? {
                    batches.push(batch);
                }
                let shown: usize = batches.iter().map(RecordBatch::num_rows).sum();
                if batches.is_empty() {
                    batches.push(RecordBatch::new_empty(schema.clone()));
                }
                let text = arrow::util::pretty::pretty_format_batches(&batches)?;
                let mut out = std::io::BufWriter::new(out);
                writeln!(out, "{text}")?;
                writeln!(out, "{shown} row(s) from {label}")?;
                out.flush()?;
                if rows.more().await? {
                    eprintln!(
                        "showing the first {shown} row(s) of {label}; more rows exist: \
                         `--limit N` shows more, `--format csv` or `--format json` prints them all"
                    );
                }
            }
            Format::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(std::io::BufWriter::new(out));
                // The first batch, even an empty one, carries the header.
                let first = rows
                    .next()
                    .await?
                    .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
                writer.write(&nested_as_json(&first)?)?;
                while !gone.load(Ordering::Relaxed)
                    && let Some(batch) = rows.next().await?
                {
                    writer.write(&nested_as_json(&batch)?)?;
                }
                writer.into_inner().flush()?;
            }
            Format::Json => {
                let mut writer = arrow::json::ArrayWriter::new(std::io::BufWriter::new(out));
                while !gone.load(Ordering::Relaxed)
                    && let Some(batch) = rows.next().await?
                {
                    writer.write(&batch)?;
                }
                // `[]` when there were no rows.
                writer.finish()?;
                let mut out = writer.into_inner();
                out.write_all(b"\n")?;
                out.flush()?;
            }
            Format::Parquet => {
                let properties = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                let mut writer = parquet::arrow::ArrowWriter::try_new(
                    std::io::BufWriter::new(out),
                    schema.clone(),
                    Some(properties),
                )?;
                while let Some(batch) = rows.next().await? {
                    writer.write(&batch)?;
                }
                writer.into_inner()?.flush()?;
            }
        }
        Ok(())
    }
}

/// `FILE` → `.FILE.partial-<pid>` in the same directory, so the rename is atomic.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rows".to_string());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// The batch with every struct, list and map column as JSON text (CSV holds flat values
/// only), nulls kept as nulls.
fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, ArrayRef, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let options = arrow::json::writer::EncoderOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.clone());
            columns.push(column.clone());
            continue;
        }
        let mut encoder = arrow::json::writer::make_encoder(field, column.as_ref(), &options)?;
        let mut text = StringBuilder::with_capacity(column.len(), column.len() * 16);
        let mut buffer = Vec::new();
        for row in 0..column.len() {
            if encoder.is_null(row) {
                text.append_null();
                continue;
            }
            buffer.clear();
            encoder.encode(row, &mut buffer);
            text.append_value(String::from_utf8_lossy(&buffer));
        }
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text.finish()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The rows of a stream, at most `left` of them.
struct Rows {
    stream: Batches,
    left: usize,
    written: usize,
}

impl Rows {
    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        while self.left > 0 {
            let Some(batch) = self.stream.try_next().await? else {
                return Ok(None);
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let take = self.left.min(batch.num_rows());
            self.left -= take;
            self.written += take;
            return Ok(Some(batch.slice(0, take)));
        }
        Ok(None)
    }

    /// Whether rows are left after the limit was reached.
    async fn more(&mut self) -> Result<bool> {
        if self.left > 0 {
            return Ok(false);
        }
        while let Some(batch) = self.stream.try_next().await? {
            if batch.num_rows() > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Standard output for streamed rows: when the reader goes away (`sluice scan … | head`), the
/// rest is dropped and the scan stops instead of failing.
#[derive(Default)]
struct Stdout {
    gone: Arc<AtomicBool>,
}

impl Stdout {
    fn unless_gone(&self, io: std::io::Result<()>) -> std::io::Result<()> {
        match io {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.gone.store(true, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.gone.load(Ordering::Relaxed) {
            self.unless_gone(std::io::stdout().lock().write_all(buf))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.gone.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.unless_gone(std::io::stdout().lock().flush())
    }
}

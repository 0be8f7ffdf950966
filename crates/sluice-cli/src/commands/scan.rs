//! `sluice scan`: rows of a ref, as a table, CSV or JSON.
//!
//! A table is for eyes: it shows the first [`TABLE_ROWS`] rows unless `--limit` says otherwise,
//! and says on stderr when it left rows out. CSV and JSON are for programs: they stream every
//! row unless `--limit` caps them, with the header (or `[]`) even when there are none; CSV
//! writes struct, list and map values as JSON text.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use arrow::array::RecordBatch;
use futures::TryStreamExt;
use sluice_lake::{BatchStream, ScanOptions};

use super::{Ctx, parse_target};
use crate::cli::Format;
use crate::exit_code;

/// Rows a table shows without `--limit`.
pub const TABLE_ROWS: usize = 20;

pub(super) async fn scan(
    ctx: &Ctx<'_>,
    target: &str,
    columns: Option<Vec<String>>,
    limit: Option<usize>,
    format: Format,
) -> Result<u8> {
    let format = if ctx.cli.json { Format::Json } else { format };
    let limit = match (limit, format) {
        (Some(n), _) => Some(n),
        (None, Format::Table) => Some(TABLE_ROWS),
        (None, Format::Csv | Format::Json) => None,
    };
    let (name, spec) = parse_target(target)?;
    let pipeline = ctx.pipeline().await?;
    let (schema, stream) = pipeline
        .lake()
        .scan(
            &name,
            &spec,
            &ScanOptions {
                columns,
                batch_size: Some(limit.unwrap_or(usize::MAX).clamp(1, 64 * 1024)),
            },
        )
        .await?;
    let mut rows = Rows {
        stream,
        left: limit.unwrap_or(usize::MAX),
    };
    match format {
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
            outln!("{text}");
            outln!("{shown} row(s) from {target}");
            if rows.more().await? {
                eprintln!(
                    "showing the first {shown} row(s) of {target}; more rows exist: \
                     `--limit N` shows more, `--format csv` or `--format json` prints them all"
                );
            }
        }
        Format::Csv => {
            let out = Stdout::default();
            let gone = out.gone.clone();
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
        }
        Format::Json => {
            let out = Stdout::default();
            let gone = out.gone.clone();
            let mut writer = arrow::json::ArrayWriter::new(std::io::BufWriter::new(out));
            while !gone.load(Ordering::Relaxed)
                && let Some(batch) = rows.next().await?
            {
                writer.write(&batch)?;
            }
            // `[]` when there were no rows.
            writer.finish()?;
            let mut out = writer.into_inner();
            use std::io::Write;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
    Ok(exit_code::SUCCESS)
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
        fields.push(std::sync::Arc::new(Field::new(
            field.name(),
            DataType::Utf8,
            true,
        )));
        columns.push(std::sync::Arc::new(text.finish()));
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The rows of a scan, at most `left` of them.
struct Rows {
    stream: BatchStream,
    left: usize,
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

impl std::io::Write for Stdout {
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

//! `sluice scan`: rows of a ref, as a table, CSV or JSON.

use anyhow::Result;
use futures::TryStreamExt;
use sluice_lake::ScanOptions;

use super::{Ctx, parse_target};
use crate::cli::Format;
use crate::exit_code;

pub(super) async fn scan(
    ctx: &Ctx<'_>,
    target: &str,
    columns: Option<Vec<String>>,
    limit: usize,
    format: Format,
) -> Result<u8> {
    let (name, spec) = parse_target(target)?;
    let pipeline = ctx.pipeline().await?;
    let (schema, mut stream) = pipeline
        .lake()
        .scan(
            &name,
            &spec,
            &ScanOptions {
                columns,
                batch_size: Some(limit.clamp(1, 64 * 1024)),
            },
        )
        .await?;
    let mut batches = Vec::new();
    let mut rows = 0;
    while rows < limit {
        let Some(batch) = stream.try_next().await? else {
            break;
        };
        let take = (limit - rows).min(batch.num_rows());
        rows += take;
        batches.push(batch.slice(0, take));
    }
    let format = if ctx.cli.json { Format::Json } else { format };
    let mut out = Vec::new();
    match format {
        Format::Table => {
            if batches.is_empty() {
                let empty = arrow::array::RecordBatch::new_empty(schema.clone());
                batches.push(empty);
            }
            let text = arrow::util::pretty::pretty_format_batches(&batches)?;
            outln!("{text}");
            outln!("{rows} row(s) from {target}");
            return Ok(exit_code::SUCCESS);
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &batches {
                writer.write(b)?;
            }
            drop(writer);
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            for b in &batches {
                writer.write(b)?;
            }
            writer.finish()?;
            if batches.is_empty() {
                out = b"[]".to_vec();
            }
        }
    }
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    if format == Format::Json {
        outln!();
    }
    Ok(exit_code::SUCCESS)
}

//! `sluice scan`: rows of a ref, optionally filtered (`--where`, through the SQL engine, which
//! prunes files by partition values and column bounds), as a table, CSV, JSON or Parquet.

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use sluice_lake::ScanOptions;
use sluice_sql::{LakeRef, SqlSession};

use super::rows::{Batches, RowsOut};
use super::{Ctx, parse_target};
use crate::exit_code;

pub(super) async fn scan(
    ctx: &Ctx<'_>,
    target: &str,
    columns: Option<Vec<String>>,
    filter: Option<&str>,
    out: RowsOut<'_>,
) -> Result<u8> {
    let (name, spec) = parse_target(target)?;
    let pipeline = ctx.pipeline().await?;
    let (schema, stream): (_, Batches) = match filter {
        None => {
            let limit = out.effective_limit();
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
            (schema, stream.map_err(anyhow::Error::from).boxed())
        }
        Some(filter) => {
            let session = SqlSession::new(pipeline.lake());
            let table = LakeRef {
                name: name.clone(),
                spec: Some(spec),
            }
            .to_sql();
            let projection = match &columns {
                Some(columns) => columns
                    .iter()
                    .map(|c| sluice_sql::names::quote(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "*".to_string(),
            };
            let frame = session
                .sql(&format!("SELECT {projection} FROM {table} WHERE {filter}"))
                .await
                .map_err(|e| where_error(e, filter))?;
            let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
            let stream = frame
                .execute_stream()
                .await
                .map_err(sluice_sql::Error::from)?;
            (
                schema,
                stream
                    .map_err(|e| anyhow::Error::from(sluice_sql::Error::from(e)))
                    .boxed(),
            )
        }
    };
    out.write(schema, stream).await?;
    Ok(exit_code::SUCCESS)
}

/// A query error of `--where` says so; a missing table or ref stays what it is.
fn where_error(error: sluice_sql::Error, filter: &str) -> anyhow::Error {
    match error {
        sluice_sql::Error::Lake(_) => error.into(),
        other => anyhow::anyhow!("--where \"{filter}\": {other}"),
    }
}

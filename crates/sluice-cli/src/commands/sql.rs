//! `sluice sql`: one read-only query over the lake's tables at any ref (see docs/sql.md).

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use sluice_sql::SqlSession;

use super::Ctx;
use super::rows::RowsOut;
use crate::exit_code;

pub(super) async fn sql(ctx: &Ctx<'_>, query: &str, out: RowsOut<'_>) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let session = SqlSession::new(pipeline.lake());
    let frame = session.sql(query).await?;
    let explain = matches!(
        frame.logical_plan(),
        sluice_sql::datafusion::logical_expr::LogicalPlan::Explain(_)
            | sluice_sql::datafusion::logical_expr::LogicalPlan::Analyze(_)
    );
    let frame = match out.effective_limit().filter(|_| !explain) {
        // The engine stops reading once it has the rows (one more tells a table whether
        // rows were left out).
        Some(n) => frame
            .limit(0, Some(n.saturating_add(1)))
            .map_err(sluice_sql::Error::from)?,
        None => frame,
    };
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let stream = frame
        .execute_stream()
        .await
        .map_err(sluice_sql::Error::from)?
        .map_err(|e| anyhow::Error::from(sluice_sql::Error::from(e)))
        .boxed();
    out.write(schema, stream).await?;
    Ok(exit_code::SUCCESS)
}

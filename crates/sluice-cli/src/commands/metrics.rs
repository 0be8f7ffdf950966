//! `sluice metrics`: what the last publishes of a ref recorded of their new rows (the history
//! `anomaly` checks compare a run with), as one line per metric with a sparkline, and per
//! publish for one column.

use anyhow::{Result, bail};
use chrono::{TimeZone, Utc};
use serde_json::json;
use sluice_checks::{Metric, RunMetrics};
use sluice_lake::summary::{METRICS_PROPERTY, along_ancestry};

use super::{Ctx, parse_target};
use crate::exit_code;
use crate::render::{Fit, table};

/// One publish's metrics.
struct Point {
    snapshot_id: i64,
    timestamp_ms: i64,
    run_id: Option<String>,
    metrics: RunMetrics,
}

pub(super) async fn metrics(
    ctx: &Ctx<'_>,
    target: &str,
    column: Option<&str>,
    last: usize,
) -> Result<u8> {
    let (name, spec) = parse_target(target)?;
    let pipeline = ctx.pipeline().await?;
    let lake = pipeline.lake();
    let loaded = lake.load_table(&name).await?;
    let head = loaded.resolve(&spec)?;
    // Newest first, as recorded.
    let points: Vec<Point> = along_ancestry(&loaded, head, METRICS_PROPERTY, last)
        .into_iter()
        .filter_map(|r| {
            Some(Point {
                metrics: RunMetrics::from_summary(&r.value)?,
                snapshot_id: r.snapshot_id,
                timestamp_ms: r.timestamp_ms,
                run_id: r.run_id,
            })
        })
        .collect();
    if let Some(c) = column
        && !points.iter().any(|p| p.metrics.columns.contains_key(c))
    {
        let known: std::collections::BTreeSet<&String> = points
            .iter()
            .flat_map(|p| p.metrics.columns.keys())
            .collect();
        bail!(
            "no publish of {target} recorded metrics of column `{c}` (recorded: {}); a run \
             records the columns its checks read",
            if known.is_empty() {
                "none".to_string()
            } else {
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    let series = series_of(&points, column);
    if ctx.cli.json {
        let publishes: Vec<serde_json::Value> = points
            .iter()
            .map(|p| {
                json!({
                    "snapshot_id": p.snapshot_id,
                    "timestamp": time(p.timestamp_ms),
                    "run_id": p.run_id,
                    "metrics": p.metrics,
                })
            })
            .collect();
        ctx.print_json(&json!({
            "table": name.to_string(),
            "ref": spec.to_string(),
            "publishes": publishes,
            "series": series.iter().map(|s| json!({
                "metric": s.metric.as_str(),
                "column": s.column,
                "values": s.values,
            })).collect::<Vec<_>>(),
        }));
        return Ok(exit_code::SUCCESS);
    }
    if points.is_empty() {
        outln!("{target}: no publish recorded metrics yet (runs record them when they publish)");
        return Ok(exit_code::SUCCESS);
    }
    outln!(
        "{target}: metrics of the last {} publish(es), oldest to newest",
        points.len()
    );
    outln!();
    let rows: Vec<Vec<String>> = series
        .iter()
        .map(|s| {
            let values: Vec<f64> = s.values.iter().flatten().copied().collect();
            let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            vec![
                match &s.column {
                    Some(c) => format!("{}({c})", s.metric),
                    None => s.metric.to_string(),
                },
                values.last().map(|v| number(*v)).unwrap_or_default(),
                number(mean),
                number(min),
                number(max),
                sparkline(&s.values),
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &["METRIC", "LAST", "MEAN", "MIN", "MAX", "HISTORY"],
            &rows,
            Fit {
                whole: &[0, 5],
                droppable: &[3, 4],
            }
        )
    );
    if let Some(c) = column {
        outln!();
        let rows: Vec<Vec<String>> = points
            .iter()
            .rev()
            .map(|p| {
                let m = p.metrics.columns.get(c);
                let v = |metric: Metric| {
                    p.metrics
                        .value(metric, Some(c))
                        .map(number)
                        .unwrap_or_default()
                };
                vec![
                    p.snapshot_id.to_string(),
                    time(p.timestamp_ms),
                    p.metrics.rows.to_string(),
                    m.map(|_| v(Metric::NullFraction)).unwrap_or_default(),
                    v(Metric::Min),
                    v(Metric::Max),
                    v(Metric::Mean),
                    v(Metric::Distinct),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &[
                    "SNAPSHOT", "TIME", "ROWS", "NULLS", "MIN", "MAX", "MEAN", "DISTINCT"
                ],
                &rows,
                Fit {
                    whole: &[0, 1],
                    droppable: &[1],
                }
            )
        );
    }
    Ok(exit_code::SUCCESS)
}

/// One metric over the publishes, oldest first (`None` where a publish did not record it).
struct Series {
    metric: Metric,
    column: Option<String>,
    values: Vec<Option<f64>>,
}

fn series_of(points: &[Point], only: Option<&str>) -> Vec<Series> {
    let oldest_first: Vec<&Point> = points.iter().rev().collect();
    let mut columns: Vec<String> = Vec::new();
    for p in &oldest_first {
        for c in p.metrics.columns.keys() {
            if only.is_none_or(|o| o == c) && !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let mut out = vec![Series {
        metric: Metric::RowCount,
        column: None,
        values: oldest_first
            .iter()
            .map(|p| p.metrics.value(Metric::RowCount, None))
            .collect(),
    }];
    for c in columns {
        for metric in Metric::ALL.into_iter().filter(|m| m.per_column()) {
            let values: Vec<Option<f64>> = oldest_first
                .iter()
                .map(|p| p.metrics.value(metric, Some(&c)))
                .collect();
            if values.iter().any(Option::is_some) {
                out.push(Series {
                    metric,
                    column: Some(c.clone()),
                    values,
                });
            }
        }
    }
    out
}

fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// Eight heights from the smallest value to the largest; a gap where a publish did not record
/// the metric.
fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let min = known.iter().copied().fold(f64::INFINITY, f64::min);
    let max = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(_) if max <= min => BARS[3],
            Some(v) => {
                let at = ((v - min) / (max - min) * 7.0).round() as usize;
                BARS[at.min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_the_range_and_leave_gaps() {
        assert_eq!(sparkline(&[Some(0.0), Some(7.0), None, Some(3.5)]), "▁█ ▅");
        assert_eq!(sparkline(&[Some(2.0), Some(2.0)]), "▄▄");
        assert_eq!(sparkline(&[]), "");
    }
}

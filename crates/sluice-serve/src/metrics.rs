//! Prometheus metrics in the text exposition format: counters and histograms by label, and the
//! gauges the server reads from its queue when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use futures::future::BoxFuture;
use sluice_lake::{CommitHook, TableName};

/// Upper bounds (seconds) of the duration histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// A series' labels: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A gauge read at scrape time: its name, its help text and its series.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(Labels, f64)>);

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Help text of each metric, in the order they are printed.
const HELP: &[(&str, &str, &str)] = &[
    (
        "sluice_http_requests_total",
        "counter",
        "HTTP requests by route and status code.",
    ),
    (
        "sluice_event_files_total",
        "counter",
        "Files named by accepted events, by table.",
    ),
    (
        "sluice_event_files_ignored_total",
        "counter",
        "Objects in notifications that started no run, by reason.",
    ),
    ("sluice_runs_total", "counter", "Runs by table and status."),
    (
        "sluice_rows_published_total",
        "counter",
        "Rows published to main, by table.",
    ),
    (
        "sluice_bytes_published_total",
        "counter",
        "Bytes of source files published to main, by table.",
    ),
    (
        "sluice_audit_failures_total",
        "counter",
        "Checks that failed or errored in an audit, by table and check.",
    ),
    (
        "sluice_commit_retries_total",
        "counter",
        "Catalog commits sent again after a conflict, by table.",
    ),
    (
        "sluice_run_duration_seconds",
        "histogram",
        "Wall time of runs, by table.",
    ),
    (
        "sluice_step_duration_seconds",
        "histogram",
        "Wall time of run steps (list, write, audit, publish), by step.",
    ),
    (
        "sluice_accept_duration_seconds",
        "histogram",
        "Time from receiving an event to answering it (the log synced), by route.",
    ),
];

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        let labels = owned(labels);
        *lock(&self.inner)
            .counters
            .entry(name)
            .or_default()
            .entry(labels)
            .or_default() += by;
    }

    /// Observes a duration in seconds.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let labels = owned(labels);
        let mut inner = lock(&self.inner);
        let h = inner
            .histograms
            .entry(name)
            .or_default()
            .entry(labels)
            .or_default();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// A counter's value (0 when never added to).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        lock(&self.inner)
            .counters
            .get(name)
            .and_then(|series| series.get(&owned(labels)))
            .copied()
            .unwrap_or(0.0)
    }

    /// The exposition text, with `gauges` (name, help, series) after the counters.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let inner = lock(&self.inner);
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if let Some(series) = inner.counters.get(name) {
                for (labels, value) in series {
                    write_series(&mut out, name, labels, *value);
                }
            }
            if let Some(series) = inner.histograms.get(name) {
                for (labels, h) in series {
                    for (count, bound) in h.counts.iter().zip(BUCKETS) {
                        let le = number(bound);
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {count}",
                            render_labels(labels, Some(&le))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        render_labels(labels, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        render_labels(labels, None),
                        number(h.sum)
                    );
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        render_labels(labels, None),
                        h.count
                    );
                }
            }
        }
        for (name, help, series) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in series {
                write_series(&mut out, name, labels, *value);
            }
        }
        out
    }
}

fn write_series(out: &mut String, name: &str, labels: &Labels, value: f64) {
    let _ = writeln!(
        out,
        "{name}{} {}",
        render_labels(labels, None),
        number(value)
    );
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts commit retries: the lake calls it before every catalog commit.
pub(crate) struct RetryCounter(pub std::sync::Arc<Metrics>);

impl CommitHook for RetryCounter {
    fn before_commit<'a>(&'a self, table: &'a TableName, attempt: u32) -> BoxFuture<'a, ()> {
        if attempt > 1 {
            self.0.add(
                "sluice_commit_retries_total",
                &[("table", &table.to_string())],
                1.0,
            );
        }
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_the_text_format() {
        let m = Metrics::new();
        m.add(
            "sluice_runs_total",
            &[("table", "a.b"), ("status", "published")],
            1.0,
        );
        m.add(
            "sluice_runs_total",
            &[("table", "a.b"), ("status", "published")],
            1.0,
        );
        m.add(
            "sluice_audit_failures_total",
            &[("table", "a.b"), ("check", "say \"hi\"")],
            1.0,
        );
        m.observe("sluice_step_duration_seconds", &[("step", "write")], 0.2);
        let text = m.render(&[(
            "sluice_queue_depth",
            "Files waiting.",
            vec![(vec![("table", "a.b".to_string())], 3.0)],
        )]);
        assert!(
            text.contains("sluice_runs_total{table=\"a.b\",status=\"published\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("check=\"say \\\"hi\\\"\""), "{text}");
        assert!(
            text.contains("sluice_step_duration_seconds_bucket{step=\"write\",le=\"0.1\"} 0\n")
        );
        assert!(
            text.contains("sluice_step_duration_seconds_bucket{step=\"write\",le=\"0.25\"} 1\n")
        );
        assert!(
            text.contains("sluice_step_duration_seconds_bucket{step=\"write\",le=\"+Inf\"} 1\n")
        );
        assert!(text.contains("sluice_step_duration_seconds_count{step=\"write\"} 1\n"));
        assert!(
            text.contains("# TYPE sluice_queue_depth gauge\nsluice_queue_depth{table=\"a.b\"} 3\n")
        );
        assert_eq!(
            m.counter(
                "sluice_runs_total",
                &[("table", "a.b"), ("status", "published")]
            ),
            2.0
        );
    }
}

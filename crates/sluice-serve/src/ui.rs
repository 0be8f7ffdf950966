//! The web view: server-rendered pages of the lake (tables, refs, commit log with audit
//! verdicts and rejected batches, runs with their steps and audit reports, charts), readable
//! without JavaScript; the style sheet and the script are embedded in the binary.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_lake::{Lake, RefKind, RefSpec, TableName};
use sluice_txn::{RunFilter, RunReport, RunSummary, State};
use sluice_wap::Pipeline;

use crate::queue::Queue;

/// The style sheet, served at `/ui/style.css`.
pub(crate) const STYLE: &str = include_str!("ui/style.css");
/// The script, served at `/ui/app.js`.
pub(crate) const SCRIPT: &str = include_str!("ui/app.js");

/// Tables listed on the front page at most.
const MAX_TABLES: usize = 500;
/// Commits and runs shown on a table's page.
const HISTORY: usize = 100;

/// A page: its status and its HTML.
pub(crate) struct Page {
    pub status: u16,
    pub html: String,
}

/// Escapes text for HTML.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment for a link.
fn url_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes a %-escaped path segment.
pub(crate) fn decode_segment(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn time(t: DateTime<Utc>) -> String {
    let iso = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    format!(
        "<time datetime=\"{iso}\">{}</time>",
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn layout(title: &str, body: &str, refresh: Option<u32>) -> String {
    let refresh = refresh.map_or(String::new(), |s| format!(" data-refresh=\"{s}\""));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · sluice</title><link rel=\"icon\" href=\"data:,\">\
<link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
<body{refresh}><header><a class=\"brand\" href=\"/\">sluice</a>\
<nav><a href=\"/\">Tables</a><a href=\"/runs\">Runs</a><a href=\"/metrics\">Metrics</a></nav>\
<span class=\"right\">read-only view</span></header><main>{body}</main>\
<script src=\"/ui/app.js\"></script></body></html>\n",
        title = esc(title)
    )
}

fn badge(state: &str) -> String {
    let class = match state {
        "completed" | "published" | "pass" | "done" | "committed" => "ok",
        "failed" | "fail" | "error" | "rolled_back" | "crashed" | "audit_failed" | "rejected" => {
            "bad"
        }
        "warn" | "running" | "pending" | "staged" => "warn",
        _ => "muted",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(state))
}

fn state_name(state: State) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| state.to_string())
}

fn error_page(status: u16, title: &str, message: &str) -> Page {
    Page {
        status,
        html: layout(
            title,
            &format!(
                "<h1>{}</h1><p>{}</p><p><a href=\"/\">All tables</a></p>",
                esc(title),
                esc(message)
            ),
            None,
        ),
    }
}

/// The table a run wrote, from its name (`run ns.t`) or its parameters.
fn run_table(name: &str, params: Option<&Value>) -> Option<String> {
    params
        .and_then(|p| p.get("table"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| name.strip_prefix("run ").map(str::to_string))
}

fn duration_of(started: DateTime<Utc>, ended: Option<DateTime<Utc>>) -> Option<f64> {
    ended.map(|e| (e - started).num_milliseconds().max(0) as f64 / 1000.0)
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}

/// The page a browser without the token gets (`401`).
pub(crate) fn sign_in_page() -> String {
    layout(
        "Token required",
        "<h1>Token required</h1><p>This server asks for its token (<code>SLUICE_SERVE_TOKEN</code>). \
Open this address once with <code>?token=&lt;token&gt;</code> appended: the browser keeps it in a \
cookie for this site.</p>",
        None,
    )
}

/// `/`: every table with its `main`, and the latest runs.
pub(crate) async fn index(pipeline: &Pipeline, queue: Option<&Queue>) -> Page {
    let lake = pipeline.lake();
    let mut body = String::from("<h1>Tables</h1>");
    match lake.list_tables(None).await {
        Err(e) => {
            let _ = write!(body, "<p class=\"bad\">cannot list the tables: {}</p>", esc(&e.to_string()));
        }
        Ok(tables) if tables.is_empty() => body.push_str(
            "<p class=\"empty\">No tables yet: a first run creates one (<code>sluice run --source DIR --table ns.t</code>).</p>",
        ),
        Ok(tables) => {
            body.push_str("<table data-filter><thead><tr><th>table</th><th>rows in main</th><th>last commit</th><th>last audit</th><th>branches</th><th>tags</th></tr></thead><tbody>");
            for table in tables.iter().take(MAX_TABLES) {
                // One metadata read per table gives both its head commit and its refs.
                let loaded = lake.load_table(table).await.ok();
                let head = loaded
                    .as_ref()
                    .and_then(|t| t.log(&RefSpec::main(), Some(1)).ok())
                    .and_then(|mut c| c.pop());
                let refs = loaded.as_ref().map(|t| t.ref_list()).unwrap_or_default();
                let branches = refs.iter().filter(|r| r.kind == RefKind::Branch).count();
                let tags = refs.len() - branches;
                let name = table.to_string();
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/tables/{}\">{}</a></td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{branches}</td><td class=\"num\">{tags}</td></tr>",
                    url_segment(&name),
                    esc(&name),
                    head.as_ref().and_then(|c| c.total_records).map_or(String::new(), |n| n.to_string()),
                    head.as_ref().map_or(String::new(), |c| time(c.reached_at)),
                    esc(head
                        .as_ref()
                        .and_then(|c| c.summary.get(sluice_lake::summary::AUDIT_PROPERTY))
                        .map_or("", String::as_str)),
                );
            }
            body.push_str("</tbody></table>");
            if tables.len() > MAX_TABLES {
                let _ = write!(body, "<p class=\"muted\">{} more tables not shown.</p>", tables.len() - MAX_TABLES);
            }
        }
    }
    if let Some(queue) = queue {
        body.push_str("<h2>Triggers</h2>");
        let status = queue.status();
        if status.is_empty() {
            body.push_str("<p class=\"empty\">No [[trigger]] in sluice.toml.</p>");
        } else {
            body.push_str("<table><thead><tr><th>table</th><th>prefix</th><th>waiting</th><th>run in progress</th></tr></thead><tbody>");
            for t in status {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    esc(&t.table),
                    esc(&t.prefix),
                    t.pending,
                    if t.running {
                        badge("running")
                    } else {
                        String::from("no")
                    }
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    body.push_str("<h2>Latest runs</h2>");
    body.push_str(&latest_runs(pipeline, 20).await);
    Page {
        status: 200,
        html: layout("Tables", &body, Some(30)),
    }
}

async fn list_runs(pipeline: &Pipeline, limit: usize) -> Result<Vec<RunSummary>, String> {
    pipeline
        .list_runs(&RunFilter::all().with_limit(limit))
        .await
        .map_err(|e| e.to_string())
}

/// The latest `limit` runs of the lake, as a table.
async fn latest_runs(pipeline: &Pipeline, limit: usize) -> String {
    match list_runs(pipeline, limit).await {
        Ok(runs) => runs_table(&runs),
        Err(e) => format!(
            "<p class=\"bad\">cannot read the run journal: {}</p>",
            esc(&e)
        ),
    }
}

fn runs_table(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "<p class=\"empty\">No runs in the journal.</p>".to_string();
    }
    let mut out = String::from(
        "<table data-filter><thead><tr><th>run</th><th>what</th><th>state</th><th>started</th><th>took</th><th>error</th></tr></thead><tbody>",
    );
    for r in runs {
        let _ = write!(
            out,
            "<tr><td class=\"mono\"><a href=\"/runs/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&r.name),
            badge(&state_name(r.state)),
            time(r.started_at),
            duration_of(r.started_at, r.ended_at).map_or(String::new(), seconds),
            esc(r.error.as_deref().unwrap_or("")),
            id = r.run_id,
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `/runs`: the latest runs of the lake.
pub(crate) async fn runs(pipeline: &Pipeline) -> Page {
    let body = format!("<h1>Runs</h1>{}", latest_runs(pipeline, 200).await);
    Page {
        status: 200,
        html: layout("Runs", &body, None),
    }
}

/// `/tables/NS.T`: refs, charts, and the history of `main` with the batches that were rejected.
pub(crate) async fn table(pipeline: &Pipeline, name: &str) -> Page {
    let lake: &Lake = pipeline.lake();
    let Ok(table) = name.parse::<TableName>() else {
        return error_page(
            404,
            "No such table",
            &format!("`{name}` is not a table name (ns.table)."),
        );
    };
    let loaded = match lake.load_table(&table).await {
        Ok(loaded) => loaded,
        Err(sluice_lake::Error::TableNotFound { .. }) => {
            return error_page(
                404,
                "No such table",
                &format!("There is no table {table} in this lake."),
            );
        }
        Err(e) => return error_page(500, "Cannot read the table", &e.to_string()),
    };
    let refs = loaded.ref_list();
    let commits = loaded
        .log(&RefSpec::main(), Some(HISTORY))
        .unwrap_or_default();
    let runs: Vec<RunSummary> = list_runs(pipeline, 2000)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| run_table(&r.name, None).as_deref() == Some(name))
        .take(HISTORY)
        .collect();

    let mut body = format!("<h1>{}</h1>", esc(name));
    body.push_str("<h2>Branches and tags</h2><table><thead><tr><th>name</th><th>kind</th><th>snapshot</th></tr></thead><tbody>");
    for r in &refs {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(&r.name),
            match r.kind {
                RefKind::Branch => "branch",
                RefKind::Tag => "tag",
            },
            r.snapshot_id
        );
    }
    body.push_str("</tbody></table>");

    // Charts: rows each publish added, and how long each run took, over time.
    let mut rows: Vec<(DateTime<Utc>, f64)> = commits
        .iter()
        .filter(|c| c.run_id.is_some())
        .filter_map(|c| c.added_records.map(|n| (c.reached_at, n as f64)))
        .collect();
    rows.reverse();
    let mut durations: Vec<(DateTime<Utc>, f64)> = runs
        .iter()
        .filter_map(|r| duration_of(r.started_at, r.ended_at).map(|d| (r.started_at, d)))
        .collect();
    durations.sort_by_key(|(t, _)| *t);
    body.push_str("<h2>Runs over time</h2><div class=\"charts\">");
    body.push_str(&chart("Rows published per run", &rows, "rows"));
    body.push_str(&chart("Run duration (seconds)", &durations, "s"));
    body.push_str("</div>");
    body.push_str(&metric_charts(&commits));

    // The history: commits of main and runs that published nothing, newest first.
    enum Entry<'a> {
        Commit(&'a sluice_lake::Commit),
        Rejected(&'a RunSummary),
    }
    let mut history: Vec<(DateTime<Utc>, Entry)> = commits
        .iter()
        .map(|c| (c.reached_at, Entry::Commit(c)))
        .collect();
    for r in &runs {
        if matches!(r.state, State::RolledBack | State::Failed | State::Crashed) {
            history.push((r.started_at, Entry::Rejected(r)));
        }
    }
    history.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    body.push_str("<h2>History of main</h2><p class=\"muted\">Commits of <code>main</code>, and the runs that were rolled back (rejected by their audit, or failed): those changed nothing.</p>");
    body.push_str("<table data-filter><thead><tr><th>time</th><th>what</th><th>message</th><th>added</th><th>rows</th><th>audit</th><th>run</th></tr></thead><tbody>");
    for (at, entry) in &history {
        match entry {
            Entry::Commit(c) => {
                let run = c.run_id.as_deref().map_or(String::new(), |id| {
                    format!(
                        "<a class=\"mono\" href=\"/runs/{}\">{}</a>",
                        url_segment(id),
                        esc(id)
                    )
                });
                let audit = c.summary.get(sluice_lake::summary::AUDIT_PROPERTY).map_or(
                    String::new(),
                    |a| {
                        let state = if a.starts_with("passed") {
                            "ok"
                        } else {
                            "muted"
                        };
                        format!("<span class=\"{state}\">{}</span>", esc(a))
                    },
                );
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{} <span class=\"mono muted\">{}</span></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{audit}</td><td>{run}</td></tr>",
                    time(*at),
                    esc(&c.operation),
                    c.snapshot_id,
                    esc(c.message.as_deref().unwrap_or("")),
                    c.added_records.map_or(String::new(), |n| format!("+{n}")),
                    c.total_records.map_or(String::new(), |n| n.to_string()),
                );
            }
            Entry::Rejected(r) => {
                let error = r.error.as_deref().unwrap_or("");
                let what = if error.contains("audit failed") {
                    "rejected"
                } else {
                    "failed"
                };
                let _ = write!(
                    body,
                    "<tr class=\"rejected\"><td>{}</td><td>{}</td><td>{}</td><td></td><td></td><td class=\"bad\">{}</td><td><a class=\"mono\" href=\"/runs/{id}\">{id}</a></td></tr>",
                    time(*at),
                    badge(what),
                    esc("rolled back: main unchanged"),
                    esc(error),
                    id = r.run_id
                );
            }
        }
    }
    if history.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"empty\">No commits yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Runs</h2>");
    body.push_str(&runs_table(&runs));
    Page {
        status: 200,
        html: layout(name, &body, None),
    }
}

/// `/runs/ID`: a run's steps, attempts, compensations, errors and audit report.
pub(crate) async fn run(pipeline: &Pipeline, id: &str) -> Page {
    let Ok(run_id) = id.parse::<uuid::Uuid>() else {
        return error_page(404, "No such run", &format!("`{id}` is not a run id."));
    };
    let run: RunReport = match pipeline.show_run(run_id).await {
        Ok(run) => run,
        Err(e) => return error_page(404, "No such run", &e.to_string()),
    };
    let mut body = format!(
        "<h1>Run <span class=\"mono\">{}</span></h1><table><tbody>\
<tr><th>what</th><td>{}</td></tr><tr><th>state</th><td>{}</td></tr>\
<tr><th>started</th><td>{}</td></tr><tr><th>ended</th><td>{}</td></tr>",
        run.run_id,
        esc(&run.name),
        badge(&state_name(run.state)),
        time(run.started_at),
        run.ended_at.map_or(String::new(), time),
    );
    if let Some(table) = run_table(&run.name, Some(&run.params)) {
        let _ = write!(
            body,
            "<tr><th>table</th><td><a href=\"/tables/{}\">{}</a></td></tr>",
            url_segment(&table),
            esc(&table)
        );
    }
    if let Some(error) = &run.error {
        let _ = write!(
            body,
            "<tr><th>error</th><td class=\"bad\">{}</td></tr>",
            esc(error)
        );
    }
    let _ = write!(
        body,
        "</tbody></table><h2>Parameters</h2><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(&run.params).unwrap_or_default())
    );

    body.push_str("<h2>Steps</h2><table><thead><tr><th>step</th><th>state</th><th>attempts</th><th>started</th><th>took</th><th>errors</th></tr></thead><tbody>");
    for step in &run.steps {
        let errors: Vec<String> = step
            .errors
            .iter()
            .map(|e| {
                esc(&serde_json::to_value(e)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default())
            })
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&step.name),
            badge(&state_name(step.state)),
            step.attempts,
            time(step.started_at),
            step.duration_ms
                .map_or(String::new(), |ms| seconds(ms as f64 / 1000.0)),
            errors.join("<br>")
        );
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Compensations and commit actions</h2>");
    if run.hooks.is_empty() {
        body.push_str("<p class=\"empty\">None staged.</p>");
    } else {
        body.push_str("<table><thead><tr><th>name</th><th>kind</th><th>state</th><th>attempts</th><th>staged</th><th>last error</th></tr></thead><tbody>");
        for hook in &run.hooks {
            let kind = serde_json::to_value(hook.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let state = serde_json::to_value(hook.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&hook.name),
                esc(&kind),
                badge(&state),
                hook.attempts,
                time(hook.staged_at),
                esc(hook.last_error.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</tbody></table>");
    }

    // The audit report the audit step returned.
    let audit = run
        .steps
        .iter()
        .rev()
        .find(|s| s.name == "audit")
        .and_then(|s| s.output.clone())
        .filter(|v| !v.is_null());
    body.push_str("<h2>Audit</h2>");
    match audit.and_then(|v| serde_json::from_value::<sluice_checks::AuditReport>(v).ok()) {
        None => body.push_str("<p class=\"empty\">No audit report (no checks, or the run ended before its audit).</p>"),
        Some(report) => body.push_str(&audit_report(&report)),
    }
    Page {
        status: 200,
        html: layout(&format!("run {}", run.run_id), &body, None),
    }
}

fn audit_report(report: &sluice_checks::AuditReport) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>check</th><th>kind</th><th>severity</th><th>status</th><th>rows checked</th><th>rows failing</th><th>message</th></tr></thead><tbody>",
    );
    for c in &report.checks {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()),
            esc(&serde_json::to_value(c.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()),
            badge(c.status.as_str()),
            c.rows_checked,
            c.rows_failing,
            esc(&c.message)
        );
    }
    out.push_str("</tbody></table>");
    for c in report.checks.iter().filter(|c| !c.samples.is_empty()) {
        let _ = write!(out, "<h3>Failing rows of {}</h3>", esc(&c.name));
        let mut columns: Vec<&String> = Vec::new();
        for sample in &c.samples {
            for key in sample.keys() {
                if !columns.contains(&key) {
                    columns.push(key);
                }
            }
        }
        out.push_str("<table><thead><tr>");
        for col in &columns {
            let _ = write!(out, "<th>{}</th>", esc(col));
        }
        out.push_str("</tr></thead><tbody>");
        for sample in &c.samples {
            out.push_str("<tr>");
            for col in &columns {
                let value = match sample.get(*col) {
                    None | Some(Value::Null) => "<span class=\"muted\">null</span>".to_string(),
                    Some(Value::String(s)) => esc(s),
                    Some(v) => esc(&v.to_string()),
                };
                let _ = write!(out, "<td>{value}</td>");
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    out
}

/// Charts of what the publishes recorded of their new rows (`sluice metrics`; what `anomaly`
/// checks compare with): per column, each metric that was recorded, oldest first.
fn metric_charts(commits: &[sluice_lake::Commit]) -> String {
    use sluice_checks::{Metric, RunMetrics};
    /// At most this many charts: a wide table would otherwise fill the page.
    const MAX_CHARTS: usize = 12;
    let recorded: Vec<(DateTime<Utc>, RunMetrics)> = commits
        .iter()
        .rev()
        .filter_map(|c| {
            let text = c.summary.get(sluice_lake::summary::METRICS_PROPERTY)?;
            Some((c.reached_at, RunMetrics::from_summary(text)?))
        })
        .collect();
    let mut columns: Vec<&String> = Vec::new();
    for (_, m) in &recorded {
        for c in m.columns.keys() {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
    }
    let mut charts = Vec::new();
    for column in columns {
        for metric in [
            Metric::NullFraction,
            Metric::Mean,
            Metric::Distinct,
            Metric::Min,
            Metric::Max,
        ] {
            let points: Vec<(DateTime<Utc>, f64)> = recorded
                .iter()
                .filter_map(|(t, m)| m.value(metric, Some(column)).map(|v| (*t, v)))
                .collect();
            if !points.is_empty() {
                charts.push(chart(&format!("{metric} of {column}"), &points, ""));
            }
        }
    }
    if charts.is_empty() {
        return String::new();
    }
    let shown = charts.len().min(MAX_CHARTS);
    let mut out = String::from(
        "<h2>Recorded metrics</h2><p>What each publish measured of its new rows, per column its checks read (anomaly checks compare a run with these).",
    );
    if charts.len() > shown {
        let _ = write!(
            out,
            " The first {shown} of {}; <code>sluice metrics NS.T --column C</code> prints any.",
            charts.len()
        );
    }
    out.push_str("</p><div class=\"charts\">");
    for c in charts.into_iter().take(shown) {
        out.push_str(&c);
    }
    out.push_str("</div>");
    out
}

/// An SVG line chart of `(time, value)` points, oldest first.
fn chart(title: &str, points: &[(DateTime<Utc>, f64)], unit: &str) -> String {
    const W: f64 = 520.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 24.0;
    let mut out = format!("<figure class=\"chart\"><h3>{}</h3>", esc(title));
    if points.is_empty() {
        out.push_str("<p class=\"empty\">No runs yet.</p></figure>");
        return out;
    }
    let t0 = points[0].0.timestamp_millis() as f64;
    let t1 = points[points.len() - 1].0.timestamp_millis() as f64;
    let span = (t1 - t0).max(1.0);
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9);
    let x = |t: DateTime<Utc>| {
        if points.len() == 1 {
            LEFT + (W - LEFT) / 2.0
        } else {
            LEFT + (t.timestamp_millis() as f64 - t0) / span * (W - LEFT - 10.0)
        }
    };
    let y = |v: f64| 8.0 + (1.0 - v / max) * (H - BOTTOM - 8.0);
    let _ = write!(
        out,
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{W}\" y2=\"{b}\" stroke=\"#d9dee7\"/><line x1=\"{LEFT}\" y1=\"8\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#d9dee7\"/>",
        b = H - BOTTOM
    );
    let label = |v: f64| {
        if v >= 1000.0 {
            format!("{v:.0}")
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6678\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6678\">0</text>",
        LEFT - 4.0,
        label(max),
        LEFT - 4.0,
        H - BOTTOM
    );
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"11\" fill=\"#5b6678\">{}</text><text x=\"{W}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6678\">{}</text>",
        H - 6.0,
        points[0].0.format("%m-%d %H:%M"),
        H - 6.0,
        points[points.len() - 1].0.format("%m-%d %H:%M")
    );
    let path: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    let _ = write!(
        out,
        "<polyline fill=\"none\" stroke=\"#2456c7\" stroke-width=\"1.5\" points=\"{}\"/>",
        path.join(" ")
    );
    for (t, v) in points {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2456c7\"><title>{} {} {}</title></circle>",
            x(*t),
            y(*v),
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            label(*v),
            esc(unit)
        );
    }
    out.push_str("</svg></figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_segments_round_trip() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let name = "ns.t with space/ü";
        assert_eq!(decode_segment(&url_segment(name)), name);
        assert_eq!(url_segment("analytics.events"), "analytics.events");
    }

    #[test]
    fn a_chart_has_a_point_per_run_and_says_when_there_is_none() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let svg = chart(
            "Rows",
            &[(t(0), 10.0), (t(60), 30.0), (t(120), 20.0)],
            "rows",
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("<polyline"));
        assert!(chart("Rows", &[], "rows").contains("No runs yet"));
        assert_eq!(
            chart("Rows", &[(t(0), 5.0)], "rows")
                .matches("<circle")
                .count(),
            1
        );
    }
    #[test]
    fn recorded_metrics_get_a_chart_each_with_a_point_per_publish() {
        let commit = |s: i64, metrics: Option<&str>| sluice_lake::Commit {
            snapshot_id: s,
            parent_id: None,
            timestamp: DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap(),
            reached_at: DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap(),
            operation: "append".into(),
            message: None,
            author: None,
            run_id: None,
            added_records: None,
            total_records: None,
            schema_id: None,
            summary: metrics
                .map(|m| {
                    [(
                        sluice_lake::summary::METRICS_PROPERTY.to_string(),
                        m.to_string(),
                    )]
                    .into()
                })
                .unwrap_or_default(),
        };
        // Newest first, as the log gives them; one commit recorded nothing.
        let commits = [
            commit(
                3,
                Some(r#"{"rows":5,"columns":{"kind":{"null_fraction":0.5,"distinct":2}}}"#),
            ),
            commit(2, None),
            commit(
                1,
                Some(r#"{"rows":4,"columns":{"kind":{"null_fraction":0.0,"distinct":3}}}"#),
            ),
        ];
        let html = metric_charts(&commits);
        assert!(html.contains("<h3>null_fraction of kind</h3>"), "{html}");
        assert!(html.contains("<h3>distinct of kind</h3>"), "{html}");
        assert!(!html.contains("mean of kind"), "{html}");
        assert_eq!(
            html.matches("<circle").count(),
            4,
            "two charts of two points"
        );
        assert_eq!(metric_charts(&[commit(1, None)]), "");
    }
}

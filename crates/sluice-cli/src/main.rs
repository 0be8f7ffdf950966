//! The `sluice` command.

/// `print!` that survives a reader going away (`sluice log t | head`): see
/// [`output::write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that survives a reader going away: see [`output::write_stdout`].
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod cli;
mod config;
mod demo;
mod error_report;
mod output;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::TryStreamExt;
use serde_json::json;
use sluice_checks::{AuditReport, CheckSuite, EvalOptions};
use sluice_lake::{RefName, RefSpec, ScanOptions, TableName};
use sluice_txn::RunFilter;
use sluice_wap::{
    Batching, Mode, Pipeline, ProgressSink, RunOptions, RunReport, RunStatus, SchemaChange,
    StopSignal,
};

use crate::cli::{
    Cli, Command, Format, ModeArg, RefCommand, RunArgs, RunsCommand, SchemaChangeArg,
};
use crate::output::{Style, table};

/// Copy mode allocates and frees many row-group-sized buffers from several threads; with glibc's
/// default dynamic mmap threshold they end up in per-thread heaps that fragment, and peak memory
/// grows with the number of files. Serving large blocks with mmap keeps it flat.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only sets a malloc parameter; it runs first thing in main, before any
    // other thread exists, and its failure (return 0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let style = Style::detect();
            eprintln!("{} {}", style.bad("error:"), error_report::render(&e));
            ExitCode::from(1)
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}

struct Ctx<'a> {
    cli: &'a Cli,
    style: Style,
}

impl Ctx<'_> {
    async fn pipeline(&self) -> Result<Pipeline> {
        let config = config::load(self.cli.config.as_deref())?;
        tracing::info!(config = %config.source, "configuration");
        Pipeline::open(&config.pipeline)
            .await
            .with_context(|| format!("cannot open the lake described by {}", config.source))
    }

    fn print_json(&self, value: &serde_json::Value) {
        outln!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

async fn execute(cli: &Cli) -> Result<u8> {
    let ctx = Ctx {
        cli,
        style: Style::detect(),
    };
    let code = match &cli.command {
        Command::Init { force } => init(&ctx, *force)?,
        Command::Demo { dir } => run_demo(&ctx, dir).await?,
        Command::Run(args) => {
            let pipeline = ctx.pipeline().await?;
            let options = run_options(&ctx, args)?;
            let report = pipeline.run(&options).await?;
            print_run(&ctx, &report);
            report.status.exit_code() as u8
        }
        Command::Watch { run, every } => {
            let pipeline = ctx.pipeline().await?;
            let options = run_options(&ctx, run)?;
            let stop = StopSignal::new();
            spawn_signal_handler(stop.clone());
            if !cli.quiet && !cli.json {
                eprintln!(
                    "watching {} every {:?} for {} (Ctrl-C stops after the current run)",
                    run.source, every, run.table
                );
            }
            let mut worst = 0;
            pipeline
                .watch(&options, *every, &stop, |report| {
                    worst = worst.max(report.status.exit_code());
                    print_run(&ctx, report);
                })
                .await?;
            if worst == 1 { 1 } else { 0 }
        }
        Command::Backfill {
            run,
            batch_files,
            window,
        } => {
            let pipeline = ctx.pipeline().await?;
            let options = run_options(&ctx, run)?;
            let stop = StopSignal::new();
            spawn_signal_handler(stop.clone());
            let mut reports = Vec::new();
            pipeline
                .backfill(
                    &options,
                    match window {
                        Some(w) => Batching::Window(*w),
                        None => Batching::Files(*batch_files),
                    },
                    &stop,
                    |report| {
                        if !cli.json {
                            print_run(&ctx, report);
                        }
                    },
                )
                .await?
                .into_iter()
                .for_each(|r| reports.push(r));
            let code = reports
                .iter()
                .map(|r| r.status.exit_code())
                .max()
                .unwrap_or(0);
            if cli.json {
                ctx.print_json(&json!({
                    "table": run.table,
                    "batches": reports.iter().map(run_json).collect::<Vec<_>>(),
                    "status": if code == 0 { "complete" } else { "stopped" },
                }));
            } else if reports.is_empty() {
                outln!(
                    "nothing to do: every file under {} is already in {}",
                    run.source,
                    run.table
                );
            }
            code as u8
        }
        Command::Recover { wait } => recover(&ctx, *wait).await?,
        Command::Runs(sub) => runs(&ctx, sub).await?,
        Command::Branch(sub) => refs(&ctx, sub, true).await?,
        Command::Tag(sub) => refs(&ctx, sub, false).await?,
        Command::Tables { namespace } => {
            let pipeline = ctx.pipeline().await?;
            let tables = pipeline.lake().list_tables(namespace.as_deref()).await?;
            if cli.json {
                ctx.print_json(&json!(
                    tables.iter().map(ToString::to_string).collect::<Vec<_>>()
                ));
            } else {
                for t in tables {
                    outln!("{t}");
                }
            }
            0
        }
        Command::Log { target, limit } => {
            let (name, spec) = parse_target(target)?;
            let pipeline = ctx.pipeline().await?;
            let commits = pipeline.lake().log(&name, &spec, *limit).await?;
            if cli.json {
                ctx.print_json(&serde_json::to_value(&commits)?);
            } else {
                let rows: Vec<Vec<String>> = commits
                    .iter()
                    .map(|c| {
                        vec![
                            c.snapshot_id.to_string(),
                            c.timestamp.format("%Y-%m-%d %H:%M:%S").to_string(),
                            c.operation.clone(),
                            c.message.clone().unwrap_or_default(),
                            c.author.clone().unwrap_or_default(),
                            c.added_records.map(|n| format!("+{n}")).unwrap_or_default(),
                            c.total_records.map(|n| n.to_string()).unwrap_or_default(),
                            c.summary.get("sluice.audit").cloned().unwrap_or_default(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table(
                        &[
                            "SNAPSHOT",
                            "TIME (UTC)",
                            "OPERATION",
                            "MESSAGE",
                            "AUTHOR",
                            "ADDED",
                            "ROWS",
                            "AUDIT"
                        ],
                        &rows
                    )
                );
            }
            0
        }
        Command::Merge {
            table: t,
            branch,
            into,
        } => {
            let name: TableName = t.parse()?;
            let pipeline = ctx.pipeline().await?;
            let outcome = pipeline
                .lake()
                .publish(
                    &name,
                    &RefName::new(branch.as_str())?,
                    &RefName::new(into.as_str())?,
                    Default::default(),
                )
                .await?;
            if cli.json {
                ctx.print_json(&serde_json::to_value(&outcome)?);
            } else {
                outln!(
                    "{} {branch} into {into} of {name}: {:?} → {}",
                    ctx.style.good("merged"),
                    outcome.kind,
                    outcome.snapshot_id
                );
            }
            0
        }
        Command::Rollback {
            table: t,
            to,
            branch,
        } => {
            let name: TableName = t.parse()?;
            let pipeline = ctx.pipeline().await?;
            let id = pipeline
                .lake()
                .rollback(&name, &RefName::new(branch.as_str())?, &RefSpec::parse(to)?)
                .await?;
            if cli.json {
                ctx.print_json(
                    &json!({"table": name.to_string(), "branch": branch, "snapshot_id": id}),
                );
            } else {
                outln!(
                    "{} {branch} of {name} to snapshot {id}",
                    ctx.style.good("rolled back")
                );
            }
            0
        }
        Command::Scan {
            target,
            columns,
            limit,
            format,
        } => scan(&ctx, target, columns.clone(), *limit, *format).await?,
        Command::Check { target, checks } => {
            let (name, spec) = parse_target(target)?;
            let suite = CheckSuite::from_path(checks)?;
            let pipeline = ctx.pipeline().await?;
            let report = pipeline
                .audit_ref(&name, &spec, &suite, EvalOptions::default())
                .await?;
            if cli.json {
                ctx.print_json(&serde_json::to_value(&report)?);
            } else {
                out!("{}", report.render_table());
                let verdict = if report.publishable() {
                    ctx.style.good("publishable")
                } else {
                    ctx.style.bad("not publishable")
                };
                outln!("{target}: {verdict}");
            }
            if report.publishable() { 0 } else { 3 }
        }
    };
    Ok(code)
}

fn init(ctx: &Ctx<'_>, force: bool) -> Result<u8> {
    let path = Path::new("sluice.toml");
    if path.exists() && !force {
        bail!("sluice.toml already exists here; use --force to overwrite it");
    }
    std::fs::write(path, config::DEFAULT_CONFIG).context("cannot write sluice.toml")?;
    let dir = std::env::current_dir()?;
    config::parse(config::DEFAULT_CONFIG, &dir)?;
    if ctx.cli.json {
        ctx.print_json(&json!({"config": "sluice.toml"}));
    } else {
        outln!("wrote sluice.toml (SQLite catalog and warehouse under ./.sluice/)");
        outln!("next: sluice run --source ./raw --table analytics.events --checks checks.toml");
    }
    Ok(0)
}

fn parse_target(target: &str) -> Result<(TableName, RefSpec)> {
    let (table, reference) = match target.split_once('@') {
        Some((t, r)) => (t, RefSpec::parse(r)?),
        None => (target, RefSpec::main()),
    };
    Ok((table.parse()?, reference))
}

fn run_options(ctx: &Ctx<'_>, args: &RunArgs) -> Result<RunOptions> {
    let table: TableName = args.table.parse()?;
    let mut options = RunOptions::new(source_location(&args.source)?, table);
    if let Some(path) = &args.checks {
        options.checks = Some(CheckSuite::from_path(path)?);
    }
    options.mode = match args.mode {
        ModeArg::Copy => Mode::Copy,
        ModeArg::Register => Mode::Register,
    };
    options.on_schema_change = match args.on_schema_change {
        SchemaChangeArg::Fail => SchemaChange::Fail,
        SchemaChangeArg::AddColumns => SchemaChange::AddColumns,
    };
    options.rewrite = args.rewrite;
    options.message = args.message.clone();
    options.author = args.author.clone().or_else(|| std::env::var("USER").ok());
    options.sample_size = args.samples;
    options.key_columns = args.key_columns.clone();
    if !ctx.cli.quiet && !ctx.cli.json && std::io::stderr().is_terminal() {
        options.progress = Some(Arc::new(Progress::new()));
    }
    Ok(options)
}

/// A source URL stays as is; a local path becomes absolute.
fn source_location(source: &str) -> Result<String> {
    if source.contains("://") {
        return Ok(source.to_string());
    }
    let path = Path::new(source);
    let absolute = path
        .canonicalize()
        .with_context(|| format!("the source {source} does not exist; give a directory of parquet files or a URL such as s3://bucket/prefix"))?;
    Ok(absolute.display().to_string())
}

struct Progress {
    bar: indicatif::ProgressBar,
    rows: std::sync::atomic::AtomicU64,
    started: Instant,
}

impl Progress {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} writing [{bar:30}] {pos}/{len} files  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar,
            rows: Default::default(),
            started: Instant::now(),
        }
    }
}

impl ProgressSink for Progress {
    fn started(&self, files: usize, _bytes: u64) {
        self.bar.set_length(files as u64);
    }
    fn file_done(&self, _location: &str, rows: u64, _bytes: u64) {
        let total = self
            .rows
            .fetch_add(rows, std::sync::atomic::Ordering::Relaxed)
            + rows;
        let rate = total as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.bar
            .set_message(format!("{total} rows, {:.0} rows/s", rate));
        self.bar.inc(1);
    }
    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}

fn spawn_signal_handler(stop: StopSignal) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping after the current run…");
        stop.stop();
    });
}

fn run_json(report: &RunReport) -> serde_json::Value {
    let checks: Vec<serde_json::Value> = report
        .audit
        .as_ref()
        .map(|a| {
            a.checks
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "severity": c.severity,
                        "status": c.status,
                        "observed": c.observed,
                        "rows_failing": c.rows_failing,
                        "samples": c.samples,
                        "message": c.message,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let durations: serde_json::Map<String, serde_json::Value> = report
        .steps
        .iter()
        .map(|s| (format!("{}_ms", s.step), json!(s.millis)))
        .collect();
    json!({
        "run_id": report.run_id,
        "status": report.status.as_str(),
        "table": report.table,
        "files": report.files,
        "rows": report.rows,
        "mode": report.mode,
        "copied_as_is": report.copied_as_is,
        "snapshot_id": report.snapshot_id,
        "publish": report.publish,
        "run_key": report.run_key,
        "branch": report.branch,
        "checks": checks,
        "failed_step": report.failed_step,
        "error": report.error,
        "durations": durations,
        "commits": report.commits,
    })
}

fn print_run(ctx: &Ctx<'_>, report: &RunReport) {
    if ctx.cli.json {
        ctx.print_json(&run_json(report));
        return;
    }
    let s = &ctx.style;
    let total = report
        .steps
        .iter()
        .find(|t| t.step == "total")
        .map(|t| t.millis)
        .unwrap_or(0);
    match report.status {
        RunStatus::Published => outln!(
            "{} {} file(s), {} rows into {} → main {} ({}) in {:.2}s",
            s.good("published"),
            report.files.len(),
            report.rows,
            report.table,
            report
                .snapshot_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
            match report.publish {
                Some(sluice_lake::PublishKind::Rebase) => "rebased onto a moved main",
                _ => "fast-forward",
            },
            total as f64 / 1000.0
        ),
        RunStatus::NothingToDo => outln!(
            "{}: no new files for {}{}",
            s.dim("nothing to do"),
            report.table,
            report
                .error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        RunStatus::AuditFailed => {
            outln!(
                "{} for {} file(s) into {}: rolled back, main unchanged",
                s.bad("audit failed"),
                report.files.len(),
                report.table
            );
        }
        RunStatus::Failed => {
            eprintln!(
                "{} in step {}: {}",
                s.bad("run failed"),
                report.failed_step.as_deref().unwrap_or("start"),
                report.error.as_deref().unwrap_or("unknown error")
            );
            eprintln!(
                "nothing was published; main of {} is unchanged",
                report.table
            );
        }
    }
    if let Some(audit) = &report.audit
        && !ctx.cli.quiet
    {
        print_audit(audit);
    }
}

fn print_audit(audit: &AuditReport) {
    // The rendered table includes the failing-row samples of every problem check.
    out!("{}", audit.render_table());
}

async fn recover(ctx: &Ctx<'_>, wait: bool) -> Result<u8> {
    let config = config::load(ctx.cli.config.as_deref())?;
    let ttl = config.pipeline.lease_ttl;
    let pipeline = Pipeline::open(&config.pipeline).await?;
    let deadline = Instant::now() + ttl + Duration::from_secs(5);
    let mut recovered = Vec::new();
    let report = loop {
        let report = pipeline.recover().await?;
        recovered.extend(report.recovered.iter().cloned());
        if !wait || report.still_running.is_empty() || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let failed = recovered.iter().any(|r| !r.failures.is_empty());
    if ctx.cli.json {
        ctx.print_json(&json!({
            "recovered": recovered.iter().map(|r| json!({"run_id": r.run_id, "name": r.name, "state": r.state, "hooks_completed": r.hooks_completed, "failures": r.failures})).collect::<Vec<_>>(),
            "still_running": report.still_running,
        }));
    } else {
        if recovered.is_empty() {
            outln!("nothing to recover");
        }
        for r in &recovered {
            outln!(
                "{} {} ({}): {:?}, {} hook(s) run",
                ctx.style.good("recovered"),
                r.run_id,
                r.name,
                r.state,
                r.hooks_completed
            );
            for f in &r.failures {
                outln!("  {} {f}", ctx.style.bad("still failing:"));
            }
        }
        for id in &report.still_running {
            outln!(
                "{} {id}: its process is still running, or ran on another machine; if it stopped there, run `sluice recover --wait` to recover it once its lease ({}s) expires",
                ctx.style.warn("still running"),
                ttl.as_secs()
            );
        }
    }
    Ok(if failed { 1 } else { 0 })
}

async fn runs(ctx: &Ctx<'_>, sub: &RunsCommand) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    match sub {
        RunsCommand::List { limit } => {
            let runs = pipeline
                .list_runs(&RunFilter::all().with_limit(*limit))
                .await?;
            if ctx.cli.json {
                ctx.print_json(&serde_json::to_value(&runs)?);
            } else {
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.run_id.to_string(),
                            r.name.clone(),
                            format!("{:?}", r.state),
                            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            r.error
                                .clone()
                                .unwrap_or_default()
                                .chars()
                                .take(80)
                                .collect(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table(&["RUN", "NAME", "STATE", "STARTED (UTC)", "ERROR"], &rows)
                );
            }
        }
        RunsCommand::Show { run_id } => {
            let id: uuid::Uuid = run_id.parse().with_context(|| {
                format!("`{run_id}` is not a run id; list them with `sluice runs list`")
            })?;
            let run = pipeline.show_run(id).await?;
            if ctx.cli.json {
                ctx.print_json(&serde_json::to_value(&run)?);
            } else {
                outln!("run {} ({}) {:?}", run.run_id, run.name, run.state);
                outln!("params: {}", run.params);
                if let Some(e) = &run.error {
                    outln!("error: {e}");
                }
                let rows: Vec<Vec<String>> = run
                    .steps
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            format!("{:?}", s.state),
                            s.attempts.to_string(),
                            s.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                            s.errors
                                .last()
                                .map(|e| format!("{e:?}"))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table(
                        &["STEP", "STATE", "ATTEMPTS", "DURATION", "LAST ERROR"],
                        &rows
                    )
                );
                let hooks: Vec<Vec<String>> = run
                    .hooks
                    .iter()
                    .map(|h| {
                        vec![
                            format!("{:?}", h.kind),
                            h.name.clone(),
                            h.payload.to_string(),
                            format!("{:?}", h.state),
                            h.attempts.to_string(),
                        ]
                    })
                    .collect();
                if !hooks.is_empty() {
                    out!(
                        "{}",
                        table(&["HOOK", "NAME", "PAYLOAD", "STATE", "ATTEMPTS"], &hooks)
                    );
                }
            }
        }
    }
    Ok(0)
}

async fn refs(ctx: &Ctx<'_>, sub: &RefCommand, branches: bool) -> Result<u8> {
    let pipeline = ctx.pipeline().await?;
    let lake = pipeline.lake();
    let kind = if branches { "branch" } else { "tag" };
    match sub {
        RefCommand::List { table: t } => {
            let name: TableName = t.parse()?;
            let wanted = if branches {
                sluice_lake::RefKind::Branch
            } else {
                sluice_lake::RefKind::Tag
            };
            let refs: Vec<_> = lake
                .list_refs(&name)
                .await?
                .into_iter()
                .filter(|r| r.kind == wanted)
                .collect();
            if ctx.cli.json {
                ctx.print_json(&serde_json::to_value(&refs)?);
            } else {
                let rows: Vec<Vec<String>> = refs
                    .iter()
                    .map(|r| vec![r.name.clone(), r.snapshot_id.to_string()])
                    .collect();
                out!("{}", table(&[&kind.to_uppercase(), "SNAPSHOT"], &rows));
            }
        }
        RefCommand::Create {
            table: t,
            name,
            from,
        } => {
            let table_name: TableName = t.parse()?;
            let ref_name = RefName::new(name.as_str())?;
            let spec = RefSpec::parse(from)?;
            let id = if branches {
                lake.create_branch(&table_name, &ref_name, &spec).await?
            } else {
                lake.create_tag(&table_name, &ref_name, &spec).await?
            };
            if ctx.cli.json {
                ctx.print_json(&json!({"table": t, kind: name, "snapshot_id": id}));
            } else {
                outln!("created {kind} {name} of {table_name} at snapshot {id}");
            }
        }
        RefCommand::Delete { table: t, name } => {
            let table_name: TableName = t.parse()?;
            lake.delete_ref(&table_name, &RefName::new(name.as_str())?)
                .await?;
            if ctx.cli.json {
                ctx.print_json(&json!({"table": t, "deleted": name}));
            } else {
                outln!("deleted {kind} {name} of {table_name}");
            }
        }
    }
    Ok(0)
}

async fn scan(
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
            return Ok(0);
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
    Ok(0)
}

async fn run_demo(ctx: &Ctx<'_>, dir: &Path) -> Result<u8> {
    let s = &ctx.style;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty; choose another --dir or remove it",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    std::fs::write(dir.join("sluice.toml"), config::DEFAULT_CONFIG)?;
    std::fs::write(dir.join("checks.toml"), demo::DEMO_CHECKS)?;
    let pipeline_config = config::parse(config::DEFAULT_CONFIG, &dir)?;
    let pipeline = Pipeline::open(&pipeline_config).await?;
    let table: TableName = "demo.events".parse()?;
    let suite = CheckSuite::from_toml_str(demo::DEMO_CHECKS)?;
    let say = |text: String| {
        if !ctx.cli.json {
            outln!("{text}");
        }
    };
    say(format!(
        "{} a Write-Audit-Publish demo in {}",
        s.good("sluice demo:"),
        dir.display()
    ));

    // Day 1: two good files.
    demo::write_parquet(
        &dir.join("raw/day-1/events-00000.parquet"),
        &demo::events(0, 5_000, 1, false),
    )?;
    demo::write_parquet(
        &dir.join("raw/day-1/events-00001.parquet"),
        &demo::events(5_000, 5_000, 2, false),
    )?;
    // Day 2: a bad file (null user ids, a duplicate event id).
    demo::write_parquet(
        &dir.join("raw/day-2/events-00002.parquet"),
        &demo::events(10_000, 5_000, 3, true),
    )?;
    // Day 3: good again.
    demo::write_parquet(
        &dir.join("raw/day-3/events-00003.parquet"),
        &demo::events(15_000, 5_000, 4, false),
    )?;

    let mut options = RunOptions::new(dir.join("raw/day-1").display().to_string(), table.clone());
    options.checks = Some(suite);
    options.author = Some("sluice demo".into());
    options.key_columns = vec!["event_id".into()];
    let mut reports = Vec::new();

    say(format!(
        "\n{} ingest raw/day-1 (2 files, 10000 events)",
        s.dim("1.")
    ));
    let day1 = pipeline.run(&options).await?;
    if !ctx.cli.json {
        print_run(ctx, &day1);
    }
    pipeline
        .lake()
        .create_tag(&table, &RefName::new("day-1")?, &RefSpec::main())
        .await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after_day1 = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    say(format!(
        "\n{} ingest raw/day-2 (a bad batch: null user ids and a duplicate event id)",
        s.dim("2.")
    ));
    options.source = dir.join("raw/day-2").display().to_string();
    let day2 = pipeline.run(&options).await?;
    if !ctx.cli.json {
        print_run(ctx, &day2);
    }

    say(format!("\n{} ingest raw/day-3", s.dim("3.")));
    options.source = dir.join("raw/day-3").display().to_string();
    let day3 = pipeline.run(&options).await?;
    if !ctx.cli.json {
        print_run(ctx, &day3);
    }
    reports.extend([day1.clone(), day2.clone(), day3.clone()]);

    let log = pipeline.lake().log(&table, &RefSpec::main(), None).await?;
    let count = |spec: RefSpec| {
        let lake = pipeline.lake();
        let table = table.clone();
        async move {
            let batches = lake
                .scan_to_vec(
                    &table,
                    &spec,
                    &ScanOptions {
                        columns: Some(vec!["event_id".into()]),
                        batch_size: None,
                    },
                )
                .await?;
            Ok::<usize, anyhow::Error>(batches.iter().map(|b| b.num_rows()).sum())
        }
    };
    let now_rows = count(RefSpec::main()).await?;
    let then_spec = RefSpec::parse(&format!("main@{}", after_day1.to_rfc3339()))?;
    let then_rows = count(then_spec).await?;
    let tag_rows = count(RefSpec::parse("day-1")?).await?;
    let branches: Vec<String> = pipeline
        .lake()
        .list_refs(&table)
        .await?
        .into_iter()
        .filter(|r| r.name.starts_with("sluice/"))
        .map(|r| r.name)
        .collect();
    let story_ok = day1.status == RunStatus::Published
        && day2.status == RunStatus::AuditFailed
        && day3.status == RunStatus::Published
        && now_rows == 15_000
        && then_rows == 10_000
        && tag_rows == 10_000
        && branches.is_empty();

    if ctx.cli.json {
        ctx.print_json(&json!({
            "dir": dir.display().to_string(),
            "table": table.to_string(),
            "runs": reports.iter().map(run_json).collect::<Vec<_>>(),
            "rows_in_main": now_rows,
            "rows_in_main_after_day_1": then_rows,
            "rows_at_tag_day_1": tag_rows,
            "leftover_branches": branches,
            "ok": story_ok,
        }));
    } else {
        outln!("\n{} sluice log demo.events", s.dim("4."));
        let rows: Vec<Vec<String>> = log
            .iter()
            .map(|c| {
                vec![
                    c.snapshot_id.to_string(),
                    c.operation.clone(),
                    c.message.clone().unwrap_or_default(),
                    c.total_records.map(|n| n.to_string()).unwrap_or_default(),
                    c.summary.get("sluice.audit").cloned().unwrap_or_default(),
                ]
            })
            .collect();
        out!(
            "{}",
            output::table(
                &["SNAPSHOT", "OPERATION", "MESSAGE", "ROWS", "AUDIT"],
                &rows
            )
        );
        outln!("\n{} time travel", s.dim("5."));
        outln!(
            "  main now:                         {now_rows} rows (day 1 + day 3; day 2 was rejected)"
        );
        outln!(
            "  main@{}: {then_rows} rows",
            after_day1.format("%Y-%m-%dT%H:%M:%SZ")
        );
        outln!("  tag day-1:                        {tag_rows} rows");
        outln!("  audit branches left behind:       {}", branches.len());
        outln!(
            "\nTry: cd {} && sluice log demo.events && sluice scan demo.events@day-1 --limit 5",
            dir.display()
        );
        outln!(
            "{}",
            if story_ok {
                s.good("demo finished as expected")
            } else {
                s.bad("demo did not go as expected")
            }
        );
    }
    Ok(if story_ok { 0 } else { 1 })
}

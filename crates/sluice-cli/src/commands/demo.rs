//! `sluice demo`: the whole Write-Audit-Publish story on sample events and the embedded
//! default: a good day published, a bad day rejected, another good day published, then the
//! log and time travel that show it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sluice_checks::CheckSuite;
use sluice_lake::{RefName, RefSpec, ScanOptions, TableName};
use sluice_wap::{Pipeline, RunOptions, RunStatus};

use super::Ctx;
use crate::render::report::{print_run, run_json};
use crate::render::{self, Fit};
use crate::{exit_code, samples};
use sluice_wap::config;

/// The demo's audits: the day-2 batch fails `not_null` and `unique`.
const DEMO_CHECKS: &str = r#"# Audits for the demo's user-interaction events (see docs/checks.md).
[[check]]
kind = "not_null"
columns = ["event_id", "user_id"]

[[check]]
kind = "unique"
columns = ["event_id"]
scope = "table"

[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "add_to_cart", "purchase", "search"]

[[check]]
kind = "range"
column = "amount"
min = 0
where = "event_type = 'purchase'"

[[check]]
kind = "row_count"
min = 1
"#;

/// Exits with 1 when the story did not go as told: every step is checked, not only run.
pub(super) async fn demo(ctx: &Ctx<'_>, dir: &Path) -> Result<u8> {
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
    std::fs::write(dir.join("checks.toml"), DEMO_CHECKS)?;
    let pipeline_config = config::parse(config::DEFAULT_CONFIG, &dir)?;
    let pipeline = Pipeline::open(&pipeline_config).await?;
    let table: TableName = "demo.events".parse()?;
    let suite = CheckSuite::from_toml_str(DEMO_CHECKS)?;
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
    samples::write_parquet(
        &dir.join("raw/day-1/events-00000.parquet"),
        &samples::events(0, 5_000, 1, false),
    )?;
    samples::write_parquet(
        &dir.join("raw/day-1/events-00001.parquet"),
        &samples::events(5_000, 5_000, 2, false),
    )?;
    // Day 2: a bad file (null user ids, a duplicate event id).
    samples::write_parquet(
        &dir.join("raw/day-2/events-00002.parquet"),
        &samples::events(10_000, 5_000, 3, true),
    )?;
    // Day 3: good again.
    samples::write_parquet(
        &dir.join("raw/day-3/events-00003.parquet"),
        &samples::events(15_000, 5_000, 4, false),
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
                    c.summary
                        .get(sluice_lake::summary::AUDIT_PROPERTY)
                        .cloned()
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out!(
            "{}",
            render::table(
                &["SNAPSHOT", "OPERATION", "MESSAGE", "ROWS", "AUDIT"],
                &rows,
                Fit {
                    whole: &[0],
                    droppable: &[1],
                }
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
    Ok(if story_ok {
        exit_code::SUCCESS
    } else {
        exit_code::FAILURE
    })
}

//! `sluice serve`: runs started by object-store notifications and webhooks, until SIGTERM or
//! Ctrl-C.

use anyhow::{Context, Result};
use sluice_serve::{ServeOptions, Server};
use sluice_wap::{StopSignal, config};

use super::Ctx;
use crate::cli::ServeArgs;
use crate::exit_code;
use crate::signals::Signals;

pub(super) async fn serve(ctx: &Ctx<'_>, args: &ServeArgs) -> Result<u8> {
    let config = config::load(ctx.cli.config.as_deref())?;
    let queue_dir = args
        .queue_dir
        .clone()
        .unwrap_or_else(|| config.dir.join(".sluice").join("events"));
    let mut options = ServeOptions::new(args.listen, queue_dir);
    options.token = std::env::var("SLUICE_SERVE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    options.max_concurrent_runs = args.max_concurrent_runs as usize;
    options.max_queue = usize::try_from(args.max_queue).unwrap_or(usize::MAX);
    options.max_body = usize::try_from(args.max_body).unwrap_or(usize::MAX);
    options.ui_only = args.ui_only;
    if config.triggers.is_empty() && !args.ui_only {
        tracing::warn!(
            config = %config.source,
            "no [[trigger]] in the configuration: events will be refused (see docs/serve.md)"
        );
    }
    let server = Server::open(&config.pipeline, config.triggers, options)
        .await
        .with_context(|| {
            format!(
                "cannot start the server of the lake described by {}",
                config.source
            )
        })?;
    let addr = server.local_addr();
    if !ctx.cli.quiet {
        eprintln!(
            "serving the lake of {} on http://{addr}{}",
            config.source,
            if args.ui_only { " (web view only)" } else { "" }
        );
        for trigger in server.triggers() {
            eprintln!(
                "  {} <- {} (batch window {}, at most {} files a run{})",
                trigger.table(),
                trigger.prefix,
                crate::render::duration(trigger.batch_window),
                trigger.max_files,
                trigger
                    .poll_every
                    .map(|every| format!(", polled every {}", crate::render::duration(every)))
                    .unwrap_or_default()
            );
        }
        eprintln!("Ctrl-C or SIGTERM stops taking requests and lets the runs in progress finish");
    }
    let stop = StopSignal::new();
    let cancel = StopSignal::new();
    let signals = Signals::listen(Some(stop.clone()), cancel.clone());
    server.serve(stop, cancel).await?;
    Ok(signals.exit_code().unwrap_or(exit_code::SUCCESS))
}

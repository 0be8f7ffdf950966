//! The `sluice` command: parse the command line, run the command, exit with its code.
//!
//! ```text
//! cli       what the command line may say (clap)
//! config    sluice.toml → the pipeline's configuration
//! commands  one module per command
//! render    everything printed: tables, reports, errors, progress
//! signals   Ctrl-C and SIGTERM during a run
//! exit_code what each outcome exits with
//! samples   sample events and checks for `init` and `demo`
//! ```

#[macro_use]
mod render;

mod cli;
mod commands;
mod exit_code;
mod samples;
mod signals;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::render::Style;

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    match runtime.block_on(commands::execute(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let message = render::error::message(&e);
            if cli.json {
                render::print_failure(&message);
            }
            let style = Style::detect();
            eprintln!("{} {message}", style.bad("error:"));
            ExitCode::from(exit_code::FAILURE)
        }
    }
}

/// A command line clap rejects: its message and exit code 2 (0 for --help and --version);
/// with `--json` also the failure document on stdout.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !informational && std::env::args().any(|a| a == "--json") {
        let text = e.render().to_string();
        let message = text
            .lines()
            .find(|l| l.starts_with("error:"))
            .map(|l| l.trim_start_matches("error:").trim().to_string())
            .unwrap_or_else(|| text.trim().to_string());
        render::print_failure(&message);
    }
    let _ = e.print();
    ExitCode::from(if informational {
        exit_code::SUCCESS
    } else {
        exit_code::USAGE
    })
}

fn init_logging(cli: &Cli) {
    let serving = matches!(cli.command, cli::Command::Serve(_));
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        // A server says what each run did.
        (false, 0) if serving => "warn,sluice_serve=info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    if serving || cli.verbose > 0 {
        builder.init();
    } else {
        // A command's warnings are for its user: no timestamp, no source module.
        builder.without_time().with_target(false).init();
    }
}

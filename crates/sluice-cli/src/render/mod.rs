//! Everything the CLI prints: colour, tables, run and audit reports, error messages, and the
//! writing of standard output itself. Commands decide what to say; how it reads is decided here.

use std::io::IsTerminal;

pub use table::{Fit, table};

/// `print!` that survives a reader going away (`sluice log t | head`): see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::render::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that survives a reader going away: see [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::render::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::render::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

// After the macros, so that every rendering module can use them.
pub mod error;
pub mod progress;
pub mod report;
pub mod table;

/// Colour (only on terminals, never with NO_COLOR).
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn detect() -> Self {
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// The user's word for a value of one of sluice's enums (a run or step state, a publish kind,
/// a hook kind): the name `--json` prints, with spaces for underscores. Text and JSON output
/// share this one rendering, so no Rust variant name reaches a user.
pub fn word(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name.replace('_', " "),
        Ok(other) => other.to_string(),
        Err(_) => "unknown".to_string(),
    }
}

/// A duration as the CLI accepts it: `90s`, `5m`, `1h`, `500ms`.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A byte count for people: `812 B`, `3.4 KiB`, `12.0 MiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Writes results to standard output. When the reader has gone away (`sluice log t | head`),
/// the rest of the output is dropped instead of aborting: the command still finishes what it
/// was doing and exits with its own code.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.flush());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("sluice: cannot write to standard output: {e}");
    }
}

/// The one JSON document of a `--json` invocation that failed before it had a result to print.
pub fn print_failure(message: &str) {
    outln!(
        "{}",
        serde_json::json!({"status": "failed", "error": message})
    );
}

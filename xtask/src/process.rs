//! Background processes known by the pid recorded when they were started.
//!
//! A service is started in its own process group, so a Ctrl-C in the terminal that ran
//! `cargo xtask services up` does not take it down, and is stopped later by the pid in its pid
//! file, never by name. Before a signal is sent, the command line of that pid must still contain
//! the service's marker: a pid that the system has since given to another program is left alone.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The cargo that runs xtask, so that the same toolchain builds everything, with the
/// environment of a command typed in a shell (see [`without_cargo_run_env`]).
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    without_cargo_run_env(&mut command);
    command
}

/// Removes the variables `cargo run` set for xtask itself (`CARGO_PKG_*`, `CARGO_MANIFEST_*`)
/// from a command that builds: some build scripts (ring's) rerun when they change, so a build
/// started from xtask would otherwise rebuild most of the dependency tree, and the next build
/// from a shell would rebuild it again.
pub fn without_cargo_run_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// What a pid file records about one running service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: u32,
    /// The S3 backend or `iceberg-rest`.
    pub backend: String,
    pub endpoint: String,
    /// A string the process's command line contains, checked before any signal is sent.
    pub marker: String,
}

impl PidRecord {
    fn to_text(&self) -> String {
        format!(
            "pid={}\nbackend={}\nendpoint={}\nmarker={}\n",
            self.pid, self.backend, self.endpoint, self.marker
        )
    }

    fn from_text(text: &str) -> Result<Self> {
        let fields: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let field = |name: &str| {
            fields
                .get(name)
                .map(|value| value.to_string())
                .with_context(|| format!("no `{name}=` line"))
        };
        Ok(Self {
            pid: field("pid")?.parse().context("`pid=` is not a number")?,
            backend: field("backend")?,
            endpoint: field("endpoint")?,
            marker: field("marker")?,
        })
    }

    /// Reads a pid file; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        match fs::read_to_string(path) {
            Ok(text) => Self::from_text(&text)
                .map(Some)
                .with_context(|| format!("{} is not a pid file written by xtask", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fs::write(path, self.to_text()).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Whether the recorded process is still running and is still the one that was started.
    pub fn is_running(&self) -> bool {
        is_alive(self.pid) && command_line(self.pid).is_some_and(|line| line.contains(&self.marker))
    }
}

/// Starts `command` in the background in its own process group, stdout and stderr written to
/// `log` (emptied first, so it holds this start only). The child is not waited for: it outlives
/// xtask.
pub fn spawn_in_background(command: &mut Command, log: &Path) -> Result<u32> {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(log)
        .with_context(|| format!("cannot open log file {}", log.display()))?;
    let stderr = log_file.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    Ok(child.id())
}

/// Stops the recorded process: SIGTERM, then SIGKILL if it is still there after `grace`.
///
/// Does nothing (and says so by returning `false`) when the pid no longer belongs to the service.
pub fn stop(record: &PidRecord, grace: Duration) -> Result<bool> {
    if !record.is_running() {
        return Ok(false);
    }
    send_signal(record.pid, "TERM")?;
    if wait_until_gone(record.pid, grace) {
        return Ok(true);
    }
    // Checked again: between the two signals the pid cannot have been reused while it was alive,
    // but it may have exited just now.
    if record.is_running() {
        send_signal(record.pid, "KILL")?;
        if !wait_until_gone(record.pid, Duration::from_secs(5)) {
            bail!(
                "process {} ({}) did not exit after SIGKILL",
                record.pid,
                record.backend
            );
        }
    }
    Ok(true)
}

fn send_signal(pid: u32, signal: &str) -> Result<()> {
    // A non-zero exit only means the process exited between the check and the signal.
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .context("cannot run `kill`")?;
    Ok(())
}

fn wait_until_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !is_alive(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    !is_alive(pid)
}

/// Whether `pid` is a live process; a zombie (exited, not yet reaped) counts as gone.
pub fn is_alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if proc_dir.join("self").exists() {
        return match fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")) {
            // The state follows the parenthesised command name, which may itself contain spaces.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        };
    }
    // Without /proc (macOS), ask ps.
    Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .is_some_and(|state| !state.is_empty() && !state.starts_with('Z'))
}

/// Whether `program` is an executable file in one of PATH's directories.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The command line of `pid`, arguments separated by spaces.
fn command_line(pid: u32) -> Option<String> {
    if let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) {
        return Some(
            raw.split(|byte| *byte == 0)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    Command::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_commands_leave_out_what_cargo_set_for_xtask() {
        // Tests run under cargo, which sets CARGO_PKG_NAME for them as it does for xtask.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let command = cargo();
        let removed: Vec<String> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(removed.iter().any(|n| n == "CARGO_PKG_NAME"), "{removed:?}");
        assert!(
            removed.iter().any(|n| n == "CARGO_MANIFEST_DIR"),
            "{removed:?}"
        );
        assert!(
            !removed.iter().any(|n| n == "CARGO_HOME" || n == "PATH"),
            "{removed:?}"
        );
    }

    fn record(pid: u32, marker: &str) -> PidRecord {
        PidRecord {
            pid,
            backend: "test".into(),
            endpoint: "http://127.0.0.1:1".into(),
            marker: marker.into(),
        }
    }

    #[test]
    fn pid_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("xtask-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s3.pid");
        let written = record(4242, "s3s-fs");
        written.save(&path).unwrap();
        assert_eq!(PidRecord::load(&path).unwrap(), Some(written));
        assert_eq!(PidRecord::load(&dir.join("absent.pid")).unwrap(), None);
        fs::write(&path, "garbage").unwrap();
        assert!(PidRecord::load(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stops_a_started_process_by_pid_and_leaves_a_mismatched_one_alone() {
        let dir = std::env::temp_dir().join(format!("xtask-stop-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sleep.log");
        let pid = spawn_in_background(Command::new("sleep").arg("300"), &log).unwrap();
        assert!(is_alive(pid));

        // The marker does not match: the pid is treated as someone else's process.
        let stranger = record(pid, "no-such-program-name");
        assert!(!stranger.is_running());
        assert!(!stop(&stranger, Duration::from_secs(1)).unwrap());
        assert!(is_alive(pid));

        let ours = record(pid, "sleep 300");
        // Right after exec the new command line may not be readable yet.
        let begin = Instant::now();
        while !ours.is_running() && begin.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(ours.is_running(), "{:?}", command_line(pid));
        assert!(stop(&ours, Duration::from_secs(5)).unwrap());
        assert!(!is_alive(pid));
        assert!(!ours.is_running());
        fs::remove_dir_all(&dir).unwrap();
    }
}

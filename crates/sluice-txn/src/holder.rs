//! Which process holds a lease, and whether that process is provably gone.
//!
//! A lease expires after its ttl, which is the only safe rule between machines: a process
//! elsewhere may be alive but slow or cut off. On the same machine more is known. Each lease
//! record carries the holder's [`ProcessIdentity`]; a process that shares the holder's host,
//! boot and pid namespace can look the holder up in `/proc` and, if it is gone (or its pid now
//! belongs to a process started at another time), take the lease over at once instead of
//! waiting for the ttl. Anything that cannot be checked counts as alive.

use serde::{Deserialize, Serialize};

/// The host and process that wrote a lease record.
///
/// Only `host` and `pid` are always known; the other fields are read from `/proc` on Linux
/// and are `None` elsewhere, in which case the holder is never declared dead early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessIdentity {
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks after boot (Linux: field 22 of
    /// `/proc/<pid>/stat`). Tells the holder apart from a later process that reuses its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// The kernel's boot id (Linux: `/proc/sys/kernel/random/boot_id`): the same host name
    /// with another boot id is another machine or another boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The pid namespace (Linux: the target of `/proc/self/ns/pid`): pids of processes in
    /// other containers on the same kernel cannot be looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// The user id the process runs as. Processes of other users may be hidden from `/proc`
    /// (`hidepid`), so their absence proves nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// What `/proc` says about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessStatus {
    /// No such process (or a zombie: it ended and only waits to be reaped).
    Gone,
    /// A live process with this start time.
    Running { start_time: u64 },
    /// Cannot tell (no `/proc`, unreadable, unexpected format).
    Unknown,
}

impl ProcessIdentity {
    /// The identity of the calling process.
    pub fn current() -> Self {
        let pid = std::process::id();
        let start_time = match process_status(pid) {
            ProcessStatus::Running { start_time } => Some(start_time),
            _ => None,
        };
        ProcessIdentity {
            host: host_name(),
            pid,
            start_time,
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|target| target.display().to_string()),
            uid: current_uid(),
        }
    }

    /// Whether `local` (the process asking) can look this process up: same host name, same
    /// boot of the same kernel, same pid namespace, all known.
    pub fn shares_process_table_with(&self, local: &ProcessIdentity) -> bool {
        self.host == local.host
            && self.boot_id.is_some()
            && self.boot_id == local.boot_id
            && self.pid_namespace.is_some()
            && self.pid_namespace == local.pid_namespace
    }

    /// Whether this process has certainly ended, as seen from `local`.
    ///
    /// True only if both run on the same host, boot and pid namespace, and either no process
    /// has this pid any more (and `/proc` would show it: same user) or the pid now belongs to
    /// a process with another start time (the pid was reused). Everything else, including a
    /// holder on another host, is treated as alive: there only the lease's expiry counts.
    pub fn is_provably_dead(&self, local: &ProcessIdentity) -> bool {
        if !self.shares_process_table_with(local) {
            return false;
        }
        self.is_dead_given(process_status(self.pid), local)
    }

    fn is_dead_given(&self, status: ProcessStatus, local: &ProcessIdentity) -> bool {
        match status {
            ProcessStatus::Gone => self.uid.is_some() && self.uid == local.uid,
            ProcessStatus::Running { start_time } => self
                .start_time
                .is_some_and(|recorded| recorded != start_time),
            ProcessStatus::Unknown => false,
        }
    }
}

impl std::fmt::Display for ProcessIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown-host".to_string())
}

#[cfg(unix)]
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn current_uid() -> Option<u32> {
    None
}

fn process_status(pid: u32) -> ProcessStatus {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only trust "no such process" where /proc is there to ask.
            if std::path::Path::new("/proc/self/stat").exists() {
                ProcessStatus::Gone
            } else {
                ProcessStatus::Unknown
            }
        }
        Err(_) => ProcessStatus::Unknown,
    }
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid … starttime …`. The command name may
/// hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> ProcessStatus {
    let Some(close) = stat.rfind(')') else {
        return ProcessStatus::Unknown;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    match (fields.first(), fields.get(19).and_then(|s| s.parse().ok())) {
        (Some(&"Z") | Some(&"X") | Some(&"x"), _) => ProcessStatus::Gone,
        (Some(_), Some(start_time)) => ProcessStatus::Running { start_time },
        _ => ProcessStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> ProcessIdentity {
        ProcessIdentity {
            host: "here".to_string(),
            pid: 10,
            start_time: Some(500),
            boot_id: Some("boot-1".to_string()),
            pid_namespace: Some("pid:[1]".to_string()),
            uid: Some(1000),
        }
    }

    #[test]
    fn stat_lines_are_parsed_from_the_last_parenthesis() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            ProcessStatus::Running { start_time: 987654 }
        );
        let zombie = "4242 (x) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_stat(zombie), ProcessStatus::Gone);
        assert_eq!(parse_stat("garbage"), ProcessStatus::Unknown);
        assert_eq!(parse_stat("1 (x) S 1 2"), ProcessStatus::Unknown);
    }

    #[test]
    fn a_reused_pid_is_dead_and_the_same_process_is_alive() {
        let me = local();
        let holder = ProcessIdentity {
            pid: 77,
            start_time: Some(1234),
            ..local()
        };
        // Same pid, other start time: the pid was reused by a later process.
        assert!(holder.is_dead_given(ProcessStatus::Running { start_time: 9999 }, &me));
        assert!(!holder.is_dead_given(ProcessStatus::Running { start_time: 1234 }, &me));
        assert!(holder.is_dead_given(ProcessStatus::Gone, &me));
        assert!(!holder.is_dead_given(ProcessStatus::Unknown, &me));
        // Without a recorded start time a running pid might be the holder.
        let no_start = ProcessIdentity {
            start_time: None,
            ..holder.clone()
        };
        assert!(!no_start.is_dead_given(ProcessStatus::Running { start_time: 9999 }, &me));
        // A missing process of another user may only be hidden from us.
        let other_user = ProcessIdentity {
            uid: Some(0),
            ..holder
        };
        assert!(!other_user.is_dead_given(ProcessStatus::Gone, &me));
    }

    #[test]
    fn a_holder_elsewhere_is_never_declared_dead() {
        let me = local();
        for elsewhere in [
            ProcessIdentity {
                host: "there".to_string(),
                ..local()
            },
            ProcessIdentity {
                boot_id: Some("boot-2".to_string()),
                ..local()
            },
            ProcessIdentity {
                pid_namespace: Some("pid:[2]".to_string()),
                ..local()
            },
            ProcessIdentity {
                boot_id: None,
                ..local()
            },
        ] {
            assert!(!elsewhere.shares_process_table_with(&me), "{elsewhere:?}");
            assert!(!elsewhere.is_provably_dead(&me), "{elsewhere:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn on_linux_this_process_is_alive_and_a_reused_pid_is_dead() {
        let me = ProcessIdentity::current();
        assert!(me.start_time.is_some() && me.boot_id.is_some() && me.pid_namespace.is_some());
        assert!(!me.is_provably_dead(&me));
        // This very pid, but recorded with another start time: a different, dead process.
        let earlier = ProcessIdentity {
            start_time: me.start_time.map(|t| t.wrapping_sub(1)),
            ..me.clone()
        };
        assert!(earlier.is_provably_dead(&me));
        // The same dead process seen as if on another host: only the ttl counts there.
        let remote = ProcessIdentity {
            host: format!("{}-elsewhere", me.host),
            ..earlier
        };
        assert!(!remote.is_provably_dead(&me));
    }

    #[test]
    fn identities_without_linux_fields_still_decode() {
        let old: ProcessIdentity = serde_json::from_str(r#"{"host":"h","pid":3}"#).unwrap();
        assert_eq!(old.start_time, None);
        assert!(!old.is_provably_dead(&local()));
    }
}

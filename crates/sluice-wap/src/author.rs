//! Who the commits of a run name as their author when the caller does not say: `[run] author`
//! of `sluice.toml`, else the user the process runs as, else the host (containers, CI and
//! Kubernetes pods often have no `$USER`, and a pod's host name names it).

/// The author of a run: `configured` when set, else the user name, else the host name.
pub fn default_author(configured: Option<&str>) -> String {
    let env = |name: &str| std::env::var(name).ok();
    pick_author(configured, env, passwd_name, || {
        sluice_txn::ProcessIdentity::current().host
    })
}

fn pick_author(
    configured: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    passwd: impl Fn(u32) -> Option<String>,
    host: impl Fn() -> String,
) -> String {
    let present = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    present(configured.map(str::to_string))
        .or_else(|| present(env("USER")))
        .or_else(|| present(env("LOGNAME")))
        .or_else(|| present(current_uid().and_then(&passwd)))
        .unwrap_or_else(host)
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

/// The name `/etc/passwd` gives `uid`.
fn passwd_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    name_in_passwd(&passwd, uid)
}

fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_name_known_is_the_author() {
        let none = |_: &str| None;
        let host = || "pod-7f9c".to_string();
        let users = |name: &str| (name == "USER").then(|| "ana".to_string());
        let logname = |name: &str| (name == "LOGNAME").then(|| "ben".to_string());
        let blank = |_: &str| Some("  ".to_string());
        let etl = |_: u32| Some("etl".to_string());
        let no_entry = |_: u32| None;
        assert_eq!(pick_author(Some("ops-bot"), users, etl, host), "ops-bot");
        assert_eq!(pick_author(Some(" "), users, etl, host), "ana");
        assert_eq!(pick_author(None, logname, etl, host), "ben");
        // No user in the environment: the passwd entry of the process's uid, else the host.
        if current_uid().is_some() {
            assert_eq!(pick_author(None, blank, etl, host), "etl");
        }
        assert_eq!(pick_author(None, none, no_entry, host), "pod-7f9c");
    }

    #[test]
    fn passwd_lines_give_the_name_of_a_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      etl:x:1000:1000::/home/etl:/bin/sh\n";
        assert_eq!(name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(passwd, 1000).as_deref(), Some("etl"));
        assert_eq!(name_in_passwd(passwd, 1001), None);
    }
}

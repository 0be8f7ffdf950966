//! Ctrl-C and SIGTERM during a run.

use super::*;

/// Starts `sluice --json run` paused at `point`, sends `signal` once it is there, and returns
/// the exit code, stdout and stderr.
fn signal_at(env: &Env, point: &str, signal: &str) -> (Option<i32>, String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = env
        .cmd()
        .env("SLUICE_PAUSE_AT", point)
        .arg("--json")
        .args(run_args("raw", &[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        before.push_str(&line);
        before.push('\n');
        if line.contains(&format!("paused at {point}")) {
            break;
        }
    }
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = String::new();
    for line in lines {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), stdout, before + &rest)
}

#[test]
fn ctrl_c_or_sigterm_rolls_the_run_back_and_frees_its_lease() {
    let env = seeded();
    write(&env.path("raw/a.parquet"), &events(100..150, false));
    for (point, signal, code) in [("after-write", "INT", 130), ("audit", "TERM", 143)] {
        let started = std::time::Instant::now();
        let (status, stdout, stderr) = signal_at(&env, point, signal);
        assert_eq!(status, Some(code), "{point}: {stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{point}: took {:?}",
            started.elapsed()
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["status"], "interrupted", "{point}: {report}");
        assert!(stderr.contains("stopping"), "{point}: {stderr}");
        assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
        assert!(
            env.branches().iter().all(|b| !b.starts_with("sluice/")),
            "{point}: {:?}",
            env.branches()
        );
        // Nothing is left open: no recovery needed, and the next run is not refused.
        let (code, recovered) = env.json(&["recover"]);
        assert_eq!(code, 0, "{recovered}");
        assert!(recovered["still_running"].as_array().unwrap().is_empty());
    }
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.event_ids("ns.events").len(), 60);
}

//! `cargo xtask services up|down|status`: the S3 server and the Iceberg REST catalog as local
//! background processes, and the environment variables that point the tests at them.
//!
//! ```text
//!   up:    prepare (install/download, cached) ─► start ─► record pid ─► health check ─► buckets
//!          └─ S3 first, then the REST catalog, whose FileIO writes to that S3 server
//!   down:  REST catalog, then S3: SIGTERM (SIGKILL after a grace period) to the recorded pid
//! ```

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::layout::{Layout, Service};
use crate::process::{self, PidRecord};
use crate::python;
use crate::rest_catalog;
use crate::s3_server::{self, RAW_BUCKET, S3Backend, WAREHOUSE_BUCKET};

/// How long a stopped service gets to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a service's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 60;
const REST_BACKEND: &str = "iceberg-rest";

/// Which S3 server and which ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicesConfig {
    pub s3: S3Backend,
    pub s3_port: u16,
    pub rest_port: u16,
    /// How long each service may take to pass its health check.
    pub timeout: Duration,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            s3: S3Backend::S3sFs,
            s3_port: 9000,
            rest_port: 8181,
            timeout: Duration::from_secs(120),
        }
    }
}

impl ServicesConfig {
    pub fn s3_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn rest_uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    /// The variables the end-to-end tests read.
    pub fn test_env(&self, layout: &Layout) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_TEST_S3_ENDPOINT", self.s3_endpoint()),
            (
                "SLUICE_TEST_S3_ACCESS_KEY_ID",
                s3_server::ACCESS_KEY_ID.into(),
            ),
            (
                "SLUICE_TEST_S3_SECRET_ACCESS_KEY",
                s3_server::SECRET_ACCESS_KEY.into(),
            ),
            ("SLUICE_TEST_S3_REGION", s3_server::REGION.into()),
            ("SLUICE_TEST_S3_BUCKET", WAREHOUSE_BUCKET.into()),
            ("SLUICE_TEST_RAW_BUCKET", RAW_BUCKET.into()),
            // s3s-fs checks conditional writes before writing, so it is not atomic between
            // concurrent writers: tests of concurrent journal writers look at this.
            ("SLUICE_TEST_S3_SERVER", self.s3.name().into()),
            ("SLUICE_TEST_REST_URI", self.rest_uri()),
            ("SLUICE_TEST_REST_WAREHOUSE", rest_catalog::warehouse()),
            (
                "SLUICE_TEST_PYTHON",
                layout.venv_python().display().to_string(),
            ),
        ]
    }
}

/// What `up` left running.
pub struct Running {
    /// Services this call started; those that were already up are not listed.
    pub started: Vec<Service>,
}

/// Starts whatever is not running yet, waits until both services answer, and writes
/// `target/xtask/services.env`. If anything fails, what this call started is stopped again.
pub fn up(layout: &Layout, config: &ServicesConfig) -> Result<Running> {
    for dir in [layout.state.join("pids"), layout.state.join("logs")] {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut started = Vec::new();
    match start_missing(layout, config, &mut started) {
        Ok(()) => {}
        Err(err) => {
            stop_started(layout, &started);
            return Err(err);
        }
    }

    let env = config.test_env(layout);
    let text: String = env
        .iter()
        .map(|(name, value)| format!("export {name}={value}\n"))
        .collect();
    fs::write(layout.env_file(), &text)
        .with_context(|| format!("cannot write {}", layout.env_file().display()))?;
    print!("{text}");
    println!(
        "# written to {}; load with: . {}",
        layout.env_file().display(),
        layout.env_file().display()
    );
    Ok(Running { started })
}

fn start_missing(
    layout: &Layout,
    config: &ServicesConfig,
    started: &mut Vec<Service>,
) -> Result<()> {
    let s3_started = ensure_running(
        layout,
        config,
        Service::S3,
        config.s3.name(),
        &config.s3_endpoint(),
        config.s3_port,
        || {
            let prepared = s3_server::prepare(config.s3, layout, config.s3_port)?;
            Ok((prepared.command, prepared.marker))
        },
        || s3_server::check_health(config.s3, config.s3_port),
    )?;
    if s3_started {
        started.push(Service::S3);
        s3_server::create_buckets(config.s3, layout, config.s3_port)?;
    }

    // An S3 server that starts empty needs a catalog that starts empty too, or the catalog
    // would list tables whose metadata files are gone.
    let fresh_catalog = s3_started && config.s3.is_ephemeral();
    let rest_started = ensure_running(
        layout,
        config,
        Service::Rest,
        REST_BACKEND,
        &config.rest_uri(),
        config.rest_port,
        || {
            let command = rest_catalog::prepare(
                layout,
                config.rest_port,
                config.s3,
                &config.s3_endpoint(),
                fresh_catalog,
            )?;
            Ok((command, rest_catalog::MAIN_CLASS.to_string()))
        },
        || rest_catalog::check_health(config.rest_port),
    )?;
    if rest_started {
        started.push(Service::Rest);
    }

    // The readers the interoperability tests call.
    python::ensure(layout, python::READERS)
}

/// Makes sure `service` runs as `backend` at `endpoint`; returns whether it was started now.
#[allow(clippy::too_many_arguments)]
fn ensure_running(
    layout: &Layout,
    config: &ServicesConfig,
    service: Service,
    backend: &str,
    endpoint: &str,
    port: u16,
    prepare: impl FnOnce() -> Result<(std::process::Command, String)>,
    check_health: impl Fn() -> Result<()>,
) -> Result<bool> {
    let pid_file = layout.pid_file(service);
    let log = layout.log_file(service);
    if let Some(record) = PidRecord::load(&pid_file)? {
        if record.is_running() {
            if record.backend != backend || record.endpoint != endpoint {
                bail!(
                    "{} is already running as {} at {} (pid {}); stop it first with \
                     `cargo xtask services down`",
                    service.name(),
                    record.backend,
                    record.endpoint,
                    record.pid
                );
            }
            wait_until_healthy(service, &record, &log, config.timeout, &check_health)?;
            println!(
                "{:<4}  {} at {} (pid {}, already running)",
                service.name(),
                backend,
                endpoint,
                record.pid
            );
            return Ok(false);
        }
        fs::remove_file(&pid_file)
            .with_context(|| format!("cannot remove stale {}", pid_file.display()))?;
    }

    if TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
    {
        let flag = match service {
            Service::S3 => "--s3-port / SLUICE_XTASK_S3_PORT",
            Service::Rest => "--rest-port / SLUICE_XTASK_REST_PORT",
        };
        bail!(
            "port {port} on 127.0.0.1 is taken by a program xtask did not start; \
             pick another port for {} with {flag}",
            service.name()
        );
    }

    let (mut command, marker) = prepare()?;
    let pid = process::spawn_in_background(&mut command, &log)?;
    let record = PidRecord {
        pid,
        backend: backend.to_string(),
        endpoint: endpoint.to_string(),
        marker,
    };
    // Recorded before the health check, so `down` can stop it even if xtask is interrupted.
    record.save(&pid_file)?;

    let begin = Instant::now();
    if let Err(err) = wait_until_healthy(service, &record, &log, config.timeout, &check_health) {
        process::stop(&record, STOP_GRACE).ok();
        fs::remove_file(&pid_file).ok();
        return Err(err);
    }
    println!(
        "{:<4}  {} at {} (pid {}, started in {:.1}s; log {})",
        service.name(),
        backend,
        endpoint,
        pid,
        begin.elapsed().as_secs_f64(),
        log.display()
    );
    Ok(true)
}

fn wait_until_healthy(
    service: Service,
    record: &PidRecord,
    log: &Path,
    timeout: Duration,
    check_health: &impl Fn() -> Result<()>,
) -> Result<()> {
    let begin = Instant::now();
    loop {
        let last_error = match check_health() {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        // Only the pid is checked: the process was started by this call, and its command line
        // can read as empty for a moment right after exec.
        let problem = if !process::is_alive(record.pid) {
            format!("exited during start-up (last check: {last_error:#})")
        } else if begin.elapsed() > timeout {
            format!(
                "did not pass its health check within {}s: {last_error:#}",
                timeout.as_secs()
            )
        } else {
            thread::sleep(Duration::from_millis(250));
            continue;
        };
        print_log_tail(log);
        bail!(
            "{} ({} at {}) {problem}; full log: {}",
            service.name(),
            record.backend,
            record.endpoint,
            log.display()
        );
    }
}

fn print_log_tail(log: &Path) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    eprintln!("--- last {} lines of {} ---", tail.len(), log.display());
    for line in tail {
        eprintln!("{line}");
    }
    eprintln!("--- end of {} ---", log.display());
}

/// Stops the given services (REST catalog before S3), reporting but not failing on errors.
pub fn stop_started(layout: &Layout, services: &[Service]) {
    for service in [Service::Rest, Service::S3] {
        if services.contains(&service)
            && let Err(err) = stop_service(layout, service)
        {
            eprintln!("could not stop {}: {err:#}", service.name());
        }
    }
    if Service::ALL
        .iter()
        .all(|service| services.contains(service))
    {
        fs::remove_file(layout.env_file()).ok();
    }
}

/// Stops both services by their recorded pids; `wipe` also deletes their data.
pub fn down(layout: &Layout, wipe: bool) -> Result<()> {
    for service in [Service::Rest, Service::S3] {
        stop_service(layout, service)?;
    }
    fs::remove_file(layout.env_file()).ok();
    if wipe {
        for dir in [
            layout.s3s_fs_data(),
            layout.minio_data(),
            layout.state.join("catalog"),
        ] {
            if dir.exists() {
                fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
                println!("removed {}", dir.display());
            }
        }
    }
    Ok(())
}

fn stop_service(layout: &Layout, service: Service) -> Result<()> {
    let pid_file = layout.pid_file(service);
    let Some(record) = PidRecord::load(&pid_file)? else {
        println!("{:<4}  not running", service.name());
        return Ok(());
    };
    if process::stop(&record, STOP_GRACE)? {
        println!(
            "{:<4}  stopped {} (pid {})",
            service.name(),
            record.backend,
            record.pid
        );
    } else {
        println!(
            "{:<4}  was not running (pid {} is gone or belongs to another program)",
            service.name(),
            record.pid
        );
    }
    fs::remove_file(&pid_file).with_context(|| format!("cannot remove {}", pid_file.display()))
}

/// Prints each service's state; returns whether both are up and healthy.
pub fn status(layout: &Layout) -> Result<bool> {
    let mut all_up = true;
    for service in Service::ALL {
        let Some(record) = PidRecord::load(&layout.pid_file(service))? else {
            println!("{:<4}  down", service.name());
            all_up = false;
            continue;
        };
        if !record.is_running() {
            println!(
                "{:<4}  down (pid {} has exited; log {})",
                service.name(),
                record.pid,
                layout.log_file(service).display()
            );
            all_up = false;
            continue;
        }
        let health = port_of(&record.endpoint).and_then(|port| match service {
            Service::S3 => s3_server::check_health(S3Backend::parse(&record.backend)?, port),
            Service::Rest => rest_catalog::check_health(port),
        });
        match health {
            Ok(()) => println!(
                "{:<4}  up    {} at {} (pid {})",
                service.name(),
                record.backend,
                record.endpoint,
                record.pid
            ),
            Err(err) => {
                all_up = false;
                println!(
                    "{:<4}  running but not answering: {} at {} (pid {}): {err:#}",
                    service.name(),
                    record.backend,
                    record.endpoint,
                    record.pid
                );
            }
        }
    }
    if all_up {
        println!("environment for tests: . {}", layout.env_file().display());
    }
    Ok(all_up)
}

fn port_of(endpoint: &str) -> Result<u16> {
    endpoint
        .rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in endpoint {endpoint:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn test_env_names_the_endpoints_credentials_and_buckets() {
        let layout = Layout {
            workspace: PathBuf::from("/ws"),
            state: PathBuf::from("/ws/target/xtask"),
        };
        let config = ServicesConfig {
            s3_port: 19000,
            rest_port: 18181,
            ..ServicesConfig::default()
        };
        let env: std::collections::BTreeMap<_, _> = config.test_env(&layout).into_iter().collect();
        assert_eq!(env["SLUICE_TEST_S3_ENDPOINT"], "http://127.0.0.1:19000");
        assert_eq!(env["SLUICE_TEST_S3_ACCESS_KEY_ID"], "sluice");
        assert_eq!(env["SLUICE_TEST_S3_SECRET_ACCESS_KEY"], "sluice-secret");
        assert_eq!(env["SLUICE_TEST_S3_REGION"], "us-east-1");
        assert_eq!(env["SLUICE_TEST_S3_BUCKET"], "warehouse");
        assert_eq!(env["SLUICE_TEST_RAW_BUCKET"], "raw");
        assert_eq!(env["SLUICE_TEST_S3_SERVER"], "s3s-fs");
        assert_eq!(env["SLUICE_TEST_REST_URI"], "http://127.0.0.1:18181");
        assert_eq!(env["SLUICE_TEST_REST_WAREHOUSE"], "s3://warehouse/");
        assert_eq!(
            env["SLUICE_TEST_PYTHON"],
            "/ws/target/xtask/venv/bin/python"
        );
    }

    #[test]
    fn port_is_read_back_from_the_recorded_endpoint() {
        assert_eq!(port_of("http://127.0.0.1:9000").unwrap(), 9000);
        assert_eq!(port_of("http://127.0.0.1:8181/").unwrap(), 8181);
        assert!(port_of("http://127.0.0.1").is_err());
    }
}

//! Where a run may stop: when asked to (Ctrl-C, SIGTERM), and, for crash tests, at named
//! pause points.

use sluice_txn::StepError;

use crate::error::Error;
use crate::options::RunOptions;
use crate::pipeline::step_error;

/// Crash testing, with the `test-hooks` feature only: with `SLUICE_PAUSE_AT=<point>` in the
/// environment, a run announces on stderr that it reached `<point>` and waits there
/// (`SLUICE_PAUSE_SECS`, an hour by default, or until it is asked to stop), so that a test can
/// kill the process at a known place. Points: `write` (data files written, branch not
/// committed), `quarantine` (the branch committed, the rows set aside not yet), `after-write`,
/// `audit`, `publish` (before the publish commit), `after-publish`
/// (published, transaction not yet committed). `RunOptions::pause_at` does the same for a run
/// in this process.
#[cfg(feature = "test-hooks")]
pub(crate) async fn pause_point(options: &RunOptions, point: &str) {
    use std::time::Duration;
    if options.pause_at.as_deref() == Some(point)
        || std::env::var("SLUICE_PAUSE_AT").is_ok_and(|p| p == point)
    {
        let secs = std::env::var("SLUICE_PAUSE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3600);
        eprintln!("sluice: paused at {point}");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            _ = options.cancel.stopped() => {}
        }
    }
}

/// Crash testing, with the `test-hooks` feature only: a pause point outside a run's own code
/// (a commit action), reached when `SLUICE_PAUSE_AT=<point>`. Points: `between-tables` (a job
/// published table by table has published one table).
#[cfg(feature = "test-hooks")]
pub(crate) async fn pause_env(point: &str) {
    if std::env::var("SLUICE_PAUSE_AT").is_ok_and(|p| p == point) {
        let secs = std::env::var("SLUICE_PAUSE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3600);
        eprintln!("sluice: paused at {point}");
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    }
}

/// Without the `test-hooks` feature nothing pauses.
#[cfg(not(feature = "test-hooks"))]
pub(crate) async fn pause_env(_point: &str) {}

/// Without the `test-hooks` feature a run never pauses.
#[cfg(not(feature = "test-hooks"))]
pub(crate) async fn pause_point(_options: &RunOptions, _point: &str) {}

/// A safe point between steps: the run stops here if it was asked to.
pub(crate) fn check_cancelled(options: &RunOptions) -> std::result::Result<(), StepError> {
    if options.cancel.is_stopped() {
        Err(step_error(Error::Interrupted))
    } else {
        Ok(())
    }
}

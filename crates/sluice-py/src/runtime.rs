//! One tokio runtime per process, and futures run to completion with the GIL released while
//! Ctrl-C still reaches Python.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;

/// How often a waiting call looks for a signal (Ctrl-C) Python has to handle.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start sluice's I/O threads: {e}"
            ))
        })?;
    Ok(RUNTIME.get_or_init(|| built))
}

/// What to do when Ctrl-C arrives while the work runs.
pub(crate) enum OnInterrupt<'a> {
    /// Drop the work (nothing it did needs undoing) and raise at once.
    Abandon,
    /// Call this to ask the work to stop at its next safe point, wait for it to finish (it
    /// undoes what it started), then raise.
    Stop(&'a (dyn Fn() + Sync)),
}

/// Runs the future `work` makes on the runtime, with the GIL released; every tenth of a second
/// it takes the GIL back for a moment so that Python can handle its signals. A
/// `KeyboardInterrupt` (or any error a signal handler raises) is returned once the work has
/// been abandoned or has finished, as `on_interrupt` says.
///
/// The future is made and polled on this thread, inside the runtime's `block_on`, so it need
/// not be `Send` (the pipeline's futures hold references across awaits).
pub(crate) fn block_on<F, T>(
    py: Python<'_>,
    work: impl FnOnce() -> F + Send,
    on_interrupt: OnInterrupt<'_>,
) -> PyResult<T>
where
    F: Future<Output = T>,
    T: Send,
{
    let runtime = runtime()?;
    py.detach(move || {
        runtime.block_on(async move {
            let future = work();
            tokio::pin!(future);
            let mut interrupted: Option<PyErr> = None;
            loop {
                tokio::select! {
                    value = &mut future => {
                        return match interrupted {
                            Some(error) => Err(error),
                            None => Ok(value),
                        };
                    }
                    _ = tokio::time::sleep(SIGNAL_POLL), if interrupted.is_none() => {
                        if let Err(error) = Python::attach(|py| py.check_signals()) {
                            match on_interrupt {
                                OnInterrupt::Abandon => return Err(error),
                                OnInterrupt::Stop(stop) => {
                                    stop();
                                    interrupted = Some(error);
                                }
                            }
                        }
                    }
                }
            }
        })
    })
}

//! Ctrl-C and SIGTERM while a command runs.

use std::sync::Arc;

use sluice_wap::StopSignal;

/// What Ctrl-C (SIGINT) and SIGTERM do while a command runs. With a loop to stop (`watch`,
/// `backfill`), the first signal ends the loop after the current run; the next one stops the
/// run itself at its next safe point (it rolls back, unless its publish is already under way);
/// one more quits at once, leaving `sluice recover` to clean up.
pub struct Signals {
    received: Arc<std::sync::atomic::AtomicI32>,
    cancel_run: StopSignal,
}

impl Signals {
    pub fn listen(stop_loop: Option<StopSignal>, cancel_run: StopSignal) -> Signals {
        use std::sync::atomic::Ordering;
        let received = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let seen = received.clone();
        let cancel = cancel_run.clone();
        tokio::spawn(async move {
            let cancel_run = cancel;
            use tokio::signal::unix::{SignalKind, signal};
            let (mut int, mut term) = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for Ctrl-C and SIGTERM");
                    return;
                }
            };
            let mut stop_loop = stop_loop;
            loop {
                let number = tokio::select! {
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                };
                seen.store(number, Ordering::SeqCst);
                if let Some(stop) = stop_loop.take() {
                    eprintln!(
                        "stopping after the current run (press Ctrl-C again to stop the run itself)"
                    );
                    stop.stop();
                } else if !cancel_run.is_stopped() {
                    eprintln!(
                        "stopping: the run rolls back at its next safe point, or finishes a publish already under way (press Ctrl-C again to quit at once)"
                    );
                    cancel_run.stop();
                } else {
                    eprintln!(
                        "quitting at once; run `sluice recover` to roll back what this run left open"
                    );
                    std::process::exit(128 + number);
                }
            }
        });
        Signals {
            received,
            cancel_run,
        }
    }

    /// When a signal stopped a run: 130 after Ctrl-C, 143 after SIGTERM, as shells report a
    /// process those signals ended. A loop that merely stopped between runs ends as usual.
    pub fn exit_code(&self) -> Option<u8> {
        if !self.cancel_run.is_stopped() {
            return None;
        }
        match self.received.load(std::sync::atomic::Ordering::SeqCst) {
            0 => None,
            number => u8::try_from(128 + number).ok(),
        }
    }
}

//! The progress bar of a run on a terminal: files written, rows, rate, time left.

use std::time::Instant;

use sluice_wap::ProgressSink;

/// A [`ProgressSink`] drawing an `indicatif` bar on standard error.
pub struct Progress {
    bar: indicatif::ProgressBar,
    rows: std::sync::atomic::AtomicU64,
    started: Instant,
}

impl Progress {
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} writing [{bar:30}] {pos}/{len} files  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar,
            rows: Default::default(),
            started: Instant::now(),
        }
    }
}

impl ProgressSink for Progress {
    fn started(&self, files: usize, _bytes: u64) {
        self.bar.set_length(files as u64);
    }
    fn file_done(&self, _location: &str, rows: u64, _bytes: u64) {
        let total = self
            .rows
            .fetch_add(rows, std::sync::atomic::Ordering::Relaxed)
            + rows;
        let rate = total as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.bar
            .set_message(format!("{total} rows, {:.0} rows/s", rate));
        self.bar.inc(1);
    }
    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}

//! The progress display: one bar on a terminal (hidden when stderr is not one).

use indicatif::{ProgressBar, ProgressStyle};
use spinlift::{EntryReport, Failure, Observer};
use std::sync::atomic::{AtomicU64, Ordering};

/// Shows bytes sent, files done and failures.
pub(crate) struct Progress {
    bar: ProgressBar,
    total_files: u64,
    done: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    concurrency: AtomicU64,
}

impl Progress {
    pub(crate) fn new(total_files: u64, total_bytes: u64, concurrency: usize, quiet: bool) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total_bytes) };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let p = Progress {
            bar,
            total_files,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            concurrency: AtomicU64::new(concurrency as u64),
        };
        p.update_message();
        p
    }

    fn update_message(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let retries = self.retries.load(Ordering::Relaxed);
        let concurrency = self.concurrency.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "files {done}/{} failed {failed} retries {retries} concurrency {concurrency}",
            self.total_files
        ));
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn bytes_sent(&self, n: u64) {
        self.bar.inc(n);
    }

    fn retrying(&self, _id: &str, _failure: &Failure) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.update_message();
    }

    fn concurrency(&self, limit: usize) {
        self.concurrency.store(limit as u64, Ordering::Relaxed);
        self.update_message();
    }

    fn finished(&self, entry: &EntryReport) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if entry.status == "failed" {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.update_message();
    }
}

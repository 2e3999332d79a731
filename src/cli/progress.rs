//! The progress display: one bar on a terminal; when stderr is not one (a log, a CI job), a plain line
//! every few seconds instead.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use spinlift::{EntryReport, Failure, Observer};

/// Shows bytes sent, files done and failures.
pub(crate) struct Progress {
    bar: ProgressBar,
    total_files: u64,
    done: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    concurrency: AtomicU64,
    total_bytes: u64,
    sent: AtomicU64,
    started: Instant,
    /// Plain lines instead of the bar: when the last one was printed, and how often.
    lines: Option<(Mutex<Instant>, Duration)>,
}

impl Progress {
    /// `interval`: seconds between plain progress lines when stderr is not a terminal.
    pub(crate) fn new(
        total_files: u64,
        total_bytes: u64,
        concurrency: usize,
        quiet: bool,
        interval: Duration,
    ) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if quiet || !terminal { ProgressBar::hidden() } else { ProgressBar::new(total_bytes) };
        let started = Instant::now();
        let lines = (!quiet && !terminal).then(|| (Mutex::new(started), interval));
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
            total_bytes,
            sent: AtomicU64::new(0),
            started,
            lines,
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

    /// A plain line, if one is due.
    fn maybe_line(&self) {
        let Some((last, interval)) = &self.lines else { return };
        let now = Instant::now();
        {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(*last) < *interval {
                return;
            }
            *last = now;
        }
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let sent = self.sent.load(Ordering::Relaxed);
        let done = self.done.load(Ordering::Relaxed);
        eprintln!(
            "progress: {done}/{} files, {:.1}/{:.1} MiB sent, {:.1} files/s, {:.1} MB/s, {} failed, {} retries, concurrency {}",
            self.total_files,
            sent as f64 / 1048576.0,
            self.total_bytes as f64 / 1048576.0,
            done as f64 / secs,
            sent as f64 / 1e6 / secs,
            self.failed.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.concurrency.load(Ordering::Relaxed),
        );
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn bytes_sent(&self, n: u64) {
        self.bar.inc(n);
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.maybe_line();
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
        self.maybe_line();
    }
}

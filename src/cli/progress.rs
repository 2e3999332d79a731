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
    in_flight: AtomicU64,
    worked: AtomicU64,
    total_bytes: u64,
    sent: AtomicU64,
    started: Instant,
    /// Plain lines instead of the bar: when the last one was printed and the bytes sent by then, and
    /// how often.
    lines: Option<(Mutex<(Instant, u64)>, Duration)>,
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
        let lines = (!quiet && !terminal).then(|| (Mutex::new((started, 0)), interval));
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
            in_flight: AtomicU64::new(0),
            worked: AtomicU64::new(0),
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
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "files {done}/{} in flight {in_flight} failed {failed} retries {retries} concurrency {concurrency}",
            self.total_files
        ));
    }

    /// A plain line, if one is due: totals, the rate since the last line, and the time left at the
    /// average rate so far.
    fn maybe_line(&self) {
        let Some((last, interval)) = &self.lines else { return };
        let now = Instant::now();
        let sent = self.sent.load(Ordering::Relaxed);
        let (since, sent_before) = {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(last.0) < *interval {
                return;
            }
            std::mem::replace(&mut *last, (now, sent))
        };
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let window = now.duration_since(since).as_secs_f64().max(1e-3);
        let done = self.done.load(Ordering::Relaxed);
        let left_bytes = self.total_bytes.saturating_sub(sent);
        let left_files = self.total_files.saturating_sub(done);
        // The larger of what the bytes and what the files still need at the average rates so far.
        let eta = (left_bytes as f64 / (sent as f64 / secs).max(1.0))
            .max(left_files as f64 / (done as f64 / secs).max(1e-3));
        let eta = if left_files == 0 { "0 s".to_owned() } else { human_secs(eta) };
        eprintln!(
            "progress: {done}/{} files, {:.1}/{:.1} MiB sent, {:.1} files/s, {:.1} MB/s now, eta {eta}, \
             {} in flight, {} failed, {} retries, concurrency {}",
            self.total_files,
            sent as f64 / 1048576.0,
            self.total_bytes as f64 / 1048576.0,
            done as f64 / secs,
            sent.saturating_sub(sent_before) as f64 / 1e6 / window,
            self.in_flight.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.concurrency.load(Ordering::Relaxed),
        );
    }

    /// Entries worked on in this run (not finished in an earlier one), and file bytes sent (retries
    /// included).
    pub(crate) fn work_done(&self) -> (u64, u64) {
        (self.worked.load(Ordering::Relaxed), self.sent.load(Ordering::Relaxed))
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

    fn started(&self, _id: &str) {
        self.worked.fetch_add(1, Ordering::Relaxed);
    }

    fn in_flight(&self, assets: usize) {
        self.in_flight.store(assets as u64, Ordering::Relaxed);
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

/// `3 h 05 min`, `4 min 10 s`, `12 s`.
fn human_secs(secs: f64) -> String {
    if !secs.is_finite() {
        return "unknown".to_owned();
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(super::human_secs(12.4), "12 s");
        assert_eq!(super::human_secs(250.0), "4 min 10 s");
        assert_eq!(super::human_secs(11_100.0), "3 h 05 min");
        assert_eq!(super::human_secs(f64::INFINITY), "unknown");
    }
}

//! The batch's shared brakes: adaptive concurrency (core's [`Aimd`]) over the requests in flight, the
//! retry budget (core's [`RetryBudget`]), and the upload rate observed so far. Every request, first
//! try or retry, takes a slot here; assets that are backing off hold none.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use spinlift_core::{Aimd, Failure, RetryBudget, UnixMillis, is_throttle};
use tokio::sync::Notify;

#[derive(Debug)]
struct State {
    aimd: Aimd,
    budget: RetryBudget,
    /// Bytes per second of the uploads measured so far (exponentially weighted), if any.
    upload_rate: Option<f64>,
}

/// Shared by every asset of a run.
#[derive(Debug)]
pub(crate) struct Throttle {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    notify: Notify,
}

/// A slot for one request in flight; released on drop.
#[derive(Debug)]
pub(crate) struct Slot<'a>(&'a Throttle);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.notify.notify_waiters();
    }
}

/// Uploads smaller than this say little about the rate (latency dominates them).
const RATE_SAMPLE_MIN_BYTES: u64 = 1024 * 1024;

impl Throttle {
    pub(crate) fn new(max_concurrency: usize) -> Self {
        Throttle {
            state: Mutex::new(State {
                aimd: Aimd::new(max_concurrency),
                budget: RetryBudget::default(),
                upload_rate: None,
            }),
            in_flight: AtomicUsize::new(0),
            notify: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// The current concurrency limit.
    pub(crate) fn limit(&self) -> usize {
        self.with(|s| s.aimd.limit())
    }

    /// Waits for a slot under the current limit.
    pub(crate) async fn slot(&self) -> Slot<'_> {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let limit = self.limit();
            let taken = self
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
                .is_ok();
            if taken {
                return Slot(self);
            }
            notified.await;
        }
    }

    /// Tells the brakes how a request ended. Returns the new limit when it changed.
    pub(crate) fn outcome(&self, failure: Option<&Failure>, now: UnixMillis) -> Option<usize> {
        let (before, after) = self.with(|s| {
            let before = s.aimd.limit();
            match failure {
                None => {
                    s.aimd.on_success();
                    s.budget.on_success();
                }
                Some(f) if is_throttle(f) => s.aimd.on_throttled(now),
                Some(_) => {}
            }
            (before, s.aimd.limit())
        });
        if after > before {
            self.notify.notify_waiters();
        }
        (after != before).then_some(after)
    }

    /// Whether the retry budget pays for one more retry.
    pub(crate) fn try_retry(&self, after_timeout: bool) -> bool {
        self.with(|s| s.budget.try_retry(after_timeout))
    }

    /// Records an upload of `bytes` that took `millis`.
    pub(crate) fn upload_took(&self, bytes: u64, millis: i64) {
        if bytes < RATE_SAMPLE_MIN_BYTES || millis <= 0 {
            return;
        }
        let rate = bytes as f64 * 1000.0 / millis as f64;
        self.with(|s| s.upload_rate = Some(s.upload_rate.map_or(rate, |r| 0.8 * r + 0.2 * rate)));
    }

    /// The upload rate seen so far (bytes per second of one upload), once an upload large enough to
    /// say was measured.
    pub(crate) fn upload_rate(&self) -> Option<f64> {
        self.with(|s| s.upload_rate)
    }

    /// How long an upload of `bytes` is expected to take at the rate seen so far, with a safety factor of
    /// two, in milliseconds; `None` before any rate was measured.
    pub(crate) fn expected_upload_ms(&self, bytes: u64) -> Option<i64> {
        let rate = self.with(|s| s.upload_rate)?;
        Some((bytes as f64 / rate * 1000.0 * 2.0) as i64 + 1_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinlift_core::{FailureKind, Step};

    #[tokio::test(start_paused = true)]
    async fn slots_follow_the_limit() {
        let t = Throttle::new(2);
        let a = t.slot().await;
        let _b = t.slot().await;
        // Nothing releases a slot here, so a third one cannot come.
        assert!(tokio::time::timeout(std::time::Duration::from_secs(1), t.slot()).await.is_err());
        drop(a);
        let _c = t.slot().await;
    }

    #[test]
    fn throttling_cuts_the_limit_and_success_refills() {
        let t = Throttle::new(8);
        let now = UnixMillis(0);
        let slow = Failure::new(
            Step::Upload,
            FailureKind::Status { status: 503, code: Some("SlowDown".into()) },
            "",
        );
        assert_eq!(t.outcome(Some(&slow), now), Some(4));
        let other = Failure::new(Step::Upload, FailureKind::Network, "");
        assert_eq!(t.outcome(Some(&other), now.plus_secs(5)), None);
        for _ in 0..100 {
            t.outcome(None, now);
        }
        assert_eq!(t.limit(), 8);
    }

    #[test]
    fn the_observed_rate_predicts_upload_time() {
        let t = Throttle::new(1);
        assert_eq!(t.expected_upload_ms(10 << 20), None);
        t.upload_took(10 << 20, 1_000);
        assert_eq!(t.expected_upload_ms(10 << 20), Some(3_000));
        t.upload_took(100, 1);
        assert_eq!(t.expected_upload_ms(10 << 20), Some(3_000), "small uploads are not samples");
    }
}

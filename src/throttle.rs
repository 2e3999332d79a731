//! The batch's shared brakes: adaptive concurrency (core's [`Aimd`]) over the requests in flight, the
//! retry budget (core's [`RetryBudget`]), and the upload rate observed so far. Every request, first
//! try or retry, takes a slot here; assets that are backing off hold none.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use spinlift_core::{Aimd, Failure, RetryBudget, UnixMillis, is_throttle};
use tokio::sync::{Semaphore, SemaphorePermit};

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
    /// One permit per request slot under the current limit. Waiters queue in order and each released
    /// slot wakes one of them (a broadcast woke every waiting entry per release: with two entries per
    /// slot, ~50 wasted polls per small file).
    permits: Semaphore,
    /// Slots the limit lost while they were taken: withdrawn as they come back.
    owed: AtomicUsize,
}

/// A slot for one request in flight; released on drop.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    throttle: &'a Throttle,
    permit: Option<SemaphorePermit<'a>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else { return };
        let owed = self.throttle.owed.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if owed.is_ok() {
            permit.forget(); // the limit went down while this slot was taken
        }
    }
}

/// Uploads smaller than this say little about the rate (latency dominates them).
const RATE_SAMPLE_MIN_BYTES: u64 = 1024 * 1024;

impl Throttle {
    pub(crate) fn new(max_concurrency: usize) -> Self {
        let aimd = Aimd::new(max_concurrency);
        Throttle {
            permits: Semaphore::new(aimd.limit()),
            state: Mutex::new(State { aimd, budget: RetryBudget::default(), upload_rate: None }),
            owed: AtomicUsize::new(0),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// The current concurrency limit.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.with(|s| s.aimd.limit())
    }

    /// Waits for a slot under the current limit; slots go to waiters in the order they asked.
    pub(crate) async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed, so the acquire cannot fail.
        let permit = self.permits.acquire().await.ok();
        Slot { throttle: self, permit }
    }

    /// Tells the brakes how a request ended. Returns the new limit when it changed.
    pub(crate) fn outcome(&self, failure: Option<&Failure>, now: UnixMillis) -> Option<usize> {
        // Under the state's lock, so that two changes of the limit adjust the permits in turn.
        self.with(|s| {
            let before = s.aimd.limit();
            match failure {
                None => {
                    s.aimd.on_success();
                    s.budget.on_success();
                }
                Some(f) if is_throttle(f) => s.aimd.on_throttled(now),
                Some(_) => {}
            }
            let after = s.aimd.limit();
            if after < before {
                let lost = before - after;
                let free = self.permits.forget_permits(lost);
                self.owed.fetch_add(lost - free, Ordering::AcqRel);
            } else if after > before {
                let gained = after - before;
                let repaid = self
                    .owed
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n - n.min(gained)))
                    .map_or(0, |n| n.min(gained));
                self.permits.add_permits(gained - repaid);
            }
            (after != before).then_some(after)
        })
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

    /// S3's answer to a client going too fast.
    fn slow_down() -> Failure {
        Failure::new(Step::Upload, FailureKind::Status { status: 503, code: Some("SlowDown".into()) }, "")
    }

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

    #[tokio::test(start_paused = true)]
    async fn a_cut_limit_holds_back_slots_in_use_until_they_come_back() {
        let t = Throttle::new(4);
        let slow = slow_down();
        let held: Vec<_> = futures::future::join_all((0..4).map(|_| t.slot())).await;
        assert_eq!(t.outcome(Some(&slow), UnixMillis(0)), Some(2));
        drop(held);
        // Four came back, but the limit is two: a third slot waits.
        let (_a, _b) = (t.slot().await, t.slot().await);
        let second = std::time::Duration::from_secs(1);
        assert!(tokio::time::timeout(second, t.slot()).await.is_err());
        // Success raises the limit again, and the waiting slot comes.
        let mut limit = 2;
        while limit < 3 {
            limit = t.outcome(None, UnixMillis(60_000)).unwrap_or(limit);
        }
        assert!(tokio::time::timeout(second, t.slot()).await.is_ok());
    }

    /// The limit cut while every slot is taken, and raised again before any comes back: the slots owed
    /// to the cut are forgiven by the rise, neither kept back nor handed out twice.
    #[tokio::test(start_paused = true)]
    async fn a_limit_raised_while_slots_are_owed_ends_with_exactly_the_new_limit() {
        let t = Throttle::new(4);
        let slow = slow_down();
        let second = std::time::Duration::from_secs(1);
        let free = |t: &Throttle| t.permits.available_permits();

        let held: Vec<_> = futures::future::join_all((0..4).map(|_| t.slot())).await;
        assert_eq!(t.outcome(Some(&slow), UnixMillis(0)), Some(2), "two slots owed, none free");
        let mut limit = 2;
        while limit < 3 {
            limit = t.outcome(None, UnixMillis(60_000)).unwrap_or(limit);
        }
        drop(held);
        // Of the four back, one was still owed: three slots, and a fourth waits.
        assert_eq!(free(&t), 3);
        let held: Vec<_> = futures::future::join_all((0..3).map(|_| t.slot())).await;
        assert!(tokio::time::timeout(second, t.slot()).await.is_err());

        while limit < 4 {
            limit = t.outcome(None, UnixMillis(120_000)).unwrap_or(limit);
        }
        assert_eq!(free(&t), 1, "nothing owed: the rise is a slot at once");
        drop(held);
        assert_eq!(free(&t), 4);
        let _all: Vec<_> = futures::future::join_all((0..4).map(|_| t.slot())).await;
        assert!(tokio::time::timeout(second, t.slot()).await.is_err(), "never more than the limit");
    }

    #[test]
    fn throttling_cuts_the_limit_and_success_refills() {
        let t = Throttle::new(8);
        let now = UnixMillis(0);
        let slow = slow_down();
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

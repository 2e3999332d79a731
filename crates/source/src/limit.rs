//! `--source-rps`: one request-rate limit over every request a [`Sources`](crate::Sources) makes.
//!
//! A `governor` GCRA quota of `rps` requests per second with a burst of one: requests are spaced at
//! least `1/rps` apart, so any one-second window holds at most `rps + 1` of them. The limiter reads
//! tokio's clock and waits on tokio's timer (governor's own `until_ready` uses another clock and timer,
//! which paused-time tests cannot drive), and waiters take turns in arrival order on a fair tokio
//! mutex, so a crowd of callers does not race for each permit.

use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::Mutex;

/// A point on tokio's clock, as `governor` wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, other: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

/// Tokio's clock: real monotonic time, or a test's paused time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// Requests per second, shared by every clone of the [`Sources`](crate::Sources) that owns it.
pub(crate) struct RequestLimit {
    gcra: Gcra,
    line: Mutex<()>,
    rps: NonZeroU32,
}

impl std::fmt::Debug for RequestLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestLimit({} requests/s)", self.rps)
    }
}

impl RequestLimit {
    pub(crate) fn new(rps: NonZeroU32) -> RequestLimit {
        let quota = Quota::per_second(rps).allow_burst(NonZeroU32::MIN);
        RequestLimit { gcra: RateLimiter::direct_with_clock(quota, TokioClock), line: Mutex::new(()), rps }
    }

    /// Waits for the permit to send one request.
    pub(crate) async fn acquire(&self) {
        let _turn = self.line.lock().await;
        loop {
            match self.gcra.check() {
                Ok(()) => return,
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn permits_are_spaced_by_one_over_the_rate() {
        let limit = RequestLimit::new(NonZeroU32::new(4).unwrap());
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..9 {
            limit.acquire().await;
            at.push(start.elapsed());
        }
        // The first at once, then one each 250 ms: 2 s for 9.
        assert_eq!(at[0], Duration::ZERO);
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(249), "{at:?}");
        }
        assert!(at[8] >= Duration::from_millis(1999) && at[8] <= Duration::from_millis(2010), "{at:?}");
        // Any one-second window holds at most rps + 1 permits.
        for (i, first) in at.iter().enumerate() {
            let within = at[i..].iter().filter(|t| **t - *first < Duration::from_secs(1)).count();
            assert!(within <= 5, "{at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_rate() {
        let limit = std::sync::Arc::new(RequestLimit::new(NonZeroU32::new(10).unwrap()));
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..21)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    limit.acquire().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut at = Vec::new();
        for task in tasks {
            at.push(task.await.unwrap());
        }
        at.sort();
        assert!(at[20] >= Duration::from_millis(1999), "21 permits at 10/s take 2 s: {at:?}");
    }
}

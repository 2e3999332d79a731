//! Rate limits — requests per second and bytes per second — as `governor` GCRA quotas read on
//! tokio's clock.
//!
//! Two choices differ from `governor`'s ready-made `until_ready`:
//!
//! - **Tokio's clock, tokio's timer.** `until_ready` sleeps on `futures-timer` (a thread of its own)
//!   and reads a `quanta`/`std` clock, neither of which follows tokio's paused time. Here the limiter
//!   reads [`tokio::time::Instant`] and waits with [`tokio::time::sleep_until`]: the same monotonic
//!   time in production, and exact, instant tests with `#[tokio::test(start_paused = true)]`.
//! - **First come, first served.** Waiters line up on a fair (FIFO) `tokio::sync::Mutex`; only the
//!   one at the head sleeps on the limiter. Sixteen uploads waiting for bandwidth then take turns
//!   chunk by chunk instead of racing for each refill (no thundering herd, no starved upload).
//!   Dropping a waiting future leaves the line.

use std::num::{NonZeroU32, NonZeroU64};
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{InsufficientCapacity, Quota, RateLimiter};
use tokio::sync::Mutex;

/// The most cells per second a byte quota is given: one cell then stands for several bytes, so that
/// the time per cell is at least 1 µs and rounding it to whole nanoseconds costs at most 0.1 %.
const MAX_CELLS_PER_SECOND: u64 = 1_000_000;

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

/// Tokio's clock: real monotonic time, or the paused time of a test runtime.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// A limit of some amount (requests, bytes) per second, shared by everyone who holds it.
pub(crate) struct RateLimit {
    gcra: Gcra,
    /// How much of the amount one cell stands for (1 for requests).
    unit: u64,
    /// The most cells the quota holds at once; larger takes are split.
    burst_cells: NonZeroU32,
    /// The line of waiters (a tokio `Mutex` is fair: first come, first served).
    line: Mutex<()>,
    /// For Debug: the configured rate and burst, in the amount's own unit.
    rate: u64,
    burst: u64,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("per_second", &self.rate).field("burst", &self.burst).finish()
    }
}

impl RateLimit {
    /// `rps` requests per second with a burst of two: requests are spaced `1/rps` apart on average
    /// (the interval rounded *up* to whole nanoseconds), and one request's worth of slack lets a caller
    /// that woke late (tokio's timer ticks in whole milliseconds; a busy machine wakes later still)
    /// catch up instead of losing that time for good — with a burst of one, 30/s ran at 28.9/s under
    /// load. The cost: a 1-second window — sliding, or fixed as a server may count — can hold `rps + 1`
    /// requests (the slack spent at its start), never more; a burst of `rps` would allow twice `rps`.
    pub(crate) fn requests_per_second(rps: NonZeroU32) -> RateLimit {
        let period = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(rps.get())));
        RateLimit::with(u64::from(rps.get()), 1, period, NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN))
    }

    /// `bytes_per_second`, letting at most `burst` bytes go at line speed after a pause (at least one
    /// byte). The caller picks `burst` no smaller than the largest amount it takes at once, or such a
    /// take is split (see [`acquire`](Self::acquire)).
    pub(crate) fn bytes_per_second(bytes_per_second: NonZeroU64, burst: NonZeroU64) -> RateLimit {
        let rate = bytes_per_second.get();
        let unit = rate.div_ceil(MAX_CELLS_PER_SECOND).max(1);
        // Rounded up: the limit errs on the slow side, by less than 0.1 %.
        let period_nanos = (1_000_000_000u128 * u128::from(unit)).div_ceil(u128::from(rate));
        let period = Duration::from_nanos(u64::try_from(period_nanos).unwrap_or(u64::MAX));
        let cells = u32::try_from(burst.get().div_ceil(unit)).unwrap_or(u32::MAX);
        RateLimit::with(rate, unit, period, NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN))
    }

    fn with(rate: u64, unit: u64, period: Duration, burst_cells: NonZeroU32) -> RateLimit {
        // `with_period` is None only for a zero period, which the callers never compute.
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst_cells);
        RateLimit {
            gcra: RateLimiter::direct_with_clock(quota, TokioClock),
            unit,
            burst_cells,
            line: Mutex::new(()),
            rate,
            burst: u64::from(burst_cells.get()).saturating_mul(unit),
        }
    }

    /// Waits until `amount` (requests, bytes) may go, and takes it. Zero goes at once. An amount larger
    /// than the burst is taken in burst-sized parts, each waiting its turn.
    pub(crate) async fn acquire(&self, amount: u64) {
        if amount == 0 {
            return;
        }
        let _turn = self.line.lock().await;
        let mut cells = amount.div_ceil(self.unit);
        while cells > 0 {
            let mut take =
                NonZeroU32::new(u32::try_from(cells.min(u64::from(self.burst_cells.get()))).unwrap_or(1))
                    .unwrap_or(NonZeroU32::MIN);
            loop {
                match self.gcra.check_n(take) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => tokio::time::sleep_until(not_until.earliest_possible().0).await,
                    // Not reached (takes are at most the burst); if it were, take what fits.
                    Err(InsufficientCapacity(fits)) => {
                        take = NonZeroU32::new(fits.min(take.get() - 1)).unwrap_or(NonZeroU32::MIN);
                    }
                }
            }
            cells -= u64::from(take.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;

    fn nz32(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn nz64(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    /// Paused time is exact: each wait ends at its deadline, rounded up to tokio's 1 ms tick.
    fn assert_between(elapsed: Duration, low: Duration, high: Duration) {
        assert!(elapsed >= low && elapsed <= high, "{elapsed:?} not in {low:?}..={high:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_one_interval_apart_from_the_first() {
        let limit = RateLimit::requests_per_second(nz32(30));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..61 {
            limit.acquire(1).await;
            times.push(Instant::now() - start);
        }
        assert_eq!(times[..2], [Duration::ZERO; 2], "the first two requests go at once (the slack)");
        // 59 intervals of 1/30 s after the slack: just under 2 s, caught up despite the 1 ms tick.
        assert_between(times[60], Duration::from_millis(1966), Duration::from_millis(1990));
        // No 1-second window, fixed or sliding, holds more than 31.
        for (i, &at) in times.iter().enumerate() {
            let within = times[i..].iter().filter(|&&t| t < at + Duration::from_secs(1)).count();
            assert!(within <= 31, "{within} requests in the second from {at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_rate_and_are_served_in_arrival_order() {
        let limit = Arc::new(RateLimit::requests_per_second(nz32(10)));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..4 {
            let (limit, order) = (limit.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    limit.acquire(1).await;
                    order.lock().unwrap().push(task);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // 20 requests at 10/s: two at once (the slack), then 18 intervals of 100 ms.
        assert_between(Instant::now() - start, Duration::from_millis(1800), Duration::from_millis(1820));
        // Fair: task 0 takes its first three (two of them the slack) before the others are in line;
        // from then on they take turns, every task getting its next request before any gets the one
        // after.
        let order = order.lock().unwrap().clone();
        assert_eq!(order[..3], [0, 0, 0], "{order:?}");
        for round in order[2..14].chunks_exact(4) {
            let mut round = round.to_vec();
            round.sort_unstable();
            assert_eq!(round, [0, 1, 2, 3], "{order:?}");
        }
        // Task 0 is done; the other three keep taking turns.
        for round in order[14..].chunks_exact(3) {
            let mut round = round.to_vec();
            round.sort_unstable();
            assert_eq!(round, [1, 2, 3], "{order:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_go_at_the_rate_after_one_burst() {
        // 2 MiB in 256 KiB chunks at 1 MiB/s with a burst of one chunk: the first chunk at once, the
        // other seven 250 ms apart.
        let limit = RateLimit::bytes_per_second(nz64(MIB), nz64(256 * KIB));
        let start = Instant::now();
        for _ in 0..8 {
            limit.acquire(256 * KIB).await;
        }
        assert_between(Instant::now() - start, Duration::from_millis(1750), Duration::from_millis(1760));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_streams_share_the_bandwidth_and_take_turns() {
        let limit = Arc::new(RateLimit::bytes_per_second(nz64(MIB), nz64(256 * KIB)));
        let start = Instant::now();
        let finish = |limit: Arc<RateLimit>| async move {
            for _ in 0..4 {
                limit.acquire(256 * KIB).await;
            }
            Instant::now()
        };
        let (a, b) = tokio::join!(tokio::spawn(finish(limit.clone())), tokio::spawn(finish(limit)));
        let (a, b) = (a.unwrap() - start, b.unwrap() - start);
        // Together 2 MiB at 1 MiB/s. The first takes two chunks before the second is in line, then they
        // take turns: the first finishes two chunks before the end, not after 1 MiB of 2.
        assert_between(a.max(b), Duration::from_millis(1750), Duration::from_millis(1760));
        assert_between(a.min(b), Duration::from_millis(1250), Duration::from_millis(1260));
    }

    #[tokio::test(start_paused = true)]
    async fn a_take_larger_than_the_burst_is_split_not_refused() {
        let limit = RateLimit::bytes_per_second(nz64(100 * KIB), nz64(10 * KIB));
        let start = Instant::now();
        limit.acquire(100 * KIB).await;
        // 10 KiB at once, then 90 KiB at 100 KiB/s.
        assert_between(Instant::now() - start, Duration::from_millis(900), Duration::from_millis(910));
        limit.acquire(0).await;
        assert_between(Instant::now() - start, Duration::from_millis(900), Duration::from_millis(910));
    }

    #[tokio::test(start_paused = true)]
    async fn rates_beyond_a_million_per_second_stay_exact() {
        // 3 GB/s is more cells than a u32 holds and less than 1 ns per byte: cells of several bytes.
        let rate = 3_000_000_000;
        let limit = RateLimit::bytes_per_second(nz64(rate), nz64(rate / 10));
        assert_eq!(limit.unit, 3000);
        let start = Instant::now();
        for _ in 0..31 {
            limit.acquire(rate / 10).await;
        }
        // 3.1 GB: the burst of 0.3 GB at once, the rest at 3 GB/s.
        assert_between(Instant::now() - start, Duration::from_millis(3000), Duration::from_millis(3031));
    }

    #[test]
    fn the_clock_measures_saturating() {
        let now = TokioClock.now();
        let later = now + Nanos::from(Duration::from_millis(5));
        assert_eq!(Duration::from(later.duration_since(now)), Duration::from_millis(5));
        assert_eq!(Duration::from(now.duration_since(later)), Duration::ZERO);
        assert_eq!(later.saturating_sub(Duration::from_millis(5).into()), now);
        let debug = format!("{:?}", RateLimit::bytes_per_second(nz64(MIB), nz64(256 * KIB)));
        assert!(debug.contains("1048576") && debug.contains("262144"), "{debug}");
    }
}

//! Adaptive concurrency: how many requests a batch may have in flight, cut when the servers say "slow
//! down" (429, 503, S3 `SlowDown`) and grown back slowly on success — additive increase, multiplicative
//! decrease, as TCP does.

use crate::time::UnixMillis;

/// The current concurrency limit. Plain value: the engine keeps one per batch behind a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    limit: f64,
    max: f64,
    last_cut: Option<UnixMillis>,
    cooldown_ms: i64,
}

impl Aimd {
    /// Starts at `max` (the user's `--concurrency`); never goes above it nor below 1.
    pub fn new(max: usize) -> Self {
        let max = max.max(1) as f64;
        Aimd { limit: max, max, last_cut: None, cooldown_ms: 1_000 }
    }

    /// The number of requests that may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    /// The servers asked to slow down: halve the limit, at most once per cooldown (a burst of refusals
    /// from requests already in flight is one signal, not many).
    pub fn on_throttled(&mut self, now: UnixMillis) {
        if let Some(last) = self.last_cut
            && last.millis_until(now) < self.cooldown_ms
        {
            return;
        }
        self.limit = (self.limit / 2.0).max(1.0);
        self.last_cut = Some(now);
    }

    /// A request succeeded: grow by about one per `limit` successes.
    pub fn on_success(&mut self) {
        self.limit = (self.limit + 1.0 / self.limit).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_000_000);

    #[test]
    fn throttling_halves_once_per_cooldown() {
        let mut a = Aimd::new(16);
        a.on_throttled(T0);
        a.on_throttled(T0.plus_millis(10));
        assert_eq!(a.limit(), 8);
        a.on_throttled(T0.plus_millis(1_000));
        assert_eq!(a.limit(), 4);
        for i in 0..10 {
            a.on_throttled(T0.plus_secs(2 + i));
        }
        assert_eq!(a.limit(), 1, "never below one");
    }

    #[test]
    fn success_grows_back_slowly_up_to_the_maximum() {
        let mut a = Aimd::new(16);
        a.on_throttled(T0);
        assert_eq!(a.limit(), 8);
        for _ in 0..8 {
            a.on_success();
        }
        assert_eq!(a.limit(), 8, "about one per limit successes: {}", a.limit);
        for _ in 0..1000 {
            a.on_success();
        }
        assert_eq!(a.limit(), 16);
    }
}

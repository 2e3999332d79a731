//! How long to wait before attempt `n` of a step: exponential (from `backon`), capped, with full jitter
//! (uniform between zero and the exponential delay, as the AWS SDKs do), never shorter than the
//! server's `Retry-After`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;

/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The base of the first delay.
    pub min_delay: Duration,
    /// No delay is longer than this (except a longer `Retry-After`). Also the wait of a retry the retry
    /// budget cannot pay for.
    pub max_delay: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { min_delay: Duration::from_millis(200), max_delay: Duration::from_secs(20) }
    }
}

impl BackoffConfig {
    /// The capped exponential delay before retry number `attempt` (1 = the first retry), before jitter.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(attempt as usize)
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay)
    }

    /// The delay before retry number `attempt`: full jitter over the ceiling, at least `retry_after_ms`
    /// (up to [`MAX_RETRY_AFTER`]: a proxy asking for a day must not park an asset for a day).
    pub(crate) fn delay(&self, attempt: u32, retry_after_ms: Option<u64>, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = Duration::from_secs_f64(rng.random_range(0.0..=ceiling.as_secs_f64()));
        let server = Duration::from_millis(retry_after_ms.unwrap_or(0)).min(MAX_RETRY_AFTER);
        jittered.max(server)
    }

    /// The wait of a retry the retry budget cannot pay for: between half and all of the maximum delay.
    pub(crate) fn cooldown(&self, rng: &mut impl Rng) -> Duration {
        let max = self.max_delay.as_secs_f64();
        Duration::from_secs_f64(rng.random_range(max / 2.0..=max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let c = BackoffConfig { min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        let ceilings: Vec<_> = (1..=6).map(|a| c.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling_and_spreads() {
        let c = BackoffConfig::default();
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<_> = (0..1000).map(|_| c.delay(4, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= c.ceiling(4)));
        let below_half = delays.iter().filter(|d| **d < c.ceiling(4) / 2).count();
        assert!((400..600).contains(&below_half), "{below_half} of 1000 below half the ceiling");
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let c = BackoffConfig::default();
        let mut rng = StdRng::seed_from_u64(2);
        assert!(c.delay(1, Some(30_000), &mut rng) >= Duration::from_secs(30));
        assert_eq!(c.delay(1, Some(86_400_000), &mut rng), MAX_RETRY_AFTER, "a day is capped");
    }
}

//! How long to wait before attempt `n` of a step: exponential with full jitter, capped, and never
//! shorter than the server's `Retry-After`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay.
    pub min_delay: Duration,
    /// No delay is longer than this (except a longer `Retry-After`).
    pub max_delay: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { min_delay: Duration::from_millis(200), max_delay: Duration::from_secs(20) }
    }
}

impl BackoffConfig {
    /// The delay before retry number `attempt` (1 = the first retry).
    pub(crate) fn delay(&self, attempt: u32, retry_after_ms: Option<u64>) -> Duration {
        let delay = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(attempt as usize)
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay);
        let server = Duration::from_millis(retry_after_ms.unwrap_or(0));
        delay.max(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let c = BackoffConfig { min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for attempt in 1..20 {
            let d = c.delay(attempt, None);
            // backon's jitter adds up to one more base delay.
            assert!(d <= Duration::from_secs(2), "attempt {attempt}: {d:?}");
            assert!(d >= Duration::from_millis(100), "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let c = BackoffConfig::default();
        assert!(c.delay(1, Some(30_000)) >= Duration::from_secs(30));
    }
}

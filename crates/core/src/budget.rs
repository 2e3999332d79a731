//! The retry budget: a token bucket that retries draw from and successes refill, shared by every asset
//! of a batch (the AWS SDKs' "standard" retry mode). When an endpoint fails for everyone at once, the
//! budget runs dry and the batch stops multiplying its requests by its retries.

/// A token bucket for retries. Plain value: the engine keeps one per batch behind a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    tokens: u32,
    capacity: u32,
}

/// What a retry costs, and what a success gives back (AWS SDK standard mode: 5 per retry, 10 per
/// retry after a timeout, 1 back per success).
const RETRY_COST: u32 = 5;
const TIMEOUT_RETRY_COST: u32 = 10;
const SUCCESS_REFUND: u32 = 1;

impl RetryBudget {
    /// A full budget of `capacity` tokens (the AWS SDKs use 500).
    pub fn new(capacity: u32) -> Self {
        RetryBudget { tokens: capacity, capacity }
    }

    /// Takes the cost of one retry; `false` (and nothing taken) when the budget cannot pay for it.
    pub fn try_retry(&mut self, after_timeout: bool) -> bool {
        let cost = if after_timeout { TIMEOUT_RETRY_COST } else { RETRY_COST };
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// A request succeeded: give a token back.
    pub fn on_success(&mut self) {
        self.tokens = (self.tokens + SUCCESS_REFUND).min(self.capacity);
    }

    /// Tokens left.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(500)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_drains_the_budget_and_successes_refill_it() {
        let mut b = RetryBudget::new(500);
        let granted = (0..1000).filter(|_| b.try_retry(false)).count();
        assert_eq!(granted, 100, "500 tokens pay for 100 retries");
        assert!(!b.try_retry(false));
        for _ in 0..5 {
            b.on_success();
        }
        assert!(b.try_retry(false));
        assert!(!b.try_retry(false));
    }

    #[test]
    fn timeouts_cost_double_and_the_budget_never_overfills() {
        let mut b = RetryBudget::new(10);
        assert!(b.try_retry(true));
        assert!(!b.try_retry(false));
        for _ in 0..100 {
            b.on_success();
        }
        assert_eq!(b.tokens(), 10);
    }
}

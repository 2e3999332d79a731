//! Time as a plain value: the engine reads the clock, core only compares numbers.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// This instant plus `secs` seconds (saturating).
    pub fn plus_secs(self, secs: i64) -> Self {
        UnixMillis(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// This instant plus `millis` milliseconds (saturating).
    pub fn plus_millis(self, millis: i64) -> Self {
        UnixMillis(self.0.saturating_add(millis))
    }

    /// Milliseconds from `self` until `later` (negative when `later` is earlier).
    pub fn millis_until(self, later: UnixMillis) -> i64 {
        later.0.saturating_sub(self.0)
    }
}

//! The one place the engine reads the wall clock; core only ever sees the value.

use spinlift_core::UnixMillis;

/// Now, as milliseconds since the Unix epoch.
pub(crate) fn now() -> UnixMillis {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    UnixMillis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

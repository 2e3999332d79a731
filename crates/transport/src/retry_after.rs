//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

use std::time::SystemTime;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The server's `Retry-After`, in milliseconds from `now`; `None` when absent or unreadable. A date in
/// the past is a zero wait.
pub(crate) fn retry_after_ms(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).map_or(0, |wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::HeaderValue;

    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(retry_after_ms(&with("120"), now), Some(120_000));
        assert_eq!(retry_after_ms(&with(" 0 "), now), Some(0));
        assert_eq!(retry_after_ms(&with("Wed, 21 Oct 2015 07:28:30 GMT"), now), Some(30_000));
        // RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(retry_after_ms(&with("Wednesday, 21-Oct-15 07:29:00 GMT"), now), Some(60_000));
        assert_eq!(retry_after_ms(&with("Wed Oct 21 07:28:01 2015"), now), Some(1_000));
        // In the past: no wait.
        assert_eq!(retry_after_ms(&with("Wed, 21 Oct 2015 07:00:00 GMT"), now), Some(0));
        assert_eq!(retry_after_ms(&with("soon"), now), None);
        assert_eq!(retry_after_ms(&with("-5"), now), None);
        assert_eq!(retry_after_ms(&HeaderMap::new(), now + Duration::from_secs(1)), None);
    }
}

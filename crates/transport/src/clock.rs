//! The wall clock and the time formats of the wire: RFC 3339 for `register_asset`, ISO 8601 in
//! AWS POST policies, HTTP-dates in `Retry-After`.

use spinlift_core::UnixMillis;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Now, as core's time value.
pub(crate) fn now() -> UnixMillis {
    from_offset(OffsetDateTime::now_utc())
}

pub(crate) fn from_offset(at: OffsetDateTime) -> UnixMillis {
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    UnixMillis(i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX }))
}

/// `2024-05-15T15:43:02Z`: whole seconds, UTC, as in the "Get Storage Upload URL" page's
/// `register_asset` example.
pub(crate) fn rfc3339_seconds(at: UnixMillis) -> String {
    let seconds = at.0.div_euclid(1000);
    let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 / ISO 8601 instant such as an AWS policy's `2024-05-16T15:43:02.000Z`.
pub(crate) fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok().map(from_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        // 2024-05-15T15:43:02.789Z
        assert_eq!(rfc3339_seconds(UnixMillis(1_715_787_782_789)), "2024-05-15T15:43:02Z");
        assert_eq!(rfc3339_seconds(UnixMillis(0)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_policy_expirations() {
        assert_eq!(parse_rfc3339("2024-05-15T15:43:02.789Z"), Some(UnixMillis(1_715_787_782_789)));
        assert_eq!(parse_rfc3339("2024-05-15T15:43:02Z"), Some(UnixMillis(1_715_787_782_000)));
        assert_eq!(parse_rfc3339("2024-05-15T16:43:02+01:00"), Some(UnixMillis(1_715_787_782_000)));
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now().0 > 1_700_000_000_000);
    }
}

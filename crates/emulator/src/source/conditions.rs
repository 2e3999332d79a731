//! Conditional GET and HEAD: `If-Match`, `If-None-Match`, `If-Unmodified-Since`, `If-Modified-Since`,
//! evaluated in the order RFC 9110 (§13.2.2) gives, which is also what S3 documents for GetObject and
//! HeadObject (an `If-Match` that holds overrides a failing `If-Unmodified-Since`; an `If-None-Match`
//! that fails overrides an `If-Modified-Since`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;
use hyper::header::{HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE};

/// What the conditions of a request say about the current representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Proceed,
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed`, because of this header.
    PreconditionFailed(&'static str),
}

/// Evaluates the request's conditions against the object's `etag` (quoted, as sent) and
/// `last_modified` (compared at the second, as the `Last-Modified` header shows it).
pub(crate) fn evaluate(headers: &HeaderMap, etag: &str, last_modified: Option<SystemTime>) -> Verdict {
    let last_modified = last_modified.map(whole_seconds);
    if let Some(condition) = text(headers, &IF_MATCH) {
        if !matches(condition, etag) {
            return Verdict::PreconditionFailed("If-Match");
        }
    } else if let (Some(date), Some(modified)) = (date(headers, &IF_UNMODIFIED_SINCE), last_modified)
        && modified > date
    {
        return Verdict::PreconditionFailed("If-Unmodified-Since");
    }
    if let Some(condition) = text(headers, &IF_NONE_MATCH) {
        if matches(condition, etag) {
            return Verdict::NotModified;
        }
    } else if let (Some(date), Some(modified)) = (date(headers, &IF_MODIFIED_SINCE), last_modified)
        && modified <= date
    {
        return Verdict::NotModified;
    }
    Verdict::Proceed
}

fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// An HTTP date; one that does not parse is ignored, as RFC 9110 says.
fn date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    text(headers, name).and_then(|value| httpdate::parse_http_date(value).ok())
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether a list of entity tags (or `*`) names `etag`. Compared without the quotes and any `W/`, as S3
/// does: an unquoted tag matches too.
fn matches(condition: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").trim_matches('"').to_owned();
    let etag = bare(etag);
    condition.split(',').any(|tag| tag.trim() == "*" || bare(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const ETAG: &str = "\"0cc175b9c0f1b6a831c399e269772661\"";

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn http(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    #[test]
    fn if_match_names_the_etag_or_fails() {
        let modified = Some(at(1_000_000));
        for (condition, verdict) in [
            (ETAG, Verdict::Proceed),
            ("0cc175b9c0f1b6a831c399e269772661", Verdict::Proceed),
            ("\"other\", \"0cc175b9c0f1b6a831c399e269772661\"", Verdict::Proceed),
            ("*", Verdict::Proceed),
            ("\"other\"", Verdict::PreconditionFailed("If-Match")),
        ] {
            assert_eq!(evaluate(&headers(&[(IF_MATCH, condition)]), ETAG, modified), verdict, "{condition}");
        }
    }

    #[test]
    fn if_none_match_answers_not_modified() {
        let modified = Some(at(1_000_000));
        assert_eq!(evaluate(&headers(&[(IF_NONE_MATCH, ETAG)]), ETAG, modified), Verdict::NotModified);
        assert_eq!(evaluate(&headers(&[(IF_NONE_MATCH, "*")]), ETAG, modified), Verdict::NotModified);
        assert_eq!(evaluate(&headers(&[(IF_NONE_MATCH, "\"x\"")]), ETAG, modified), Verdict::Proceed);
    }

    #[test]
    fn dates_compare_at_the_second_and_yield_to_the_tags() {
        // Modified at 1_000_000.4 s: the header says 1_000_000.
        let modified = Some(at(1_000_000) + Duration::from_millis(400));
        let since = |name: HeaderName, secs| evaluate(&headers(&[(name, &http(secs))]), ETAG, modified);
        assert_eq!(since(IF_MODIFIED_SINCE, 1_000_000), Verdict::NotModified);
        assert_eq!(since(IF_MODIFIED_SINCE, 999_999), Verdict::Proceed);
        assert_eq!(since(IF_UNMODIFIED_SINCE, 1_000_000), Verdict::Proceed);
        assert_eq!(since(IF_UNMODIFIED_SINCE, 999_999), Verdict::PreconditionFailed("If-Unmodified-Since"));

        // S3: If-Match true and If-Unmodified-Since false → 200; If-None-Match false and
        // If-Modified-Since true → 304 … and If-None-Match true (no match) wins over If-Modified-Since.
        let both = headers(&[(IF_MATCH, ETAG), (IF_UNMODIFIED_SINCE, &http(999_999))]);
        assert_eq!(evaluate(&both, ETAG, modified), Verdict::Proceed);
        let both = headers(&[(IF_NONE_MATCH, ETAG), (IF_MODIFIED_SINCE, &http(999_999))]);
        assert_eq!(evaluate(&both, ETAG, modified), Verdict::NotModified);
        let both = headers(&[(IF_NONE_MATCH, "\"x\""), (IF_MODIFIED_SINCE, &http(1_000_000))]);
        assert_eq!(evaluate(&both, ETAG, modified), Verdict::Proceed);
        // A date that does not parse is ignored.
        assert_eq!(evaluate(&headers(&[(IF_MODIFIED_SINCE, "yesterday")]), ETAG, modified), Verdict::Proceed);
    }
}

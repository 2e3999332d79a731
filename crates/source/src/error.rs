//! What went wrong reading a source, whether trying again can help, and how core classifies it.

use std::io;
use std::time::SystemTime;

use spinlift_core::{Failure, FailureKind, Step};

/// Longest message kept from a server or library error (characters).
const MAX_MESSAGE_CHARS: usize = 500;

/// Why a source could not be listed, inspected or read.
///
/// Every message names the object (its URL without query, fragment or user info) and, where it
/// helps, what to do. No message ever carries a credential, a query string or a signed-URL parameter.
///
/// | variant | retryable | [`FailureKind`] |
/// |---|---|---|
/// | `InvalidUrl`, `PlainHttp`, `Config`, `Unsupported` | no | `Source` |
/// | `NotFound` (404, 410, no such file) | no | `Source` |
/// | `Denied` (401, 403, file permissions) | no | `Source` |
/// | `Refused` (any other 4xx) | no | `Source` |
/// | `NotAFile` (a directory, FIFO, socket, device) | no | `Source` |
/// | `Unreadable` (a local I/O error) | no | `Source` |
/// | `Changed` (412, or a size or ETag that differs from what was expected) | yes: read the metadata again | `SourceChanged` |
/// | `Throttled` (429, 503) | yes, after `retry_after_ms` | `Status { status, code }` |
/// | `Unavailable` (other 5xx; S3's 200 with an error document) | yes | `Status { status, code }` |
/// | `Network` (connect, reset, a body cut short) | yes | `Network` |
/// | `Timeout` (no answer, a stalled body) | yes | `Timeout` |
/// | `InvalidResponse` (an answer that cannot be used) | yes (bounded by the engine) | `InvalidResponse` |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The text is not a usable source location, or a relative part [`SourceUrl::join`](crate::SourceUrl::join) refuses.
    #[error("{text:?} is not a usable source location: {reason}")]
    InvalidUrl {
        /// The text given (URL queries removed).
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// Plain `http://` to a host that is not loopback, without `allow_http`.
    #[error(
        "{url}: plain http to {host} is refused (the bytes and any credentials would travel unencrypted): use https, or --allow-http"
    )]
    PlainHttp {
        /// The URL (or endpoint) refused.
        url: String,
        /// Its host.
        host: String,
    },
    /// The object does not exist.
    #[error("{url}: not found")]
    NotFound {
        /// The object.
        url: String,
    },
    /// The object is not what it was when its metadata was taken.
    #[error("{url} changed since its metadata was read: {what}")]
    Changed {
        /// The object.
        url: String,
        /// What differs.
        what: String,
    },
    /// The source refuses access: credentials missing, wrong, expired, or without the right.
    #[error("{url}: access denied{}: {message}", status_suffix(*status))]
    Denied {
        /// The object.
        url: String,
        /// The HTTP status (401, 403), if the answer came over HTTP.
        status: Option<u16>,
        /// What the source said, and what to check.
        message: String,
    },
    /// Any other 4xx answer: the request cannot succeed as it is.
    #[error("{url}: refused with status {status}: {message}")]
    Refused {
        /// The object.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What the source said.
        message: String,
    },
    /// The source asks to slow down (429, 503).
    #[error("{url}: the source asks to slow down ({}){}: {message}", status_code(*status, code), retry_suffix(*retry_after_ms))]
    Throttled {
        /// The object.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error code in the answer's body (S3's `SlowDown`), if any.
        code: Option<String>,
        /// What the source said.
        message: String,
        /// The source's `Retry-After`, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// The source failed (5xx other than 503).
    #[error("{url}: the source is unavailable ({}){}: {message}", status_code(*status, code), retry_suffix(*retry_after_ms))]
    Unavailable {
        /// The object.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error code in the answer's body, if any.
        code: Option<String>,
        /// What the source said.
        message: String,
        /// The source's `Retry-After`, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// The connection could not be made, or broke (a body cut short included).
    #[error("{url}: network error: {message}")]
    Network {
        /// The object.
        url: String,
        /// What happened.
        message: String,
    },
    /// No answer in time, or a body that stopped moving.
    #[error("{url}: timed out: {message}")]
    Timeout {
        /// The object.
        url: String,
        /// What timed out.
        message: String,
    },
    /// An answer that cannot be used (a malformed listing, a missing header).
    #[error("{url}: unusable answer: {message}")]
    InvalidResponse {
        /// The object.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A local path that is not a regular file.
    #[error("{url} is {what}, not a regular file")]
    NotAFile {
        /// The path.
        url: String,
        /// What it is instead ("a directory", "a FIFO (named pipe)", …).
        what: String,
    },
    /// A local file that cannot be read for another reason (an I/O error).
    #[error("{url}: cannot be read: {message}")]
    Unreadable {
        /// The path.
        url: String,
        /// The operating system's error.
        message: String,
    },
    /// The source cannot be set up: missing or invalid configuration (credentials, account, endpoint).
    #[error("source configuration: {message}")]
    Config {
        /// What is missing or wrong, and which setting supplies it.
        message: String,
    },
    /// The operation is not possible for this source (listing an http URL, a server that gives no
    /// length).
    #[error("{url}: {message}")]
    Unsupported {
        /// The object or prefix.
        url: String,
        /// What is not possible, and why.
        message: String,
    },
}

impl SourceError {
    /// Whether the same call may succeed later. `Changed` is retryable: the caller reads the metadata
    /// again and starts over.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Throttled { .. }
                | SourceError::Unavailable { .. }
                | SourceError::Network { .. }
                | SourceError::Timeout { .. }
                | SourceError::Changed { .. }
                | SourceError::InvalidResponse { .. }
        )
    }

    /// The server's `Retry-After`, in milliseconds, when it gave one.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            SourceError::Throttled { retry_after_ms, .. }
            | SourceError::Unavailable { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }

    /// This error as one failed attempt at `step`, for core's classification table (see the table on
    /// [`SourceError`]). The message is this error's `Display`.
    pub fn to_failure(&self, step: Step) -> Failure {
        let kind = match self {
            SourceError::Changed { .. } => FailureKind::SourceChanged,
            SourceError::Throttled { status, code, .. } | SourceError::Unavailable { status, code, .. } => {
                FailureKind::Status { status: *status, code: code.clone() }
            }
            SourceError::Network { .. } => FailureKind::Network,
            SourceError::Timeout { .. } => FailureKind::Timeout,
            SourceError::InvalidResponse { .. } => FailureKind::InvalidResponse,
            _ => FailureKind::Source,
        };
        Failure { step, kind, message: self.to_string(), retry_after_ms: self.retry_after_ms() }
    }

    /// The `SourceError` inside an [`io::Error`] from an [`ObjectReader`](crate::ObjectReader), if it
    /// carries one (every error the reader makes does).
    pub fn from_io(error: &io::Error) -> Option<&SourceError> {
        error.get_ref()?.downcast_ref::<SourceError>()
    }

    /// This error wrapped in an [`io::Error`] of `kind`, as the reader hands it out.
    pub(crate) fn into_io(self, kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, self)
    }
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|status| format!(" ({status})")).unwrap_or_default()
}

fn status_code(status: u16, code: &Option<String>) -> String {
    match code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

fn retry_suffix(retry_after_ms: Option<u64>) -> String {
    match retry_after_ms {
        Some(ms) if ms % 1000 == 0 => format!(", retry after {} s", ms / 1000),
        Some(ms) => format!(", retry after {ms} ms"),
        None => String::new(),
    }
}

/// The server's `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date), in milliseconds from
/// `now`; `None` when absent or unreadable. A date in the past is a zero wait.
pub(crate) fn retry_after_ms(value: Option<&str>, now: SystemTime) -> Option<u64> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).map_or(0, |wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)))
}

/// Query parameters whose value is a credential wherever they appear (signed URLs of S3, GCS, Azure).
const SECRET_PARAMETERS: &[&str] = &[
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "signature",
    "sig",
    "token",
    "access_token",
];

/// `text` made safe for a message: every URL in it loses its user info, query and fragment, any
/// `name=value` whose name is a known signing parameter loses its value, each of `secrets` is
/// replaced by `REDACTED`, whitespace is folded, and the length is bounded.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = redact_urls(text);
    out = redact_parameters(&out);
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "REDACTED");
        }
    }
    let mut out: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    out
}

/// Every `scheme://…` in `text` without its user info, query and fragment.
pub(crate) fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters right before "://".
        let scheme_start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(at, |(i, _)| i);
        out.push_str(&rest[..scheme_start]);
        let url_start = &rest[scheme_start..];
        let end = url_start
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(url_start.len());
        let (url, after) = url_start.split_at(end);
        out.push_str(&redact_one_url(url));
        rest = after;
    }
    out.push_str(rest);
    out
}

fn redact_one_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// `name=value` pairs outside URLs (a query printed on its own) whose name is in [`SECRET_PARAMETERS`].
fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let before = &rest[..eq];
        let name_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .last()
            .map_or(eq, |(i, _)| i);
        let name = &before[name_start..];
        out.push_str(&rest[..=eq]);
        let after = &rest[eq + 1..];
        if SECRET_PARAMETERS.iter().any(|secret| secret.eq_ignore_ascii_case(name)) {
            let end = after
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | '<' | ',' | ';' | ')'))
                .unwrap_or(after.len());
            out.push_str("REDACTED");
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A std error and its sources on one line, each source once (many errors repeat their source in
/// their own message).
pub(crate) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The io error kind a broken body is reported with: the kind found in the error's chain if it is one
/// the transport retries (a broken pipe counts as a reset), `TimedOut` for a timeout, and otherwise
/// `UnexpectedEof`: the body stopped before its announced end.
pub(crate) fn body_error_kind(error: &(dyn std::error::Error + 'static), is_timeout: bool) -> io::ErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                kind @ (io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::TimedOut
                | io::ErrorKind::UnexpectedEof) => return kind,
                io::ErrorKind::BrokenPipe => return io::ErrorKind::ConnectionReset,
                _ => {}
            }
        }
        source = cause.source();
    }
    if is_timeout { io::ErrorKind::TimedOut } else { io::ErrorKind::UnexpectedEof }
}

/// The text of `<tag>…</tag>` in an XML error document (S3's `<Code>`, `<Message>`).
pub(crate) fn xml_tag<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    let value = text[start..end].trim();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spinlift_core::{Disposition, classify};

    use super::*;

    fn url() -> String {
        "s3://b/k".into()
    }

    #[test]
    fn retryability_and_failure_kinds_row_by_row() {
        use SourceError as E;
        let rows: Vec<(SourceError, bool, FailureKind, Disposition)> = vec![
            (
                E::InvalidUrl { text: "x".into(), reason: "r".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (
                E::PlainHttp { url: url(), host: "h".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (E::NotFound { url: url() }, false, FailureKind::Source, Disposition::FailAsset),
            (
                E::Denied { url: url(), status: Some(403), message: "m".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (
                E::Refused { url: url(), status: 400, message: "m".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (
                E::NotAFile { url: url(), what: "a directory".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (
                E::Unreadable { url: url(), message: "EIO".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (E::Config { message: "m".into() }, false, FailureKind::Source, Disposition::FailAsset),
            (
                E::Unsupported { url: url(), message: "m".into() },
                false,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (
                E::Changed { url: url(), what: "etag".into() },
                true,
                FailureKind::SourceChanged,
                Disposition::Retry,
            ),
            (
                E::Throttled {
                    url: url(),
                    status: 503,
                    code: Some("SlowDown".into()),
                    message: "m".into(),
                    retry_after_ms: Some(2000),
                },
                true,
                FailureKind::Status { status: 503, code: Some("SlowDown".into()) },
                Disposition::Retry,
            ),
            (
                E::Unavailable {
                    url: url(),
                    status: 500,
                    code: None,
                    message: "m".into(),
                    retry_after_ms: None,
                },
                true,
                FailureKind::Status { status: 500, code: None },
                Disposition::Retry,
            ),
            (
                E::Network { url: url(), message: "reset".into() },
                true,
                FailureKind::Network,
                Disposition::Retry,
            ),
            (
                E::Timeout { url: url(), message: "stall".into() },
                true,
                FailureKind::Timeout,
                Disposition::Retry,
            ),
            (
                E::InvalidResponse { url: url(), message: "m".into() },
                true,
                FailureKind::InvalidResponse,
                Disposition::Retry,
            ),
        ];
        for (error, retryable, kind, disposition) in rows {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
            let failure = error.to_failure(Step::Upload);
            assert_eq!(failure.kind, kind, "{error:?}");
            assert_eq!(failure.message, error.to_string());
            assert_eq!(classify(&failure), disposition, "{error:?}");
        }
        let throttled = E::Throttled {
            url: url(),
            status: 429,
            code: None,
            message: "slow down".into(),
            retry_after_ms: Some(2000),
        };
        assert_eq!(throttled.to_failure(Step::Upload).retry_after_ms, Some(2000));
        assert_eq!(
            throttled.to_string(),
            "s3://b/k: the source asks to slow down (429), retry after 2 s: slow down"
        );
    }

    #[test]
    fn io_errors_carry_the_source_error() {
        let io =
            SourceError::Timeout { url: url(), message: "stalled".into() }.into_io(io::ErrorKind::TimedOut);
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(SourceError::from_io(&io), Some(SourceError::Timeout { .. })));
        assert!(SourceError::from_io(&io::Error::other("x")).is_none());
    }

    #[test]
    fn urls_and_signing_parameters_are_scrubbed() {
        let text = "Error performing GET https://AKID:s3cr3t@acct.blob.core.windows.net/c/a.jpg?sv=2024&sig=abc%2F&se=1 in 3ms \
                    - also 'http://127.0.0.1:9000/b/k?X-Amz-Signature=deadbeef' and X-Amz-Credential=AKIA/2024 token=tok123";
        let out = scrub(text, &["tok123".to_owned()]);
        assert!(out.contains("https://acct.blob.core.windows.net/c/a.jpg in 3ms"), "{out}");
        assert!(out.contains("http://127.0.0.1:9000/b/k'"), "{out}");
        for secret in ["s3cr3t", "AKID", "abc", "deadbeef", "AKIA", "tok123", "sv=", "?"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("X-Amz-Credential=REDACTED"), "{out}");
        assert_eq!(scrub("a\n  b", &[]), "a b");
        assert_eq!(scrub(&"x".repeat(2000), &[]).chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(redact_urls("see s3://b/k?versionId=1."), "see s3://b/k");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(retry_after_ms(Some("2"), now), Some(2000));
        assert_eq!(retry_after_ms(Some(" 0 "), now), Some(0));
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:30 GMT"), now), Some(30_000));
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:00:00 GMT"), now), Some(0));
        assert_eq!(retry_after_ms(Some("soon"), now), None);
        assert_eq!(retry_after_ms(None, now + Duration::from_secs(1)), None);
    }

    #[test]
    fn xml_codes() {
        let body =
            "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your rate.</Message></Error>";
        assert_eq!(xml_tag(body, "Code"), Some("SlowDown"));
        assert_eq!(xml_tag(body, "Message"), Some("Reduce your rate."));
        assert_eq!(xml_tag(body, "Resource"), None);
        assert_eq!(xml_tag("<Code></Code>", "Code"), None);
    }
}

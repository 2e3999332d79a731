//! http(s) sources: plain `HEAD` and `GET` on one shared `reqwest` client, one attempt per call.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, IF_MATCH, LAST_MODIFIED, RANGE, RETRY_AFTER,
};
use reqwest::{StatusCode, Url};

use crate::error::{body_error_kind, chain_text, retry_after_ms, scrub};
use crate::{ObjectMeta, ObjectReader, Opened, SourceError, SourcesConfig};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;

/// The host of `url` when it is plain `http://` to a host that is not loopback and `allow_http` is off.
pub(crate) fn plain_http_refusal(url: &Url, allow_http: bool) -> Option<String> {
    if url.scheme() != "http" || allow_http {
        return None;
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).to_canonical().is_loopback(),
        None => false,
    };
    (!loopback).then(|| url.host_str().unwrap_or("").to_owned())
}

/// A redirect to plain http that the http rule refuses.
#[derive(Debug, thiserror::Error)]
#[error("redirected to plain http at {host}")]
struct RedirectRefused {
    host: String,
}

#[derive(Debug)]
pub(crate) struct HttpSources {
    client: reqwest::Client,
    request_timeout: Duration,
    stall_timeout: Duration,
}

impl HttpSources {
    pub(crate) fn new(config: &SourcesConfig) -> Result<HttpSources, SourceError> {
        let allow_http = config.allow_http;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match plain_http_refusal(attempt.url(), allow_http) {
                Some(host) => attempt.error(RedirectRefused { host }),
                None => attempt.follow(),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("spinlift-source/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .redirect(redirects)
            .build()
            .map_err(|e| SourceError::Config { message: format!("cannot build the HTTP client: {e}") })?;
        Ok(HttpSources {
            client,
            request_timeout: config.request_timeout,
            stall_timeout: config.stall_timeout,
        })
    }

    /// One attempt for the permit already taken: the caller takes one per request, and [`head`]
    /// takes a second itself when it has to fall back to a GET.
    pub(crate) async fn head(
        &self,
        url: &Url,
        shown: &str,
        second_permit: impl Future<Output = ()>,
    ) -> Result<ObjectMeta, SourceError> {
        let response = self
            .client
            .head(url.clone())
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| request_error(e, shown))?;
        match response.status() {
            // A server that does not do HEAD: ask for the first byte instead.
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                tracing::debug!(url = shown, status = %response.status(), "no HEAD: asking for the first byte");
                second_permit.await;
                self.head_by_range(url, shown).await
            }
            status if status.is_success() => meta_of(response.headers(), shown, Length::ContentLength),
            status => Err(status_error(status, response.headers(), shown)),
        }
    }

    /// `GET` with `Range: bytes=0-0`, the body never read: a 206 gives the size in `Content-Range`
    /// (`bytes 0-0/SIZE`); a server that ignores the range answers 200 with `Content-Length` (the body
    /// is dropped unread, which closes that connection); an empty object answers 416 `bytes */0`.
    async fn head_by_range(&self, url: &Url, shown: &str) -> Result<ObjectMeta, SourceError> {
        let request = self.client.get(url.clone()).header(RANGE, "bytes=0-0").send();
        let response = match tokio::time::timeout(self.request_timeout, request).await {
            Ok(sent) => sent.map_err(|e| request_error(e, shown))?,
            Err(_) => return Err(timed_out(shown, self.request_timeout)),
        };
        match response.status() {
            StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE => {
                meta_of(response.headers(), shown, Length::ContentRangeTotal)
            }
            StatusCode::OK => meta_of(response.headers(), shown, Length::ContentLength),
            status => Err(status_error(status, response.headers(), shown)),
        }
    }

    /// `GET`, conditional on `expected`'s ETag (`If-Match`; not for a weak ETag, which `If-Match` never
    /// matches), and the answer's length and ETag compared with `expected`.
    pub(crate) async fn open(
        &self,
        url: &Url,
        shown: &str,
        expected: &ObjectMeta,
    ) -> Result<Opened, SourceError> {
        let mut request = self.client.get(url.clone());
        if let Some(etag) = expected.etag.as_deref().filter(|etag| !etag.starts_with("W/")) {
            request = request.header(IF_MATCH, etag);
        }
        let response = match tokio::time::timeout(self.request_timeout, request.send()).await {
            Ok(sent) => sent.map_err(|e| request_error(e, shown))?,
            Err(_) => return Err(timed_out(shown, self.request_timeout)),
        };
        let status = response.status();
        if status == StatusCode::PRECONDITION_FAILED {
            let what = format!(
                "its ETag is no longer {} (412 Precondition Failed)",
                expected.etag.as_deref().unwrap_or("?")
            );
            return Err(SourceError::Changed { url: shown.to_owned(), what });
        }
        if status != StatusCode::OK {
            return Err(if status.is_success() {
                SourceError::InvalidResponse {
                    url: shown.to_owned(),
                    message: format!("GET answered {status}, not 200"),
                }
            } else {
                status_error(status, response.headers(), shown)
            });
        }
        let meta = meta_of(response.headers(), shown, Length::ContentLength)?;
        compare(&meta, expected, shown)?;
        let url_shown = shown.to_owned();
        let stream = response
            .bytes_stream()
            .map_err(move |e| {
                let kind = body_error_kind(&e, e.is_timeout());
                let message = format!("the body broke off: {}", scrub(&chain_text(&e.without_url()), &[]));
                let error = if kind == std::io::ErrorKind::TimedOut {
                    SourceError::Timeout { url: url_shown.clone(), message }
                } else {
                    SourceError::Network { url: url_shown.clone(), message }
                };
                error.into_io(kind)
            })
            .boxed();
        let reader = ObjectReader::remote(stream, meta.size, shown.to_owned(), self.stall_timeout);
        Ok(Opened { meta, prefix: bytes::Bytes::new(), prefix_is_all: false, reader })
    }
}

/// A changed object: another length, or another ETag (compared weakly: `W/"x"` and `"x"` agree).
pub(crate) fn compare(meta: &ObjectMeta, expected: &ObjectMeta, shown: &str) -> Result<(), SourceError> {
    let changed = |what: String| Err(SourceError::Changed { url: shown.to_owned(), what });
    if meta.size != expected.size {
        return changed(format!("its size is {} bytes, {} expected", meta.size, expected.size));
    }
    if let (Some(now), Some(then)) = (&meta.etag, &expected.etag)
        && now.trim_start_matches("W/") != then.trim_start_matches("W/")
    {
        return changed(format!("its ETag is {now}, {then} expected"));
    }
    if expected.etag.is_none()
        && let (Some(now), Some(then)) = (&meta.version, &expected.version)
        && now != then
    {
        return changed(format!("its version is {now}, {then} expected"));
    }
    Ok(())
}

/// Where the object's length is read from.
#[derive(Clone, Copy)]
enum Length {
    ContentLength,
    /// The total after the `/` of `Content-Range` (a range answer).
    ContentRangeTotal,
}

fn meta_of(headers: &HeaderMap, shown: &str, length: Length) -> Result<ObjectMeta, SourceError> {
    let text = |name| headers.get(name).and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok());
    let size = match length {
        Length::ContentLength => text(CONTENT_LENGTH).map(|v| v.trim().parse::<u64>()),
        Length::ContentRangeTotal => text(CONTENT_RANGE)
            .and_then(|v| v.rsplit_once('/'))
            .filter(|(_, total)| total.trim() != "*")
            .map(|(_, total)| total.trim().parse::<u64>()),
    };
    let size = match size {
        Some(Ok(size)) => size,
        Some(Err(_)) => {
            return Err(SourceError::InvalidResponse {
                url: shown.to_owned(),
                message: "the server's length header is not a number".into(),
            });
        }
        None => {
            return Err(SourceError::Unsupported {
                url: shown.to_owned(),
                message:
                    "the server gives no length (no Content-Length), and spinlift must announce the size \
                          before it uploads: serve the file with a Content-Length"
                        .into(),
            });
        }
    };
    let last_modified_ms = text(LAST_MODIFIED)
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
    Ok(ObjectMeta { size, etag: text(ETAG).map(str::to_owned), version: None, last_modified_ms })
}

/// An error status as a [`SourceError`]: 404/410 not found, 401/403 denied, 412 changed, 429 and 503
/// throttled, other 5xx unavailable, other 4xx refused (permanent), anything else (an unfollowed 3xx)
/// an unusable answer.
fn status_error(status: StatusCode, headers: &HeaderMap, shown: &str) -> SourceError {
    let url = shown.to_owned();
    let retry_after_ms =
        retry_after_ms(headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()), SystemTime::now());
    let reason = status.canonical_reason().unwrap_or("").to_owned();
    let code = status.as_u16();
    match code {
        404 | 410 => SourceError::NotFound { url },
        401 | 403 => SourceError::Denied {
            url,
            status: Some(code),
            message: format!(
                "{reason}: a pre-signed URL may have expired (sign it again), or the server wants credentials this \
                 URL does not carry"
            ),
        },
        412 => SourceError::Changed { url, what: "412 Precondition Failed".into() },
        429 | 503 => {
            SourceError::Throttled { url, status: code, code: None, message: reason, retry_after_ms }
        }
        500..=599 => {
            SourceError::Unavailable { url, status: code, code: None, message: reason, retry_after_ms }
        }
        400..=499 => SourceError::Refused { url, status: code, message: reason },
        _ => SourceError::InvalidResponse { url, message: format!("unexpected status {status}") },
    }
}

fn request_error(error: reqwest::Error, shown: &str) -> SourceError {
    let url = shown.to_owned();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<RedirectRefused>() {
            return SourceError::PlainHttp { url, host: refused.host.clone() };
        }
        source = cause.source();
    }
    let is_timeout = error.is_timeout();
    let is_connect = error.is_connect();
    let message = scrub(&chain_text(&error.without_url()), &[]);
    if is_timeout {
        SourceError::Timeout { url, message }
    } else if is_connect {
        SourceError::Network { url, message: format!("cannot connect: {message}") }
    } else {
        SourceError::Network { url, message }
    }
}

fn timed_out(shown: &str, after: Duration) -> SourceError {
    SourceError::Timeout { url: shown.to_owned(), message: format!("no answer within {after:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        let refused = |url: &str, allow| plain_http_refusal(&Url::parse(url).unwrap(), allow);
        for url in [
            "http://127.0.0.1:9000/x",
            "http://127.8.0.1/x",
            "http://localhost/x",
            "http://[::1]:80/x",
            "https://example.com/x",
        ] {
            assert_eq!(refused(url, false), None, "{url}");
        }
        assert_eq!(refused("http://example.com/x", false), Some("example.com".into()));
        assert_eq!(refused("http://10.0.0.1/x", false), Some("10.0.0.1".into()));
        assert_eq!(refused("http://localhost.evil.com/x", false), Some("localhost.evil.com".into()));
        assert_eq!(refused("http://example.com/x", true), None);
    }

    #[test]
    fn statuses_map_to_errors() {
        let headers = {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, "2".parse().unwrap());
            h
        };
        let none = HeaderMap::new();
        let error =
            |code: u16, headers: &HeaderMap| status_error(StatusCode::from_u16(code).unwrap(), headers, "u");
        assert!(matches!(error(404, &none), SourceError::NotFound { .. }));
        assert!(matches!(error(410, &none), SourceError::NotFound { .. }));
        assert!(matches!(error(401, &none), SourceError::Denied { status: Some(401), .. }));
        assert!(matches!(error(403, &none), SourceError::Denied { status: Some(403), .. }));
        assert!(matches!(error(412, &none), SourceError::Changed { .. }));
        assert!(matches!(
            error(429, &headers),
            SourceError::Throttled { status: 429, retry_after_ms: Some(2000), .. }
        ));
        assert!(matches!(
            error(503, &headers),
            SourceError::Throttled { status: 503, retry_after_ms: Some(2000), .. }
        ));
        assert!(matches!(error(503, &none), SourceError::Throttled { retry_after_ms: None, .. }));
        assert!(matches!(error(500, &none), SourceError::Unavailable { status: 500, .. }));
        assert!(matches!(error(502, &headers), SourceError::Unavailable { retry_after_ms: Some(2000), .. }));
        assert!(matches!(error(400, &none), SourceError::Refused { status: 400, .. }));
        assert!(matches!(error(416, &none), SourceError::Refused { status: 416, .. }));
        assert!(matches!(error(304, &none), SourceError::InvalidResponse { .. }));
    }

    #[test]
    fn lengths_and_metadata_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, "1000".parse().unwrap());
        h.insert(ETAG, "\"v1\"".parse().unwrap());
        h.insert(LAST_MODIFIED, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        let meta = meta_of(&h, "u", Length::ContentLength).unwrap();
        assert_eq!(
            meta,
            ObjectMeta {
                size: 1000,
                etag: Some("\"v1\"".into()),
                version: None,
                last_modified_ms: Some(1_445_412_480_000)
            }
        );
        h.insert(CONTENT_RANGE, "bytes 0-0/5242880".parse().unwrap());
        assert_eq!(meta_of(&h, "u", Length::ContentRangeTotal).unwrap().size, 5_242_880);
        h.insert(CONTENT_RANGE, "bytes */0".parse().unwrap());
        assert_eq!(meta_of(&h, "u", Length::ContentRangeTotal).unwrap().size, 0);
        h.insert(CONTENT_RANGE, "bytes 0-0/*".parse().unwrap());
        assert!(matches!(meta_of(&h, "u", Length::ContentRangeTotal), Err(SourceError::Unsupported { .. })));
        let e = meta_of(&HeaderMap::new(), "u", Length::ContentLength).unwrap_err();
        assert!(matches!(e, SourceError::Unsupported { .. }) && !e.is_retryable());
        assert!(e.to_string().contains("gives no length"), "{e}");
    }

    #[test]
    fn changes_are_found_by_size_etag_or_version() {
        let meta = |size, etag: Option<&str>, version: Option<&str>| ObjectMeta {
            size,
            etag: etag.map(Into::into),
            version: version.map(Into::into),
            last_modified_ms: None,
        };
        assert!(compare(&meta(5, Some("\"a\""), None), &meta(5, Some("\"a\""), None), "u").is_ok());
        assert!(compare(&meta(5, Some("W/\"a\""), None), &meta(5, Some("\"a\""), None), "u").is_ok());
        assert!(compare(&meta(5, None, None), &meta(5, Some("\"a\""), None), "u").is_ok());
        assert!(matches!(
            compare(&meta(6, Some("\"a\""), None), &meta(5, Some("\"a\""), None), "u"),
            Err(SourceError::Changed { .. })
        ));
        assert!(matches!(
            compare(&meta(5, Some("\"b\""), None), &meta(5, Some("\"a\""), None), "u"),
            Err(SourceError::Changed { .. })
        ));
        assert!(matches!(
            compare(&meta(5, None, Some("2")), &meta(5, None, Some("1")), "u"),
            Err(SourceError::Changed { .. })
        ));
    }
}

//! The one error type of the transport, and how it turns into core's [`Failure`].

use std::error::Error as _;
use std::io;
use std::path::PathBuf;

use spinlift_core::{Disposition, Failure, FailureKind, Step, UnixMillis, classify};

/// Why a transport call failed. Every variant says which step it belongs to and what the user needs to
/// know (the HTTP status, the server's code and message, the file), and never a credential: no API key,
/// no form field value, no URL query.
///
/// The engine does not decide on these directly: [`TransportError::to_failure`] describes the error as
/// core's [`Failure`], and core's `classify` decides whether to retry, fetch a fresh form, fail the
/// asset or stop the batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The client could not be set up (bad `api_url`, zero upload slots, TLS back end). Only
    /// [`FileSpinClient::new`](crate::FileSpinClient::new) returns it.
    Config {
        /// What is wrong.
        message: String,
    },
    /// The connection could not be made, was reset, or broke while a request or answer was in flight.
    Network {
        /// The step that failed.
        step: Step,
        /// Where the request went (scheme, host and path; never a query).
        target: String,
        /// What the HTTP stack said, outermost cause first.
        message: String,
    },
    /// The request timed out (`api_timeout`), or an upload stopped moving (`upload_stall_timeout`).
    Timeout {
        /// The step that failed.
        step: Step,
        /// Where the request went (scheme, host and path; never a query).
        target: String,
        /// What timed out.
        message: String,
    },
    /// The server answered with an error status; or storage answered 2xx with an S3 `<Error>` document,
    /// reported with that 2xx status.
    Status {
        /// The step that failed.
        step: Step,
        /// HTTP status code.
        status: u16,
        /// FileSpin's error code (`ASSET_ID_EXISTS`, …) or S3's `<Code>` (`AccessDenied`, …).
        code: Option<String>,
        /// The server's message (S3's `<Message>`, FileSpin's `message`, or the body text), scrubbed of
        /// credentials and bounded in length.
        message: String,
        /// The server's `Retry-After`, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// The answer was not what the API documents: not JSON, a missing `asset_id` / `storage.url` /
    /// `storage.fields`, a URL that is not http(s), a protocol other than POST.
    InvalidResponse {
        /// The step that failed.
        step: Step,
        /// What is wrong with the answer.
        message: String,
    },
    /// The form had expired before the upload started; nothing was sent.
    FormExpired {
        /// The asset id of the form.
        asset_id: String,
        /// When the form expired.
        expires_at: UnixMillis,
    },
    /// The source could not be opened or read.
    Source {
        /// The step that failed (the upload).
        step: Step,
        /// The file (for [`upload_reader`](crate::FileSpinClient::upload_reader): the file name given).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading a remote source broke off in the middle (its connection was reset, its body ended
    /// before its announced length, it stalled): the upload was cut off before its end, so storage did
    /// not take it, and the same upload is tried again. Told apart from [`TransportError::Source`] by
    /// the I/O error's kind: `ConnectionReset`, `ConnectionAborted`, `BrokenPipe`, `NotConnected`,
    /// `TimedOut` or `UnexpectedEof` (a local file that ends early is
    /// [`TransportError::SourceChanged`] instead).
    SourceInterrupted {
        /// The file name given to [`upload_reader`](crate::FileSpinClient::upload_reader).
        path: PathBuf,
        /// The I/O error the source's reader gave.
        source: io::Error,
    },
    /// The source's length differs from what was announced: it changed while it was read. The upload
    /// was cut off before its end, so storage did not take it.
    SourceChanged {
        /// The file (for `upload_reader`: the file name given).
        path: PathBuf,
        /// The length announced in `Content-Length`.
        expected: u64,
        /// The bytes found: `Some(n)` when the source ended early, `None` when it had more than announced.
        found: Option<u64>,
    },
    /// The file is larger than the form's policy allows; nothing was sent.
    TooLarge {
        /// The file (for `upload_reader`: the file name given).
        path: PathBuf,
        /// The file's length.
        size: u64,
        /// The largest size the form's `content-length-range` allows.
        max_size: u64,
    },
}

impl TransportError {
    /// The step this error belongs to. A [`TransportError::Config`] is reported as the first step,
    /// [`Step::RequestForm`].
    pub fn step(&self) -> Step {
        match self {
            TransportError::Config { .. } => Step::RequestForm,
            TransportError::Network { step, .. }
            | TransportError::Timeout { step, .. }
            | TransportError::Status { step, .. }
            | TransportError::InvalidResponse { step, .. }
            | TransportError::Source { step, .. } => *step,
            TransportError::FormExpired { .. }
            | TransportError::SourceInterrupted { .. }
            | TransportError::SourceChanged { .. }
            | TransportError::TooLarge { .. } => Step::Upload,
        }
    }

    /// This error as core's [`Failure`], for `classify` and the journal.
    ///
    /// | variant | `FailureKind` |
    /// |---|---|
    /// | `Network` | `Network` |
    /// | `Timeout` | `Timeout` |
    /// | `Status` | `Status { status, code }` (+ `retry_after_ms`) |
    /// | `InvalidResponse` | `InvalidResponse` |
    /// | `FormExpired` | `FormExpired` |
    /// | `Source` | `Source` |
    /// | `SourceInterrupted` | `Network` (`Timeout` for a stall) |
    /// | `SourceChanged` | `SourceChanged` |
    /// | `TooLarge` | `TooLarge` |
    /// | `Config` | `Status { status: 0, code: "CLIENT_CONFIG" }` — core has no kind for a local setup error; this one classifies as "fail" |
    pub fn to_failure(&self) -> Failure {
        let kind = match self {
            TransportError::Config { .. } => {
                FailureKind::Status { status: 0, code: Some("CLIENT_CONFIG".to_owned()) }
            }
            TransportError::Network { .. } => FailureKind::Network,
            TransportError::Timeout { .. } => FailureKind::Timeout,
            TransportError::Status { status, code, .. } => {
                FailureKind::Status { status: *status, code: code.clone() }
            }
            TransportError::InvalidResponse { .. } => FailureKind::InvalidResponse,
            TransportError::FormExpired { .. } => FailureKind::FormExpired,
            TransportError::Source { .. } => FailureKind::Source,
            TransportError::SourceInterrupted { source, .. } if source.kind() == io::ErrorKind::TimedOut => {
                FailureKind::Timeout
            }
            TransportError::SourceInterrupted { .. } => FailureKind::Network,
            TransportError::SourceChanged { .. } => FailureKind::SourceChanged,
            TransportError::TooLarge { .. } => FailureKind::TooLarge,
        };
        let retry_after_ms = match self {
            TransportError::Status { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        };
        Failure { step: self.step(), kind, message: self.detail(), retry_after_ms }
    }

    /// Whether core would send the same request again: `classify(&self.to_failure()) == Retry`.
    pub fn is_retryable(&self) -> bool {
        classify(&self.to_failure()) == Disposition::Retry
    }

    /// The server's error code (FileSpin's or S3's), when the answer had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            TransportError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            TransportError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The description without the step (the step is in [`Failure::step`] and `Display`).
    fn detail(&self) -> String {
        match self {
            TransportError::Config { message } => format!("invalid client configuration: {message}"),
            TransportError::Network { target, message, .. } => {
                format!("network error with {target}: {message}")
            }
            TransportError::Timeout { target, message, .. } => format!("timed out with {target}: {message}"),
            TransportError::Status { step, status, code, message, retry_after_ms } => {
                let who = if *step == Step::Upload { "storage" } else { "FileSpin" };
                let mut text = format!("{who} answered HTTP {status}");
                if let Some(code) = code {
                    text.push_str(&format!(" {code}"));
                }
                if !message.is_empty() && Some(message) != code.as_ref() {
                    text.push_str(&format!(": {message}"));
                }
                if let Some(ms) = retry_after_ms {
                    text.push_str(&format!(" (retry after {ms} ms)"));
                }
                text
            }
            TransportError::InvalidResponse { step, message } => {
                let who = if *step == Step::Upload { "storage" } else { "FileSpin" };
                format!("unexpected answer from {who}: {message}")
            }
            TransportError::FormExpired { asset_id, expires_at } => {
                format!(
                    "the upload form for asset {asset_id} expired at {}",
                    crate::clock::rfc3339_seconds(*expires_at)
                )
            }
            TransportError::Source { path, source, .. } => {
                format!("cannot read {}: {source}", path.display())
            }
            TransportError::SourceInterrupted { path, source } => {
                format!("reading the source {} broke off: {source}", path.display())
            }
            TransportError::SourceChanged { path, expected, found } => match found {
                Some(found) => format!(
                    "{} changed while it was read: {expected} bytes announced, it ended after {found}",
                    path.display()
                ),
                None => format!(
                    "{} changed while it was read: it has more than the {expected} bytes announced",
                    path.display()
                ),
            },
            TransportError::TooLarge { path, size, max_size } => format!(
                "{} is {size} bytes, more than the {max_size} bytes the upload form allows",
                path.display()
            ),
        }
    }

    /// Sorts a reqwest error into `Timeout` or `Network` by walking its source chain (as object_store's
    /// `HttpError::reqwest` does), keeping the chain's text but not the URL.
    pub(crate) fn from_reqwest(step: Step, target: &str, error: reqwest::Error) -> TransportError {
        let mut timeout = error.is_timeout();
        let mut builder = error.is_builder();
        let mut source = error.source();
        while let Some(cause) = source {
            if let Some(hyper) = cause.downcast_ref::<hyper::Error>()
                && hyper.is_timeout()
            {
                timeout = true;
            }
            if let Some(io) = cause.downcast_ref::<io::Error>()
                && io.kind() == io::ErrorKind::TimedOut
            {
                timeout = true;
            }
            if cause.downcast_ref::<url::ParseError>().is_some() {
                builder = true;
            }
            source = cause.source();
        }
        let message = chain_text(&error.without_url());
        let target = target.to_owned();
        if builder {
            TransportError::InvalidResponse {
                step,
                message: format!("the request could not be built: {message}"),
            }
        } else if timeout {
            TransportError::Timeout { step, target, message }
        } else {
            TransportError::Network { step, target, message }
        }
    }
}

/// As core's `Failure` shows itself: `step: detail`, but a source that cannot be read without its step
/// (it was found before any request, and the step would only mislead).
impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Source { .. } => f.write_str(&self.detail()),
            _ => write!(f, "{}: {}", self.step(), self.detail()),
        }
    }
}

/// `outer: cause: root cause`, skipping causes whose text the previous one already shows.
fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(step: Step, status: u16, code: Option<&str>) -> TransportError {
        TransportError::Status {
            step,
            status,
            code: code.map(str::to_owned),
            message: "m".into(),
            retry_after_ms: Some(1500),
        }
    }

    #[test]
    fn each_variant_maps_to_its_failure_kind() {
        let cases: Vec<(TransportError, Step, FailureKind, Disposition)> = vec![
            (
                TransportError::Network { step: Step::Register, target: "t".into(), message: "reset".into() },
                Step::Register,
                FailureKind::Network,
                Disposition::Retry,
            ),
            (
                TransportError::Timeout { step: Step::Upload, target: "t".into(), message: "stall".into() },
                Step::Upload,
                FailureKind::Timeout,
                Disposition::Retry,
            ),
            (
                status(Step::RequestForm, 401, None),
                Step::RequestForm,
                FailureKind::Status { status: 401, code: None },
                Disposition::StopBatch,
            ),
            (
                status(Step::Upload, 403, Some("AccessDenied")),
                Step::Upload,
                FailureKind::Status { status: 403, code: Some("AccessDenied".into()) },
                Disposition::FreshForm,
            ),
            (
                TransportError::InvalidResponse { step: Step::RequestForm, message: "x".into() },
                Step::RequestForm,
                FailureKind::InvalidResponse,
                Disposition::Retry,
            ),
            (
                TransportError::FormExpired { asset_id: "a".into(), expires_at: UnixMillis(0) },
                Step::Upload,
                FailureKind::FormExpired,
                Disposition::FreshForm,
            ),
            (
                TransportError::Source {
                    step: Step::Upload,
                    path: "/x".into(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                },
                Step::Upload,
                FailureKind::Source,
                Disposition::FailAsset,
            ),
            (
                TransportError::SourceInterrupted {
                    path: "s3://b/x".into(),
                    source: io::Error::from(io::ErrorKind::ConnectionReset),
                },
                Step::Upload,
                FailureKind::Network,
                Disposition::Retry,
            ),
            (
                TransportError::SourceInterrupted {
                    path: "s3://b/x".into(),
                    source: io::Error::from(io::ErrorKind::TimedOut),
                },
                Step::Upload,
                FailureKind::Timeout,
                Disposition::Retry,
            ),
            (
                TransportError::SourceChanged { path: "/x".into(), expected: 5, found: Some(3) },
                Step::Upload,
                FailureKind::SourceChanged,
                Disposition::Retry,
            ),
            (
                TransportError::TooLarge { path: "/x".into(), size: 5, max_size: 3 },
                Step::Upload,
                FailureKind::TooLarge,
                Disposition::FailAsset,
            ),
            (
                TransportError::Config { message: "bad".into() },
                Step::RequestForm,
                FailureKind::Status { status: 0, code: Some("CLIENT_CONFIG".into()) },
                Disposition::FailAsset,
            ),
        ];
        for (error, step, kind, disposition) in cases {
            let failure = error.to_failure();
            assert_eq!(error.step(), step, "{error}");
            assert_eq!(failure.step, step, "{error}");
            assert_eq!(failure.kind, kind, "{error}");
            assert_eq!(classify(&failure), disposition, "{error}");
            assert_eq!(error.is_retryable(), disposition == Disposition::Retry, "{error}");
            assert_eq!(error.to_string(), failure.to_string(), "Display is the failure's `step: message`");
        }
    }

    #[test]
    fn status_messages_and_retry_after() {
        let error = status(Step::Upload, 503, Some("SlowDown"));
        assert_eq!(error.to_failure().retry_after_ms, Some(1500));
        assert_eq!(
            error.to_string(),
            "uploading to storage: storage answered HTTP 503 SlowDown: m (retry after 1500 ms)"
        );
        assert_eq!(error.code(), Some("SlowDown"));
        assert_eq!(error.status(), Some(503));
        let error = TransportError::Status {
            step: Step::Register,
            status: 400,
            code: Some("ASSET_ID_EXISTS".into()),
            message: "ASSET_ID_EXISTS".into(),
            retry_after_ms: None,
        };
        assert_eq!(error.to_string(), "registering the asset: FileSpin answered HTTP 400 ASSET_ID_EXISTS");
    }

    #[test]
    fn source_errors_name_the_file() {
        let error = TransportError::Source {
            step: Step::Upload,
            path: "/data/a.jpg".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(error.to_string().contains("/data/a.jpg"), "{error}");
        assert!(error.source().is_some());
        let error = TransportError::SourceChanged { path: "/data/a.jpg".into(), expected: 10, found: None };
        assert!(error.to_string().contains("more than the 10 bytes"), "{error}");
    }
}

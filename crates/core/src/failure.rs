//! What went wrong, and what to do about it: the one classification table of spinlift.
//!
//! The transport layer describes every failed call as a [`Failure`] — which step, what kind of failure,
//! what the server said — and [`classify`] answers with a [`Disposition`]. The table is documented in
//! the README ("Errors and what spinlift does about them") and tested row by row below.

use serde::{Deserialize, Serialize};

/// The step of the three-step upload a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// `GET /api/v1/assets/new/content_storage_url`.
    RequestForm,
    /// The multipart POST of the file to S3.
    Upload,
    /// `POST /api/v1/assets/new/register_asset`.
    Register,
    /// `POST /api/v1/assets/{id}/data/update`: the entry's custom metadata (and the batch tag).
    SetData,
    /// `GET /api/v1/assets/{id}/data`: reading the asset back to verify it.
    Verify,
    /// `GET /api/v1/assets/{id}/data` for a resumed entry (one in flight, or one uploaded whose source
    /// changed since): whether a crash cut off the record of its registration.
    LookUp,
    /// Reading a remote source (an S3, GCS or Azure object, an HTTP(S) URL): its metadata before the
    /// form is asked for, or its bytes for the upload. Its 401/403 fail the asset, not the batch: they
    /// are the source's, not FileSpin's.
    ReadSource,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::RequestForm => "requesting an upload form",
            Step::Upload => "uploading to storage",
            Step::Register => "registering the asset",
            Step::SetData => "setting the asset's data",
            Step::Verify => "verifying the asset",
            Step::ReadSource => "reading the source",
            Step::LookUp => "looking up whether the asset is registered",
        })
    }
}

/// The kind of a failure, as far as the classification needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum FailureKind {
    /// The connection could not be made, was reset, or broke while a body was in flight.
    Network,
    /// The request (or an upload that stopped moving) timed out.
    Timeout,
    /// The server answered with an error status. `code` is S3's XML `<Code>` (`SlowDown`,
    /// `AccessDenied`, …) or FileSpin's error code (`ASSET_ID_EXISTS`, …) when the body had one.
    /// S3 can also answer 200 with an error document (object_store's `body_contains_error`); the
    /// transport reports that as `Status { status: 200, code: Some(..) }`.
    Status {
        /// HTTP status code.
        status: u16,
        /// Error code from the body, if any.
        code: Option<String>,
    },
    /// The answer was not what the API documents (not JSON, a missing field, a bad URL).
    InvalidResponse,
    /// The form expired (or would before the upload can finish), known from the form itself.
    FormExpired,
    /// The source file could not be read: missing, unreadable, not a regular file.
    Source,
    /// The source file changed while it was read (its size differs from what was announced).
    SourceChanged,
    /// The file is larger than the form allows (the policy's `content-length-range`).
    TooLarge,
    /// FileSpin could not process the stored file: the asset's status is `ERROR` (the message carries
    /// FileSpin's reason when it gives one).
    Processing,
    /// What FileSpin holds differs from what was uploaded (its `size` or `checksum`).
    Mismatch,
}

/// One failed attempt at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// A human-readable description: what the server said, without secrets.
    pub message: String,
    /// The server's `Retry-After`, in milliseconds, when it gave one.
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// A failure without `Retry-After`.
    pub fn new(step: Step, kind: FailureKind, message: impl Into<String>) -> Self {
        Failure { step, kind, message: message.into(), retry_after_ms: None }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            // Found before any request: the step would only mislead ("requesting an upload form").
            FailureKind::Source => f.write_str(&self.message),
            _ => write!(f, "{}: {}", self.step, self.message),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Send the same request again after a backoff.
    Retry,
    /// Drop the form, ask for a fresh one, and upload again.
    FreshForm,
    /// This asset cannot succeed: report it as failed, go on with the others.
    FailAsset,
    /// Nothing in this batch can succeed (authentication, account state): stop sending requests.
    StopBatch,
}

/// S3 error codes that mean "try again later" (AWS S3 error responses; object_store's retry list).
const S3_TRANSIENT: &[&str] = &[
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "IncompleteBody",
    "OperationAborted",
];

/// S3 error codes that no retry or fresh form can fix for this file.
const S3_PERMANENT: &[&str] = &["EntityTooLarge", "EntityTooSmall", "NoSuchBucket", "InvalidBucketName"];

/// The classification table: one failure in, one disposition out.
///
/// | failure | step | disposition |
/// |---|---|---|
/// | network error, timeout | any | Retry |
/// | invalid response | any | Retry (bounded) |
/// | 401 | any API step | StopBatch |
/// | 403 | any API step (auth failed, upload limit, account disabled) | StopBatch |
/// | 408, 429, 5xx (not 501), S3 `SlowDown`/`InternalError`/… (even with 200) | any | Retry |
/// | form expired (by the form's own expiry, or an answer that says so) | Upload | FreshForm |
/// | S3 `EntityTooLarge`/`EntityTooSmall`/`NoSuchBucket`, 413, file too large for the form | Upload | FailAsset |
/// | other 400/403 from S3 (policy condition, signature) | Upload | FreshForm (bounded) |
/// | any other 4xx, 501 | any | FailAsset |
/// | source unreadable | any | FailAsset |
/// | source changed while read | Upload | Retry |
/// | 400 `NOT_READY` (the asset is still being saved) | SetData | Retry |
/// | 404 | Verify, SetData | FailAsset |
/// | FileSpin's status `ERROR`, a size or checksum mismatch | Verify | FailAsset |
pub fn classify(failure: &Failure) -> Disposition {
    use Disposition::*;
    match (&failure.kind, failure.step) {
        (FailureKind::Network | FailureKind::Timeout | FailureKind::InvalidResponse, _) => Retry,
        (FailureKind::FormExpired, _) => FreshForm,
        (FailureKind::Source, _) | (FailureKind::TooLarge, _) => FailAsset,
        (FailureKind::Processing | FailureKind::Mismatch, _) => FailAsset,
        (FailureKind::SourceChanged, _) => Retry,
        (FailureKind::Status { status, code }, step) => {
            let code = code.as_deref().unwrap_or("");
            if S3_TRANSIENT.contains(&code) {
                return Retry;
            }
            match (*status, step) {
                (200..=399, _) => Retry,
                (408 | 429, _) => Retry,
                (501, _) => FailAsset,
                (500..=599, _) => Retry,
                // "Update Data": 400 while the asset is NOT_READY, "retry after a few seconds"
                // (developers.filespin.io, Assets - Data, Update Data).
                (400, Step::SetData) if code == "NOT_READY" => Retry,
                (
                    401 | 403,
                    Step::RequestForm | Step::Register | Step::SetData | Step::Verify | Step::LookUp,
                ) => StopBatch,
                (_, Step::Upload) if S3_PERMANENT.contains(&code) || *status == 413 => FailAsset,
                // An expired policy (AWS: 403 AccessDenied "Invalid according to Policy: Policy
                // expired"; other S3 implementations: 400 "expiration date is in the past"), a
                // signature or policy condition that no longer matches: all are mended by a fresh
                // form, and the attempt limit ends it if a fresh form does not help.
                (400 | 403, Step::Upload) => FreshForm,
                _ => FailAsset,
            }
        }
    }
}

/// Whether a failure is the server asking to slow down (429, 503, S3 `SlowDown`): the signal that cuts
/// adaptive concurrency.
pub fn is_throttle(failure: &Failure) -> bool {
    matches!(&failure.kind, FailureKind::Status { status: 429 | 503, .. })
        || matches!(&failure.kind, FailureKind::Status { code: Some(c), .. } if c == "SlowDown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(step: Step, status: u16, code: Option<&str>, message: &str) -> Disposition {
        classify(&Failure::new(step, FailureKind::Status { status, code: code.map(str::to_owned) }, message))
    }

    #[test]
    fn network_trouble_is_retried_at_every_step() {
        for step in [Step::RequestForm, Step::Upload, Step::Register] {
            for kind in [FailureKind::Network, FailureKind::Timeout, FailureKind::InvalidResponse] {
                assert_eq!(classify(&Failure::new(step, kind, "x")), Disposition::Retry);
            }
        }
    }

    #[test]
    fn a_remote_source_is_retried_when_busy_and_fails_the_asset_when_refused_or_gone() {
        let source =
            |status: u16, code: Option<&str>| super::tests::status(Step::ReadSource, status, code, "m");
        assert_eq!(source(503, Some("SlowDown")), Disposition::Retry);
        assert_eq!(source(500, None), Disposition::Retry);
        assert_eq!(source(429, None), Disposition::Retry);
        // The source's refusal is not FileSpin's: the batch goes on, and no fresh form is asked for.
        assert_eq!(source(403, Some("AccessDenied")), Disposition::FailAsset);
        assert_eq!(source(401, None), Disposition::FailAsset);
        assert_eq!(source(404, Some("NoSuchKey")), Disposition::FailAsset);
        for kind in [FailureKind::Network, FailureKind::Timeout, FailureKind::SourceChanged] {
            assert_eq!(classify(&Failure::new(Step::ReadSource, kind, "x")), Disposition::Retry);
        }
        assert_eq!(
            classify(&Failure::new(Step::ReadSource, FailureKind::Source, "x")),
            Disposition::FailAsset
        );
    }

    #[test]
    fn authentication_and_account_problems_stop_the_batch() {
        assert_eq!(status(Step::RequestForm, 401, Some("UNAUTHORIZED"), "bad key"), Disposition::StopBatch);
        assert_eq!(status(Step::Register, 401, None, ""), Disposition::StopBatch);
        assert_eq!(status(Step::RequestForm, 403, None, "Upload limit exceeded"), Disposition::StopBatch);
        assert_eq!(status(Step::Register, 403, None, "User account is disabled"), Disposition::StopBatch);
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        for step in [Step::RequestForm, Step::Upload, Step::Register] {
            for code in [408, 429, 500, 502, 503, 504] {
                assert_eq!(status(step, code, None, ""), Disposition::Retry, "{step:?} {code}");
            }
        }
        assert_eq!(
            status(Step::Upload, 503, Some("SlowDown"), "Reduce your request rate"),
            Disposition::Retry
        );
        assert_eq!(status(Step::Upload, 400, Some("RequestTimeout"), ""), Disposition::Retry);
        assert_eq!(status(Step::Upload, 200, Some("InternalError"), ""), Disposition::Retry);
    }

    #[test]
    fn expired_forms_are_replaced_whatever_the_status() {
        assert_eq!(
            status(Step::Upload, 403, Some("AccessDenied"), "Invalid according to Policy: Policy expired."),
            Disposition::FreshForm
        );
        assert_eq!(
            status(Step::Upload, 400, Some("InvalidPolicyDocument"), "expiration date is in the past"),
            Disposition::FreshForm
        );
        assert_eq!(
            classify(&Failure::new(Step::Upload, FailureKind::FormExpired, "form expires in 3 s")),
            Disposition::FreshForm
        );
    }

    #[test]
    fn other_s3_refusals_get_a_fresh_form() {
        assert_eq!(status(Step::Upload, 403, Some("SignatureDoesNotMatch"), ""), Disposition::FreshForm);
        assert_eq!(
            status(Step::Upload, 403, Some("AccessDenied"), "Policy condition failed"),
            Disposition::FreshForm
        );
    }

    #[test]
    fn files_that_cannot_fit_fail_for_good() {
        assert_eq!(status(Step::Upload, 400, Some("EntityTooLarge"), ""), Disposition::FailAsset);
        assert_eq!(status(Step::Upload, 413, None, ""), Disposition::FailAsset);
        assert_eq!(status(Step::Upload, 404, Some("NoSuchBucket"), ""), Disposition::FailAsset);
        assert_eq!(classify(&Failure::new(Step::Upload, FailureKind::TooLarge, "")), Disposition::FailAsset);
    }

    #[test]
    fn bad_requests_to_the_api_fail_the_asset() {
        assert_eq!(
            status(Step::RequestForm, 400, Some("MISSING_MANDATORY_PARAMETERS"), ""),
            Disposition::FailAsset
        );
        assert_eq!(status(Step::RequestForm, 400, Some("INVALID_REQUEST"), ""), Disposition::FailAsset);
        assert_eq!(status(Step::Register, 400, Some("CHECKSUM_MISMATCH"), ""), Disposition::FailAsset);
        assert_eq!(status(Step::Register, 404, None, ""), Disposition::FailAsset);
        assert_eq!(status(Step::RequestForm, 501, None, ""), Disposition::FailAsset);
    }

    #[test]
    fn throttle_signals() {
        let f = |status, code: Option<&str>| {
            Failure::new(Step::Upload, FailureKind::Status { status, code: code.map(str::to_owned) }, "")
        };
        assert!(is_throttle(&f(429, None)));
        assert!(is_throttle(&f(503, Some("SlowDown"))));
        assert!(is_throttle(&f(200, Some("SlowDown"))));
        assert!(!is_throttle(&f(500, None)));
        assert!(!is_throttle(&Failure::new(Step::Upload, FailureKind::Network, "")));
    }

    #[test]
    fn source_problems() {
        assert_eq!(classify(&Failure::new(Step::Upload, FailureKind::Source, "")), Disposition::FailAsset);
        assert_eq!(classify(&Failure::new(Step::Upload, FailureKind::SourceChanged, "")), Disposition::Retry);
    }
}

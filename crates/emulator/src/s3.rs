//! The S3 POST endpoint: s3s over s3s-fs, checking the forms `content_storage_url` hands out.
//!
//! s3s does the S3 work — SigV4 POST signature, policy expiration and conditions, the multipart form, the
//! XML errors — and s3s-fs stores the objects. Around it we add only what s3s 0.14.1 needs to serve our
//! forms faithfully:
//! - the request body is cut into pieces of at most 16 KiB before s3s sees it: s3s 0.14.1 fails binary
//!   bodies that arrive in larger pieces (`400 InvalidRequest "failed to read file stream"`, internally
//!   `BoundaryBufferTooLarge(…, 65536)`, when a piece ending in a partial boundary match is followed by a
//!   piece over 64 KiB);
//! - a failed policy condition is answered as real S3 does, `403 AccessDenied`, where s3s says
//!   `400 InvalidPolicyDocument`;
//! - only POST Object is allowed: the bucket is private, the form is the client's only right;
//! - stored uploads and refused requests are counted;
//! - faults are injected (see `faults.rs`): error answers in S3's XML, connections dropped in the middle of
//!   the body, lost replies, bodies read slowly.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{HttpError, S3Result, s3_error};

use crate::faults::{Endpoint, Fault, Refusal};
use crate::server::Connection;
use crate::state::{Counter, Shared};

/// The largest piece of request body handed to s3s (see the module docs).
const MAX_PIECE: usize = 16 * 1024;
/// s3s's own clock-skew default, kept as the floor.
const DEFAULT_MAX_SKEW_SECS: i64 = 15 * 60;

/// Builds the s3s service over the store at `shared.storage_root`.
pub(crate) fn service(shared: &Shared) -> std::io::Result<S3Service> {
    let fs = s3s_fs::FileSystem::new(&shared.storage_root)
        .map_err(|e| std::io::Error::other(format!("s3s-fs refused the store: {e:?}")))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(shared.access_key_id.clone(), shared.secret_access_key.clone()));
    builder.set_access(PostObjectOnly);
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_config(shared)))));
    Ok(builder.build())
}

fn s3_config(shared: &Shared) -> S3Config {
    let mut config = S3Config::default();
    // s3s refuses an `x-amz-date` more than this far from now (default 15 min), but a form keeps its
    // issue time as `x-amz-date` for its whole life (24 h by default). Allow the form's lifetime and an
    // hour more, so that an old form is refused by its policy's expiration (403 AccessDenied, as S3 does)
    // rather than by the skew check.
    let skew = shared.form_expiry_secs.saturating_add(3600).max(DEFAULT_MAX_SKEW_SECS);
    config.presigned_url_max_skew_time_secs = u32::try_from(skew).unwrap_or(u32::MAX);
    // s3s takes the smaller of this and the policy's content-length-range; let the policy decide.
    config.post_object_max_file_size = shared.max_object_size;
    config
}

/// Allows signed POST Object requests, and nothing else.
struct PostObjectOnly;

#[async_trait::async_trait]
impl S3Access for PostObjectOnly {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        if cx.s3_op().name() != "PostObject" {
            return Err(s3_error!(AccessDenied, "only POST uploads with a signed form are allowed"));
        }
        Ok(())
    }
}

/// Serves one request on the S3 port, with whatever fault [`Shared::arrive`] decides for it.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    s3: S3Service,
    req: Request<Incoming>,
) -> Result<Response<s3s::Body>, HttpError> {
    let decision = shared.arrive(Endpoint::S3Post);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let connection = req.extensions().get::<Connection>().cloned();
    match decision.fault {
        None => serve(&shared, &s3, req, None).await,
        Some(Fault::SlowBody(pause)) => serve(&shared, &s3, req, Some(pause)).await,
        Some(Fault::Refuse(refusal)) => {
            // Read the body first: an answer sent over an unread body can be lost in the TCP reset that
            // closing such a connection sends.
            read_body(req.into_body(), u64::MAX).await;
            Ok(refusal_response(refusal))
        }
        Some(Fault::Drop) => {
            // In the middle of the body: half of what the client announced, at least one piece.
            let announced = req.body().size_hint().exact().unwrap_or(0);
            read_body(req.into_body(), (announced / 2).max(1)).await;
            Ok(close(connection).await)
        }
        Some(Fault::LostReply) => {
            let _ = serve(&shared, &s3, req, None).await;
            Ok(close(connection).await)
        }
    }
}

/// Hands the request to s3s (its body cut into small pieces, paused between them if `pause` is set), and
/// counts the outcome.
async fn serve(
    shared: &Shared,
    s3: &S3Service,
    req: Request<Incoming>,
    pause: Option<Duration>,
) -> Result<Response<s3s::Body>, HttpError> {
    let is_post = req.method() == hyper::Method::POST;
    let req = req.map(|body| s3s::Body::http_body(SmallPieces::new(body).with_pause(pause)));
    match s3.call(req).await {
        Ok(response) => {
            let response = policy_failure_as_access_denied(response);
            let status = response.status();
            if status.is_client_error() || status.is_server_error() {
                shared.counters.bump(Counter::Rejected);
            } else if is_post {
                shared.counters.bump(Counter::Uploaded);
            }
            Ok(response)
        }
        Err(e) => {
            shared.counters.bump(Counter::Rejected);
            Err(e)
        }
    }
}

/// Reads and discards at least `at_least` bytes of `body` (or all of it, if shorter); returns how many.
pub(crate) async fn read_body(mut body: Incoming, at_least: u64) -> u64 {
    let mut read = 0;
    while read < at_least {
        match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
            Some(Err(_)) | None => break,
        }
    }
    read
}

/// Closes the request's connection without answering. Without one (a request that did not come through
/// `server::spawn`) there is nothing to close: a 500 says so.
pub(crate) async fn close(connection: Option<Connection>) -> Response<s3s::Body> {
    match connection {
        Some(connection) => connection.close().await,
        None => tracing::warn!("cannot drop a connection the emulator's server did not accept"),
    }
    xml_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The connection should have been dropped.")
}

/// An injected error answer, in S3's XML.
fn refusal_response(refusal: Refusal) -> Response<s3s::Body> {
    match refusal {
        Refusal::SlowDown => {
            xml_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Reduce your request rate.")
        }
        Refusal::TooManyRequests { retry_after_secs } => {
            let mut response = xml_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please reduce your request rate.",
            );
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        // The API's own refusals; not decided for S3 requests, answered as S3 would a server fault.
        Refusal::ServerError(_) | Refusal::KeyRevoked | Refusal::RateLimited => xml_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    }
}

pub(crate) fn xml_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(s3s::Body::from(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

/// A request body handed on in pieces of at most [`MAX_PIECE`] bytes (see the module docs), optionally
/// with a pause before each piece after the first (a slow-body fault).
struct SmallPieces<B> {
    inner: B,
    /// What is left of the last piece read from `inner`.
    rest: Bytes,
    pause: Option<Duration>,
    /// The pause under way, before the next piece.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether a piece has been handed on (the first comes without a pause).
    started: bool,
}

impl<B> SmallPieces<B> {
    fn new(inner: B) -> Self {
        Self { inner, rest: Bytes::new(), pause: None, sleep: None, started: false }
    }

    fn with_pause(self, pause: Option<Duration>) -> Self {
        Self { pause, ..self }
    }
}

impl<B> hyper::body::Body for SmallPieces<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if !this.rest.is_empty() {
                if let Some(pause) = this.pause.filter(|_| this.started) {
                    let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                    ready!(sleep.as_mut().poll(cx));
                    this.sleep = None;
                }
                this.started = true;
                let piece = this.rest.split_to(this.rest.len().min(MAX_PIECE));
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint.set_lower(inner.lower() + rest);
        hint
    }
}

/// Answers a failed policy condition the way S3 does.
///
/// s3s 0.14.1 answers `400 InvalidPolicyDocument` "Policy condition '…' failed…" when a form field breaks
/// a condition (e.g. a key outside the `starts-with` prefix). S3 answers `403 AccessDenied` "Invalid
/// according to Policy: Policy Condition failed: …", and a client's error handling must be built for that.
/// We keep s3s's XML and message, and change the status and code.
fn policy_failure_as_access_denied(response: Response<s3s::Body>) -> Response<s3s::Body> {
    const FROM: &str = "<Code>InvalidPolicyDocument</Code><Message>Policy condition ";
    const TO: &str = "<Code>AccessDenied</Code><Message>Invalid according to Policy: Policy condition ";
    if response.status() != StatusCode::BAD_REQUEST {
        return response;
    }
    let Some(xml) = response.body().bytes() else { return response };
    let Ok(xml) = std::str::from_utf8(&xml) else { return response };
    if !xml.contains(FROM) {
        return response;
    }
    let xml = xml.replacen(FROM, TO, 1);
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::FORBIDDEN;
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(xml.len()));
    Response::from_parts(parts, s3s::Body::from(xml))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::path::Path;

    use hyper::Method;
    use hyper::header::{CONTENT_TYPE, HOST};

    use super::*;
    use crate::faults::{FaultConfig, Faults};
    use crate::policy::{FormRequest, sign_form};
    use crate::state::RequestLog;

    const BOUNDARY: &str = "unit-test-boundary";

    /// A body handed over in the pieces given.
    struct Pieces(VecDeque<Bytes>);

    impl hyper::body::Body for Pieces {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
        }
    }

    fn shared(root: &Path) -> Shared {
        Shared {
            api_key: "api-key".into(),
            bucket: "bucket".into(),
            region: "us-east-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            form_expiry_secs: 3600,
            max_object_size: 1 << 30,
            max_key_len: 1024,
            upload_limit_exceeded: false,
            account_disabled: false,
            not_ready_for: std::time::Duration::ZERO,
            asset_errors: Vec::new(),
            async_update_delay: std::time::Duration::ZERO,
            s3_url: "http://localhost/bucket/".into(),
            storage_root: root.to_owned(),
            faults: Faults::new(FaultConfig::default(), std::time::Instant::now()),
            counters: Default::default(),
            requests: RequestLog::new(std::time::Instant::now()),
            ledger: Default::default(),
        }
    }

    /// A signed multipart upload of `file` under `key`, as one byte string.
    fn signed_upload(shared: &Shared, key: &str, file: &[u8]) -> Vec<u8> {
        let fields = sign_form(&FormRequest {
            bucket: &shared.bucket,
            key,
            key_prefix: key,
            max_object_size: shared.max_object_size,
            access_key_id: &shared.access_key_id,
            secret_access_key: &shared.secret_access_key,
            region: &shared.region,
            now: time::OffsetDateTime::now_utc(),
            lifetime: time::Duration::hours(1),
        })
        .unwrap();
        let fields = serde_json::to_value(&fields).unwrap();
        let mut body = Vec::new();
        for (name, value) in fields.as_object().unwrap() {
            let value = value.as_str().unwrap();
            body.extend(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .bytes(),
            );
        }
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n")
                .bytes(),
        );
        body.extend_from_slice(file);
        body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
        body
    }

    /// POSTs `body` to s3s in pieces of `piece_len` bytes, cut again by us or not.
    async fn post_in_pieces(
        s3: &S3Service,
        body: &[u8],
        piece_len: usize,
        recut: bool,
    ) -> Response<s3s::Body> {
        let pieces = Pieces(body.chunks(piece_len).map(Bytes::copy_from_slice).collect());
        let request = Request::builder()
            .method(Method::POST)
            .uri("/bucket/")
            .header(HOST, "localhost")
            .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .header(CONTENT_LENGTH, body.len())
            .body(if recut {
                s3s::Body::http_body(SmallPieces::new(pieces))
            } else {
                s3s::Body::http_body(pieces)
            })
            .unwrap();
        s3.call(request).await.unwrap()
    }

    /// A file whose every 128 KiB piece ends in `\r`, the first byte of the closing boundary `\r\n--…`:
    /// s3s then holds that byte back and appends the whole next piece to it.
    fn carriage_returns() -> Vec<u8> {
        vec![b'\r'; 1024 * 1024]
    }

    fn store() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("bucket")).unwrap();
        let shared = shared(&root);
        (dir, shared)
    }

    /// The s3s 0.14.1 bug we work around. When this fails, s3s has fixed it and `SmallPieces` can go.
    #[tokio::test]
    async fn s3s_fails_a_file_handed_over_in_pieces_over_64_kib() {
        let (_dir, shared) = store();
        let s3 = service(&shared).unwrap();
        let body = signed_upload(&shared, "k", &carriage_returns());

        let response = post_in_pieces(&s3, &body, 128 * 1024, false).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let xml = String::from_utf8(response.into_body().bytes().unwrap().to_vec()).unwrap();
        assert!(xml.contains("<Code>InvalidRequest</Code>"), "{xml}");
        assert!(!shared.object_path("k").exists());
    }

    #[tokio::test]
    async fn cut_into_small_pieces_the_same_file_is_stored() {
        let (_dir, shared) = store();
        let s3 = service(&shared).unwrap();
        let file = carriage_returns();
        let body = signed_upload(&shared, "k", &file);

        let response = post_in_pieces(&s3, &body, 128 * 1024, true).await;

        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(std::fs::read(shared.object_path("k")).unwrap() == file);
    }
}

//! The FileSpin API: `content_storage_url`, `register_asset`, and the emulator's own `/_emulator/*` views.
//!
//! Documented behaviour is cited from "Get Storage Upload URL" (developers.filespin.io), called "the docs"
//! below. Where the docs are silent we say so and document our choice.
//!
//! Error bodies: the docs name the error codes (`MISSING_MANDATORY_PARAMETERS`, `ASSET_ID_EXISTS`,
//! `INVALID_REQUEST`) and statuses but not the body's shape; we answer
//! `{"error": "<CODE>", "message": "<text>"}` for every error.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::faults::{Endpoint, Fault, Refusal};
use crate::keys;
use crate::policy::{self, FormFields, FormRequest};
use crate::server::Connection;
use crate::state::{Counter, IssuedForm, Registration, Shared};

/// The header carrying the API key (docs: `-H "X-FileSpin-Api-Key: YOUR_API_KEY"`).
pub(crate) const API_KEY_HEADER: &str = "x-filespin-api-key";

/// The API's routes, with faults injected into the two FileSpin endpoints, and every 4xx/5xx answer that
/// is not an injected one counted in `stats.rejected`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let faults = |endpoint| middleware::from_fn_with_state((Arc::clone(&shared), endpoint), inject_faults);
    Router::new()
        .route(
            "/api/v1/assets/new/content_storage_url",
            get(content_storage_url).route_layer(faults(Endpoint::ContentStorageUrl)),
        )
        .route(
            "/api/v1/assets/new/register_asset",
            post(register_asset).route_layer(faults(Endpoint::RegisterAsset)),
        )
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/s3_outage", post(s3_outage))
        .route("/_emulator/registrations", get(registrations))
        .route("/_emulator/issued", get(issued))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::map_response_with_state(Arc::clone(&shared), count_rejections))
        .with_state(shared)
}

/// An API error: its status, its code and a message for people.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::bad_request("INVALID_REQUEST", message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// Marks an injected answer, so that it is not counted as a refusal.
#[derive(Debug, Clone, Copy)]
struct Injected;

async fn count_rejections(State(shared): State<Arc<Shared>>, response: Response) -> Response {
    let status = response.status();
    let injected = response.extensions().get::<Injected>().is_some();
    if (status.is_client_error() || status.is_server_error()) && !injected {
        shared.counters.bump(Counter::Rejected);
    }
    response
}

/// Carries out what [`Shared::arrive`] decides for a request to one of the FileSpin endpoints: waits out
/// the latency, then answers an error, drops the connection, or runs the handler (and, for a lost reply,
/// drops the connection after it). See `faults.rs` for the order of the checks.
async fn inject_faults(
    State((shared, endpoint)): State<(Arc<Shared>, Endpoint)>,
    request: Request,
    next: Next,
) -> Response {
    let decision = shared.arrive(endpoint);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let connection = request.extensions().get::<Connection>().cloned();
    match decision.fault {
        None | Some(Fault::SlowBody(_)) => next.run(request).await,
        Some(Fault::Refuse(refusal)) => {
            // Read the body first: an answer sent over an unread body can be lost in the TCP reset that
            // closing such a connection sends.
            let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
            let mut response = refusal_response(refusal);
            response.extensions_mut().insert(Injected);
            response
        }
        Some(Fault::Drop) => close(connection).await,
        Some(Fault::LostReply) => {
            let _ = next.run(request).await;
            close(connection).await
        }
    }
}

/// Closes the request's connection without answering. Without one (a request that did not come through
/// `server::spawn`) there is nothing to close: a 500 says so.
async fn close(connection: Option<Connection>) -> Response {
    match connection {
        Some(connection) => connection.close().await,
        None => tracing::warn!("cannot drop a connection the emulator's server did not accept"),
    }
    let mut response = ApiError::internal("the connection should have been dropped").into_response();
    response.extensions_mut().insert(Injected);
    response
}

/// An injected error answer, as FileSpin (or the load balancer in front of it) would send it.
fn refusal_response(refusal: Refusal) -> Response {
    let too_many = |retry_after_secs: u64| {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_EXCEEDED",
            "Rate limit exceeded; retry after the time in Retry-After",
        )
        .into_response();
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    };
    // What a load balancer answers when the service behind it is down: HTML, not FileSpin's JSON.
    let html = |status: StatusCode| {
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}\
             </h1></center>\r\n</body>\r\n</html>\r\n",
            code = status.as_u16()
        );
        let mut response = (status, Body::from(body)).into_response();
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        response
    };
    match refusal {
        Refusal::KeyRevoked => {
            ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "invalid API key (revoked)")
                .into_response()
        }
        Refusal::RateLimited => too_many(1),
        Refusal::TooManyRequests { retry_after_secs } => too_many(retry_after_secs),
        Refusal::ServerError(StatusCode::INTERNAL_SERVER_ERROR) => {
            ApiError::internal("internal server error (injected fault)").into_response()
        }
        Refusal::ServerError(status) => html(status),
        Refusal::SlowDown => html(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// Checks the API key, then the account's state.
///
/// Docs: 401 "Unauthorized — invalid or missing authentication"; 403 for "Upload limit exceeded (FREE
/// plan)" and "User account is disabled". The docs do not say whether a disabled account or a spent upload
/// limit also refuses `register_asset`; we refuse both endpoints.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |message| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
    match headers.get(API_KEY_HEADER) {
        None => return Err(unauthorized("missing X-FileSpin-Api-Key header")),
        Some(key) if key.as_bytes() != shared.api_key.as_bytes() => {
            return Err(unauthorized("invalid API key"));
        }
        Some(_) => {}
    }
    let forbidden = |message| Err(ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message));
    if shared.account_disabled {
        return forbidden("User account is disabled");
    }
    if shared.upload_limit_exceeded {
        return forbidden("Upload limit exceeded");
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct StorageUrlQuery {
    filename: Option<String>,
    protocol: Option<String>,
}

/// The answer of `content_storage_url`, shaped like the docs' example response.
#[derive(Debug, Serialize)]
struct StorageUrlResponse {
    asset_id: String,
    storage: Storage,
}

#[derive(Debug, Serialize)]
struct Storage {
    name: String,
    url: String,
    fields: FormFields,
    protocol: &'static str,
    expiry: i64,
    /// The object key with a leading `/`, as in the docs' example.
    key: String,
    bucket: String,
    storage_type: &'static str,
}

/// `GET /api/v1/assets/new/content_storage_url?filename=…`
async fn content_storage_url(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<StorageUrlQuery>, QueryRejection>,
) -> Result<Json<StorageUrlResponse>, ApiError> {
    authorize(&shared, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("unreadable query string: {e}")))?;

    // Docs: 400 MISSING_MANDATORY_PARAMETERS — "`filename` query parameter is missing". An empty one we
    // treat as missing (docs silent).
    let filename = query.filename.filter(|f| !f.is_empty()).ok_or_else(|| {
        ApiError::bad_request("MISSING_MANDATORY_PARAMETERS", "the filename query parameter is missing")
    })?;
    // Docs: 400 INVALID_REQUEST — "unsupported protocol value"; the response's `protocol` is "POST", the
    // only one we support. Case-insensitive (docs silent).
    if let Some(protocol) = query.protocol.filter(|p| !p.eq_ignore_ascii_case("POST")) {
        return Err(ApiError::invalid(format!("unsupported protocol {protocol:?}: only POST is supported")));
    }

    let asset_id = keys::new_asset_id();
    let key = keys::object_key(&asset_id, &filename, shared.max_key_len);
    let fields = policy::sign_form(&FormRequest {
        bucket: &shared.bucket,
        key: &key,
        key_prefix: &keys::key_prefix(&asset_id),
        max_object_size: shared.max_object_size,
        access_key_id: &shared.access_key_id,
        secret_access_key: &shared.secret_access_key,
        region: &shared.region,
        now: OffsetDateTime::now_utc(),
        lifetime: Duration::seconds(shared.form_expiry_secs),
    })
    // Docs: 500 "Internal server error — storage URL generation failed".
    .map_err(|e| ApiError::internal(format!("storage URL generation failed: {e}")))?;

    shared.ledger.record_issued(IssuedForm {
        asset_id: asset_id.clone(),
        filename: filename.clone(),
        key: key.clone(),
    });
    shared.counters.bump(Counter::Issued);

    Ok(Json(StorageUrlResponse {
        asset_id,
        storage: Storage {
            name: filename,
            url: shared.s3_url.clone(),
            fields,
            protocol: "POST",
            // Docs: "The returned URL is valid for 24 hours (expiry: 86400 seconds)".
            expiry: shared.form_expiry_secs,
            key: format!("/{key}"),
            bucket: shared.bucket.clone(),
            storage_type: "AMAZON_S3",
        },
    }))
}

/// A `register_asset` request, checked field by field.
///
/// Docs: the request example carries `asset_id`, `size`, `checksum` (MD5 hex), `upload_time`,
/// `upload_started_at`, `upload_completed_at` and `service_data`; which of them are mandatory is not
/// stated. We require `asset_id`, `size` and `checksum` (400 MISSING_MANDATORY_PARAMETERS) and keep the
/// rest as sent. A field of the wrong type is 400 INVALID_REQUEST (docs silent).
#[derive(Debug)]
struct RegisterRequest {
    asset_id: String,
    size: u64,
    checksum: String,
    upload_time: Option<String>,
    upload_started_at: Option<String>,
    upload_completed_at: Option<String>,
    service_data: Value,
}

impl RegisterRequest {
    fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
        let Value::Object(body) = body else {
            return Err(ApiError::invalid("the body must be a JSON object"));
        };
        let present = |name: &str| match body.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(value) => Some(value),
        };

        let missing: Vec<&str> =
            ["asset_id", "size", "checksum"].into_iter().filter(|n| present(n).is_none()).collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(
                "MISSING_MANDATORY_PARAMETERS",
                format!("missing mandatory parameters: {}", missing.join(", ")),
            ));
        }
        let string = |name: &str| match present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
        };

        let asset_id = string("asset_id")?.unwrap_or_default();
        let size = present("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::invalid("size must be a non-negative integer"))?;
        let checksum = string("checksum")?.unwrap_or_default();
        if checksum.len() != 32 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid("checksum must be an MD5 digest in hex (32 hex digits)"));
        }
        Ok(Self {
            asset_id,
            size,
            checksum: checksum.to_ascii_lowercase(),
            upload_time: string("upload_time")?,
            upload_started_at: string("upload_started_at")?,
            upload_completed_at: string("upload_completed_at")?,
            service_data: body.get("service_data").cloned().unwrap_or(Value::Null),
        })
    }
}

/// `POST /api/v1/assets/new/register_asset`
///
/// The docs give the request but neither the success body nor the errors beyond `ASSET_ID_EXISTS`
/// ("the provided `asset_id` already exists"). Our choices:
/// - 200 `{"asset_id": "…", "status": "registered"}` on success;
/// - 404 `ASSET_NOT_FOUND`: no form was ever issued for this `asset_id`;
/// - 400 `ASSET_ID_EXISTS`: the asset is registered already;
/// - 400 `OBJECT_NOT_FOUND`: nothing was uploaded under the asset's key;
/// - 400 `SIZE_MISMATCH` / `CHECKSUM_MISMATCH`: the stored object's size / MD5 differ from the request.
async fn register_asset(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&shared, &headers)?;
    let req = RegisterRequest::from_json(&body)?;

    let form = shared.ledger.issued_form(&req.asset_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ASSET_NOT_FOUND",
            format!("no asset {} was issued", req.asset_id),
        )
    })?;
    let exists =
        || ApiError::bad_request("ASSET_ID_EXISTS", format!("asset {} already exists", req.asset_id));
    if shared.ledger.is_registered(&req.asset_id) {
        return Err(exists());
    }
    check_stored_object(shared.object_path(&form.key), req.size, &req.checksum).await?;

    let registration = Registration {
        asset_id: req.asset_id.clone(),
        key: form.key,
        filename: form.filename,
        size: req.size,
        checksum: req.checksum,
        upload_time: req.upload_time,
        upload_started_at: req.upload_started_at,
        upload_completed_at: req.upload_completed_at,
        service_data: req.service_data,
    };
    // A concurrent registration of the same asset may have won while we were hashing.
    shared.ledger.record_registration(registration).map_err(|_| exists())?;
    shared.counters.bump(Counter::Registered);
    Ok(Json(serde_json::json!({ "asset_id": req.asset_id, "status": "registered" })))
}

/// What the store holds under an asset's key, compared with what the client declared.
enum StoredObject {
    Missing,
    OtherSize(u64),
    /// The size matched; this is the stored bytes' MD5.
    SameSize {
        md5: String,
    },
}

/// Checks the stored object against the declared size, then MD5 (hashed off the async workers).
async fn check_stored_object(path: std::path::PathBuf, size: u64, checksum: &str) -> Result<(), ApiError> {
    let stored = tokio::task::spawn_blocking(move || inspect_object(&path, size))
        .await
        .map_err(|e| ApiError::internal(format!("reading the stored object failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("reading the stored object failed: {e}")))?;
    match stored {
        StoredObject::Missing => {
            Err(ApiError::bad_request("OBJECT_NOT_FOUND", "no file has been uploaded for this asset"))
        }
        StoredObject::OtherSize(stored) => Err(ApiError::bad_request(
            "SIZE_MISMATCH",
            format!("size {size} does not match the uploaded file's {stored} bytes"),
        )),
        StoredObject::SameSize { md5 } if md5 != checksum => Err(ApiError::bad_request(
            "CHECKSUM_MISMATCH",
            format!("checksum {checksum} does not match the uploaded file's MD5 {md5}"),
        )),
        StoredObject::SameSize { .. } => Ok(()),
    }
}

fn inspect_object(path: &Path, size: u64) -> io::Result<StoredObject> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoredObject::Missing),
        Err(e) => return Err(e),
    };
    let stored = file.metadata()?.len();
    if stored != size {
        return Ok(StoredObject::OtherSize(stored));
    }
    let mut hasher = Md5::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(StoredObject::SameSize { md5: hex::encode(hasher.finalize()) })
}

/// `GET /_emulator/stats` (no auth): the [`Stats`](crate::Stats) as JSON.
async fn stats(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(shared.counters.snapshot())
}

#[derive(Debug, Deserialize)]
struct OutageQuery {
    #[serde(rename = "for")]
    length: String,
}

/// `POST /_emulator/s3_outage?for=<duration>` (no auth): starts an S3 outage now, as
/// [`Emulator::set_s3_outage`](crate::Emulator::set_s3_outage) does; `<duration>` as in a fault spec
/// (`10s`, `1500ms`). Answers 204.
async fn s3_outage(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<OutageQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("expected ?for=<duration>: {e}")))?;
    let length = crate::faults::parse_duration(&query.length).map_err(ApiError::invalid)?;
    shared.faults.set_s3_outage(length);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /_emulator/registrations` (no auth): every [`Registration`], in order.
async fn registrations(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(shared.ledger.registrations())
}

/// `GET /_emulator/issued` (no auth): every [`IssuedForm`], in order.
async fn issued(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(shared.ledger.issued())
}

/// Any other path (docs silent): 404 `NOT_FOUND`.
async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

/// A known path with another method (docs silent): 405 `METHOD_NOT_ALLOWED`.
async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed on this endpoint")
}

//! The FileSpin API: `content_storage_url`, `register_asset`, Get Data, Update Data, and the emulator's own
//! `/_emulator/*` views.
//!
//! Documented behaviour of the upload is cited from "Get Storage Upload URL" (developers.filespin.io),
//! called "the docs" below; that of the data endpoints from the pages named at each (all on
//! developers.filespin.io): "Asset Data Format" (`/reference/asset-api`, `/api/asset-data-format`),
//! "Assets - Data" (`/api-reference/assets/assets-data`), "Update Data" (`/reference/asset-update-data`,
//! `/api-reference/assets/update-data-post`), "Update with Higher Throughput"
//! (`/api-reference/assets/update-higher-throughput`) and "Response Codes" (`/reference/api-response-codes`).
//! Where the docs are silent we say so and document our choice.
//!
//! Error bodies: the docs name the error codes (`MISSING_MANDATORY_PARAMETERS`, `ASSET_ID_EXISTS`,
//! `INVALID_REQUEST`) and statuses but not the body's shape; we answer
//! `{"error": "<CODE>", "message": "<text>"}` for every error.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::faults::{Endpoint, Fault, Refusal};
use crate::keys;
use crate::policy::{self, FormFields, FormRequest};
use crate::server::Connection;
use crate::state::{
    AssetStatus, AssetView, Counter, DataUpdate, IssuedForm, Registration, Shared, UpdateMode, Visible,
};

/// The header carrying the API key (docs: `-H "X-FileSpin-Api-Key: YOUR_API_KEY"`).
pub(crate) const API_KEY_HEADER: &str = "x-filespin-api-key";

/// "Maximum payload size is limited to 2000 characters" ("Update Data", API Limits). The docs do not say
/// what is counted; we count the characters (Unicode scalar values) of the `data` object written as
/// compact JSON (`serde_json::to_string`: no whitespace), not the whole body: that is the part FileSpin
/// stores, and it does not depend on how the client spaces its JSON.
pub(crate) const MAX_DATA_CHARS: usize = 2000;

/// "custom data fields sent for update do not begin with `_filespin`. This is a reserved field prefix
/// … Data fields that begin with `_filespin` are not user updateable" ("Update Data").
const RESERVED_PREFIX: &str = "_filespin";

/// The API's routes, with faults injected into the four FileSpin endpoints, and every 4xx/5xx answer that
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
        .route("/api/v1/assets/{asset_id}/data", get(asset_data).route_layer(faults(Endpoint::AssetData)))
        .route(
            "/api/v1/assets/{asset_id}/data/update",
            post(update_data).route_layer(faults(Endpoint::UpdateData)),
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

/// Checks the API key, then the account's state, for the two upload endpoints.
///
/// Docs: 401 "Unauthorized — invalid or missing authentication"; 403 for "Upload limit exceeded (FREE
/// plan)" and "User account is disabled". The docs do not say whether a disabled account or a spent upload
/// limit also refuses `register_asset`; we refuse both endpoints.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    authorize_account(shared, headers)?;
    if shared.upload_limit_exceeded {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "Upload limit exceeded"));
    }
    Ok(())
}

/// Checks the API key, then that the account is enabled: for every endpoint. A spent upload limit does
/// not stop an account from reading and updating its assets' data (docs silent; the limit is on uploads).
fn authorize_account(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |message| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
    match headers.get(API_KEY_HEADER) {
        None => return Err(unauthorized("missing X-FileSpin-Api-Key header")),
        Some(key) if key.as_bytes() != shared.api_key.as_bytes() => {
            return Err(unauthorized("invalid API key"));
        }
        Some(_) => {}
    }
    if shared.account_disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "User account is disabled"));
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
    shared.ledger.record_registration(registration, Instant::now()).map_err(|_| exists())?;
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

/// The asset id from the path.
fn path_asset_id(path: Result<UrlPath<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|UrlPath(asset_id)| asset_id).map_err(|e| ApiError::invalid(format!("unreadable asset id: {e}")))
}

/// An asset id that no registration has (docs silent on both endpoints' answer; "Response Codes": "404
/// Not Found -- Requested resource is not found"). An asset whose form was issued but that was never
/// registered is unknown too: its file is not FileSpin's yet.
fn unknown_asset(asset_id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "ASSET_NOT_FOUND", format!("no asset {asset_id}"))
}

/// `GET /api/v1/assets/{asset_id}/data` ("Get Data"): the asset in the Asset Data Format.
async fn asset_data(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    path: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize_account(&shared, &headers)?;
    let asset_id = path_asset_id(path)?;
    let now = Instant::now();
    let asset = shared.ledger.asset(&asset_id, now).ok_or_else(|| unknown_asset(&asset_id))?;
    Ok(Json(asset_json(&shared, &asset, now)))
}

/// An asset in the Asset Data Format ("Asset Data Format": "FileSpin returns Asset data in a standard
/// JSON format as below for all Asset API calls"), with the fields the emulator knows: `size` and
/// `checksum` as registered, `name` the file name given to `content_storage_url`, `metadata`,
/// `conversions` and `addons_info` empty (the emulator processes nothing), `data` the custom data.
///
/// Where FileSpin says why an asset is in `ERROR` the docs do not show; we put the reason in a
/// top-level `message`, as FileSpin's "Ingest from URI" answer does beside its own `"status": "ERROR"`.
fn asset_json(shared: &Shared, asset: &AssetView, now: Instant) -> Value {
    let (status, reason) = shared.asset_status(asset, now);
    let registration = &asset.registration;
    let mut json = serde_json::json!({
        "id": registration.asset_id,
        "status": status.as_str(),
        "name": registration.filename,
        "size": registration.size,
        "checksum": registration.checksum,
        "provider": "local",
        "storage_type": "AMAZON_S3",
        "bucket": shared.bucket,
        "key": format!("/{}", registration.key),
        "public": false,
        "content_type": content_type(&registration.filename),
        "upload_time": registration.upload_time,
        "metadata": {},
        "data": asset.data,
        "conversions": {},
        "addons_info": {},
    });
    if let Some(object) = json.as_object_mut() {
        if let Some(id) = asset.data_schema_id {
            object.insert("data_schema_id".into(), Value::from(id));
        }
        if let Some(reason) = reason {
            object.insert("message".into(), Value::from(reason));
        }
    }
    json
}

/// A MIME type from the file name's extension, for the few kinds a test meets; else
/// `application/octet-stream`.
fn content_type(filename: &str) -> &'static str {
    let extension = filename.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, Deserialize)]
struct UpdateQuery {
    #[serde(rename = "async")]
    asynchronous: Option<String>,
}

/// An Update Data body, checked field by field.
///
/// Docs ("Update Data"): "The request body should be a JSON with data and mode keys"; `data` is "JSON data
/// to be saved with the file" (every example is an object, and APPEND merges its keys, so we require an
/// object); `mode` is `APPEND` or `REPLACE`; `data_schema_id` is optional. Missing `data` or `mode` is
/// 400 `MISSING_MANDATORY_PARAMETERS`, a wrong type or value 400 `INVALID_REQUEST` (the codes of the
/// upload pages; docs silent here). `mode` must be spelt as documented, in capitals. Other fields are
/// ignored.
fn parse_update(body: &[u8]) -> Result<DataUpdate, ApiError> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?;
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid("the body must be a JSON object with data and mode"));
    };
    let missing: Vec<&str> =
        ["data", "mode"].into_iter().filter(|k| body.get(*k).is_none_or(Value::is_null)).collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            "MISSING_MANDATORY_PARAMETERS",
            format!("missing mandatory parameters: {}", missing.join(", ")),
        ));
    }
    let mode = match body.get("mode").and_then(Value::as_str) {
        Some("APPEND") => UpdateMode::Append,
        Some("REPLACE") => UpdateMode::Replace,
        _ => {
            let given = body.get("mode").map(Value::to_string).unwrap_or_default();
            return Err(ApiError::invalid(format!("mode must be APPEND or REPLACE, not {given}")));
        }
    };
    let data_schema_id = match body.get("data_schema_id") {
        None | Some(Value::Null) => None,
        Some(id) => Some(
            id.as_u64().ok_or_else(|| ApiError::invalid("data_schema_id must be a non-negative integer"))?,
        ),
    };
    let data: Map<String, Value> = match body.remove("data") {
        Some(Value::Object(data)) => data,
        _ => return Err(ApiError::invalid("data must be a JSON object")),
    };
    let chars = serde_json::to_string(&data).map(|text| text.chars().count()).unwrap_or(usize::MAX);
    if chars > MAX_DATA_CHARS {
        return Err(ApiError::invalid(format!(
            "the data is {chars} characters of JSON; the most FileSpin takes is {MAX_DATA_CHARS}"
        )));
    }
    let reserved: Vec<&str> =
        data.keys().filter(|key| key.starts_with(RESERVED_PREFIX)).map(String::as_str).collect();
    if !reserved.is_empty() {
        return Err(ApiError::invalid(format!(
            "fields beginning with {RESERVED_PREFIX} are reserved by FileSpin and not user updateable: {}",
            reserved.join(", ")
        )));
    }
    Ok(DataUpdate { data, mode, data_schema_id })
}

/// `POST /api/v1/assets/{asset_id}/data/update[?async=1]` ("Update Data", "Update with Higher
/// Throughput").
///
/// - 200 with the asset in the Asset Data Format, the update applied (the docs give the status, not the
///   body; "Asset Data Format" says every Asset API call answers in that format);
/// - 202, the same body, with `?async=1`: applied after [`EmulatorConfig::async_update_delay`]
///   (default: at once) — "Get Data and Search may take seconds to minutes to reflect metadata changes".
///   `async` takes `1` or `true` (and `0`, `false` or nothing for the synchronous update); another value
///   is 400 `INVALID_REQUEST` (docs silent). FileSpin also answers 202 "if Asset Metadata is being updated
///   by another process at the same time"; the emulator applies each update at once, atomically, so it
///   never meets one in progress and gives that 202 only for `?async=1`;
/// - 400 `NOT_READY` while the asset is `NOT_READY` ("this API will return HTTP 400. … retry after a few
///   seconds"; the docs show no body: ours is the usual `{"error": "NOT_READY", "message": …}`);
/// - 400 `INVALID_REQUEST` for a `data` over [`MAX_DATA_CHARS`] or with a `_filespin…` field, and the
///   body errors of [`parse_update`];
/// - 404 `ASSET_NOT_FOUND` for an asset that is not registered (docs silent).
///
/// An asset in `ERROR` takes updates (docs silent: only an `ARCHIVED` asset is documented as read-only,
/// and the emulator archives nothing). The checks run in this order: key and account, asset, body,
/// status — so a body that can never succeed is refused as such even while the asset is `NOT_READY`.
///
/// [`EmulatorConfig::async_update_delay`]: crate::EmulatorConfig::async_update_delay
async fn update_data(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    path: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<UpdateQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize_account(&shared, &headers)?;
    let asset_id = path_asset_id(path)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("unreadable query string: {e}")))?;
    let asynchronous = match query.asynchronous.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => return Err(ApiError::invalid(format!("async must be 1 or 0, not {other:?}"))),
    };
    let now = Instant::now();
    let asset = shared.ledger.asset(&asset_id, now).ok_or_else(|| unknown_asset(&asset_id))?;
    let update = parse_update(&body)?;
    if shared.asset_status(&asset, now).0 == AssetStatus::NotReady {
        return Err(ApiError::bad_request(
            "NOT_READY",
            format!(
                "asset {asset_id} is NOT_READY: its file is still being saved to storage; retry after a \
                 few seconds"
            ),
        ));
    }
    let visible =
        if asynchronous { Visible::At(now.checked_add(shared.async_update_delay)) } else { Visible::Now };
    shared.ledger.update_data(&asset_id, update, visible, now).map_err(|_| unknown_asset(&asset_id))?;
    let asset = shared.ledger.asset(&asset_id, now).ok_or_else(|| unknown_asset(&asset_id))?;
    let status = if asynchronous { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(asset_json(&shared, &asset, now))).into_response())
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

//! The client: one shared `reqwest::Client` for the two FileSpin calls and the S3 POST.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use spinlift_core::Step;
use tokio::io::AsyncRead;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::api_error::ApiError;
use crate::clock;
use crate::config::{ClientConfig, transport_allowed};
use crate::data::{AssetData, DataUpdate, UpdateOutcome, says_not_ready};
use crate::error::TransportError;
use crate::form::UploadForm;
use crate::limit::RateLimit;
use crate::multipart::{self, BodyFailure, BodyOutcome, CHUNK_SIZE, Frame, Pacing, Prefetch, Progress};
use crate::redact::{scrub, url_without_query};
use crate::register::{RegisterOutcome, RegisterRequest, UploadReceipt};
use crate::retry_after::retry_after_ms;
use crate::s3_error::S3Error;
use crate::secret::Secret;
use crate::stats::TransportStats;

/// The most of an error answer's body that is read (and of a success answer that is not a form).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The most of a `content_storage_url` answer that is read; a form is a few KiB.
const FORM_BODY_LIMIT: usize = 1024 * 1024;
/// The most of a Get Data answer that is read: custom data is at most 2,000 characters, but conversions
/// and addon details come with it.
const ASSET_DATA_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// FileSpin's API key header ("Get Storage Upload URL", developers.filespin.io).
const API_KEY_HEADER: &str = "X-FileSpin-Api-Key";
const CONTENT_STORAGE_URL_PATH: &str = "/api/v1/assets/new/content_storage_url";
const REGISTER_ASSET_PATH: &str = "/api/v1/assets/new/register_asset";

/// A FileSpin client: `Clone` is cheap (one `Arc`), and every clone shares one connection pool, the
/// limits (concurrent uploads, requests per second, bandwidth) and the [`stats`](Self::stats).
///
/// The client makes one attempt per call: retries, backoff and fresh forms are the engine's, driven
/// by core's classification of [`TransportError::to_failure`].
#[derive(Clone)]
pub struct FileSpinClient {
    inner: Arc<Inner>,
}

/// An API endpoint: its URL, and how errors name it.
struct Endpoint {
    url: url::Url,
    target: String,
}

/// How errors name the API endpoint at `path`: `FileSpin at https://app.filespin.io/api/v1/…`.
fn target_of(api_base: &str, path: &str) -> String {
    format!("FileSpin at {}{path}", url_without_query(api_base).trim_end_matches('/'))
}

struct Inner {
    http: reqwest::Client,
    /// `api_url` without a trailing slash.
    api_base: String,
    /// The two endpoints every file calls, parsed once: a URL parse per request (host, IDNA) was
    /// measured at 2–3 % of the engine's CPU on small files.
    form_endpoint: Endpoint,
    register_endpoint: Endpoint,
    api_key: Secret,
    api_timeout: Duration,
    stall_timeout: Duration,
    uploads: Semaphore,
    /// FileSpin API requests per second, every API call together.
    api_rate: Option<RateLimit>,
    /// S3 POSTs per second.
    s3_rate: Option<RateLimit>,
    /// The upload bodies' bandwidth limit and the byte counter, shared with every body stream.
    pacing: Pacing,
    /// Plain http allowed beyond loopback.
    allow_http: bool,
}

impl std::fmt::Debug for FileSpinClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpinClient")
            .field("api_url", &url_without_query(&self.inner.api_base))
            .field("api_key", &self.inner.api_key)
            .field("api_timeout", &self.inner.api_timeout)
            .field("upload_stall_timeout", &self.inner.stall_timeout)
            .field("api_rps", &self.inner.api_rate)
            .field("s3_rps", &self.inner.s3_rate)
            .field("bandwidth", &self.inner.pacing.bandwidth)
            .finish_non_exhaustive()
    }
}

impl FileSpinClient {
    /// A client for the FileSpin at `config.api_url`.
    pub fn new(config: ClientConfig) -> Result<Self, TransportError> {
        let config_error = |message: String| TransportError::Config { message };
        let parsed = url::Url::parse(&config.api_url).map_err(|e| {
            config_error(format!("api_url {:?} is not a URL: {e}", url_without_query(&config.api_url)))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(config_error(format!(
                "api_url {:?} is not an http(s) URL",
                url_without_query(&config.api_url)
            )));
        }
        if parsed.query().is_some() {
            return Err(config_error("api_url must not have a query".to_owned()));
        }
        if !transport_allowed(&parsed, config.allow_http) {
            return Err(config_error(format!(
                "refusing plain http to {:?}: the API key would cross the network unencrypted; use https, \
                 or allow it with --allow-http",
                url_without_query(&config.api_url)
            )));
        }
        if config.max_concurrent_uploads == 0 {
            return Err(config_error("max_concurrent_uploads must be at least 1".to_owned()));
        }
        if HeaderValue::from_str(config.api_key.expose()).is_err() {
            return Err(config_error("the API key contains characters a header cannot carry".to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            // A redirected POST cannot replay a streamed body, and a pre-signed form is for one URL.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_keepalive(Duration::from_secs(30))
            // S3 closes idle connections after about 20 s; a pooled connection older than that would
            // fail the next upload that picks it.
            .pool_idle_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| config_error(format!("the HTTP client could not be built: {e}")))?;
        let api_base = parsed.as_str().trim_end_matches('/').to_owned();
        let endpoint = |path: &str| -> Result<Endpoint, TransportError> {
            Ok(Endpoint {
                url: url::Url::parse(&format!("{api_base}{path}"))
                    .map_err(|e| config_error(format!("bad API URL: {e}")))?,
                target: target_of(&api_base, path),
            })
        };
        let (form_endpoint, register_endpoint) =
            (endpoint(CONTENT_STORAGE_URL_PATH)?, endpoint(REGISTER_ASSET_PATH)?);
        Ok(FileSpinClient {
            inner: Arc::new(Inner {
                http,
                api_base,
                form_endpoint,
                register_endpoint,
                api_key: config.api_key,
                api_timeout: config.api_timeout,
                stall_timeout: config.upload_stall_timeout,
                uploads: Semaphore::new(config.max_concurrent_uploads),
                api_rate: config.api_rps.map(RateLimit::requests_per_second),
                s3_rate: config.s3_rps.map(RateLimit::requests_per_second),
                pacing: Pacing {
                    bandwidth: config.bandwidth.map(|rate| Arc::new(bandwidth_limit(rate))),
                    counters: Arc::default(),
                },
                allow_http: config.allow_http,
            }),
        })
    }

    /// What this client and its clones have sent so far: every attempt counts.
    pub fn stats(&self) -> TransportStats {
        self.inner.pacing.counters.snapshot()
    }

    /// Step 1: `GET {api_url}/api/v1/assets/new/content_storage_url?filename=…` with
    /// `X-FileSpin-Api-Key` ("Get Storage Upload URL", developers.filespin.io). FileSpin answers with a
    /// new `asset_id` and a pre-signed S3 POST form.
    pub async fn request_form(&self, filename: &str) -> Result<UploadForm, TransportError> {
        let step = Step::RequestForm;
        let Endpoint { url, target } = &self.inner.form_endpoint;
        let mut url = url.clone();
        url.query_pairs_mut().append_pair("filename", filename);
        let response = self.get_json(url, step, target).await?;
        let received_at = clock::now();
        let status = response.status();
        if !status.is_success() {
            return Err(self.api_status_error(step, response).await);
        }
        let body = read_whole(response, FORM_BODY_LIMIT, step, target).await?;
        UploadForm::from_answer(&body, received_at).map_err(|message| TransportError::InvalidResponse {
            step,
            message: scrub(&message, [self.inner.api_key.expose()]),
        })
    }

    /// Step 2: POSTs the file at `path` to storage with `form`: every form field first, in the order
    /// received, then the file as `file`. The length is announced up front; the file is read once, in
    /// chunks, its MD5 computed on the way. `on_bytes` is called with the number of file bytes in each
    /// chunk as the connection takes it.
    ///
    /// Fails before sending anything when the form has expired ([`TransportError::FormExpired`]), the
    /// file cannot be opened ([`TransportError::Source`]) or is larger than the form allows
    /// ([`TransportError::TooLarge`]). A file whose length changes while it is read fails with
    /// [`TransportError::SourceChanged`], and the upload is cut off before its end.
    pub async fn upload_file(
        &self,
        form: &UploadForm,
        path: &Path,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<UploadReceipt, TransportError> {
        check_expiry(form)?;
        let prepared = self.prepare_file(path).await?;
        self.upload_prepared(form, prepared, on_bytes).await
    }

    /// The first half of [`upload_file`](Self::upload_file), which needs no form: opens the file, checks
    /// that it is a regular file, and reads its first chunk (for a small file: all of it, and that it
    /// ends there), in one hand-off to a thread where blocking is allowed. A caller that must wait for
    /// something else before the upload may start (its journal) does this meanwhile.
    ///
    /// Fails with [`TransportError::Source`] when the file cannot be opened or is not a regular file.
    /// What was read is sent by [`upload_prepared`](Self::upload_prepared) as if read then: a file that
    /// turns out shorter or longer than it was fails the upload the same way.
    pub async fn prepare_file(&self, path: &Path) -> Result<PreparedFile, TransportError> {
        let owned = path.to_owned();
        match tokio::task::spawn_blocking(move || PreparedFile::open(owned)).await {
            Ok(prepared) => prepared,
            Err(e) => Err(TransportError::Source {
                step: Step::Upload,
                path: path.to_owned(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// The second half of [`upload_file`](Self::upload_file): POSTs a file [prepared](Self::prepare_file)
    /// before, with `form`.
    pub async fn upload_prepared(
        &self,
        form: &UploadForm,
        prepared: PreparedFile,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<UploadReceipt, TransportError> {
        check_expiry(form)?;
        let PreparedFile { path, file, len, prefetch } = prepared;
        check_size(form, len, &path)?;
        let filename = path.file_name().map_or_else(|| "file".into(), |name| name.to_string_lossy());
        let reader = tokio::fs::File::from_std(file);
        self.upload(form, Content { reader, len, prefetch }, &filename, &path, on_bytes).await
    }

    /// Step 2 from any reader of known length (a remote source, for instance): as
    /// [`upload_file`](Self::upload_file), with `filename` as the file part's name and in errors. If the
    /// reader yields fewer or more bytes than `len`, the upload fails with
    /// [`TransportError::SourceChanged`] and is cut off before its end, so storage does not take it.
    pub async fn upload_reader<R>(
        &self,
        form: &UploadForm,
        reader: R,
        len: u64,
        filename: &str,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<UploadReceipt, TransportError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        check_expiry(form)?;
        check_size(form, len, Path::new(filename))?;
        let content = Content { reader, len, prefetch: Prefetch::default() };
        self.upload(form, content, filename, Path::new(filename), on_bytes).await
    }

    /// Step 2 from a source opened elsewhere (`spinlift-source`: a local file, an S3, GCS or Azure
    /// object, an HTTP(S) URL), some of whose bytes may have been read already: as
    /// [`upload_reader`](Self::upload_reader), with `body.prefix` sent first as if read then, and
    /// `body.name` naming the source in errors. A reader that breaks off (reset, early end, stall)
    /// fails with [`TransportError::SourceInterrupted`], which is retried.
    pub async fn upload_source<R>(
        &self,
        form: &UploadForm,
        body: SourceBody<R>,
        filename: &str,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<UploadReceipt, TransportError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        check_expiry(form)?;
        let shown = PathBuf::from(&body.name);
        check_size(form, body.len, &shown)?;
        let prefetch = Prefetch::from_prefix(body.prefix, body.len, body.ended);
        let content = Content { reader: body.reader, len: body.len, prefetch };
        self.upload(form, content, filename, &shown, on_bytes).await
    }

    /// GETs JSON from the API at `url` with the key, under the API rate limit and timeout.
    async fn get_json(
        &self,
        url: reqwest::Url,
        step: Step,
        target: &str,
    ) -> Result<reqwest::Response, TransportError> {
        self.before_api_request().await;
        self.inner
            .http
            .get(url)
            .header(API_KEY_HEADER, self.key_header())
            .header(ACCEPT, "application/json")
            .timeout(self.inner.api_timeout)
            .send()
            .await
            .map_err(|e| TransportError::from_reqwest(step, target, e))
    }

    /// POSTs a JSON `body` to the API at `url` with the key, under the API rate limit and timeout.
    async fn post_json(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
        step: Step,
        target: &str,
    ) -> Result<reqwest::Response, TransportError> {
        self.before_api_request().await;
        self.inner
            .http
            .post(url)
            .header(API_KEY_HEADER, self.key_header())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .timeout(self.inner.api_timeout)
            .send()
            .await
            .map_err(|e| TransportError::from_reqwest(step, target, e))
    }

    /// Step 3: `POST {api_url}/api/v1/assets/new/register_asset` with the upload's size, MD5 and times.
    ///
    /// `ASSET_ID_EXISTS` for our own asset id is [`RegisterOutcome::AlreadyExists`]: the asset is
    /// registered, by an earlier attempt whose answer was lost.
    pub async fn register(&self, request: &RegisterRequest) -> Result<RegisterOutcome, TransportError> {
        let step = Step::Register;
        let Endpoint { url, target } = &self.inner.register_endpoint;
        let body = serde_json::to_vec(request).map_err(|e| TransportError::InvalidResponse {
            step,
            message: format!("the request could not be encoded: {e}"),
        })?;
        let response = self.post_json(url.clone(), body, step, target).await?;
        if response.status().is_success() {
            let (body, _) = read_limited(response, ERROR_BODY_LIMIT)
                .await
                .whole()
                .map_err(|e| TransportError::from_reqwest(step, target, e))?;
            // The docs do not say what a repeat answers: a 2xx whose body carries ASSET_ID_EXISTS is
            // taken as the repeat it describes.
            return Ok(match ApiError::parse(&body).code.as_deref() {
                Some("ASSET_ID_EXISTS") => RegisterOutcome::AlreadyExists,
                _ => RegisterOutcome::Registered,
            });
        }
        match self.api_status_error(step, response).await {
            TransportError::Status { status: 400..=499, code: Some(code), .. }
                if code == "ASSET_ID_EXISTS" =>
            {
                Ok(RegisterOutcome::AlreadyExists)
            }
            error => Err(error),
        }
    }

    /// Get Data: `GET {api_url}/api/v1/assets/{asset_id}/data` with `X-FileSpin-Api-Key` ("Assets -
    /// Data", developers.filespin.io). The asset in the Asset Data Format; its `status` is what to check
    /// after an upload ("Asset status must be OK before accessing or updating. Check status after
    /// upload"): `NOT_READY` while the file is being saved, then `OK`, `ERROR` or `ARCHIVED`.
    ///
    /// Errors are at [`Step::Verify`]. What FileSpin answers for an asset id it does not know the docs do
    /// not say: a 404 (or any other 4xx) is a [`TransportError::Status`], which fails the asset; a 2xx
    /// with a status other than the four documented ones is [`AssetStatus::Other`](crate::AssetStatus),
    /// never an error. An answer without `status`, or that is not JSON, is
    /// [`TransportError::InvalidResponse`] (retried).
    ///
    /// ```
    /// # use spinlift_emulator::{Emulator, EmulatorConfig};
    /// # use spinlift_transport::{ClientConfig, FileSpinClient, RegisterRequest, Secret, AssetStatus};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulator = Emulator::start(EmulatorConfig::default()).await?;
    /// let client = FileSpinClient::new(ClientConfig::new(emulator.api_url(), Secret::new(emulator.api_key())))?;
    /// let form = client.request_form("hello.txt").await?;
    /// let receipt = client.upload_reader(&form, &b"hello"[..], 5, "hello.txt", &|_| {}).await?;
    /// client.register(&RegisterRequest::new(&form.asset_id, &receipt, serde_json::Value::Null)).await?;
    ///
    /// let asset = client.asset_data(&form.asset_id).await?;
    /// assert_eq!(asset.status, AssetStatus::Ok);
    /// assert_eq!((asset.size, asset.checksum.as_deref()), (Some(5), Some(receipt.md5.as_str())));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn asset_data(&self, asset_id: &str) -> Result<AssetData, TransportError> {
        let step = Step::Verify;
        let url = self.asset_url(asset_id, &["data"], step)?;
        let target = format!("FileSpin at {}", url_without_query(url.as_str()));
        let response = self.get_json(url, step, &target).await?;
        if !response.status().is_success() {
            return Err(self.api_status_error(step, response).await);
        }
        let body = read_whole(response, ASSET_DATA_BODY_LIMIT, step, &target).await?;
        let key = self.inner.api_key.expose();
        let mut asset = AssetData::from_answer(&body, asset_id)
            .map_err(|message| TransportError::InvalidResponse { step, message: scrub(&message, [key]) })?;
        asset.reason = asset.reason.map(|reason| scrub(&reason, [key]));
        Ok(asset)
    }

    /// Update Data: `POST {api_url}/api/v1/assets/{asset_id}/data/update[?async=1]` with
    /// `{"data": …, "mode": …[, "data_schema_id": …]}` ("Update Data", "Update with Higher Throughput",
    /// developers.filespin.io). 200 is [`UpdateOutcome::Applied`], 202 [`UpdateOutcome::Accepted`]
    /// (another update of the asset in progress, or `?async=1`: applied eventually).
    ///
    /// Errors are at [`Step::SetData`]. While the asset is `NOT_READY` FileSpin answers 400 ("retry after a
    /// few seconds"); the docs show no body, so any 400 whose code or text says `NOT_READY` (or "not
    /// ready") is reported as `Status { status: 400, code: Some("NOT_READY"), .. }`, which core retries.
    /// Other refusals (over [`MAX_DATA_CHARS`](crate::MAX_DATA_CHARS), a `_filespin…` field, an unknown
    /// asset's 404) fail the asset. The body is never logged nor put in an error.
    ///
    /// ```
    /// # use spinlift_emulator::{Emulator, EmulatorConfig};
    /// # use spinlift_transport::{ClientConfig, DataUpdate, FileSpinClient, RegisterRequest, Secret, UpdateOutcome};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = Emulator::start(EmulatorConfig::default()).await?;
    /// # let client = FileSpinClient::new(ClientConfig::new(emulator.api_url(), Secret::new(emulator.api_key())))?;
    /// # let form = client.request_form("hello.txt").await?;
    /// # let receipt = client.upload_reader(&form, &b"hello"[..], 5, "hello.txt", &|_| {}).await?;
    /// # client.register(&RegisterRequest::new(&form.asset_id, &receipt, serde_json::Value::Null)).await?;
    /// let serde_json::Value::Object(data) = serde_json::json!({"filespin_search_txt": "MY_OWN_FILE_ID"}) else {
    ///     unreachable!()
    /// };
    /// let outcome = client.update_asset_data(&form.asset_id, &DataUpdate::append(data)).await?;
    /// assert_eq!(outcome, UpdateOutcome::Applied);
    /// let asset = client.asset_data(&form.asset_id).await?;
    /// assert_eq!(asset.data["filespin_search_txt"], "MY_OWN_FILE_ID");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_asset_data(
        &self,
        asset_id: &str,
        update: &DataUpdate,
    ) -> Result<UpdateOutcome, TransportError> {
        let step = Step::SetData;
        let mut url = self.asset_url(asset_id, &["data", "update"], step)?;
        let target = format!("FileSpin at {}", url_without_query(url.as_str()));
        if update.asynchronous {
            // "Supply async=1 in the API URL" ("Update with Higher Throughput").
            url.query_pairs_mut().append_pair("async", "1");
        }
        let body = update.body().map_err(|e| TransportError::InvalidResponse {
            step,
            message: format!("the request could not be encoded: {e}"),
        })?;
        let response = self.post_json(url, body, step, &target).await?;
        let status = response.status();
        if status.is_success() {
            // The status says it all (the docs give no body); the body is read so that the connection
            // can serve the next request, and one that breaks off changes nothing.
            let _ = read_limited(response, ERROR_BODY_LIMIT).await;
            return Ok(if status == StatusCode::ACCEPTED {
                UpdateOutcome::Accepted
            } else {
                UpdateOutcome::Applied
            });
        }
        let (mut error, body) = self.api_status_error_and_body(step, response).await;
        if let TransportError::Status { status: 400, code, .. } = &mut error
            && code.as_deref() != Some("NOT_READY")
            && says_not_ready(&body)
        {
            *code = Some("NOT_READY".to_owned());
        }
        Err(error)
    }

    /// Every API request, each attempt anew: waits for the API rate limit, then counts itself.
    async fn before_api_request(&self) {
        if let Some(rate) = &self.inner.api_rate {
            rate.acquire(1).await;
        }
        self.inner.pacing.counters.api_request();
    }

    fn api_url(&self, path: &str, step: Step) -> Result<url::Url, TransportError> {
        url::Url::parse(&format!("{}{path}", self.inner.api_base))
            .map_err(|e| TransportError::InvalidResponse { step, message: format!("bad API URL: {e}") })
    }

    /// `{api_url}/api/v1/assets/{asset_id}/<tail…>`, the asset id as one path segment (escaped).
    fn asset_url(&self, asset_id: &str, tail: &[&str], step: Step) -> Result<url::Url, TransportError> {
        let mut url = self.api_url("/api/v1/assets", step)?;
        url.path_segments_mut()
            .map_err(|()| TransportError::InvalidResponse { step, message: "bad API URL".to_owned() })?
            .push(asset_id)
            .extend(tail);
        Ok(url)
    }

    fn key_header(&self) -> HeaderValue {
        // Checked in `new`; marked sensitive so that no Debug of the request prints it.
        let mut value =
            HeaderValue::from_str(self.inner.api_key.expose()).unwrap_or(HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// A FileSpin error answer as a `Status` error: code and message from the body (at most 64 KiB),
    /// `Retry-After`, the key scrubbed.
    async fn api_status_error(&self, step: Step, response: Response) -> TransportError {
        self.api_status_error_and_body(step, response).await.0
    }

    /// As [`api_status_error`](Self::api_status_error), with the body as received (for a caller that
    /// looks further into it; never for a message).
    async fn api_status_error_and_body(&self, step: Step, response: Response) -> (TransportError, Bytes) {
        let status = response.status();
        let retry_after_ms = retry_after_ms(response.headers(), SystemTime::now());
        // A body that breaks off still leaves the status: keep what arrived.
        let body = read_limited(response, ERROR_BODY_LIMIT).await.body;
        let parsed = ApiError::parse(&body);
        let message =
            parsed.message.or_else(|| status.canonical_reason().map(str::to_owned)).unwrap_or_default();
        let error = TransportError::Status {
            step,
            status: status.as_u16(),
            code: parsed.code,
            message: scrub(&message, [self.inner.api_key.expose()]),
            retry_after_ms,
        };
        (error, body)
    }

    async fn upload<R>(
        &self,
        form: &UploadForm,
        content: Content<R>,
        filename: &str,
        path: &Path,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<UploadReceipt, TransportError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let Content { reader, len, prefetch } = content;
        let step = Step::Upload;
        let target = format!("storage at {}", url_without_query(&form.url));
        let url = url::Url::parse(&form.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| TransportError::InvalidResponse {
                step,
                message: format!("the form's URL {:?} is not an http(s) URL", url_without_query(&form.url)),
            })?;
        if !transport_allowed(&url, self.inner.allow_http) {
            return Err(TransportError::Config {
                message: format!(
                    "refusing to upload over plain http to {:?}: the form is a credential; allow it with \
                     --allow-http",
                    url_without_query(&form.url)
                ),
            });
        }
        let _permit =
            self.inner.uploads.acquire().await.map_err(|_| TransportError::Config {
                message: "the upload limiter was closed".to_owned(),
            })?;
        // The limits in their documented order: an upload slot, then the S3 request rate; the
        // bandwidth limit is taken chunk by chunk inside the body.
        if let Some(rate) = &self.inner.s3_rate {
            rate.acquire(1).await;
        }
        // Waiting for a slot can take long: the form must still be valid when the first byte goes.
        check_expiry(form)?;

        let frame = Frame::new(form.fields(), filename, multipart::new_boundary());
        let content_length = frame.content_length(len);
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let outcome = Arc::new(BodyOutcome::default());
        let body = multipart::body_stream(
            frame.clone(),
            reader,
            len,
            prefetch,
            progress_tx,
            outcome.clone(),
            self.inner.pacing.clone(),
        );
        let request = self
            .inner
            .http
            .post(url)
            .header(CONTENT_TYPE, frame.content_type())
            .header(CONTENT_LENGTH, content_length)
            .body(reqwest::Body::wrap_stream(body));

        let started_at = clock::now();
        self.inner.pacing.counters.s3_request();
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            // Error documents are small; a success answer is usually empty (S3's default 204).
            let body = read_limited(response, ERROR_BODY_LIMIT).await;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        let mut exchange = pin!(exchange);
        // The stall watchdog: reqwest's read_timeout is one deadline from the request's start (it is
        // not reset while the body is being sent), so it cannot bound a large upload by its progress.
        // Instead every chunk the connection takes pushes the deadline out; after the last chunk the
        // answer has `upload_stall_timeout` to come. While the body waits for the bandwidth limit the
        // watchdog is off: that wait is ours (and with many uploads sharing a low limit, it can be
        // longer than the stall timeout), and the connection asked for the chunk that waits.
        let stall = self.inner.stall_timeout;
        let watchdog = tokio::time::sleep(stall);
        let mut watchdog = pin!(watchdog);
        let mut throttled = false;
        let result = loop {
            tokio::select! {
                biased;
                result = &mut exchange => break result,
                Some(progress) = progress_rx.recv() => match progress {
                    Progress::Throttled => throttled = true,
                    Progress::Sent { file_bytes } => {
                        throttled = false;
                        watchdog.as_mut().reset(Instant::now() + stall);
                        if file_bytes > 0 {
                            on_bytes(file_bytes);
                        }
                    }
                },
                () = &mut watchdog, if !throttled => {
                    return Err(TransportError::Timeout {
                        step,
                        target,
                        message: format!("no progress for {} s", stall.as_secs_f64()),
                    });
                }
            }
        };
        // Progress for chunks taken just before the answer won the race.
        while let Ok(progress) = progress_rx.try_recv() {
            if let Progress::Sent { file_bytes: file_bytes @ 1.. } = progress {
                on_bytes(file_bytes);
            }
        }
        let completed_at = clock::now();

        // A failed source is the root cause of whatever the server or the connection then said.
        if let Some(failure) = outcome.take_failure() {
            return Err(source_failure(failure, path, len));
        }
        let (status, headers, body) = result.map_err(|e| TransportError::from_reqwest(step, &target, e))?;
        let scrub_form = |text: &str| scrub(text, form.secret_values());
        if status.is_success() {
            // The success must be whole: a 2xx whose body breaks off is not a receipt.
            let (body, _) = body.whole().map_err(|e| TransportError::from_reqwest(step, &target, e))?;
            if let Some(error) = S3Error::in_success_body(&body) {
                return Err(s3_status_error(status, &headers, error, &scrub_form));
            }
            let Some(md5) = outcome.md5() else {
                return Err(TransportError::InvalidResponse {
                    step,
                    message: format!("storage answered {status} before the whole file was sent"),
                });
            };
            return Ok(UploadReceipt { size: len, md5, started_at, completed_at });
        }
        // S3 may refuse early and close: what body arrived is enough for the code.
        let body = body.body;
        let error = S3Error::parse(&body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            S3Error { code: None, message: (!text.trim().is_empty()).then(|| text.into_owned()) }
        });
        Err(s3_status_error(status, &headers, error, &scrub_form))
    }
}

/// What an upload's body carries: `len` bytes of a source, those in `prefetch` already read, the rest
/// from `reader`.
struct Content<R> {
    reader: R,
    len: u64,
    prefetch: Prefetch,
}

/// A source's bytes for [`FileSpinClient::upload_source`]: what was read of it already, and a reader
/// for the rest.
pub struct SourceBody<R> {
    /// The source's length, as its metadata gave it: what the upload announces.
    pub len: u64,
    /// Its first bytes, read already (at most `len`); may be empty.
    pub prefix: bytes::Bytes,
    /// The source was seen to end right after `prefix` (`reader` is not read then).
    pub ended: bool,
    /// The rest of the source.
    pub reader: R,
    /// How errors name the source: a path, or a URL without its query.
    pub name: String,
}

impl<R> std::fmt::Debug for SourceBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceBody")
            .field("name", &self.name)
            .field("len", &self.len)
            .field("prefix", &self.prefix.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// A file opened for an upload, its first chunk read: see [`FileSpinClient::prepare_file`]. It is
/// consumed by the upload; a retry prepares the file again.
pub struct PreparedFile {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    prefetch: Prefetch,
}

impl PreparedFile {
    /// Opens `path` and reads its first chunk, blocking.
    fn open(path: PathBuf) -> Result<PreparedFile, TransportError> {
        let source_error = |source| TransportError::Source { step: Step::Upload, path: path.clone(), source };
        let mut file = std::fs::File::open(&path).map_err(source_error)?;
        let metadata = file.metadata().map_err(source_error)?;
        if !metadata.is_file() {
            return Err(source_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let len = metadata.len();
        let prefetch = Prefetch::read(&mut file, len);
        Ok(PreparedFile { path, file, len, prefetch })
    }

    /// The file's length when it was opened: what the upload announces and sends.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for PreparedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The bandwidth limit: `bytes_per_second`, with a burst of the larger of one chunk and a tenth of a
/// second's bytes.
///
/// At least one chunk, so that a chunk can go at all (the head and tail of the body are smaller;
/// anything larger would be split). At least 100 ms' worth, because tokio's timer ticks in whole
/// milliseconds: every wait may end up to 1 ms late, and with a burst of only one 256 KiB chunk a
/// limit of 1 GB/s (a chunk per 0.26 ms) would run at a quarter of its rate. No larger, so that
/// after a pause no more than that goes at line speed: over any span of `t` seconds the bodies carry
/// at most `bytes_per_second × t + burst` bytes.
fn bandwidth_limit(bytes_per_second: NonZeroU64) -> RateLimit {
    let burst = (CHUNK_SIZE as u64).max(bytes_per_second.get() / 10);
    RateLimit::bytes_per_second(bytes_per_second, NonZeroU64::new(burst).unwrap_or(NonZeroU64::MIN))
}

fn s3_status_error(
    status: StatusCode,
    headers: &HeaderMap,
    error: S3Error,
    scrub_form: &dyn Fn(&str) -> String,
) -> TransportError {
    let message = error.message.or_else(|| status.canonical_reason().map(str::to_owned)).unwrap_or_default();
    TransportError::Status {
        step: Step::Upload,
        status: status.as_u16(),
        code: error.code,
        message: scrub_form(&message),
        retry_after_ms: retry_after_ms(headers, SystemTime::now()),
    }
}

fn source_failure(failure: BodyFailure, path: &Path, len: u64) -> TransportError {
    let path = PathBuf::from(path);
    match failure {
        BodyFailure::Read(source) if interrupted(&source) => {
            TransportError::SourceInterrupted { path, source }
        }
        BodyFailure::Read(source) => TransportError::Source { step: Step::Upload, path, source },
        BodyFailure::Shorter { read } => {
            TransportError::SourceChanged { path, expected: len, found: Some(read) }
        }
        BodyFailure::Longer => TransportError::SourceChanged { path, expected: len, found: None },
    }
}

/// Whether a read error is a remote source's connection breaking off rather than a file that cannot
/// be read: see [`TransportError::SourceInterrupted`].
fn interrupted(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | TimedOut | UnexpectedEof
    )
}

fn check_expiry(form: &UploadForm) -> Result<(), TransportError> {
    if form.expires_at <= clock::now() {
        return Err(TransportError::FormExpired {
            asset_id: form.asset_id.clone(),
            expires_at: form.expires_at,
        });
    }
    Ok(())
}

fn check_size(form: &UploadForm, len: u64, path: &Path) -> Result<(), TransportError> {
    match form.max_size {
        Some(max_size) if len > max_size => {
            Err(TransportError::TooLarge { path: path.to_owned(), size: len, max_size })
        }
        _ => Ok(()),
    }
}

/// At most `limit` bytes of an answer's body.
struct Limited {
    body: Bytes,
    /// False when the body had more than `limit` bytes.
    complete: bool,
    /// The error that broke the body off, if one did; `body` holds what arrived before it.
    error: Option<reqwest::Error>,
}

impl Limited {
    /// The body, or the error that broke it off: for answers whose body matters whole.
    fn whole(self) -> Result<(Bytes, bool), reqwest::Error> {
        match self.error {
            Some(error) => Err(error),
            None => Ok((self.body, self.complete)),
        }
    }
}

/// Reads at most `limit` bytes of the body, keeping what arrived if the connection breaks: an error
/// answer cut short by a reset still has its status and, often, its code.
/// A successful answer's whole body, at most `limit` bytes: a larger one is an invalid response (the
/// API documents small JSON answers), a broken one a network error.
async fn read_whole(
    response: Response,
    limit: usize,
    step: Step,
    target: &str,
) -> Result<Bytes, TransportError> {
    let (body, complete) = read_limited(response, limit)
        .await
        .whole()
        .map_err(|e| TransportError::from_reqwest(step, target, e))?;
    if !complete {
        return Err(TransportError::InvalidResponse {
            step,
            message: format!("the answer is larger than {limit} bytes"),
        });
    }
    Ok(body)
}

async fn read_limited(mut response: Response, limit: usize) -> Limited {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return Limited { body: Bytes::from(body), complete: false, error: None };
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Limited { body: Bytes::from(body), complete: true, error: None },
            Err(error) => return Limited { body: Bytes::from(body), complete: false, error: Some(error) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn the_client_and_its_futures_can_cross_threads() {
        assert_send_sync_clone::<FileSpinClient>();
        let client = FileSpinClient::new(ClientConfig::new("http://127.0.0.1:1", Secret::new("k"))).unwrap();
        let form = UploadForm::new("a", "http://127.0.0.1:1/b/", Vec::new(), clock::now());
        let on_bytes = |_: u64| {};
        let path = Path::new("x");
        assert_send(&client.request_form("x"));
        assert_send(&client.upload_file(&form, path, &on_bytes));
        assert_send(&client.upload_reader(&form, tokio::io::empty(), 0, "x", &on_bytes));
        let receipt = UploadReceipt {
            size: 0,
            md5: String::new(),
            started_at: clock::now(),
            completed_at: clock::now(),
        };
        assert_send(&client.register(&RegisterRequest::new("a", &receipt, serde_json::Value::Null)));
        assert_send(&client.asset_data("a"));
        assert_send(&client.update_asset_data("a", &DataUpdate::append(serde_json::Map::new())));
    }

    #[test]
    fn asset_urls_escape_the_id_and_keep_a_base_path() {
        let client =
            FileSpinClient::new(ClientConfig::new("http://127.0.0.1:1/prefix/", Secret::new("k"))).unwrap();
        let url = client.asset_url("ab12", &["data", "update"], Step::SetData).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/prefix/api/v1/assets/ab12/data/update");
        let url = client.asset_url("a/b?c", &["data"], Step::Verify).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/prefix/api/v1/assets/a%2Fb%3Fc/data");
    }
}

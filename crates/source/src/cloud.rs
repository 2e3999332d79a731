//! S3, GCS and Azure Blob through `object_store`: one store per (scheme, bucket or container), built
//! lazily from the provider's usual environment and cached; no retries of its own (the engine owns
//! retries); every error sorted into a [`SourceError`] with its URL scrubbed.
//!
//! `object_store` keeps the status and headers of a failed answer to itself (its `RetryError` is not
//! public), so every HTTP request a store makes goes through [`Probing`], which notes the answer's
//! status and `Retry-After` in the [`Probe`] of the call it belongs to (a tokio task-local set around
//! each call). The status then decides the variant; the `Retry-After` travels with it.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ClientOptions, GetOptions, ObjectStore, RetryConfig};

use crate::error::{body_error_kind, chain_text, retry_after_ms, scrub, xml_tag};
use crate::http::{compare, plain_http_refusal};
use crate::location::{Cloud, SourceUrl, dir_prefix, url_without_secrets};
use crate::{Listed, ObjectMeta, ObjectReader, Opened, SourceError, SourcesConfig};

/// Environment variables whose values are secrets: scrubbed from every message, should a server or
/// library ever echo one.
const SECRET_ENV: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_BEARER_TOKEN",
];

/// An object store that can also list page by page.
trait Backend: ObjectStore + PaginatedListStore {}

impl<T: ObjectStore + PaginatedListStore> Backend for T {}

/// The cloud half of [`Sources`](crate::Sources).
pub(crate) struct CloudSources {
    stores: Mutex<HashMap<(Cloud, String), Arc<dyn Backend>>>,
    config: SourcesConfig,
    secrets: Vec<String>,
}

impl std::fmt::Debug for CloudSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stores = self.stores.lock().map(|stores| stores.len()).unwrap_or(0);
        f.debug_struct("CloudSources").field("stores", &stores).finish_non_exhaustive()
    }
}

impl CloudSources {
    pub(crate) fn new(config: &SourcesConfig) -> CloudSources {
        let mut secrets: Vec<String> =
            SECRET_ENV.iter().filter_map(|name| std::env::var(name).ok()).collect();
        if let Some(credentials) = &config.s3_credentials {
            secrets.push(credentials.secret_access_key.clone());
            secrets.extend(credentials.session_token.clone());
        }
        secrets.retain(|secret| secret.len() >= 4);
        CloudSources { stores: Mutex::new(HashMap::new()), config: config.clone(), secrets }
    }

    pub(crate) async fn head(&self, url: &SourceUrl) -> Result<ObjectMeta, SourceError> {
        let (store, path) = self.object(url)?;
        let options = GetOptions { head: true, ..GetOptions::default() };
        let probe = Arc::new(Probe::default());
        let call = PROBE.scope(probe.clone(), async { store.get_opts(&path, options).await });
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(Ok(result)) => Ok(meta_of(&result.meta)),
            Ok(Err(e)) => Err(self.error(e, url, &probe)),
            Err(_) => Err(timed_out(url, self.config.request_timeout)),
        }
    }

    /// GET, conditional on `expected`'s ETag (`If-Match`), then the answer compared with `expected`:
    /// some S3-compatible servers (s3s-fs among them) ignore `If-Match` on GET, and a changed object
    /// must still be noticed.
    pub(crate) async fn open(&self, url: &SourceUrl, expected: &ObjectMeta) -> Result<Opened, SourceError> {
        let (store, path) = self.object(url)?;
        let options = GetOptions { if_match: expected.etag.clone(), ..GetOptions::default() };
        let probe = Arc::new(Probe::default());
        let call = PROBE.scope(probe.clone(), async { store.get_opts(&path, options).await });
        let result = match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(self.error(e, url, &probe)),
            Err(_) => return Err(timed_out(url, self.config.request_timeout)),
        };
        let shown = url.to_string();
        let meta = meta_of(&result.meta);
        compare(&meta, expected, &shown)?;
        let secrets = self.secrets.clone();
        let url_shown = shown.clone();
        let stream = result.into_stream().map_err(move |e| body_error(e, &url_shown, &secrets)).boxed();
        let reader = ObjectReader::remote(stream, meta.size, shown, self.config.stall_timeout);
        Ok(Opened { meta, prefix: bytes::Bytes::new(), prefix_is_all: false, reader })
    }

    /// Every object under `prefix`, page by page: `limit` is awaited before each page.
    pub(crate) fn list(
        self: &Arc<Self>,
        prefix: &SourceUrl,
        limit: impl Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> BoxStream<'static, Result<Listed, SourceError>> {
        let Some((cloud, bucket, key)) = prefix.cloud_parts() else {
            return stream::once(async { Err(SourceError::Config { message: "not a cloud prefix".into() }) })
                .boxed();
        };
        let store = match self.store(cloud, bucket) {
            Ok(store) => store,
            Err(e) => return stream::once(async { Err(e) }).boxed(),
        };
        let state = ListState {
            this: Arc::clone(self),
            store,
            root: prefix.clone(),
            cloud,
            bucket: bucket.to_owned(),
            key_prefix: dir_prefix(key),
            token: None,
            done: false,
            markers: MarkerFilter::default(),
        };
        let limit = Arc::new(limit);
        stream::try_unfold(state, move |mut state| {
            let limit = Arc::clone(&limit);
            async move {
                if state.done {
                    return Ok(None);
                }
                limit().await;
                let page = state.next_page().await?;
                Ok(Some((stream::iter(page.into_iter().map(Ok)), state)))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// The store for a cloud object URL, and the object's path in it.
    fn object(&self, url: &SourceUrl) -> Result<(Arc<dyn Backend>, StorePath), SourceError> {
        let Some((cloud, bucket, key)) = url.cloud_parts() else {
            return Err(SourceError::Config { message: format!("{url} is not a cloud object") });
        };
        if url.is_prefix() {
            return Err(SourceError::InvalidUrl {
                text: url.to_string(),
                reason: "it names a prefix (an empty key or one ending in '/'), not an object".into(),
            });
        }
        let path = StorePath::parse(key).map_err(|e| SourceError::InvalidUrl {
            text: url.to_string(),
            reason: scrub(&e.to_string(), &[]),
        })?;
        Ok((self.store(cloud, bucket)?, path))
    }

    fn store(&self, cloud: Cloud, bucket: &str) -> Result<Arc<dyn Backend>, SourceError> {
        let mut stores = self.stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = stores.get(&(cloud, bucket.to_owned())) {
            return Ok(Arc::clone(store));
        }
        let store = match cloud {
            Cloud::S3 => self.build_s3(bucket)?,
            Cloud::Gcs => self.build_gcs(bucket)?,
            Cloud::Azure => self.build_azure(bucket)?,
        };
        tracing::debug!(scheme = cloud.scheme(), bucket, "object store built");
        stores.insert((cloud, bucket.to_owned()), Arc::clone(&store));
        Ok(store)
    }

    fn build_s3(&self, bucket: &str) -> Result<Arc<dyn Backend>, SourceError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &self.config.s3_endpoint {
            // Both keys: `AWS_ENDPOINT_URL_S3` would otherwise win over the endpoint.
            builder = builder
                .with_config(AmazonS3ConfigKey::Endpoint, endpoint)
                .with_config(AmazonS3ConfigKey::S3Endpoint, endpoint);
        }
        if let Some(region) = &self.config.s3_region {
            builder = builder.with_region(region);
        }
        if let Some(credentials) = &self.config.s3_credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
            if let Some(token) = &credentials.session_token {
                builder = builder.with_token(token);
            }
        }
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let http = self.check_endpoint(endpoint.as_deref(), "AWS_ENDPOINT_URL")?;
        let carried = |key| builder.get_config_value(&AmazonS3ConfigKey::Client(key));
        let options = self.client_options(http, carried);
        let store = builder
            .with_client_options(options)
            .with_retry(one_attempt())
            .with_http_connector(Probing)
            .build()
            .map_err(|e| self.config_error(Cloud::S3, &e))?;
        Ok(Arc::new(store))
    }

    fn build_gcs(&self, bucket: &str) -> Result<Arc<dyn Backend>, SourceError> {
        let builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
        let endpoint = builder.get_config_value(&GoogleConfigKey::BaseUrl);
        let http = self.check_endpoint(endpoint.as_deref(), "GOOGLE_BASE_URL")?;
        let carried = |key| builder.get_config_value(&GoogleConfigKey::Client(key));
        let options = self.client_options(http, carried);
        let store = builder
            .with_client_options(options)
            .with_retry(one_attempt())
            .with_http_connector(Probing)
            .build()
            .map_err(|e| self.config_error(Cloud::Gcs, &e))?;
        Ok(Arc::new(store))
    }

    fn build_azure(&self, container: &str) -> Result<Arc<dyn Backend>, SourceError> {
        let builder = MicrosoftAzureBuilder::from_env().with_container_name(container);
        let emulator = builder
            .get_config_value(&AzureConfigKey::UseEmulator)
            .is_some_and(|value| matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
        let endpoint = if emulator {
            // object_store's emulator default, or its override.
            Some(
                std::env::var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|_| "http://127.0.0.1:10000".into()),
            )
        } else {
            builder.get_config_value(&AzureConfigKey::Endpoint)
        };
        let http = self.check_endpoint(endpoint.as_deref(), "AZURE_STORAGE_ENDPOINT")?;
        let carried = |key| builder.get_config_value(&AzureConfigKey::Client(key));
        let options = self.client_options(http, carried);
        let store = builder
            .with_client_options(options)
            .with_retry(one_attempt())
            .with_http_connector(Probing)
            .build()
            .map_err(|e| self.config_error(Cloud::Azure, &e))?;
        Ok(Arc::new(store))
    }

    /// The http rule for a custom endpoint: plain http only to loopback unless `allow_http`. Returns
    /// whether the endpoint is plain http (the store must then be allowed to use it).
    fn check_endpoint(&self, endpoint: Option<&str>, setting: &str) -> Result<bool, SourceError> {
        let Some(endpoint) = endpoint else { return Ok(false) };
        let parsed = url::Url::parse(endpoint).map_err(|e| SourceError::Config {
            message: format!("the endpoint {} ({setting}) is not a URL: {e}", scrub(endpoint, &self.secrets)),
        })?;
        if let Some(host) = plain_http_refusal(&parsed, self.config.allow_http) {
            return Err(SourceError::PlainHttp { url: url_without_secrets(&parsed), host });
        }
        Ok(parsed.scheme() == "http")
    }

    /// Our timeouts and the http rule; the proxy settings from the provider's environment carried over.
    fn client_options(
        &self,
        http: bool,
        carried: impl Fn(ClientConfigKey) -> Option<String>,
    ) -> ClientOptions {
        let mut options = ClientOptions::new()
            .with_connect_timeout(self.config.connect_timeout)
            // A GET body may take as long as it takes; `request_timeout` bounds the wait for an answer
            // and `stall_timeout` a body that stops moving.
            .with_timeout_disabled()
            .with_allow_http(http);
        for key in
            [ClientConfigKey::ProxyUrl, ClientConfigKey::ProxyCaCertificate, ClientConfigKey::ProxyExcludes]
        {
            if let Some(value) = carried(key) {
                options = options.with_config(key, value);
            }
        }
        options
    }

    fn config_error(&self, cloud: Cloud, error: &object_store::Error) -> SourceError {
        let hint = match cloud {
            Cloud::S3 => {
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION, AWS_ENDPOINT_URL for an \
                 S3-compatible store)"
            }
            Cloud::Gcs => {
                "set GOOGLE_SERVICE_ACCOUNT (a key file), GOOGLE_SERVICE_ACCOUNT_KEY or \
                 GOOGLE_APPLICATION_CREDENTIALS"
            }
            Cloud::Azure => {
                "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN, or \
                 AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID)"
            }
        };
        SourceError::Config {
            message: format!(
                "cannot set up {}://: {}: {hint}",
                cloud.scheme(),
                scrub(&error.to_string(), &self.secrets)
            ),
        }
    }

    /// An `object_store` error of a call as a [`SourceError`] (see [`SourceError`]'s table).
    fn error(&self, error: object_store::Error, url: &SourceUrl, probe: &Probe) -> SourceError {
        let shown = url.to_string();
        let text = scrub(&error.to_string(), &self.secrets);
        let cloud = url.cloud_parts().map_or(Cloud::S3, |(cloud, _, _)| cloud);
        match &error {
            object_store::Error::NotFound { .. } => return SourceError::NotFound { url: shown },
            object_store::Error::Precondition { .. } | object_store::Error::NotModified { .. } => {
                return SourceError::Changed {
                    url: shown,
                    what: "its ETag no longer matches (412 Precondition Failed)".into(),
                };
            }
            object_store::Error::PermissionDenied { .. } => return denied(cloud, shown, Some(403), &text),
            object_store::Error::Unauthenticated { .. } => return denied(cloud, shown, Some(401), &text),
            object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
                return SourceError::Unsupported { url: shown, message: text };
            }
            object_store::Error::InvalidPath { .. } => {
                return SourceError::InvalidUrl { text: shown, reason: text };
            }
            _ => {}
        }
        if let Some(http) = find_http_error(&error) {
            let credentials = text.to_ascii_lowercase().contains("credential");
            let message = if credentials {
                format!("{text} (fetching credentials failed: {})", credential_hint(cloud))
            } else {
                text
            };
            return match http.kind() {
                HttpErrorKind::Timeout => SourceError::Timeout { url: shown, message },
                HttpErrorKind::Connect => {
                    SourceError::Network { url: shown, message: format!("cannot connect: {message}") }
                }
                _ => SourceError::Network { url: shown, message },
            };
        }
        let answer = probe.answer();
        let status = answer.map(|a| a.status).filter(|status| *status >= 300).or_else(|| status_in(&text));
        let retry_after_ms = answer.and_then(|a| a.retry_after_ms);
        let code = xml_tag(&text, "Code").map(str::to_owned);
        let message = match (xml_tag(&text, "Message"), &code) {
            (Some(message), _) => message.to_owned(),
            (None, Some(code)) => code.clone(),
            (None, None) => text.clone(),
        };
        match status {
            Some(404 | 410) => SourceError::NotFound { url: shown },
            Some(status @ (401 | 403)) => denied(cloud, shown, Some(status), &message),
            Some(412) => SourceError::Changed { url: shown, what: "412 Precondition Failed".into() },
            Some(status @ (429 | 503)) => {
                SourceError::Throttled { url: shown, status, code, message, retry_after_ms }
            }
            Some(status @ 500..=599) => {
                SourceError::Unavailable { url: shown, status, code, message, retry_after_ms }
            }
            Some(status @ 400..=499) => SourceError::Refused { url: shown, status, message },
            // S3 can answer 200 with an error document (object_store: "error response").
            _ if code.is_some() => SourceError::Unavailable {
                url: shown,
                status: answer.map_or(200, |a| a.status),
                code,
                message,
                retry_after_ms,
            },
            _ => SourceError::InvalidResponse { url: shown, message: text },
        }
    }
}

struct ListState {
    this: Arc<CloudSources>,
    store: Arc<dyn Backend>,
    root: SourceUrl,
    cloud: Cloud,
    bucket: String,
    key_prefix: String,
    token: Option<String>,
    done: bool,
    markers: MarkerFilter,
}

impl ListState {
    async fn next_page(&mut self) -> Result<VecDeque<Listed>, SourceError> {
        let options = PaginatedListOptions {
            page_token: self.token.take(),
            max_keys: self.this.config.list_page_size.map(usize::from),
            ..PaginatedListOptions::default()
        };
        let prefix = (!self.key_prefix.is_empty()).then_some(self.key_prefix.as_str());
        let probe = Arc::new(Probe::default());
        let store = Arc::clone(&self.store);
        let call = PROBE.scope(probe.clone(), async move { store.list_paginated(prefix, options).await });
        let page = match tokio::time::timeout(self.this.config.request_timeout, call).await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => return Err(self.this.error(e, &self.root, &probe)),
            Err(_) => return Err(timed_out(&self.root, self.this.config.request_timeout)),
        };
        self.token = page.page_token;
        self.done = self.token.is_none();
        let mut listed = VecDeque::with_capacity(page.result.objects.len() + 1);
        for object in page.result.objects {
            let key: &str = object.location.as_ref();
            let Some(relative) = key.strip_prefix(self.key_prefix.as_str()).filter(|r| !r.is_empty()) else {
                // The prefix itself (its directory marker, `media/`, comes back as `media`).
                continue;
            };
            let item = Listed {
                key: relative.to_owned(),
                url: SourceUrl::cloud(self.cloud, self.bucket.clone(), key.to_owned()),
                meta: meta_of(&object),
            };
            listed.extend(self.markers.push(item));
        }
        if self.done {
            listed.extend(self.markers.finish());
        }
        Ok(listed)
    }
}

/// Drops "directory marker" objects (`photos/`, 0 bytes, made by consoles' "create folder").
///
/// object_store parses every listed key into its `Path`, which drops a trailing `/`: the marker
/// `photos/` comes back as a 0-byte `photos`. Listings are in lexicographic order, so a marker is
/// followed at once by the keys under it (`photos/` sorts first among them). A 0-byte object is held
/// back until the next key is known, and dropped if that key lies under it. A key that still ends in
/// `/` (0 bytes) is a marker too. Limitation: the marker of an *empty* folder cannot be told from a
/// 0-byte object of the same name, and is listed as one.
#[derive(Debug, Default)]
pub(crate) struct MarkerFilter {
    pending: Option<Listed>,
}

impl MarkerFilter {
    /// What can be handed on now that `item` is known (at most two items).
    pub(crate) fn push(&mut self, item: Listed) -> impl Iterator<Item = Listed> + use<> {
        let mut out = Vec::with_capacity(2);
        if let Some(pending) = self.pending.take() {
            let under = item.key.len() > pending.key.len()
                && item.key.starts_with(pending.key.as_str())
                && item.key.as_bytes()[pending.key.len()] == b'/';
            if !under {
                out.push(pending);
            }
        }
        if item.meta.size == 0 {
            if !item.key.ends_with('/') {
                self.pending = Some(item);
            }
        } else {
            out.push(item);
        }
        out.into_iter()
    }

    /// The item held back, at the end of the listing.
    pub(crate) fn finish(&mut self) -> Option<Listed> {
        self.pending.take()
    }
}

fn meta_of(meta: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        size: meta.size,
        etag: meta.e_tag.clone(),
        version: meta.version.clone(),
        last_modified_ms: Some(meta.last_modified.timestamp_millis()),
    }
}

/// No retries inside `object_store`: one call is one attempt (the engine owns retries and their
/// budget). This also turns off its resumption of a broken GET body.
fn one_attempt() -> RetryConfig {
    RetryConfig { max_retries: 0, retry_timeout: Duration::ZERO, ..RetryConfig::default() }
}

fn timed_out(url: &SourceUrl, after: Duration) -> SourceError {
    SourceError::Timeout { url: url.to_string(), message: format!("no answer within {after:?}") }
}

fn credential_hint(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::S3 => {
            "check the source's credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN \
             for temporary ones), or the instance/container role, and that they may read this bucket"
        }
        Cloud::Gcs => {
            "check the source's credentials: GOOGLE_SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT_KEY or \
             GOOGLE_APPLICATION_CREDENTIALS, and that the account may read this bucket"
        }
        Cloud::Azure => {
            "check the source's credentials: AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or \
             AZURE_STORAGE_SAS_TOKEN (or AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID), and that they may \
             read this container"
        }
    }
}

fn denied(cloud: Cloud, url: String, status: Option<u16>, detail: &str) -> SourceError {
    let detail = xml_tag(detail, "Code")
        .map(|code| match xml_tag(detail, "Message") {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        })
        .unwrap_or_else(|| match status {
            // A HEAD answer has no body to say more.
            Some(status) => format!("the store answered {status}"),
            None => detail.to_owned(),
        });
    SourceError::Denied { url, status, message: format!("{detail} — {}", credential_hint(cloud)) }
}

/// A mid-body failure of a GET, as the io error the reader hands out.
fn body_error(error: object_store::Error, shown: &str, secrets: &[String]) -> io::Error {
    let is_timeout = find_http_error(&error).is_some_and(|http| http.kind() == HttpErrorKind::Timeout);
    let kind = body_error_kind(&error, is_timeout);
    let message = format!("the body broke off: {}", scrub(&chain_text(&error), secrets));
    let url = shown.to_owned();
    let error = if kind == io::ErrorKind::TimedOut {
        SourceError::Timeout { url, message }
    } else {
        SourceError::Network { url, message }
    };
    error.into_io(kind)
}

fn find_http_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a HttpError> {
    let mut source: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<HttpError>() {
            return Some(http);
        }
        source = cause.source();
    }
    None
}

/// The status in object_store's "Server returned non-2xx status code: 503 Service Unavailable: …", for
/// an answer the probe did not see.
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok().filter(|status| (100..600).contains(status))
}

tokio::task_local! {
    /// The probe of the call being made on this task.
    static PROBE: Arc<Probe>;
}

/// The last answer seen by one call's HTTP requests.
#[derive(Debug, Default)]
struct Probe {
    answer: Mutex<Option<Answer>>,
}

#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    retry_after_ms: Option<u64>,
}

impl Probe {
    fn answer(&self) -> Option<Answer> {
        *self.answer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(answer);
    }
}

/// object_store's own reqwest connector, with every answer noted in the call's [`Probe`].
#[derive(Debug)]
struct Probing;

impl HttpConnector for Probing {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(ProbingService { inner }))
    }
}

#[derive(Debug)]
struct ProbingService {
    inner: HttpClient,
}

#[async_trait::async_trait]
impl HttpService for ProbingService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = self.inner.execute(request).await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|value| value.to_str().ok());
        let answer = Answer { status, retry_after_ms: retry_after_ms(retry_after, SystemTime::now()) };
        let _ = PROBE.try_with(|probe| probe.note(answer));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_markers_are_dropped() {
        let item = |key: &str, size| Listed {
            key: key.into(),
            url: SourceUrl::S3 { bucket: "b".into(), key: key.into() },
            meta: ObjectMeta { size, ..ObjectMeta::default() },
        };
        let mut filter = MarkerFilter::default();
        let mut out = Vec::new();
        for listed in [
            item("a.jpg", 3),
            item("photos", 0), // the marker photos/, as object_store gives it back
            item("photos/x.jpg", 5),
            item("empty.txt", 0), // a real empty object
            item("empty.txt.bak", 1),
            item("raw/", 0), // a marker that kept its slash
            item("z", 0),    // an empty object at the very end
        ] {
            out.extend(filter.push(listed).map(|l| l.key));
        }
        out.extend(filter.finish().map(|l| l.key));
        assert_eq!(out, ["a.jpg", "photos/x.jpg", "empty.txt", "empty.txt.bak", "z"]);
    }

    #[test]
    fn statuses_in_object_store_text() {
        assert_eq!(
            status_in(
                "Error performing GET http://x in 1ms - Server returned non-2xx status code: 503 Service Unavailable: "
            ),
            Some(503)
        );
        assert_eq!(status_in("no status here"), None);
        assert_eq!(status_in("status code: 9x"), None);
    }

    #[test]
    fn denied_messages_say_what_to_check() {
        let body = "Server returned non-2xx status code: 403 Forbidden: \
                    <Error><Code>SignatureDoesNotMatch</Code><Message>The signature does not match.</Message></Error>";
        let e = denied(Cloud::S3, "s3://b/k".into(), Some(403), body);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "s3://b/k: access denied (403): SignatureDoesNotMatch: The signature does not match."
            ),
            "{text}"
        );
        assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");
        assert!(
            denied(Cloud::Azure, "az://c/k".into(), None, "x")
                .to_string()
                .contains("AZURE_STORAGE_ACCOUNT_NAME")
        );
        assert!(
            denied(Cloud::Gcs, "gs://b/k".into(), None, "x")
                .to_string()
                .contains("GOOGLE_APPLICATION_CREDENTIALS")
        );
    }
}

//! Where an asset's bytes come from: one reader interface for local files, Amazon S3, Google Cloud
//! Storage, Azure Blob Storage and http(s) URLs, streamed without staging to disk.
//!
//! A [`SourceUrl`] names an object; [`Sources`] inspects it ([`Sources::head`]), reads it
//! ([`Sources::open`]: its bytes as an [`AsyncRead`](tokio::io::AsyncRead), never whole in memory) and
//! lists a cloud prefix ([`Sources::list`], page by page). Every call is one attempt: retries, backoff
//! and the retry budget belong to the engine, which asks [`SourceError::is_retryable`] or hands
//! [`SourceError::to_failure`] to core's classification table.
//!
//! # Schemes, URL forms and credentials
//!
//! | scheme | URL form | credentials and settings (environment) |
//! |---|---|---|
//! | local file | `/data/a.jpg`, `photos/a.jpg`, `file:///data/a.jpg` | the file's permissions |
//! | Amazon S3 | `s3://bucket/key` | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`); `AWS_ENDPOINT_URL` / `AWS_ENDPOINT` / `AWS_ENDPOINT_URL_S3` for an S3-compatible store (path-style requests unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`); without keys: web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), the ECS/EKS container credentials, then the instance metadata service (as `object_store` resolves them; no `~/.aws` profiles) |
//! | Google Cloud Storage | `gs://bucket/key` | `GOOGLE_SERVICE_ACCOUNT` (path to a key file), `GOOGLE_SERVICE_ACCOUNT_KEY` (the key JSON), `GOOGLE_APPLICATION_CREDENTIALS`; else the GCE metadata server; `GOOGLE_BASE_URL` for an emulator |
//! | Azure Blob Storage | `az://container/key` (also `azure://`) | `AZURE_STORAGE_ACCOUNT_NAME` (the account: always needed), with `AZURE_STORAGE_ACCOUNT_KEY`, or `AZURE_STORAGE_SAS_TOKEN`, or `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID`, or a managed identity; `AZURE_STORAGE_USE_EMULATOR=true` for Azurite, `AZURE_STORAGE_ENDPOINT` for another endpoint |
//! | HTTP(S) | `https://host/path?query` (a pre-signed URL works as it is), `http://` | what the URL carries (its query, its user info); nothing from the environment |
//!
//! The proxy settings of `object_store` (`AWS_PROXY_URL`, …) are honoured; the standard `HTTPS_PROXY`
//! / `NO_PROXY` too. [`SourcesConfig`] overrides the S3 endpoint, region and keys (tests use it).
//!
//! **Plain http** — a source URL or endpoint `http://…` — is allowed only to loopback (`127.0.0.0/8`,
//! `::1`, `localhost`) unless [`SourcesConfig::allow_http`] (`--allow-http`); otherwise
//! [`SourceError::PlainHttp`], before any request. A redirect to plain http is refused the same way.
//! `AWS_ALLOW_HTTP` alone does not lift the rule.
//!
//! # What a call does
//!
//! - [`Sources::head`]: S3/GCS/Azure `HEAD` through `object_store`; http(s) `HEAD`, and for a server that
//!   answers `HEAD` with 405 or 501 a `GET` with `Range: bytes=0-0` whose body is never read (the size
//!   from `Content-Range`); a local file's metadata (a regular file, its size and mtime).
//! - [`Sources::open`]: a `GET`, conditional on the expected ETag (`If-Match`), whose answer is also
//!   compared with what was expected (size, ETag): a changed object is [`SourceError::Changed`]. A local
//!   file is checked, opened and its first 256 KiB read in one trip to the blocking pool
//!   ([`Opened::prefix`]; all of a small file, [`Opened::prefix_is_all`]).
//! - [`Sources::list`]: the objects under a cloud prefix, page by page, each with its key relative to the
//!   prefix.
//!
//! `--source-rps` ([`SourcesConfig::rps`]) is one limit over every request of a `Sources` — each HEAD,
//! GET and LIST page, and the fallback GET of a HEAD — taken inside each call, so a caller's retry
//! takes a permit again. Local files take none.
//!
//! No credential, query string, SAS token or signed-URL parameter appears in the `Display` or `Debug`
//! of a [`SourceUrl`], [`Sources`], [`SourcesConfig`] or any [`SourceError`]: URLs in messages from
//! servers and libraries are stripped of their query and user info, and known secrets are scrubbed.
//!
//! # Example
//!
//! ```no_run
//! use spinlift_source::{SourceUrl, Sources, SourcesConfig};
//! use tokio::io::AsyncReadExt;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sources = Sources::new(SourcesConfig::default())?;
//! let root = SourceUrl::parse("s3://old-dam/media/")?;
//! let url = SourceUrl::join(&root, "photos/a.jpg")?;
//! let meta = sources.head(&url).await?;
//! let mut opened = sources.open(&url, &meta).await?;
//! let mut bytes = opened.prefix.to_vec();
//! opened.reader.read_to_end(&mut bytes).await?;
//! assert_eq!(bytes.len() as u64, meta.size);
//! println!("{} ({} bytes) as {:?}", url, meta.size, url.file_name());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cloud;
mod error;
mod http;
mod limit;
mod local;
mod location;
mod meta;
mod reader;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

pub use crate::error::SourceError;
pub use crate::location::SourceUrl;
pub use crate::meta::ObjectMeta;
pub use crate::reader::ObjectReader;

use crate::cloud::CloudSources;
use crate::http::{HttpSources, plain_http_refusal};
use crate::limit::RequestLimit;

/// An object opened for reading: what the source said about it, and its bytes — [`prefix`](Self::prefix)
/// first, then [`reader`](Self::reader).
pub struct Opened {
    /// The object's metadata as the GET (or the opened file) announced it; `meta.size` bytes follow.
    pub meta: ObjectMeta,
    /// The first bytes, read while opening (local files: up to 256 KiB, in the same blocking call);
    /// empty for remote objects.
    pub prefix: Bytes,
    /// Whether `prefix` is the whole object and its end was confirmed (a small local file): the reader
    /// then has nothing more.
    pub prefix_is_all: bool,
    /// The bytes after `prefix`.
    pub reader: ObjectReader,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("meta", &self.meta)
            .field("prefix_len", &self.prefix.len())
            .field("prefix_is_all", &self.prefix_is_all)
            .field("reader", &self.reader)
            .finish()
    }
}

/// One object found by [`Sources::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key relative to the listed prefix, `/`-separated (`photos/a.jpg` under `s3://b/media/`).
    pub key: String,
    /// Its full location.
    pub url: SourceUrl,
    /// What the listing says about it (S3 listings carry the ETag; some servers' do not).
    pub meta: ObjectMeta,
}

/// Static S3 keys, overriding `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
/// `Debug` shows only the key id.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"REDACTED")
            .field("session_token", &self.session_token.as_ref().map(|_| "REDACTED"))
            .finish()
    }
}

/// How [`Sources`] reaches its sources. Start from [`SourcesConfig::default`] and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct SourcesConfig {
    /// Allow plain `http://` (source URLs and endpoints) to hosts that are not loopback
    /// (`--allow-http`). Default: off.
    pub allow_http: bool,
    /// `--source-rps`: requests per second over all requests of this `Sources` (HEAD, GET, each LIST
    /// page), spaced evenly (no burst). Default: no limit.
    pub rps: Option<NonZeroU32>,
    /// Time to establish a connection. Default: 10 s.
    pub connect_timeout: Duration,
    /// Time for an answer: a whole HEAD or LIST page, the headers of a GET. Default: 30 s.
    pub request_timeout: Duration,
    /// A GET body that delivers nothing for this long (while read) fails, retryably. Default: 60 s.
    pub stall_timeout: Duration,
    /// The S3 endpoint, overriding `AWS_ENDPOINT_URL` (an S3-compatible store; tests). Requests are
    /// path-style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    pub s3_endpoint: Option<String>,
    /// The S3 region, overriding `AWS_REGION`.
    pub s3_region: Option<String>,
    /// Static S3 keys, overriding the environment's.
    pub s3_credentials: Option<S3Credentials>,
    /// Objects per LIST page (S3 `max-keys`). Default: the store's own (1000 for S3).
    pub list_page_size: Option<NonZeroUsize>,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            allow_http: false,
            rps: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            s3_endpoint: None,
            s3_region: None,
            s3_credentials: None,
            list_page_size: None,
        }
    }
}

impl std::fmt::Debug for SourcesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcesConfig")
            .field("allow_http", &self.allow_http)
            .field("rps", &self.rps)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("s3_endpoint", &self.s3_endpoint.as_deref().map(crate::error::redact_urls))
            .field("s3_region", &self.s3_region)
            .field("s3_credentials", &self.s3_credentials)
            .field("list_page_size", &self.list_page_size)
            .finish()
    }
}

/// The readers of every kind of source, sharing one HTTP client, one store per bucket, and one
/// request-rate limit. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Sources {
    inner: Arc<Inner>,
}

struct Inner {
    config: SourcesConfig,
    limit: Option<RequestLimit>,
    http: HttpSources,
    cloud: Arc<CloudSources>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("config", &self.inner.config)
            .field("limit", &self.inner.limit)
            .field("cloud", &self.inner.cloud)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// Sets up the readers. Cloud stores are built on first use, from the environment as it is then.
    pub fn new(config: SourcesConfig) -> Result<Sources, SourceError> {
        let http = HttpSources::new(&config)?;
        let cloud = Arc::new(CloudSources::new(&config));
        let limit = config.rps.map(RequestLimit::new);
        Ok(Sources { inner: Arc::new(Inner { config, limit, http, cloud }) })
    }

    /// The configuration these readers were set up with.
    pub fn config(&self) -> &SourcesConfig {
        &self.inner.config
    }

    /// What the source says about the object at `url`: its size, ETag, version and modification time.
    pub async fn head(&self, url: &SourceUrl) -> Result<ObjectMeta, SourceError> {
        match url {
            SourceUrl::Local(path) => local::head(path, url.to_string()).await,
            SourceUrl::Http(target) => {
                self.check_http(target, url)?;
                self.acquire().await;
                self.inner.http.head(target, &url.to_string(), self.acquire()).await
            }
            _ => {
                self.acquire().await;
                self.inner.cloud.head(url).await
            }
        }
    }

    /// GETs the object (opens the file). When `expected` has an ETag the GET is conditional on it
    /// (`If-Match`), and in any case the answer's size and ETag are compared with `expected`'s: a
    /// changed object is [`SourceError::Changed`] (for a local file: a size or mtime that differs).
    /// The bytes then come from [`Opened::prefix`] and [`Opened::reader`]; see [`ObjectReader`] for
    /// the errors a read can give and their `io::ErrorKind`.
    pub async fn open(&self, url: &SourceUrl, expected: &ObjectMeta) -> Result<Opened, SourceError> {
        match url {
            SourceUrl::Local(path) => local::open(path, url.to_string(), expected).await,
            SourceUrl::Http(target) => {
                self.check_http(target, url)?;
                self.acquire().await;
                self.inner.http.open(target, &url.to_string(), expected).await
            }
            _ => {
                self.acquire().await;
                self.inner.cloud.open(url, expected).await
            }
        }
    }

    /// Every object under the prefix `prefix` (`s3://bucket/media/`; `s3://bucket/media` lists the
    /// same, under `media/`), streamed page by page — never the whole listing in memory — each with
    /// its key relative to the prefix. Directory markers (`photos/`, 0 bytes) are skipped. A local
    /// path or an http(s) URL cannot be listed here: the stream is one [`SourceError::Unsupported`].
    pub fn list(&self, prefix: &SourceUrl) -> BoxStream<'static, Result<Listed, SourceError>> {
        let unsupported = |message: &str| {
            let error = SourceError::Unsupported { url: prefix.to_string(), message: message.to_owned() };
            futures::stream::once(async move { Err(error) }).boxed()
        };
        match prefix {
            SourceUrl::Local(_) => {
                unsupported("cannot list a local directory here: `spinlift scan` walks local folders itself")
            }
            SourceUrl::Http(_) => {
                unsupported("cannot list an http(s) URL: HTTP has no listing; name each URL in the manifest")
            }
            _ => {
                let this = self.clone();
                self.inner.cloud.list(prefix, move || {
                    let this = this.clone();
                    Box::pin(async move { this.acquire().await })
                })
            }
        }
    }

    fn check_http(&self, target: &url::Url, url: &SourceUrl) -> Result<(), SourceError> {
        match plain_http_refusal(target, self.inner.config.allow_http) {
            Some(host) => Err(SourceError::PlainHttp { url: url.to_string(), host }),
            None => Ok(()),
        }
    }

    /// Waits for the rate limit's permit for one request (at once without a limit).
    async fn acquire(&self) {
        if let Some(limit) = &self.inner.limit {
            limit.acquire().await;
        }
    }
}

//! A local FileSpin — the upload API and an S3 POST endpoint — and the source servers a migration reads
//! from, in-process or standalone.
//!
//! spinlift uploads a file into FileSpin in three steps ("Get Storage Upload URL", developers.filespin.io):
//! ask `content_storage_url` for a signed S3 POST form, POST the file to S3 with that form, then
//! `register_asset` with its size and MD5. [`Emulator`] serves all three on two loopback ports, so tests,
//! the demo and benchmarks run without a network or an account. It also serves the two data endpoints
//! ("Assets - Data"): Get Data, which reports an asset's status (`NOT_READY` while its file is being
//! saved, then `OK` or `ERROR`), and Update Data, which sets its custom metadata.
//!
//! It shares no code with the spinlift client on purpose — its own wire types, its own SigV4 signing — so
//! that a misreading of the API in the client is caught by a test instead of mirrored here. The S3 side is
//! [s3s](https://docs.rs/s3s) over [s3s-fs](https://docs.rs/s3s-fs), which checks the form's signature,
//! expiration and conditions the way S3 does.
//!
//! # Example
//!
//! ```
//! use spinlift_emulator::{Emulator, EmulatorConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//!
//! // Point a client at it.
//! let api_url = emulator.api_url(); // "http://127.0.0.1:<port>"
//! let api_key = emulator.api_key();
//! # let _ = (api_url, api_key);
//!
//! // … upload through `api_url` …
//!
//! // Then check what landed.
//! let stats = emulator.stats();
//! assert_eq!(stats.rejected, 0);
//! for registration in emulator.registrations() {
//!     let bytes = emulator.read_object(&registration.key)?;
//!     assert_eq!(bytes.len() as u64, registration.size);
//! }
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints
//!
//! On [`Emulator::api_url`]:
//!
//! | request | answers |
//! |---|---|
//! | `GET /api/v1/assets/new/content_storage_url?filename=…[&protocol=POST]` | 200 the form (the docs' example shape) |
//! | `POST /api/v1/assets/new/register_asset` (JSON) | 200 `{"asset_id": …, "status": "registered"}` |
//! | `GET /api/v1/assets/{id}/data` (Get Data) | 200 the asset in the Asset Data Format (below) |
//! | `POST /api/v1/assets/{id}/data/update[?async=1]` (Update Data, `{"data": {…}, "mode": "APPEND"\|"REPLACE"[, "data_schema_id": n]}`) | 200 the asset, updated; 202 with `?async=1` |
//! | `GET /_emulator/stats` (no auth) | 200 [`Stats`] |
//! | `GET /_emulator/registrations` (no auth) | 200 `[`[`Registration`]`, …]` |
//! | `GET /_emulator/issued` (no auth) | 200 `[`[`IssuedForm`]`, …]` |
//! | `POST /_emulator/s3_outage?for=<duration>` (no auth) | 204; starts an S3 outage ([`Emulator::set_s3_outage`]) |
//!
//! API errors are JSON `{"error": "<CODE>", "message": "<text>"}` (the docs give codes, not the shape):
//!
//! | status | code | when |
//! |---|---|---|
//! | 401 | `UNAUTHORIZED` | `X-FileSpin-Api-Key` missing or wrong |
//! | 403 | `FORBIDDEN` | [`EmulatorConfig::account_disabled`] ("User account is disabled"), on every endpoint; [`EmulatorConfig::upload_limit_exceeded`] ("Upload limit exceeded"), on the two upload endpoints |
//! | 400 | `MISSING_MANDATORY_PARAMETERS` | no or empty `filename`; register without `asset_id`, `size` or `checksum`; update without `data` or `mode` |
//! | 400 | `INVALID_REQUEST` | `protocol` other than `POST` (any case); register body not a JSON object, a field of the wrong type, a checksum that is not 32 hex digits; update `data` not an object, over 2,000 characters, or with a field beginning with `_filespin`; `mode` not `APPEND`/`REPLACE`; `async` not `1`/`0` |
//! | 400 | `NOT_READY` | update an asset that is still `NOT_READY` ("retry after a few seconds") |
//! | 404 | `ASSET_NOT_FOUND` | register an `asset_id` never issued; get or update the data of an asset that is not registered (docs silent) |
//! | 400 | `ASSET_ID_EXISTS` | register an asset a second time |
//! | 400 | `OBJECT_NOT_FOUND` | register before anything was uploaded under the asset's key (docs silent) |
//! | 400 | `SIZE_MISMATCH`, `CHECKSUM_MISMATCH` | the stored object's size or MD5 differ from the request (docs silent) |
//! | 404, 405 | `NOT_FOUND`, `METHOD_NOT_ALLOWED` | any other path or method |
//!
//! Get Data answers (and Update Data answers with) the asset in the Asset Data Format: `id`, `status`,
//! `name` (the file name given to `content_storage_url`), `size` and `checksum` as registered, `provider`,
//! `storage_type`, `bucket`, `key`, `public`, `content_type` (from the extension), `upload_time`,
//! `data_schema_id` once one was sent, `metadata` `{}`, `data` (the custom data), `conversions` `{}`,
//! `addons_info` `{}`, and for an `ERROR` asset its reason in `message`. Its status follows
//! [`EmulatorConfig::not_ready_for`] and [`EmulatorConfig::asset_errors`]; an update sent with
//! `?async=1` shows after [`EmulatorConfig::async_update_delay`]. [`Emulator::asset_data`] and
//! [`Emulator::asset_status`] read the same from Rust, and [`Stats::data_gets`] / [`Stats::data_updates`]
//! count the requests.
//!
//! On [`Emulator::s3_url`] (path-style, `http://127.0.0.1:<port>/<bucket>/`): multipart POST with every
//! field of `storage.fields` and the file last, as field `file`. Success is `204 No Content`; refusals are
//! S3's XML errors from s3s: `403 SignatureDoesNotMatch` (tampered signature), `403 AccessDenied` (expired
//! form, a field breaking a policy condition such as a key outside the asset's prefix, no form at all, any
//! request but a POST upload), `400 EntityTooLarge` (a file over [`EmulatorConfig::max_object_size`]).
//!
//! Every 4xx/5xx the emulator answers on either port by its own checks counts in [`Stats::rejected`];
//! injected faults count apart (below).
//!
//! # Faults
//!
//! Real networks and APIs fail in known ways, and a client's tests need a server that fails the same
//! ways. [`EmulatorConfig::faults`] ([`FaultConfig`], from a one-line spec with [`FaultConfig::parse`])
//! injects them, seeded so that a failure replays:
//!
//! | fault | API (`api.*`: all four endpoints; or one of them) | S3 POST (`s3.*`) |
//! |---|---|---|
//! | server error (`5xx`) | 500 `INTERNAL_ERROR` (JSON), 502 or 503 (HTML, as a load balancer) | 500 `InternalError` |
//! | throttling | `429` `RATE_LIMIT_EXCEEDED` + `Retry-After` | `503` `SlowDown` (`s3.503`); `429` `TooManyRequests` + `Retry-After` |
//! | `drop` | the connection closes, no answer | the connection closes after half the body, nothing stored |
//! | `lost_reply` | the form is issued / the asset registered / the data updated, then the connection closes | the object is stored, then the connection closes |
//! | `latency` | a fixed or random delay before every answer | the same |
//! | `slow_body` | — | the body is read slowly, then answered normally |
//! | rate limit ([`FaultConfig::api_rps`]) | `429` + `Retry-After: 1` over N requests/s (a token bucket) | — |
//! | revoked key ([`FaultConfig::key_invalid_after`]) | `401` from the (N+1)-th API request on | — |
//! | outage ([`FaultConfig::s3_outage`], [`Emulator::set_s3_outage`]) | — | `503 SlowDown` to every request for a while |
//!
//! A fault never changes what landed, except a lost reply, whose whole point is that the work was done:
//! errors and drops happen before the real handler runs. Injected answers are counted in
//! [`Stats::faults_injected`] and [`Stats::rate_limited`], and [`Emulator::request_times`] gives every
//! request's arrival time, so a test can check the rate a client kept to. The standalone server (`spinlift
//! emulator`) runs the same code: whatever [`FaultConfig`] it is started with, it injects.
//!
//! # Source servers
//!
//! A migration from remote storage reads each file from a source — `s3://bucket/key` or an `https://`
//! URL — and streams it into the S3 POST upload. Two more servers stand in for those sources, in-process
//! or standalone, each on its own loopback port and failing the way real ones do:
//!
//! - [`SourceBucket`]: S3-compatible, on s3s over s3s-fs (the same stack as the S3 POST endpoint),
//!   path-style (`http://127.0.0.1:<port>/<bucket>/<key>`), SigV4 header or presigned authentication with
//!   [`SourceBucketConfig::access_key_id`] / [`SourceBucketConfig::secret_access_key`] (the emulator's
//!   defaults unless set), requests signed for any region accepted.
//! - [`SourceWeb`]: files from a directory over plain HTTP, as a web server or a CDN serves downloads.
//!
//! ```
//! use spinlift_emulator::{SourceBucket, SourceBucketConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bucket = SourceBucket::start(SourceBucketConfig::default()).await?;
//! let etag = bucket.put_object("source", "photos/a.jpg", b"...".to_vec()).await?;
//! assert_eq!(etag, "\"2f43b42fd833d1e77420a8dae7419000\""); // the quoted MD5 of the bytes
//!
//! // What a user (or a test) hands to a client: AWS_ENDPOINT=http://127.0.0.1:<port>,
//! // AWS_ACCESS_KEY_ID=…, AWS_SECRET_ACCESS_KEY=…, AWS_ALLOW_HTTP=true, AWS_REGION=us-east-1.
//! println!("{}", bucket.env());
//! // … read s3://source/photos/a.jpg through bucket.endpoint() …
//! assert_eq!(bucket.stats().faults_injected, 0);
//! bucket.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! On [`SourceBucket::endpoint`] (S3's XML errors from s3s unless said otherwise):
//!
//! | request | answers |
//! |---|---|
//! | `HEAD /<bucket>/<key>` | 200 `Content-Length`, `ETag`, `Last-Modified`; 404 `NoSuchKey` (no body) |
//! | `GET /<bucket>/<key>` \[`Range`\] | 200 (206 with `Content-Range`) the bytes; 416 `InvalidRange`; 404 `NoSuchKey` |
//! | either, with `If-Match` / `If-Unmodified-Since` | 412 `PreconditionFailed` when the condition fails |
//! | either, with `If-None-Match` / `If-Modified-Since` | 304 (no body, `ETag` and `Last-Modified`) when not modified |
//! | `GET /<bucket>?list-type=2[&prefix][&delimiter][&max-keys][&continuation-token][&start-after]` | ListObjectsV2: keys in order, at most 1,000 a page, `NextContinuationToken` while truncated, each key with its size, `LastModified` and `ETag`; `CommonPrefixes` with a delimiter |
//! | `PUT /<bucket>/<key>` (also a copy, multipart uploads) | 200 with the `ETag` |
//! | `DELETE /<bucket>/<key>`, `POST /<bucket>?delete` | 204 / 200; deleting a missing key succeeds, as in S3 |
//! | no signature, a wrong one | 403 `AccessDenied`, 403 `SignatureDoesNotMatch` |
//!
//! What s3s-fs 0.14.1 does itself, and what the bucket adds so that it answers as S3 does:
//!
//! | | s3s-fs | the bucket |
//! |---|---|---|
//! | ETag | the quoted MD5 of a single-part object, saved beside it when put (`"<md5>-<parts>"` for a multipart upload); for a file placed on disk, the MD5 computed on every HEAD and GET | the same; a file put through S3 or [`SourceBucket::put_object`] changes its ETag with its bytes, but one rewritten on disk keeps its saved ETag (use `put_object`) |
//! | `If-Match` and the other conditions | honoured on PutObject (and CopyObject's source), ignored on GetObject and HeadObject | evaluated for GET and HEAD (RFC 9110's order, which S3 follows), from the ETag and `Last-Modified` s3s-fs answers with |
//! | listing | sorted, paged with a continuation token (the last key) and `max-keys`; no `ETag` per key; `max-keys` above 1,000 honoured | each key's ETag filled in; `max-keys` capped at 1,000, as S3 does |
//! | delete | the file goes, its saved ETag and attributes stay | those go too, so that a file later placed under the key is not served with the old ETag |
//! | `Range` | single ranges, suffix ranges | — |
//!
//! On [`SourceWeb::url`]:
//!
//! | request | answers |
//! |---|---|
//! | `GET /<path>` \[`Range: bytes=…`\] | 200 (206) the file under [`SourceWebConfig::dir`], `Content-Length`, `ETag` (the quoted MD5 of the content), `Last-Modified` (its modification time), `Accept-Ranges: bytes`; 416 for a range past the end; a multi-range is ignored (200) |
//! | `HEAD /<path>` | the same headers, no body; 405 with `Allow: GET` when [`SourceWebConfig::head`] is off |
//! | with conditions ([`SourceWebConfig::preconditions`], default on) | 412 (`If-Match`, `If-Unmodified-Since`), 304 (`If-None-Match`, `If-Modified-Since`); off, they are ignored |
//! | a directory, a missing file, a path with `..` or a segment starting with `.` | 404 |
//! | any other method | 405, `Allow: GET, HEAD` |
//!
//! The MD5 of a file is remembered while its size and modification time stay the same, except for a
//! file modified in the last two seconds, which is hashed on every request (file times are too coarse
//! to tell two quick rewrites apart).
//!
//! Both count what they serve ([`SourceStats`]: heads, gets, lists, puts, deletes, bytes served, `304`s,
//! their own refusals, faults, rate-limited requests) and record every request's arrival
//! ([`SourceBucket::request_times`], [`SourceWeb::request_times`]), so that a test can check the rate a
//! client kept to (`--source-rps`).
//!
//! ## Their faults
//!
//! Configured in the same [`FaultConfig`] and spec grammar as the emulator's, under the scopes `source.`
//! (the bucket) and `web.` (the web server) — see [`SourceFaults`] and [`FaultConfig::parse`] — and
//! seeded by the same [`FaultConfig::seed`], each server from its own stream. A spec's FileSpin settings
//! are ignored by the source servers and theirs by the [`Emulator`], so one spec can go to all three;
//! a setting without a scope (`latency=`, `retry_after=`) is for the FileSpin endpoints only.
//!
//! | spec (`source.` / `web.`) | [`SourceBucket`] | [`SourceWeb`] |
//! |---|---|---|
//! | `5xx` (alias `500`) | 500 `InternalError` | 500 |
//! | `503` | 503 `SlowDown` + `Retry-After` | 503 + `Retry-After` |
//! | `429` | 429 `TooManyRequests` + `Retry-After` | 429 + `Retry-After` |
//! | `404` | 404 `NoSuchKey` to a GET or HEAD of an object (others served) | 404 |
//! | `drop` | the connection closes, no answer | the same |
//! | `reset_mid` (alias `cut`) | a GET answered 2xx: the headers with the full `Content-Length`, half of the body, then the connection closes (others served) | the same |
//! | `stall`, `stall_for` | a GET answered 2xx: half of the body, nothing for `stall_for` (default 30 s), then the rest | the same |
//! | `rps` | 429 `TooManyRequests` + `Retry-After: 1` over a token bucket of `rps` requests/s | 429 + `Retry-After: 1` |
//! | `latency`, `retry_after` | a delay before every answer; the `Retry-After` of injected 503s and 429s | the same |
//!
//! The probabilities of one server add up to at most 1: one draw per request picks at most one fault.
//! A fault never changes what is stored: every error and drop happens before the request is served, and
//! a cut or a stall only shortens or delays the answer. Over HTTP/1.1 a cut body delivers exactly half
//! of its bytes before the close (the connection waits until hyper has flushed them to the socket);
//! over HTTP/2 the stream is reset, and bytes still queued may be lost.
//!
//! ## Standalone
//!
//! The CLI (`spinlift emulator --source-dir DIR`) starts them with configs whose fields come from flags:
//! a [`SourceBucketConfig`] with `dir: Some(DIR)` serves each directory `DIR/<bucket>` as a bucket
//! (`source` by default, created if missing), and a [`SourceWebConfig`] with the same `dir` serves the
//! same files at `/<bucket>/<key>` (s3s-fs's own files, at the top of `DIR` and starting with a `.`,
//! are not served). [`SourceBucket::env`] gives the lines a user exports for a client, and
//! [`SourceWeb::url`] the base of the files' URLs.
#![warn(missing_docs)]

mod api;
mod config;
mod error;
mod faults;
mod keys;
mod policy;
mod s3;
mod server;
mod signing;
mod source;
mod state;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::service::TowerToHyperService;
use tempfile::TempDir;
use tokio::task::JoinHandle;

pub use crate::config::{AssetErrorRule, EmulatorConfig};
pub use crate::error::EmulatorError;
pub use crate::faults::{ApiFaults, Endpoint, FaultConfig, Latency, S3Faults, SourceFaults};
pub use crate::source::{SourceBucket, SourceBucketConfig, SourceStats, SourceWeb, SourceWebConfig};
pub use crate::state::{IssuedForm, Registration, Stats};

use crate::faults::Faults;
use crate::state::{Counters, Ledger, RequestLog, Shared};

/// The longest form lifetime accepted, either way: a hundred years keeps every date printable.
const MAX_FORM_LIFETIME_SECS: i64 = 100 * 366 * 24 * 3600;

/// A running local FileSpin: the API and the S3 POST endpoint, each on its own port.
///
/// Stop it with [`shutdown`](Self::shutdown); dropping it stops both servers too (and deletes its
/// temporary store, if it made one).
pub struct Emulator {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    servers: Vec<JoinHandle<()>>,
    /// Deleted on drop, after the servers are stopped.
    _temp_dir: Option<TempDir>,
}

impl Emulator {
    /// Opens both ports and starts serving.
    ///
    /// # Errors
    /// An unusable setting ([`EmulatorError::InvalidConfig`]), a port that cannot be opened
    /// ([`EmulatorError::Bind`]) or a store directory that cannot be prepared ([`EmulatorError::Storage`]).
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        validate(&config)?;
        let (storage_root, temp_dir) = open_store(config.storage_dir.as_deref())?;
        // s3s-fs serves only buckets whose directory exists.
        let bucket_dir = storage_root.join(&config.bucket);
        std::fs::create_dir_all(&bucket_dir)
            .map_err(|source| EmulatorError::Storage { path: bucket_dir, source })?;

        let api_listener = server::bind(config.api_addr).await?;
        let s3_listener = server::bind(config.s3_addr).await?;
        let api_addr = local_addr(&api_listener, config.api_addr)?;
        let s3_addr = local_addr(&s3_listener, config.s3_addr)?;

        if !config.faults.is_none() {
            // Logged so that a failing run can be replayed with the same seed.
            tracing::info!(faults = %config.faults, "injecting faults");
        }
        let started = Instant::now();
        let shared = Arc::new(Shared {
            max_key_len: keys::max_key_len(&config.bucket),
            s3_url: format!("{}/{}/", base_url(s3_addr), config.bucket),
            api_key: config.api_key,
            bucket: config.bucket,
            region: config.region,
            access_key_id: config.access_key_id,
            secret_access_key: config.secret_access_key,
            form_expiry_secs: config.form_expiry_secs,
            max_object_size: config.max_object_size,
            upload_limit_exceeded: config.upload_limit_exceeded,
            account_disabled: config.account_disabled,
            not_ready_for: config.not_ready_for,
            asset_errors: config.asset_errors,
            async_update_delay: config.async_update_delay,
            storage_root,
            faults: Faults::new(config.faults, started),
            counters: Counters::default(),
            requests: RequestLog::new(started),
            ledger: Ledger::default(),
        });

        let s3 = s3::service(&shared)
            .map_err(|source| EmulatorError::Storage { path: shared.storage_root.clone(), source })?;
        let api_server =
            server::spawn(api_listener, TowerToHyperService::new(api::router(Arc::clone(&shared))));
        let s3_shared = Arc::clone(&shared);
        let s3_server = server::spawn(
            s3_listener,
            service_fn(move |req| s3::handle(Arc::clone(&s3_shared), s3.clone(), req)),
        );
        tracing::info!(api = %base_url(api_addr), s3 = %shared.s3_url, "FileSpin emulator started");

        Ok(Emulator { shared, api_addr, servers: vec![api_server, s3_server], _temp_dir: temp_dir })
    }

    /// The API's base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn api_url(&self) -> String {
        base_url(self.api_addr)
    }

    /// The `storage.url` the forms carry: path-style, `http://127.0.0.1:<port>/<bucket>/`.
    pub fn s3_url(&self) -> String {
        self.shared.s3_url.clone()
    }

    /// The API key clients must send in `X-FileSpin-Api-Key`.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The request counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The faults being injected.
    pub fn faults(&self) -> &FaultConfig {
        self.shared.faults.config()
    }

    /// Starts an S3 outage now: for `length`, every request on the S3 port is answered `503 SlowDown`
    /// (counted in [`Stats::faults_injected`]). Ends any outage under way; `Duration::ZERO` ends it
    /// without starting another. `POST /_emulator/s3_outage?for=<duration>` does the same over HTTP.
    pub fn set_s3_outage(&self, length: Duration) {
        self.shared.faults.set_s3_outage(length);
    }

    /// When each request to `endpoint` arrived, measured from the emulator's start, in the order recorded
    /// (which, under concurrency, may differ from arrival order by a few microseconds). Every request
    /// counts, whatever its answer — faulted, rate-limited or refused — so that a test can compute the
    /// rate a client sent at over any window.
    pub fn request_times(&self, endpoint: Endpoint) -> Vec<Duration> {
        self.shared.requests.times(endpoint)
    }

    /// Every successful registration, in order.
    pub fn registrations(&self) -> Vec<Registration> {
        self.shared.ledger.registrations()
    }

    /// Every form handed out, in order.
    pub fn issued(&self) -> Vec<IssuedForm> {
        self.shared.ledger.issued()
    }

    /// A registered asset's custom data (a JSON object) as Get Data would report it now: every
    /// synchronous update applied, and every `?async=1` update whose
    /// [`async_update_delay`](EmulatorConfig::async_update_delay) has passed. `None` for an asset that
    /// is not registered.
    pub fn asset_data(&self, asset_id: &str) -> Option<serde_json::Value> {
        let asset = self.shared.ledger.asset(asset_id, Instant::now())?;
        Some(serde_json::Value::Object(asset.data))
    }

    /// A registered asset's status as Get Data would report it now: `"NOT_READY"`, `"OK"` or `"ERROR"`.
    /// `None` for an asset that is not registered.
    pub fn asset_status(&self, asset_id: &str) -> Option<&'static str> {
        let now = Instant::now();
        let asset = self.shared.ledger.asset(asset_id, now)?;
        Some(self.shared.asset_status(&asset, now).0.as_str())
    }

    /// Where the bytes of the object stored under `key` are on disk (with or without a leading `/`).
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.shared.object_path(key)
    }

    /// The bytes stored under `key`.
    ///
    /// # Errors
    /// `NotFound` if nothing was stored under `key`; any other error reading the file.
    pub fn read_object(&self, key: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.object_path(key))
    }

    /// Stops both servers, closing their open connections, and waits until they are gone.
    pub async fn shutdown(mut self) {
        let servers = std::mem::take(&mut self.servers);
        for server in &servers {
            server.abort();
        }
        for server in servers {
            // Aborted on purpose: the only outcome left is "cancelled".
            let _ = server.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("api_url", &self.api_url())
            .field("s3_url", &self.shared.s3_url)
            .field("storage_root", &self.shared.storage_root)
            .finish_non_exhaustive()
    }
}

fn validate(config: &EmulatorConfig) -> Result<(), EmulatorError> {
    let invalid = |message: String| Err(EmulatorError::InvalidConfig(message));
    if config.api_key.is_empty() {
        return invalid("api_key is empty".into());
    }
    if !s3s::path::check_bucket_name(&config.bucket) {
        return invalid(format!("bucket {:?} is not a valid S3 bucket name", config.bucket));
    }
    // Both go into the credential scope `<access key id>/<date>/<region>/s3/aws4_request`.
    for (name, value) in [("access_key_id", &config.access_key_id), ("region", &config.region)] {
        if value.is_empty() || value.contains('/') {
            return invalid(format!("{name} {value:?} must be non-empty and free of '/'"));
        }
    }
    if config.secret_access_key.is_empty() {
        return invalid("secret_access_key is empty".into());
    }
    if config.form_expiry_secs.abs() > MAX_FORM_LIFETIME_SECS {
        return invalid(format!("form_expiry_secs {} is beyond a hundred years", config.form_expiry_secs));
    }
    config.faults.validate().map_err(|e| EmulatorError::InvalidConfig(format!("faults: {e}")))?;
    if let Some(rule) = config.asset_errors.iter().find(|rule| rule.pattern.is_empty()) {
        return invalid(format!("asset_errors: the rule for {:?} has an empty pattern", rule.reason));
    }
    Ok(())
}

/// The store's root (canonical, as s3s-fs sees it), and the temporary directory holding it if we made one.
fn open_store(dir: Option<&Path>) -> Result<(PathBuf, Option<TempDir>), EmulatorError> {
    let (dir, temp_dir) = match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|source| EmulatorError::Storage { path: dir.to_owned(), source })?;
            (dir.to_owned(), None)
        }
        None => {
            let temp_dir = tempfile::Builder::new()
                .prefix("spinlift-emulator-")
                .tempdir()
                .map_err(|source| EmulatorError::Storage { path: std::env::temp_dir(), source })?;
            (temp_dir.path().to_owned(), Some(temp_dir))
        }
    };
    let root = dir.canonicalize().map_err(|source| EmulatorError::Storage { path: dir, source })?;
    Ok((root, temp_dir))
}

fn local_addr(listener: &tokio::net::TcpListener, asked: SocketAddr) -> Result<SocketAddr, EmulatorError> {
    listener.local_addr().map_err(|source| EmulatorError::Bind { addr: asked, source })
}

/// `http://<addr>`; an unspecified address (`0.0.0.0`, `::`) is reached through loopback.
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

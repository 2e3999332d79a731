//! [`SourceBucket`]: an S3-compatible source on s3s over s3s-fs, with faults.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use s3s::HttpError;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use super::body::{Plan, ServedBody};
use super::conditions::{self, Verdict};
use super::store::SourceStore;
use super::{Log, Op, SourceStats, env_line};
use crate::config::DEFAULT_SECRET_ACCESS_KEY;
use crate::faults::{FaultConfig, SourceFault, SourceFaultPicker, SourceFaults, SourceRefusal, SourceServer};
use crate::s3::{close, read_body, xml_error};
use crate::server::{self, Connection};
use crate::{EmulatorConfig, EmulatorError};

/// How a [`SourceBucket`] is set up. `Default`: one bucket `source` in a private temporary directory,
/// on a free loopback port, with the emulator's default credentials and no faults.
///
/// The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct SourceBucketConfig {
    /// Where it listens. Default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// The access key id requests must be signed with. Default
    /// [`EmulatorConfig::DEFAULT_ACCESS_KEY_ID`].
    pub access_key_id: String,
    /// The secret requests must be signed with. Default: the emulator's default secret.
    pub secret_access_key: String,
    /// The region reported by [`SourceBucket::region`] and [`SourceBucket::env`]. Requests signed for
    /// any region are accepted (s3s checks a signature against the region it names). Default
    /// `us-east-1`.
    pub region: String,
    /// The buckets to create (valid S3 bucket names); any other directory already in the store is served
    /// as a bucket too. Default `["source"]`.
    pub buckets: Vec<String>,
    /// The store: bucket `b` is the directory `<dir>/b`, object `k` the file `<dir>/b/k`. `None`: a
    /// temporary directory owned, and deleted, by the bucket. Benchmarks may pass a directory on
    /// `/dev/shm`.
    pub dir: Option<PathBuf>,
    /// Faults to inject: [`FaultConfig::source`], seeded by [`FaultConfig::seed`]; the other settings are
    /// the emulator's and ignored here, so one spec can configure every server.
    pub faults: FaultConfig,
}

impl SourceBucketConfig {
    /// The default bucket.
    pub const DEFAULT_BUCKET: &'static str = "source";
}

impl Default for SourceBucketConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            access_key_id: EmulatorConfig::DEFAULT_ACCESS_KEY_ID.to_owned(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
            region: EmulatorConfig::DEFAULT_REGION.to_owned(),
            buckets: vec![Self::DEFAULT_BUCKET.to_owned()],
            dir: None,
            faults: FaultConfig::default(),
        }
    }
}

impl fmt::Debug for SourceBucketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceBucketConfig")
            .field("addr", &self.addr)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .field("buckets", &self.buckets)
            .field("dir", &self.dir)
            .field("faults", &self.faults.source)
            .finish()
    }
}

/// A running S3-compatible source: path-style (`http://127.0.0.1:<port>/<bucket>/<key>`), SigV4 header
/// (or presigned) authentication, the read API a client such as `object_store` uses — HeadObject,
/// GetObject with `Range` and conditions, ListObjectsV2 with prefix, delimiter, `max-keys` and
/// continuation tokens — and PutObject, CopyObject, DeleteObject and multipart uploads to set objects up.
///
/// See the crate docs' "Source servers" for what it answers and which faults it injects. Stop it with
/// [`shutdown`](Self::shutdown); dropping it stops it too (and deletes its temporary store, if it made
/// one).
pub struct SourceBucket {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    /// Deleted on drop, after the server is stopped.
    _temp_dir: Option<TempDir>,
}

struct Shared {
    store: SourceStore,
    root: PathBuf,
    access_key_id: String,
    secret_access_key: String,
    region: String,
    buckets: Vec<String>,
    log: Log,
}

impl SourceBucket {
    /// Opens the port and starts serving.
    ///
    /// # Errors
    /// An unusable setting ([`EmulatorError::InvalidConfig`]), a port that cannot be opened
    /// ([`EmulatorError::Bind`]) or a store that cannot be prepared ([`EmulatorError::Storage`]).
    pub async fn start(config: SourceBucketConfig) -> Result<SourceBucket, EmulatorError> {
        validate(&config)?;
        let (root, temp_dir) = crate::open_store(config.dir.as_deref())?;
        for bucket in &config.buckets {
            let dir = root.join(bucket);
            std::fs::create_dir_all(&dir).map_err(|source| EmulatorError::Storage { path: dir, source })?;
        }
        let store = SourceStore::new(&root)
            .map_err(|source| EmulatorError::Storage { path: root.clone(), source })?;
        let listener = server::bind(config.addr).await?;
        let addr = crate::local_addr(&listener, config.addr)?;

        let mut builder = S3ServiceBuilder::new(store.clone());
        builder.set_auth(SimpleAuth::from_single(
            config.access_key_id.clone(),
            config.secret_access_key.clone(),
        ));
        let s3 = builder.build();

        if !config.faults.source.is_none() {
            // Logged so that a failing run can be replayed with the same seed.
            tracing::info!(seed = config.faults.seed, faults = ?config.faults.source, "source bucket: injecting faults");
        }
        let faults = SourceFaultPicker::new(config.faults.source, config.faults.seed, SourceServer::Bucket);
        let shared = Arc::new(Shared {
            store,
            root,
            access_key_id: config.access_key_id,
            secret_access_key: config.secret_access_key,
            region: config.region,
            buckets: config.buckets,
            log: Log::new(faults),
        });
        let handler_shared = Arc::clone(&shared);
        let server = server::spawn(
            listener,
            service_fn(move |req| handle(Arc::clone(&handler_shared), s3.clone(), req)),
        );
        tracing::info!(endpoint = %crate::base_url(addr), "source bucket started");
        Ok(SourceBucket { shared, addr, server: Some(server), _temp_dir: temp_dir })
    }

    /// The endpoint, `http://127.0.0.1:<port>` (no trailing slash): objects are at
    /// `<endpoint>/<bucket>/<key>`.
    pub fn endpoint(&self) -> String {
        crate::base_url(self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The access key id requests must be signed with.
    pub fn access_key_id(&self) -> &str {
        &self.shared.access_key_id
    }

    /// The secret requests must be signed with.
    pub fn secret_access_key(&self) -> &str {
        &self.shared.secret_access_key
    }

    /// The configured region (requests signed for any region are accepted).
    pub fn region(&self) -> &str {
        &self.shared.region
    }

    /// The buckets created at the start.
    pub fn buckets(&self) -> &[String] {
        &self.shared.buckets
    }

    /// The store's root (canonical): bucket `b` is the directory `<dir>/b`.
    pub fn dir(&self) -> &Path {
        &self.shared.root
    }

    /// Where the bytes of `key` in `bucket` are on disk. To change an object, use
    /// [`put_object`](Self::put_object) rather than this file: s3s-fs keeps the ETag it computed when the
    /// object was put, and would serve a file rewritten on disk with the old one. (A file placed on disk
    /// under a key never put is served with the MD5 of its bytes.)
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.shared.root.join(bucket).join(key.trim_start_matches('/'))
    }

    /// Stores `bytes` as `key` in `bucket`, as a PutObject request would (no request is counted, no fault
    /// applies), and returns its ETag as served: the quoted MD5 of the bytes.
    ///
    /// # Errors
    /// A bucket that does not exist, a key s3s-fs cannot store, or a failure to write.
    pub async fn put_object(&self, bucket: &str, key: &str, bytes: impl Into<Bytes>) -> io::Result<String> {
        self.shared.store.put(bucket, key, bytes.into()).await
    }

    /// Deletes `key` from `bucket`, as a DeleteObject request would (deleting a missing key succeeds).
    ///
    /// # Errors
    /// A bucket that does not exist, or a failure to delete.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> io::Result<()> {
        self.shared.store.delete(bucket, key).await
    }

    /// The counters so far.
    pub fn stats(&self) -> SourceStats {
        self.shared.log.snapshot()
    }

    /// When each request arrived, measured from the start, in the order recorded (which, under
    /// concurrency, may differ from arrival order by a few microseconds). Every request counts, whatever
    /// its answer, so that a test can compute the rate a client kept to over any window.
    pub fn request_times(&self) -> Vec<Duration> {
        self.shared.log.times()
    }

    /// The faults being injected.
    pub fn faults(&self) -> &SourceFaults {
        self.shared.log.faults.faults()
    }

    /// The environment a client needs to reach the bucket, as `object_store`'s `AmazonS3Builder::from_env`
    /// (and the AWS tools) read it: `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP=true`.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.shared.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.shared.secret_access_key.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", self.shared.region.clone()),
        ]
    }

    /// [`env_vars`](Self::env_vars) as lines to paste into a POSIX shell after `export`, one `KEY=value`
    /// a line (values quoted where needed). It holds the secret: print it for the user, never log it.
    pub fn env(&self) -> String {
        let lines: Vec<String> = self.env_vars().iter().map(|(key, value)| env_line(key, value)).collect();
        lines.join("\n")
    }

    /// Stops the server, closing its open connections, and waits until it is gone.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Aborted on purpose: the only outcome left is "cancelled".
            let _ = server.await;
        }
    }
}

impl Drop for SourceBucket {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl fmt::Debug for SourceBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceBucket")
            .field("endpoint", &self.endpoint())
            .field("buckets", &self.shared.buckets)
            .field("dir", &self.shared.root)
            .finish_non_exhaustive()
    }
}

fn validate(config: &SourceBucketConfig) -> Result<(), EmulatorError> {
    let invalid = |message: String| Err(EmulatorError::InvalidConfig(message));
    for bucket in &config.buckets {
        if !s3s::path::check_bucket_name(bucket) {
            return invalid(format!("source bucket {bucket:?} is not a valid S3 bucket name"));
        }
    }
    // Both go into the credential scope `<access key id>/<date>/<region>/s3/aws4_request`.
    for (name, value) in [("access_key_id", &config.access_key_id), ("region", &config.region)] {
        if value.is_empty() || value.contains('/') {
            return invalid(format!("source {name} {value:?} must be non-empty and free of '/'"));
        }
    }
    if config.secret_access_key.is_empty() {
        return invalid("source secret_access_key is empty".into());
    }
    config.faults.validate().map_err(|e| EmulatorError::InvalidConfig(format!("faults: {e}")))
}

/// What a request is, for the counters and the faults that apply to it only.
fn op_of(method: &Method, uri: &Uri) -> Op {
    let path = uri.path().trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let query = uri.query().unwrap_or("");
    let has = |name: &str| query.split('&').any(|pair| pair.split('=').next() == Some(name));
    if bucket.is_empty() {
        return Op::Other;
    }
    match (method, key.is_empty()) {
        (&Method::HEAD, false) => Op::Head,
        (&Method::GET, false) if !has("uploadId") => Op::Get,
        (&Method::GET, true) if is_listing(query) => Op::List,
        (&Method::PUT, false) => Op::Put,
        (&Method::DELETE, false) if !has("uploadId") => Op::Delete,
        // DeleteObjects, which `object_store` uses even for one object.
        (&Method::POST, true) if has("delete") => Op::Delete,
        _ => Op::Other,
    }
}

/// Whether a bucket GET's query is a listing's (and not, say, `?location` or `?uploads`).
fn is_listing(query: &str) -> bool {
    const LISTING: [&str; 10] = [
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "marker",
        "encoding-type",
        "fetch-owner",
        "",
    ];
    query.split('&').all(|pair| LISTING.contains(&pair.split('=').next().unwrap_or("")))
}

/// Serves one request, with whatever fault [`Log::arrive`] decides for it.
async fn handle(
    shared: Arc<Shared>,
    s3: S3Service,
    req: Request<Incoming>,
) -> Result<Response<ServedBody>, HttpError> {
    let op = op_of(req.method(), req.uri());
    let log = &shared.log;
    let decision = log.arrive(op);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let connection = req.extensions().get::<Connection>().cloned();
    match decision.fault {
        Some(SourceFault::Refuse(refusal)) => {
            // Read the body first: an answer sent over an unread body can be lost in the TCP reset that
            // closing such a connection sends.
            read_body(req.into_body(), u64::MAX).await;
            return Ok(refusal_response(refusal).map(ServedBody::new));
        }
        Some(SourceFault::Drop) => return Ok(close(connection).await.map(ServedBody::new)),
        Some(SourceFault::ResetMid | SourceFault::Stall(_)) | None => {}
    }
    let is_head = req.method() == Method::HEAD;
    let conditional = op.reads_object().then(|| req.headers().clone());

    let response = s3.call(req.map(s3s::Body::from)).await?;

    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        log.rejected();
        return Ok(response.map(ServedBody::new));
    }
    if let Some(headers) = conditional.filter(|_| status.is_success()) {
        let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).unwrap_or("");
        let modified = response
            .headers()
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        match conditions::evaluate(&headers, etag, modified) {
            Verdict::Proceed => {}
            Verdict::NotModified => {
                log.not_modified();
                return Ok(not_modified(&response));
            }
            Verdict::PreconditionFailed(condition) => {
                log.rejected();
                return Ok(precondition_failed(condition, is_head));
            }
        }
    }

    let len = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact())
        .unwrap_or(0);
    let plan = match decision.fault {
        _ if is_head || len == 0 || !status.is_success() => Plan::Whole,
        Some(SourceFault::ResetMid) => Plan::Cut { after: len / 2 },
        Some(SourceFault::Stall(pause)) => Plan::Stall { after: len / 2, pause },
        _ => Plan::Whole,
    };
    if plan != Plan::Whole {
        log.injected();
    }
    Ok(response.map(|body| {
        let body = ServedBody::new(body).with_plan(plan, connection);
        if op == Op::Get { body.counted_in(Arc::clone(&log.bytes_served)) } else { body }
    }))
}

/// An injected error answer, in S3's XML.
fn refusal_response(refusal: SourceRefusal) -> Response<s3s::Body> {
    let retry_after = |mut response: Response<s3s::Body>, secs: u64| {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        response
    };
    match refusal {
        SourceRefusal::ServerError => xml_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        SourceRefusal::SlowDown { retry_after_secs } => retry_after(
            xml_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."),
            retry_after_secs,
        ),
        SourceRefusal::TooManyRequests { retry_after_secs } => retry_after(
            xml_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Please reduce your request rate."),
            retry_after_secs,
        ),
        SourceRefusal::RateLimited => retry_after(
            xml_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Please reduce your request rate."),
            1,
        ),
        SourceRefusal::NotFound => {
            xml_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.")
        }
    }
}

/// `304 Not Modified`: no body, the validators kept.
fn not_modified(served: &Response<s3s::Body>) -> Response<ServedBody> {
    let mut response = Response::new(ServedBody::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    for name in [ETAG, LAST_MODIFIED] {
        if let Some(value) = served.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// `412 Precondition Failed`, as S3 answers it (no body to a HEAD).
fn precondition_failed(condition: &str, is_head: bool) -> Response<ServedBody> {
    let mut response = if is_head {
        Response::new(ServedBody::empty())
    } else {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PreconditionFailed</Code><Message>At least \
             one of the pre-conditions you specified did not hold</Message><Condition>{condition}</Condition></Error>"
        );
        let mut response = Response::new(ServedBody::new(s3s::Body::from(xml)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        response
    };
    *response.status_mut() = StatusCode::PRECONDITION_FAILED;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, uri: &str) -> Op {
        op_of(&method, &uri.parse().unwrap())
    }

    #[test]
    fn requests_are_told_apart() {
        assert_eq!(op(Method::GET, "/source/a/b.jpg"), Op::Get);
        assert_eq!(op(Method::HEAD, "/source/a/b.jpg"), Op::Head);
        assert_eq!(op(Method::PUT, "/source/a/b.jpg"), Op::Put);
        assert_eq!(op(Method::DELETE, "/source/a/b.jpg"), Op::Delete);
        assert_eq!(op(Method::GET, "/source?list-type=2&prefix=a%2F&max-keys=1000"), Op::List);
        assert_eq!(op(Method::GET, "/source/"), Op::List);
        assert_eq!(op(Method::GET, "/source"), Op::List);
        assert_eq!(op(Method::GET, "/source?location"), Op::Other);
        assert_eq!(op(Method::GET, "/source/k?uploadId=1"), Op::Other);
        assert_eq!(op(Method::HEAD, "/source"), Op::Other);
        assert_eq!(op(Method::GET, "/"), Op::Other);
        assert_eq!(op(Method::POST, "/source/k?uploads"), Op::Other);
        assert_eq!(op(Method::POST, "/source?delete"), Op::Delete);
    }
}

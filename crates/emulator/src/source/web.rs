//! [`SourceWeb`]: files from a directory over plain HTTP, with faults.

use std::fmt;
use std::io::{self, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED,
    RANGE, RETRY_AFTER,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tempfile::TempDir;
use tokio::io::AsyncSeekExt;
use tokio::task::JoinHandle;

use super::body::{FileBody, Plan, ServedBody};
use super::conditions::{self, Verdict};
use super::store::Md5Cache;
use super::{Log, Op, SourceStats};
use crate::EmulatorError;
use crate::faults::{FaultConfig, SourceFault, SourceFaultPicker, SourceFaults, SourceRefusal, SourceServer};
use crate::s3::{close, read_body};
use crate::server::{self, Connection};

/// How a [`SourceWeb`] is set up. `Default`: a private temporary directory on a free loopback port,
/// conditional requests honoured, HEAD allowed, no faults.
#[derive(Debug, Clone)]
pub struct SourceWebConfig {
    /// Where it listens. Default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// The directory served: `GET /a/b.jpg` answers the file `<dir>/a/b.jpg`. `None`: a temporary
    /// directory owned, and deleted, by the server.
    pub dir: Option<PathBuf>,
    /// Honour `If-Match` and `If-Unmodified-Since` (`412 Precondition Failed`), `If-None-Match` and
    /// `If-Modified-Since` (`304 Not Modified`). Default on; off, they are ignored, as by a server that
    /// knows none of them — a client that relies on `If-Match` to notice a file changing under it must
    /// then compare the ETag itself.
    pub preconditions: bool,
    /// Answer `HEAD`. Default on; off, a `HEAD` is answered `405 Method Not Allowed` with `Allow: GET`,
    /// as some old servers do, so that a client's fallback to a GET can be tested.
    pub head: bool,
    /// Faults to inject: [`FaultConfig::web`], seeded by [`FaultConfig::seed`]; the other settings are
    /// ignored here, so one spec can configure every server.
    pub faults: FaultConfig,
}

impl Default for SourceWebConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            dir: None,
            preconditions: true,
            head: true,
            faults: FaultConfig::default(),
        }
    }
}

/// A running plain-HTTP file server, the way a web server or a CDN serves downloads: `GET` and `HEAD`
/// of `/<path>` with `Content-Length`, `ETag` (the quoted MD5 of the file), `Last-Modified` (its
/// modification time) and a single `Range`; `404` for anything that is not a file.
///
/// See the crate docs' "Source servers" for what it answers and which faults it injects. Stop it with
/// [`shutdown`](Self::shutdown); dropping it stops it too (and deletes its temporary directory, if it
/// made one).
pub struct SourceWeb {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    /// Deleted on drop, after the server is stopped.
    _temp_dir: Option<TempDir>,
}

struct Shared {
    root: PathBuf,
    preconditions: bool,
    head: bool,
    md5s: Md5Cache,
    log: Log,
}

impl SourceWeb {
    /// Opens the port and starts serving.
    ///
    /// # Errors
    /// An unusable fault setting ([`EmulatorError::InvalidConfig`]), a port that cannot be opened
    /// ([`EmulatorError::Bind`]) or a directory that cannot be prepared ([`EmulatorError::Storage`]).
    pub async fn start(config: SourceWebConfig) -> Result<SourceWeb, EmulatorError> {
        config.faults.validate().map_err(|e| EmulatorError::InvalidConfig(format!("faults: {e}")))?;
        let (root, temp_dir) = crate::open_store(config.dir.as_deref())?;
        let listener = server::bind(config.addr).await?;
        let addr = crate::local_addr(&listener, config.addr)?;
        if !config.faults.web.is_none() {
            // Logged so that a failing run can be replayed with the same seed.
            tracing::info!(seed = config.faults.seed, faults = ?config.faults.web, "source web server: injecting faults");
        }
        let faults = SourceFaultPicker::new(config.faults.web, config.faults.seed, SourceServer::Web);
        let shared = Arc::new(Shared {
            root,
            preconditions: config.preconditions,
            head: config.head,
            md5s: Md5Cache::default(),
            log: Log::new(faults),
        });
        let handler_shared = Arc::clone(&shared);
        let server = server::spawn(listener, service_fn(move |req| handle(Arc::clone(&handler_shared), req)));
        tracing::info!(url = %crate::base_url(addr), dir = %shared.root.display(), "source web server started");
        Ok(SourceWeb { shared, addr, server: Some(server), _temp_dir: temp_dir })
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        crate::base_url(self.addr)
    }

    /// The URL of the file at `path` (relative to [`dir`](Self::dir), `/`-separated; each segment
    /// percent-encoded as needed).
    pub fn file_url(&self, path: &str) -> String {
        let segments: Vec<String> = path.trim_start_matches('/').split('/').map(percent_encode).collect();
        format!("{}/{}", self.url(), segments.join("/"))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory served (canonical).
    pub fn dir(&self) -> &Path {
        &self.shared.root
    }

    /// Where the file served at `path` is on disk.
    pub fn file_path(&self, path: &str) -> PathBuf {
        self.shared.root.join(path.trim_start_matches('/'))
    }

    /// Writes `bytes` as the file served at `path` (creating its directories), replacing it whole — a
    /// temporary file renamed over it, so that a request never sees half of it — and returns the ETag it
    /// will be served with: the quoted MD5 of the bytes.
    ///
    /// # Errors
    /// A failure to write.
    pub fn write_file(&self, path: &str, bytes: &[u8]) -> io::Result<String> {
        use md5::{Digest, Md5};
        let target = self.file_path(path);
        let parent = target.parent().unwrap_or(&self.shared.root);
        std::fs::create_dir_all(parent)?;
        let temp = tempfile::NamedTempFile::new_in(parent)?;
        std::fs::write(temp.path(), bytes)?;
        temp.persist(&target).map_err(|e| e.error)?;
        Ok(format!("\"{}\"", hex::encode(Md5::digest(bytes))))
    }

    /// Deletes the file served at `path`.
    ///
    /// # Errors
    /// `NotFound` if there is none; any other failure to delete.
    pub fn remove_file(&self, path: &str) -> io::Result<()> {
        std::fs::remove_file(self.file_path(path))
    }

    /// The counters so far (`lists`, `puts` and `deletes` stay 0).
    pub fn stats(&self) -> SourceStats {
        self.shared.log.snapshot()
    }

    /// When each request arrived, measured from the start, in the order recorded; every request counts,
    /// whatever its answer.
    pub fn request_times(&self) -> Vec<Duration> {
        self.shared.log.times()
    }

    /// The faults being injected.
    pub fn faults(&self) -> &SourceFaults {
        self.shared.log.faults.faults()
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

impl Drop for SourceWeb {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl fmt::Debug for SourceWeb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceWeb")
            .field("url", &self.url())
            .field("dir", &self.shared.root)
            .field("preconditions", &self.shared.preconditions)
            .field("head", &self.shared.head)
            .finish_non_exhaustive()
    }
}

fn percent_encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The file a request path names, relative to the root: percent-decoded, and `None` for anything that
/// could leave the root or name a hidden file (`..`, a segment starting with `.`, a NUL, a backslash).
fn relative_path(path: &str) -> Option<PathBuf> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains(['\0', '\\']) {
        return None;
    }
    let relative = PathBuf::from(decoded.trim_start_matches('/'));
    let plain = relative.components().all(|c| match c {
        Component::Normal(name) => !name.to_string_lossy().starts_with('.'),
        _ => false,
    });
    (plain && relative.components().next().is_some()).then_some(relative)
}

/// A single byte range of a `len`-byte file: `Ok(None)` for the whole file (no `Range`, or one that is
/// not a single `bytes=` range, which a server may ignore), `Err(())` for one that cannot be satisfied.
fn byte_range(range: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        // The last `n` bytes.
        let Ok(n) = last.parse::<u64>() else { return Ok(None) };
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len)
    } else {
        let Ok(start) = first.parse::<u64>() else { return Ok(None) };
        let end = if last.is_empty() {
            len
        } else {
            let Ok(last) = last.parse::<u64>() else { return Ok(None) };
            if last < start {
                return Ok(None);
            }
            last.saturating_add(1).min(len)
        };
        (start, end)
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn text_response(status: StatusCode, text: &'static str) -> Response<ServedBody> {
    let mut response = Response::new(ServedBody::new(s3s::Body::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// An injected error answer, as a web server or its load balancer gives it.
fn refusal_response(refusal: SourceRefusal) -> Response<ServedBody> {
    let with_retry_after = |mut response: Response<ServedBody>, secs: u64| {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        response
    };
    match refusal {
        SourceRefusal::ServerError => {
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        }
        SourceRefusal::SlowDown { retry_after_secs } => with_retry_after(
            text_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n"),
            retry_after_secs,
        ),
        SourceRefusal::TooManyRequests { retry_after_secs } => with_retry_after(
            text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
            retry_after_secs,
        ),
        SourceRefusal::RateLimited => {
            with_retry_after(text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"), 1)
        }
        SourceRefusal::NotFound => text_response(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// Serves one request, with whatever fault [`Log::arrive`] decides for it.
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ServedBody>, io::Error> {
    let op = match *req.method() {
        Method::GET => Op::Get,
        Method::HEAD => Op::Head,
        _ => Op::Other,
    };
    let log = &shared.log;
    let decision = log.arrive(op);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let connection = req.extensions().get::<Connection>().cloned();
    match decision.fault {
        Some(SourceFault::Refuse(refusal)) => {
            read_body(req.into_body(), u64::MAX).await;
            return Ok(refusal_response(refusal));
        }
        Some(SourceFault::Drop) => return Ok(close(connection).await.map(ServedBody::new)),
        Some(SourceFault::ResetMid | SourceFault::Stall(_)) | None => {}
    }
    let response = serve(&shared, &req, decision.fault, connection).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        log.rejected();
    } else if response.status() == StatusCode::NOT_MODIFIED {
        log.not_modified();
    }
    Ok(response)
}

async fn serve(
    shared: &Shared,
    req: &Request<Incoming>,
    fault: Option<SourceFault>,
    connection: Option<Connection>,
) -> Response<ServedBody> {
    let is_head = req.method() == Method::HEAD;
    let allowed = if shared.head { "GET, HEAD" } else { "GET" };
    if !(req.method() == Method::GET || is_head && shared.head) {
        let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
        return response;
    }
    let not_found = || text_response(StatusCode::NOT_FOUND, "Not Found\n");
    let Some(relative) = relative_path(req.uri().path()) else { return not_found() };
    let path = shared.root.join(relative);
    let metadata = match tokio::fs::metadata(&path).await {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => return not_found(),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return not_found();
        }
        Err(e) => return server_error(&e),
    };
    let (len, modified) = (metadata.len(), metadata.modified().ok());
    let etag = match shared.md5s.etag(&path).await {
        Ok(etag) => etag,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return not_found(),
        Err(e) => return server_error(&e),
    };
    let mut head = Response::builder()
        .header(ETAG, &etag)
        .header(ACCEPT_RANGES, "bytes")
        .header(CONTENT_TYPE, "application/octet-stream");
    if let Some(modified) = modified {
        head = head.header(LAST_MODIFIED, httpdate::fmt_http_date(modified));
    }
    if shared.preconditions {
        match conditions::evaluate(req.headers(), &etag, modified) {
            Verdict::Proceed => {}
            Verdict::NotModified => {
                return finish(head.status(StatusCode::NOT_MODIFIED), ServedBody::empty());
            }
            Verdict::PreconditionFailed(_) => {
                return text_response(StatusCode::PRECONDITION_FAILED, "Precondition Failed\n");
            }
        }
    }
    let range = req.headers().get(RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match byte_range(range, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((start, end))) => {
            head = head.header(CONTENT_RANGE, format!("bytes {start}-{}/{len}", end - 1));
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        Err(()) => {
            let mut response = text_response(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable\n");
            response.headers_mut().insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}"))
                    .unwrap_or(HeaderValue::from_static("bytes */0")),
            );
            return response;
        }
    };
    let body_len = end - start;
    let head = head.status(status).header(CONTENT_LENGTH, body_len);
    if is_head {
        return finish(head, ServedBody::empty());
    }
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return not_found(),
        Err(e) => return server_error(&e),
    };
    if start > 0
        && let Err(e) = file.seek(SeekFrom::Start(start)).await
    {
        return server_error(&e);
    }
    let plan = match fault {
        _ if body_len == 0 => Plan::Whole,
        Some(SourceFault::ResetMid) => Plan::Cut { after: body_len / 2 },
        Some(SourceFault::Stall(pause)) => Plan::Stall { after: body_len / 2, pause },
        _ => Plan::Whole,
    };
    if plan != Plan::Whole {
        shared.log.injected();
    }
    let body = ServedBody::new(FileBody::new(file, body_len))
        .with_plan(plan, connection)
        .counted_in(Arc::clone(&shared.log.bytes_served));
    finish(head, body)
}

fn finish(head: hyper::http::response::Builder, body: ServedBody) -> Response<ServedBody> {
    match head.body(body) {
        Ok(response) => response,
        // Only a header value that does not parse can get here, and every one is built above.
        Err(e) => {
            tracing::warn!(error = %e, "source web server: cannot build an answer");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        }
    }
}

fn server_error(e: &io::Error) -> Response<ServedBody> {
    tracing::warn!(error = %e, "source web server: cannot read a file");
    text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root_and_skip_hidden_files() {
        assert_eq!(relative_path("/a/b.jpg"), Some(PathBuf::from("a/b.jpg")));
        assert_eq!(relative_path("/a%20b/%C3%A9.jpg"), Some(PathBuf::from("a b/é.jpg")));
        for bad in [
            "/",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/.bucket-x.json",
            "/a/.hidden",
            "/a%00b",
            "/a%5Cb",
            "/%zz",
            "/%C3",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn single_ranges_are_understood_and_others_ignored() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-4"), 10), Ok(Some((0, 5))));
        assert_eq!(byte_range(Some("bytes=5-"), 10), Ok(Some((5, 10))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(byte_range(Some("bytes=8-100"), 10), Ok(Some((8, 10))));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Ok(Some((0, 10))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=-0"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=5-2"), 10), Ok(None));
    }

    #[test]
    fn file_urls_encode_their_segments() {
        assert_eq!(percent_encode("a b+é.jpg"), "a%20b%2B%C3%A9.jpg");
    }
}

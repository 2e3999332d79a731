//! A scriptable http server on 127.0.0.1 (axum): each path behaves one way, and every request is
//! logged with its arrival time.
//!
//! | path | behaviour |
//! |---|---|
//! | `/obj.bin` | 1000 bytes, `ETag: "v1"`, `Last-Modified`; `If-Match` honoured (412) |
//! | `/flip` | HEAD says `"v1"`; GET sends `"v2"` and ignores `If-Match` |
//! | `/flip412` | HEAD says `"v1"`; GET honours `If-Match` against `"v2"` (412) |
//! | `/short` | announces 1000 bytes, sends 500, then breaks the connection |
//! | `/stall` | announces 1000 bytes, sends 100, then nothing until the server is dropped |
//! | `/busy` | 503 with `Retry-After: 2` |
//! | `/limited` | 429 with an HTTP-date `Retry-After` |
//! | `/gone` | 410 |
//! | `/forbidden` | 403 |
//! | `/nohead` | HEAD 405; GET with `Range: bytes=0-0` 206 `Content-Range: bytes 0-0/1000` |
//! | `/nolength` | a chunked body, no `Content-Length` (HEAD too) |
//! | `/redirect-http` | 302 to `http://192.0.2.1/x` (not loopback) |
//! | anything else | 404 |

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) if_match: Option<String>,
    pub(crate) range: Option<String>,
    pub(crate) at: Instant,
}

type Log = Arc<Mutex<Vec<Seen>>>;

pub(crate) struct HttpServer {
    pub(crate) base: String,
    log: Log,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bytes of `/obj.bin`.
pub(crate) fn object() -> Vec<u8> {
    super::pattern(1000, 0x5a)
}

impl HttpServer {
    pub(crate) async fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: Log = Arc::default();
        let app = Router::new().fallback(handle).with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpServer { base, log, task }
    }

    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

async fn handle(State(log): State<Log>, method: Method, uri: Uri, headers: HeaderMap) -> Response<Body> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let if_match = header("if-match");
    let range = header("range");
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        if_match: if_match.clone(),
        range: range.clone(),
        at: Instant::now(),
    });
    let head = method == Method::HEAD;
    let answer = |status: StatusCode| Response::builder().status(status);
    match uri.path() {
        "/obj.bin" | "/count" | "/a%20b.bin" => {
            if if_match.as_deref().is_some_and(|m| m != "\"v1\"") {
                return answer(StatusCode::PRECONDITION_FAILED).body(Body::empty()).unwrap();
            }
            let response = answer(StatusCode::OK)
                .header("content-length", "1000")
                .header("etag", "\"v1\"")
                .header("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT");
            response.body(if head { Body::empty() } else { Body::from(object()) }).unwrap()
        }
        "/flip" => {
            let etag = if head { "\"v1\"" } else { "\"v2\"" };
            let response = answer(StatusCode::OK).header("content-length", "1000").header("etag", etag);
            response.body(if head { Body::empty() } else { Body::from(object()) }).unwrap()
        }
        "/flip412" => {
            if !head && if_match.as_deref().is_some_and(|m| m != "\"v2\"") {
                return answer(StatusCode::PRECONDITION_FAILED).body(Body::empty()).unwrap();
            }
            let etag = if head { "\"v1\"" } else { "\"v2\"" };
            answer(StatusCode::OK)
                .header("content-length", "1000")
                .header("etag", etag)
                .body(Body::empty())
                .unwrap()
        }
        "/short" => {
            let response = answer(StatusCode::OK).header("content-length", "1000");
            if head {
                return response.body(Body::empty()).unwrap();
            }
            // The half, then (once hyper has flushed it, which it does when the body is pending) an
            // error, on which hyper closes the connection.
            let cut = stream::unfold(0, |step| async move {
                match step {
                    0 => Some((Ok(Bytes::from(object()[..500].to_vec())), 1)),
                    1 => {
                        tokio::task::yield_now().await;
                        Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "cut")), 2))
                    }
                    _ => None,
                }
            });
            response.body(Body::from_stream(cut)).unwrap()
        }
        "/stall" => {
            let response = answer(StatusCode::OK).header("content-length", "1000");
            if head {
                return response.body(Body::empty()).unwrap();
            }
            let first = Bytes::from(object()[..100].to_vec());
            let held = stream::iter([Ok::<_, std::io::Error>(first)]).chain(stream::pending());
            response.body(Body::from_stream(held)).unwrap()
        }
        "/busy" => {
            answer(StatusCode::SERVICE_UNAVAILABLE).header("retry-after", "2").body(Body::empty()).unwrap()
        }
        "/limited" => {
            let at = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(120));
            answer(StatusCode::TOO_MANY_REQUESTS).header("retry-after", at).body(Body::empty()).unwrap()
        }
        "/gone" => answer(StatusCode::GONE).body(Body::empty()).unwrap(),
        "/forbidden" => answer(StatusCode::FORBIDDEN).body(Body::empty()).unwrap(),
        "/nohead" => {
            if head {
                return answer(StatusCode::METHOD_NOT_ALLOWED).body(Body::empty()).unwrap();
            }
            if range.as_deref() == Some("bytes=0-0") {
                return answer(StatusCode::PARTIAL_CONTENT)
                    .header("content-range", "bytes 0-0/1000")
                    .header("content-length", "1")
                    .header("etag", "\"n1\"")
                    .body(Body::from(object()[..1].to_vec()))
                    .unwrap();
            }
            answer(StatusCode::OK).header("content-length", "1000").body(Body::from(object())).unwrap()
        }
        "/nolength" => {
            let chunks = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
            answer(StatusCode::OK).body(Body::from_stream(chunks)).unwrap()
        }
        "/redirect-http" => {
            answer(StatusCode::FOUND).header("location", "http://192.0.2.1/x").body(Body::empty()).unwrap()
        }
        _ => answer(StatusCode::NOT_FOUND).body(Body::empty()).unwrap(),
    }
}

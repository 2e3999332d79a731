//! A real S3 server on 127.0.0.1: s3s over s3s-fs, SigV4 checked by `SimpleAuth`, every request
//! logged, and an error answer that can be injected for the next request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub(crate) const ACCESS_KEY: &str = "AKIDSPINLIFTTEST";
pub(crate) const SECRET_KEY: &str = "spinlift-test-secret-Zq8wX";
pub(crate) const BUCKET: &str = "old-dam";

/// An error answer for the next request.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) retry_after: Option<&'static str>,
}

pub(crate) struct S3Server {
    pub(crate) endpoint: String,
    root: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    fault: Arc<Mutex<Option<Fault>>>,
    task: JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    /// Starts a server whose store has the (empty) bucket [`BUCKET`].
    pub(crate) async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY.to_owned(), SECRET_KEY.to_owned()));
        let s3 = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let fault: Arc<Mutex<Option<Fault>>> = Arc::new(Mutex::new(None));
        let (task_log, task_fault) = (log.clone(), fault.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok((stream, _)) => stream, Err(_) => continue },
                    Some(_) = connections.join_next() => continue,
                };
                let (s3, log, fault) = (s3.clone(), task_log.clone(), task_fault.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (s3, log, fault) = (s3.clone(), log.clone(), fault.clone());
                    async move {
                        let if_match =
                            req.headers().get("if-match").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        let line = match if_match {
                            Some(etag) => format!("{} {} if-match={etag}", req.method(), req.uri()),
                            None => format!("{} {}", req.method(), req.uri()),
                        };
                        log.lock().unwrap().push(line);
                        let injected = fault.lock().unwrap().take();
                        if let Some(fault) = injected {
                            return Ok(error_answer(&fault));
                        }
                        hyper::service::Service::call(&s3, req).await
                    }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        S3Server { endpoint, root, log, fault, task }
    }

    /// Where the object `key` of [`BUCKET`] lives on disk (s3s-fs: `root/bucket/key`).
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// Writes the object `key` straight into the store.
    pub(crate) fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub(crate) fn bucket_dir(&self) -> &Path {
        self.root.path()
    }

    /// The requests seen so far: `METHOD uri`, and ` if-match=ETAG` when the request had one.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The next request is answered with `fault`.
    pub(crate) fn fail_next(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some(fault);
    }
}

fn error_answer(fault: &Fault) -> Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>Please reduce your request rate.</Message></Error>",
        fault.code
    );
    let mut response = Response::new(s3s::Body::from(xml));
    *response.status_mut() = StatusCode::from_u16(fault.status).unwrap();
    response.headers_mut().insert("content-type", "application/xml".parse().unwrap());
    if let Some(retry_after) = fault.retry_after {
        response.headers_mut().insert("retry-after", retry_after.parse().unwrap());
    }
    response
}

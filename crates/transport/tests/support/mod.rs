//! A tiny raw HTTP/1.1 server on a loopback port 0, scripted per test: it lets a test answer in ways
//! a well-behaved server (or the emulator) never would — early, never, half-way.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request head as received, and whatever body bytes came with it.
#[derive(Debug, Clone)]
pub struct Head {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    /// Bytes read past the head.
    pub leftover: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> usize {
        self.header("content-length").map_or(0, |v| v.parse().unwrap())
    }
}

/// Reads up to the end of the request head.
pub async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Head { request_line, headers, leftover: buf[end + 4..].to_vec() })
}

/// Reads the rest of a Content-Length body.
pub async fn read_body(stream: &mut TcpStream, head: &Head) -> std::io::Result<Vec<u8>> {
    let mut body = head.leftover.clone();
    let len = head.content_length();
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

/// Writes a response with a Content-Length body.
pub async fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    // One write: a server that answers and closes at once must not have half its answer queued.
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// A server that hands each connection to `handler`.
pub struct RawServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start<F, Fut>(handler: F) -> RawServer
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                tokio::spawn(async move {
                    // Bounded: no test connection lives longer than this.
                    let _ = tokio::time::timeout(Duration::from_secs(30), handler(stream)).await;
                });
            }
        });
        RawServer { addr, connections, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The in-process emulator, its configuration tuned by `tune`: the well-behaved server of the tests
/// that do not script the wire themselves.
pub async fn emulator(
    tune: impl FnOnce(&mut spinlift_emulator::EmulatorConfig),
) -> spinlift_emulator::Emulator {
    let mut config = spinlift_emulator::EmulatorConfig::default();
    tune(&mut config);
    spinlift_emulator::Emulator::start(config).await.expect("the emulator starts")
}

/// A client of `emu` with its key and the default configuration.
pub fn client(emu: &spinlift_emulator::Emulator) -> spinlift_transport::FileSpinClient {
    let config =
        spinlift_transport::ClientConfig::new(emu.api_url(), spinlift_transport::Secret::new(emu.api_key()));
    spinlift_transport::FileSpinClient::new(config).unwrap()
}

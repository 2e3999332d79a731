//! What the remote-source tests share: the source servers (an S3-compatible bucket, a plain-HTTP file
//! server) on a runtime of their own, deterministic object contents, and a gate in front of FileSpin's
//! API that can hold registrations back, so that a run can be caught with uploads not yet registered.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng, rngs::StdRng};
use spinlift_emulator::{FaultConfig, SourceBucket, SourceBucketConfig, SourceWeb, SourceWebConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Environment variables a developer's shell may carry that would send the spinlift process's source
/// requests elsewhere (another endpoint, a proxy, other credentials).
const STRAY_ENV: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// The test seed: `SPINLIFT_TEST_SEED` if set, else `default`; printed so that a failure replays.
pub fn seed(default: u64) -> u64 {
    let seed = std::env::var("SPINLIFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    eprintln!("seed {seed} (replay with SPINLIFT_TEST_SEED={seed})");
    seed
}

/// `len` bytes drawn from `seed`: the same object contents on every run.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// The lowercase hex MD5 FileSpin's registrations carry.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// An S3-compatible source bucket (`SourceBucket`, bucket "source") serving on a runtime of its own.
pub struct RemoteBucket {
    pub bucket: SourceBucket,
    runtime: tokio::runtime::Runtime,
}

impl RemoteBucket {
    pub fn start() -> Self {
        Self::with(SourceBucketConfig::default())
    }

    pub fn with_faults(spec: &str) -> Self {
        eprintln!("source faults: {spec}");
        let faults = FaultConfig::parse(spec).expect("fault spec");
        Self::with(SourceBucketConfig { faults, ..SourceBucketConfig::default() })
    }

    pub fn with(config: SourceBucketConfig) -> Self {
        let runtime = runtime();
        let bucket = runtime.block_on(SourceBucket::start(config)).expect("source bucket starts");
        RemoteBucket { bucket, runtime }
    }

    /// Puts `bytes` under `key` in the bucket "source"; returns the ETag it is served with.
    pub fn put(&self, key: &str, bytes: &[u8]) -> String {
        self.runtime
            .block_on(self.bucket.put_object("source", key, bytes.to_vec()))
            .unwrap_or_else(|e| panic!("put {key}: {e}"))
    }

    /// Points a spinlift command at this bucket, with nothing else of the developer's environment.
    pub fn env_of<'a>(&self, cmd: &'a mut assert_cmd::Command) -> &'a mut assert_cmd::Command {
        for name in STRAY_ENV {
            cmd.env_remove(name);
        }
        cmd.envs(self.bucket.env_vars())
    }

    /// The same, for a process to spawn and kill.
    pub fn process_env<'a>(&self, cmd: &'a mut std::process::Command) -> &'a mut std::process::Command {
        for name in STRAY_ENV {
            cmd.env_remove(name);
        }
        cmd.envs(self.bucket.env_vars())
    }
}

/// A plain-HTTP file server (`SourceWeb`) serving on a runtime of its own.
pub struct RemoteWeb {
    pub web: SourceWeb,
    runtime: tokio::runtime::Runtime,
}

impl RemoteWeb {
    pub fn start() -> Self {
        Self::with(SourceWebConfig::default())
    }

    pub fn with(config: SourceWebConfig) -> Self {
        let runtime = runtime();
        let web = runtime.block_on(SourceWeb::start(config)).expect("source web server starts");
        RemoteWeb { web, runtime }
    }
}

/// The largest amount of arrivals in any window of `window` (`times` in any order).
pub fn densest_window(times: &[Duration], window: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    let mut densest = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        densest = densest.max(end - start + 1);
    }
    densest
}

/// What a [`RegisterGate`] does with a registration past the admitted ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Never forwarded, never answered: FileSpin does not register it.
    Unsent,
    /// Forwarded (FileSpin registers the asset), its answer never relayed: a lost reply.
    AnswerLost,
}

/// A pass-through HTTP/1.1 proxy in front of FileSpin's API (one request per connection) that lets the
/// first `admit` `register_asset` requests through and then holds every later one (see [`Held`]) until
/// the client goes away. A run pointed at it uploads, then waits on its registrations, and a SIGKILL
/// then leaves exactly those entries recorded as uploaded but not registered.
pub struct RegisterGate {
    addr: SocketAddr,
    state: Arc<GateState>,
    runtime: tokio::runtime::Runtime,
}

struct GateState {
    upstream: SocketAddr,
    mode: Held,
    admit: AtomicU64,
    held: AtomicU64,
}

impl RegisterGate {
    /// A gate in front of `api_url` (`http://127.0.0.1:<port>`).
    pub fn start(api_url: &str, admit: u64, mode: Held) -> Self {
        let upstream: SocketAddr =
            api_url.trim_start_matches("http://").trim_end_matches('/').parse().expect("a loopback API URL");
        let runtime = runtime();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("gate binds");
        let addr = listener.local_addr().unwrap();
        let state =
            Arc::new(GateState { upstream, mode, admit: AtomicU64::new(admit), held: AtomicU64::new(0) });
        let serving = Arc::clone(&state);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, Arc::clone(&serving)));
            }
        });
        RegisterGate { addr, state, runtime }
    }

    /// The URL to give spinlift as `FILESPIN_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `register_asset` requests held so far (for [`Held::AnswerLost`], once FileSpin has answered them).
    pub fn held(&self) -> u64 {
        self.state.held.load(Ordering::SeqCst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A head (through the blank line) with any `Connection` header replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head.trim_end_matches("\r\n").split("\r\n").collect();
    lines.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
    let mut out = lines.join("\r\n");
    out.push_str("\r\nConnection: close\r\n\r\n");
    out
}

/// Reads one request from `client`; holds it if it is a registration past the admitted ones, else
/// forwards it (asking FileSpin to close after its answer) and relays the answer, marked to close.
async fn relay(mut client: TcpStream, gate: Arc<GateState>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let body_len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + body_len {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request_line = head.lines().next().unwrap_or_default();
    let held = request_line.contains("/register_asset")
        && gate.admit.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err();
    if held && gate.mode == Held::Unsent {
        hold(&mut client, &gate).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(gate.upstream).await else { return };
    let mut request = closing(&head).into_bytes();
    request.extend_from_slice(&buf[head_end..head_end + body_len]);
    if upstream.write_all(&request).await.is_err() {
        return;
    }
    let mut answer = Vec::new();
    if upstream.read_to_end(&mut answer).await.is_err() {
        return;
    }
    if held {
        hold(&mut client, &gate).await;
        return;
    }
    let answer = match find(&answer, b"\r\n\r\n") {
        Some(at) => {
            let mut out = closing(&String::from_utf8_lossy(&answer[..at + 4])).into_bytes();
            out.extend_from_slice(&answer[at + 4..]);
            out
        }
        None => answer,
    };
    let _ = client.write_all(&answer).await;
    let _ = client.shutdown().await;
}

/// Counts a held request, then answers nothing until the client is gone.
async fn hold(client: &mut TcpStream, gate: &GateState) {
    gate.held.fetch_add(1, Ordering::SeqCst);
    let mut chunk = [0u8; 1024];
    while matches!(client.read(&mut chunk).await, Ok(n) if n > 0) {}
}

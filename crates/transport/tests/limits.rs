//! The limits on the wire: API requests per second, S3 POSTs per second and bandwidth, against a raw
//! keep-alive server that records when each request arrives.
//!
//! These run in real time, so they assert lower bounds only ("20 calls at 10/s take at least 1.9 s"),
//! never an upper bound that a loaded machine could miss. The exact timings are tested with paused
//! time on the limiter itself (`src/limit.rs`) and on the body stream (`src/multipart.rs`).

mod support;

use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use spinlift_core::UnixMillis;
use spinlift_transport::{
    ClientConfig, FileSpinClient, RegisterRequest, Secret, TransportStats, UploadForm, UploadReceipt,
};
use support::{RawServer, read_body, read_head, respond};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// The body stream's chunk, and so the bandwidth limit's burst at the rates used here.
const CHUNK: u64 = 256 * KIB;

/// A request as it arrived: when, the request line, its Content-Length.
#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    request_line: String,
    content_length: u64,
}

/// A keep-alive server for all three calls: a form for `content_storage_url`, 200 for
/// `register_asset`, 204 for a POST to storage — or `fixed_status` for everything. It records each
/// request as its head arrives.
struct Server {
    raw: RawServer,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
}

impl Server {
    async fn start(fixed_status: Option<&'static str>) -> Server {
        let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let seen = arrivals.clone();
        let raw = RawServer::start(move |mut stream| {
            let seen = seen.clone();
            async move {
                while let Ok(head) = read_head(&mut stream).await {
                    seen.lock().unwrap().push(Arrival {
                        at: Instant::now(),
                        request_line: head.request_line.clone(),
                        content_length: head.content_length() as u64,
                    });
                    if read_body(&mut stream, &head).await.is_err() {
                        return;
                    }
                    let host = head.header("host").unwrap_or_default().to_owned();
                    let answer = match (fixed_status, head.request_line.split(' ').nth(1)) {
                        (Some(status), _) => respond(&mut stream, status, &[], b"{}").await,
                        (None, Some(path)) if path.starts_with("/api/v1/assets/new/content_storage_url") => {
                            respond(&mut stream, "200 OK", &[], form_json(&host).as_bytes()).await
                        }
                        (None, Some("/api/v1/assets/new/register_asset")) => {
                            respond(&mut stream, "200 OK", &[], br#"{"status": "ok"}"#).await
                        }
                        _ => respond(&mut stream, "204 No Content", &[], b"").await,
                    };
                    if answer.is_err() {
                        return;
                    }
                }
            }
        })
        .await;
        Server { raw, arrivals }
    }

    fn url(&self) -> String {
        self.raw.url()
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

fn form_json(host: &str) -> String {
    format!(
        r#"{{"asset_id": "a1", "storage": {{"url": "http://{host}/bucket/",
            "fields": {{"key": "originals/a1/original/original__x.bin", "policy": "p", "x-amz-signature": "s"}},
            "protocol": "POST", "expiry": 86400}}}}"#
    )
}

fn client(url: &str, tune: impl FnOnce(&mut ClientConfig)) -> FileSpinClient {
    let mut config = ClientConfig::new(url, Secret::new("test-key"));
    tune(&mut config);
    FileSpinClient::new(config).unwrap()
}

fn form_for(url: &str) -> UploadForm {
    UploadForm::new(
        "a1",
        format!("{url}/bucket/"),
        vec![("key".into(), "originals/a1/original/original__x.bin".into())],
        UnixMillis(i64::MAX / 2),
    )
}

fn receipt() -> UploadReceipt {
    UploadReceipt {
        size: 3,
        md5: "900150983cd24fb0d6963f7d28e17f72".into(),
        started_at: UnixMillis(0),
        completed_at: UnixMillis(1),
    }
}

fn random_file(dir: &tempfile::TempDir, name: &str, len: u64) -> PathBuf {
    let path = dir.path().join(name);
    let mut data = vec![0u8; len as usize];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(&path, &data).unwrap();
    path
}

fn no_progress() -> impl Fn(u64) + Send + Sync {
    |_| {}
}

fn stats(api_requests: u64, s3_requests: u64, bytes_sent: u64) -> TransportStats {
    let mut stats = TransportStats::default();
    (stats.api_requests, stats.s3_requests, stats.bytes_sent) = (api_requests, s3_requests, bytes_sent);
    stats
}

/// The most requests that arrived within any 1-second window (each window opening at an arrival).
fn busiest_second(arrivals: &[Arrival]) -> usize {
    let mut times: Vec<Instant> = arrivals.iter().map(|a| a.at).collect();
    times.sort_unstable();
    (0..times.len())
        .map(|i| times[i..].iter().take_while(|&&t| t - times[i] < Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

fn assert_at_least(elapsed: Duration, seconds: f64) {
    assert!(elapsed.as_secs_f64() >= seconds, "took {elapsed:?}, less than {seconds} s");
}

/// Both API calls, from four concurrent callers on clones of one client, share one rate: 24 requests
/// at 10/s take at least 22 intervals (two go at once), and the server never sees more than 12 in one
/// second (11 as they leave, one more when the network delays the first of a window).
#[tokio::test]
async fn api_calls_share_one_rate_across_both_calls_and_clones() {
    let server = Server::start(None).await;
    let rps = 10;
    let client = client(&server.url(), |c| c.api_rps = NonZeroU32::new(rps));
    let start = Instant::now();
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    client.request_form("x.bin").await.unwrap();
                    let request = RegisterRequest::new("a1", &receipt(), serde_json::Value::Null);
                    client.register(&request).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let elapsed = start.elapsed();
    let arrivals = server.arrivals();
    let n = arrivals.len();
    assert_eq!(n, 24);
    assert!(arrivals.iter().any(|a| a.request_line.contains("register_asset")));
    // Two go at once (the limiter's one request of slack), then one per interval.
    assert_at_least(elapsed, (n - 2) as f64 / f64::from(rps));
    let busiest = busiest_second(&arrivals);
    assert!(busiest <= rps as usize + 2, "{busiest} requests arrived within one second");
    assert_eq!(client.stats(), stats(n as u64, 0, 0));
}

/// A call that fails still took its permit and counts; calling again (what the engine's retry does)
/// takes another.
#[tokio::test]
async fn every_attempt_takes_a_permit_even_when_it_fails() {
    let server = Server::start(Some("429 Too Many Requests")).await;
    let client = client(&server.url(), |c| c.api_rps = NonZeroU32::new(5));
    let start = Instant::now();
    for _ in 0..6 {
        let error = client.request_form("x.bin").await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
    }
    // Six at 5/s: two at once (the slack), then four intervals.
    assert_at_least(start.elapsed(), 4.0 / 5.0);
    assert_eq!(server.arrivals().len(), 6);
    assert_eq!(client.stats(), stats(6, 0, 0));
}

/// `s3_rps` spaces the starts of uploads, though all may be in flight at once; it does not touch the
/// API calls (here unlimited: `api_rps: None`).
#[tokio::test]
async fn s3_posts_per_second_space_the_uploads() {
    let server = Server::start(None).await;
    let client = client(&server.url(), |c| {
        c.s3_rps = NonZeroU32::new(5);
        c.api_rps = None;
    });
    let dir = tempfile::tempdir().unwrap();
    let path = random_file(&dir, "small.bin", 10);
    for _ in 0..10 {
        client.request_form("x.bin").await.unwrap();
    }
    let start = Instant::now();
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            let (client, path, form) = (client.clone(), path.clone(), form_for(&server.url()));
            tokio::spawn(async move { client.upload_file(&form, &path, &no_progress()).await.unwrap() })
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.await.unwrap().size, 10);
    }
    assert_at_least(start.elapsed(), 6.0 / 5.0);
    let posts: Vec<Arrival> =
        server.arrivals().into_iter().filter(|a| a.request_line.starts_with("POST /bucket/")).collect();
    assert_eq!(posts.len(), 8);
    let busiest = busiest_second(&posts);
    assert!(busiest <= 7, "{busiest} uploads started within one second");
    let body_bytes: u64 = posts.iter().map(|a| a.content_length).sum();
    assert_eq!(client.stats(), stats(10, 8, body_bytes));
}

/// 2 MiB at 1 MiB/s: all but the first chunk (the burst) wait their turn, so at least 1.75 s.
#[tokio::test]
async fn the_bandwidth_limit_paces_an_upload() {
    let server = Server::start(None).await;
    let client = client(&server.url(), |c| c.bandwidth = NonZeroU64::new(MIB));
    let dir = tempfile::tempdir().unwrap();
    let path = random_file(&dir, "two.bin", 2 * MIB);
    let start = Instant::now();
    let receipt = client.upload_file(&form_for(&server.url()), &path, &no_progress()).await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(receipt.size, 2 * MIB);
    let body_bytes = server.arrivals()[0].content_length;
    assert!(body_bytes > 2 * MIB);
    assert_at_least(elapsed, (body_bytes - CHUNK) as f64 / MIB as f64);
    assert_eq!(client.stats(), stats(0, 1, body_bytes));
}

/// Two concurrent 1 MiB uploads through clones of one client share 1 MiB/s: together they take as
/// long as one 2 MiB upload, where each alone would take 0.75 s.
#[tokio::test]
async fn concurrent_uploads_share_the_bandwidth() {
    let server = Server::start(None).await;
    let client = client(&server.url(), |c| c.bandwidth = NonZeroU64::new(MIB));
    let dir = tempfile::tempdir().unwrap();
    let paths = [random_file(&dir, "a.bin", MIB), random_file(&dir, "b.bin", MIB)];
    let start = Instant::now();
    let uploads: Vec<_> = paths
        .iter()
        .map(|path| {
            let (client, path, form) = (client.clone(), path.clone(), form_for(&server.url()));
            tokio::spawn(async move { client.upload_file(&form, &path, &no_progress()).await.unwrap() })
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.await.unwrap().size, MIB);
    }
    let elapsed = start.elapsed();
    let body_bytes: u64 = server.arrivals().iter().map(|a| a.content_length).sum();
    assert_at_least(elapsed, (body_bytes - CHUNK) as f64 / MIB as f64);
    assert_eq!(client.stats(), stats(0, 2, body_bytes));
}

/// Waiting for bandwidth is not a stall: each chunk here waits about 1 s for a limit of 256 KiB/s,
/// twice the stall timeout, and the upload still completes.
#[tokio::test]
async fn waiting_for_bandwidth_does_not_trip_the_stall_watchdog() {
    let server = Server::start(None).await;
    let client = client(&server.url(), |c| {
        c.bandwidth = NonZeroU64::new(256 * KIB);
        c.upload_stall_timeout = Duration::from_millis(500);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = random_file(&dir, "slow.bin", 3 * CHUNK);
    let progressed = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |n: u64| {
        progressed.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    };
    let start = Instant::now();
    let receipt = client.upload_file(&form_for(&server.url()), &path, &on_bytes).await.unwrap();
    assert_eq!(receipt.size, 3 * CHUNK);
    assert_eq!(progressed.load(std::sync::atomic::Ordering::SeqCst), 3 * CHUNK);
    assert_at_least(start.elapsed(), 2.0);
}

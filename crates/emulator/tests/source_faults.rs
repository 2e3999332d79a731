//! The source bucket's faults: each comes at its configured rate, replays with its seed, is seen by a
//! client as the failure it imitates, and never changes what is stored. Raw requests go to presigned
//! URLs (signed by `object_store`), so that statuses, headers and byte counts are seen as sent.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{md5_hex, random_bytes};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ObjectStoreExt, RetryConfig};
use reqwest::{Method, StatusCode};
use spinlift_emulator::{FaultConfig, SourceBucket, SourceBucketConfig};

async fn start_faulty(spec: &str) -> SourceBucket {
    let faults = FaultConfig::parse(spec).expect("the spec parses");
    SourceBucket::start(SourceBucketConfig { faults, ..SourceBucketConfig::default() }).await.unwrap()
}

fn client(bucket: &SourceBucket, retries: usize) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(bucket.endpoint())
        .with_bucket_name("source")
        .with_access_key_id(bucket.access_key_id())
        .with_secret_access_key(bucket.secret_access_key())
        .with_region(bucket.region())
        .with_allow_http(true)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: Duration::from_secs(60),
        })
        .build()
        .unwrap()
}

async fn presigned(bucket: &SourceBucket, method: Method, key: &str) -> String {
    let url =
        client(bucket, 0).signed_url(method, &Path::from(key), Duration::from_secs(3600)).await.unwrap();
    url.to_string()
}

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// An answer: its status, its S3 error code (if any) and its `Retry-After` (if any).
    Answer(u16, Option<String>, Option<String>),
    NoAnswer,
}

async fn outcome(request: reqwest::RequestBuilder) -> Outcome {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body = response.text().await.unwrap();
            let code = body
                .split_once("<Code>")
                .and_then(|(_, rest)| rest.split_once("</Code>"))
                .map(|(code, _)| code.to_owned());
            Outcome::Answer(status, code, retry_after)
        }
        Err(e) => {
            assert!(e.status().is_none() && !e.is_timeout(), "a drop is a connection error: {e:?}");
            Outcome::NoAnswer
        }
    }
}

fn tally(outcomes: &[Outcome]) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome.clone()).or_default() += 1;
    }
    counts
}

fn answer(status: u16, code: Option<&str>, retry_after: Option<&str>) -> Outcome {
    Outcome::Answer(status, code.map(str::to_owned), retry_after.map(str::to_owned))
}

/// `n` GETs of `key`, one after the other.
async fn get_n_times(bucket: &SourceBucket, key: &str, n: usize) -> Vec<Outcome> {
    let url = presigned(bucket, Method::GET, key).await;
    let http = reqwest::Client::new();
    let mut outcomes = Vec::with_capacity(n);
    for _ in 0..n {
        outcomes.push(outcome(http.get(&url)).await);
    }
    outcomes
}

#[tokio::test]
async fn error_answers_come_at_their_rates_in_s3_xml_and_replay() {
    const SPEC: &str =
        "seed=11,source.5xx=0.1,source.503=0.1,source.429=0.1,source.404=0.1,source.retry_after=3";
    const N: usize = 300;
    let bucket = start_faulty(SPEC).await;
    bucket.put_object("source", "k", b"0123456789".to_vec()).await.unwrap();

    let outcomes = get_n_times(&bucket, "k", N).await;

    let counts = tally(&outcomes);
    let kinds = [
        answer(500, Some("InternalError"), None),
        answer(503, Some("SlowDown"), Some("3")),
        answer(429, Some("TooManyRequests"), Some("3")),
        answer(404, Some("NoSuchKey"), None),
    ];
    for kind in &kinds {
        // 30 expected of 300; the bounds are over 3.5 standard deviations wide.
        let n = counts.get(kind).copied().unwrap_or(0);
        assert!((10..=50).contains(&n), "{kind:?}: {n} in {counts:?}");
    }
    let served = counts[&answer(200, None, None)];
    assert_eq!(served + kinds.iter().map(|k| counts[k]).sum::<usize>(), N, "nothing else: {counts:?}");
    let stats = bucket.stats();
    assert_eq!((stats.requests, stats.gets), (N as u64, N as u64));
    assert_eq!(stats.faults_injected, (N - served) as u64);
    assert_eq!(stats.bytes_served, 10 * served as u64);
    assert_eq!(stats.rejected, 0, "injected answers are not the bucket's own refusals");

    // The same seed, the same fates, request by request.
    let again = start_faulty(SPEC).await;
    again.put_object("source", "k", b"0123456789".to_vec()).await.unwrap();
    assert_eq!(get_n_times(&again, "k", N).await, outcomes);
    again.shutdown().await;
    bucket.shutdown().await;
}

#[tokio::test]
async fn a_404_fault_is_only_for_reading_objects() {
    let bucket = start_faulty("source.404=1").await;
    bucket.put_object("source", "k", b"here".to_vec()).await.unwrap();
    let store = client(&bucket, 0);

    assert!(matches!(store.head(&Path::from("k")).await, Err(object_store::Error::NotFound { .. })));
    assert!(matches!(store.get(&Path::from("k")).await, Err(object_store::Error::NotFound { .. })));
    // A listing and a put are served.
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    assert_eq!(store.list(None).try_collect::<Vec<_>>().await.unwrap().len(), 1);
    store.put(&Path::from("k2"), b"put".to_vec().into()).await.unwrap();

    let stats = bucket.stats();
    assert_eq!((stats.faults_injected, stats.lists, stats.puts), (2, 1, 1));
    bucket.shutdown().await;
}

#[tokio::test]
async fn a_drop_closes_the_connection_without_an_answer() {
    const N: usize = 200;
    let bucket = start_faulty("seed=5,source.drop=0.25").await;
    bucket.put_object("source", "k", b"0123456789".to_vec()).await.unwrap();

    let outcomes = get_n_times(&bucket, "k", N).await;

    let dropped = outcomes.iter().filter(|o| **o == Outcome::NoAnswer).count();
    assert!((25..=75).contains(&dropped), "{dropped} of {N}");
    assert_eq!(outcomes.iter().filter(|o| **o == answer(200, None, None)).count(), N - dropped);
    assert_eq!(bucket.stats().faults_injected, dropped as u64);
    bucket.shutdown().await;
}

/// Reads a response's body piece by piece: the bytes read, and whether it ended in an error.
async fn read_all(mut response: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut read = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => read.extend_from_slice(&chunk),
            Ok(None) => return (read, None),
            Err(e) => return (read, Some(e)),
        }
    }
}

#[tokio::test]
async fn a_cut_body_announces_all_its_bytes_sends_half_and_closes() {
    let bucket = start_faulty("source.reset_mid=1").await;
    for size in [1_000_001_usize, 4 * 1024 * 1024, 3] {
        let bytes = random_bytes(size, size as u64);
        bucket.put_object("source", "big.bin", bytes.clone()).await.unwrap();
        let url = presigned(&bucket, Method::GET, "big.bin").await;

        let response = reqwest::get(&url).await.unwrap();

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.content_length(), Some(size as u64));
        let (read, error) = read_all(response).await;
        assert!(error.is_some(), "{size}: the body must end in an error");
        assert_eq!(read.len(), size / 2, "{size}: exactly half of the body arrives");
        assert!(read == bytes[..size / 2]);
    }
    let stats = bucket.stats();
    assert_eq!(stats.faults_injected, 3);
    assert_eq!(stats.bytes_served, (1_000_001 / 2 + 4 * 1024 * 1024 / 2 + 1) as u64);

    // A HEAD is served whole: there is no body to cut.
    let head =
        reqwest::Client::new().head(presigned(&bucket, Method::HEAD, "big.bin").await).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(bucket.stats().faults_injected, 3);
    bucket.shutdown().await;
}

#[tokio::test]
async fn object_store_resumes_a_cut_body_with_a_range_and_gets_every_byte() {
    let bucket = start_faulty("seed=3,source.reset_mid=0.5").await;
    let bytes = random_bytes(2 * 1024 * 1024 + 5, 8);
    bucket.put_object("source", "resumed.bin", bytes.clone()).await.unwrap();
    let store = client(&bucket, 20);

    for _ in 0..8 {
        let got = store.get(&Path::from("resumed.bin")).await.unwrap().bytes().await.unwrap();
        assert!(got == bytes);
    }

    let stats = bucket.stats();
    assert!(stats.faults_injected >= 2, "{stats:?}");
    assert!(stats.gets >= 8 + stats.faults_injected, "every cut is followed by a ranged GET: {stats:?}");
    bucket.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_trips_a_read_timeout_and_a_patient_client_gets_it_all() {
    let bytes = random_bytes(300_000, 4);

    let stuck = start_faulty("source.stall=1,source.stall_for=1h").await;
    stuck.put_object("source", "s", bytes.clone()).await.unwrap();
    let impatient = reqwest::Client::builder().read_timeout(Duration::from_millis(300)).build().unwrap();
    let response = impatient.get(presigned(&stuck, Method::GET, "s").await).send().await.unwrap();
    assert_eq!(response.content_length(), Some(300_000));
    let (read, error) = read_all(response).await;
    assert_eq!(read.len(), 150_000);
    assert!(error.is_some_and(|e| e.is_timeout()), "the read times out");
    stuck.shutdown().await;

    let slow = start_faulty("source.stall=1,source.stall_for=150ms").await;
    slow.put_object("source", "s", bytes.clone()).await.unwrap();
    let url = presigned(&slow, Method::GET, "s").await;
    let asked = Instant::now();
    let (read, error) = read_all(reqwest::get(&url).await.unwrap()).await;
    assert!(error.is_none());
    assert!(read == bytes);
    assert!(asked.elapsed() >= Duration::from_millis(150), "{:?}", asked.elapsed());
    assert_eq!(slow.stats().faults_injected, 1);
    slow.shutdown().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_beyond_a_burst() {
    let bucket = start_faulty("source.rps=5").await;
    bucket.put_object("source", "k", b"v".to_vec()).await.unwrap();
    let url = presigned(&bucket, Method::GET, "k").await;
    let http = reqwest::Client::new();

    // Twenty at once: a burst of five passes, the rest come long before the next token.
    let outcomes = futures::future::join_all((0..20).map(|_| outcome(http.get(&url)))).await;

    let counts = tally(&outcomes);
    assert_eq!(counts.get(&answer(200, None, None)), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&answer(429, Some("TooManyRequests"), Some("1"))), Some(&15), "{counts:?}");
    let stats = bucket.stats();
    assert_eq!((stats.rate_limited, stats.faults_injected), (15, 0));
    assert_eq!(bucket.request_times().len(), 20);
    bucket.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_before_every_answer() {
    let bucket = start_faulty("source.latency=40ms").await;
    bucket.put_object("source", "k", b"v".to_vec()).await.unwrap();
    let url = presigned(&bucket, Method::GET, "k").await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let asked = Instant::now();
        assert_eq!(http.get(&url).send().await.unwrap().status(), StatusCode::OK);
        assert!(asked.elapsed() >= Duration::from_millis(40), "{:?}", asked.elapsed());
    }
    assert_eq!(bucket.stats().faults_injected, 0, "latency is not a fault");
    bucket.shutdown().await;
}

#[tokio::test]
async fn faults_never_change_what_is_stored() {
    let bucket = start_faulty("seed=2,source.503=0.3,source.drop=0.3,source.reset_mid=0.3").await;
    let original = random_bytes(64 * 1024, 6);
    bucket.put_object("source", "keep.bin", original.clone()).await.unwrap();
    let put_url = presigned(&bucket, Method::PUT, "keep.bin").await;
    let http = reqwest::Client::new();

    // Overwrites that meet a fault change nothing; those that do not land whole.
    let mut landed = None;
    for i in 0..20_u64 {
        let bytes = random_bytes(64 * 1024, 100 + i);
        let result = http.put(&put_url).body(bytes.clone()).send().await;
        let stored = std::fs::read(bucket.object_path("source", "keep.bin")).unwrap();
        match result {
            Ok(response) if response.status() == StatusCode::OK => {
                assert!(stored == bytes);
                landed = Some(bytes);
            }
            _ => assert!(
                stored == landed.clone().unwrap_or_else(|| original.clone()),
                "put {i} changed the object"
            ),
        }
    }
    let stats = bucket.stats();
    assert!(stats.faults_injected >= 5, "{stats:?}");
    let expected = landed.unwrap_or(original);
    let store = client(&bucket, 0);
    let head = loop {
        // A HEAD is never cut, but may meet a 503 or a drop.
        if let Ok(head) = store.head(&Path::from("keep.bin")).await {
            break head;
        }
    };
    assert_eq!(head.e_tag, Some(format!("\"{}\"", md5_hex(&expected))));
    bucket.shutdown().await;
}

//! The plain-HTTP source: files with their size, MD5 ETag and modification time; conditional requests
//! and ranges; the HEAD switch; and its faults, seen by a client as what they imitate.

mod common;

use std::time::{Duration, Instant};

use common::{md5_hex, random_bytes};
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_LENGTH, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RANGE,
};
use spinlift_emulator::{FaultConfig, SourceWeb, SourceWebConfig};

async fn start_with(config: SourceWebConfig) -> SourceWeb {
    SourceWeb::start(config).await.expect("the web source starts")
}

async fn start() -> SourceWeb {
    start_with(SourceWebConfig::default()).await
}

async fn start_faulty(spec: &str) -> SourceWeb {
    let faults = FaultConfig::parse(spec).unwrap();
    start_with(SourceWebConfig { faults, ..SourceWebConfig::default() }).await
}

fn quoted_md5(bytes: &[u8]) -> String {
    format!("\"{}\"", md5_hex(bytes))
}

#[tokio::test]
async fn get_and_head_describe_the_file() {
    let web = start().await;
    let bytes = random_bytes(200_000, 1);
    let etag = web.write_file("media/a b/photo é.jpg", &bytes).unwrap();
    assert_eq!(etag, quoted_md5(&bytes));
    let url = web.file_url("media/a b/photo é.jpg");
    assert!(url.ends_with("/media/a%20b/photo%20%C3%A9.jpg"), "{url}");
    let http = reqwest::Client::new();

    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[CONTENT_LENGTH], "200000");
    assert_eq!(head.headers()[ETAG], etag.as_str());
    let modified = std::fs::metadata(web.file_path("media/a b/photo é.jpg")).unwrap().modified().unwrap();
    assert_eq!(head.headers()[LAST_MODIFIED], httpdate::fmt_http_date(modified).as_str());

    let get = http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()[ETAG], etag.as_str());
    assert!(get.bytes().await.unwrap() == bytes);

    let stats = web.stats();
    assert_eq!((stats.requests, stats.heads, stats.gets, stats.bytes_served), (2, 1, 1, 200_000));
    assert_eq!(web.request_times().len(), 2);
    web.shutdown().await;
}

#[tokio::test]
async fn what_is_not_a_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("served/sub")).unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"outside").unwrap();
    std::fs::write(dir.path().join("served/.hidden"), b"hidden").unwrap();
    let web =
        start_with(SourceWebConfig { dir: Some(dir.path().join("served")), ..SourceWebConfig::default() })
            .await;
    let http = reqwest::Client::new();

    for path in [
        "/missing.jpg",
        "/sub",
        "/sub/",
        "/",
        "/.hidden",
        "/%2e%2e/secret.txt",
        "/sub/%2E%2E/%2E%2E/secret.txt",
    ] {
        let response = http.get(format!("{}{path}", web.url())).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let post = http.post(web.file_url("x")).body("x").send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_eq!(web.stats().rejected, 8);
    web.shutdown().await;
}

#[tokio::test]
async fn a_rewrite_changes_the_etag_and_if_match_fails() {
    let web = start().await;
    let first = web.write_file("doc.pdf", b"version one").unwrap();
    let url = web.file_url("doc.pdf");
    let http = reqwest::Client::new();

    let matching = http.get(&url).header(IF_MATCH, &first).send().await.unwrap();
    assert_eq!(matching.status(), StatusCode::OK);
    assert_eq!(&matching.bytes().await.unwrap()[..], b"version one");

    // Rewritten in place, same size, at once: the ETag follows the content.
    std::fs::write(web.file_path("doc.pdf"), b"version two").unwrap();
    let head = http.head(&url).send().await.unwrap();
    let second = head.headers()[ETAG].to_str().unwrap().to_owned();
    assert_eq!(second, quoted_md5(b"version two"));

    let stale = http.get(&url).header(IF_MATCH, &first).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let unchanged = http.get(&url).header(IF_NONE_MATCH, &second).send().await.unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()[ETAG], second.as_str());
    let last_modified = head.headers()[LAST_MODIFIED].to_str().unwrap().to_owned();
    let since = http.get(&url).header(IF_MODIFIED_SINCE, &last_modified).send().await.unwrap();
    assert_eq!(since.status(), StatusCode::NOT_MODIFIED);

    let stats = web.stats();
    assert_eq!((stats.rejected, stats.not_modified), (1, 2));
    web.shutdown().await;
}

#[tokio::test]
async fn with_preconditions_off_if_match_is_ignored() {
    let web = start_with(SourceWebConfig { preconditions: false, ..SourceWebConfig::default() }).await;
    web.write_file("f", b"content").unwrap();

    let response =
        reqwest::Client::new().get(web.file_url("f")).header(IF_MATCH, "\"stale\"").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], b"content");
    web.shutdown().await;
}

#[tokio::test]
async fn head_can_be_refused_so_that_a_client_falls_back_to_get() {
    let web = start_with(SourceWebConfig { head: false, ..SourceWebConfig::default() }).await;
    web.write_file("f", b"content").unwrap();
    let http = reqwest::Client::new();

    let head = http.head(web.file_url("f")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.headers()["allow"], "GET");
    let get = http.get(web.file_url("f")).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()[ETAG], quoted_md5(b"content").as_str());

    assert_eq!((web.stats().heads, web.stats().rejected), (1, 1));
    web.shutdown().await;
}

#[tokio::test]
async fn single_ranges_are_served() {
    let web = start().await;
    let bytes = random_bytes(1_000, 2);
    web.write_file("r", &bytes).unwrap();
    let http = reqwest::Client::new();

    let part = http.get(web.file_url("r")).header(RANGE, "bytes=100-199").send().await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/1000");
    assert!(part.bytes().await.unwrap() == bytes[100..200]);
    let tail = http.get(web.file_url("r")).header(RANGE, "bytes=-10").send().await.unwrap();
    assert!(tail.bytes().await.unwrap() == bytes[990..]);
    let beyond = http.get(web.file_url("r")).header(RANGE, "bytes=5000-").send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers()["content-range"], "bytes */1000");
    web.remove_file("r").unwrap();
    assert_eq!(http.get(web.file_url("r")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    web.shutdown().await;
}

/// What one request came to: a status and its `Retry-After`, or no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Answer(u16, Option<String>),
    NoAnswer,
}

async fn outcomes(web: &SourceWeb, path: &str, n: usize) -> Vec<Outcome> {
    let http = reqwest::Client::new();
    let mut outcomes = Vec::with_capacity(n);
    for _ in 0..n {
        outcomes.push(match http.get(web.file_url(path)).send().await {
            Ok(response) => {
                let retry_after =
                    response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let status = response.status().as_u16();
                response.bytes().await.unwrap();
                Outcome::Answer(status, retry_after)
            }
            Err(e) => {
                assert!(e.status().is_none() && !e.is_timeout(), "{e:?}");
                Outcome::NoAnswer
            }
        });
    }
    outcomes
}

#[tokio::test]
async fn faults_come_at_their_rates_and_replay() {
    const SPEC: &str =
        "seed=21,web.5xx=0.1,web.503=0.1,web.429=0.1,web.404=0.1,web.drop=0.1,web.retry_after=2";
    const N: usize = 300;
    let web = start_faulty(SPEC).await;
    web.write_file("f", b"0123456789").unwrap();

    let seen = outcomes(&web, "f", N).await;

    let count = |o: Outcome| seen.iter().filter(|s| **s == o).count();
    let kinds = [
        Outcome::Answer(500, None),
        Outcome::Answer(503, Some("2".into())),
        Outcome::Answer(429, Some("2".into())),
        Outcome::Answer(404, None),
        Outcome::NoAnswer,
    ];
    let mut faulted = 0;
    for kind in kinds {
        let n = count(kind.clone());
        assert!((10..=50).contains(&n), "{kind:?}: {n}");
        faulted += n;
    }
    assert_eq!(count(Outcome::Answer(200, None)), N - faulted);
    assert_eq!(web.stats().faults_injected, faulted as u64);

    let again = start_faulty(SPEC).await;
    again.write_file("f", b"0123456789").unwrap();
    assert_eq!(outcomes(&again, "f", N).await, seen);
    again.shutdown().await;
    web.shutdown().await;
}

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
async fn a_cut_body_sends_half_of_what_it_announced() {
    let web = start_faulty("web.reset_mid=1").await;
    let bytes = random_bytes(3 * 1024 * 1024 + 1, 3);
    web.write_file("big", &bytes).unwrap();

    let response = reqwest::get(web.file_url("big")).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(bytes.len() as u64));
    let (read, error) = read_all(response).await;
    assert!(error.is_some());
    assert!(read == bytes[..bytes.len() / 2]);
    assert_eq!(web.stats().bytes_served, (bytes.len() / 2) as u64);

    // A range is cut at half of itself.
    let part = reqwest::Client::new()
        .get(web.file_url("big"))
        .header(RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    let (read, error) = read_all(part).await;
    assert!(error.is_some());
    assert!(read == bytes[1000..1500]);
    assert_eq!(web.stats().faults_injected, 2);
    web.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_trips_a_read_timeout() {
    let web = start_faulty("web.stall=1,web.stall_for=1h").await;
    let bytes = random_bytes(100_000, 4);
    web.write_file("s", &bytes).unwrap();
    let impatient = reqwest::Client::builder().read_timeout(Duration::from_millis(300)).build().unwrap();

    let asked = Instant::now();
    let (read, error) = read_all(impatient.get(web.file_url("s")).send().await.unwrap()).await;

    assert!(read == bytes[..50_000]);
    assert!(error.is_some_and(|e| e.is_timeout()));
    assert!(asked.elapsed() < Duration::from_secs(60));
    web.shutdown().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_beyond_a_burst() {
    let web = start_faulty("web.rps=4").await;
    web.write_file("f", b"v").unwrap();
    let http = reqwest::Client::new();

    let statuses = futures::future::join_all((0..12).map(|_| async {
        let response = http.get(web.file_url("f")).send().await.unwrap();
        (
            response.status().as_u16(),
            response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
        )
    }))
    .await;

    assert_eq!(statuses.iter().filter(|s| s.0 == 200).count(), 4);
    assert_eq!(statuses.iter().filter(|s| **s == (429, Some("1".into()))).count(), 8);
    assert_eq!(web.stats().rate_limited, 8);
    web.shutdown().await;
}

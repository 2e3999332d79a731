//! The S3 source against a real S3 server in-process (s3s + s3s-fs).

mod support;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use futures::TryStreamExt;
use spinlift_source::{ObjectMeta, S3Credentials, SourceError, SourceUrl, Sources, SourcesConfig};
use support::s3::{ACCESS_KEY, BUCKET, Fault, S3Server, SECRET_KEY};
use support::{md5_hex, pattern};
use tokio::io::AsyncReadExt;

fn config(server: &S3Server, secret: &str) -> SourcesConfig {
    let mut config = SourcesConfig::default();
    config.s3_endpoint = Some(server.endpoint.clone());
    config.s3_region = Some("us-east-1".into());
    config.s3_credentials = Some(S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: secret.into(),
        session_token: None,
    });
    config.request_timeout = Duration::from_secs(20);
    config
}

fn sources(server: &S3Server) -> Sources {
    Sources::new(config(server, SECRET_KEY)).unwrap()
}

fn url(key: &str) -> SourceUrl {
    SourceUrl::parse(&format!("s3://{BUCKET}/{key}")).unwrap()
}

async fn read_all(sources: &Sources, url: &SourceUrl, meta: &ObjectMeta) -> Vec<u8> {
    let mut opened = sources.open(url, meta).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(opened.meta.size, meta.size);
    let mut bytes = opened.prefix.to_vec();
    opened.reader.read_to_end(&mut bytes).await.unwrap();
    bytes
}

#[tokio::test]
async fn head_gives_size_and_the_md5_etag_and_open_streams_the_exact_bytes() {
    let server = S3Server::start().await;
    let sources = sources(&server);
    for (key, len) in [
        ("media/empty.bin", 0),
        ("media/one.bin", 1),
        ("media/big/five-mib.bin", 5 << 20),
        ("media/a b ü.jpg", 4096),
    ] {
        let bytes = pattern(len, 3);
        server.put(key, &bytes);
        let url = url(key);
        let meta = sources.head(&url).await.unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(meta.size, len as u64, "{key}");
        // s3s-fs's ETag is the hex MD5 of the content, quoted, as AWS gives it for a single-part upload.
        assert_eq!(meta.etag.as_deref(), Some(format!("\"{}\"", md5_hex(&bytes)).as_str()), "{key}");
        assert!(meta.last_modified_ms.is_some());
        assert_ne!(meta.fingerprint(), 0);
        let read = read_all(&sources, &url, &meta).await;
        assert_eq!(read.len(), len, "{key}");
        assert_eq!(md5_hex(&read), md5_hex(&bytes), "{key}");
    }
    // One HEAD and one GET each, path-style (`/bucket/key`) against the custom endpoint.
    let requests = server.requests();
    assert_eq!(requests.len(), 8, "{requests:?}");
    assert!(requests.iter().all(|r| r.contains(&format!(" /{BUCKET}/media/"))), "{requests:?}");
}

#[tokio::test]
async fn a_stale_etag_is_a_change() {
    let server = S3Server::start().await;
    let sources = sources(&server);
    server.put("media/a.jpg", &pattern(1000, 1));
    let url = url("media/a.jpg");
    let before = sources.head(&url).await.unwrap();
    // Same size, other bytes: only the ETag tells.
    server.put("media/a.jpg", &pattern(1000, 2));
    let e = sources.open(&url, &before).await.unwrap_err();
    assert!(matches!(e, SourceError::Changed { .. }), "{e}");
    assert!(e.is_retryable());
    assert!(e.to_string().starts_with("s3://old-dam/media/a.jpg changed"), "{e}");
    // The GET was conditional (If-Match with the old ETag), but s3s-fs 0.14.1 ignores If-Match on
    // GET and answers 200 with the new ETag: the comparison of the answer with `before` catches it.
    let gets: Vec<_> = server.requests().into_iter().filter(|r| r.starts_with("GET")).collect();
    assert_eq!(gets, [format!("GET /{BUCKET}/media/a.jpg if-match={}", before.etag.as_deref().unwrap())]);
    assert!(e.to_string().contains("its ETag is"), "{e}");
    // And a size change with the same expectation.
    server.put("media/a.jpg", &pattern(999, 2));
    let e = sources.open(&url, &before).await.unwrap_err();
    assert!(matches!(e, SourceError::Changed { .. }), "{e}");
    // With fresh metadata the object reads again.
    let now = sources.head(&url).await.unwrap();
    assert_eq!(read_all(&sources, &url, &now).await, pattern(999, 2));
}

#[tokio::test]
async fn missing_keys_and_buckets_are_not_found() {
    let server = S3Server::start().await;
    let sources = sources(&server);
    let e = sources.head(&url("media/missing.jpg")).await.unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(e.to_string(), "s3://old-dam/media/missing.jpg: not found");
    let expected = ObjectMeta { size: 3, ..ObjectMeta::default() };
    let e = sources.open(&url("media/missing.jpg"), &expected).await.unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    let e = sources.head(&SourceUrl::parse("s3://no-such-bucket/x").unwrap()).await.unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn a_prefix_is_not_an_object() {
    let server = S3Server::start().await;
    let e = sources(&server).head(&url("media/")).await.unwrap_err();
    assert!(matches!(e, SourceError::InvalidUrl { .. }), "{e}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_wrong_secret_is_denied_and_the_message_keeps_it_secret() {
    let server = S3Server::start().await;
    server.put("media/a.jpg", b"abc");
    let wrong = "wrong-secret-Hx93kQ";
    let sources = Sources::new(config(&server, wrong)).unwrap();
    let e = sources.head(&url("media/a.jpg")).await.unwrap_err();
    assert!(matches!(e, SourceError::Denied { status: Some(403), .. }), "{e:?}");
    assert!(!e.is_retryable());
    let text = format!("{e} {e:?} {sources:?} {:?}", sources.config());
    assert!(!text.contains(wrong), "{text}");
    assert!(!text.contains(SECRET_KEY), "{text}");
    assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    assert_eq!(
        e.to_string().split(" — ").next(),
        Some("s3://old-dam/media/a.jpg: access denied (403): the store answered 403"),
        "{e}"
    );
    // A GET's answer has a body, which says why.
    let e = sources
        .open(&url("media/a.jpg"), &ObjectMeta { size: 3, ..ObjectMeta::default() })
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Denied { status: Some(403), .. }), "{e}");
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    assert!(!format!("{e:?}").contains(wrong));
}

#[tokio::test]
async fn throttling_answers_carry_status_code_and_retry_after() {
    let server = S3Server::start().await;
    server.put("media/a.jpg", b"abc");
    let sources = sources(&server);
    server.fail_next(Fault { status: 503, code: "SlowDown", retry_after: Some("3") });
    let e = sources.head(&url("media/a.jpg")).await.unwrap_err();
    match &e {
        SourceError::Throttled { status: 503, retry_after_ms: Some(3000), .. } => {}
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable());
    let meta = sources.head(&url("media/a.jpg")).await.unwrap();
    server.fail_next(Fault { status: 503, code: "SlowDown", retry_after: None });
    let e = sources.open(&url("media/a.jpg"), &meta).await.unwrap_err();
    match &e {
        SourceError::Throttled { status: 503, code: Some(code), message, .. } => {
            assert_eq!(code, "SlowDown");
            assert_eq!(message, "Please reduce your request rate.");
        }
        other => panic!("{other:?}"),
    }
    server.fail_next(Fault { status: 500, code: "InternalError", retry_after: None });
    let e = sources.open(&url("media/a.jpg"), &meta).await.unwrap_err();
    assert!(
        matches!(&e, SourceError::Unavailable { status: 500, code: Some(c), .. } if c == "InternalError"),
        "{e:?}"
    );
    server.fail_next(Fault { status: 412, code: "PreconditionFailed", retry_after: None });
    let e = sources.open(&url("media/a.jpg"), &meta).await.unwrap_err();
    assert!(matches!(&e, SourceError::Changed { what, .. } if what.contains("412")), "{e:?}");
    // One attempt per call: object_store retried nothing.
    assert_eq!(server.requests().len(), 5, "{:?}", server.requests());
}

#[tokio::test]
async fn list_streams_every_object_under_the_prefix_page_by_page() {
    let server = S3Server::start().await;
    let mut expected = BTreeMap::new();
    for i in 0..260usize {
        let key = format!("photos/{}/{}/img-{i:03}.jpg", i % 5, i % 3);
        let len = 1 + i % 17;
        server.put(&format!("media/{key}"), &pattern(len, i as u8));
        expected.insert(key, len as u64);
    }
    // Outside the prefix: a sibling whose name starts the same, and another folder.
    server.put("media2/x.jpg", b"x");
    server.put("other/y.jpg", b"y");
    let mut config = config(&server, SECRET_KEY);
    config.list_page_size = Some(NonZeroUsize::new(100).unwrap());
    let sources = Sources::new(config).unwrap();
    for prefix in ["s3://old-dam/media/", "s3://old-dam/media"] {
        let root = SourceUrl::parse(prefix).unwrap();
        let listed: Vec<_> = sources.list(&root).try_collect().await.unwrap();
        let got: BTreeMap<String, u64> = listed.iter().map(|l| (l.key.clone(), l.meta.size)).collect();
        assert_eq!(got, expected, "{prefix}");
        for item in &listed {
            assert!(item.url.is_within(&root), "{:?}", item.url);
            assert_eq!(SourceUrl::join(&root, &item.key).unwrap(), item.url);
        }
    }
    let pages = server.requests().iter().filter(|r| r.contains("list-type=2")).count();
    assert_eq!(pages, 2 * 3, "260 objects in pages of 100, twice: {:?}", server.requests());
    // The whole bucket.
    let all: Vec<_> = sources.list(&SourceUrl::parse("s3://old-dam").unwrap()).try_collect().await.unwrap();
    assert_eq!(all.len(), 262);
}

#[tokio::test]
async fn list_errors_are_classified() {
    let server = S3Server::start().await;
    let sources = sources(&server);
    let e = sources
        .list(&SourceUrl::parse("s3://no-such-bucket/media/").unwrap())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    server.fail_next(Fault { status: 429, code: "TooManyRequests", retry_after: Some("1") });
    let e = sources.list(&url("media/")).try_collect::<Vec<_>>().await.unwrap_err();
    assert!(matches!(e, SourceError::Throttled { status: 429, retry_after_ms: Some(1000), .. }), "{e:?}");
}

#[tokio::test]
async fn plain_http_endpoints_off_loopback_are_refused() {
    let mut config = SourcesConfig::default();
    config.s3_endpoint = Some("http://user:pw@192.0.2.1:9000/?token=abc".into());
    let sources = Sources::new(config).unwrap();
    let e = sources.head(&url("a.jpg")).await.unwrap_err();
    match &e {
        SourceError::PlainHttp { host, .. } => assert_eq!(host, "192.0.2.1"),
        other => panic!("{other:?}"),
    }
    let text = format!("{e} {sources:?}");
    assert!(!text.contains("pw") && !text.contains("abc"), "{text}");
    assert!(text.contains("use https, or --allow-http"), "{text}");
}

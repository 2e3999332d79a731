//! http(s) sources against a scriptable in-process server.

mod support;

use std::io;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::http::Method;
use spinlift_source::{ObjectMeta, SourceError, SourceUrl, Sources, SourcesConfig};
use support::http::{HttpServer, object};
use tokio::io::AsyncReadExt;

fn sources() -> Sources {
    let mut config = SourcesConfig::default();
    config.request_timeout = Duration::from_secs(10);
    config.stall_timeout = Duration::from_millis(300);
    Sources::new(config).unwrap()
}

fn url(server: &HttpServer, path: &str) -> SourceUrl {
    SourceUrl::parse(&server.url(path)).unwrap()
}

#[tokio::test]
async fn head_then_get_streams_the_object_conditionally() {
    let server = HttpServer::start().await;
    let sources = sources();
    let url = url(&server, "/obj.bin?X-Amz-Signature=s3cr3t");
    let meta = sources.head(&url).await.unwrap();
    assert_eq!(
        meta,
        ObjectMeta {
            size: 1000,
            etag: Some("\"v1\"".into()),
            version: None,
            last_modified_ms: Some(1_445_412_480_000),
        }
    );
    let mut opened = sources.open(&url, &meta).await.unwrap();
    assert!(opened.prefix.is_empty() && !opened.prefix_is_all);
    let mut bytes = Vec::new();
    opened.reader.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes, object());
    let seen = server.seen();
    assert_eq!(seen.iter().map(|s| s.method.clone()).collect::<Vec<_>>(), [Method::HEAD, Method::GET]);
    assert_eq!(seen[1].if_match.as_deref(), Some("\"v1\""), "the GET is conditional");
    assert_eq!(seen[1].query.as_deref(), Some("X-Amz-Signature=s3cr3t"), "the query is sent");
    assert_eq!(url.file_name(), "obj.bin");
    assert!(!format!("{url} {url:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn an_etag_that_changes_between_head_and_get_is_a_change() {
    let server = HttpServer::start().await;
    let sources = sources();
    // A server that ignores If-Match: the answer's ETag tells.
    let flip = url(&server, "/flip");
    let meta = sources.head(&flip).await.unwrap();
    let e = sources.open(&flip, &meta).await.unwrap_err();
    assert!(matches!(e, SourceError::Changed { .. }), "{e}");
    assert!(e.to_string().contains("\"v2\""), "{e}");
    // A server that honours it: 412.
    let flip = url(&server, "/flip412");
    let meta = sources.head(&flip).await.unwrap();
    let e = sources.open(&flip, &meta).await.unwrap_err();
    assert!(matches!(e, SourceError::Changed { .. }), "{e}");
    assert!(e.to_string().contains("412"), "{e}");
    // Another size than expected.
    let obj = url(&server, "/obj.bin");
    let e = sources.open(&obj, &ObjectMeta { size: 999, ..ObjectMeta::default() }).await.unwrap_err();
    assert!(matches!(e, SourceError::Changed { .. }), "{e}");
}

#[tokio::test]
async fn a_body_cut_short_is_a_retryable_read_error() {
    let server = HttpServer::start().await;
    let sources = sources();
    let short = url(&server, "/short");
    let meta = sources.head(&short).await.unwrap();
    assert_eq!(meta.size, 1000);
    let mut opened = sources.open(&short, &meta).await.unwrap();
    let mut bytes = Vec::new();
    let e = opened.reader.read_to_end(&mut bytes).await.unwrap_err();
    assert!(
        matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset),
        "{:?}: {e}",
        e.kind()
    );
    let inner = SourceError::from_io(&e).expect("a SourceError inside");
    assert!(inner.is_retryable(), "{inner}");
    assert!(bytes.len() <= 500, "{}", bytes.len());
    assert_eq!(bytes, object()[..bytes.len()]);
}

#[tokio::test]
async fn a_stalled_body_times_out() {
    let server = HttpServer::start().await;
    let sources = sources();
    let stall = url(&server, "/stall");
    let meta = sources.head(&stall).await.unwrap();
    let mut opened = sources.open(&stall, &meta).await.unwrap();
    let start = Instant::now();
    let mut bytes = Vec::new();
    let e = opened.reader.read_to_end(&mut bytes).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(matches!(SourceError::from_io(&e), Some(SourceError::Timeout { .. })), "{e}");
    assert_eq!(bytes, object()[..100]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(290) && waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn error_statuses_map_to_errors() {
    let server = HttpServer::start().await;
    let sources = sources();
    let e = sources.head(&url(&server, "/busy")).await.unwrap_err();
    assert!(matches!(e, SourceError::Throttled { status: 503, retry_after_ms: Some(2000), .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.to_failure(spinlift_core::Step::Upload).retry_after_ms, Some(2000));
    let e = sources.head(&url(&server, "/limited")).await.unwrap_err();
    match e {
        SourceError::Throttled { status: 429, retry_after_ms: Some(ms), .. } => {
            assert!((100_000..=121_000).contains(&ms), "{ms}")
        }
        other => panic!("{other:?}"),
    }
    let e = sources.head(&url(&server, "/missing")).await.unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    assert!(!e.is_retryable());
    let e = sources.open(&url(&server, "/gone"), &ObjectMeta::default()).await.unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    let e = sources.head(&url(&server, "/forbidden?sig=abc")).await.unwrap_err();
    assert!(matches!(e, SourceError::Denied { status: Some(403), .. }), "{e}");
    assert!(!e.to_string().contains("abc"), "{e}");
}

#[tokio::test]
async fn a_server_without_head_is_asked_for_one_byte() {
    let server = HttpServer::start().await;
    let sources = sources();
    let nohead = url(&server, "/nohead");
    let meta = sources.head(&nohead).await.unwrap();
    assert_eq!(meta.size, 1000);
    assert_eq!(meta.etag.as_deref(), Some("\"n1\""));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[1].method.clone(), seen[1].range.as_deref()), (Method::GET, Some("bytes=0-0")));
}

#[tokio::test]
async fn a_server_that_gives_no_length_is_unsupported() {
    let server = HttpServer::start().await;
    let e = sources().head(&url(&server, "/nolength")).await.unwrap_err();
    assert!(matches!(e, SourceError::Unsupported { .. }), "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("gives no length"), "{e}");
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_without_a_request() {
    let sources = sources();
    let start = Instant::now();
    // TEST-NET-1: nothing answers there; a request would hang until the connect timeout.
    let far = SourceUrl::parse("http://192.0.2.1/x.jpg?sig=abc").unwrap();
    let e = sources.head(&far).await.unwrap_err();
    match &e {
        SourceError::PlainHttp { host, .. } => assert_eq!(host, "192.0.2.1"),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("use https, or --allow-http"), "{e}");
    assert!(!e.to_string().contains("abc"));
    let e = sources.open(&far, &ObjectMeta::default()).await.unwrap_err();
    assert!(matches!(e, SourceError::PlainHttp { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_redirect_to_plain_http_is_refused() {
    let server = HttpServer::start().await;
    let e = sources().head(&url(&server, "/redirect-http")).await.unwrap_err();
    match &e {
        SourceError::PlainHttp { host, .. } => assert_eq!(host, "192.0.2.1"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn http_urls_cannot_be_listed() {
    use futures::StreamExt;
    let server = HttpServer::start().await;
    let mut listing = sources().list(&url(&server, "/dir/"));
    assert!(matches!(listing.next().await, Some(Err(SourceError::Unsupported { .. }))));
    assert!(listing.next().await.is_none());
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn the_request_rate_holds_over_concurrent_calls() {
    let server = HttpServer::start().await;
    let rps = 10;
    let mut config = SourcesConfig::default();
    config.rps = NonZeroU32::new(rps);
    let sources = Sources::new(config).unwrap();
    let url = url(&server, "/count");
    let start = Instant::now();
    let calls = (0..21).map(|_| {
        let (sources, url) = (sources.clone(), url.clone());
        tokio::spawn(async move { sources.head(&url).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    let mut arrivals: Vec<Instant> = server.seen().iter().map(|s| s.at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 21);
    // Spaced 100 ms apart: 21 requests take 2 s, and no one-second window holds more than rps + 1.
    assert!(elapsed >= Duration::from_millis(1950), "{elapsed:?}");
    for (i, first) in arrivals.iter().enumerate() {
        let within =
            arrivals[i..].iter().filter(|t| t.duration_since(*first) < Duration::from_secs(1)).count();
        assert!(within <= rps as usize + 1, "{within} requests within 1 s of arrival {i}");
    }
}

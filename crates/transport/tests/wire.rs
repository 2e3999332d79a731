//! The transport against scripted raw servers: what goes on the wire, and what the client reports when
//! a server answers early, late, never, or with an error.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use rand::RngCore;
use spinlift_core::{Disposition, FailureKind, Step, UnixMillis, classify};
use spinlift_transport::{ClientConfig, FileSpinClient, Secret, TransportError, UploadForm};
use support::{RawServer, read_body, read_head, respond};

const KEY: &str = "test-key-5f3c9a";

fn client_for(url: &str, tune: impl FnOnce(&mut ClientConfig)) -> FileSpinClient {
    let mut config = ClientConfig::new(url, Secret::new(KEY));
    tune(&mut config);
    FileSpinClient::new(config).unwrap()
}

fn future() -> UnixMillis {
    UnixMillis(i64::MAX / 2)
}

fn form_for(url: &str) -> UploadForm {
    UploadForm::new(
        "asset-1",
        format!("{url}/bucket/"),
        vec![
            ("key".into(), "originals/asset-1/original/original__x.bin".into()),
            ("policy".into(), "cG9saWN5LXZhbHVlLXNlY3JldA==".into()),
            ("x-amz-signature".into(), "signature-value-secret".into()),
        ],
        future(),
    )
}

fn random_file(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(&path, &data).unwrap();
    (dir, path, data)
}

fn no_progress() -> impl Fn(u64) + Send + Sync {
    |_| {}
}

const ACCESS_DENIED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
<Message>Invalid according to Policy: Policy Condition failed: [\"eq\", \"$key\", \"x\"]</Message>\
<RequestId>R</RequestId></Error>";

/// A storage that refuses as soon as it has read the request head: it answers 403 with an S3 error
/// document and closes without reading the body (so its kernel resets the connection when more body
/// bytes arrive). Goal: the client reports the 403 and its code, not a broken pipe.
///
/// hyper (under reqwest) hands over a response that arrives while the body is still being written, so
/// this is what the client reports — as long as hyper reads the answer before its next write hits the
/// reset. When the reset wins that race (seen in about 1 run in 20 with four such tests running in
/// parallel on two cores), reqwest reports only "error writing a body to connection: Connection reset
/// by peer", with no way to reach the answer that sits unread in the socket. That is reported as a
/// network error, which core retries; the retry meets the same refusal and, almost surely, reads it.
/// So: several attempts, each must be the 403 or a retryable network error, and at least one the 403.
#[tokio::test]
async fn an_early_refusal_is_reported_as_the_refusal() {
    let server = RawServer::start(|mut stream| async move {
        let Ok(_head) = read_head(&mut stream).await else { return };
        let _ = respond(
            &mut stream,
            "403 Forbidden",
            &[("connection", "close"), ("content-type", "application/xml")],
            ACCESS_DENIED.as_bytes(),
        )
        .await;
        drop(stream); // closed with the body unread
    })
    .await;
    let client = client_for(&server.url(), |_| {});
    // 16 MiB: far more than the socket buffers hold, so the client is mid-body when the answer comes.
    let (_dir, path, _) = random_file(16 * 1024 * 1024);
    let mut refusals = 0;
    for _ in 0..5 {
        let error = client.upload_file(&form_for(&server.url()), &path, &no_progress()).await.unwrap_err();
        let failure = error.to_failure();
        assert_eq!(failure.step, Step::Upload);
        match &failure.kind {
            FailureKind::Status { status: 403, code: Some(code) } if code == "AccessDenied" => {
                assert!(failure.message.contains("Policy Condition failed"), "{failure}");
                assert_eq!(classify(&failure), Disposition::FreshForm);
                refusals += 1;
            }
            FailureKind::Network => {
                eprintln!("the reset won the race this time: {error}");
                assert!(error.is_retryable());
            }
            other => panic!("unexpected {other:?}: {error}"),
        }
    }
    assert!(refusals >= 1, "the early 403 was never reported");
}

/// The same early refusal from a storage that drains the body after answering (a "lingering close",
/// as HTTP servers do to let the client read the answer): always the 403.
#[tokio::test]
async fn an_early_refusal_with_a_lingering_close_is_always_the_refusal() {
    let server = RawServer::start(|mut stream| async move {
        let Ok(head) = read_head(&mut stream).await else { return };
        let _ =
            respond(&mut stream, "403 Forbidden", &[("connection", "close")], ACCESS_DENIED.as_bytes()).await;
        let _ = read_body(&mut stream, &head).await;
    })
    .await;
    let client = client_for(&server.url(), |_| {});
    let (_dir, path, _) = random_file(16 * 1024 * 1024);
    for _ in 0..3 {
        let error = client.upload_file(&form_for(&server.url()), &path, &no_progress()).await.unwrap_err();
        assert_eq!(error.status(), Some(403), "{error}");
        assert_eq!(error.code(), Some("AccessDenied"), "{error}");
    }
}

/// A request as the raw server saw it: head and body.
type Request = (support::Head, Vec<u8>);

/// What storage receives: the announced length (no chunked encoding), the multipart type, no API key.
#[tokio::test]
async fn the_upload_announces_its_length_and_carries_no_api_key() {
    let seen: Arc<Mutex<Option<Request>>> = Arc::default();
    let seen_by_server = seen.clone();
    let server = RawServer::start(move |mut stream| {
        let seen = seen_by_server.clone();
        async move {
            let Ok(head) = read_head(&mut stream).await else { return };
            let body = read_body(&mut stream, &head).await.unwrap();
            *seen.lock().unwrap() = Some((head, body));
            respond(&mut stream, "204 No Content", &[], b"").await.unwrap();
        }
    })
    .await;
    let client = client_for(&server.url(), |_| {});
    let (_dir, path, data) = random_file(1024 * 1024 + 17);
    let progressed = AtomicU64::new(0);
    let on_bytes = |n: u64| {
        progressed.fetch_add(n, Ordering::SeqCst);
    };
    let receipt = client.upload_file(&form_for(&server.url()), &path, &on_bytes).await.unwrap();
    assert_eq!(receipt.size, data.len() as u64);
    assert_eq!(receipt.md5, hex::encode(Md5::digest(&data)));
    assert!(receipt.started_at <= receipt.completed_at);
    assert_eq!(progressed.load(Ordering::SeqCst), data.len() as u64);

    let (head, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(head.request_line, "POST /bucket/ HTTP/1.1");
    assert_eq!(head.content_length(), body.len());
    assert_eq!(head.header("transfer-encoding"), None);
    assert!(head.header("content-type").unwrap().starts_with("multipart/form-data; boundary="));
    assert!(head.header("user-agent").unwrap().starts_with("spinlift/"));
    assert!(!head.headers.iter().any(|(_, v)| v.contains(KEY)), "{head:?}");
    assert!(head.header("x-filespin-api-key").is_none());
    // Fields first, in order, then the file.
    let text = String::from_utf8_lossy(&body);
    let key = text.find("name=\"key\"").unwrap();
    let policy = text.find("name=\"policy\"").unwrap();
    let signature = text.find("name=\"x-amz-signature\"").unwrap();
    let file = text.find("name=\"file\"; filename=\"data.bin\"").unwrap();
    assert!(key < policy && policy < signature && signature < file);
}

fn form_json(url: &str) -> String {
    format!(
        r#"{{"asset_id": "ec279822540b412e903827f473bb53a3",
            "storage": {{"name": "a b&c.jpg", "url": "{url}/bucket/",
              "fields": {{"key": "originals/ec27/original/original__a.jpg", "policy": "x", "x-amz-signature": "s"}},
              "protocol": "POST", "expiry": 86400, "key": "/originals/ec27/original/original__a.jpg",
              "bucket": "bucket", "storage_type": "AMAZON_S3"}}}}"#
    )
}

/// Step 1 sends the key header and the filename query; the answer becomes a form.
#[tokio::test]
async fn request_form_sends_the_key_and_reads_the_form() {
    let seen: Arc<Mutex<Option<support::Head>>> = Arc::default();
    let seen_by_server = seen.clone();
    let server = RawServer::start(move |mut stream| {
        let seen = seen_by_server.clone();
        async move {
            let Ok(head) = read_head(&mut stream).await else { return };
            let url = format!("http://{}", head.header("host").unwrap());
            *seen.lock().unwrap() = Some(head);
            respond(
                &mut stream,
                "200 OK",
                &[("content-type", "application/json")],
                form_json(&url).as_bytes(),
            )
            .await
            .unwrap();
        }
    })
    .await;
    let client = client_for(&format!("{}/", server.url()), |_| {});
    let before = spinlift_core::UnixMillis(time_now_ms());
    let form = client.request_form("a b&c.jpg").await.unwrap();
    let head = seen.lock().unwrap().take().unwrap();
    assert_eq!(head.request_line, "GET /api/v1/assets/new/content_storage_url?filename=a+b%26c.jpg HTTP/1.1");
    assert_eq!(head.header("x-filespin-api-key"), Some(KEY));
    assert_eq!(form.asset_id, "ec279822540b412e903827f473bb53a3");
    assert_eq!(form.url, format!("{}/bucket/", server.url()));
    assert_eq!(form.fields().map(|(n, _)| n).collect::<Vec<_>>(), ["key", "policy", "x-amz-signature"]);
    assert!(form.expires_at >= before.plus_secs(86_400));
    assert!(form.expires_at <= spinlift_core::UnixMillis(time_now_ms()).plus_secs(86_400));
}

fn time_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A server that answers every request with one canned response after reading it whole.
async fn canned(
    status: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> RawServer {
    RawServer::start(move |mut stream| async move {
        let Ok(head) = read_head(&mut stream).await else { return };
        let _ = read_body(&mut stream, &head).await;
        let _ = respond(&mut stream, status, headers, body.as_bytes()).await;
    })
    .await
}

#[tokio::test]
async fn api_refusals_carry_status_code_message_and_retry_after_but_not_the_key() {
    let server = canned(
        "401 Unauthorized",
        &[("content-type", "application/json")],
        r#"{"error": "UNAUTHORIZED", "message": "invalid API key test-key-5f3c9a"}"#,
    )
    .await;
    let client = client_for(&server.url(), |_| {});
    let error = client.request_form("a.jpg").await.unwrap_err();
    let failure = error.to_failure();
    assert_eq!(failure.kind, FailureKind::Status { status: 401, code: Some("UNAUTHORIZED".into()) });
    assert_eq!(classify(&failure), Disposition::StopBatch);
    for text in [error.to_string(), format!("{error:?}"), format!("{failure:?}")] {
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("invalid API key"), "{text}");
    }

    let server = canned("503 Service Unavailable", &[("retry-after", "7")], "busy").await;
    let client = client_for(&server.url(), |_| {});
    let error = client.request_form("a.jpg").await.unwrap_err();
    assert_eq!(error.to_failure().retry_after_ms, Some(7000));
    assert!(error.is_retryable());

    let server = canned("400 Bad Request", &[], "MISSING_MANDATORY_PARAMETERS: filename").await;
    let client = client_for(&server.url(), |_| {});
    let error = client.request_form("").await.unwrap_err();
    assert_eq!(error.code(), Some("MISSING_MANDATORY_PARAMETERS"));
    assert_eq!(classify(&error.to_failure()), Disposition::FailAsset);
}

#[tokio::test]
async fn answers_that_are_not_a_form_are_invalid_responses() {
    let server = canned(
        "200 OK",
        &[],
        r#"{"asset_id": "a", "storage": {"url": "https://b/", "protocol": "PUT", "fields": {}}}"#,
    )
    .await;
    let client = client_for(&server.url(), |_| {});
    let error = client.request_form("a.jpg").await.unwrap_err();
    assert!(matches!(error, TransportError::InvalidResponse { step: Step::RequestForm, .. }), "{error:?}");
    assert!(error.to_string().contains("only POST"), "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn register_reads_both_plausible_answers_to_a_repeat() {
    use spinlift_transport::{RegisterOutcome, RegisterRequest, UploadReceipt};
    let receipt = UploadReceipt {
        size: 3,
        md5: "900150983cd24fb0d6963f7d28e17f72".into(),
        started_at: UnixMillis(0),
        completed_at: UnixMillis(1),
    };
    let request = RegisterRequest::new("a1", &receipt, serde_json::json!({"app": "spinlift"}));

    let server = canned("200 OK", &[], r#"{"status": "ok"}"#).await;
    let outcome = client_for(&server.url(), |_| {}).register(&request).await.unwrap();
    assert_eq!(outcome, RegisterOutcome::Registered);

    let server =
        canned("400 Bad Request", &[], r#"{"error": "ASSET_ID_EXISTS", "message": "asset exists"}"#).await;
    let outcome = client_for(&server.url(), |_| {}).register(&request).await.unwrap();
    assert_eq!(outcome, RegisterOutcome::AlreadyExists);

    let server = canned("400 Bad Request", &[], "Error: ASSET_ID_EXISTS").await;
    let outcome = client_for(&server.url(), |_| {}).register(&request).await.unwrap();
    assert_eq!(outcome, RegisterOutcome::AlreadyExists);

    let server = canned("400 Bad Request", &[], r#"{"error": "CHECKSUM_MISMATCH"}"#).await;
    let error = client_for(&server.url(), |_| {}).register(&request).await.unwrap_err();
    assert_eq!(error.step(), Step::Register);
    assert_eq!(error.code(), Some("CHECKSUM_MISMATCH"));
}

/// S3 can answer 200 with an error document (object_store's `body_contains_error`): not a success.
#[tokio::test]
async fn a_2xx_with_an_error_document_is_a_failure() {
    let server = canned(
        "200 OK",
        &[],
        "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
    )
    .await;
    let client = client_for(&server.url(), |_| {});
    let (_dir, path, _) = random_file(1000);
    let error = client.upload_file(&form_for(&server.url()), &path, &no_progress()).await.unwrap_err();
    assert_eq!(
        error.to_failure().kind,
        FailureKind::Status { status: 200, code: Some("InternalError".into()) }
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn s3_refusals_keep_code_message_and_retry_after_without_form_values() {
    let server = canned(
        "503 Slow Down",
        &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
        "<Error><Code>SlowDown</Code><Message>Reduce your rate; policy was cG9saWN5LXZhbHVlLXNlY3JldA==</Message></Error>",
    )
    .await;
    let client = client_for(&server.url(), |_| {});
    let (_dir, path, _) = random_file(1000);
    let error = client.upload_file(&form_for(&server.url()), &path, &no_progress()).await.unwrap_err();
    let failure = error.to_failure();
    assert_eq!(failure.kind, FailureKind::Status { status: 503, code: Some("SlowDown".into()) });
    assert_eq!(failure.retry_after_ms, Some(0), "a date in the past is no wait");
    assert!(failure.message.contains("Reduce your rate"));
    assert!(!format!("{error} {error:?}").contains("cG9saWN5LXZhbHVlLXNlY3JldA=="));
}

/// Nothing is sent for an expired form or a file too large for it.
#[tokio::test]
async fn expired_forms_and_oversized_files_fail_before_a_byte_is_sent() {
    let server = canned("204 No Content", &[], "").await;
    let client = client_for(&server.url(), |_| {});
    let (_dir, path, _) = random_file(1000);

    let mut form = form_for(&server.url());
    form.expires_at = UnixMillis(time_now_ms() - 1);
    let error = client.upload_file(&form, &path, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::FormExpired { .. }), "{error:?}");
    assert_eq!(classify(&error.to_failure()), Disposition::FreshForm);

    let mut form = form_for(&server.url());
    form.max_size = Some(999);
    let error = client.upload_file(&form, &path, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::TooLarge { size: 1000, max_size: 999, .. }), "{error:?}");
    assert_eq!(classify(&error.to_failure()), Disposition::FailAsset);
    let error = client
        .upload_reader(&form, std::io::Cursor::new(vec![0u8; 1000]), 1000, "r.bin", &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::TooLarge { .. }), "{error:?}");

    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn unreadable_sources_name_the_path() {
    let server = canned("204 No Content", &[], "").await;
    let client = client_for(&server.url(), |_| {});
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jpg");
    let error = client.upload_file(&form_for(&server.url()), &missing, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::Source { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.jpg"), "{error}");
    assert_eq!(classify(&error.to_failure()), Disposition::FailAsset);
    let error = client.upload_file(&form_for(&server.url()), dir.path(), &no_progress()).await.unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
    assert_eq!(server.connections(), 0);
}

/// A reader that yields fewer or more bytes than announced never produces a success.
#[tokio::test]
async fn a_reader_of_the_wrong_length_is_a_changed_source() {
    let completed = Arc::new(AtomicUsize::new(0));
    let completed_by_server = completed.clone();
    let server = RawServer::start(move |mut stream| {
        let completed = completed_by_server.clone();
        async move {
            let Ok(head) = read_head(&mut stream).await else { return };
            if let Ok(body) = read_body(&mut stream, &head).await
                && body.ends_with(b"--\r\n")
            {
                completed.fetch_add(1, Ordering::SeqCst);
                let _ = respond(&mut stream, "204 No Content", &[], b"").await;
            }
        }
    })
    .await;
    let client = client_for(&server.url(), |_| {});
    let form = form_for(&server.url());
    let error = client
        .upload_reader(&form, std::io::Cursor::new(vec![1u8; 70_000]), 100_000, "short.bin", &no_progress())
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::SourceChanged { expected: 100_000, found: Some(70_000), .. }),
        "{error:?}"
    );
    assert_eq!(classify(&error.to_failure()), Disposition::Retry);
    let error = client
        .upload_reader(&form, std::io::Cursor::new(vec![1u8; 100_001]), 100_000, "long.bin", &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::SourceChanged { found: None, .. }), "{error:?}");
    assert_eq!(completed.load(Ordering::SeqCst), 0, "storage never saw a complete body");
}

/// An upload whose answer does not come fails after the stall timeout, not never.
#[tokio::test]
async fn a_silent_storage_is_a_timeout() {
    let server = RawServer::start(|mut stream| async move {
        let Ok(head) = read_head(&mut stream).await else { return };
        let _ = read_body(&mut stream, &head).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    let client = client_for(&server.url(), |c| c.upload_stall_timeout = Duration::from_millis(300));
    let (_dir, path, _) = random_file(10_000);
    let started = std::time::Instant::now();
    let error = client.upload_file(&form_for(&server.url()), &path, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::Timeout { step: Step::Upload, .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.is_retryable());
}

/// A storage that stops reading mid-body stalls the upload: the watchdog ends it.
#[tokio::test]
async fn a_stalled_body_is_a_timeout() {
    let server = RawServer::start(|mut stream| async move {
        let Ok(_head) = read_head(&mut stream).await else { return };
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    let client = client_for(&server.url(), |c| c.upload_stall_timeout = Duration::from_millis(500));
    let (_dir, path, _) = random_file(32 * 1024 * 1024);
    let progressed = AtomicU64::new(0);
    let on_bytes = |n: u64| {
        progressed.fetch_add(n, Ordering::SeqCst);
    };
    let error = client.upload_file(&form_for(&server.url()), &path, &on_bytes).await.unwrap_err();
    assert!(matches!(error, TransportError::Timeout { step: Step::Upload, .. }), "{error:?}");
    let sent = progressed.load(Ordering::SeqCst);
    assert!(sent > 0 && sent < 32 * 1024 * 1024, "{sent}");
}

#[tokio::test]
async fn a_silent_api_is_a_timeout_and_a_closed_port_a_network_error() {
    let server = RawServer::start(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    let client = client_for(&server.url(), |c| c.api_timeout = Duration::from_millis(300));
    let error = client.request_form("a.jpg").await.unwrap_err();
    assert!(matches!(error, TransportError::Timeout { step: Step::RequestForm, .. }), "{error:?}");
    assert!(!error.to_string().contains("filename="), "no query in errors: {error}");

    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = client_for(&format!("http://127.0.0.1:{port}"), |_| {});
    let error = client.request_form("a.jpg").await.unwrap_err();
    assert!(matches!(error, TransportError::Network { step: Step::RequestForm, .. }), "{error:?}");
    assert!(error.is_retryable());
    let mut form = form_for(&format!("http://127.0.0.1:{port}"));
    form.url.push_str("?X-Amz-Signature=very-secret");
    let (_dir, path, _) = random_file(10);
    let error = client.upload_file(&form, &path, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::Network { step: Step::Upload, .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("very-secret"), "{error:?}");
}

/// `max_concurrent_uploads` bounds the S3 POSTs in flight across clones of one client.
#[tokio::test]
async fn uploads_share_one_concurrency_limit() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (in_flight_s, peak_s) = (in_flight.clone(), peak.clone());
    let server = RawServer::start(move |mut stream| {
        let (in_flight, peak) = (in_flight_s.clone(), peak_s.clone());
        async move {
            while let Ok(head) = read_head(&mut stream).await {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let _ = read_body(&mut stream, &head).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if respond(&mut stream, "204 No Content", &[], b"").await.is_err() {
                    break;
                }
            }
        }
    })
    .await;
    let client = client_for(&server.url(), |c| c.max_concurrent_uploads = 2);
    let (_dir, path, _) = random_file(10_000);
    let form = form_for(&server.url());
    let uploads = (0..6).map(|_| {
        let client = client.clone();
        let (form, path) = (form.clone(), path.clone());
        async move { client.upload_file(&form, &path, &no_progress()).await }
    });
    for result in futures::future::join_all(uploads).await {
        result.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[test]
fn bad_configurations_are_refused() {
    for url in ["not a url", "ftp://host/", "http://host/?key=1"] {
        let error = FileSpinClient::new(ClientConfig::new(url, Secret::new(KEY))).unwrap_err();
        assert!(matches!(error, TransportError::Config { .. }), "{url}: {error:?}");
    }
    let mut config = ClientConfig::new("http://127.0.0.1:1", Secret::new(KEY));
    config.max_concurrent_uploads = 0;
    assert!(FileSpinClient::new(config).is_err());
    let client = client_for("http://127.0.0.1:1", |_| {});
    assert!(!format!("{client:?}").contains(KEY));
}

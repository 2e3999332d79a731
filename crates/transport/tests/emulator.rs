//! The transport against the local FileSpin emulator, in-process: the three steps end to end, and the
//! refusals a real FileSpin and S3 give.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{client, emulator};

use md5::{Digest, Md5};
use rand::RngCore;
use spinlift_core::{Disposition, FailureKind, Step, UnixMillis, classify};
use spinlift_transport::{
    ClientConfig, FileSpinClient, RegisterOutcome, RegisterRequest, Secret, TransportError,
};

fn random_file(dir: &tempfile::TempDir, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let path = dir.path().join(name);
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn no_progress() -> impl Fn(u64) + Send + Sync {
    |_| {}
}

#[tokio::test]
async fn a_9_mib_file_and_an_empty_file_arrive_whole_and_are_registered() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("big.bin", 9 * 1024 * 1024), ("empty.bin", 0)] {
        let (path, data) = random_file(&dir, name, len);
        let form = client.request_form(name).await.unwrap();
        assert!(form.expires_at > UnixMillis(0));
        let progressed = AtomicU64::new(0);
        let on_bytes = |n: u64| {
            progressed.fetch_add(n, Ordering::SeqCst);
        };
        let receipt = client.upload_file(&form, &path, &on_bytes).await.unwrap();
        assert_eq!(receipt.size, len as u64);
        assert_eq!(receipt.md5, hex::encode(Md5::digest(&data)));
        assert_eq!(progressed.load(Ordering::SeqCst), len as u64);

        let request =
            RegisterRequest::new(&form.asset_id, &receipt, serde_json::json!({"app": "spinlift-test"}));
        assert_eq!(client.register(&request).await.unwrap(), RegisterOutcome::Registered);

        let registration = emu.registrations().into_iter().find(|r| r.asset_id == form.asset_id).unwrap();
        assert_eq!(registration.size, len as u64);
        assert_eq!(registration.checksum, receipt.md5);
        assert_eq!(registration.filename, name);
        assert_eq!(registration.upload_completed_at.as_deref(), Some(request.upload_completed_at.as_str()));
        assert!(emu.read_object(&registration.key).unwrap() == data, "the stored bytes are the file's");
    }
    let stats = emu.stats();
    assert_eq!((stats.issued, stats.uploaded, stats.registered, stats.rejected), (2, 2, 2, 0));
    emu.shutdown().await;
}

/// Prepared before the form comes (opened, its first chunk read), a file is sent as it was read: a
/// small one whole, a large one from its first chunk on; one that cannot be opened fails before any
/// request.
#[tokio::test]
async fn a_file_prepared_ahead_is_sent_as_it_was_read() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("small.bin", 4096), ("large.bin", 3 * 256 * 1024 + 7)] {
        let (path, data) = random_file(&dir, name, len);
        let prepared = client.prepare_file(&path).await.unwrap();
        assert_eq!(prepared.len(), len as u64);
        let form = client.request_form(name).await.unwrap();
        let receipt = client.upload_prepared(&form, prepared, &no_progress()).await.unwrap();
        assert_eq!((receipt.size, receipt.md5.clone()), (len as u64, hex::encode(Md5::digest(&data))));
        let request = RegisterRequest::new(&form.asset_id, &receipt, serde_json::Value::Null);
        assert_eq!(client.register(&request).await.unwrap(), RegisterOutcome::Registered);
        let registration = emu.registrations().into_iter().find(|r| r.asset_id == form.asset_id).unwrap();
        assert!(
            emu.read_object(&registration.key).unwrap() == data,
            "{name}: the stored bytes are the file's"
        );
    }
    let missing = client.prepare_file(&dir.path().join("missing.bin")).await.unwrap_err();
    assert!(matches!(missing, TransportError::Source { step: Step::Upload, .. }), "{missing:?}");
    let directory = client.prepare_file(dir.path()).await.unwrap_err();
    assert!(directory.to_string().contains("not a regular file"), "{directory}");
    assert_eq!(emu.stats().uploaded, 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn registering_twice_is_already_exists() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = random_file(&dir, "twice.bin", 1234);
    let form = client.request_form("twice.bin").await.unwrap();
    let receipt = client.upload_file(&form, &path, &no_progress()).await.unwrap();
    let request = RegisterRequest::new(&form.asset_id, &receipt, serde_json::Value::Null);
    assert_eq!(client.register(&request).await.unwrap(), RegisterOutcome::Registered);
    assert_eq!(client.register(&request).await.unwrap(), RegisterOutcome::AlreadyExists);
    assert_eq!(emu.registrations().len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_wrong_api_key_is_a_401_that_does_not_print_the_key() {
    let emu = emulator(|_| {}).await;
    let wrong = "wrong-key-7d41c0ffee";
    let client = FileSpinClient::new(ClientConfig::new(emu.api_url(), Secret::new(wrong))).unwrap();
    let error = client.request_form("a.jpg").await.unwrap_err();
    let failure = error.to_failure();
    assert_eq!(failure.step, Step::RequestForm);
    assert!(matches!(failure.kind, FailureKind::Status { status: 401, .. }), "{failure:?}");
    assert_eq!(classify(&failure), Disposition::StopBatch);
    for text in [error.to_string(), format!("{error:?}"), failure.to_string(), format!("{client:?}")] {
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(emu.api_key()), "{text}");
    }
    // Register with the wrong key too.
    let receipt = spinlift_transport::UploadReceipt {
        size: 0,
        md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
        started_at: UnixMillis(0),
        completed_at: UnixMillis(0),
    };
    let error =
        client.register(&RegisterRequest::new("x", &receipt, serde_json::Value::Null)).await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(!format!("{error} {error:?}").contains(wrong));
    emu.shutdown().await;
}

#[tokio::test]
async fn account_refusals_stop_the_batch() {
    for disabled in [true, false] {
        let emu = emulator(|c| {
            c.account_disabled = disabled;
            c.upload_limit_exceeded = !disabled;
        })
        .await;
        let error = client(&emu).request_form("a.jpg").await.unwrap_err();
        assert_eq!(error.status(), Some(403), "{error}");
        assert_eq!(classify(&error.to_failure()), Disposition::StopBatch);
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn an_expired_form_is_refused_before_sending_and_by_storage_when_forced() {
    let emu = emulator(|c| c.form_expiry_secs = -60).await;
    let client = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = random_file(&dir, "late.bin", 5000);
    let form = client.request_form("late.bin").await.unwrap();
    let error = client.upload_file(&form, &path, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::FormExpired { .. }), "{error:?}");
    assert_eq!(classify(&error.to_failure()), Disposition::FreshForm);
    assert_eq!(emu.stats().rejected, 0, "nothing was sent");

    // Forcing the send: storage checks the signed policy's expiration itself.
    // Storage may answer before it reads the body and close the connection; when the client's next
    // write loses that race, reqwest reports the reset instead of the answer (a retryable network
    // error; the engine's retry then reads the refusal). Each attempt is one or the other, and the
    // refusal shows within a few attempts.
    let mut forced = form.clone();
    forced.expires_at = UnixMillis(i64::MAX / 2);
    let mut refused = None;
    for _ in 0..5 {
        let error = client.upload_file(&forced, &path, &no_progress()).await.unwrap_err();
        let failure = error.to_failure();
        match failure.kind {
            FailureKind::Status { status: 400 | 403, .. } => {
                assert_eq!(classify(&failure), Disposition::FreshForm, "{error}");
                refused = Some(error);
                break;
            }
            FailureKind::Network => assert_eq!(classify(&failure), Disposition::Retry),
            _ => panic!("neither the refusal nor a retryable reset: {error}"),
        }
    }
    assert!(refused.is_some(), "storage's refusal never reached the client in 5 attempts");
    assert_eq!(emu.stats().uploaded, 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_file_over_the_policy_limit_is_too_large_before_sending_and_refused_when_forced() {
    let emu = emulator(|c| c.max_object_size = 1000).await;
    let client = client(&emu);
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = random_file(&dir, "big.bin", 1001);
    let form = client.request_form("big.bin").await.unwrap();
    assert_eq!(form.max_size, Some(1000), "read from the policy's content-length-range");
    let error = client.upload_file(&form, &path, &no_progress()).await.unwrap_err();
    assert!(matches!(error, TransportError::TooLarge { size: 1001, max_size: 1000, .. }), "{error:?}");
    assert_eq!(classify(&error.to_failure()), Disposition::FailAsset);
    assert_eq!(emu.stats().rejected, 0, "nothing was sent");

    let mut forced = form.clone();
    forced.max_size = None;
    let error = client.upload_file(&forced, &path, &no_progress()).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.code(), Some("EntityTooLarge"), "{error}");
    assert_eq!(classify(&error.to_failure()), Disposition::FailAsset);

    // Exactly at the limit is fine.
    let (path, _) = random_file(&dir, "fits.bin", 1000);
    client.upload_file(&form, &path, &no_progress()).await.unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn a_reader_shorter_than_announced_is_a_changed_source_and_nothing_is_stored() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let form = client.request_form("remote.bin").await.unwrap();
    let mut data = vec![0u8; 300_000];
    rand::rng().fill_bytes(&mut data);
    let error = client
        .upload_reader(&form, std::io::Cursor::new(data), 400_000, "remote.bin", &no_progress())
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::SourceChanged { expected: 400_000, found: Some(300_000), .. }),
        "{error:?}"
    );
    assert_eq!(classify(&error.to_failure()), Disposition::Retry);
    assert_eq!(emu.stats().uploaded, 0);
    assert!(emu.registrations().is_empty());

    // The same form still takes a whole upload afterwards.
    let data = vec![42u8; 400_000];
    let receipt = client
        .upload_reader(&form, std::io::Cursor::new(data.clone()), 400_000, "remote.bin", &no_progress())
        .await
        .unwrap();
    assert_eq!(receipt.md5, hex::encode(Md5::digest(&data)));
    emu.shutdown().await;
}

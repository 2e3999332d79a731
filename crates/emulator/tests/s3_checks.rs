//! The S3 endpoint holds a form to its word: signature, expiration and every policy condition, answering
//! each refusal with S3's status and XML error, storing nothing.

mod common;

use common::*;
use reqwest::StatusCode;
use spinlift_emulator::{Emulator, EmulatorConfig, Stats};

/// Uploads `file` with `form` and checks that S3 refused it with `status` and `code`, stored nothing under
/// the form's key and counted one more rejection.
async fn assert_refused(emulator: &Emulator, form: &Form, file: &[u8], status: StatusCode, code: &str) {
    let rejected_before = emulator.stats().rejected;

    let response = upload(form, file).await;

    assert_eq!(s3_error(response).await, (status, code.to_owned()));
    assert!(!emulator.object_path(form.key()).exists(), "{} was stored", form.key());
    let stats = emulator.stats();
    assert_eq!(stats.uploaded, 0);
    assert_eq!(stats.rejected, rejected_before + 1);
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let emulator = start().await;
    let mut form = get_form(&emulator, "photo.jpg").await;
    let signature = form.field("x-amz-signature").to_owned();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    form.set_field("x-amz-signature", &format!("{flipped}{}", &signature[1..]));

    assert_refused(&emulator, &form, b"hello", StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
}

#[tokio::test]
async fn a_policy_rewritten_by_the_client_no_longer_matches_its_signature() {
    let emulator = start_with(EmulatorConfig { max_object_size: 10, ..Default::default() }).await;
    let mut form = get_form(&emulator, "photo.jpg").await;
    // The client lifts the size limit in the policy and keeps the old signature.
    let policy = form.field("policy").to_owned();
    let decoded = String::from_utf8(base64_decode(&policy)).unwrap();
    let lifted = decoded.replace("[\"content-length-range\",0,10]", "[\"content-length-range\",0,1000000]");
    assert_ne!(lifted, decoded, "the policy holds the size limit: {decoded}");
    form.set_field("policy", &base64_encode(lifted.as_bytes()));

    assert_refused(&emulator, &form, &[7; 100], StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
}

#[tokio::test]
async fn an_expired_form_is_refused() {
    let emulator = start_with(EmulatorConfig { form_expiry_secs: -60, ..Default::default() }).await;
    let form = get_form(&emulator, "photo.jpg").await;
    assert_eq!(form.json["storage"]["expiry"], -60);

    assert_refused(&emulator, &form, b"hello", StatusCode::FORBIDDEN, "AccessDenied").await;
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_refused() {
    let emulator = start_with(EmulatorConfig { max_object_size: 1024, ..Default::default() }).await;
    let form = get_form(&emulator, "big.bin").await;

    assert_refused(&emulator, &form, &random_bytes(64 * 1024, 3), StatusCode::BAD_REQUEST, "EntityTooLarge")
        .await;

    // At the limit it fits.
    let response = upload(&form, &random_bytes(1024, 3)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_key_outside_the_assets_prefix_is_refused() {
    let emulator = start().await;
    let mut form = get_form(&emulator, "photo.jpg").await;
    let other = get_form(&emulator, "other.jpg").await;
    // Writing over another asset's object with this asset's form.
    form.set_field("key", other.key());

    assert_refused(&emulator, &form, b"hello", StatusCode::FORBIDDEN, "AccessDenied").await;
    assert!(!emulator.object_path(other.key()).exists());
}

#[tokio::test]
async fn a_field_the_policy_does_not_cover_is_refused() {
    let emulator = start().await;
    let mut form = get_form(&emulator, "photo.jpg").await;
    form.fields.push(("acl".into(), "public-read".into()));

    assert_refused(&emulator, &form, b"hello", StatusCode::FORBIDDEN, "AccessDenied").await;
}

#[tokio::test]
async fn a_post_without_a_form_is_refused() {
    let emulator = start().await;
    let mut form = get_form(&emulator, "photo.jpg").await;
    form.fields.retain(|(name, _)| name == "key");

    assert_refused(&emulator, &form, b"hello", StatusCode::FORBIDDEN, "AccessDenied").await;
}

#[tokio::test]
async fn the_bucket_cannot_be_read_back() {
    let emulator = start().await;
    let form = get_form(&emulator, "photo.jpg").await;
    assert_eq!(upload(&form, b"hello").await.status(), StatusCode::NO_CONTENT);

    let response = reqwest::get(format!("{}{}", emulator.s3_url(), form.key())).await.unwrap();

    assert_eq!(s3_error(response).await, (StatusCode::FORBIDDEN, "AccessDenied".to_owned()));
    assert_eq!(
        emulator.stats(),
        Stats {
            issued: 1,
            uploaded: 1,
            registered: 0,
            rejected: 1,
            api_requests: 1,
            s3_requests: 2,
            faults_injected: 0,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );
}

/// S3 answers before it has read a refused upload; the client still gets to read that answer.
#[tokio::test]
async fn a_large_refused_upload_still_gets_its_answer() {
    let emulator = start_with(EmulatorConfig { form_expiry_secs: -1, ..Default::default() }).await;
    let form = get_form(&emulator, "large.bin").await;

    assert_refused(&emulator, &form, &vec![0x5a; 16 * 1024 * 1024], StatusCode::FORBIDDEN, "AccessDenied")
        .await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

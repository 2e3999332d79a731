//! The API refuses what the docs say it refuses, with a JSON error naming the documented code.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use spinlift_emulator::{EmulatorConfig, Stats};

#[tokio::test]
async fn the_form_has_the_documented_shape() {
    let emulator = start().await;

    let form = get_form(&emulator, "photo.jpg").await;

    let storage = &form.json["storage"];
    let id = &form.asset_id;
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{id}");
    assert_eq!(form.key(), format!("originals/{id}/original/original__photo.jpg"));
    assert_eq!(storage["key"], format!("/{}", form.key()));
    assert_eq!(storage["name"], "photo.jpg");
    assert_eq!(storage["url"], emulator.s3_url());
    assert!(emulator.s3_url().starts_with("http://127.0.0.1:"), "{}", emulator.s3_url());
    assert!(emulator.s3_url().ends_with("/spinlift-emulator/"), "path-style: {}", emulator.s3_url());
    assert!(emulator.api_url().starts_with("http://127.0.0.1:") && !emulator.api_url().ends_with('/'));
    assert_eq!(storage["protocol"], "POST");
    assert_eq!(storage["expiry"], 86400);
    assert_eq!(storage["bucket"], "spinlift-emulator");
    assert_eq!(storage["storage_type"], "AMAZON_S3");
    let mut names: Vec<&str> = form.fields.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["key", "policy", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"]
    );
    assert_eq!(form.field("x-amz-algorithm"), "AWS4-HMAC-SHA256");
    let date = &form.field("x-amz-date")[..8];
    assert_eq!(
        form.field("x-amz-credential"),
        format!("AKIASPINLIFTEMULATOR/{date}/us-east-1/s3/aws4_request")
    );
}

#[tokio::test]
async fn file_names_are_kept_inside_the_assets_key() {
    let emulator = start().await;

    let form = get_form(&emulator, "../../etc/passwd").await;

    assert_eq!(form.json["storage"]["name"], "../../etc/passwd");
    let name = form.key().rsplit_once("/original/").unwrap().1;
    assert!(!name.contains('/') && !name.contains(".."), "{}", form.key());
    assert_eq!(upload(&form, b"x").await.status(), StatusCode::NO_CONTENT);
    assert!(emulator.object_path(form.key()).starts_with(emulator.object_path("originals")));
}

#[tokio::test]
async fn a_missing_or_wrong_api_key_is_unauthorized() {
    let emulator = start().await;

    let missing = get_storage_url(&emulator, &[("filename", "a.jpg")], None).await;
    assert_eq!(api_error(missing).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));
    let wrong = get_storage_url(&emulator, &[("filename", "a.jpg")], Some("not-the-key")).await;
    assert_eq!(api_error(wrong).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));

    let register = reqwest::Client::new()
        .post(format!("{}/api/v1/assets/new/register_asset", emulator.api_url()))
        .json(&registration("0123456789abcdef0123456789abcdef", 1, "d41d8cd98f00b204e9800998ecf8427e"))
        .send()
        .await
        .unwrap();
    assert_eq!(api_error(register).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));

    assert_eq!(
        emulator.stats(),
        Stats {
            issued: 0,
            uploaded: 0,
            registered: 0,
            rejected: 3,
            api_requests: 3,
            s3_requests: 0,
            faults_injected: 0,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );
}

#[tokio::test]
async fn a_form_needs_a_filename() {
    let emulator = start().await;
    let key = Some(emulator.api_key());

    for query in [&[][..], &[("filename", "")][..]] {
        let response = get_storage_url(&emulator, query, key).await;
        assert_eq!(
            api_error(response).await,
            (StatusCode::BAD_REQUEST, "MISSING_MANDATORY_PARAMETERS".into())
        );
    }
    assert_eq!(emulator.stats().issued, 0);
}

#[tokio::test]
async fn only_the_post_protocol_is_supported() {
    let emulator = start().await;
    let key = Some(emulator.api_key());

    let put = get_storage_url(&emulator, &[("filename", "a.jpg"), ("protocol", "PUT")], key).await;
    assert_eq!(api_error(put).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST".into()));

    let post = get_storage_url(&emulator, &[("filename", "a.jpg"), ("protocol", "post")], key).await;
    assert_eq!(post.status(), StatusCode::OK);
}

#[tokio::test]
async fn registration_checks_the_stored_file() {
    let emulator = start().await;
    let file = random_bytes(100_000, 9);
    let form = get_form(&emulator, "photo.jpg").await;
    let md5 = md5_hex(&file);

    // Nothing uploaded yet.
    let early = register(&emulator, &registration(&form.asset_id, file.len(), &md5)).await;
    assert_eq!(api_error(early).await, (StatusCode::BAD_REQUEST, "OBJECT_NOT_FOUND".into()));

    assert_eq!(upload(&form, &file).await.status(), StatusCode::NO_CONTENT);

    let wrong_md5 = md5_hex(b"something else");
    let response = register(&emulator, &registration(&form.asset_id, file.len(), &wrong_md5)).await;
    assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "CHECKSUM_MISMATCH".into()));

    let response = register(&emulator, &registration(&form.asset_id, file.len() + 1, &md5)).await;
    assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "SIZE_MISMATCH".into()));

    assert!(emulator.registrations().is_empty());
    assert_eq!(
        emulator.stats(),
        Stats {
            issued: 1,
            uploaded: 1,
            registered: 0,
            rejected: 3,
            api_requests: 4,
            s3_requests: 1,
            faults_injected: 0,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );

    // Uppercase hex is the same digest.
    let response = register(&emulator, &registration(&form.asset_id, file.len(), &md5.to_uppercase())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.registrations()[0].checksum, md5);
}

#[tokio::test]
async fn registration_needs_its_mandatory_parameters() {
    let emulator = start().await;
    let form = get_form(&emulator, "photo.jpg").await;
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";

    for body in [
        json!({ "size": 0, "checksum": md5 }),
        json!({ "asset_id": form.asset_id, "checksum": md5 }),
        json!({ "asset_id": form.asset_id, "size": 0 }),
        json!({ "asset_id": "", "size": 0, "checksum": md5 }),
    ] {
        let response = register(&emulator, &body).await;
        assert_eq!(
            api_error(response).await,
            (StatusCode::BAD_REQUEST, "MISSING_MANDATORY_PARAMETERS".into()),
            "{body}"
        );
    }
    for body in [
        json!({ "asset_id": form.asset_id, "size": -1, "checksum": md5 }),
        json!({ "asset_id": form.asset_id, "size": "12", "checksum": md5 }),
        json!({ "asset_id": form.asset_id, "size": 0, "checksum": "not-an-md5" }),
        json!([form.asset_id]),
    ] {
        let response = register(&emulator, &body).await;
        assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST".into()), "{body}");
    }
}

#[tokio::test]
async fn an_asset_never_issued_cannot_be_registered() {
    let emulator = start().await;

    let response =
        register(&emulator, &registration("0123456789abcdef0123456789abcdef", 0, md5_hex(b"").as_str()))
            .await;

    assert_eq!(api_error(response).await, (StatusCode::NOT_FOUND, "ASSET_NOT_FOUND".into()));
}

#[tokio::test]
async fn a_spent_upload_limit_is_forbidden() {
    let emulator = start_with(EmulatorConfig { upload_limit_exceeded: true, ..Default::default() }).await;

    let response = get_storage_url(&emulator, &[("filename", "a.jpg")], Some(emulator.api_key())).await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "error": "FORBIDDEN", "message": "Upload limit exceeded" }));
    let response =
        register(&emulator, &registration("0123456789abcdef0123456789abcdef", 0, &md5_hex(b""))).await;
    assert_eq!(api_error(response).await, (StatusCode::FORBIDDEN, "FORBIDDEN".into()));
    assert_eq!(
        emulator.stats(),
        Stats {
            issued: 0,
            uploaded: 0,
            registered: 0,
            rejected: 2,
            api_requests: 2,
            s3_requests: 0,
            faults_injected: 0,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );
}

#[tokio::test]
async fn a_disabled_account_is_forbidden() {
    let emulator = start_with(EmulatorConfig { account_disabled: true, ..Default::default() }).await;

    let response = get_storage_url(&emulator, &[("filename", "a.jpg")], Some(emulator.api_key())).await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "error": "FORBIDDEN", "message": "User account is disabled" }));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json_errors() {
    let emulator = start().await;
    let client = reqwest::Client::new();

    let response = client.get(format!("{}/api/v1/nothing", emulator.api_url())).send().await.unwrap();
    assert_eq!(api_error(response).await, (StatusCode::NOT_FOUND, "NOT_FOUND".into()));
    let response = client
        .delete(format!("{}/api/v1/assets/new/content_storage_url", emulator.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(api_error(response).await, (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED".into()));
}

#[tokio::test]
async fn bad_settings_are_refused_at_start() {
    for config in [
        EmulatorConfig { bucket: "Not_A_Bucket".into(), ..Default::default() },
        EmulatorConfig { api_key: String::new(), ..Default::default() },
        EmulatorConfig { region: "eu/west".into(), ..Default::default() },
    ] {
        let error = spinlift_emulator::Emulator::start(config).await.unwrap_err();
        assert!(matches!(error, spinlift_emulator::EmulatorError::InvalidConfig(_)), "{error}");
    }
}

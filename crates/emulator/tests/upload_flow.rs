//! A user uploads files through the three documented steps and finds them stored and registered.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use spinlift_emulator::Stats;

#[tokio::test]
async fn a_random_binary_file_of_several_mib_goes_through_all_three_steps() {
    let emulator = start().await;
    let file = random_bytes(6 * 1024 * 1024 + 123, 1);

    // 1. Ask for a form.
    let form = get_form(&emulator, "holiday video.mp4").await;
    assert!(form.key().starts_with(&format!("originals/{}/", form.asset_id)), "{}", form.key());

    // 2. POST the file to S3 with every field, the file last.
    let response = upload(&form, &file).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{}", response.text().await.unwrap());
    let stored = emulator.read_object(form.key()).unwrap();
    assert!(
        stored == file,
        "the stored bytes differ from the file ({} vs {} bytes)",
        stored.len(),
        file.len()
    );

    // 3. Register it with its size and MD5.
    let response = register(&emulator, &registration(&form.asset_id, file.len(), &md5_hex(&file))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["asset_id"], form.asset_id.as_str());

    assert_eq!(
        emulator.stats(),
        Stats {
            issued: 1,
            uploaded: 1,
            registered: 1,
            rejected: 0,
            api_requests: 2,
            s3_requests: 1,
            faults_injected: 0,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );
    let registrations = emulator.registrations();
    assert_eq!(registrations.len(), 1);
    let registered = &registrations[0];
    assert_eq!(registered.asset_id, form.asset_id);
    assert_eq!(registered.key, form.key());
    assert_eq!(registered.filename, "holiday video.mp4");
    assert_eq!(registered.size, file.len() as u64);
    assert_eq!(registered.checksum, md5_hex(&file));
    assert_eq!(registered.upload_started_at.as_deref(), Some("2024-05-15T15:43:00Z"));
    assert_eq!(registered.service_data["app"], "spinlift-tests");

    // Registering the same asset again is refused, as the docs say.
    let again = register(&emulator, &registration(&form.asset_id, file.len(), &md5_hex(&file))).await;
    assert_eq!(api_error(again).await, (StatusCode::BAD_REQUEST, "ASSET_ID_EXISTS".into()));
    assert_eq!(emulator.registrations().len(), 1);
    assert_eq!(emulator.stats().rejected, 1);
}

/// Carriage returns everywhere make s3s 0.14.1 hold back the end of every piece of body it reads; it
/// then fails on the next piece if that one is over 64 KiB, as pieces read from a fast socket are.
#[tokio::test]
async fn a_file_of_carriage_returns_is_stored_intact() {
    let emulator = start().await;
    let file = vec![b'\r'; 8 * 1024 * 1024];
    let form = get_form(&emulator, "returns.bin").await;

    let response = upload(&form, &file).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{}", response.text().await.unwrap());
    assert!(emulator.read_object(form.key()).unwrap() == file);
}

#[tokio::test]
async fn an_empty_file_uploads_and_registers() {
    let emulator = start().await;
    let form = get_form(&emulator, "empty.txt").await;

    let response = upload(&form, b"").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(emulator.read_object(form.key()).unwrap(), b"");

    let response =
        register(&emulator, &registration(&form.asset_id, 0, "d41d8cd98f00b204e9800998ecf8427e")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.registrations()[0].size, 0);
}

#[tokio::test]
async fn several_files_land_side_by_side() {
    let emulator = start().await;
    let mut expected = Vec::new();
    for (i, size) in [1, 70_000, 1024 * 1024].into_iter().enumerate() {
        let file = random_bytes(size, 10 + i as u64);
        let form = get_form(&emulator, &format!("file-{i}.bin")).await;
        assert_eq!(upload(&form, &file).await.status(), StatusCode::NO_CONTENT);
        let response = register(&emulator, &registration(&form.asset_id, file.len(), &md5_hex(&file))).await;
        assert_eq!(response.status(), StatusCode::OK);
        expected.push((form.asset_id.clone(), form.key().to_owned(), file));
    }

    let registrations = emulator.registrations();
    let ids: Vec<&str> = registrations.iter().map(|r| r.asset_id.as_str()).collect();
    let expected_ids: Vec<&str> = expected.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, expected_ids, "registrations come back in order");
    for (_, key, file) in &expected {
        assert!(emulator.read_object(key).unwrap() == *file);
    }
}

#[tokio::test]
async fn a_separate_process_can_see_what_landed_over_http() {
    let emulator = start().await;
    let file = random_bytes(4096, 7);
    let form = get_form(&emulator, "photo.jpg").await;
    upload(&form, &file).await;
    register(&emulator, &registration(&form.asset_id, file.len(), &md5_hex(&file))).await;

    // No API key needed for the emulator's own views.
    let client = reqwest::Client::new();
    let stats: Stats = client
        .get(format!("{}/_emulator/stats", emulator.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, emulator.stats());
    assert_eq!(
        stats,
        Stats {
            issued: 1,
            uploaded: 1,
            registered: 1,
            rejected: 0,
            api_requests: 2,
            s3_requests: 1,
            faults_injected: 0,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );

    let registrations: Vec<spinlift_emulator::Registration> = client
        .get(format!("{}/_emulator/registrations", emulator.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registrations, emulator.registrations());

    let issued: Vec<spinlift_emulator::IssuedForm> = client
        .get(format!("{}/_emulator/issued", emulator.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issued, emulator.issued());
    assert_eq!(issued[0].filename, "photo.jpg");
}

#[tokio::test]
async fn a_stopped_emulator_answers_nothing() {
    let emulator = start().await;
    let api_url = emulator.api_url();
    let client = reqwest::Client::new();
    // A kept-alive connection to the API, opened before the stop.
    assert!(client.get(format!("{api_url}/_emulator/stats")).send().await.unwrap().status().is_success());

    emulator.shutdown().await;

    assert!(client.get(format!("{api_url}/_emulator/stats")).send().await.is_err());
    assert!(reqwest::get(format!("{api_url}/_emulator/stats")).await.is_err());
}

#[tokio::test]
async fn a_store_directory_of_ones_own_keeps_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_with(spinlift_emulator::EmulatorConfig {
        storage_dir: Some(dir.path().join("store")),
        ..Default::default()
    })
    .await;
    let form = get_form(&emulator, "kept.bin").await;
    upload(&form, b"kept").await;
    let path = emulator.object_path(form.key());
    assert!(path.starts_with(dir.path().canonicalize().unwrap()), "{}", path.display());
    emulator.shutdown().await;

    assert_eq!(std::fs::read(path).unwrap(), b"kept");
}

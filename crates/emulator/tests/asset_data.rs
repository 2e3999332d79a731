//! Get Data and Update Data, as the FileSpin docs describe them (developers.filespin.io: "Asset Data
//! Format", "Assets - Data", "Update Data", "Update with Higher Throughput"), driven over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spinlift_emulator::{AssetErrorRule, Emulator, EmulatorConfig, Endpoint, FaultConfig};

async fn start_tuned(tune: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::default();
    tune(&mut config);
    start_with(config).await
}

/// A `data` object whose compact JSON is exactly `chars` characters: `{"k":"<padding>"}`.
fn data_of_chars(chars: usize, pad: char) -> Value {
    let value: String = std::iter::repeat_n(pad, chars - r#"{"k":""}"#.len()).collect();
    let data = json!({ "k": value });
    assert_eq!(serde_json::to_string(&data).unwrap().chars().count(), chars);
    data
}

#[tokio::test]
async fn get_data_answers_in_the_asset_data_format() {
    let emulator = start().await;
    let file = random_bytes(4321, 1);
    let asset_id = register_file(&emulator, "photo.jpg", &file).await;

    let asset = asset_json(&emulator, &asset_id).await;
    assert_eq!(asset["id"], asset_id.as_str());
    assert_eq!(asset["status"], "OK");
    assert_eq!(asset["name"], "photo.jpg");
    assert_eq!(asset["size"], 4321);
    assert_eq!(asset["checksum"], md5_hex(&file).as_str());
    assert_eq!(asset["content_type"], "image/jpeg");
    for empty in ["metadata", "data", "conversions", "addons_info"] {
        assert_eq!(asset[empty], json!({}), "{empty}");
    }
    assert!(asset.get("message").is_none(), "no reason for an OK asset: {asset}");
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})));
    assert_eq!(emulator.asset_status(&asset_id), Some("OK"));

    let stats = emulator.stats();
    assert_eq!((stats.api_requests, stats.data_gets, stats.data_updates, stats.rejected), (3, 1, 0, 0));
    assert_eq!(emulator.request_times(Endpoint::AssetData).len(), 1);
}

#[tokio::test]
async fn an_asset_is_not_ready_while_it_is_being_saved_and_refuses_updates() {
    let emulator = start_tuned(|c| c.not_ready_for = Duration::from_secs(3600)).await;
    let asset_id = register_file(&emulator, "slow.bin", b"bytes").await;

    let asset = asset_json(&emulator, &asset_id).await;
    assert_eq!(asset["status"], "NOT_READY");
    assert_eq!((asset["size"].clone(), asset["name"].clone()), (json!(5), json!("slow.bin")));
    assert_eq!(emulator.asset_status(&asset_id), Some("NOT_READY"));

    let response =
        update_data(&emulator, &asset_id, &json!({"data": {"a": 1}, "mode": "APPEND"}), false).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "NOT_READY");
    assert!(body["message"].as_str().unwrap().contains("retry after a few seconds"), "{body}");
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})), "nothing was stored");

    // An update that can never succeed says so even while the asset is not ready.
    let response =
        update_data(&emulator, &asset_id, &json!({"data": {"_filespin_x": 1}, "mode": "APPEND"}), false)
            .await;
    assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST".into()));
}

/// `not_ready_for` after its registration an asset turns OK. Polled with a deadline; every answer is
/// checked against what the clock allows: NOT_READY is certain while less than `not_ready_for` has
/// passed since the registration was sent, and OK impossible before.
#[tokio::test]
async fn a_not_ready_asset_turns_ok_when_its_time_is_up() {
    let not_ready_for = Duration::from_millis(500);
    let emulator = start_tuned(|c| c.not_ready_for = not_ready_for).await;
    let form = get_form(&emulator, "later.bin").await;
    upload(&form, b"later").await;
    let sent = Instant::now();
    register(&emulator, &registration(&form.asset_id, 5, &md5_hex(b"later"))).await;

    let deadline = sent + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let status = asset_json(&emulator, &form.asset_id).await["status"].as_str().unwrap().to_owned();
        let elapsed = sent.elapsed();
        match status.as_str() {
            "NOT_READY" => assert!(Instant::now() < deadline, "still NOT_READY after {elapsed:?}"),
            "OK" => {
                assert!(elapsed >= not_ready_for, "OK after only {elapsed:?}");
                break;
            }
            other => panic!("status {other}"),
        }
        if elapsed < not_ready_for {
            // Not a guess: less than not_ready_for since the registration was sent.
            assert_eq!(status, "NOT_READY");
        }
        seen.push(status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response =
        update_data(&emulator, &form.asset_id, &json!({"data": {"a": 1}, "mode": "APPEND"}), false).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.asset_data(&form.asset_id), Some(json!({"a": 1})));
}

#[tokio::test]
async fn assets_named_like_an_error_rule_end_in_error_with_its_reason() {
    let emulator = start_tuned(|c| {
        c.asset_errors = vec![
            AssetErrorRule::new("*.corrupt", "not an image or a video"),
            AssetErrorRule::new("broken-*", "unsupported format"),
        ];
    })
    .await;
    // The first rule that matches decides.
    let bad = register_file(&emulator, "broken-7.corrupt", b"garbage").await;
    let other = register_file(&emulator, "broken-8.jpg", b"garbage").await;
    let good = register_file(&emulator, "scan-7.jpg", b"fine").await;

    let asset = asset_json(&emulator, &bad).await;
    assert_eq!(asset["status"], "ERROR");
    assert_eq!(asset["message"], "not an image or a video");
    assert_eq!(asset["size"], 7, "size and checksum stay as registered");
    assert_eq!(asset["checksum"], md5_hex(b"garbage").as_str());
    assert_eq!(emulator.asset_status(&bad), Some("ERROR"));
    assert_eq!(asset_json(&emulator, &other).await["message"], "unsupported format");
    let asset = asset_json(&emulator, &good).await;
    assert_eq!(asset["status"], "OK");
    assert!(asset.get("message").is_none());

    // An ERROR asset still takes data (the docs make only ARCHIVED read-only).
    let response = update_data(&emulator, &bad, &json!({"data": {"a": 1}, "mode": "APPEND"}), false).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.asset_data(&bad), Some(json!({"a": 1})));
}

#[tokio::test]
async fn an_empty_error_pattern_does_not_start() {
    let config =
        EmulatorConfig { asset_errors: vec![AssetErrorRule::new("", "why")], ..EmulatorConfig::default() };
    let error = Emulator::start(config).await.unwrap_err();
    assert!(error.to_string().contains("empty pattern"), "{error}");
}

/// The docs' own example: APPEND merges keys, a key sent overwrites its old value; REPLACE overwrites
/// the whole data.
#[tokio::test]
async fn append_merges_and_replace_overwrites_as_in_the_docs_example() {
    let emulator = start().await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let update = |body: Value| {
        let (emulator, asset_id) = (&emulator, &asset_id);
        async move {
            let response = update_data(emulator, asset_id, &body, false).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };

    update(json!({"data": {"myfield": "myvalue", "input1": "OLD-VALUE"}, "mode": "APPEND"})).await;
    let answer = update(json!({"data": {"input1": "NEW-VALUE", "input2": "value2"}, "mode": "APPEND"})).await;
    let appended = json!({"myfield": "myvalue", "input1": "NEW-VALUE", "input2": "value2"});
    assert_eq!(answer["data"], appended, "the answer is the asset, updated");
    assert_eq!(asset_json(&emulator, &asset_id).await["data"], appended);

    let replacement =
        json!({"input1": "value1", "input2": "value2", "filespin_search_txt": "MY_OWN_FILE_ID"});
    update(json!({"data": replacement, "mode": "REPLACE", "data_schema_id": 1})).await;
    let asset = asset_json(&emulator, &asset_id).await;
    assert_eq!(asset["data"], replacement);
    assert_eq!(asset["data_schema_id"], 1);
    assert_eq!(emulator.asset_data(&asset_id), Some(replacement));
    assert_eq!(emulator.stats().data_updates, 3);
}

/// "Maximum payload size is limited to 2000 characters": the characters of `data` as compact JSON.
#[tokio::test]
async fn data_of_2000_characters_is_taken_and_2001_refused() {
    let emulator = start().await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let send = |data: Value| {
        let (emulator, asset_id) = (&emulator, &asset_id);
        async move { update_data(emulator, asset_id, &json!({"data": data, "mode": "REPLACE"}), false).await }
    };

    assert_eq!(send(data_of_chars(2000, 'x')).await.status(), StatusCode::OK);
    // Characters, not bytes: 2000 characters of which most take two bytes in UTF-8.
    assert_eq!(send(data_of_chars(2000, 'é')).await.status(), StatusCode::OK);
    assert_eq!(emulator.asset_data(&asset_id), Some(data_of_chars(2000, 'é')));

    let response = send(data_of_chars(2001, 'x')).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "INVALID_REQUEST");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("2001") && message.contains("2000"), "{message}");
    assert_eq!(emulator.asset_data(&asset_id), Some(data_of_chars(2000, 'é')), "unchanged");
}

#[tokio::test]
async fn fields_beginning_with_filespin_are_refused_and_the_search_field_is_taken() {
    let emulator = start().await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    for data in [json!({"_filespin_ai": "x"}), json!({"ok": 1, "_filespin": 2})] {
        let response =
            update_data(&emulator, &asset_id, &json!({"data": data, "mode": "APPEND"}), false).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")));
        assert!(body["message"].as_str().unwrap().contains("_filespin"), "{body}");
    }
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})));

    let data = json!({"filespin_search_txt": "MY_OWN_FILE_ID", "note": {"_filespin_nested": "only top-level fields count"}});
    let response = update_data(&emulator, &asset_id, &json!({"data": data, "mode": "APPEND"}), false).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.asset_data(&asset_id), Some(data));
}

#[tokio::test]
async fn an_async_update_is_accepted_and_shows_at_once_by_default() {
    let emulator = start().await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let response =
        update_data(&emulator, &asset_id, &json!({"data": {"a": 1}, "mode": "APPEND"}), true).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(asset_json(&emulator, &asset_id).await["data"], json!({"a": 1}));

    for bad in ["maybe", "2"] {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/assets/{asset_id}/data/update?async={bad}", emulator.api_url()))
            .header("X-FileSpin-Api-Key", emulator.api_key())
            .json(&json!({"data": {"a": 2}, "mode": "APPEND"}))
            .send()
            .await
            .unwrap();
        assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST".into()));
    }
}

/// Eventually consistent: an async update shows after `async_update_delay`; a synchronous update applies
/// every update received before it first, in order.
#[tokio::test]
async fn async_updates_show_later_and_in_the_order_received() {
    let emulator = start_tuned(|c| c.async_update_delay = Duration::from_secs(3600)).await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let send = |body: Value, asynchronous| {
        let (emulator, asset_id) = (&emulator, &asset_id);
        async move { update_data(emulator, asset_id, &body, asynchronous).await }
    };

    let response = send(json!({"data": {"a": 1, "b": 1}, "mode": "REPLACE"}), true).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = send(json!({"data": {"b": 2}, "mode": "APPEND"}), true).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(asset_json(&emulator, &asset_id).await["data"], json!({}), "not visible yet");
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})));

    let response = send(json!({"data": {"c": 3}, "mode": "APPEND"}), false).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({"a": 1, "b": 2, "c": 3})));
}

#[tokio::test]
async fn a_short_async_delay_passes() {
    let delay = Duration::from_millis(200);
    let emulator = start_tuned(|c| c.async_update_delay = delay).await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let sent = Instant::now();
    let response =
        update_data(&emulator, &asset_id, &json!({"data": {"a": 1}, "mode": "APPEND"}), true).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let deadline = sent + Duration::from_secs(30);
    while emulator.asset_data(&asset_id) != Some(json!({"a": 1})) {
        assert!(Instant::now() < deadline, "the update never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sent.elapsed() >= delay, "shown after only {:?}", sent.elapsed());
}

#[tokio::test]
async fn update_bodies_are_checked_field_by_field() {
    let emulator = start().await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let cases = [
        (json!({"data": {"a": 1}}), "MISSING_MANDATORY_PARAMETERS"),
        (json!({"mode": "APPEND"}), "MISSING_MANDATORY_PARAMETERS"),
        (json!({"data": null, "mode": "APPEND"}), "MISSING_MANDATORY_PARAMETERS"),
        (json!({"data": {"a": 1}, "mode": "append"}), "INVALID_REQUEST"),
        (json!({"data": {"a": 1}, "mode": "MERGE"}), "INVALID_REQUEST"),
        (json!({"data": [1, 2], "mode": "APPEND"}), "INVALID_REQUEST"),
        (json!({"data": "text", "mode": "APPEND"}), "INVALID_REQUEST"),
        (json!({"data": {"a": 1}, "mode": "APPEND", "data_schema_id": "one"}), "INVALID_REQUEST"),
        (json!([{"data": {}, "mode": "APPEND"}]), "INVALID_REQUEST"),
    ];
    for (body, code) in cases {
        let response = update_data(&emulator, &asset_id, &body, false).await;
        assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, code.to_owned()), "{body}");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/assets/{asset_id}/data/update", emulator.api_url()))
        .header("X-FileSpin-Api-Key", emulator.api_key())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST".into()));
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})));
    let stats = emulator.stats();
    assert_eq!((stats.data_updates, stats.rejected), (10, 10), "every refusal is counted");
}

#[tokio::test]
async fn unknown_and_unregistered_assets_are_not_found() {
    let emulator = start().await;
    let issued = get_form(&emulator, "never-registered.bin").await.asset_id;
    for asset_id in ["ec279822540b412e903827f473bb53a3", issued.as_str()] {
        let response = get_data(&emulator, asset_id, emulator.api_key()).await;
        assert_eq!(api_error(response).await, (StatusCode::NOT_FOUND, "ASSET_NOT_FOUND".into()));
        let response = update_data(&emulator, asset_id, &json!({"data": {}, "mode": "APPEND"}), false).await;
        assert_eq!(api_error(response).await, (StatusCode::NOT_FOUND, "ASSET_NOT_FOUND".into()));
        assert_eq!(emulator.asset_data(asset_id), None);
    }
}

#[tokio::test]
async fn a_wrong_key_or_a_disabled_account_is_refused() {
    let emulator = start().await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let response = get_data(&emulator, &asset_id, "wrong-key").await;
    assert_eq!(api_error(response).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/assets/{asset_id}/data/update", emulator.api_url()))
        .header("X-FileSpin-Api-Key", "wrong-key")
        .json(&json!({"data": {"a": 1}, "mode": "APPEND"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api_error(response).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/assets/{asset_id}/data", emulator.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})));

    let disabled = start_tuned(|c| c.account_disabled = true).await;
    let response = get_data(&disabled, "ec279822540b412e903827f473bb53a3", disabled.api_key()).await;
    assert_eq!(api_error(response).await, (StatusCode::FORBIDDEN, "FORBIDDEN".into()));
}

#[tokio::test]
async fn faults_reach_the_data_endpoints_and_never_change_the_data() {
    let spec = "asset_data.5xx=1,update_data.5xx=1";
    let emulator = start_tuned(|c| c.faults = FaultConfig::parse(spec).unwrap()).await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let response = get_data(&emulator, &asset_id, emulator.api_key()).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    let response =
        update_data(&emulator, &asset_id, &json!({"data": {"a": 1}, "mode": "APPEND"}), false).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({})), "a refused update changes nothing");
    let stats = emulator.stats();
    assert_eq!((stats.faults_injected, stats.rejected, stats.data_gets, stats.data_updates), (2, 0, 1, 1));

    // A lost reply: the update is applied, the answer never comes.
    let emulator = start_tuned(|c| c.faults = FaultConfig::parse("update_data.lost_reply=1").unwrap()).await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    let result = reqwest::Client::new()
        .post(format!("{}/api/v1/assets/{asset_id}/data/update", emulator.api_url()))
        .header("X-FileSpin-Api-Key", emulator.api_key())
        .json(&json!({"data": {"a": 1}, "mode": "APPEND"}))
        .send()
        .await;
    assert!(result.is_err(), "the connection closes without an answer: {result:?}");
    assert_eq!(emulator.asset_data(&asset_id), Some(json!({"a": 1})));
}

#[tokio::test]
async fn the_api_scope_and_the_key_revocation_count_the_data_endpoints() {
    let config = FaultConfig::parse("api.429=0.5").unwrap();
    assert_eq!(config.asset_data, config.content_storage_url);
    assert_eq!(config.update_data, config.register_asset);
    assert_eq!(config.to_string(), "api.429=0.5");
    let config = FaultConfig::parse("api.429=0.5,update_data.429=0").unwrap();
    assert_eq!(
        config.to_string(),
        "content_storage_url.429=0.5,register_asset.429=0.5,asset_data.429=0.5",
        "written back scope by scope"
    );
    for spec in
        ["update_data.lost_reply=0.5,get_data.latency=3ms", "data_update.drop=1%,asset_data.retry_after=4"]
    {
        let config = FaultConfig::parse(spec).unwrap();
        assert_eq!(FaultConfig::parse(&config.to_string()).unwrap(), config, "{spec}");
    }

    // Three requests to register (form, upload on S3, register: two API requests), then Get Data twice.
    let emulator = start_tuned(|c| c.faults = FaultConfig::parse("key_invalid_after=3").unwrap()).await;
    let asset_id = register_file(&emulator, "a.bin", b"a").await;
    assert_eq!(get_data(&emulator, &asset_id, emulator.api_key()).await.status(), StatusCode::OK);
    assert_eq!(get_data(&emulator, &asset_id, emulator.api_key()).await.status(), StatusCode::UNAUTHORIZED);
}

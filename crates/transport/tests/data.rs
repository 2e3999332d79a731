//! The data calls — Get Data (`asset_data`) and Update Data (`update_asset_data`) — against the local
//! FileSpin emulator, and against scripted raw servers for the answers the emulator never gives (other
//! shapes of a NOT_READY refusal or of an ERROR reason, what goes on the wire).

mod support;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use spinlift_core::{Disposition, FailureKind, Step, classify};
use spinlift_emulator::AssetErrorRule;
use spinlift_transport::{
    AssetStatus, ClientConfig, DataUpdate, FileSpinClient, MAX_DATA_CHARS, RegisterOutcome, RegisterRequest,
    Secret, TransportError, UpdateMode, UpdateOutcome,
};
use support::{RawServer, client, emulator, read_body, read_head, respond};

/// Uploads and registers `bytes` as `name`: the asset id and the MD5.
async fn registered(client: &FileSpinClient, name: &str, bytes: &'static [u8]) -> (String, String) {
    let form = client.request_form(name).await.unwrap();
    let receipt = client.upload_reader(&form, bytes, bytes.len() as u64, name, &|_| {}).await.unwrap();
    let request = RegisterRequest::new(&form.asset_id, &receipt, Value::Null);
    assert_eq!(client.register(&request).await.unwrap(), RegisterOutcome::Registered);
    (form.asset_id, receipt.md5)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `{"k": "<padding>"}`, `chars` characters as compact JSON.
fn data_of_chars(chars: usize) -> Map<String, Value> {
    object(json!({ "k": "x".repeat(chars - r#"{"k":""}"#.len()) }))
}

fn expect_status(error: &TransportError, step: Step, status: u16, disposition: Disposition) {
    let failure = error.to_failure();
    assert_eq!(failure.step, step, "{error}");
    assert!(matches!(failure.kind, FailureKind::Status { status: s, .. } if s == status), "{error}");
    assert_eq!(classify(&failure), disposition, "{error}");
}

#[tokio::test]
async fn the_asset_is_read_back_and_its_data_appended_and_replaced() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let (asset_id, md5) = registered(&client, "photo.jpg", b"seven b").await;

    let asset = client.asset_data(&asset_id).await.unwrap();
    assert_eq!(asset.id, asset_id);
    assert_eq!(asset.status, AssetStatus::Ok);
    assert_eq!(asset.name.as_deref(), Some("photo.jpg"));
    assert_eq!((asset.size, asset.checksum.as_deref()), (Some(7), Some(md5.as_str())));
    assert!(asset.data.is_empty());
    assert_eq!(asset.reason, None);

    // "Update Data": the docs' APPEND and REPLACE examples.
    let first = DataUpdate::append(object(json!({"myfield": "myvalue", "input1": "OLD-VALUE"})));
    assert_eq!(client.update_asset_data(&asset_id, &first).await.unwrap(), UpdateOutcome::Applied);
    let second = DataUpdate::append(object(json!({"input1": "NEW-VALUE", "input2": "value2"})));
    assert_eq!(client.update_asset_data(&asset_id, &second).await.unwrap(), UpdateOutcome::Applied);
    let merged = json!({"myfield": "myvalue", "input1": "NEW-VALUE", "input2": "value2"});
    assert_eq!(Value::Object(client.asset_data(&asset_id).await.unwrap().data), merged);

    let mut replace = DataUpdate::replace(object(json!({"input1": "value1", "filespin_search_txt": "ID-7"})));
    replace.data_schema_id = Some(1);
    assert_eq!(client.update_asset_data(&asset_id, &replace).await.unwrap(), UpdateOutcome::Applied);
    let replaced = json!({"input1": "value1", "filespin_search_txt": "ID-7"});
    assert_eq!(Value::Object(client.asset_data(&asset_id).await.unwrap().data), replaced);
    assert_eq!(emu.asset_data(&asset_id), Some(replaced));

    // Two upload calls, three updates, three reads: every one counted on both sides.
    let stats = emu.stats();
    assert_eq!((stats.data_gets, stats.data_updates, stats.api_requests, stats.rejected), (3, 3, 8, 0));
    assert_eq!(client.stats().api_requests, 8);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_not_ready_asset_is_reported_and_its_update_refused_as_retryable() {
    let emu = emulator(|c| c.not_ready_for = Duration::from_secs(3600)).await;
    let client = client(&emu);
    let (asset_id, _) = registered(&client, "slow.bin", b"slow").await;

    assert_eq!(client.asset_data(&asset_id).await.unwrap().status, AssetStatus::NotReady);
    let error =
        client.update_asset_data(&asset_id, &DataUpdate::append(object(json!({"a": 1})))).await.unwrap_err();
    assert!(
        matches!(&error, TransportError::Status { step: Step::SetData, status: 400, code: Some(c), .. } if c == "NOT_READY"),
        "{error:?}"
    );
    assert_eq!(classify(&error.to_failure()), Disposition::Retry);
    assert!(error.is_retryable());
    assert_eq!(emu.asset_data(&asset_id), Some(json!({})));
    emu.shutdown().await;
}

/// The update an engine retries on NOT_READY goes through once the asset is OK. No guessing at the time:
/// each answer is checked against what the clock allows, and the loop has a deadline.
#[tokio::test]
async fn an_update_refused_as_not_ready_goes_through_once_the_asset_is_ok() {
    let not_ready_for = Duration::from_millis(400);
    let emu = emulator(|c| c.not_ready_for = not_ready_for).await;
    let client = client(&emu);
    let form = client.request_form("later.bin").await.unwrap();
    let receipt = client.upload_reader(&form, &b"later"[..], 5, "later.bin", &|_| {}).await.unwrap();
    let sent = Instant::now();
    client.register(&RegisterRequest::new(&form.asset_id, &receipt, Value::Null)).await.unwrap();

    let update = DataUpdate::append(object(json!({"batch": "2024-05"})));
    let deadline = sent + Duration::from_secs(30);
    let mut refusals = 0;
    loop {
        let result = client.update_asset_data(&form.asset_id, &update).await;
        let elapsed = sent.elapsed();
        match result {
            Ok(outcome) => {
                assert_eq!(outcome, UpdateOutcome::Applied);
                assert!(elapsed >= not_ready_for, "applied after only {elapsed:?}");
                break;
            }
            Err(error) => {
                assert_eq!(error.code(), Some("NOT_READY"), "{error}");
                assert!(error.is_retryable());
                assert!(Instant::now() < deadline, "still NOT_READY after {elapsed:?}");
                refusals += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{refusals} NOT_READY refusals before the update went through");
    let asset = client.asset_data(&form.asset_id).await.unwrap();
    assert_eq!(asset.status, AssetStatus::Ok);
    assert_eq!(Value::Object(asset.data), json!({"batch": "2024-05"}));
    emu.shutdown().await;
}

#[tokio::test]
async fn an_asset_in_error_carries_its_reason() {
    let emu =
        emulator(|c| c.asset_errors = vec![AssetErrorRule::new("*.corrupt", "not an image or a video")])
            .await;
    let client = client(&emu);
    let (bad, md5) = registered(&client, "scan.corrupt", b"garbage").await;
    let (good, _) = registered(&client, "scan.jpg", b"fine").await;

    let asset = client.asset_data(&bad).await.unwrap();
    assert_eq!(asset.status, AssetStatus::Error);
    assert_eq!(asset.reason.as_deref(), Some("not an image or a video"));
    assert_eq!((asset.size, asset.checksum), (Some(7), Some(md5)));
    let asset = client.asset_data(&good).await.unwrap();
    assert_eq!((asset.status, asset.reason), (AssetStatus::Ok, None));
    emu.shutdown().await;
}

/// At most 2,000 characters: counted as `DataUpdate::data_chars` counts them.
#[tokio::test]
async fn data_of_2000_characters_is_applied_and_2001_fails_the_asset() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let (asset_id, _) = registered(&client, "a.bin", b"a").await;

    let fits = DataUpdate::replace(data_of_chars(MAX_DATA_CHARS));
    assert_eq!(fits.data_chars(), 2000);
    assert_eq!(client.update_asset_data(&asset_id, &fits).await.unwrap(), UpdateOutcome::Applied);

    let over = DataUpdate::replace(data_of_chars(MAX_DATA_CHARS + 1));
    assert_eq!(over.data_chars(), 2001);
    let error = client.update_asset_data(&asset_id, &over).await.unwrap_err();
    expect_status(&error, Step::SetData, 400, Disposition::FailAsset);
    assert!(error.to_string().contains("2001"), "{error}");
    assert!(!error.to_string().contains("xxxxxxxx"), "the data is not echoed: {error}");
    assert_eq!(emu.asset_data(&asset_id), Some(Value::Object(fits.data)));
    emu.shutdown().await;
}

#[tokio::test]
async fn a_reserved_filespin_field_fails_the_asset() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let (asset_id, _) = registered(&client, "a.bin", b"a").await;
    let update = DataUpdate::append(object(json!({"_filespin_ai": "mine"})));
    let error = client.update_asset_data(&asset_id, &update).await.unwrap_err();
    expect_status(&error, Step::SetData, 400, Disposition::FailAsset);
    assert!(error.to_string().contains("_filespin"), "{error}");
    emu.shutdown().await;
}

#[tokio::test]
async fn an_async_update_is_accepted_and_applied_eventually() {
    let emu = emulator(|c| c.async_update_delay = Duration::from_secs(3600)).await;
    let client = client(&emu);
    let (asset_id, _) = registered(&client, "a.bin", b"a").await;
    let mut update = DataUpdate::append(object(json!({"a": 1})));
    update.asynchronous = true;
    assert_eq!(client.update_asset_data(&asset_id, &update).await.unwrap(), UpdateOutcome::Accepted);
    assert!(client.asset_data(&asset_id).await.unwrap().data.is_empty(), "not visible yet");

    // A synchronous update applies the earlier one first.
    let sync = DataUpdate::append(object(json!({"b": 2})));
    assert_eq!(client.update_asset_data(&asset_id, &sync).await.unwrap(), UpdateOutcome::Applied);
    assert_eq!(Value::Object(client.asset_data(&asset_id).await.unwrap().data), json!({"a": 1, "b": 2}));
    emu.shutdown().await;
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_that_fails_the_asset() {
    let emu = emulator(|_| {}).await;
    let client = client(&emu);
    let unknown = "ec279822540b412e903827f473bb53a3";
    let error = client.asset_data(unknown).await.unwrap_err();
    expect_status(&error, Step::Verify, 404, Disposition::FailAsset);
    let error = client.update_asset_data(unknown, &DataUpdate::append(Map::new())).await.unwrap_err();
    expect_status(&error, Step::SetData, 404, Disposition::FailAsset);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_a_401_that_stops_the_batch_and_is_never_printed() {
    let emu = emulator(|_| {}).await;
    let (asset_id, _) = registered(&client(&emu), "a.bin", b"a").await;
    let wrong = "wrong-key-0b5e55ed";
    let client = FileSpinClient::new(ClientConfig::new(emu.api_url(), Secret::new(wrong))).unwrap();
    let update = DataUpdate::append(object(json!({"secret-field": "private value"})));
    let errors = [
        (client.asset_data(&asset_id).await.unwrap_err(), Step::Verify),
        (client.update_asset_data(&asset_id, &update).await.unwrap_err(), Step::SetData),
    ];
    for (error, step) in errors {
        expect_status(&error, step, 401, Disposition::StopBatch);
        let failure = error.to_failure();
        for text in [error.to_string(), format!("{error:?}"), failure.to_string(), format!("{failure:?}")] {
            assert!(!text.contains(wrong) && !text.contains(emu.api_key()), "{text}");
            assert!(!text.contains("private value"), "{text}");
        }
    }
    let shown = format!("{client:?} {update:?}");
    assert!(!shown.contains(wrong) && !shown.contains("private value"), "{shown}");
    assert_eq!(emu.asset_data(&asset_id), Some(json!({})));
    emu.shutdown().await;
}

/// The data calls take the API rate limit like the upload calls: 12 reads at 10/s (a burst of two, then
/// one every 100 ms) take at least a second. A lower bound only, in real time.
#[tokio::test]
async fn the_data_calls_count_against_the_api_rate() {
    let emu = emulator(|_| {}).await;
    let (asset_id, _) = registered(&client(&emu), "a.bin", b"a").await;
    let mut config = ClientConfig::new(emu.api_url(), Secret::new(emu.api_key()));
    config.api_rps = NonZeroU32::new(10);
    let client = FileSpinClient::new(config).unwrap();
    let started = Instant::now();
    for i in 0..12 {
        if i % 2 == 0 {
            client.asset_data(&asset_id).await.unwrap();
        } else {
            client.update_asset_data(&asset_id, &DataUpdate::append(object(json!({"i": i})))).await.unwrap();
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
    assert_eq!(client.stats().api_requests, 12);
    emu.shutdown().await;
}

/// A request as the raw server saw it: head and body.
type Seen = Arc<Mutex<Vec<(support::Head, Vec<u8>)>>>;

/// A server that records every request and answers each with `status` and `body`.
async fn recording(status: &'static str, body: &'static str) -> (RawServer, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let server = RawServer::start(move |mut stream| {
        let recorded = recorded.clone();
        async move {
            while let Ok(head) = read_head(&mut stream).await {
                let Ok(request_body) = read_body(&mut stream, &head).await else { return };
                recorded.lock().unwrap().push((head, request_body));
                let headers = [("content-type", "application/json")];
                if respond(&mut stream, status, &headers, body.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (server, seen)
}

const KEY: &str = "raw-key-4a7d1c";

fn raw_client(server: &RawServer) -> FileSpinClient {
    FileSpinClient::new(ClientConfig::new(server.url(), Secret::new(KEY))).unwrap()
}

#[tokio::test]
async fn the_update_goes_on_the_wire_as_documented() {
    let (server, seen) = recording("202 Accepted", "").await;
    let client = raw_client(&server);
    let mut update = DataUpdate::append(object(json!({"input1": "value1", "filespin_search_txt": "ID"})));
    update.mode = UpdateMode::Replace;
    update.data_schema_id = Some(3);
    update.asynchronous = true;
    assert_eq!(client.update_asset_data("abc123", &update).await.unwrap(), UpdateOutcome::Accepted);
    update.asynchronous = false;
    assert_eq!(client.update_asset_data("abc123", &update).await.unwrap(), UpdateOutcome::Accepted);
    assert_eq!(client.asset_data("abc123").await.unwrap_err().step(), Step::Verify, "an empty body");

    let seen = seen.lock().unwrap();
    let (head, body) = &seen[0];
    assert_eq!(head.request_line, "POST /api/v1/assets/abc123/data/update?async=1 HTTP/1.1");
    assert_eq!(head.header("x-filespin-api-key"), Some(KEY));
    assert_eq!(head.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        body,
        json!({"data": {"input1": "value1", "filespin_search_txt": "ID"}, "mode": "REPLACE", "data_schema_id": 3})
    );
    assert_eq!(seen[1].0.request_line, "POST /api/v1/assets/abc123/data/update HTTP/1.1");
    assert_eq!(seen[2].0.request_line, "GET /api/v1/assets/abc123/data HTTP/1.1");
    assert_eq!(seen[2].0.header("x-filespin-api-key"), Some(KEY));
}

#[tokio::test]
async fn any_2xx_but_202_is_applied() {
    for status in ["200 OK", "201 Created", "204 No Content"] {
        let (server, _) = recording(status, "").await;
        let outcome = raw_client(&server).update_asset_data("a", &DataUpdate::append(Map::new())).await;
        assert_eq!(outcome.unwrap(), UpdateOutcome::Applied, "{status}");
    }
}

/// The docs give NOT_READY's status (400) but not its body: whatever the shape, a 400 that says so is
/// `NOT_READY`, which core retries; another 400 is not.
#[tokio::test]
async fn a_not_ready_refusal_is_recognised_whatever_its_shape() {
    let shapes = [
        r#"{"error": "NOT_READY", "message": "retry after a few seconds"}"#,
        r#"{"error": "BAD_REQUEST", "message": "Asset is NOT_READY"}"#,
        r#"{"code": 400, "detail": "Asset not ready, retry after a few seconds"}"#,
        r#"{"status": "NOT_READY"}"#,
        "Asset is in-flight to Storage, please retry",
    ];
    for body in shapes {
        let (server, _) = recording("400 Bad Request", body).await;
        let error =
            raw_client(&server).update_asset_data("a", &DataUpdate::append(Map::new())).await.unwrap_err();
        assert_eq!(error.code(), Some("NOT_READY"), "{body}: {error}");
        assert_eq!(error.status(), Some(400));
        assert_eq!(classify(&error.to_failure()), Disposition::Retry, "{body}");
    }
    let (server, _) =
        recording("400 Bad Request", r#"{"error": "INVALID_REQUEST", "message": "bad mode"}"#).await;
    let error =
        raw_client(&server).update_asset_data("a", &DataUpdate::append(Map::new())).await.unwrap_err();
    assert_eq!(error.code(), Some("INVALID_REQUEST"));
    assert_eq!(classify(&error.to_failure()), Disposition::FailAsset);
    // NOT_READY is FileSpin's 400; a 409 saying so is left as it is.
    let (server, _) = recording("409 Conflict", r#"{"message": "not ready"}"#).await;
    let error =
        raw_client(&server).update_asset_data("a", &DataUpdate::append(Map::new())).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(409), None));
}

#[tokio::test]
async fn get_data_reads_other_shapes_and_refuses_what_is_not_asset_data() {
    let (server, _) = recording(
        "200 OK",
        r#"{"id": "a", "status": "ERROR", "error": {"message": "bad file for raw-key-4a7d1c"},
            "size": 3, "checksum": "ABC", "data": null, "new_field": true}"#,
    )
    .await;
    let asset = raw_client(&server).asset_data("a").await.unwrap();
    assert_eq!(asset.status, AssetStatus::Error);
    assert_eq!(asset.reason.as_deref(), Some("bad file for REDACTED"), "scrubbed of the key");
    assert_eq!((asset.size, asset.checksum.as_deref()), (Some(3), Some("abc")));
    assert!(asset.data.is_empty());

    let (server, _) = recording("200 OK", r#"{"id": "a", "status": "SOMETHING_NEW"}"#).await;
    let asset = raw_client(&server).asset_data("a").await.unwrap();
    assert_eq!(asset.status, AssetStatus::Other("SOMETHING_NEW".into()));

    let (server, _) = recording("200 OK", "<html>maintenance</html>").await;
    let error = raw_client(&server).asset_data("a").await.unwrap_err();
    assert!(matches!(error, TransportError::InvalidResponse { step: Step::Verify, .. }), "{error:?}");
    assert!(error.is_retryable());

    // A 403 from Get Data is an account problem to core, like at any API step.
    let (server, _) = recording("403 Forbidden", r#"{"error": "FORBIDDEN"}"#).await;
    let error = raw_client(&server).asset_data("a").await.unwrap_err();
    expect_status(&error, Step::Verify, 403, Disposition::StopBatch);
}

//! What the tests share: a client's side of the three steps, written from the docs, not from the emulator.
#![allow(dead_code, unreachable_pub)]

use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spinlift_emulator::{Emulator, EmulatorConfig};

pub const BOUNDARY: &str = "----spinlift-test-boundary-5b1f0c7e";

pub async fn start() -> Emulator {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("the emulator starts")
}

/// `n` random bytes, the same for the same seed.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; n];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// A form as `content_storage_url` hands it out.
#[derive(Debug, Clone)]
pub struct Form {
    pub asset_id: String,
    pub url: String,
    /// `storage.fields`, in the order received.
    pub fields: Vec<(String, String)>,
    pub json: Value,
}

impl Form {
    pub fn field(&self, name: &str) -> &str {
        &self.fields.iter().find(|(n, _)| n == name).expect("the field is in the form").1
    }

    pub fn set_field(&mut self, name: &str, value: &str) {
        self.fields.iter_mut().find(|(n, _)| n == name).expect("the field is in the form").1 =
            value.to_owned();
    }

    pub fn key(&self) -> &str {
        self.field("key")
    }
}

pub async fn get_form(emulator: &Emulator, filename: &str) -> Form {
    let response = get_storage_url(emulator, &[("filename", filename)], Some(emulator.api_key())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json: Value = response.json().await.unwrap();
    let fields = json["storage"]["fields"]
        .as_object()
        .expect("storage.fields is an object")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().expect("fields are strings").to_owned()))
        .collect();
    Form {
        asset_id: json["asset_id"].as_str().unwrap().to_owned(),
        url: json["storage"]["url"].as_str().unwrap().to_owned(),
        fields,
        json,
    }
}

pub async fn get_storage_url(
    emulator: &Emulator,
    query: &[(&str, &str)],
    api_key: Option<&str>,
) -> reqwest::Response {
    let url = format!("{}/api/v1/assets/new/content_storage_url", emulator.api_url());
    let url = reqwest::Url::parse_with_params(&url, query).unwrap();
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = api_key {
        request = request.header("X-FileSpin-Api-Key", key);
    }
    request.send().await.unwrap()
}

/// A multipart/form-data body: every field, then the file last as field `file`.
pub fn multipart(fields: &[(String, String)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(file.len() + 4096);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// POSTs `file` to S3 with the form's fields.
pub async fn upload(form: &Form, file: &[u8]) -> reqwest::Response {
    reqwest::Client::new()
        .post(&form.url)
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart(&form.fields, "upload.bin", file))
        .send()
        .await
        .unwrap()
}

pub async fn register(emulator: &Emulator, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/assets/new/register_asset", emulator.api_url()))
        .header("X-FileSpin-Api-Key", emulator.api_key())
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A register_asset body as the docs' example has it.
pub fn registration(asset_id: &str, size: usize, checksum: &str) -> Value {
    json!({
        "asset_id": asset_id,
        "size": size,
        "checksum": checksum,
        "upload_time": "2024-05-15T15:43:02Z",
        "upload_started_at": "2024-05-15T15:43:00Z",
        "upload_completed_at": "2024-05-15T15:43:02Z",
        "service_data": { "app": "spinlift-tests" },
    })
}

/// An API error's status and `error` code.
pub async fn api_error(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("API errors are JSON");
    assert!(body["message"].is_string(), "{body}");
    (status, body["error"].as_str().expect("API errors carry a code").to_owned())
}

/// An S3 error's status and `<Code>`.
pub async fn s3_error(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let xml = response.text().await.unwrap();
    let code = xml
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| panic!("no <Code> in {xml:?}"));
    (status, code)
}

/// The three steps for `file` under `filename`: the asset id, registered.
pub async fn register_file(emulator: &Emulator, filename: &str, file: &[u8]) -> String {
    let form = get_form(emulator, filename).await;
    assert_eq!(upload(&form, file).await.status(), StatusCode::NO_CONTENT);
    let response = register(emulator, &registration(&form.asset_id, file.len(), &md5_hex(file))).await;
    assert_eq!(response.status(), StatusCode::OK);
    form.asset_id
}

/// Get Data: `GET /api/v1/assets/{id}/data` with `api_key`.
pub async fn get_data(emulator: &Emulator, asset_id: &str, api_key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/v1/assets/{asset_id}/data", emulator.api_url()))
        .header("X-FileSpin-Api-Key", api_key)
        .send()
        .await
        .unwrap()
}

/// Get Data answered 200: the asset's JSON.
pub async fn asset_json(emulator: &Emulator, asset_id: &str) -> Value {
    let response = get_data(emulator, asset_id, emulator.api_key()).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Update Data: `POST /api/v1/assets/{id}/data/update[?async=1]` with the emulator's key.
pub async fn update_data(
    emulator: &Emulator,
    asset_id: &str,
    body: &Value,
    asynchronous: bool,
) -> reqwest::Response {
    let query = if asynchronous { "?async=1" } else { "" };
    reqwest::Client::new()
        .post(format!("{}/api/v1/assets/{asset_id}/data/update{query}", emulator.api_url()))
        .header("X-FileSpin-Api-Key", emulator.api_key())
        .json(body)
        .send()
        .await
        .unwrap()
}

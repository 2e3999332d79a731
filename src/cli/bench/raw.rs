//! The reference client of `spinlift bench`: FileSpin's three requests per file and nothing else — no
//! journal, no retries, no rate limits, no progress — so that spinlift's figures can be given as a
//! fraction of what the same machine, network and server allow.
//!
//! It streams each file in 256 KiB chunks with its MD5 computed in the same pass (as a careful
//! hand-written uploader would), with the same number of files in flight as spinlift.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use md5::{Digest, Md5};
use spinlift::Manifest;
use tokio_util::io::ReaderStream;

use super::worker::Outcome;

/// The answer of `content_storage_url`, as much of it as an upload needs.
#[derive(serde::Deserialize)]
struct Answer {
    asset_id: String,
    storage: Storage,
}

#[derive(serde::Deserialize)]
struct Storage {
    url: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// One file, three requests; the first failure ends it.
async fn upload_one(
    http: &reqwest::Client,
    api_url: &str,
    api_key: &str,
    path: std::path::PathBuf,
    filename: &str,
) -> Result<u64, String> {
    let url = url::Url::parse_with_params(
        &format!("{api_url}/api/v1/assets/new/content_storage_url"),
        [("filename", filename)],
    )
    .map_err(|e| e.to_string())?;
    let answer: Answer = http
        .get(url)
        .header("X-FileSpin-Api-Key", api_key)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;

    let boundary = format!("spinlift-raw-{}", answer.asset_id);
    let mut head = String::new();
    for (name, value) in &answer.storage.fields {
        let value = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        head +=
            &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
    }
    head += &format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let framing = (head.len() + tail.len()) as u64;
    let file = tokio::fs::File::open(&path).await.map_err(|e| e.to_string())?;
    let size = file.metadata().await.map_err(|e| e.to_string())?.len();
    let md5 = Arc::new(Mutex::new(Md5::new()));
    let hashing = md5.clone();
    let chunks = ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            hashing.lock().expect("not poisoned").update(bytes);
        }
        chunk
    });
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(head)) })
        .chain(chunks)
        .chain(futures::stream::once(async move { Ok(bytes::Bytes::from(tail)) }));
    let length = framing + size;
    let started = time::OffsetDateTime::now_utc();
    http.post(&answer.storage.url)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .header("Content-Length", length)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    let completed = time::OffsetDateTime::now_utc();
    let checksum = hex::encode(std::mem::take(&mut *md5.lock().expect("not poisoned")).finalize());

    http.post(format!("{api_url}/api/v1/assets/new/register_asset"))
        .header("X-FileSpin-Api-Key", api_key)
        .json(&serde_json::json!({
            "asset_id": answer.asset_id,
            "size": size,
            "checksum": checksum,
            "upload_time": rfc3339(completed),
            "upload_started_at": rfc3339(started),
            "upload_completed_at": rfc3339(completed),
            "service_data": {"app": "spinlift-bench-raw"},
        }))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    Ok(size)
}

/// Uploads every entry of `manifest`, `concurrency` at a time.
pub(crate) async fn run(manifest: &Manifest, api_url: &str, api_key: &str, concurrency: usize) -> Outcome {
    let http = reqwest::Client::builder().build().expect("a default client builds");
    let api_url = api_url.trim_end_matches('/');
    let started = Instant::now();
    let results: Vec<(Result<u64, String>, f64)> = futures::stream::iter(0..manifest.entries.len())
        .map(|i| {
            let entry = manifest.entries.at(i);
            let http = &http;
            async move {
                let t = Instant::now();
                let path = manifest.root.join(entry.path());
                let result = upload_one(http, api_url, api_key, path, entry.filename()).await;
                (result, t.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut outcome = Outcome { elapsed_s: elapsed, ..Outcome::default() };
    for (result, ms) in results {
        match result {
            Ok(size) => {
                outcome.files += 1;
                outcome.bytes += size;
                outcome.latencies_ms.push(ms);
            }
            Err(e) => {
                outcome.failed += 1;
                if outcome.first_error.is_none() {
                    outcome.first_error = Some(e);
                }
            }
        }
    }
    outcome
}

//! Against the real FileSpin API: upload, register and read back one small file.
//!
//! Skipped unless `SPINLIFT_LIVE_API_KEY` is set (object_store gates its integration tests the same
//! way); `SPINLIFT_LIVE_API_URL` overrides `https://app.filespin.io`.

mod common;

use common::{read_report, stderr_of};

#[test]
fn one_small_file_reaches_the_real_filespin() {
    let Ok(key) = std::env::var("SPINLIFT_LIVE_API_KEY") else {
        eprintln!("skipped: set SPINLIFT_LIVE_API_KEY to run against the real FileSpin API");
        return;
    };
    let api_url = std::env::var("SPINLIFT_LIVE_API_URL").unwrap_or_else(|_| "https://app.filespin.io".into());
    let dir = tempfile::tempdir().unwrap();
    let body = format!("spinlift live test {}\n", std::process::id());
    std::fs::write(dir.path().join("spinlift-live-test.txt"), &body).unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, r#"{"version": 1, "assets": [{"path": "spinlift-live-test.txt"}]}"#).unwrap();
    let report = dir.path().join("report.jsonl");

    let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_spinlift"))
        .env("FILESPIN_API_URL", &api_url)
        .env("FILESPIN_API_KEY", &key)
        .args(["run", "-q", "--verify", "--batch", "spinlift-live-test", "--report"])
        .arg(&report)
        .arg(&manifest)
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(!stderr.contains(&key), "the key leaked");
    let line = &read_report(&report)[0];
    // FileSpin processes images and videos; whether it ends a text file in OK or in ERROR ("not an image
    // or a video", "Asset Data Format") is not documented: either is a final status, reported as such.
    match line["filespin_status"].as_str() {
        Some("OK") => {
            assert_eq!(output.status.code(), Some(0), "{stderr}");
            assert_eq!(line["status"], "registered");
            assert_eq!(line["size"], body.len());
        }
        Some("ERROR") => {
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            assert!(line["error"].as_str().unwrap().contains("status ERROR"), "{line}");
        }
        other => panic!("verification did not reach a final status: {other:?} ({line}; {stderr})"),
    }
    assert_eq!(line["metadata_set"], true, "the tag was set: {line}");

    // FileSpin's own record of the asset (developers.filespin.io, "Assets - Data"): the checksum it
    // holds is the MD5 we sent. Processing may still be under way (status NOT_READY).
    let asset_id = line["asset_id"].as_str().unwrap();
    let data: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{api_url}/api/v1/assets/{asset_id}/data"))
        .header("X-FileSpin-Api-Key", &key)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("asset data readable");
    assert_eq!(data["id"], asset_id);
    let tag = data["data"]["filespin_search_txt"].as_str().unwrap_or_default();
    assert!(tag.contains("spinlift-live-test.txt") && tag.contains("spinlift-live-test"), "{data}");
    if let Some(checksum) = data.get("checksum").and_then(|c| c.as_str()) {
        assert_eq!(checksum, line["checksum"].as_str().unwrap());
    }
}

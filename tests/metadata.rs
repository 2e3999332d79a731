//! A complete migration: each file arrives with its metadata and a tag that finds it again by its
//! old-system id, and `--verify` proves that FileSpin processed it and holds the same bytes.

mod common;

use std::time::{Duration, Instant};

use common::{LocalFileSpin, read_report, stderr_of};
use serde_json::{Value, json};
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift_emulator::{AssetErrorRule, EmulatorConfig};

/// A FileSpin whose assets stay NOT_READY for `not_ready` after registration, and end in ERROR when
/// their file name contains `error_when` (the rest OK).
fn filespin(not_ready: Duration, error_when: Option<&str>) -> LocalFileSpin {
    let asset_errors = error_when
        .map(|part| vec![AssetErrorRule::new(format!("*{part}*"), "not an image or a video")])
        .unwrap_or_default();
    LocalFileSpin::with(EmulatorConfig {
        not_ready_for: not_ready,
        asset_errors,
        ..EmulatorConfig::default()
    })
}

/// The sample set's manifest rewritten with `data` on every entry: a title and the legacy id.
fn with_metadata(set: &SampleSet) -> Vec<Value> {
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&set.manifest).unwrap()).unwrap();
    let mut data = Vec::new();
    for (i, asset) in manifest["assets"].as_array_mut().unwrap().iter_mut().enumerate() {
        let entry_data = json!({"title": format!("Photo {i}"), "legacy_id": i, "rights": {"owner": "ACME"}});
        asset["data"] = entry_data.clone();
        data.push(entry_data);
    }
    std::fs::write(&set.manifest, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    data
}

fn data_of(filespin: &LocalFileSpin, asset_id: &str) -> Value {
    filespin.emulator.asset_data(asset_id).unwrap_or_else(|| panic!("no data for asset {asset_id}"))
}

#[test]
fn every_asset_gets_its_entrys_data_and_the_tag_that_finds_it_again() {
    let filespin = filespin(Duration::from_millis(200), None);
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(30, 11)).unwrap();
    let data = with_metadata(&set);
    let report = dir.path().join("report.jsonl");
    let output = filespin
        .spinlift()
        .args(["run", "-q", "--batch", "spring-import", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("30 registered (30 with their data set"), "{}", stderr_of(&output));
    for ((file, line), expected) in set.files.iter().zip(read_report(&report)).zip(&data) {
        assert_eq!(line["metadata_set"], true, "{line}");
        let mut expected = expected.clone();
        expected["filespin_search_txt"] = json!(format!("{} spring-import", file.id));
        assert_eq!(data_of(&filespin, line["asset_id"].as_str().unwrap()), expected, "{}", file.path);
    }
}

#[test]
fn verification_fails_what_filespin_could_not_process_with_its_reason_and_passes_the_rest() {
    let filespin = filespin(Duration::from_millis(300), Some("00003"));
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(12, 5)).unwrap();
    let report = dir.path().join("report.jsonl");
    let output = filespin
        .spinlift()
        .args(["run", "-q", "--verify", "--no-tag", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let lines = read_report(&report);
    let broken: Vec<_> =
        set.files.iter().filter(|f| f.path.contains("00003")).map(|f| f.id.clone()).collect();
    assert!(!broken.is_empty(), "the sample has a file named like 00003");
    for (file, line) in set.files.iter().zip(&lines) {
        if broken.contains(&file.id) {
            assert_eq!(line["status"], "failed", "{line}");
            assert_eq!(line["filespin_status"], "ERROR", "{line}");
            let error = line["error"].as_str().unwrap();
            assert!(error.contains("status ERROR") && error.contains("not an image or a video"), "{line}");
        } else {
            assert_eq!(line["status"], "registered", "{line}");
            assert_eq!(line["filespin_status"], "OK", "{line}");
            assert_eq!(
                (line["size"].as_u64(), line["checksum"].as_str()),
                (Some(file.size), Some(file.md5.as_str()))
            );
        }
    }
    // Retried without --verify, a verification that failed is verified again, not reported registered.
    let uploads = filespin.emulator.stats().uploaded;
    let retried = filespin
        .spinlift()
        .args(["run", "-q", "--no-tag", "--retry-failed"])
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(retried.status.code(), Some(1), "{}", stderr_of(&retried));
    assert!(stderr_of(&retried).contains("status ERROR"), "{}", stderr_of(&retried));
    assert_eq!(filespin.emulator.stats().uploaded, uploads, "nothing uploaded again");
    // `status` counts the verified and the processing failures apart.
    let status = filespin.spinlift().arg("status").arg(&set.manifest).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    let ok = set.files.len() - broken.len();
    assert!(text.contains(&format!("{ok} verified; of the failed: {}", broken.len())), "{text}");
}

#[test]
fn kill_9_while_verifying_resumes_without_uploading_anything_again() {
    let filespin = filespin(Duration::from_millis(1500), None);
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(20, 9)).unwrap();
    with_metadata(&set);
    let mut child =
        filespin.spinlift_process().args(["run", "--quiet", "--verify"]).arg(&set.manifest).spawn().unwrap();
    // Killed once every file is registered, while FileSpin still processes them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while filespin.emulator.stats().registered < set.files.len() as u64 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before every file was registered");
        assert!(Instant::now() < deadline, "no progress for a minute");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run finished before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
    let uploads = filespin.emulator.stats().uploaded;

    let report = dir.path().join("report.jsonl");
    let output = filespin
        .spinlift()
        .args(["run", "-q", "--verify", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stats = filespin.emulator.stats();
    assert_eq!(
        (stats.uploaded, stats.registered),
        (uploads, set.files.len() as u64),
        "nothing uploaded again"
    );
    for line in read_report(&report) {
        assert_eq!(
            (line["filespin_status"].as_str(), line["metadata_set"].as_bool()),
            (Some("OK"), Some(true)),
            "{line}"
        );
    }
}

#[test]
fn bad_metadata_stops_the_run_naming_the_entry_before_anything_is_uploaded() {
    let filespin = filespin(Duration::ZERO, None);
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(3, 2)).unwrap();
    let original = std::fs::read(&set.manifest).unwrap();
    for (bad, expected) in [
        (json!(["not", "an", "object"]), "must be a JSON object"),
        (json!({"title": "x".repeat(2100)}), "at most 2000"),
        (json!({"_filespin_owner": "me"}), "reserved by FileSpin"),
    ] {
        let mut manifest: Value = serde_json::from_slice(&original).unwrap();
        manifest["assets"][1]["data"] = bad;
        std::fs::write(&set.manifest, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let output = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        let err = stderr_of(&output);
        assert!(err.contains(expected) && err.contains("assets[1]"), "{err}");
    }
    // An id so long that the tag alone is over FileSpin's limit: refused up front too, saying how out.
    let mut manifest: Value = serde_json::from_slice(&original).unwrap();
    manifest["assets"][2]["id"] = json!("x".repeat(2100));
    std::fs::write(&set.manifest, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let output = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("--no-tag"), "{}", stderr_of(&output));
    assert_eq!(filespin.emulator.stats().issued, 0, "no upload form was asked for");
}

#[test]
fn verify_checks_a_finished_batch_and_uploads_nothing() {
    let filespin = filespin(Duration::from_millis(100), None);
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(10, 4)).unwrap();
    let output = filespin.spinlift().args(["run", "-q", "--no-tag"]).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let uploads = filespin.emulator.stats().uploaded;
    let report = dir.path().join("report.jsonl");
    let output = filespin
        .spinlift()
        .args(["verify", "-q", "--no-tag", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(filespin.emulator.stats().uploaded, uploads);
    assert!(read_report(&report).iter().all(|l| l["filespin_status"] == "OK"));
}

//! Runs that must not start, or must stop batch-wide: bad manifests, a wrong key, a refused account.

mod common;

use common::{LocalFileSpin, stderr_of, stdout_of};
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift_emulator::EmulatorConfig;

fn run_manifest(filespin: &LocalFileSpin, text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jpg"), b"abc").unwrap();
    std::fs::write(dir.path().join("b.jpg"), b"def").unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, text).unwrap();
    let output = filespin.spinlift().args(["run", "-q"]).arg(&manifest).output().unwrap();
    (output.status.code(), stderr_of(&output))
}

#[test]
fn invalid_manifests_exit_2_and_say_what_and_where() {
    let filespin = LocalFileSpin::start();
    let cases = [
        ("{\"version\": 1,\n \"assets\": [\n  {\"path\": \"a.jpg\",}\n]}", "line 3, column"),
        ("{\"version\": 1}", "missing field `assets`"),
        (
            r#"{"version": 1, "assets": [{"path": "a.jpg", "id": "x"}, {"path": "b.jpg", "id": "x"}]}"#,
            "duplicate id \"x\"",
        ),
        (r#"{"version": 1, "assets": [{"path": "../../etc/passwd"}]}"#, "outside the manifest's root"),
        (r#"{"version": 1, "assets": [{"path": "/etc/passwd"}]}"#, "outside the manifest's root"),
    ];
    for (text, expected) in cases {
        let (code, stderr) = run_manifest(&filespin, text);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: expected {expected:?} in {stderr}");
        assert!(stderr.contains("manifest.json"), "names the file: {stderr}");
    }
    // Nothing was asked of FileSpin.
    assert_eq!(filespin.emulator.stats().issued + filespin.emulator.stats().rejected, 0);
}

#[test]
fn a_wrong_api_key_stops_at_once_without_printing_the_key() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![100; 1_000], seed: 3 }).unwrap();
    let wrong_key = "sk-wrong-3f9a1c77d2";

    let output = filespin
        .spinlift()
        .env("FILESPIN_API_KEY", wrong_key)
        .args(["run", "-q", "--concurrency", "16"])
        .arg(&set.manifest)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("API key") && stderr.contains("401"), "{stderr}");
    assert!(
        !stderr.contains(wrong_key) && !stdout_of(&output).contains(wrong_key),
        "the key leaked: {stderr}"
    );
    // No new request after the first refusal; only those already in flight (16).
    let stats = filespin.emulator.stats();
    assert!(stats.api_requests <= 16 + 2, "{} API requests for a 1,000-file batch", stats.api_requests);
    assert_eq!(stats.issued, 0);
}

#[test]
fn a_disabled_account_stops_the_batch() {
    let filespin =
        LocalFileSpin::with(EmulatorConfig { account_disabled: true, ..EmulatorConfig::default() });
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![10; 50], seed: 4 }).unwrap();
    let report = dir.path().join("report.jsonl");

    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("403"), "{stderr}");
    // Every entry is reported, none lost: all still pending for the next run.
    let lines = common::read_report(&report);
    assert_eq!(lines.len(), 50);
    assert!(lines.iter().all(|l| l["status"] == "pending"), "{lines:?}");
}

#[test]
fn no_api_key_is_a_usage_error() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![1], seed: 5 }).unwrap();
    let output =
        filespin.spinlift().env_remove("FILESPIN_API_KEY").args(["run"]).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("FILESPIN_API_KEY"));
}

#[test]
fn plain_http_to_another_host_is_refused_unless_allowed() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![1], seed: 15 }).unwrap();
    let output = filespin
        .spinlift()
        .env("FILESPIN_API_URL", "http://filespin.example.invalid")
        .args(["run", "-q"])
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("--allow-http"), "{}", stderr_of(&output));
}

#[test]
fn a_dry_run_checks_every_file_and_sends_nothing() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![1_024; 10], seed: 18 }).unwrap();
    std::fs::remove_file(set.dir.join(&set.files[3].path)).unwrap();
    std::fs::create_dir(set.dir.join(&set.files[3].path)).unwrap();

    let output = filespin
        .spinlift()
        .env_remove("FILESPIN_API_KEY")
        .args(["run", "--dry-run", "--api-rps", "30"])
        .arg(&set.manifest)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1), "a problem found is exit 1, as in a real run");
    let stdout = stdout_of(&output);
    assert!(stdout.contains("9 of 10 entries would be uploaded, 0.0 MiB"), "{stdout}");
    assert!(stdout.contains(&format!("{}: not a regular file", set.files[3].path)), "{stdout}");
    assert!(
        stdout.contains("estimate: at least 1 s, bound by FileSpin's API limit"),
        "18 API calls at 30/s: {stdout}"
    );
    assert!(stdout.contains("< 100 KiB:         9 files"), "the size distribution: {stdout}");

    // With the upload rate measured, large files are bound by it instead.
    std::fs::write(set.dir.join(&set.files[0].path), vec![0u8; 30_000_000]).unwrap();
    let output = filespin
        .spinlift()
        .args(["run", "--dry-run", "--api-rps", "30", "--upload-rate", "1MB/s"])
        .arg(&set.manifest)
        .output()
        .unwrap();
    let stdout = stdout_of(&output);
    assert!(stdout.contains("estimate: at least 30 s, bound by upload bandwidth (1.0 MB/s)"), "{stdout}");
    assert!(
        stdout.contains("(FileSpin's API limit (30 requests/s, three a file: 10.0 files/s) alone: 1 s)"),
        "{stdout}"
    );
    let stats = filespin.emulator.stats();
    assert_eq!(stats.api_requests + stats.s3_requests, 0, "a dry run touches no API");
}

#[test]
fn secrets_stay_out_of_every_output_even_at_trace_level() {
    let key = "sk-live-7d1e0c44b9aa";
    // The key stops working after the three forms were issued: the run uploads, then stops at the
    // registrations, so the checkpoint keeps the pre-signed forms it used.
    let faults = spinlift_emulator::FaultConfig::parse("key_invalid_after=3").unwrap();
    let filespin =
        LocalFileSpin::with(EmulatorConfig { api_key: key.into(), faults, ..EmulatorConfig::default() });
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![2_000, 0, 70_000], seed: 19 }).unwrap();
    let report = dir.path().join("report.jsonl");

    let output = filespin
        .spinlift()
        .env("RUST_LOG", "trace")
        .args(["run", "--progress-interval", "0", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));

    // The pre-signed forms are in the checkpoint (0600, on purpose); their signatures and policies
    // must be nowhere else.
    let checkpoint =
        std::fs::read_to_string(spinlift::Checkpoint::default().path_for(&set.manifest).unwrap())
            .unwrap_or_default();
    let mut secrets = vec![key.to_owned()];
    for line in checkpoint.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in v["form"]["fields"].as_array().into_iter().flatten() {
            if matches!(field[0].as_str(), Some("x-amz-signature" | "policy")) {
                secrets.push(field[1].as_str().unwrap().to_owned());
            }
        }
    }
    let everything =
        format!("{}{}{}", stderr_of(&output), stdout_of(&output), std::fs::read_to_string(&report).unwrap());
    assert!(everything.contains("TRACE"), "trace logging was on");
    for secret in &secrets {
        assert!(!everything.contains(secret.as_str()), "a secret leaked: {}…", &secret[..8]);
    }
}

//! A batch rides through the ways real networks and APIs fail — 5xx, 429 with Retry-After, dropped
//! connections, an S3 outage, FileSpin's request limit — without a retry storm, and stops cleanly on the
//! failures no retry can mend.

mod common;

use std::time::{Duration, Instant};

use common::{LocalFileSpin, assert_exactly_one_asset_per_entry, read_report, stderr_of};
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift_emulator::{EmulatorConfig, Endpoint, FaultConfig};

fn with_faults(spec: &str) -> LocalFileSpin {
    let faults = FaultConfig::parse(spec).expect("fault spec");
    eprintln!("faults: {spec}");
    LocalFileSpin::with(EmulatorConfig { faults, ..EmulatorConfig::default() })
}

fn seed() -> u64 {
    std::env::var("SPINLIFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(4)
}

#[test]
fn a_soak_of_mixed_faults_ends_with_every_file_registered_exactly_once() {
    let spec = format!("seed={},api.5xx=0.08,api.429=0.05,api.drop=0.03,s3.503=0.05,s3.drop=0.05", seed());
    let filespin = with_faults(&spec);
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![2_048; 1_000], seed: seed() }).unwrap();
    let report = dir.path().join("report.jsonl");

    let started = Instant::now();
    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();
    let took = started.elapsed();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &report);
    let stats = filespin.emulator.stats();
    let requests = stats.api_requests + stats.s3_requests;
    // content_storage_url, the S3 POST, register_asset and the tag's Update Data.
    let fault_free = 4 * set.files.len() as u64;
    eprintln!(
        "soak: {requests} requests ({} API, {} S3) for {fault_free} fault-free, {} faults injected, {:.1} s",
        stats.api_requests,
        stats.s3_requests,
        stats.faults_injected,
        took.as_secs_f64()
    );
    assert!(stats.faults_injected > 100, "the soak injected only {} faults", stats.faults_injected);
    assert!(
        requests * 2 <= fault_free * 3,
        "{requests} requests: more than 1.5x the fault-free {fault_free}"
    );
}

#[test]
fn an_s3_outage_does_not_become_a_retry_storm() {
    // S3 answers only 503 SlowDown for the first 10 s.
    let filespin = with_faults("s3.outage=10s");
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![4_096; 200], seed: 5 }).unwrap();
    let report = dir.path().join("report.jsonl");

    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &report);
    let during = filespin
        .emulator
        .request_times(Endpoint::S3Post)
        .into_iter()
        .filter(|t| *t < Duration::from_secs(10))
        .count();
    let rate = during as f64 / 10.0;
    eprintln!("storm: {during} S3 requests during the 10 s outage ({rate:.1}/s) with 16 assets in flight");
    // Without backoff and a retry budget, 16 assets would send thousands of requests a second.
    assert!(rate <= 15.0, "{rate:.1} S3 requests/s during the outage");
}

#[test]
fn a_key_revoked_mid_run_stops_the_batch_and_keeps_what_was_done() {
    let filespin = with_faults("key_invalid_after=60");
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![500; 300], seed: 6 }).unwrap();
    let report = dir.path().join("report.jsonl");

    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("401") && stderr.contains("API key"), "{stderr}");
    let stats = filespin.emulator.stats();
    // No new request after the first refusal; only those in flight (16) may still arrive.
    assert!(stats.api_requests <= 60 + 16, "{} API requests", stats.api_requests);
    let lines = read_report(&report);
    let registered = lines.iter().filter(|l| l["status"] == "registered").count();
    assert_eq!(registered as u64, stats.registered, "every registration is in the report");
    assert!(lines.iter().all(|l| l["status"] != "failed"), "nothing failed for good: it resumes later");
}

#[test]
fn an_account_over_its_upload_limit_stops_at_once() {
    let filespin =
        LocalFileSpin::with(EmulatorConfig { upload_limit_exceeded: true, ..EmulatorConfig::default() });
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![100; 1_000], seed: 7 }).unwrap();

    let output = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("upload limit"), "{}", stderr_of(&output));
    assert!(filespin.emulator.stats().api_requests <= 16 + 4);
}

#[test]
fn small_files_saturate_filespins_request_limit_without_tripping_it() {
    // FileSpin documents 30 requests/s for most APIs (developers.filespin.io, "Rate limits"); the
    // emulator enforces it and spinlift's default --api-rps is 30.
    let filespin = with_faults("api.rps=30");
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![1_024; 600], seed: 8 }).unwrap();

    let output = filespin
        .spinlift()
        .env("SPINLIFT_API_RPS", "30")
        .args(["run", "-q"])
        .arg(&set.manifest)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stats = filespin.emulator.stats();
    assert_eq!(stats.registered, 600);
    let mut times: Vec<Duration> = filespin.emulator.request_times(Endpoint::ContentStorageUrl);
    times.extend(filespin.emulator.request_times(Endpoint::RegisterAsset));
    // The tag's Update Data is an API call too, under the same limit.
    times.extend(filespin.emulator.request_times(Endpoint::UpdateData));
    times.sort();
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    eprintln!(
        "rate limit: {} API requests in {span:.1} s = {rate:.2}/s, {} refused with 429",
        times.len(),
        stats.rate_limited
    );
    assert!(rate >= 0.95 * 30.0, "{rate:.2} requests/s is under 95 % of the limit");
    assert!(stats.rate_limited <= 5, "{} requests tripped the limit", stats.rate_limited);
}

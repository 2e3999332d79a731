//! Injected faults fail the way real networks and APIs do, at the configured rates, replayably, and never
//! change what landed. Every check counts statuses and outcomes; no test waits and hopes.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use spinlift_emulator::{Emulator, EmulatorConfig, EmulatorError, Endpoint, FaultConfig, Stats};

const SLOW_DOWN_XML: &str =
    "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>";

async fn start_faulty(spec: &str) -> Emulator {
    let faults = FaultConfig::parse(spec).expect("the spec parses");
    start_with(EmulatorConfig { faults, ..EmulatorConfig::default() }).await
}

/// What one request came to: an answer's status, or no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    NoAnswer,
}

fn storage_url(emulator: &Emulator, filename: &str) -> String {
    format!("{}/api/v1/assets/new/content_storage_url?filename={filename}", emulator.api_url())
}

async fn try_get_form(client: &reqwest::Client, emulator: &Emulator) -> reqwest::Result<reqwest::Response> {
    client.get(storage_url(emulator, "a.jpg")).header("X-FileSpin-Api-Key", emulator.api_key()).send().await
}

async fn try_register(
    client: &reqwest::Client,
    emulator: &Emulator,
    form: &Form,
    file: &[u8],
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}/api/v1/assets/new/register_asset", emulator.api_url()))
        .header("X-FileSpin-Api-Key", emulator.api_key())
        .json(&registration(&form.asset_id, file.len(), &md5_hex(file)))
        .send()
        .await
}

async fn try_upload(
    client: &reqwest::Client,
    form: &Form,
    file: &[u8],
) -> reqwest::Result<reqwest::Response> {
    client
        .post(&form.url)
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart(&form.fields, "upload.bin", file))
        .send()
        .await
}

fn outcome(result: &reqwest::Result<reqwest::Response>) -> Outcome {
    match result {
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(e) => {
            assert!(e.status().is_none() && !e.is_timeout(), "a drop is a connection error: {e:?}");
            Outcome::NoAnswer
        }
    }
}

fn tally(outcomes: &[Outcome]) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for &outcome in outcomes {
        *counts.entry(outcome).or_default() += 1;
    }
    counts
}

/// `count` is within `tolerance` of `rate * n`.
fn assert_rate(what: &str, count: usize, rate: f64, n: usize, tolerance: usize) {
    let expected = rate * n as f64;
    assert!(
        (count as f64 - expected).abs() <= tolerance as f64,
        "{what}: {count} of {n}, expected about {expected} (± {tolerance})"
    );
}

#[tokio::test]
async fn api_faults_come_at_the_configured_rates() {
    let emulator = start_faulty("seed=7,api.5xx=0.08,api.429=0.05,api.drop=0.03,api.retry_after=3").await;
    let client = reqwest::Client::new();
    const N: usize = 400;

    let mut outcomes = Vec::new();
    for _ in 0..N {
        let result = try_get_form(&client, &emulator).await;
        let outcome = outcome(&result);
        outcomes.push(outcome);
        let Ok(response) = result else { continue };
        match outcome {
            Outcome::Status(429) => {
                assert_eq!(response.headers()[RETRY_AFTER], "3");
                assert_eq!(
                    api_error(response).await,
                    (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED".into())
                );
            }
            Outcome::Status(500) => {
                assert_eq!(
                    api_error(response).await,
                    (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR".into())
                );
            }
            // What a load balancer in front of the API answers: HTML.
            Outcome::Status(502 | 503) => {
                assert_eq!(response.headers()["content-type"], "text/html");
                assert!(response.text().await.unwrap().contains("<html>"));
            }
            _ => {}
        }
    }

    let counts = tally(&outcomes);
    let count = |outcome| counts.get(&outcome).copied().unwrap_or(0);
    let server_errors =
        count(Outcome::Status(500)) + count(Outcome::Status(502)) + count(Outcome::Status(503));
    for status in [500, 502, 503] {
        assert!(count(Outcome::Status(status)) > 0, "no {status} among {counts:?}");
    }
    assert_rate("5xx", server_errors, 0.08, N, 15);
    assert_rate("429", count(Outcome::Status(429)), 0.05, N, 12);
    assert_rate("drops", count(Outcome::NoAnswer), 0.03, N, 9);
    let ok = count(Outcome::Status(200));
    assert_eq!(ok + server_errors + count(Outcome::Status(429)) + count(Outcome::NoAnswer), N, "{counts:?}");

    // Only the answered requests issued a form; the faults are counted as faults, not refusals.
    let faults = (N - ok) as u64;
    assert_eq!(
        emulator.stats(),
        Stats {
            issued: ok as u64,
            uploaded: 0,
            registered: 0,
            rejected: 0,
            api_requests: N as u64,
            s3_requests: 0,
            faults_injected: faults,
            rate_limited: 0,
            data_gets: 0,
            data_updates: 0,
        }
    );
    assert_eq!(emulator.issued().len(), ok);
    assert_eq!(emulator.request_times(Endpoint::ContentStorageUrl).len(), N);
}

#[tokio::test]
async fn the_same_seed_replays_the_same_failures() {
    async fn run(spec: &str) -> Vec<Outcome> {
        let emulator = start_faulty(spec).await;
        let client = reqwest::Client::new();
        let mut outcomes = Vec::new();
        for _ in 0..60 {
            outcomes.push(outcome(&try_get_form(&client, &emulator).await));
        }
        outcomes
    }
    let first = run("seed=11,api.5xx=0.2,api.drop=0.1").await;
    assert_eq!(run("seed=11,api.5xx=0.2,api.drop=0.1").await, first);
    assert_ne!(run("seed=12,api.5xx=0.2,api.drop=0.1").await, first);
}

#[tokio::test]
async fn a_fault_on_register_asset_registers_nothing() {
    for spec in ["register_asset.5xx=1", "register_asset.429=1", "register_asset.drop=1"] {
        let emulator = start_faulty(spec).await;
        let client = reqwest::Client::new();
        let file = random_bytes(1000, 1);
        let form = get_form(&emulator, "a.jpg").await;
        assert_eq!(upload(&form, &file).await.status(), StatusCode::NO_CONTENT);

        let result = try_register(&client, &emulator, &form, &file).await;

        match outcome(&result) {
            Outcome::NoAnswer => assert_eq!(spec, "register_asset.drop=1"),
            Outcome::Status(status) => assert!(status == 429 || status >= 500, "{spec}: {status}"),
        }
        assert!(emulator.registrations().is_empty(), "{spec}");
        let stats = emulator.stats();
        assert_eq!((stats.registered, stats.faults_injected, stats.rejected), (0, 1, 0), "{spec}");
    }
}

#[tokio::test]
async fn a_lost_register_reply_registers_and_the_retry_meets_asset_id_exists() {
    // Seed 3's first register draw is a lost reply (so this test replays exactly).
    let emulator = start_faulty("seed=3,register_asset.lost_reply=0.5").await;
    let client = reqwest::Client::new();
    let file = random_bytes(1000, 2);
    let form = get_form(&emulator, "a.jpg").await;
    assert_eq!(upload(&form, &file).await.status(), StatusCode::NO_CONTENT);

    let first = try_register(&client, &emulator, &form, &file).await;

    assert_eq!(outcome(&first), Outcome::NoAnswer, "the reply is lost");
    let registrations = emulator.registrations();
    assert_eq!(registrations.len(), 1, "… but the asset is registered");
    assert_eq!(registrations[0].asset_id, form.asset_id);

    // The client retries until it hears back; every retry finds the asset registered.
    let mut lost = 1;
    let response = loop {
        match try_register(&client, &emulator, &form, &file).await {
            Ok(response) => break response,
            Err(_) => lost += 1,
        }
        assert!(lost < 50, "fifty replies in a row lost at p = 0.5");
    };
    assert_eq!(api_error(response).await, (StatusCode::BAD_REQUEST, "ASSET_ID_EXISTS".into()));
    let stats = emulator.stats();
    assert_eq!((stats.registered, stats.faults_injected), (1, lost));
    assert_eq!(emulator.registrations().len(), 1);
}

#[tokio::test]
async fn a_lost_content_storage_url_reply_issues_an_asset_id_the_client_never_sees() {
    let emulator = start_faulty("content_storage_url.lost_reply=1").await;
    let client = reqwest::Client::new();

    let result = try_get_form(&client, &emulator).await;

    assert_eq!(outcome(&result), Outcome::NoAnswer);
    assert_eq!(emulator.issued().len(), 1);
    let stats = emulator.stats();
    assert_eq!((stats.issued, stats.faults_injected, stats.rejected), (1, 1, 0));
}

#[tokio::test]
async fn the_api_key_is_refused_from_request_n_plus_1() {
    let emulator = start_faulty("key_invalid_after=4").await;
    let client = reqwest::Client::new();
    let file = random_bytes(10, 3);

    // Requests 1–3: forms; the uploads do not count, they are not API requests.
    let mut forms = Vec::new();
    for _ in 0..3 {
        let form = get_form(&emulator, "a.jpg").await;
        assert_eq!(upload(&form, &file).await.status(), StatusCode::NO_CONTENT);
        forms.push(form);
    }
    // Request 4: a registration.
    let response = try_register(&client, &emulator, &forms[0], &file).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Requests 5 and on: 401 on both endpoints, and the S3 endpoint still works.
    let response = try_register(&client, &emulator, &forms[1], &file).await.unwrap();
    assert_eq!(api_error(response).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));
    let response = try_get_form(&client, &emulator).await.unwrap();
    assert_eq!(api_error(response).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));
    assert_eq!(upload(&forms[2], &file).await.status(), StatusCode::NO_CONTENT);

    let stats = emulator.stats();
    assert_eq!((stats.api_requests, stats.registered, stats.faults_injected, stats.rejected), (6, 1, 2, 0));
}

#[tokio::test]
async fn a_burst_over_the_rate_limit_gets_429_with_retry_after() {
    let emulator = start_faulty("api.rps=30").await;
    let client = reqwest::Client::new();
    let url = storage_url(&emulator, "a.jpg");

    let burst_started = Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let request = client.get(&url).header("X-FileSpin-Api-Key", emulator.api_key());
        burst.spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.headers().get(RETRY_AFTER).cloned())
        });
    }
    let answers = burst.join_all().await;
    let burst_took = burst_started.elapsed();

    let ok = answers.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    let limited: Vec<_> =
        answers.iter().filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(ok + limited.len(), 100, "{answers:?}");
    // A token bucket of 30, refilled at one per 33 ms while the burst lasts.
    let refilled = (burst_took.as_secs_f64() * 30.0).ceil() as usize;
    assert!(ok >= 30 && ok <= 30 + refilled, "{ok} answered in {burst_took:?}");
    assert!(limited.iter().all(|(_, retry_after)| retry_after.as_ref().is_some_and(|v| v == "1")));

    let stats = emulator.stats();
    assert_eq!((stats.issued, stats.rate_limited), (ok as u64, limited.len() as u64));
    assert_eq!((stats.faults_injected, stats.rejected, stats.api_requests), (0, 0, 100));
    // Every request of the burst is in the log, inside the burst's time.
    let times = emulator.request_times(Endpoint::ContentStorageUrl);
    assert_eq!(times.len(), 100);
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(*last - *first <= burst_took, "{first:?}..{last:?} within {burst_took:?}");
    assert!(emulator.request_times(Endpoint::RegisterAsset).is_empty());

    // The standalone view serves the same counters.
    let served: Stats = client
        .get(format!("{}/_emulator/stats", emulator.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, stats);
}

#[tokio::test]
async fn s3_errors_come_at_the_configured_rates_in_s3s_xml() {
    let emulator = start_faulty("seed=5,s3.503=0.1,s3.5xx=0.05,s3.429=0.05").await;
    let client = reqwest::Client::new();
    let form = get_form(&emulator, "a.jpg").await;
    let file = random_bytes(2000, 4);
    const N: usize = 400;

    let mut outcomes = Vec::new();
    for _ in 0..N {
        // The same form, again and again: each upload overwrites the last.
        let response = try_upload(&client, &form, &file).await.unwrap();
        let status = response.status();
        outcomes.push(Outcome::Status(status.as_u16()));
        match status.as_u16() {
            503 => assert!(response.text().await.unwrap().contains(SLOW_DOWN_XML)),
            500 => assert_eq!(s3_error(response).await.1, "InternalError"),
            429 => {
                assert_eq!(response.headers()[RETRY_AFTER], "1");
                assert_eq!(s3_error(response).await.1, "TooManyRequests");
            }
            204 => {}
            other => panic!("unexpected {other}"),
        }
    }

    let counts = tally(&outcomes);
    let count = |status| counts.get(&Outcome::Status(status)).copied().unwrap_or(0);
    assert_rate("503 SlowDown", count(503), 0.1, N, 18);
    assert_rate("500 InternalError", count(500), 0.05, N, 12);
    assert_rate("429", count(429), 0.05, N, 12);
    let stats = emulator.stats();
    assert_eq!(stats.uploaded as usize, count(204));
    assert_eq!(stats.faults_injected as usize, N - count(204));
    assert_eq!((stats.s3_requests, stats.rejected), (N as u64, 0));
    assert!(emulator.read_object(form.key()).unwrap() == file);
}

#[tokio::test]
async fn an_s3_drop_in_the_middle_of_the_body_stores_nothing() {
    let emulator = start_faulty("s3.drop=1").await;
    let client = reqwest::Client::new();
    let form = get_form(&emulator, "big.bin").await;
    let file = random_bytes(4 * 1024 * 1024, 5);

    let result = try_upload(&client, &form, &file).await;

    assert_eq!(outcome(&result), Outcome::NoAnswer);
    assert!(!emulator.object_path(form.key()).exists(), "a dropped upload stored something");
    let stats = emulator.stats();
    assert_eq!((stats.uploaded, stats.faults_injected, stats.rejected), (0, 1, 0));
}

#[tokio::test]
async fn an_s3_drop_comes_before_the_body_is_complete() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let emulator = start_faulty("s3.drop=1").await;
    let form = get_form(&emulator, "big.bin").await;
    let body = multipart(&form.fields, "big.bin", &random_bytes(1024 * 1024, 10));
    let url = reqwest::Url::parse(&form.url).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\n\r\n",
        url.path(),
        body.len()
    );

    // Send the head and 60% of the body, and never the rest: the server reads half of it and closes.
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&body[..body.len() * 6 / 10]).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection without waiting for the rest of the body");

    // Closed (or reset) without a byte of an answer.
    assert!(read.is_err() || answer.is_empty(), "answered: {:?}", String::from_utf8_lossy(&answer));
    assert!(!emulator.object_path(form.key()).exists());
    assert_eq!(emulator.stats().faults_injected, 1);
}

#[tokio::test]
async fn a_lost_s3_reply_stores_the_object() {
    let emulator = start_faulty("s3.lost_reply=1").await;
    let client = reqwest::Client::new();
    let form = get_form(&emulator, "a.bin").await;
    let file = random_bytes(100_000, 6);

    let result = try_upload(&client, &form, &file).await;

    assert_eq!(outcome(&result), Outcome::NoAnswer);
    assert!(emulator.read_object(form.key()).unwrap() == file);
    let stats = emulator.stats();
    assert_eq!((stats.uploaded, stats.faults_injected), (1, 1));
}

#[tokio::test]
async fn an_s3_outage_answers_slow_down_until_it_ends() {
    let emulator = start().await;
    let client = reqwest::Client::new();
    let form = get_form(&emulator, "a.bin").await;
    let file = random_bytes(1000, 7);
    assert_eq!(try_upload(&client, &form, &file).await.unwrap().status(), StatusCode::NO_CONTENT);

    // Requests sent in the first 300 ms arrive long before the outage ends, however loaded the machine.
    let outage = Duration::from_millis(1500);
    let outage_started = Instant::now();
    emulator.set_s3_outage(outage);
    let mut during = Vec::new();
    while during.is_empty() || outage_started.elapsed() < Duration::from_millis(300) {
        let response = try_upload(&client, &form, &file).await.unwrap();
        during.push(response.status());
        assert!(response.text().await.unwrap().contains(SLOW_DOWN_XML));
    }
    tokio::time::sleep_until((outage_started + outage).into()).await;
    let after = try_upload(&client, &form, &file).await.unwrap().status();

    assert!(!during.is_empty() && during.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE), "{during:?}");
    assert_eq!(after, StatusCode::NO_CONTENT);
    let stats = emulator.stats();
    assert_eq!((stats.uploaded, stats.faults_injected, stats.rejected), (2, during.len() as u64, 0));
}

#[tokio::test]
async fn an_outage_can_be_configured_or_switched_over_http() {
    let emulator = start_faulty("s3.outage=1h").await;
    let client = reqwest::Client::new();
    let form = get_form(&emulator, "a.bin").await;
    let file = random_bytes(1000, 8);
    assert_eq!(try_upload(&client, &form, &file).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);

    let switch =
        |length: &str| client.post(format!("{}/_emulator/s3_outage?for={length}", emulator.api_url())).send();
    assert_eq!(switch("0s").await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(try_upload(&client, &form, &file).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(switch("10m").await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(try_upload(&client, &form, &file).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(switch("soon").await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let emulator = start_faulty("api.latency=60ms,s3.latency=40ms..50ms").await;
    let client = reqwest::Client::new();

    let asked = Instant::now();
    let form = get_form(&emulator, "a.bin").await;
    assert!(asked.elapsed() >= Duration::from_millis(60), "{:?}", asked.elapsed());

    let asked = Instant::now();
    assert_eq!(try_upload(&client, &form, b"x").await.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(asked.elapsed() >= Duration::from_millis(40), "{:?}", asked.elapsed());
    assert_eq!(emulator.stats().faults_injected, 0, "latency is not a fault");
}

#[tokio::test]
async fn a_slow_body_is_read_piece_by_piece_and_then_stored() {
    let emulator = start_faulty("s3.slow_body=1,s3.slow_body_pause=30ms").await;
    let client = reqwest::Client::new();
    let form = get_form(&emulator, "a.bin").await;
    // At least seven pieces of 16 KiB, so at least six pauses.
    let file = random_bytes(100 * 1024, 9);

    let asked = Instant::now();
    let response = try_upload(&client, &form, &file).await.unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(asked.elapsed() >= Duration::from_millis(6 * 30), "{:?}", asked.elapsed());
    assert!(emulator.read_object(form.key()).unwrap() == file);
    let stats = emulator.stats();
    assert_eq!((stats.uploaded, stats.faults_injected), (1, 1));
}

#[test]
fn specs_round_trip() {
    let specs = [
        "",
        "seed=7,api.5xx=0.08,api.429=0.05,api.drop=0.03,s3.503=0.05,s3.drop=0.05,latency=20ms,api.rps=30,\
         key_invalid_after=100",
        "seed=1,register_asset.lost_reply=0.5,content_storage_url.lost_reply=0.1,storage_url.latency=1ms..2.5ms",
        "s3.5xx=1%,s3.429=0.2,s3.slow_body=0.3,s3.slow_body_pause=1.5s,s3.lost_reply=0.01,s3.retry_after=7s",
        "s3.outage=5s+10s,retry_after=2,register.drop=0.25",
        "api.latency=250us,s3.latency=7ns..1m",
    ];
    for spec in specs {
        let config = FaultConfig::parse(spec).unwrap();
        let written = config.to_string();
        assert_eq!(FaultConfig::parse(&written).unwrap(), config, "{spec:?} → {written:?}");
        assert_eq!(written.parse::<FaultConfig>().unwrap().to_string(), written);
    }

    let config = FaultConfig::parse(specs[1]).unwrap();
    assert_eq!(config.seed, 7);
    assert_eq!(config.content_storage_url, config.register_asset);
    assert_eq!(config.register_asset.server_error, 0.08);
    assert_eq!(config.register_asset.latency.max, Duration::from_millis(20));
    assert_eq!(config.s3.slow_down, 0.05);
    assert_eq!(config.s3.latency.min, Duration::from_millis(20));
    assert_eq!((config.api_rps, config.key_invalid_after), (Some(30), Some(100)));
    assert_eq!(
        config.to_string(),
        "seed=7,api.5xx=0.08,api.429=0.05,api.drop=0.03,api.latency=20ms,s3.503=0.05,s3.drop=0.05,\
         s3.latency=20ms,api.rps=30,key_invalid_after=100"
    );
    assert_eq!(FaultConfig::parse(" seed = 3 , , api.5xx = 0.5 ").unwrap().to_string(), "seed=3,api.5xx=0.5");
    assert_eq!(FaultConfig::parse("").unwrap(), FaultConfig::default());
    let outage = FaultConfig::parse("s3.outage=30s").unwrap().s3_outage;
    assert_eq!(outage, Some((Duration::ZERO, Duration::from_secs(30))));
}

#[test]
fn bad_specs_are_refused_with_a_clear_message() {
    let cases = [
        ("api.5xx=1.5", "not between 0 and 1"),
        ("api.5xx=often", "is not a probability"),
        ("bogus=1", "unknown setting \"bogus\""),
        ("api.503=0.1", "unknown setting \"api.503\""),
        ("register.slow_body=0.1", "unknown setting \"register.slow_body\""),
        ("ftp.5xx=0.1", "unknown setting \"ftp.5xx\""),
        ("seed", "expected key=value"),
        ("seed=-1", "not a whole number"),
        ("latency=20", "needs a unit"),
        ("latency=20 fortnights", "unknown unit"),
        ("latency=9ms..3ms", "above the most"),
        ("s3.outage=later", "does not start with a number"),
        ("api.5xx=0.6,api.429=0.6", "content_storage_url: the fault probabilities add up to 1.2"),
        ("s3.503=0.5,s3.slow_body=60%", "s3: the fault probabilities add up to 1.1"),
        ("api.rps=0", "at least 1"),
        ("retry_after=1.5", "whole number of seconds"),
    ];
    for (spec, message) in cases {
        let error = FaultConfig::parse(spec).unwrap_err();
        assert!(error.contains(message), "{spec:?}: {error:?} should say {message:?}");
    }
    // The message names the setting at fault.
    assert!(FaultConfig::parse("seed=1,latency=20").unwrap_err().starts_with("\"latency=20\""));
}

#[tokio::test]
async fn an_unusable_fault_config_does_not_start() {
    let mut faults = FaultConfig::default();
    faults.s3.drop_connection = 2.0;

    let error = Emulator::start(EmulatorConfig { faults, ..EmulatorConfig::default() }).await.unwrap_err();

    assert!(matches!(&error, EmulatorError::InvalidConfig(m) if m.contains("s3.drop")), "{error}");
}

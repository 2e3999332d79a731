//! Writes realistic seeds into `corpus/<target>/`: manifests as users and `spinlift scan` write them,
//! journals written through the real `Journal` API, and AWS POST policies as FileSpin (and the
//! emulator) hand them out.
//!
//! ```sh
//! cd fuzz && cargo run --example seed_corpora   # then `cargo +nightly fuzz cmin <target>` (README.md)
//! ```
//!
//! Seeds are named `seed-…`; files libFuzzer adds are named by their SHA-1. Writing the seeds again
//! overwrites seeds only (a journal's header carries its creation time, so journal seeds differ by run).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::json;
use spinlift_core::{Failure, FailureKind, State, Step, UnixMillis, Uploaded};
use spinlift_manifest::journal::{Journal, JournalOptions, Record, SourceStamp, fingerprint_ids, replay};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let manifests = manifests();
    let policies = policies();
    write_all(&corpus.join("manifest_parse"), &manifests);
    write_all(&corpus.join("policy_decode"), &policies);
    let journals = tokio::runtime::Runtime::new().expect("a runtime").block_on(journals());
    write_all(&corpus.join("journal_replay"), &journals);
    println!(
        "seeded {} manifests, {} journals, {} policies under {}",
        manifests.len(),
        journals.len(),
        policies.len(),
        corpus.display()
    );
}

fn write_all(dir: &Path, seeds: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_owned(), bytes.into())
}

fn manifests() -> Vec<(String, Vec<u8>)> {
    let readme = r#"{"version": 1,
 "root": "media",
 "service_data": {"app": "catalogue", "build": "2024.05", "deployment_data": {"client": "acme", "location": "eu-west-2"}},
 "assets": [{"path": "photos/a.jpg", "id": "photo-1", "filename": "a.jpg"},
            {"path": "photos/2024/b.png"},
            {"path": "./docs/../docs/report.pdf", "id": "report"}]}
"#;
    let scanned = (0..12)
        .map(|i| {
            json!({"path": format!("shoot-{}/IMG_{i:04}.JPG", i / 4), "size": 1_000_000 + i * 4_093,
                   "mtime_ms": 1_715_787_782_000u64 + i * 1_000})
            .to_string()
        })
        .collect::<Vec<_>>();
    let scan_header = json!({"version": 1, "root": "/data/media"}).to_string();
    let jsonl_scan = format!("{scan_header}\n{}\n", scanned.join("\n"));
    let jsonl_plain =
        "{\"path\": \"a.jpg\"}\n\n{\"path\": \"b/c.jpg\", \"id\": \"c\", \"filename\": \"c.jpg\"}\n";
    let jsonl_crlf = "{\"version\":1,\"service_data\":{\"app\":\"x\"}}\r\n{\"path\":\"çé/😀.jpg\"}\r\n{\"path\":\"x y/z.tif\"}\r\n";
    let pretty = serde_json::to_string_pretty(&json!({
        "version": 1,
        "assets": [{"path": "a.jpg"}, {"path": "b.jpg", "id": "b"}, {"path": "/fuzz/manifests/abs/c.jpg"}]
    }))
    .unwrap();
    vec![
        seed("readme.json", readme),
        seed("pretty.json", pretty),
        seed("minimal.json", r#"{"version":1,"assets":[{"path":"a.jpg"}]}"#),
        seed("scan.jsonl", jsonl_scan),
        seed("plain.jsonl", jsonl_plain),
        seed("crlf-header.jsonl", jsonl_crlf),
        // Refused ones, each for one rule.
        seed("typo.json", r#"{"version":1,"assets":[{"pth":"a.jpg"}]}"#),
        seed("duplicate.jsonl", "{\"path\":\"a.jpg\",\"id\":\"x\"}\n{\"path\":\"b.jpg\",\"id\":\"x\"}\n"),
        seed("escape.json", r#"{"version":1,"assets":[{"path":"photos/../../etc/passwd"}]}"#),
        seed("absolute.jsonl", "{\"path\":\"/etc/passwd\"}\n"),
        seed("version.json", r#"{"version":2,"assets":[{"path":"a"}]}"#),
        seed("empty.json", r#"{"version":1,"assets":[]}"#),
        seed("bad-filename.jsonl", "{\"path\":\"a\",\"filename\":\"x/y\"}\n"),
        seed("service-data-array.json", r#"{"version":1,"service_data":[1],"assets":[{"path":"a"}]}"#),
        seed("syntax.jsonl", "{\"version\":1}\n{\"path\":\"a.jpg\"}\n{\"path\": }\n"),
    ]
}

fn policies() -> Vec<(String, Vec<u8>)> {
    let emulator = json!({
        "expiration": "2024-05-16T15:43:02.000Z",
        "conditions": [
            {"bucket": "my-bucket"},
            ["starts-with", "$key", "originals/ec27/"],
            ["content-length-range", 0, 5_368_709_120u64],
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": "AKIAEXAMPLE/20240515/eu-west-2/s3/aws4_request"},
            {"x-amz-date": "20240515T154302Z"}
        ]
    })
    .to_string();
    // The example of AWS's "Creating a POST policy", with its `content-length-range` as strings.
    let aws = r#"{ "expiration": "2007-12-01T12:00:00.000Z",
  "conditions": [
    {"acl": "public-read" },
    {"bucket": "johnsmith" },
    ["starts-with", "$key", "user/eric/"],
    ["content-length-range", "1048576", "10485760"],
    ["eq", "$Content-Type", "image/jpeg"]
  ]
}"#;
    let several = r#"{"expiration":"2024-05-15T16:43:02+01:00","conditions":[["content-length-range",0,99],["CONTENT-LENGTH-RANGE","0"," 42 "],["content-length-range",0,1e3],{"bucket":"b"}]}"#;
    let none = r#"{"conditions":[]}"#;
    let mut seeds = Vec::new();
    for (name, json) in [("emulator", emulator.as_str()), ("aws", aws), ("several", several), ("none", none)]
    {
        seeds.push(seed(&format!("{name}.b64"), STANDARD.encode(json)));
        seeds.push(seed(&format!("{name}.json"), json));
    }
    seeds.push(seed("several-unpadded.b64", STANDARD_NO_PAD.encode(several)));
    let aws_field = STANDARD.encode(aws);
    let wrapped: Vec<&str> =
        aws_field.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap()).collect();
    seeds.push(seed("aws-wrapped.b64", wrapped.join("\n")));
    seeds.push(seed("array.b64", STANDARD.encode("[1,2]")));
    seeds.push(seed("truncated.b64", "eyJleHBpcmF0aW9uIjog"));
    seeds.push(seed("not-base64", "not base64 at all!"));
    seeds
}

const FORM_EXPIRES: UnixMillis = UnixMillis(1_715_874_182_000);
const MD5: &str = "900150983cd24fb0d6963f7d28e17f72";

fn form(asset_id: &str) -> serde_json::Value {
    json!({"asset_id": asset_id, "url": "https://my-bucket.s3.amazonaws.com/",
           "fields": [["key", format!("originals/{asset_id}/original/original__a.jpg")],
                      ["x-amz-algorithm", "AWS4-HMAC-SHA256"], ["policy", "eyJleHBpcmF0aW9uIjog"],
                      ["x-amz-signature", "cc47e86f1353deadbeef"]],
           "key": null, "bucket": "my-bucket", "storage_type": "AMAZON_S3",
           "expires_at": FORM_EXPIRES.0, "max_size": 5_368_709_120u64})
}

/// The life of one entry through the three-step upload, one record per step.
fn life_of(id: &str, asset_id: &str) -> Vec<Record> {
    let stamp = SourceStamp { size: 3, mtime_ms: 1_715_787_000_000, tag: 0 };
    vec![
        Record::new(id, State::Pending),
        Record::new(id, State::FormIssued { asset_id: asset_id.into(), expires_at: FORM_EXPIRES })
            .with_form(form(asset_id)),
        Record::new(id, State::Uploading { asset_id: asset_id.into(), expires_at: FORM_EXPIRES })
            .with_form(form(asset_id))
            .with_source(stamp),
        Record::new(
            id,
            State::Uploaded {
                asset_id: asset_id.into(),
                size: 3,
                md5: MD5.into(),
                started_at: UnixMillis(1_715_787_782_000),
                completed_at: UnixMillis(1_715_787_783_000),
            },
        )
        .with_form(form(asset_id))
        .with_source(stamp),
        Record::new(id, State::Registered { asset_id: asset_id.into(), size: 3, md5: MD5.into() })
            .with_source(stamp),
    ]
}

fn failed(id: &str, asset_id: Option<&str>, uploaded: bool) -> Record {
    let failure = Failure {
        retry_after_ms: Some(30_000),
        ..Failure::new(
            Step::Register,
            FailureKind::Status { status: 503, code: Some("SlowDown".into()) },
            "storage answered 503",
        )
    };
    let uploaded = uploaded.then(|| Uploaded {
        size: 3,
        md5: MD5.into(),
        started_at: UnixMillis(1_715_787_782_000),
        completed_at: UnixMillis(1_715_787_783_000),
    });
    Record::new(id, State::Failed { asset_id: asset_id.map(str::to_owned), failure, uploaded, data_set: false })
}

/// A journal written through `Journal`: `open`, one `append` per record, `close`.
async fn write(path: &Path, ids: &[&str], records: &[Record], replayed: bool, compact: bool) -> Vec<u8> {
    let fingerprint = fingerprint_ids(ids.iter().copied());
    let options = JournalOptions {
        durable: false,
        compact_when_records_exceed: if compact { 1.0 } else { f64::INFINITY },
        ..JournalOptions::default()
    };
    let before =
        if replayed { replay(path).expect("replay").filter(|r| r.belongs_to(&fingerprint)) } else { None };
    if !replayed {
        let _ = std::fs::remove_file(path);
    }
    let journal = Journal::open(path, &fingerprint, before.as_ref(), options).await.expect("open");
    for record in records {
        journal.append(record.clone()).await.expect("append");
    }
    journal.close().await.expect("close");
    std::fs::read(path).expect("read the journal")
}

async fn journals() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path: PathBuf = dir.path().join("batch.journal");
    let ids = ["photos/a.jpg", "photos/b.jpg", "çé/😀.jpg", "c"];
    let asset = |i: usize| format!("ec279822540b412e903827f473bb53a{i}");

    let mut seeds = Vec::new();
    seeds.push(seed("header-only", write(&path, &ids, &[], false, false).await));

    // Two entries interleaved through their whole life, a third failed after its upload.
    let mut history = Vec::new();
    let (a, b) = (life_of(ids[0], &asset(0)), life_of(ids[1], &asset(1)));
    for (x, y) in a.iter().zip(&b) {
        history.push(x.clone());
        history.push(y.clone());
    }
    history.push(Record::new(ids[2], State::Pending));
    history.push(failed(ids[2], Some(&asset(2)), true));
    history.push(failed(ids[3], None, false));
    let interleaved = write(&path, &ids, &history, false, false).await;
    seeds.push(seed("interleaved", interleaved.clone()));

    // Cut short mid-line, as a crash leaves it, and damaged in the middle.
    let mut torn = interleaved.clone();
    torn.truncate(interleaved.len() - 17);
    seeds.push(seed("torn", torn));
    let mut damaged = interleaved.clone();
    let third = damaged.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(2).map(|(at, _)| at).unwrap();
    damaged[third - 5] = b'#';
    seeds.push(seed("damaged", damaged));

    // Reopened from the replay (a snapshot, sorted by id), then a run that carries on.
    let resumed = [life_of(ids[3], &asset(3)), vec![failed(ids[2], None, false)]].concat();
    seeds.push(seed("resumed", write(&path, &ids, &resumed, true, false).await));

    // Many registered entries (replay's fast path), compacted on close.
    let many: Vec<String> = (0..40).map(|i| format!("batch/{i:03}.jpg")).collect();
    let many_ids: Vec<&str> = many.iter().map(String::as_str).collect();
    let records: Vec<Record> = many_ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| life_of(id, &format!("{i:032x}")).into_iter().skip(3))
        .collect();
    seeds.push(seed("registered-compacted", write(&path, &many_ids, &records, false, true).await));
    seeds
}

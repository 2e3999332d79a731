//! The source bucket, driven with `object_store` exactly as spinlift reads a remote source: put, head,
//! get (with `If-Match`, ranges), list (paged, with a prefix), delete — and a few raw requests on
//! presigned URLs where the wire itself is the point.

mod common;

use std::time::Duration;

use common::{md5_hex, random_bytes};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use reqwest::StatusCode;
use spinlift_emulator::{EmulatorError, SourceBucket, SourceBucketConfig, SourceStats};

async fn start() -> SourceBucket {
    SourceBucket::start(SourceBucketConfig::default()).await.expect("the source bucket starts")
}

/// An `object_store` client for `bucket_name`, retrying `retries` times with short backoffs.
fn client(bucket: &SourceBucket, bucket_name: &str, retries: usize) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(bucket.endpoint())
        .with_bucket_name(bucket_name)
        .with_access_key_id(bucket.access_key_id())
        .with_secret_access_key(bucket.secret_access_key())
        .with_region(bucket.region())
        .with_allow_http(true)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: Duration::from_secs(30),
        })
        .build()
        .expect("the client builds")
}

fn quoted_md5(bytes: &[u8]) -> String {
    format!("\"{}\"", md5_hex(bytes))
}

#[tokio::test]
async fn put_then_get_returns_the_bytes_and_the_md5_etag() {
    let bucket = start().await;
    let store = client(&bucket, "source", 0);
    let bytes = random_bytes(300 * 1024 + 7, 1);
    // `Path::parse` keeps the key as it is (`Path::from` would percent-encode the `é`).
    let path = Path::parse("photos/2024/a b é.jpg").unwrap();

    let put = store.put(&path, PutPayload::from(bytes.clone())).await.unwrap();
    assert_eq!(put.e_tag.as_deref(), Some(quoted_md5(&bytes).as_str()));

    let got = store.get(&path).await.unwrap();
    assert_eq!(got.meta.size, bytes.len() as u64);
    assert_eq!(got.meta.e_tag.as_deref(), Some(quoted_md5(&bytes).as_str()));
    assert!(got.bytes().await.unwrap() == bytes);

    let head = store.head(&path).await.unwrap();
    assert_eq!((head.size, head.e_tag), (bytes.len() as u64, Some(quoted_md5(&bytes))));
    assert!(std::fs::read(bucket.object_path("source", "photos/2024/a b é.jpg")).unwrap() == bytes);

    let stats = bucket.stats();
    assert_eq!((stats.puts, stats.gets, stats.heads, stats.requests), (1, 1, 1, 3));
    assert_eq!(stats.bytes_served, bytes.len() as u64);
    assert_eq!((stats.rejected, stats.faults_injected), (0, 0));
    assert_eq!(bucket.request_times().len(), 3);
    bucket.shutdown().await;
}

#[tokio::test]
async fn an_overwrite_changes_the_etag_and_if_match_then_fails() {
    let bucket = start().await;
    let store = client(&bucket, "source", 0);
    let path = Path::from("a.bin");
    let first = bucket.put_object("source", "a.bin", b"first version".to_vec()).await.unwrap();
    assert_eq!(first, quoted_md5(b"first version"));

    let matching = GetOptions { if_match: Some(first.clone()), ..GetOptions::default() };
    assert_eq!(
        &store.get_opts(&path, matching.clone()).await.unwrap().bytes().await.unwrap()[..],
        b"first version"
    );

    // The object changes between two runs (same size, too).
    let second = bucket.put_object("source", "a.bin", b"other version".to_vec()).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(store.head(&path).await.unwrap().e_tag, Some(second.clone()));

    let error = store.get_opts(&path, matching).await.unwrap_err();
    assert!(matches!(error, object_store::Error::Precondition { .. }), "{error:?}");
    let head_matching = GetOptions { if_match: Some(first.clone()), head: true, ..GetOptions::default() };
    let error = store.get_opts(&path, head_matching).await.unwrap_err();
    assert!(matches!(error, object_store::Error::Precondition { .. }), "{error:?}");

    let unchanged = GetOptions { if_none_match: Some(second.clone()), ..GetOptions::default() };
    let error = store.get_opts(&path, unchanged).await.unwrap_err();
    assert!(matches!(error, object_store::Error::NotModified { .. }), "{error:?}");

    // Through `object_store`'s own put, too.
    let third = store.put(&path, PutPayload::from_static(b"third")).await.unwrap().e_tag.unwrap();
    assert_eq!(third, quoted_md5(b"third"));
    let current = GetOptions { if_match: Some(third), ..GetOptions::default() };
    assert_eq!(&store.get_opts(&path, current).await.unwrap().bytes().await.unwrap()[..], b"third");

    let stats = bucket.stats();
    assert_eq!((stats.rejected, stats.not_modified), (2, 1));
    bucket.shutdown().await;
}

#[tokio::test]
async fn ranges_are_served() {
    let bucket = start().await;
    let store = client(&bucket, "source", 0);
    let bytes = random_bytes(10_000, 2);
    bucket.put_object("source", "r", bytes.clone()).await.unwrap();
    let path = Path::from("r");

    assert!(store.get_range(&path, 100..2_100).await.unwrap() == bytes[100..2_100]);
    let tail = GetOptions { range: Some(GetRange::Offset(9_000)), ..GetOptions::default() };
    assert!(store.get_opts(&path, tail).await.unwrap().bytes().await.unwrap() == bytes[9_000..]);
    let suffix = GetOptions { range: Some(GetRange::Suffix(10)), ..GetOptions::default() };
    assert!(store.get_opts(&path, suffix).await.unwrap().bytes().await.unwrap() == bytes[9_990..]);
    bucket.shutdown().await;
}

#[tokio::test]
async fn a_listing_of_2500_keys_pages_completely_and_in_order() {
    let bucket = start().await;
    let store = client(&bucket, "source", 0);
    let mut expected = Vec::new();
    for i in 0..2_500 {
        let key = format!("batch/{:02}/item-{i:05}.txt", i % 7);
        bucket.put_object("source", &key, format!("item {i}").into_bytes()).await.unwrap();
        expected.push(key);
    }
    for i in 0..30 {
        bucket.put_object("source", &format!("other/{i}.txt"), b"x".to_vec()).await.unwrap();
    }
    expected.sort();

    let listed: Vec<_> = store.list(Some(&Path::from("batch"))).try_collect().await.unwrap();

    let keys: Vec<String> = listed.iter().map(|meta| meta.location.to_string()).collect();
    assert_eq!(keys.len(), 2_500);
    assert!(keys == expected, "the listing is the keys, each once, in order");
    for meta in &listed {
        let i: usize =
            meta.location.as_ref().rsplit('-').next().unwrap().trim_end_matches(".txt").parse().unwrap();
        let content = format!("item {i}");
        assert_eq!(meta.size, content.len() as u64);
        assert_eq!(meta.e_tag.as_deref(), Some(quoted_md5(content.as_bytes()).as_str()), "{}", meta.location);
    }
    // object_store asks 1,000 at a time: three pages.
    assert_eq!(bucket.stats().lists, 3);

    let everything: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(everything.len(), 2_530);
    let one_dir = store.list_with_delimiter(Some(&Path::from("batch/03"))).await.unwrap();
    assert_eq!(one_dir.objects.len(), (0..2_500).filter(|i| i % 7 == 3).count());
    let top = store.list_with_delimiter(None).await.unwrap();
    let prefixes: Vec<String> = top.common_prefixes.iter().map(ToString::to_string).collect();
    assert_eq!(prefixes, ["batch", "other"]);
    bucket.shutdown().await;
}

#[tokio::test]
async fn deleting_an_object_makes_it_vanish() {
    let bucket = start().await;
    let store = client(&bucket, "source", 0);
    bucket.put_object("source", "gone.bin", b"soon gone".to_vec()).await.unwrap();
    let path = Path::from("gone.bin");
    assert!(store.head(&path).await.is_ok());

    store.delete(&path).await.unwrap();

    assert!(matches!(store.head(&path).await, Err(object_store::Error::NotFound { .. })));
    assert!(matches!(store.get(&path).await, Err(object_store::Error::NotFound { .. })));
    // A file later put on disk under the same key is served with its own MD5, not the old one.
    std::fs::write(bucket.object_path("source", "gone.bin"), b"placed on disk").unwrap();
    assert_eq!(store.head(&path).await.unwrap().e_tag, Some(quoted_md5(b"placed on disk")));
    bucket.delete_object("source", "gone.bin").await.unwrap();
    assert!(matches!(store.head(&path).await, Err(object_store::Error::NotFound { .. })));

    let stats = bucket.stats();
    assert_eq!((stats.deletes, stats.rejected), (1, 3));
    bucket.shutdown().await;
}

#[tokio::test]
async fn files_already_in_the_directory_are_served_with_their_md5() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("archive/2019")).unwrap();
    std::fs::write(dir.path().join("archive/2019/old.tif"), b"an old scan").unwrap();
    let config = SourceBucketConfig {
        dir: Some(dir.path().to_owned()),
        buckets: vec!["archive".into(), "second-bucket".into()],
        ..SourceBucketConfig::default()
    };
    let bucket = SourceBucket::start(config).await.unwrap();
    let store = client(&bucket, "archive", 0);

    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location.as_ref(), "2019/old.tif");
    assert_eq!(listed[0].e_tag, Some(quoted_md5(b"an old scan")));
    let got = store.get(&Path::from("2019/old.tif")).await.unwrap();
    assert_eq!(got.meta.e_tag, Some(quoted_md5(b"an old scan")));
    assert_eq!(&got.bytes().await.unwrap()[..], b"an old scan");
    assert!(dir.path().join("second-bucket").is_dir());
    let second = client(&bucket, "second-bucket", 0);
    assert!(second.list(None).try_collect::<Vec<_>>().await.unwrap().is_empty());
    bucket.shutdown().await;
    assert!(dir.path().join("archive/2019/old.tif").exists(), "a given directory is kept");
}

#[tokio::test]
async fn any_region_is_accepted_and_a_wrong_secret_is_not() {
    let bucket = start().await;
    bucket.put_object("source", "k", b"v".to_vec()).await.unwrap();
    let path = Path::from("k");

    let elsewhere = AmazonS3Builder::new()
        .with_endpoint(bucket.endpoint())
        .with_bucket_name("source")
        .with_access_key_id(bucket.access_key_id())
        .with_secret_access_key(bucket.secret_access_key())
        .with_region("ap-southeast-2")
        .with_allow_http(true)
        .build()
        .unwrap();
    assert_eq!(&elsewhere.get(&path).await.unwrap().bytes().await.unwrap()[..], b"v");

    let intruder = AmazonS3Builder::new()
        .with_endpoint(bucket.endpoint())
        .with_bucket_name("source")
        .with_access_key_id(bucket.access_key_id())
        .with_secret_access_key("not the secret")
        .with_region(bucket.region())
        .with_allow_http(true)
        .with_retry(RetryConfig { max_retries: 0, ..RetryConfig::default() })
        .build()
        .unwrap();
    assert!(intruder.head(&path).await.is_err());

    // No signature at all.
    let anonymous = reqwest::get(format!("{}/source/k", bucket.endpoint())).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    let stats: SourceStats = bucket.stats();
    assert_eq!(stats.rejected, 2);
    bucket.shutdown().await;
}

#[tokio::test]
async fn the_env_lines_configure_a_client() {
    let bucket = start().await;
    bucket.put_object("source", "from-env.txt", b"hello".to_vec()).await.unwrap();

    let env = bucket.env();
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines.len(), 5, "{env}");
    assert!(lines.contains(&format!("AWS_ENDPOINT={}", bucket.endpoint()).as_str()), "{env}");
    assert!(lines.contains(&"AWS_ALLOW_HTTP=true"), "{env}");
    // What `AmazonS3Builder::from_env` would read, handed over key by key.
    let mut builder = AmazonS3Builder::new().with_bucket_name("source");
    for line in &lines {
        let (key, value) = line.split_once('=').unwrap();
        builder = builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value);
    }
    let store = builder.build().unwrap();
    assert_eq!(&store.get(&Path::from("from-env.txt")).await.unwrap().bytes().await.unwrap()[..], b"hello");

    let shown = format!("{bucket:?} {:?}", SourceBucketConfig::default());
    assert!(!shown.contains(bucket.secret_access_key()), "{shown}");
    bucket.shutdown().await;
}

#[tokio::test]
async fn presigned_urls_work_for_plain_http_clients() {
    let bucket = start().await;
    let store = client(&bucket, "source", 0);
    let bytes = random_bytes(5_000, 3);
    bucket.put_object("source", "p.bin", bytes.clone()).await.unwrap();
    let url =
        store.signed_url(reqwest::Method::GET, &Path::from("p.bin"), Duration::from_secs(600)).await.unwrap();

    let response = reqwest::get(url.as_str()).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "5000");
    assert_eq!(response.headers()["etag"], quoted_md5(&bytes).as_str());
    assert!(response.headers().contains_key("last-modified"));
    assert!(response.bytes().await.unwrap() == bytes);

    let beyond =
        reqwest::Client::new().get(url.as_str()).header("range", "bytes=9000-").send().await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(beyond.text().await.unwrap().contains("<Code>InvalidRange</Code>"));
    bucket.shutdown().await;
}

#[tokio::test]
async fn bad_settings_do_not_start() {
    for (config, message) in [
        (
            SourceBucketConfig { buckets: vec!["Not_A_Bucket".into()], ..SourceBucketConfig::default() },
            "bucket",
        ),
        (SourceBucketConfig { region: "a/b".into(), ..SourceBucketConfig::default() }, "region"),
        (SourceBucketConfig { secret_access_key: String::new(), ..SourceBucketConfig::default() }, "secret"),
        (
            SourceBucketConfig {
                faults: spinlift_emulator::FaultConfig::parse("source.503=0.5")
                    .map(|mut f| {
                        f.source.drop_connection = 0.9;
                        f
                    })
                    .unwrap(),
                ..SourceBucketConfig::default()
            },
            "source: the fault probabilities add up",
        ),
    ] {
        let error = SourceBucket::start(config).await.unwrap_err();
        assert!(matches!(&error, EmulatorError::InvalidConfig(m) if m.contains(message)), "{error}");
    }
}

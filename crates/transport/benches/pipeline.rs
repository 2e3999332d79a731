//! The upload pipeline's speed: 64 MiB read from memory → MD5 → multipart body → HTTP POST
//! (`FileSpinClient::upload_reader`) to a local server that reads and discards the body and answers
//! 204, against plain single-core MD5 of the same bytes. Both in MiB/s; their ratio is the pipeline's
//! cost over hashing alone (the target: the pipeline at 0.8× of MD5 or better when hashing is the
//! bound). The server runs on a thread of its own, on the same machine: it costs CPU too (one copy out
//! of the socket), which a 2-core machine feels.
//!
//! `cargo bench -p spinlift-transport --bench pipeline`
//!
//! Under `cargo test --benches` (no `--bench` argument) the payload is 1 MiB.

use std::convert::Infallible;
use std::hint::black_box;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use spinlift_core::UnixMillis;
use spinlift_transport::{ClientConfig, FileSpinClient, Secret, UploadForm};

const PAYLOAD: usize = 64 * 1024 * 1024;
/// The payload under `cargo test --benches`.
const TEST_PAYLOAD: usize = 1024 * 1024;

fn payload_len() -> usize {
    if std::env::args().any(|a| a == "--bench") { PAYLOAD } else { TEST_PAYLOAD }
}

/// Incompressible-looking bytes (xorshift), so nothing on the way can shortcut them.
fn payload(len: usize) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    Bytes::from(data)
}

/// A storage stand-in on 127.0.0.1: reads every request body to its end, discards it, answers 204.
/// Counts the body bytes received.
fn start_sink() -> (SocketAddr, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let mut body = request.into_body();
                            while let Some(Ok(frame)) = body.frame().await {
                                if let Some(data) = frame.data_ref() {
                                    counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                                }
                            }
                            let mut response = Response::new(Empty::<Bytes>::new());
                            *response.status_mut() = StatusCode::NO_CONTENT;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    (rx.recv().unwrap(), received)
}

fn bench_pipeline(c: &mut Criterion) {
    let len = payload_len();
    let data = payload(len);
    let expected_md5 = hex::encode(Md5::digest(&data));

    let (addr, received) = start_sink();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base = format!("http://{addr}");
    let mut config = ClientConfig::new(&base, Secret::new("bench-api-key"));
    config.api_rps = None;
    let client = FileSpinClient::new(config).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    // The fields of a real pre-signed S3 POST form, in FileSpin's order.
    let form = UploadForm::new(
        "ec279822540b412e903827f473bb53a3",
        format!("{base}/my-bucket/"),
        vec![
            ("key".into(), "originals/ec27/original/original__bench.bin".into()),
            ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
            ("x-amz-credential".into(), "AKIAEXAMPLE/20240515/eu-west-2/s3/aws4_request".into()),
            ("x-amz-date".into(), "20240515T154302Z".into()),
            ("policy".into(), "eyJleHBpcmF0aW9uIjoiMjAyNC0wNS0xNlQxNTo0MzowMloifQ==".into()),
            (
                "x-amz-signature".into(),
                "cc47e86f1353deadbeefcc47e86f1353deadbeefcc47e86f1353deadbeef0123".into(),
            ),
        ],
        UnixMillis(now).plus_secs(86_400),
    );
    let upload = || {
        let reader = Cursor::new(data.clone());
        rt.block_on(client.upload_reader(&form, reader, len as u64, "bench.bin", &|_| {})).unwrap()
    };

    // One upload first: the whole body arrived, and the receipt's MD5 is the bytes' MD5.
    let receipt = upload();
    assert_eq!(receipt.md5, expected_md5);
    assert_eq!(receipt.size, len as u64);
    assert!(received.load(Ordering::Relaxed) > len as u64, "the sink got less than the file");

    let mut group = c.benchmark_group("upload_pipeline_64MiB");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("md5_only", |b| b.iter(|| Md5::digest(black_box(&data[..]))));
    group.bench_function("read_md5_multipart_post", |b| b.iter(|| black_box(upload())));
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);

//! The checkpoint journal's speed: durable appends (records/s, fsyncs per record) with one and with many
//! appenders, the replay of a journal of 10^6 entries (time; resident and peak memory per entry are printed
//! once), and the snapshot `Journal::open` writes from it.
//!
//! `cargo bench -p spinlift-manifest --bench journal`

#[path = "support/memory.rs"]
mod memory;
use memory::{reset_peak, status_bytes};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinlift_core::{State, UnixMillis};
use spinlift_manifest::journal::{Journal, JournalOptions, Record, Sink, SourceStamp, replay};

const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";
/// Records per measured iteration of the append benchmarks.
const RECORDS_PER_ITER: u64 = 2048;
const REPLAY_ENTRIES: usize = 1_000_000;

/// The journal file, counting records written and fsyncs.
struct Counting {
    file: File,
    syncs: Arc<AtomicU64>,
}

impl Sink for Counting {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync()
    }
}

/// A record as the engine writes it after an upload: state, form, source stamp.
fn uploaded(i: u64) -> Record {
    let asset_id = format!("{i:032x}");
    let state = State::Uploaded {
        asset_id: asset_id.clone(),
        size: 2_345_678,
        md5: "900150983cd24fb0d6963f7d28e17f72".into(),
        started_at: UnixMillis(1_700_000_000_000),
        completed_at: UnixMillis(1_700_000_004_000),
    };
    let form = serde_json::json!({
        "url": "https://bucket.s3.amazonaws.com/",
        "fields": {"key": format!("uploads/{asset_id}"), "policy": "eyJleHBpcmF0aW9uIjoiMjAyNC0wMS0wMVQwMDowMDowMFoifQ==",
                   "x-amz-credential": "AKIAEXAMPLE/20240101/us-east-1/s3/aws4_request",
                   "x-amz-signature": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
    });
    Record::new(format!("photos/2024/IMG_{i:07}.jpg"), state).with_form(form).with_source(SourceStamp {
        size: 2_345_678,
        mtime_ms: 1_699_990_000_000,
        tag: 0,
    })
}

fn bench_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("journal_append");
    group.throughput(Throughput::Elements(RECORDS_PER_ITER));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));

    for (name, appenders, durable) in [
        ("durable_1_appender", 1, true),
        ("durable_64_appenders", 64, true),
        ("not_durable_64_appenders", 64, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.journal");
        let syncs = Arc::new(AtomicU64::new(0));
        let counter = syncs.clone();
        let options =
            JournalOptions { durable, compact_when_records_exceed: f64::INFINITY, ..Default::default() };
        let journal = rt
            .block_on(Journal::open_with_sink(&path, FINGERPRINT, None, options, move |file| Counting {
                file,
                syncs: counter,
            }))
            .unwrap();
        let records = Arc::new((0..RECORDS_PER_ITER).map(uploaded).collect::<Vec<_>>());
        let mut appended = 0u64;

        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                appended += iters * RECORDS_PER_ITER;
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..appenders)
                            .map(|task| {
                                let (journal, records) = (journal.clone(), records.clone());
                                tokio::spawn(async move {
                                    for record in records.iter().skip(task).step_by(appenders) {
                                        journal.append(record.clone()).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                    }
                    start.elapsed()
                })
            })
        });
        let syncs = syncs.load(Ordering::Relaxed);
        eprintln!(
            "journal_append/{name}: {appended} records, {syncs} fsyncs, {:.4} fsyncs per record",
            syncs as f64 / appended.max(1) as f64
        );
        rt.block_on(journal.close()).unwrap();
    }
    group.finish();
}

/// Writes a journal of `entries` entries, each with its final record (a finished migration).
fn write_big_journal(path: &Path, entries: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let options = JournalOptions { durable: false, ..Default::default() };
        let journal = Journal::open(path, FINGERPRINT, None, options).await.unwrap();
        for i in 0..entries as u64 {
            let mut record = uploaded(i);
            if i % 10 != 0 {
                // 9 in 10 registered (no form kept), 1 in 10 still holding its form.
                record.state = State::Registered {
                    asset_id: format!("{i:032x}"),
                    size: 2_345_678,
                    md5: "900150983cd24fb0d6963f7d28e17f72".into(),
                };
            }
            journal.append_nowait(record.line()).unwrap();
            if i % 10_000 == 0 {
                journal.append(uploaded(i)).await.unwrap(); // keep the queue short
            }
        }
        journal.close().await.unwrap();
    });
}

fn bench_replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.journal");
    write_big_journal(&path, REPLAY_ENTRIES);
    let size = std::fs::metadata(&path).unwrap().len();

    let peak_known = reset_peak();
    let before = status_bytes("VmRSS");
    let started = Instant::now();
    let replayed = replay(&path).unwrap().unwrap();
    let took = started.elapsed();
    let (after, peak) = (status_bytes("VmRSS"), status_bytes("VmHWM"));
    assert_eq!(replayed.len(), REPLAY_ENTRIES);
    if let (Some(before), Some(after), Some(peak)) = (before, after, peak) {
        let per_entry = |bytes: u64| bytes.saturating_sub(before) / REPLAY_ENTRIES as u64;
        eprintln!(
            "journal_replay: {REPLAY_ENTRIES} entries, file {:.1} MiB, replayed once in {took:.2?}; \
             resident +{:.1} MiB = {} bytes per entry; peak +{:.1} MiB = {} bytes per entry{}",
            size as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / 1048576.0,
            per_entry(after),
            peak.saturating_sub(before) as f64 / 1048576.0,
            per_entry(peak),
            if peak_known { "" } else { " (peak not reset: includes the setup)" },
        );
    }

    let mut group = c.benchmark_group("journal_replay");
    group.throughput(Throughput::Elements(REPLAY_ENTRIES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    // Dropping 10^6 entries is the caller's cost, not replay's: left out of the timing.
    group.bench_function("1e6_entries", |b| b.iter_with_large_drop(|| replay(&path).unwrap().unwrap()));
    group.finish();

    // The snapshot `Journal::open` writes from a replayed journal of 10^6 entries (write and fsync).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let snapshot = dir.path().join("snapshot.journal");
    let mut group = c.benchmark_group("journal_snapshot");
    group.throughput(Throughput::Elements(REPLAY_ENTRIES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("1e6_entries", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let journal = rt
                    .block_on(Journal::open(
                        &snapshot,
                        FINGERPRINT,
                        Some(&replayed),
                        JournalOptions::default(),
                    ))
                    .unwrap();
                total += started.elapsed();
                rt.block_on(journal.close()).unwrap();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_replay);
criterion_main!(benches);

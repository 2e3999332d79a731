//! Manifest parsing of 10^6 entries: a JSON document (`Manifest::parse`), JSON Lines from memory
//! (`Manifest::read_lines`) and a `.jsonl` file through `Manifest::load` (its 256 KiB `BufReader`).
//! Entries are what `spinlift scan` writes (path, size, mtime), one in ten with an id of its own. The
//! peak memory of one parse of each is printed once (Linux: `VmHWM`, each in a process of its own).
//!
//! `cargo bench -p spinlift-manifest --bench manifest`
//!
//! Under `cargo test --benches` (no `--bench` argument) the manifests have 1,000 entries, so that the
//! one test run of each benchmark is quick.

#[path = "support/memory.rs"]
mod memory;
use memory::{reset_peak, status_bytes};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use spinlift_manifest::{Format, Manifest};

const ENTRIES: usize = 1_000_000;
/// Entries under `cargo test --benches`.
const TEST_ENTRIES: usize = 1_000;

fn entries() -> usize {
    if std::env::args().any(|a| a == "--bench") { ENTRIES } else { TEST_ENTRIES }
}

/// One asset object, as `scan` writes it; every tenth with an id of its own.
fn write_entry(out: &mut String, i: usize) {
    use std::fmt::Write as _;
    let (year, month) = (2010 + i / 100_000, 1 + i / 10_000 % 10);
    let id = if i.is_multiple_of(10) { format!("\"id\":\"legacy-{i:07}\",") } else { String::new() };
    write!(
        out,
        "{{{id}\"path\":\"photos/{year}/{month:02}/IMG_{i:07}.jpg\",\"size\":{},\"mtime_ms\":{}}}",
        1_000_000 + i * 37 % 9_000_000,
        1_600_000_000_000u64 + i as u64 * 61_000,
    )
    .unwrap();
}

fn jsonl(n: usize) -> String {
    let mut text = String::with_capacity(n * 90);
    text.push_str("{\"version\":1,\"root\":\".\"}\n");
    for i in 0..n {
        write_entry(&mut text, i);
        text.push('\n');
    }
    text
}

fn json(n: usize) -> String {
    let mut text = String::with_capacity(n * 90);
    text.push_str("{\"version\":1,\"root\":\".\",\"assets\":[\n");
    for i in 0..n {
        if i > 0 {
            text.push_str(",\n");
        }
        write_entry(&mut text, i);
    }
    text.push_str("\n]}\n");
    text
}

/// Set in a child process that parses one manifest once and prints its peak memory.
const PEAK_ENV: &str = "SPINLIFT_BENCH_MANIFEST_PEAK";
const KINDS: [&str; 3] = ["json", "jsonl_read_lines", "jsonl_load_file"];

/// Parses `kind` once in this (fresh) process and prints the time and the peak memory above what was
/// resident before the parse (the input text is resident already and not counted). A fresh process per
/// kind: memory an earlier parse freed would otherwise be reused unseen.
fn measure_once(kind: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let text = if kind == "json" { json(n) } else { jsonl(n) };
    let file = dir.path().join("bench.jsonl");
    std::fs::write(&file, &text).unwrap();
    let peak_known = reset_peak();
    let before = status_bytes("VmRSS");
    let started = Instant::now();
    let manifest = match kind {
        "json" => Manifest::parse(&text, Format::Json, dir.path()),
        "jsonl_read_lines" => Manifest::read_lines(text.as_bytes(), dir.path()),
        _ => Manifest::load(&file),
    }
    .unwrap();
    let took = started.elapsed();
    let (after, peak) = (status_bytes("VmRSS"), status_bytes("VmHWM"));
    assert_eq!(manifest.entries.len(), n);
    if let (Some(before), Some(after), Some(peak)) = (before, after, peak) {
        let mib = |bytes: u64| bytes.saturating_sub(before) as f64 / 1048576.0;
        let per_entry = |bytes: u64| bytes.saturating_sub(before) / n as u64;
        eprintln!(
            "manifest_parse/{kind}: {n} entries parsed once in {took:.2?}; resident +{:.1} MiB = {} bytes \
             per entry; peak +{:.1} MiB = {} bytes per entry{}",
            mib(after),
            per_entry(after),
            mib(peak),
            per_entry(peak),
            if peak_known { "" } else { " (peak not reset: includes the setup)" },
        );
    }
}

fn bench_parse(c: &mut Criterion) {
    let n = entries();
    if let Ok(kind) = std::env::var(PEAK_ENV) {
        measure_once(&kind, n);
        std::process::exit(0);
    }
    if n == ENTRIES {
        let exe = std::env::current_exe().unwrap();
        for kind in KINDS {
            let status = std::process::Command::new(&exe).arg("--bench").env(PEAK_ENV, kind).status();
            assert!(status.as_ref().is_ok_and(|s| s.success()), "measuring {kind} once failed: {status:?}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let json = json(n);
    let jsonl_text = jsonl(n);
    let file = dir.path().join("bench.jsonl");
    std::fs::write(&file, &jsonl_text).unwrap();
    eprintln!(
        "manifest_parse: {n} entries; JSON {:.1} MiB, JSON Lines {:.1} MiB",
        json.len() as f64 / 1048576.0,
        jsonl_text.len() as f64 / 1048576.0
    );
    let root = dir.path();

    let mut group = c.benchmark_group("manifest_parse");
    group.throughput(Throughput::Elements(n as u64));
    // About 0.5-1 s a parse: ten samples of one parse each.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    // Dropping 10^6 entries is the caller's cost, not the parser's: left out of the timing.
    group.bench_function(KINDS[0], |b| {
        b.iter_with_large_drop(|| Manifest::parse(black_box(&json), Format::Json, root).unwrap())
    });
    group.bench_function(KINDS[1], |b| {
        b.iter_with_large_drop(|| Manifest::read_lines(black_box(jsonl_text.as_bytes()), root).unwrap())
    });
    group.bench_function(KINDS[2], |b| b.iter_with_large_drop(|| Manifest::load(black_box(&file)).unwrap()));
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);

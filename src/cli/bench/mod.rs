//! `spinlift bench`: how fast this machine moves files into FileSpin, as a fraction of the raw limit
//! measured in the same run.
//!
//! For each workload the bench generates the files once (cached under `--dir`), then runs three passes,
//! each in a process of its own against a FileSpin of its own (the emulator, also in a separate process,
//! so that the server's CPU is not charged to the client; or `--api-url`): the raw reference client
//! ([`raw`]), spinlift as `spinlift run` runs it, and spinlift without its journal. Every figure of
//! spinlift is also given as a ratio of the raw client's in the same run: these machines are shared
//! and noisy, absolute figures move between runs, ratios much less.

mod raw;
pub(crate) mod worker;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use clap::Args;
use md5::Digest;
use serde::Serialize;
use spinlift::sample::{SampleSet, SampleSpec};
use worker::{Client, Outcome};

use super::{EXIT_OK, EXIT_STOPPED};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// A generated set of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Workload {
    /// 10,000 × 4 KiB: bound by requests (three per file).
    Small,
    /// 8 × 256 MiB: bound by bandwidth and hashing.
    Large,
    /// 200 files of 100 KiB – 20 MiB, log-uniform (a photo library's spread).
    Mixed,
    /// One 1 GiB file: the memory a large upload takes.
    Huge,
    /// A 10⁶-entry JSON Lines manifest whose checkpoint says every entry is registered: the memory per
    /// entry and the time to load, replay and resume it (no uploads, no server).
    Entries,
    /// The `mixed` set read from an S3 source (the emulator's source bucket, in its process) against the
    /// same set from local disk: what streaming from the old storage costs.
    Remote,
}

impl Workload {
    /// The sizes of the workload's files; `count`/`size` override the defaults.
    fn sizes(self, count: Option<usize>, size: Option<u64>) -> Vec<u64> {
        let (default_count, default_size) = match self {
            Workload::Small => (10_000, 4 * KIB),
            Workload::Large => (8, 256 * MIB),
            Workload::Mixed => (200, 0),
            Workload::Huge => (1, 1024 * MIB),
            Workload::Entries => (1_000_000, 0),
            Workload::Remote => (200, 0),
        };
        let count = count.unwrap_or(default_count);
        match (self, size) {
            (Workload::Mixed | Workload::Remote, None) => {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(0x91070);
                let (lo, hi) = ((100 * KIB) as f64, (20 * MIB) as f64);
                (0..count)
                    .map(|_| (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp() as u64)
                    .collect()
            }
            (_, size) => vec![size.unwrap_or(default_size); count],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Small => "small",
            Workload::Large => "large",
            Workload::Mixed => "mixed",
            Workload::Huge => "huge",
            Workload::Entries => "entries",
            Workload::Remote => "remote",
        }
    }
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Workloads to run (default: small, large, mixed).
    #[arg(value_enum)]
    workloads: Vec<Workload>,
    /// Files per workload, instead of the workload's default.
    #[arg(long)]
    count: Option<usize>,
    /// Size of every file (e.g. 64KiB, 10MiB), instead of the workload's default.
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Files in flight, for every client.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rounds per workload, one pass of each client each (alternating order): each client's median pass
    /// is shown, and the median of the rounds' ratios.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// Where the workloads' files are generated and kept between runs (default: a directory in the
    /// system's temporary directory, kept).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measure against this FileSpin instead of local emulators. Every pass uploads the whole workload:
    /// three passes create three times its assets.
    #[arg(long, requires = "api_key")]
    api_url: Option<String>,
    /// API key for --api-url.
    #[arg(long, env = "FILESPIN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// API requests per second for spinlift against --api-url (the raw client never limits itself).
    #[arg(long, default_value_t = 30)]
    api_rps: u32,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 4KiB or 10MiB"))?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => KIB,
        "mib" | "m" => MIB,
        "gib" | "g" => 1024 * MIB,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?}: use B, KiB, MiB, GiB, kB, MB or GB")),
    };
    n.checked_mul(unit).ok_or_else(|| format!("{text:?} is too large"))
}

/// One client's figures on one workload.
#[derive(Debug, Clone, Serialize)]
struct Figures {
    client: Client,
    files: u64,
    failed: u64,
    bytes: u64,
    elapsed_s: f64,
    files_per_s: f64,
    mb_per_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    peak_rss_bytes: u64,
    cpu_s: f64,
    cpu_s_per_gb: f64,
    cpu_s_per_1000_assets: f64,
    first_error: Option<String>,
}

impl Figures {
    fn of(client: Client, mut o: Outcome) -> Figures {
        o.latencies_ms.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if o.latencies_ms.is_empty() {
                return 0.0;
            }
            let i = ((o.latencies_ms.len() as f64 * p).ceil() as usize).clamp(1, o.latencies_ms.len()) - 1;
            o.latencies_ms[i]
        };
        let secs = o.elapsed_s.max(1e-9);
        Figures {
            client,
            files: o.files,
            failed: o.failed,
            bytes: o.bytes,
            elapsed_s: o.elapsed_s,
            files_per_s: o.files as f64 / secs,
            mb_per_s: o.bytes as f64 / 1e6 / secs,
            latency_p50_ms: pct(0.50),
            latency_p99_ms: pct(0.99),
            peak_rss_bytes: o.peak_rss_bytes,
            cpu_s: o.cpu_s,
            cpu_s_per_gb: o.cpu_s / (o.bytes as f64 / 1e9).max(1e-9),
            cpu_s_per_1000_assets: o.cpu_s / (o.files as f64 / 1000.0).max(1e-9),
            first_error: o.first_error,
        }
    }
}

/// A workload's results: each client's median pass, and spinlift's ratios to the raw client.
#[derive(Debug, Clone, Serialize)]
struct WorkloadResult {
    workload: Workload,
    files: usize,
    bytes: u64,
    clients: Vec<Figures>,
    /// spinlift's throughput (files/s for a workload of small files, MB/s otherwise) ÷ the raw client's:
    /// the median over the rounds of each round's ratio (as are the other ratios).
    ratio_to_raw: f64,
    /// The same without spinlift's journal (not measured for `remote`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_raw_no_journal: Option<f64>,
    /// How much longer spinlift took with its journal than without, in percent (not for `remote`).
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_cost_percent: Option<f64>,
    /// Each round's `ratio_to_raw`, in the order the rounds ran: how far the machine's noise moves the
    /// figure (a difference within their spread is not one the run can tell).
    ratio_to_raw_rounds: Vec<f64>,
    /// Each round's `journal_cost_percent`, in the order the rounds ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_cost_percent_rounds: Option<Vec<f64>>,
    /// `remote`: spinlift's throughput reading the set from the S3 source ÷ reading it from local disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_remote_to_local: Option<f64>,
    /// spinlift's MB/s ÷ single-core MD5 speed (for large files, where hashing can be the bound).
    ratio_to_md5: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    spinlift_version: &'static str,
    cores: usize,
    concurrency: usize,
    repeat: u32,
    target: String,
    md5_single_core_mb_per_s: f64,
    workloads: Vec<WorkloadResult>,
    entries: Option<EntriesResult>,
}

/// The `entries` workload: a finished batch of `count` entries resumed.
#[derive(Debug, Clone, Serialize)]
struct EntriesResult {
    count: usize,
    /// Load the manifest, replay and rewrite the checkpoint, drain every entry, write nothing else.
    resume_s: f64,
    /// The journal replay alone (in the bench's own process, after the resume).
    replay_s: f64,
    peak_rss_bytes: u64,
    /// The same for 1,000 entries: what the process costs without the entries.
    baseline_rss_bytes: u64,
    /// (peak − baseline) / (count − 1,000).
    bytes_per_entry: f64,
}

pub(crate) async fn bench(args: BenchArgs) -> u8 {
    match run_bench(args).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_STOPPED
        }
    }
}

async fn run_bench(args: BenchArgs) -> Result<(), String> {
    let workloads = if args.workloads.is_empty() {
        vec![Workload::Small, Workload::Large, Workload::Mixed]
    } else {
        args.workloads.clone()
    };
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("spinlift-bench"));
    let md5_mb_s = md5_speed();
    eprintln!("MD5 on one core: {md5_mb_s:.0} MB/s");
    let mut results = Results {
        spinlift_version: env!("CARGO_PKG_VERSION"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        concurrency: args.concurrency,
        repeat: args.repeat,
        target: args.api_url.clone().unwrap_or_else(|| "local emulator (separate process)".into()),
        md5_single_core_mb_per_s: md5_mb_s,
        workloads: Vec::new(),
        entries: None,
    };
    for workload in workloads {
        if workload == Workload::Entries {
            results.entries = Some(entries_workload(&dir, args.count.unwrap_or(1_000_000))?);
            continue;
        }
        let sizes = workload.sizes(args.count, args.size);
        // The remote workload's files are the source bucket's objects: `<dir>/remote/source/…`, served
        // by the emulator's source bucket `source` (its directory is `<dir>/remote`).
        let set_dir = match workload {
            Workload::Remote => dir.join("remote").join("source"),
            _ => dir.join(workload.name()),
        };
        let set = generate(&set_dir, &sizes)?;
        let remote = match workload {
            Workload::Remote => Some(remote_manifest(&set, &dir.join("remote"))?),
            _ => None,
        };
        let bytes: u64 = sizes.iter().sum();
        eprintln!(
            "{}: {} files, {:.1} MiB, {} in flight",
            workload.name(),
            sizes.len(),
            bytes as f64 / MIB as f64,
            args.concurrency
        );
        let clients = match workload {
            Workload::Remote => [Client::Raw, Client::Spinlift, Client::SpinliftRemote],
            _ => [Client::Raw, Client::Spinlift, Client::SpinliftNoJournal],
        };
        let mut passes: Vec<Vec<Outcome>> = vec![Vec::new(); clients.len()];
        for round in 0..args.repeat {
            let mut order: Vec<usize> = (0..clients.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let outcome = pass(&args, &set, remote.as_ref(), clients[i], &dir)?;
                eprintln!(
                    "  {:<22} {:>8.1} files/s {:>8.1} MB/s{}",
                    clients[i].label(),
                    outcome.files as f64 / outcome.elapsed_s.max(1e-9),
                    outcome.bytes as f64 / 1e6 / outcome.elapsed_s.max(1e-9),
                    match &outcome.first_error {
                        Some(e) => format!("  ({} failed: {e})", outcome.failed),
                        None => String::new(),
                    }
                );
                passes[i].push(outcome);
            }
        }
        let request_bound = bytes / sizes.len().max(1) as u64 <= 256 * KIB;
        let throughput = |o: &Outcome| {
            let per_s = if request_bound { o.files as f64 } else { o.bytes as f64 / 1e6 };
            per_s / o.elapsed_s.max(1e-9)
        };
        // Each round's passes ran back to back: their ratio is the figure least moved by the machine's
        // drift between rounds. The median of the rounds' ratios is reported, and each round's.
        let rounds = |a: usize, b: usize, f: &dyn Fn(&Outcome, &Outcome) -> f64| -> Vec<f64> {
            passes[a].iter().zip(&passes[b]).map(|(x, y)| f(x, y)).collect()
        };
        let ratio = |a: usize, b: usize| rounds(a, b, &|x, y| throughput(x) / throughput(y).max(1e-9));
        let is_remote = workload == Workload::Remote;
        let ratio_to_raw_rounds = ratio(1, 0);
        let ratio_to_raw = median(ratio_to_raw_rounds.clone());
        let ratio_to_raw_no_journal = (!is_remote).then(|| median(ratio(2, 0)));
        let journal_cost_percent_rounds =
            (!is_remote).then(|| rounds(1, 2, &|x, y| (x.elapsed_s / y.elapsed_s.max(1e-9) - 1.0) * 100.0));
        let journal_cost_percent = journal_cost_percent_rounds.clone().map(median);
        let ratio_remote_to_local = is_remote.then(|| median(ratio(2, 1)));
        let ratio_to_md5 =
            median(passes[1].iter().map(|o| o.bytes as f64 / 1e6 / o.elapsed_s.max(1e-9)).collect())
                / md5_mb_s.max(1e-9);
        let figures: Vec<Figures> = clients
            .iter()
            .zip(passes)
            .map(|(&client, mut outcomes)| {
                outcomes.sort_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s));
                Figures::of(client, outcomes.swap_remove(outcomes.len() / 2))
            })
            .collect();
        results.workloads.push(WorkloadResult {
            workload,
            files: sizes.len(),
            bytes,
            ratio_to_raw,
            ratio_to_raw_no_journal,
            journal_cost_percent,
            ratio_to_raw_rounds,
            journal_cost_percent_rounds,
            ratio_remote_to_local,
            ratio_to_md5,
            clients: figures,
        });
    }
    print_table(&results);
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// ` (rounds LOW … HIGH)` for more than one round, each shown by `show`; nothing for one.
fn spread(rounds: &[f64], show: impl Fn(f64) -> String) -> String {
    if rounds.len() < 2 {
        return String::new();
    }
    let low = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let high = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(" (rounds {} … {})", show(low), show(high))
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// MB/s of MD5 over 256 MiB in memory on one core.
fn md5_speed() -> f64 {
    let buf = vec![0x5au8; 4 * MIB as usize];
    let started = std::time::Instant::now();
    let mut md5 = md5::Md5::new();
    for _ in 0..64 {
        md5.update(&buf);
    }
    std::hint::black_box(md5.finalize());
    (64 * buf.len()) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// The workload's files under `dir`, generated unless the same sizes are there already.
fn generate(dir: &Path, sizes: &[u64]) -> Result<SampleSet, String> {
    let stamp = dir.join("sizes.json");
    let wanted = serde_json::to_string(sizes).map_err(|e| e.to_string())?;
    let spec = SampleSpec { sizes: sizes.to_vec(), seed: 5 };
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && let Ok(manifest) = spinlift::Manifest::load(&dir.join("manifest.json"))
    {
        let files = manifest
            .entries
            .iter()
            .zip(sizes)
            .map(|(e, &size)| spinlift::sample::SampleFile {
                id: e.id().to_owned(),
                path: e.path().to_owned(),
                size,
                md5: String::new(),
            })
            .collect();
        return Ok(SampleSet { dir: dir.to_path_buf(), manifest: manifest.source, files });
    }
    eprintln!("generating {} files in {}", sizes.len(), dir.display());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let set = SampleSet::write(dir, &spec).map_err(|e| format!("cannot write the workload: {e}"))?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(set)
}

/// The manifest of `set` read from the source bucket `source` (whose directory is `bucket_dir`), as
/// `spinlift scan s3://source/` would write it: the same ids, so both passes register the same entries.
fn remote_manifest(set: &SampleSet, bucket_dir: &Path) -> Result<PathBuf, String> {
    let path = bucket_dir.join("remote.jsonl");
    let mut text = String::from("{\"version\":1,\"source_root\":\"s3://source/\"}\n");
    for file in &set.files {
        let line = serde_json::json!({"source": file.path, "id": file.id});
        text += &format!("{line}\n");
    }
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// `count` entries as `scan` would list them, with a checkpoint in which every one is registered.
fn finished_batch(dir: &Path, count: usize) -> Result<PathBuf, String> {
    use spinlift_manifest::journal::{Journal, JournalOptions, Record};
    let dir = dir.join(format!("entries-{count}"));
    let manifest = dir.join("manifest.jsonl");
    let checkpoint = dir.join("manifest.jsonl.checkpoint");
    if manifest.exists() && checkpoint.exists() {
        return Ok(manifest);
    }
    eprintln!("writing a finished batch of {count} entries in {}", dir.display());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let paths: Vec<String> =
        (0..count).map(|i| format!("photos/{}/{:02}/IMG_{i:07}.jpg", 2010 + i % 15, i % 12 + 1)).collect();
    let mut text = String::with_capacity(count * 90);
    for (i, path) in paths.iter().enumerate() {
        text += &format!("{{\"path\":\"{path}\",\"size\":{},\"mtime_ms\":1700000000000}}\n", 100_000 + i);
    }
    std::fs::write(&manifest, text).map_err(|e| e.to_string())?;
    let fingerprint = spinlift::checkpoint_fingerprint(
        paths.iter().map(String::as_str),
        &std::path::absolute(&dir).map_err(|e| e.to_string())?,
        None,
    );
    let runtime = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        runtime.block_on(async {
            let options = JournalOptions { durable: false, ..JournalOptions::default() };
            let journal =
                Journal::open(&checkpoint, &fingerprint, None, options).await.map_err(|e| e.to_string())?;
            for (i, path) in paths.iter().enumerate() {
                let state = spinlift_core::State::Registered {
                    asset_id: format!("{i:032x}"),
                    size: 100_000 + i as u64,
                    md5: format!("{:032x}", i as u128 * 7919),
                };
                let stamp = spinlift_manifest::journal::SourceStamp {
                    size: 100_000 + i as u64,
                    mtime_ms: 1_700_000_000_000,
                    tag: 0,
                };
                journal
                    .append_nowait(Record::new(path.as_str(), state).with_source(stamp).line())
                    .map_err(|e| e.to_string())?;
            }
            journal.close().await.map_err(|e| e.to_string())
        })
    })?;
    Ok(manifest)
}

/// Resumes finished batches of `count` and of 1,000 entries, each in a process of its own.
fn entries_workload(dir: &Path, count: usize) -> Result<EntriesResult, String> {
    let resume = |n: usize| -> Result<Outcome, String> {
        let manifest = finished_batch(dir, n)?;
        let out = dir.join(format!("entries-{n}.outcome.json"));
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let status = Command::new(exe)
            .args([
                "bench-worker",
                "--client",
                "spinlift",
                "--api-url",
                "http://127.0.0.1:9",
                "--concurrency",
                "16",
            ])
            .arg("--manifest")
            .arg(&manifest)
            .arg("--checkpoint")
            .arg(manifest.with_extension("jsonl.checkpoint"))
            .arg("--out")
            .arg(&out)
            .env("FILESPIN_API_KEY", "unused")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot start the worker: {e}"))?;
        if !status.success() {
            return Err(format!("resuming {n} entries failed ({status})"));
        }
        let outcome: Outcome = serde_json::from_slice(&std::fs::read(&out).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if outcome.files != n as u64 {
            return Err(format!("resuming {n} entries found {} registered", outcome.files));
        }
        Ok(outcome)
    };
    let baseline = resume(1_000)?;
    let big = resume(count)?;
    let bytes_per_entry = big.peak_rss_bytes.saturating_sub(baseline.peak_rss_bytes) as f64
        / (count.saturating_sub(1_000).max(1)) as f64;
    let checkpoint = dir.join(format!("entries-{count}")).join("manifest.jsonl.checkpoint");
    let started = std::time::Instant::now();
    let replayed = spinlift_manifest::journal::replay(&checkpoint).map_err(|e| e.to_string())?;
    let replay_s = started.elapsed().as_secs_f64();
    if replayed.map(|r| r.len()) != Some(count) {
        return Err(format!("the checkpoint of {count} entries did not replay to {count} entries"));
    }
    eprintln!(
        "entries: {count} registered entries resumed in {:.2} s, peak RSS {:.1} MiB ({:.1} MiB for 1,000): {:.0} B per entry",
        big.elapsed_s,
        big.peak_rss_bytes as f64 / MIB as f64,
        baseline.peak_rss_bytes as f64 / MIB as f64,
        bytes_per_entry
    );
    Ok(EntriesResult {
        count,
        resume_s: big.elapsed_s,
        replay_s,
        peak_rss_bytes: big.peak_rss_bytes,
        baseline_rss_bytes: baseline.peak_rss_bytes,
        bytes_per_entry,
    })
}

/// A local FileSpin in a child process, with its objects under a directory of its own.
struct ChildEmulator {
    child: Child,
    api_url: String,
    /// With a source bucket: the `AWS_*` variables a client reaches it with.
    source_env: Vec<(String, String)>,
    storage: tempfile::TempDir,
}

impl ChildEmulator {
    /// Starts the emulator; with `source_dir`, also its source bucket over that directory.
    fn start(scratch: &Path, source_dir: Option<&Path>) -> Result<ChildEmulator, String> {
        // The objects go to memory where there is a tmpfs: on a disk, deleting one pass's objects makes
        // the file system slow for the next pass (measured: the raw client at 2,148 files/s on a fresh
        // disk, 400-500 right after a deletion), and the bench would measure the server's disk.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm } else { scratch };
        let storage = tempfile::tempdir_in(base).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(exe);
        command.args(["emulator", "--storage-dir"]).arg(storage.path());
        if let Some(dir) = source_dir {
            command.arg("--source-dir").arg(dir);
        }
        let mut child = command
            .env("SPINLIFT_EMULATOR_API_KEY", EMULATOR_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the emulator: {e}"))?;
        let stdout = child.stdout.take().ok_or("the emulator has no stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut api_url = None;
        let mut source_env = Vec::new();
        // The API URL comes first; with a source bucket, its `AWS_*` lines until the web server's.
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("FILESPIN_API_URL=") {
                        api_url = Some(url.to_owned());
                        if source_dir.is_none() {
                            break;
                        }
                    } else if let Some((name, value)) = line.split_once('=')
                        && name.starts_with("AWS_")
                    {
                        source_env.push((name.to_owned(), value.to_owned()));
                    } else if line.starts_with("source web server:") {
                        break;
                    }
                }
                _ => return Err("the emulator did not start".into()),
            }
        }
        let api_url = api_url.ok_or("the emulator gave no API URL")?;
        // Keep reading: an emulator whose stdout is closed dies on its next line.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(ChildEmulator { child, api_url, source_env, storage })
    }
}

impl Drop for ChildEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.storage.path());
    }
}

const EMULATOR_KEY: &str = "bench-emulator-key";

/// One client's pass over the workload, in a child process against a fresh FileSpin.
fn pass(
    args: &BenchArgs,
    set: &SampleSet,
    remote: Option<&PathBuf>,
    client: Client,
    dir: &Path,
) -> Result<Outcome, String> {
    let scratch = tempfile::tempdir_in(dir).map_err(|e| e.to_string())?;
    // The remote workload's passes all run against an emulator with the source bucket (the local
    // passes leave it idle), so that each pass has the same servers beside it.
    let source_dir = remote.and_then(|manifest| manifest.parent());
    let (emulator, api_url, api_key, api_rps) = match &args.api_url {
        Some(url) => (None, url.clone(), args.api_key.clone().unwrap_or_default(), args.api_rps),
        None => {
            let emulator = ChildEmulator::start(scratch.path(), source_dir)?;
            let url = emulator.api_url.clone();
            (Some(emulator), url, EMULATOR_KEY.to_owned(), 0)
        }
    };
    let out = scratch.path().join("outcome.json");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let manifest = match (client, remote) {
        (Client::SpinliftRemote, Some(remote)) => remote.clone(),
        _ => set.manifest.clone(),
    };
    let mut command = Command::new(exe);
    if let Some(emulator) = &emulator {
        command.envs(emulator.source_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    let status = command
        .arg("bench-worker")
        .args(["--client", client.to_possible_value_name()])
        .arg("--manifest")
        .arg(&manifest)
        .args(["--api-url", &api_url, "--api-rps", &api_rps.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .arg("--checkpoint")
        .arg(scratch.path().join("bench.checkpoint"))
        .arg("--out")
        .arg(&out)
        .env("FILESPIN_API_KEY", api_key)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start the worker: {e}"))?;
    drop(emulator);
    if !status.success() {
        return Err(format!("the {} pass failed ({status})", client.label()));
    }
    let json =
        std::fs::read(&out).map_err(|e| format!("no outcome from the {} pass: {e}", client.label()))?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

trait PossibleValueName {
    fn to_possible_value_name(self) -> &'static str;
}

impl PossibleValueName for Client {
    fn to_possible_value_name(self) -> &'static str {
        match self {
            Client::Raw => "raw",
            Client::Spinlift => "spinlift",
            Client::SpinliftNoJournal => "spinlift-no-journal",
            Client::SpinliftRemote => "spinlift-remote",
        }
    }
}

fn print_table(results: &Results) {
    if let Some(e) = &results.entries {
        println!(
            "\nentries: {} registered entries resumed (manifest loaded, checkpoint replayed and rewritten) in \
             {:.2} s (the replay alone: {:.2} s); peak RSS {:.1} MiB, {:.0} bytes per entry over a 1,000-entry \
             baseline",
            e.count,
            e.resume_s,
            e.replay_s,
            e.peak_rss_bytes as f64 / MIB as f64,
            e.bytes_per_entry
        );
    }
    println!(
        "\nspinlift {} bench, {} cores, {} in flight, against {}; MD5 on one core {:.0} MB/s",
        results.spinlift_version,
        results.cores,
        results.concurrency,
        results.target,
        results.md5_single_core_mb_per_s
    );
    println!(
        "{:<8} {:<22} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>7}",
        "workload",
        "client",
        "files/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "peak RSS",
        "CPU s/GB",
        "CPU s/1k",
        "failed"
    );
    for w in &results.workloads {
        for f in &w.clients {
            println!(
                "{:<8} {:<22} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>7.1}Mi {:>9.2} {:>10.2} {:>7}",
                w.workload.name(),
                f.client.label(),
                f.files_per_s,
                f.mb_per_s,
                f.latency_p50_ms,
                f.latency_p99_ms,
                f.peak_rss_bytes as f64 / MIB as f64,
                f.cpu_s_per_gb,
                f.cpu_s_per_1000_assets,
                f.failed
            );
        }
        let unit = if w.bytes / w.files.max(1) as u64 <= 256 * KIB { "files/s" } else { "MB/s" };
        match (w.ratio_to_raw_no_journal, w.journal_cost_percent, w.ratio_remote_to_local) {
            (Some(no_journal), Some(cost), _) => println!(
                "{:<8} spinlift ÷ raw: {:.2}× ({unit}){}; without journal {no_journal:.2}×; journal cost {cost:+.1} %{}; ÷ MD5 speed {:.2}×",
                "",
                w.ratio_to_raw,
                spread(&w.ratio_to_raw_rounds, |r| format!("{r:.2}×")),
                spread(w.journal_cost_percent_rounds.as_deref().unwrap_or_default(), |c| format!(
                    "{c:+.1} %"
                )),
                w.ratio_to_md5
            ),
            (_, _, Some(remote)) => println!(
                "{:<8} spinlift ÷ raw: {:.2}× ({unit}); from the S3 source ÷ from local disk: {remote:.2}×",
                "", w.ratio_to_raw
            ),
            _ => {}
        }
    }
}

//! One measured pass of `spinlift bench`, in a process of its own (`spinlift bench-worker`), so that its
//! peak memory and CPU time are its own: spinlift (with or without its journal) or the raw reference
//! client uploads one workload's manifest, then reports what it did as one JSON object.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};
use spinlift::{Engine, EntryReport, Manifest, Observer, Secret};

use crate::cli::{EXIT_OK, EXIT_STOPPED};

/// Which client a pass measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Client {
    /// The minimal reference client: three requests per file, nothing else.
    Raw,
    /// spinlift as `spinlift run -q` runs it: checkpoint journal, retries, adaptive concurrency.
    Spinlift,
    /// spinlift without its checkpoint journal.
    SpinliftNoJournal,
    /// spinlift as `spinlift run` runs it, reading the workload from an S3 source.
    SpinliftRemote,
}

impl Client {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Client::Raw => "raw client",
            Client::Spinlift => "spinlift",
            Client::SpinliftNoJournal => "spinlift, no journal",
            Client::SpinliftRemote => "spinlift, S3 source",
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) files: u64,
    pub(crate) failed: u64,
    pub(crate) bytes: u64,
    pub(crate) elapsed_s: f64,
    /// From the first request of an asset to its registration, per registered asset.
    pub(crate) latencies_ms: Vec<f64>,
    pub(crate) peak_rss_bytes: u64,
    pub(crate) cpu_s: f64,
    pub(crate) first_error: Option<String>,
}

#[derive(Args)]
pub(crate) struct WorkerArgs {
    /// The client to run.
    #[arg(long, value_enum)]
    client: Client,
    /// The workload's manifest.
    #[arg(long)]
    manifest: PathBuf,
    /// FileSpin's base URL.
    #[arg(long)]
    api_url: String,
    /// API requests per second for spinlift (0: none; the raw client never limits).
    #[arg(long, default_value_t = 0)]
    api_rps: u32,
    /// Files in flight.
    #[arg(long)]
    concurrency: usize,
    /// Where spinlift's checkpoint goes (a fresh path per pass).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Where the outcome (JSON) goes.
    #[arg(long)]
    out: PathBuf,
}

/// Per-asset latency from `started` to `finished`.
#[derive(Default)]
struct Latencies {
    started: Mutex<HashMap<String, Instant>>,
    done_ms: Mutex<Vec<f64>>,
}

impl Observer for Latencies {
    fn started(&self, id: &str) {
        self.started.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), Instant::now());
    }
    fn finished(&self, entry: &EntryReport) {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner()).remove(&entry.id);
        if let Some(t) = started
            && entry.is_registered()
        {
            self.done_ms.lock().unwrap_or_else(|e| e.into_inner()).push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

pub(crate) async fn worker(args: WorkerArgs) -> u8 {
    let api_key = std::env::var("FILESPIN_API_KEY").unwrap_or_default();
    let manifest = match Manifest::load(&args.manifest) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    let mut outcome = match args.client {
        Client::Raw => super::raw::run(&manifest, &args.api_url, &api_key, args.concurrency).await,
        Client::Spinlift | Client::SpinliftNoJournal | Client::SpinliftRemote => {
            let mut builder = Engine::builder(args.api_url, Secret::new(api_key))
                .concurrency(args.concurrency)
                .api_rps(args.api_rps);
            builder = match (&args.checkpoint, args.client) {
                (Some(path), Client::Spinlift | Client::SpinliftRemote) => builder.checkpoint(path),
                _ => builder.no_checkpoint(),
            };
            let engine = match builder.build() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_STOPPED;
                }
            };
            let latencies = std::sync::Arc::new(Latencies::default());
            let started = Instant::now();
            let report = engine.run(&manifest, engine.options(), latencies.clone(), Default::default()).await;
            let elapsed_s = started.elapsed().as_secs_f64();
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_STOPPED;
                }
            };
            let failed: Vec<_> = report.entries().filter(|e| !e.is_registered()).collect();
            Outcome {
                files: report.registered() as u64,
                failed: failed.len() as u64,
                bytes: report.registered_bytes(),
                elapsed_s,
                latencies_ms: std::mem::take(
                    &mut *latencies.done_ms.lock().unwrap_or_else(|e| e.into_inner()),
                ),
                first_error: failed.first().and_then(|e| e.error.clone()),
                ..Outcome::default()
            }
        }
    };
    if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        // The peak resident set of this process image: /proc's VmHWM where there is one. (getrusage's
        // ru_maxrss survives fork and exec on Linux: it would report the bench's own size when that is
        // larger.) Both in KiB.
        let hwm = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        outcome.peak_rss_bytes = hwm.unwrap_or(usage.max_rss() as u64) * 1024;
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        outcome.cpu_s = secs(usage.user_time()) + secs(usage.system_time());
    }
    let json = serde_json::to_vec(&outcome).expect("an outcome serializes");
    if let Err(e) = std::fs::write(&args.out, json) {
        eprintln!("error: cannot write {}: {e}", args.out.display());
        return EXIT_STOPPED;
    }
    EXIT_OK
}

//! `spinlift run MANIFEST`: the CLI contract's main command.

use std::path::PathBuf;

use clap::Args;
use spinlift::{CancellationToken, Engine, EngineConfig, Manifest, RunReport, Secret, StopReason};
use spinlift_core::FailureKind;

use super::progress::Progress;
use super::{EXIT_FAILED_ASSETS, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, cancel_on_signal};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The manifest: JSON, or JSON Lines (.jsonl) with one asset per line.
    manifest: PathBuf,
    /// FileSpin's base URL.
    #[arg(long, env = "FILESPIN_API_URL", default_value = "https://app.filespin.io")]
    api_url: String,
    /// FileSpin API key (prefer the environment variable: flags show up in process lists).
    #[arg(long, env = "FILESPIN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Assets in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Write one JSON line per manifest entry (id, path, status, asset_id, size, checksum, error).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where the checkpoint journal goes (default: beside the manifest).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn run(args: RunArgs) -> u8 {
    let manifest = match Manifest::load(&args.manifest) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    let Some(api_key) = args.api_key.filter(|k| !k.trim().is_empty()) else {
        eprintln!("error: no FileSpin API key: set FILESPIN_API_KEY or pass --api-key");
        return EXIT_STOPPED;
    };
    let mut config = EngineConfig::new(args.api_url, Secret::new(api_key));
    config.concurrency = args.concurrency as usize;
    let engine = match Engine::new(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    let total_bytes: u64 = manifest
        .entries
        .iter()
        .filter_map(|e| std::fs::metadata(manifest.root.join(&e.path)).ok())
        .map(|m| m.len())
        .sum();
    let progress = Progress::new(manifest.entries.len() as u64, total_bytes, args.quiet);
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let report = engine.run(&manifest, &progress, cancel).await;
    progress.finish();
    let mut code = finish(&report);
    if let Some(path) = &args.report
        && let Err(e) = report.write_jsonl(path)
    {
        eprintln!("error: cannot write the report {}: {e}", path.display());
        code = code.max(EXIT_FAILED_ASSETS);
    }
    code
}

/// Prints the summary and the failures; returns the exit code.
pub(crate) fn finish(report: &RunReport) -> u8 {
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let bytes = report.registered_bytes();
    eprintln!(
        "{} registered, {} failed, {} not finished; {:.1} MiB in {:.1} s ({:.1} files/s, {:.1} MB/s)",
        report.registered(),
        report.failed(),
        report.pending(),
        bytes as f64 / 1048576.0,
        secs,
        report.registered() as f64 / secs,
        bytes as f64 / 1e6 / secs,
    );
    let failed: Vec<_> = report.entries.iter().filter(|e| e.status == "failed").collect();
    for e in failed.iter().take(20) {
        eprintln!("  failed: {}: {}", e.path, e.error.as_deref().unwrap_or("unknown error"));
    }
    if failed.len() > 20 {
        eprintln!("  … and {} more (see --report)", failed.len() - 20);
    }
    match &report.stopped {
        Some(StopReason::Batch(failure)) => {
            let advice = match &failure.kind {
                FailureKind::Status { status: 401, .. } => {
                    "FileSpin refused the API key (401): check FILESPIN_API_KEY or --api-key (the key is not shown here)"
                }
                FailureKind::Status { status: 403, .. } => {
                    "FileSpin refused the request (403): the account may be disabled, its upload limit reached, or the key lacks permission"
                }
                _ => "FileSpin refused the batch",
            };
            eprintln!("error: stopped: {advice}. Server said: {failure}");
            eprintln!("nothing already registered is lost; fix the cause and run the same command again");
            EXIT_STOPPED
        }
        Some(StopReason::Cancelled) => {
            eprintln!("interrupted: run the same command again to continue");
            EXIT_INTERRUPTED
        }
        _ if report.failed() > 0 => EXIT_FAILED_ASSETS,
        _ => EXIT_OK,
    }
}

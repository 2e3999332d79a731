//! `spinlift run MANIFEST`: the CLI contract's main command.

use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;

use clap::Args;
use spinlift::{
    CancellationToken, Checkpoint, Engine, EngineConfig, Manifest, Plan, RunOptions, RunReport, Secret,
    Sources, SourcesConfig, StopReason,
};
use spinlift_core::FailureKind;
use spinlift_transport::parse_bandwidth;

use super::config::{self, FileConfig, ServiceData};
use super::estimate;
use super::progress::Progress;
use super::shard::{self, RunShardArgs};
use super::{EXIT_FAILED_ASSETS, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, cancel_on_signal};

// Settings a config file may also give are `Option`s: "not given" must differ from the default, which
// applies only after flags, environment and file are merged (see `config`). `--help` names the default.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The manifest: JSON, or JSON Lines (.jsonl) with one asset per line.
    manifest: PathBuf,
    /// Settings file (TOML) under flags and environment [default: ./spinlift.toml when it exists].
    #[arg(long, env = "SPINLIFT_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// FileSpin's base URL [default: https://app.filespin.io].
    #[arg(long, env = "FILESPIN_API_URL", value_name = "URL")]
    api_url: Option<String>,
    /// FileSpin API key (prefer the environment variable: flags show up in process lists).
    #[arg(long, env = "FILESPIN_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
    /// Assets in flight at once [default: 16].
    #[arg(long, env = "SPINLIFT_CONCURRENCY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: Option<u32>,
    /// FileSpin API requests per second (FileSpin documents 30 for most APIs); 0 for no limit [default: 30].
    #[arg(long, env = "SPINLIFT_API_RPS", value_name = "N")]
    api_rps: Option<u32>,
    /// S3 uploads started per second; 0 for no limit [default: 0].
    #[arg(long, env = "SPINLIFT_S3_RPS", value_name = "N")]
    s3_rps: Option<u32>,
    /// Upload bandwidth over all uploads, e.g. 50MiB/s, 10MB/s, 800KiB/s [default: no limit].
    #[arg(long, env = "SPINLIFT_BWLIMIT", value_name = "RATE", value_parser = parse_bandwidth)]
    bwlimit: Option<NonZeroU64>,
    /// Requests per second to remote sources (s3://, gs://, az://, https:// entries: one HEAD and one
    /// GET an object, and listing pages), over all of them; 0 for no limit [default: 0].
    #[arg(long, env = "SPINLIFT_SOURCE_RPS", value_name = "N")]
    source_rps: Option<u32>,
    /// Allow plain http:// to hosts other than loopback, for FileSpin, storage and remote sources (the
    /// key, forms and bytes cross the network in clear).
    #[arg(long)]
    allow_http: bool,
    /// `service_data.app` sent with every registration, over the manifest's and the config file's
    /// [default: spinlift].
    #[arg(long, value_name = "NAME")]
    service_app: Option<String>,
    /// `service_data.build` sent with every registration, over the manifest's and the config file's
    /// [default: this spinlift's version].
    #[arg(long, value_name = "VERSION")]
    service_build: Option<String>,
    /// One `service_data.deployment_data` entry (repeatable), over the manifest's and the config file's.
    #[arg(long, value_name = "KEY=VALUE", value_parser = config::parse_key_value)]
    deployment_data: Vec<(String, String)>,
    /// Write one JSON line per manifest entry (id, path, status, asset_id, size, checksum, error,
    /// metadata_set, filespin_status).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Where the checkpoint journal goes (default: beside the manifest, `<manifest>.checkpoint`).
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Keep no checkpoint journal: a re-run starts over and may upload files again.
    #[arg(long, conflicts_with = "checkpoint")]
    no_checkpoint: bool,
    /// Check the manifest and every file, say what would be uploaded and how long it would take (the API
    /// limit, --upload-rate/--bwlimit, --s3-rps); send nothing (no API key needed).
    #[arg(long)]
    dry_run: bool,
    /// For --dry-run's estimate: the upload bandwidth you expect, e.g. 40MB/s (measure it with
    /// `spinlift bench large --api-url URL`) [default: --bwlimit].
    #[arg(long, value_name = "RATE", value_parser = parse_bandwidth, requires = "dry_run")]
    upload_rate: Option<NonZeroU64>,
    /// Try again the entries that failed for good in an earlier run.
    #[arg(long)]
    retry_failed: bool,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    /// Seconds between progress lines when stderr is not a terminal (a log file, a CI job).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    progress_interval: f64,
    /// After registration, read each asset back until FileSpin has processed it, and check its size and
    /// checksum: an ERROR or a mismatch fails the entry.
    #[arg(long)]
    pub(crate) verify: bool,
    /// Do not tag assets: by default each asset's entry id and the batch name go into
    /// `filespin_search_txt`, which FileSpin's search indexes (one more API call per file).
    #[arg(long)]
    no_tag: bool,
    /// The batch name in the tag [default: the manifest's file name without its extension].
    #[arg(long, value_name = "NAME", conflicts_with = "no_tag")]
    batch: Option<String>,
    #[arg(skip)]
    pub(crate) registered_only: bool,
    #[command(flatten)]
    shard: RunShardArgs,
}

/// Built-in defaults, applied after flags, environment and config file (keep `--help` in step).
const DEFAULT_API_URL: &str = "https://app.filespin.io";
const DEFAULT_CONCURRENCY: u32 = 16;
const DEFAULT_API_RPS: u32 = 30;
const DEFAULT_S3_RPS: u32 = 0;

pub(crate) async fn run(args: RunArgs) -> u8 {
    let file = match config::locate(args.config.as_deref()) {
        Ok(Some(path)) => match config::load(&path) {
            Ok((file, warnings)) => {
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
                file
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_STOPPED;
            }
        },
        Ok(None) => FileConfig::default(),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    // Each setting: flag, then environment (clap reads both), then the config file, then the default.
    let shard = match args.shard.resolve() {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    // Rates given to a shard are the fleet's: each of N workers takes an Nth (see the README on why
    // that is only an approximation).
    let shards = shard.map_or(1, |s| s.count());
    let fleet = |rate: u32| shard::per_worker(u64::from(rate), shards) as u32;
    let api_rps = fleet(args.api_rps.or(file.api_rps).unwrap_or(DEFAULT_API_RPS));
    let concurrency = args.concurrency.or(file.concurrency).unwrap_or(DEFAULT_CONCURRENCY);
    let loaded = match shard {
        Some(shard) => Manifest::load_shard(&args.manifest, shard),
        None => Manifest::load(&args.manifest),
    };
    let mut manifest = match loaded {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    let flags = ServiceData {
        app: args.service_app,
        build: args.service_build,
        deployment_data: args.deployment_data.into_iter().map(|(k, v)| (k, v.into())).collect(),
    };
    let service_data = config::merge_service_data(&file.service_data, manifest.service_data.as_ref(), &flags);
    manifest.service_data = Some(service_data.clone());
    if let Some(shard) = shard {
        eprintln!("shard {shard}: {} entries of the manifest are this shard's", manifest.entries.len());
    }
    let bwlimit =
        args.bwlimit.or(file.bwlimit).and_then(|b| NonZeroU64::new(shard::per_worker(b.get(), shards)));
    if args.dry_run {
        let s3_rps = fleet(args.s3_rps.or(file.s3_rps).unwrap_or(0));
        let rate = args.upload_rate.or(bwlimit).map(NonZeroU64::get);
        // content_storage_url and register_asset; Update Data for the tag or the entry's data; Get Data
        // to verify (more while FileSpin reports NOT_READY).
        let has_data = !args.no_tag || manifest.entries.iter().any(|e| e.data().is_some());
        let calls = 2 + u32::from(has_data) + u32::from(args.verify);
        let mut sources = SourcesConfig::default();
        sources.allow_http = args.allow_http || file.allow_http.unwrap_or(false);
        sources.rps = NonZeroU32::new(fleet(args.source_rps.or(file.source_rps).unwrap_or(0)));
        let sources = match Sources::new(sources) {
            Ok(sources) => sources,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_STOPPED;
            }
        };
        let plan = Plan::of(&manifest, &sources).await;
        return dry_run(&manifest, &plan, api_rps, calls, s3_rps, rate);
    }
    let non_empty = |k: &String| !k.trim().is_empty();
    let Some(api_key) = args.api_key.filter(non_empty).or(file.api_key.filter(non_empty)) else {
        eprintln!(
            "error: no FileSpin API key: set FILESPIN_API_KEY, pass --api-key, or put api_key in the config \
             file ({})",
            config::DEFAULT_FILE
        );
        return EXIT_STOPPED;
    };
    let api_url = args.api_url.or(file.api_url).unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    // Trimmed: a key read from a file (a Kubernetes Secret made with --from-file) often ends in a newline.
    let mut config = EngineConfig::new(api_url, Secret::new(api_key.trim()));
    config.concurrency = concurrency as usize;
    config.api_rps = NonZeroU32::new(api_rps);
    config.s3_rps = NonZeroU32::new(fleet(args.s3_rps.or(file.s3_rps).unwrap_or(DEFAULT_S3_RPS)));
    config.bandwidth = bwlimit;
    // A flag that can only say yes: given, it wins; absent, the file decides.
    config.allow_http = args.allow_http || file.allow_http.unwrap_or(false);
    config.source_rps = NonZeroU32::new(fleet(args.source_rps.or(file.source_rps).unwrap_or(0)));
    config.service_data = service_data;
    config.verify = args.verify;
    config.tag = !args.no_tag;
    config.batch = args
        .batch
        .clone()
        .or_else(|| args.manifest.file_stem().map(|stem| stem.to_string_lossy().into_owned()));
    let engine = match Engine::new(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    // Remote objects' sizes are not known before their HEAD: the bar's bytes count local files only.
    let total_bytes: u64 = manifest
        .entries
        .iter()
        .filter(|e| !e.is_remote())
        .filter_map(|e| std::fs::metadata(manifest.root.join(e.path())).ok())
        .map(|m| m.len())
        .sum();
    let interval = std::time::Duration::try_from_secs_f64(args.progress_interval).unwrap_or_default();
    let progress = std::sync::Arc::new(Progress::new(
        manifest.entries.len() as u64,
        total_bytes,
        concurrency as usize,
        args.quiet,
        interval,
    ));
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let mut options = RunOptions::default();
    options.retry_failed = args.retry_failed;
    options.registered_only = args.registered_only;
    options.checkpoint = match (args.checkpoint, args.no_checkpoint) {
        (_, true) => Checkpoint::Off,
        (Some(path), false) => Checkpoint::At(path),
        (None, false) => Checkpoint::BesideManifest,
    };
    tracing::info!(manifest = %args.manifest.display(), shard = ?shard.map(|s| s.to_string()), entries = manifest.entries.len(), concurrency, api_rps, "run started");
    let report = engine.run(&manifest, &options, progress.clone(), cancel).await;
    progress.finish();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    let mut code = finish(&report, &progress);
    let report_path = args.report.as_deref().map(|p| match shard {
        Some(shard) => spinlift::shard_path(p, shard),
        None => p.to_path_buf(),
    });
    if let Some(path) = &report_path
        && let Err(e) = report.write_jsonl(path)
    {
        eprintln!("error: cannot write the report {}: {e}", path.display());
        code = code.max(EXIT_FAILED_ASSETS);
    }
    code
}

/// `run --dry-run`: what a run would upload, from the manifest and the files alone, and how long it would
/// take at the limits that apply.
fn dry_run(
    manifest: &Manifest,
    plan: &Plan,
    api_rps: u32,
    calls: u32,
    s3_rps: u32,
    upload_rate: Option<u64>,
) -> u8 {
    println!(
        "dry run: {} of {} entries would be uploaded, {:.1} MiB",
        plan.files,
        manifest.entries.len(),
        plan.bytes as f64 / 1048576.0
    );
    let mut sizes = estimate::Sizes::default();
    for &size in &plan.sizes {
        sizes.add(size);
    }
    for line in sizes.lines() {
        println!("  {line}");
    }
    let bounds = estimate::bounds(&sizes, api_rps, calls, s3_rps, upload_rate);
    match bounds.first() {
        Some((bound, secs)) => {
            println!("estimate: at least {}, bound by {bound}", estimate::human(*secs));
            for (other, secs) in &bounds[1..] {
                println!("  ({other} alone: {})", estimate::human(*secs));
            }
            if upload_rate.is_none() {
                println!(
                    "  large files may be bound by bandwidth instead: give --upload-rate (your link's upload \
                     speed, or what `spinlift bench large --api-url …` measured)"
                );
            }
        }
        None => {
            println!("estimate: no limit set (--api-rps 0, no --upload-rate): nothing bounds it up front")
        }
    }
    for (path, reason) in plan.problems.iter().take(20) {
        println!("  would fail: {path}: {reason}");
    }
    if plan.problems.len() > 20 {
        println!("  … and {} more", plan.problems.len() - 20);
    }
    if plan.problems.is_empty() { EXIT_OK } else { EXIT_FAILED_ASSETS }
}

/// Prints the summary and the failures; returns the exit code.
pub(crate) fn finish(report: &RunReport, progress: &Progress) -> u8 {
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let bytes = report.registered_bytes();
    tracing::info!(
        registered = report.registered(),
        failed = report.failed(),
        pending = report.pending(),
        bytes,
        seconds = secs,
        stopped = report.stopped.is_some(),
        "run finished"
    );
    // Rates of what this run did: a re-run of a finished batch is not 100,000 files a second.
    let (worked, sent) = progress.work_done();
    let this_run = if worked == 0 {
        "nothing left to do (every entry was finished by an earlier run)".to_owned()
    } else {
        format!(
            "this run: {worked} entries in {:.1} s ({:.1} entries/s), {:.1} MiB sent ({:.1} MB/s)",
            secs,
            worked as f64 / secs,
            sent as f64 / 1048576.0,
            sent as f64 / 1e6 / secs,
        )
    };
    let checked = match (report.metadata_set(), report.verified()) {
        (0, 0) => String::new(),
        (set, 0) => format!(" ({set} with their data set)"),
        (set, verified) => format!(" ({set} with their data set, {verified} verified by FileSpin)"),
    };
    eprintln!(
        "{} registered{checked}, {} failed, {} not finished; {this_run}",
        report.registered(),
        report.failed(),
        report.pending(),
    );
    let failed: Vec<_> = report.entries().filter(|e| e.status == "failed").collect();
    for e in failed.iter().take(20) {
        eprintln!("  failed: {}: {}", e.path, e.error.as_deref().unwrap_or("unknown error"));
    }
    if failed.len() > 20 {
        eprintln!("  … and {} more (see --report)", failed.len() - 20);
    }
    if failed.len() > 1 {
        // Failures by reason, most frequent first: a thousand missing files are one line here.
        let mut reasons: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for e in &failed {
            *reasons.entry(e.error.as_deref().unwrap_or("unknown error")).or_default() += 1;
        }
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        eprintln!("failures by reason:");
        for (reason, count) in reasons.iter().take(10) {
            eprintln!("  {count:>7} × {reason}");
        }
        if reasons.len() > 10 {
            eprintln!("  … and {} other reasons (see --report)", reasons.len() - 10);
        }
    }
    match &report.stopped {
        Some(StopReason::Batch(failure)) => {
            let advice = match &failure.kind {
                FailureKind::Status { status: 401, .. } => {
                    "FileSpin refused the API key (401): check the key you gave (--api-key, FILESPIN_API_KEY or \
                     api_key in spinlift.toml; it is not shown here)"
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
        Some(StopReason::Journal(e)) => {
            eprintln!("error: stopped: the checkpoint journal cannot be written: {e}");
            eprintln!("what was recorded before stays valid; free the disk or fix the path and run again");
            EXIT_STOPPED
        }
        Some(StopReason::Cancelled) => {
            eprintln!("interrupted: run the same command again to continue");
            EXIT_INTERRUPTED
        }
        _ if report.failed() > 0 => {
            eprintln!(
                "fix what the failures say, then run again with --retry-failed to try those entries again"
            );
            EXIT_FAILED_ASSETS
        }
        _ => EXIT_OK,
    }
}

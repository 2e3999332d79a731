//! `spinlift emulator`: the local FileSpin, standalone, for trying spinlift or another client.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use spinlift_emulator::{
    AssetErrorRule, Emulator, EmulatorConfig, FaultConfig, SourceBucket, SourceBucketConfig, SourceWeb,
    SourceWebConfig,
};

use super::{EXIT_OK, EXIT_STOPPED};

#[derive(Args)]
pub(crate) struct EmulatorArgs {
    /// Address of the FileSpin API.
    #[arg(long, default_value = "127.0.0.1:0")]
    api_addr: SocketAddr,
    /// Address of the S3 POST endpoint.
    #[arg(long, default_value = "127.0.0.1:0")]
    s3_addr: SocketAddr,
    /// The API key clients must send.
    #[arg(
        long,
        env = "SPINLIFT_EMULATOR_API_KEY",
        hide_env_values = true,
        default_value = "emulator-api-key"
    )]
    api_key: String,
    /// Where stored objects go (default: a temporary directory, deleted on exit).
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Faults to inject, e.g. "seed=7,api.5xx=0.08,api.429=0.05,api.drop=0.03,s3.503=0.05,s3.drop=0.05,api.rps=30"
    /// (see the emulator crate's docs for every setting).
    #[arg(long, value_parser = FaultConfig::parse)]
    faults: Option<FaultConfig>,
    /// Lifetime of the upload forms, in seconds (FileSpin: 86400).
    #[arg(long, default_value_t = 86_400, allow_negative_numbers = true)]
    form_expiry_secs: i64,
    /// How long a registered asset stays NOT_READY (being saved) before its status is final, in ms.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    not_ready_ms: u64,
    /// Assets whose file name matches GLOB end in status ERROR with REASON (repeatable), e.g.
    /// "*.corrupt=not an image or a video".
    #[arg(long, value_name = "GLOB=REASON", value_parser = parse_asset_error)]
    asset_error: Vec<AssetErrorRule>,
    /// Also serve DIR as a migration's source: an S3-compatible bucket per directory `DIR/<bucket>`
    /// (`source` by default), and the same files over plain HTTP at `/<bucket>/<key>`. Prints the
    /// AWS_* variables a client exports. Faults apply with the scopes `source.` and `web.`.
    #[arg(long, value_name = "DIR")]
    source_dir: Option<PathBuf>,
    /// Address of the source bucket (with --source-dir).
    #[arg(long, default_value = "127.0.0.1:0", requires = "source_dir")]
    source_addr: SocketAddr,
    /// Address of the source web server (with --source-dir).
    #[arg(long, default_value = "127.0.0.1:0", requires = "source_dir")]
    web_addr: SocketAddr,
}

fn parse_asset_error(text: &str) -> Result<AssetErrorRule, String> {
    match text.split_once('=') {
        Some((glob, reason)) if !glob.is_empty() => Ok(AssetErrorRule::new(glob, reason)),
        _ => Err(format!("{text:?}: write GLOB=REASON, e.g. \"*.corrupt=not an image\"")),
    }
}

pub(crate) async fn emulator(args: EmulatorArgs) -> u8 {
    let faults = args.faults.unwrap_or_default();
    let config = EmulatorConfig {
        api_addr: args.api_addr,
        s3_addr: args.s3_addr,
        api_key: args.api_key,
        storage_dir: args.storage_dir,
        form_expiry_secs: args.form_expiry_secs,
        faults: faults.clone(),
        not_ready_for: std::time::Duration::from_millis(args.not_ready_ms),
        asset_errors: args.asset_error,
        ..EmulatorConfig::default()
    };
    let emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the emulator: {e}");
            return EXIT_STOPPED;
        }
    };
    println!("FILESPIN_API_URL={}", emulator.api_url());
    println!("S3 POST endpoint: {}", emulator.s3_url());
    println!("stats: {}/_emulator/stats", emulator.api_url());
    let mut sources = None;
    if let Some(dir) = args.source_dir {
        let bucket = SourceBucketConfig {
            addr: args.source_addr,
            dir: Some(dir.clone()),
            faults: faults.clone(),
            ..SourceBucketConfig::default()
        };
        let web =
            SourceWebConfig { addr: args.web_addr, dir: Some(dir), faults, ..SourceWebConfig::default() };
        let started = match SourceBucket::start(bucket).await {
            Ok(bucket) => SourceWeb::start(web).await.map(|web| (bucket, web)),
            Err(e) => Err(e),
        };
        match started {
            Ok((bucket, web)) => {
                println!(
                    "source bucket: s3://{}/ at {}",
                    bucket.buckets().join(", s3://"),
                    bucket.endpoint()
                );
                println!("{}", bucket.env());
                println!("source web server: {}", web.url());
                sources = Some((bucket, web));
            }
            Err(e) => {
                eprintln!("error: cannot start the source servers: {e}");
                emulator.shutdown().await;
                return EXIT_STOPPED;
            }
        }
    }
    eprintln!("API key: as given by --api-key / SPINLIFT_EMULATOR_API_KEY (default emulator-api-key)");
    eprintln!("Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    if let Some((bucket, web)) = sources {
        bucket.shutdown().await;
        web.shutdown().await;
    }
    emulator.shutdown().await;
    EXIT_OK
}

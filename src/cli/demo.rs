//! `spinlift demo`: the whole path on the embedded default, with no network and no configuration.
//! Starts the emulator in-process, writes a sample set, uploads it, then checks every stored object
//! and every registration against the source files.

use std::collections::HashMap;

use clap::Args;
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift::{CancellationToken, Engine, EngineConfig, Manifest, RunOptions, Secret};
use spinlift_emulator::{Emulator, EmulatorConfig};

use super::progress::Progress;
use super::run::finish;
use super::{EXIT_FAILED_ASSETS, EXIT_OK, EXIT_STOPPED, cancel_on_signal};

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Number of sample files.
    #[arg(long, default_value_t = 300)]
    files: usize,
    /// Assets in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seed of the sample set.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn demo(args: DemoArgs) -> u8 {
    match demo_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: demo: {e}");
            EXIT_STOPPED
        }
    }
}

async fn demo_inner(args: DemoArgs) -> Result<u8, Box<dyn std::error::Error>> {
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let work = tempfile::tempdir()?;
    let spec = SampleSpec { seed: args.seed, ..SampleSpec::mixed(args.files, args.seed) };
    let set = SampleSet::write(work.path(), &spec)?;
    eprintln!(
        "demo: {} files, {:.1} MiB in {}; local FileSpin at {}",
        set.files.len(),
        set.total_bytes() as f64 / 1048576.0,
        work.path().display(),
        emulator.api_url()
    );
    let manifest = Manifest::load(&set.manifest)?;
    let mut config = EngineConfig::new(emulator.api_url(), Secret::new(emulator.api_key().to_owned()));
    config.concurrency = args.concurrency.max(1);
    // The local emulator has no request limit (the real API's 30/s is the default of `run`).
    config.api_rps = None;
    let engine = Engine::new(config)?;
    let progress = std::sync::Arc::new(Progress::new(
        set.files.len() as u64,
        set.total_bytes(),
        args.concurrency,
        args.quiet,
        std::time::Duration::from_secs(2),
    ));
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let report = engine.run(&manifest, &RunOptions::default(), progress.clone(), cancel).await;
    progress.finish();
    let report = report?;
    let code = finish(&report, &progress);
    if code != EXIT_OK {
        return Ok(code);
    }

    // Verify: every source file's bytes in the store under its asset's key, and one registration per
    // entry with the right size and MD5.
    let registrations: HashMap<String, _> =
        emulator.registrations().into_iter().map(|r| (r.asset_id.clone(), r)).collect();
    let mut problems = Vec::new();
    for (file, entry) in set.files.iter().zip(report.entries()) {
        let Some(reg) = entry.asset_id.as_ref().and_then(|id| registrations.get(id)) else {
            problems.push(format!("{}: no registration", file.path));
            continue;
        };
        if reg.size != file.size || reg.checksum != file.md5 {
            problems.push(format!("{}: registered {} bytes / {}", file.path, reg.size, reg.checksum));
        }
        match emulator.read_object(&reg.key) {
            Ok(bytes) if bytes == std::fs::read(set.dir.join(&file.path))? => {}
            Ok(bytes) => {
                problems.push(format!("{}: stored {} bytes differ from the source", file.path, bytes.len()))
            }
            Err(e) => problems.push(format!("{}: not in the store: {e}", file.path)),
        }
    }
    if registrations.len() != set.files.len() {
        problems.push(format!("{} registrations for {} files", registrations.len(), set.files.len()));
    }
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    if problems.is_empty() {
        println!(
            "demo: {} files, {:.1} MiB in {:.2} s: {:.0} files/s, {:.1} MB/s; every object and registration verified",
            set.files.len(),
            set.total_bytes() as f64 / 1048576.0,
            secs,
            set.files.len() as f64 / secs,
            set.total_bytes() as f64 / 1e6 / secs
        );
        emulator.shutdown().await;
        Ok(EXIT_OK)
    } else {
        for p in &problems {
            eprintln!("verification failed: {p}");
        }
        emulator.shutdown().await;
        Ok(EXIT_FAILED_ASSETS)
    }
}

//! A migration driven from a program of your own: the list of files comes from a legacy system (here a
//! CSV export `legacy_id,relative_path`), not from a manifest file, and the result is the mapping
//! legacy id → FileSpin asset id that the legacy system needs afterwards.
//!
//! ```text
//! FILESPIN_API_URL=https://app.filespin.io FILESPIN_API_KEY=… \
//!     cargo run --release --example migrate -- EXPORT.csv ROOT MAPPING.csv
//! ```
//!
//! `EXPORT.csv` has one `legacy_id,relative_path` line per file (a header line of that text is skipped);
//! paths are relative to `ROOT`. The mapping `legacy_id,asset_id,status,error` goes to `MAPPING.csv`, and
//! the checkpoint beside it (`MAPPING.checkpoint`): run the same command again after an interruption.
//!
//! Without arguments it starts the embedded FileSpin emulator and migrates a generated sample library
//! into it (whatever `FILESPIN_API_KEY` says), so `cargo run --example migrate` shows the whole thing on
//! any machine without touching a real account.

use std::error::Error;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use spinlift::{Engine, Manifest, Progress, RunReport, Secret};

/// Reads `legacy_id,relative_path` lines, uploads every file under `root` into FileSpin, and writes
/// `legacy_id,asset_id,status,error` to `mapping`. The checkpoint lives beside the mapping, so an
/// interrupted migration resumes where it stopped when run again.
pub(crate) async fn migrate(
    export: &Path,
    root: &Path,
    mapping: &Path,
    api_url: &str,
    api_key: Secret,
) -> Result<RunReport, Box<dyn Error>> {
    let mut builder = Manifest::builder(root)
        .service_data(serde_json::json!({"app": "legacy-import", "build": env!("CARGO_PKG_VERSION")}));
    for (n, line) in std::fs::read_to_string(export)?.lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && line.trim().eq_ignore_ascii_case("legacy_id,relative_path")) {
            continue;
        }
        let Some((legacy_id, path)) = line.split_once(',') else {
            return Err(
                format!("{}: line {} is not `legacy_id,relative_path`", export.display(), n + 1).into()
            );
        };
        builder = builder.entry_with(legacy_id.trim(), path.trim(), None)?;
    }
    let manifest = builder.build()?;
    let total = manifest.entries.len();

    let engine = Engine::builder(api_url, api_key)
        .concurrency(16)
        .checkpoint(mapping.with_extension("checkpoint"))
        .build()?;
    let mut run = engine.spawn(manifest);
    let cancel = run.cancellation();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel(); // what was done stays in the checkpoint; run again to go on
        }
    });

    let (mut done, mut bytes, mut retries) = (0, 0u64, 0);
    while let Some(event) = run.next().await {
        match event {
            Progress::BytesSent { bytes: n } => bytes += n,
            Progress::Retrying { .. } => retries += 1,
            Progress::Finished(_) => {
                done += 1;
                if done % 50 == 0 || done == total {
                    eprintln!(
                        "{done}/{total} assets, {:.1} MiB sent, {retries} retries",
                        bytes as f64 / 1048576.0
                    );
                }
            }
            _ => {}
        }
    }
    let report = run.report().await?;

    let mut out = csv_writer(mapping)?;
    use std::io::Write;
    writeln!(out, "legacy_id,asset_id,status,error")?;
    for entry in report.entries() {
        let error = entry.error.as_deref().unwrap_or("").replace([',', '\n'], " ");
        writeln!(out, "{},{},{},{error}", entry.id, entry.asset_id.as_deref().unwrap_or(""), entry.status)?;
    }
    out.flush()?;
    Ok(report)
}

fn csv_writer(path: &Path) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    Ok(std::io::BufWriter::new(std::fs::File::create(path)?))
}

#[allow(dead_code)] // a test includes this file for `migrate` alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let report = match args.as_slice() {
        [export, root, mapping] => {
            let key = std::env::var("FILESPIN_API_KEY")
                .map_err(|_| "set FILESPIN_API_KEY (and FILESPIN_API_URL) to migrate into your FileSpin")?;
            let url = std::env::var("FILESPIN_API_URL").unwrap_or_else(|_| "https://app.filespin.io".into());
            let report = migrate(export, root, mapping, &url, Secret::new(key)).await?;
            println!("mapping: {}", mapping.display());
            report
        }
        [_, ..] => {
            return Err(
                "usage: migrate [EXPORT.csv ROOT MAPPING.csv] (no arguments: a demo on the emulator)".into(),
            );
        }
        [] => {
            eprintln!("no arguments: migrating a generated sample library into the embedded emulator");
            let emulator = spinlift_emulator::Emulator::start(Default::default()).await?;
            let dir = tempfile::tempdir()?;
            let sample =
                spinlift::sample::SampleSet::write(dir.path(), &spinlift::sample::SampleSpec::mixed(120, 7))?;
            let export = dir.path().join("export.csv");
            let lines: Vec<String> =
                sample.files.iter().enumerate().map(|(i, f)| format!("legacy-{i},{}", f.path)).collect();
            std::fs::write(&export, format!("legacy_id,relative_path\n{}", lines.join("\n")))?;
            let mapping = dir.path().join("mapping.csv");
            let key = Secret::new(emulator.api_key().to_owned());
            let report = migrate(&export, dir.path(), &mapping, &emulator.api_url(), key).await?;
            println!("the first lines of the mapping (the whole of it was in a temporary directory):");
            println!("{}", std::fs::read_to_string(&mapping)?.lines().take(4).collect::<Vec<_>>().join("\n"));
            report
        }
    };
    println!("{} registered, {} failed", report.registered(), report.failed());
    if report.failed() > 0 { std::process::exit(1) } else { Ok(()) }
}

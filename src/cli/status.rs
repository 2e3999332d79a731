//! `spinlift status MANIFEST`: where a batch stands, from the manifest and its checkpoint alone (no
//! network).

use std::path::PathBuf;

use clap::Args;
use spinlift::{Checkpoint, Manifest};
use spinlift_core::State;
use spinlift_manifest::journal::replay;

use super::{EXIT_FAILED_ASSETS, EXIT_OK, EXIT_STOPPED};

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The manifest of the batch.
    manifest: PathBuf,
    /// The checkpoint journal (default: beside the manifest).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Counts {
    registered: u64,
    uploaded: u64,
    in_progress: u64,
    pending: u64,
    failed: u64,
    bytes_done: u64,
}

pub(crate) fn status(args: StatusArgs) -> u8 {
    let manifest = match Manifest::load(&args.manifest) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    let checkpoint = args.checkpoint.map(Checkpoint::At).unwrap_or_default();
    let Some(path) = checkpoint.path_for(&manifest.source) else { return EXIT_STOPPED };
    let replayed = match replay(&path) {
        Ok(Some(r)) => r,
        Ok(None) => {
            println!("checkpoint: none yet at {} (nothing has run)", path.display());
            println!("{} entries: all pending", manifest.entries.len());
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    for w in &replayed.warnings {
        println!("note: {w}");
    }
    let mut c = Counts::default();
    let mut bytes_total = 0u64;
    let mut failures = Vec::new();
    for entry in manifest.entries.iter() {
        bytes_total += std::fs::metadata(manifest.root.join(entry.path())).map(|m| m.len()).unwrap_or(0);
        match replayed.get(entry.id()).map(|r| r.state) {
            Some(State::Registered { size, .. }) => {
                c.registered += 1;
                c.bytes_done += size;
            }
            Some(State::Uploaded { .. }) => c.uploaded += 1,
            Some(State::FormIssued { .. } | State::Uploading { .. }) => c.in_progress += 1,
            Some(State::Failed { failure, .. }) => {
                c.failed += 1;
                failures.push(format!("{}: {failure}", entry.path()));
            }
            _ => c.pending += 1,
        }
    }
    let total = manifest.entries.len();
    println!("checkpoint: {}", path.display());
    println!(
        "{total} entries: {} registered, {} uploaded (to register), {} in progress, {} pending, {} failed",
        c.registered, c.uploaded, c.in_progress, c.pending, c.failed
    );
    println!(
        "{:.1} of {:.1} MiB registered",
        c.bytes_done as f64 / 1048576.0,
        bytes_total as f64 / 1048576.0
    );
    let listed: std::collections::HashSet<&str> = manifest.entries.iter().map(|e| e.id()).collect();
    let unlisted = replayed.ids().filter(|id| !listed.contains(id)).count();
    if unlisted > 0 {
        println!("{unlisted} recorded entries are no longer in the manifest");
    }
    for f in failures.iter().take(20) {
        println!("  failed: {f}");
    }
    if failures.len() > 20 {
        println!("  … and {} more", failures.len() - 20);
    }
    if c.failed > 0 {
        println!("run again with --retry-failed to try the failed entries again");
        EXIT_FAILED_ASSETS
    } else {
        EXIT_OK
    }
}

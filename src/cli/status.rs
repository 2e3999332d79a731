//! `spinlift status MANIFEST`: where a batch stands, from the manifest and its checkpoint alone (no
//! network).

use std::path::PathBuf;

use clap::Args;
use spinlift_core::State;

use super::shard::{Checkpoints, ViewShardArgs};
use super::{EXIT_FAILED_ASSETS, EXIT_OK, EXIT_STOPPED};

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The manifest of the batch.
    manifest: PathBuf,
    /// The checkpoint journal (default: beside the manifest).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    #[command(flatten)]
    shard: ViewShardArgs,
}

#[derive(Debug, Default)]
struct Counts {
    registered: u64,
    uploaded: u64,
    in_progress: u64,
    pending: u64,
    failed: u64,
    bytes_done: u64,
    /// Of the registered: data set, verified; and the failed: failed at FileSpin's processing or check.
    data_set: u64,
    verified: u64,
    processing_failed: u64,
}

pub(crate) fn status(args: StatusArgs) -> u8 {
    let (manifest, checkpoints) = match Checkpoints::open(&args.manifest, args.checkpoint, &args.shard) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_STOPPED;
        }
    };
    if checkpoints.none_yet() {
        for (path, _) in checkpoints.paths() {
            println!("checkpoint: none yet at {} (nothing has run)", path.display());
        }
        println!("{} entries: all pending", manifest.entries.len());
        return EXIT_OK;
    }
    for w in checkpoints.warnings() {
        println!("note: {w}");
    }
    let mut c = Counts::default();
    let mut bytes_total = 0u64;
    let mut failures = Vec::new();
    for entry in manifest.entries.iter() {
        let record = checkpoints.get(entry.id());
        // status makes no network call: a remote object's size is what a run recorded of it, if any.
        bytes_total += if entry.is_remote() {
            record.as_ref().and_then(|r| r.source).map_or(0, |s| s.size)
        } else {
            std::fs::metadata(manifest.root.join(entry.path())).map(|m| m.len()).unwrap_or(0)
        };
        match record.map(|r| r.state) {
            Some(state @ (State::Registered { .. } | State::DataSet { .. } | State::Verified { .. })) => {
                c.registered += 1;
                c.bytes_done += state.registered().map_or(0, |(_, size, _)| size);
                c.data_set += u64::from(state.data_set());
                c.verified += u64::from(matches!(state, State::Verified { .. }));
            }
            Some(State::Uploaded { .. }) => c.uploaded += 1,
            Some(State::FormIssued { .. } | State::Uploading { .. }) => c.in_progress += 1,
            Some(State::Failed { failure, .. }) => {
                c.failed += 1;
                c.processing_failed += u64::from(failure.step == spinlift_core::Step::Verify);
                failures.push(format!("{}: {failure}", entry.shown_path()));
            }
            _ => c.pending += 1,
        }
    }
    let total = manifest.entries.len();
    for (path, exists) in checkpoints.paths() {
        let missing = if exists { "" } else { " (none yet: that shard has not started)" };
        println!("checkpoint: {}{missing}", path.display());
    }
    println!(
        "{total} entries: {} registered, {} uploaded (to register), {} in progress, {} pending, {} failed",
        c.registered, c.uploaded, c.in_progress, c.pending, c.failed
    );
    if c.data_set + c.verified + c.processing_failed > 0 {
        println!(
            "of the registered: {} with their data set, {} verified; of the failed: {} at FileSpin's \
             processing or check (status ERROR, a mismatch, still NOT_READY)",
            c.data_set, c.verified, c.processing_failed
        );
    }
    println!(
        "{:.1} of {:.1} MiB registered",
        c.bytes_done as f64 / 1048576.0,
        bytes_total as f64 / 1048576.0
    );
    let unlisted = checkpoints.unlisted(&manifest);
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

//! `spinlift report MANIFEST`: the path → asset id mapping of a batch, rebuilt from its checkpoint at any
//! time (no network), as JSON Lines or CSV.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use spinlift::EntryReport;
use spinlift_core::State;

use super::shard::{Checkpoints, ViewShardArgs};
use super::{EXIT_OK, EXIT_STOPPED};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The manifest of the batch.
    manifest: PathBuf,
    /// The checkpoint journal (default: beside the manifest).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// With --shards N: one report merged from all N shards' checkpoints, in manifest order.
    #[command(flatten)]
    shard: ViewShardArgs,
}

pub(crate) fn report(args: ReportArgs) -> u8 {
    match build(&args) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_STOPPED
        }
    }
}

fn build(args: &ReportArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (manifest, checkpoints) = Checkpoints::open(&args.manifest, args.checkpoint.clone(), &args.shard)?;
    if checkpoints.none_yet() {
        let paths: Vec<String> = checkpoints.paths().map(|(p, _)| p.display().to_string()).collect();
        return Err(format!("no checkpoint at {}: nothing has run yet", paths.join(", ")).into());
    }
    for w in checkpoints.warnings() {
        eprintln!("note: {w}");
    }
    for (path, exists) in checkpoints.paths() {
        if !exists {
            eprintln!("note: no checkpoint at {}: that shard has not started", path.display());
        }
    }
    let lines = manifest.entries.iter().map(|entry| {
        let state = checkpoints.get(entry.id()).map(|r| r.state).unwrap_or(State::Pending);
        EntryReport::from_state(entry.id(), &entry.shown_path(), &state, None)
    });
    let out: Box<dyn Write> = match &args.output {
        Some(p) => {
            // 0600 like the run's --report: the mapping of files to asset ids is nobody else's business.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            Box::new(options.open(p)?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(out);
    match args.format {
        Format::Jsonl => {
            for line in lines {
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            for line in lines {
                csv.serialize(&line)?;
            }
            csv.flush()?;
        }
    }
    out.flush()?;
    Ok(())
}

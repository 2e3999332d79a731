//! `spinlift report MANIFEST`: the path → asset id mapping of a batch, rebuilt from its checkpoint at any
//! time (no network), as JSON Lines or CSV.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use spinlift::{Checkpoint, EntryReport, Manifest};
use spinlift_core::State;
use spinlift_manifest::journal::replay;

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
    let manifest = Manifest::load(&args.manifest)?;
    let checkpoint = args.checkpoint.clone().map(Checkpoint::At).unwrap_or_default();
    let path = checkpoint.path_for(&manifest.source).ok_or("no checkpoint")?;
    let replayed =
        replay(&path)?.ok_or_else(|| format!("no checkpoint at {}: nothing has run yet", path.display()))?;
    for w in &replayed.warnings {
        eprintln!("note: {w}");
    }
    let lines = manifest.entries.iter().map(|entry| {
        let state = replayed.get(entry.id()).map(|r| r.state).unwrap_or(State::Pending);
        EntryReport::from_state(entry.id(), entry.path(), &state, None)
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

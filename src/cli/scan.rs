//! `spinlift scan DIR -o manifest.json`: a manifest from a directory tree.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use spinlift_manifest::Format;

use super::{EXIT_OK, EXIT_STOPPED};

#[derive(Args)]
pub(crate) struct ScanArgs {
    /// The directory to scan; it becomes the manifest's root.
    dir: PathBuf,
    /// The manifest to write: .json, or .jsonl for big trees (one asset per line).
    #[arg(long, short)]
    output: PathBuf,
    /// Only files whose path (relative to DIR, with '/') matches one of these globs. As in .gitignore:
    /// `*` stays within a directory, `**` crosses them, a glob without '/' matches the name at any depth.
    #[arg(long)]
    include: Vec<String>,
    /// Leave out files whose relative path matches one of these globs (same rules as --include).
    #[arg(long)]
    exclude: Vec<String>,
    /// Include hidden files and directories (names starting with '.').
    #[arg(long)]
    hidden: bool,
    /// Follow symbolic links (the run still refuses any that lead outside DIR).
    #[arg(long)]
    follow_links: bool,
}

#[derive(Default)]
struct Counts {
    files: u64,
    bytes: u64,
    filtered: u64,
    hidden: u64,
    links: u64,
    not_utf8: u64,
    unreadable: u64,
}

fn globs(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = |p: &str| {
            GlobBuilder::new(p).literal_separator(true).build().map_err(|e| format!("bad glob {p:?}: {e}"))
        };
        b.add(glob(p)?);
        // As in .gitignore: a glob without '/' (`*.tmp`) matches a file's name at any depth.
        if !p.contains('/') {
            b.add(glob(&format!("**/{p}"))?);
        }
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

pub(crate) fn scan(args: ScanArgs) -> u8 {
    match scan_inner(&args) {
        Ok(c) => {
            println!(
                "scanned {}: {} files, {:.1} MiB -> {}",
                args.dir.display(),
                c.files,
                c.bytes as f64 / 1048576.0,
                args.output.display()
            );
            let skipped = [
                (c.filtered, "filtered out by --include/--exclude"),
                (c.hidden, "hidden (--hidden to include)"),
                (c.links, "symbolic links (--follow-links to follow)"),
                (c.not_utf8, "with names that are not UTF-8 (a manifest cannot name them)"),
                (c.unreadable, "unreadable"),
            ];
            for (n, why) in skipped {
                if n > 0 {
                    println!("  skipped {n} {why}");
                }
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_STOPPED
        }
    }
}

fn scan_inner(args: &ScanArgs) -> Result<Counts, String> {
    let root = args.dir.canonicalize().map_err(|e| format!("{}: {e}", args.dir.display()))?;
    if !root.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let include = globs(&args.include)?;
    let exclude = globs(&args.exclude)?;
    let root_str = root.to_str().ok_or("the directory's path is not UTF-8")?;
    let format = Format::from_path(&args.output);
    let file = std::fs::File::create(&args.output)
        .map_err(|e| format!("cannot create the manifest {}: {e}", args.output.display()))?;
    // After it exists: a manifest written inside the tree does not list itself.
    let output_real = args.output.canonicalize().ok();
    let mut out = std::io::BufWriter::new(file);
    let io = |e: std::io::Error| format!("{}: {e}", args.output.display());
    let header = serde_json::json!({"version": 1, "root": root_str});
    match format {
        Format::JsonLines => writeln!(out, "{header}").map_err(io)?,
        Format::Json => {
            write!(out, "{{\"version\": 1, \"root\": {}, \"assets\": [", header["root"]).map_err(io)?
        }
    }
    let mut c = Counts::default();
    let walker = walkdir::WalkDir::new(&root).follow_links(args.follow_links).sort_by_file_name();
    let mut it = walker.into_iter();
    while let Some(next) = it.next() {
        let entry = match next {
            Ok(e) => e,
            Err(_) => {
                c.unreadable += 1;
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let is_hidden = entry.file_name().to_str().is_some_and(|n| n.starts_with('.'));
        if is_hidden && !args.hidden {
            if entry.file_type().is_dir() {
                it.skip_current_dir();
            }
            c.hidden += 1;
            continue;
        }
        if entry.path_is_symlink() && !args.follow_links {
            c.links += 1;
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        if output_real.as_deref() == Some(entry.path()) {
            continue;
        }
        let Some(rel) = relative(&root, entry.path()) else {
            c.not_utf8 += 1;
            if c.not_utf8 <= 20 {
                eprintln!(
                    "warning: skipped {} (its name is not UTF-8: rename it, a manifest cannot name it)",
                    entry.path().display()
                );
            }
            continue;
        };
        if include.as_ref().is_some_and(|g| !g.is_match(&rel))
            || exclude.as_ref().is_some_and(|g| g.is_match(&rel))
        {
            c.filtered += 1;
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            c.unreadable += 1;
            eprintln!("warning: skipped {} (cannot read its metadata)", entry.path().display());
            continue;
        };
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        let asset = serde_json::json!({"path": rel, "size": meta.len(), "mtime_ms": mtime_ms});
        match format {
            Format::JsonLines => writeln!(out, "{asset}").map_err(io)?,
            Format::Json => {
                let sep = if c.files == 0 { "\n  " } else { ",\n  " };
                write!(out, "{sep}{asset}").map_err(io)?
            }
        }
        c.files += 1;
        c.bytes += meta.len();
    }
    if let Format::Json = format {
        writeln!(out, "\n]}}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(c)
}

/// `path` relative to `root` with '/' separators, if every component is UTF-8.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

//! `spinlift scan s3://bucket/prefix -o manifest.jsonl` (also `gs://`, `az://`): a manifest from a
//! remote listing, streamed page by page to the manifest, so that a prefix of millions of objects never
//! sits in memory.

use std::io::Write;

use futures::StreamExt;
use serde_json::Value;
use spinlift::{SourceUrl, Sources, SourcesConfig};
use spinlift_manifest::{Format, validate_data};

use super::scan::{Counts, Output, ScanArgs, globs, read_csv};

/// Whether `text` names a remote prefix rather than a local directory.
pub(crate) fn is_remote(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| !scheme.is_empty() && scheme != "file")
}

/// Lists `prefix` into the manifest `args.output`: a header with `source_root`, then one entry per
/// object (its key relative to the prefix as `source`, its size, ETag and modification time), in
/// the order the listing gives (S3, GCS and Azure list in key order).
pub(crate) async fn scan_remote(args: &ScanArgs, prefix: &str) -> Result<Counts, String> {
    if args.sidecars {
        return Err("--sidecars reads files beside each file: it works on local trees only; for a remote \
                    prefix give the metadata in a CSV (--metadata-csv)"
            .into());
    }
    if args.follow_links {
        return Err("--follow-links is for local trees: object stores have no symbolic links".into());
    }
    let url = SourceUrl::parse(prefix).map_err(|e| e.to_string())?;
    if !url.is_remote() {
        return Err(format!("{prefix} is not a remote prefix"));
    }
    if matches!(url, SourceUrl::Http(_)) {
        return Err(format!(
            "{url}: HTTP has no listing, so an http(s) source cannot be scanned; write a manifest that \
             names each URL (\"source\": \"https://…\")"
        ));
    }
    let mut config = SourcesConfig::default();
    config.allow_http = args.allow_http;
    config.rps = std::num::NonZeroU32::new(args.source_rps);
    let sources = Sources::new(config).map_err(|e| e.to_string())?;
    let include = globs(&args.include)?;
    let exclude = globs(&args.exclude)?;
    let csv_name = args.metadata_csv.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let mut csv_rows = match &args.metadata_csv {
        Some(file) => read_csv(file, args.metadata_csv_key.as_deref().unwrap_or("path"))?,
        None => Default::default(),
    };
    // The root the entries are relative to: the prefix as a "directory", ending in '/'.
    let mut root = prefix.to_owned();
    if !root.ends_with('/') {
        root.push('/');
    }
    let format = Format::from_path(&args.output);
    let output = Output::create(&args.output)?;
    let mut out = std::io::BufWriter::new(output.file());
    let io = |e: std::io::Error| format!("{}: {e}", args.output.display());
    let mut header = serde_json::json!({"version": 1, "source_root": root});
    if let Some(id) = args.data_schema_id {
        header["data_schema_id"] = id.into();
    }
    match format {
        Format::JsonLines => writeln!(out, "{header}").map_err(io)?,
        Format::Json => {
            let mut text = header.to_string();
            text.pop();
            write!(out, "{text},\"assets\":[").map_err(io)?
        }
    }
    let mut c = Counts::default();
    let mut listing = sources.list(&url);
    while let Some(item) = listing.next().await {
        let listed = item.map_err(|e| format!("listing {url}: {e}"))?;
        let key = listed.key;
        let hidden = key.split('/').any(|segment| segment.starts_with('.'));
        if hidden && !args.hidden {
            c.hidden += 1;
            continue;
        }
        let filtered_out = include.as_ref().is_some_and(|g| !g.is_match(&key))
            || exclude.as_ref().is_some_and(|g| g.is_match(&key));
        if filtered_out {
            c.filtered += 1;
            continue;
        }
        let mut line = serde_json::json!({"source": key, "size": listed.meta.size});
        if let Some(etag) = &listed.meta.etag {
            line["etag"] = etag.clone().into();
        }
        if let Some(mtime_ms) = listed.meta.last_modified_ms {
            line["mtime_ms"] = mtime_ms.into();
        }
        let mut line = line.to_string();
        if let Some(row) = csv_rows.remove(&key) {
            c.from_csv += 1;
            let text = validate_data(&Value::Object(row.data))
                .map_err(|e| format!("{key}: its data from {csv_name} line {}: {e}", row.line))?;
            line.pop();
            line.push_str(",\"data\":");
            line.push_str(&text);
            line.push('}');
            c.with_data += 1;
        }
        match format {
            Format::JsonLines => writeln!(out, "{line}").map_err(io)?,
            Format::Json => {
                let sep = if c.files == 0 { "\n  " } else { ",\n  " };
                write!(out, "{sep}{line}").map_err(io)?
            }
        }
        c.files += 1;
        c.bytes += listed.meta.size;
    }
    c.unmatched = csv_rows.into_iter().map(|(path, row)| (row.line, path)).collect();
    if let Format::Json = format {
        writeln!(out, "\n]}}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    drop(out);
    if c.files == 0 {
        // A manifest must list something: say why this one would not, and write none.
        return Err(format!(
            "{url}: no objects to list ({} filtered out, {} hidden): check the bucket, the prefix and the \
             credentials' rights to list it",
            c.filtered, c.hidden
        ));
    }
    output.finish(&args.output)?;
    Ok(c)
}

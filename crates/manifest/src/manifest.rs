//! The manifest: its file formats, its entries and their validation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ManifestError, Position};
use crate::paths::{escapes_root, resolve_within};

/// The manifest format version this build reads.
pub const VERSION: u32 = 1;

/// How a manifest file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document with an `assets` array.
    Json,
    /// One asset object per line, optionally after a header line.
    JsonLines,
}

impl Format {
    /// The format a file name implies: `.jsonl` / `.ndjson` are JSON Lines, anything else JSON.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson") => Format::JsonLines,
            _ => Format::Json,
        }
    }
}

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's unique id within the manifest (default: its path).
    pub id: String,
    /// The path as written in the manifest, relative to the root.
    pub path: String,
    /// The file name FileSpin is told (default: the path's last component).
    pub filename: String,
    /// Where the entry is in the manifest.
    pub position: Position,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file this was read from.
    pub source: PathBuf,
    /// The directory every entry's path is relative to.
    pub root: PathBuf,
    /// `service_data` to send with every registration (a JSON object), if the manifest gives one.
    pub service_data: Option<serde_json::Value>,
    /// The entries, in manifest order; ids are unique.
    pub entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    service_data: Option<serde_json::Value>,
    assets: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    version: u32,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    service_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    /// The file's size when it was scanned (informational).
    #[serde(default)]
    #[allow(dead_code)]
    size: Option<u64>,
    /// The file's modification time when it was scanned, ms since the epoch (informational).
    #[serde(default)]
    #[allow(dead_code)]
    mtime_ms: Option<i64>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`; the format follows the file's extension.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut m = Self::parse(&text, Format::from_path(path), &dir).map_err(|e| with_source(e, path))?;
        m.source = path.to_path_buf();
        Ok(m)
    }

    /// Parses and validates manifest text; a relative `root` (and the default root) is taken from `dir`.
    pub fn parse(text: &str, format: Format, dir: &Path) -> Result<Manifest, ManifestError> {
        let source = PathBuf::from("<manifest>");
        let syntax = |e: serde_json::Error, line_offset: usize| ManifestError::Syntax {
            path: source.clone(),
            position: Position::LineColumn { line: e.line() + line_offset, column: e.column() },
            message: strip_position(&e.to_string()),
        };
        let (header, raw) = match format {
            Format::Json => {
                let m: RawManifest = serde_json::from_str(text).map_err(|e| syntax(e, 0))?;
                let header = RawHeader { version: m.version, root: m.root, service_data: m.service_data };
                (header, m.assets.into_iter().map(|e| (e, None)).collect::<Vec<_>>())
            }
            Format::JsonLines => {
                let mut header = None;
                let mut raw = Vec::new();
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    if header.is_none() && raw.is_empty() && is_header(line) {
                        header = Some(serde_json::from_str::<RawHeader>(line).map_err(|e| syntax(e, i))?);
                        continue;
                    }
                    let entry: RawEntry = serde_json::from_str(line).map_err(|e| syntax(e, i))?;
                    raw.push((entry, Some(i + 1)));
                }
                let header = header.unwrap_or(RawHeader { version: VERSION, root: None, service_data: None });
                (header, raw)
            }
        };
        let manifest_error = |message: String| ManifestError::Manifest { path: source.clone(), message };
        if header.version != VERSION {
            return Err(manifest_error(format!(
                "unsupported version {}: this spinlift reads version {VERSION}",
                header.version
            )));
        }
        if let Some(sd) = &header.service_data
            && !sd.is_object()
        {
            return Err(manifest_error("`service_data` must be a JSON object".into()));
        }
        if raw.is_empty() {
            return Err(manifest_error("the manifest lists no assets".into()));
        }
        let root = match header.root {
            Some(r) if Path::new(&r).is_absolute() => PathBuf::from(r),
            Some(r) => dir.join(r),
            None => dir.to_path_buf(),
        };

        let mut entries = Vec::with_capacity(raw.len());
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(raw.len());
        for (index, (e, line)) in raw.into_iter().enumerate() {
            let position = Position::Entry { index, line };
            let invalid = |message: String| ManifestError::Invalid {
                path: source.clone(),
                position: position.clone(),
                message,
            };
            if e.path.is_empty() {
                return Err(invalid("`path` is empty".into()));
            }
            if escapes_root(&root, &e.path) {
                return Err(invalid(format!(
                    "path {:?} is outside the manifest's root {}; paths must stay inside the root",
                    e.path,
                    root.display()
                )));
            }
            let filename = match e.filename {
                Some(f) => f,
                None => Path::new(&e.path)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            if filename.is_empty() || filename.contains('/') {
                return Err(invalid(format!("filename {filename:?} must be a non-empty name without '/'")));
            }
            let id = e.id.unwrap_or_else(|| e.path.clone());
            if id.is_empty() {
                return Err(invalid("`id` is empty".into()));
            }
            if let Some(first) = seen.insert(id.clone(), index) {
                let first_pos = &entries.get(first).map(|e: &Entry| e.position.clone());
                let first_at = first_pos.as_ref().map(|p| p.to_string()).unwrap_or_default();
                return Err(invalid(format!(
                    "duplicate id {id:?}: first used at {first_at}; ids must be unique"
                )));
            }
            entries.push(Entry { id, path: e.path, filename, position });
        }
        Ok(Manifest { source, root, service_data: header.service_data, entries })
    }

    /// The file of `entry` on disk, refused when it leaves the root once symlinks are followed.
    pub fn resolve(&self, entry: &Entry) -> Result<PathBuf, ManifestError> {
        resolve_within(&self.root, &entry.path)
    }
}

fn is_header(line: &str) -> bool {
    matches!(serde_json::from_str::<serde_json::Value>(line),
        Ok(serde_json::Value::Object(o)) if o.contains_key("version") && !o.contains_key("path"))
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn with_source(e: ManifestError, path: &Path) -> ManifestError {
    let p = path.to_path_buf();
    match e {
        ManifestError::Syntax { position, message, .. } => {
            ManifestError::Syntax { path: p, position, message }
        }
        ManifestError::Invalid { position, message, .. } => {
            ManifestError::Invalid { path: p, position, message }
        }
        ManifestError::Manifest { message, .. } => ManifestError::Manifest { path: p, message },
        other => other,
    }
}

#[cfg(test)]
mod tests;

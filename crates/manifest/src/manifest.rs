//! The manifest: its file formats, its entries and their validation.

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

/// `T` only when written as a JSON object: serde's derived structs also take an array of their fields
/// in order, which a manifest must not (its fields are named, and an unknown one is an error).
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        deserializer.deserialize_map(ObjVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    service_data: Option<serde_json::Value>,
    assets: Vec<Obj<RawEntry>>,
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

/// A JSON Lines manifest without a header line: the current version, the manifest's directory as root.
impl Default for RawHeader {
    fn default() -> Self {
        RawHeader { version: VERSION, root: None, service_data: None }
    }
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
    ///
    /// A JSON Lines manifest is read line by line (the file is never held whole in memory); a JSON
    /// manifest is one document and is read at once: use JSON Lines for very large batches.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let read_error = |source| ManifestError::Read { path: path.to_path_buf(), source };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Absolute, so that an absolute entry path inside the root is recognised as inside whether the
        // manifest was named relatively or not (and the root stays right if the process changes
        // directory).
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let parsed = match Format::from_path(path) {
            Format::Json => {
                let text = std::fs::read_to_string(path).map_err(read_error)?;
                Self::parse(&text, Format::Json, &dir)
            }
            Format::JsonLines => {
                let file = std::fs::File::open(path).map_err(read_error)?;
                Self::read_lines(std::io::BufReader::with_capacity(256 * 1024, file), &dir)
            }
        };
        let mut m = parsed.map_err(|e| with_source(e, path))?;
        m.source = path.to_path_buf();
        Ok(m)
    }

    /// Parses and validates manifest text; a relative `root` (and the default root) is taken from `dir`.
    pub fn parse(text: &str, format: Format, dir: &Path) -> Result<Manifest, ManifestError> {
        match format {
            Format::Json => {
                let Obj(m) = serde_json::from_str::<Obj<RawManifest>>(text).map_err(|e| syntax(e, 0))?;
                let header = RawHeader { version: m.version, root: m.root, service_data: m.service_data };
                let mut builder = Builder::new(header, dir, m.assets.len())?;
                for Obj(entry) in m.assets {
                    builder.push(entry, None)?;
                }
                builder.finish()
            }
            Format::JsonLines => Self::read_lines(text.as_bytes(), dir),
        }
    }

    /// Parses and validates a JSON Lines manifest from `reader`, one line at a time: memory holds the
    /// entries, never the text.
    pub fn read_lines(mut reader: impl std::io::BufRead, dir: &Path) -> Result<Manifest, ManifestError> {
        let mut builder: Option<Builder> = None;
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| ManifestError::Syntax {
                path: PathBuf::from(SOURCE),
                position: Position::LineColumn { line: number + 1, column: 1 },
                message: format!("cannot read this line: {e}"),
            })?;
            if n == 0 {
                break;
            }
            number += 1;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let offset = number - 1;
            if builder.is_none() && is_header(text) {
                let Obj(header) =
                    serde_json::from_str::<Obj<RawHeader>>(text).map_err(|e| syntax(e, offset))?;
                builder = Some(Builder::new(header, dir, 0)?);
                continue;
            }
            let Obj(entry) = serde_json::from_str::<Obj<RawEntry>>(text).map_err(|e| syntax(e, offset))?;
            let builder = match &mut builder {
                Some(b) => b,
                None => builder.insert(Builder::new(RawHeader::default(), dir, 0)?),
            };
            builder.push(entry, Some(number))?;
        }
        match builder {
            Some(b) => b.finish(),
            None => Err(manifest_error("the manifest lists no assets".into())),
        }
    }

    /// The file of `entry` on disk, refused when it leaves the root once symlinks are followed.
    pub fn resolve(&self, entry: &Entry) -> Result<PathBuf, ManifestError> {
        resolve_within(&self.root, &entry.path)
    }
}

/// A manifest built in code, for a program that lists its files itself (a database query, an
/// object listing) instead of writing a manifest file. Entries are validated as they are added, by the
/// rules of a manifest file.
///
/// ```
/// use spinlift_manifest::Manifest;
///
/// let manifest = Manifest::builder("/srv/media")
///     .entry("photos/a.jpg")?
///     .entry_with("legacy-42", "photos/b.jpg", Some("b-renamed.jpg"))?
///     .service_data(serde_json::json!({"app": "nightly-import"}))
///     .build()?;
/// assert_eq!(manifest.entries.len(), 2);
/// assert_eq!(manifest.entries[1].filename, "b-renamed.jpg");
/// assert!(Manifest::builder("/srv/media").entry("../etc/passwd").is_err());
/// # Ok::<(), spinlift_manifest::ManifestError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct ManifestBuilder {
    inner: Builder,
}

impl Manifest {
    /// Starts a manifest whose entries' paths are relative to `root`. Such a manifest has no file:
    /// [`Manifest::source`] is empty, so a run needs a checkpoint path of its own.
    pub fn builder(root: impl Into<PathBuf>) -> ManifestBuilder {
        let inner = Builder { root: root.into(), service_data: None, entries: Vec::new() };
        ManifestBuilder { inner }
    }
}

impl ManifestBuilder {
    /// Adds the file at `path` (relative to the root), with the path as its id.
    pub fn entry(mut self, path: impl Into<String>) -> Result<Self, ManifestError> {
        let raw = RawEntry { path: path.into(), id: None, filename: None, size: None, mtime_ms: None };
        self.inner.push(raw, None)?;
        Ok(self)
    }

    /// Adds the file at `path` with an id of its own and the file name FileSpin is told (`None`: the
    /// path's last component).
    pub fn entry_with(
        mut self,
        id: impl Into<String>,
        path: impl Into<String>,
        filename: Option<&str>,
    ) -> Result<Self, ManifestError> {
        let raw = RawEntry {
            path: path.into(),
            id: Some(id.into()),
            filename: filename.map(str::to_owned),
            size: None,
            mtime_ms: None,
        };
        self.inner.push(raw, None)?;
        Ok(self)
    }

    /// `service_data` for every registration (a JSON object).
    pub fn service_data(mut self, service_data: serde_json::Value) -> Self {
        self.inner.service_data = Some(service_data);
        self
    }

    /// The manifest; refused when it has no entries, duplicate ids or `service_data` that is not an
    /// object.
    pub fn build(self) -> Result<Manifest, ManifestError> {
        if let Some(sd) = &self.inner.service_data
            && !sd.is_object()
        {
            return Err(manifest_error("`service_data` must be a JSON object".into()));
        }
        let mut manifest = self.inner.finish()?;
        manifest.source = PathBuf::new();
        Ok(manifest)
    }
}

/// The name errors carry until [`Manifest::load`] puts the file's path in.
const SOURCE: &str = "<manifest>";

fn syntax(e: serde_json::Error, line_offset: usize) -> ManifestError {
    let message = strip_position(&e.to_string());
    let message = match suggest_field(&message) {
        Some(known) => format!("{message} (did you mean `{known}`?)"),
        None => message,
    };
    ManifestError::Syntax {
        path: PathBuf::from(SOURCE),
        position: Position::LineColumn { line: e.line() + line_offset, column: e.column() },
        message,
    }
}

fn manifest_error(message: String) -> ManifestError {
    ManifestError::Manifest { path: PathBuf::from(SOURCE), message }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the known field closest to `x`, when it
/// is close enough to be a typo.
fn suggest_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let known = rest.split('`').skip(1).step_by(2);
    let (distance, best) = known
        .map(|k| (strsim::damerau_levenshtein(&unknown.to_ascii_lowercase(), k), k))
        .min_by_key(|(d, _)| *d)?;
    (distance <= unknown.len().max(3) / 3 + 1 && distance < best.len()).then_some(best)
}

/// Validates entries as they come, against the header read before them.
#[derive(Debug)]
struct Builder {
    root: PathBuf,
    service_data: Option<serde_json::Value>,
    entries: Vec<Entry>,
}

impl Builder {
    fn new(header: RawHeader, dir: &Path, capacity: usize) -> Result<Builder, ManifestError> {
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
        let root = match header.root {
            Some(r) if Path::new(&r).is_absolute() => PathBuf::from(r),
            Some(r) => dir.join(r),
            None => dir.to_path_buf(),
        };
        Ok(Builder { root, service_data: header.service_data, entries: Vec::with_capacity(capacity) })
    }

    fn push(&mut self, e: RawEntry, line: Option<usize>) -> Result<(), ManifestError> {
        let position = Position::Entry { index: self.entries.len(), line };
        let invalid = |message: String| ManifestError::Invalid {
            path: PathBuf::from(SOURCE),
            position: position.clone(),
            message,
        };
        if e.path.is_empty() {
            return Err(invalid("`path` is empty".into()));
        }
        if escapes_root(&self.root, &e.path) {
            return Err(invalid(format!(
                "path {:?} is outside the manifest's root {}; paths must stay inside the root",
                e.path,
                self.root.display()
            )));
        }
        let filename = match e.filename {
            Some(f) => f,
            None => {
                Path::new(&e.path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
            }
        };
        if filename.is_empty() || filename.contains('/') {
            return Err(invalid(format!("filename {filename:?} must be a non-empty name without '/'")));
        }
        let id = e.id.unwrap_or_else(|| e.path.clone());
        if id.is_empty() {
            return Err(invalid("`id` is empty".into()));
        }
        self.entries.push(Entry { id, path: e.path, filename, position });
        Ok(())
    }

    /// Refuses an empty manifest and duplicate ids (found by sorting indices, not by a second copy of
    /// every id: a million-entry manifest costs 4 bytes an entry here).
    fn finish(self) -> Result<Manifest, ManifestError> {
        if self.entries.is_empty() {
            return Err(manifest_error("the manifest lists no assets".into()));
        }
        let entries = self.entries;
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_by(|&a, &b| entries[a as usize].id.cmp(&entries[b as usize].id).then(a.cmp(&b)));
        // Of all duplicates, the one a reader meets first in the file is reported.
        let duplicate = order
            .windows(2)
            .filter(|w| entries[w[0] as usize].id == entries[w[1] as usize].id)
            .map(|w| (w[0] as usize, w[1] as usize))
            .min_by_key(|&(_, second)| second);
        drop(order);
        if let Some((first, second)) = duplicate {
            let e = &entries[second];
            return Err(ManifestError::Invalid {
                path: PathBuf::from(SOURCE),
                position: e.position.clone(),
                message: format!(
                    "duplicate id {:?}: first used at {}; ids must be unique",
                    e.id, entries[first].position
                ),
            });
        }
        Ok(Manifest {
            source: PathBuf::from(SOURCE),
            root: self.root,
            service_data: self.service_data,
            entries,
        })
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

//! The manifest: its file formats, its entries and their validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::entries::{Entries, EntriesBuilder, Entry};
use crate::error::{ManifestError, Position};
use crate::paths::{Resolver, escapes_root};
use crate::shard::Shard;

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

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file this was read from.
    pub source: PathBuf,
    /// The directory every entry's path is relative to.
    pub root: PathBuf,
    /// The URL prefix every relative remote entry (`source`) is under, ending in `/`
    /// (`s3://old-dam/media/`), if the manifest gives one.
    pub source_root: Option<String>,
    /// `service_data` to send with every registration (a JSON object), if the manifest gives one.
    pub service_data: Option<serde_json::Value>,
    /// The entries, in manifest order; ids are unique. Only this shard's, when the manifest was loaded
    /// as one ([`Manifest::load_shard`]).
    pub entries: Entries,
    /// The shard of the batch these entries are, if the manifest was loaded as one.
    pub shard: Option<Shard>,
    /// The data schema the entries' `data` follows (FileSpin's `data_schema_id`), if the manifest names
    /// one.
    pub data_schema_id: Option<u64>,
    /// What resolving entries learned of the tree (shared by clones).
    resolver: std::sync::Arc<Resolver>,
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
    source_root: Option<String>,
    #[serde(default)]
    service_data: Option<serde_json::Value>,
    #[serde(default)]
    data_schema_id: Option<u64>,
    assets: Vec<Obj<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    version: u32,
    #[serde(default)]
    root: Option<String>,
    /// The URL prefix relative `source` entries are under (`s3://bucket/prefix/`).
    #[serde(default)]
    source_root: Option<String>,
    #[serde(default)]
    service_data: Option<serde_json::Value>,
    #[serde(default)]
    data_schema_id: Option<u64>,
}

/// A JSON Lines manifest without a header line: the current version, the manifest's directory as root.
impl Default for RawHeader {
    fn default() -> Self {
        RawHeader {
            version: VERSION,
            root: None,
            source_root: None,
            service_data: None,
            data_schema_id: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    /// A local file, relative to `root`.
    #[serde(default)]
    path: Option<String>,
    /// A remote object: a URL, or a key relative to `source_root`.
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    /// Custom metadata to set on the asset after its registration.
    #[serde(default)]
    data: Option<serde_json::Value>,
    /// The file's size when it was scanned (informational).
    #[serde(default)]
    #[allow(dead_code)]
    size: Option<u64>,
    /// The file's modification time when it was scanned, ms since the epoch (informational).
    #[serde(default)]
    #[allow(dead_code)]
    mtime_ms: Option<i64>,
    /// A remote object's ETag when it was listed (informational: a run reads the object's current
    /// ETag and records that).
    #[serde(default)]
    #[allow(dead_code)]
    etag: Option<String>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`; the format follows the file's extension.
    ///
    /// A JSON Lines manifest is read line by line (the file is never held whole in memory); a JSON
    /// manifest is one document and is read at once: use JSON Lines for very large batches.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        Self::load_with(path, None)
    }

    /// Reads the manifest at `path` as [`Manifest::load`] does, validating every entry, and keeps only
    /// the entries of `shard` ([`Shard::contains`]): each of `N` workers holds a `N`th of the batch.
    pub fn load_shard(path: &Path, shard: Shard) -> Result<Manifest, ManifestError> {
        Self::load_with(path, Some(shard))
    }

    fn load_with(path: &Path, shard: Option<Shard>) -> Result<Manifest, ManifestError> {
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
                Self::parse_json(&text, &dir, shard)
            }
            Format::JsonLines => {
                let file = std::fs::File::open(path).map_err(read_error)?;
                Self::read_lines_shard(std::io::BufReader::with_capacity(256 * 1024, file), &dir, shard)
            }
        };
        let mut m = parsed.map_err(|e| with_source(e, path))?;
        m.source = path.to_path_buf();
        Ok(m)
    }

    /// Parses and validates manifest text; a relative `root` (and the default root) is taken from `dir`.
    pub fn parse(text: &str, format: Format, dir: &Path) -> Result<Manifest, ManifestError> {
        match format {
            Format::Json => Self::parse_json(text, dir, None),
            Format::JsonLines => Self::read_lines(text.as_bytes(), dir),
        }
    }

    fn parse_json(text: &str, dir: &Path, shard: Option<Shard>) -> Result<Manifest, ManifestError> {
        let Obj(m) = serde_json::from_str::<Obj<RawManifest>>(text).map_err(|e| syntax(e, 0))?;
        let header = RawHeader {
            version: m.version,
            root: m.root,
            source_root: m.source_root,
            service_data: m.service_data,
            data_schema_id: m.data_schema_id,
        };
        let mut builder = Builder::new(header, dir, shard)?;
        for Obj(entry) in m.assets {
            builder.push(entry, None)?;
        }
        builder.finish()
    }

    /// Parses and validates a JSON Lines manifest from `reader`, one line at a time: memory holds the
    /// entries, never the text.
    pub fn read_lines(reader: impl std::io::BufRead, dir: &Path) -> Result<Manifest, ManifestError> {
        Self::read_lines_shard(reader, dir, None)
    }

    fn read_lines_shard(
        mut reader: impl std::io::BufRead,
        dir: &Path,
        shard: Option<Shard>,
    ) -> Result<Manifest, ManifestError> {
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
                builder = Some(Builder::new(header, dir, shard)?);
                continue;
            }
            let Obj(entry) = serde_json::from_str::<Obj<RawEntry>>(text).map_err(|e| syntax(e, offset))?;
            let builder = match &mut builder {
                Some(b) => b,
                None => builder.insert(Builder::new(RawHeader::default(), dir, shard)?),
            };
            builder.push(entry, Some(number))?;
        }
        match builder {
            Some(b) => b.finish(),
            None => Err(manifest_error("the manifest lists no assets".into())),
        }
    }

    /// The file of `entry` on disk, refused when it leaves the root once symlinks are followed.
    /// A remote entry has no file: see [`Manifest::source_url`].
    pub fn resolve(&self, entry: &Entry<'_>) -> Result<PathBuf, ManifestError> {
        self.resolve_file(entry).map(|(path, _)| path)
    }

    /// [`Manifest::resolve`], with the file's metadata (of the file a symlink leads to) from the same
    /// look: the real path of each directory is found once, and a file costs one `lstat`.
    pub fn resolve_file(&self, entry: &Entry<'_>) -> Result<(PathBuf, std::fs::Metadata), ManifestError> {
        if entry.is_remote() {
            return Err(ManifestError::Source {
                path: entry.shown_path().into_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a remote entry has no local file",
                ),
            });
        }
        self.resolver.resolve(&self.root, entry.path())
    }

    /// The URL of a remote entry's object as written, its `source` joined to `source_root` when it
    /// is relative (checked when the manifest was read: it stays under `source_root`); `None` for a
    /// local entry. It may carry a query (an https source's signature): show it only through
    /// [`redact_source`](crate::redact_source).
    pub fn source_url(&self, entry: &Entry<'_>) -> Option<String> {
        if !entry.is_remote() {
            return None;
        }
        let source = entry.path();
        Some(match &self.source_root {
            Some(root) if !crate::remote::is_absolute(source) => format!("{root}{source}"),
            _ => source.to_owned(),
        })
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
/// assert_eq!(manifest.entries.at(1).filename(), "b-renamed.jpg");
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
        let inner = Builder {
            root: root.into(),
            source_root: None,
            service_data: None,
            entries: EntriesBuilder::default(),
            shard: None,
            seen: 0,
            data_schema_id: None,
        };
        ManifestBuilder { inner }
    }
}

impl ManifestBuilder {
    /// Adds the file at `path` (relative to the root), with the path as its id.
    pub fn entry(mut self, path: impl Into<String>) -> Result<Self, ManifestError> {
        let raw = RawEntry { path: Some(path.into()), ..RawEntry::default() };
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
            path: Some(path.into()),
            id: Some(id.into()),
            filename: filename.map(str::to_owned),
            ..RawEntry::default()
        };
        self.inner.push(raw, None)?;
        Ok(self)
    }

    /// Adds a remote object, with an id of its own (`None`: the source as written, without query) and
    /// the file name FileSpin is told (`None`: the URL's last segment). `source` is a URL
    /// (`s3://bucket/key`, `gs://`, `az://`, `https://`), or a key relative to
    /// [`source_root`](Self::source_root).
    pub fn remote_entry(
        mut self,
        id: Option<&str>,
        source: impl Into<String>,
        filename: Option<&str>,
    ) -> Result<Self, ManifestError> {
        let raw = RawEntry {
            source: Some(source.into()),
            id: id.map(str::to_owned),
            filename: filename.map(str::to_owned),
            ..RawEntry::default()
        };
        self.inner.push(raw, None)?;
        Ok(self)
    }

    /// The URL prefix relative remote entries are under (`s3://old-dam/media/`). Set it before adding
    /// them.
    pub fn source_root(mut self, root: &str) -> Result<Self, ManifestError> {
        self.inner.source_root = Some(crate::remote::normalize_root(root).map_err(manifest_error)?);
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
    /// Normalized: ends in `/`.
    source_root: Option<String>,
    service_data: Option<serde_json::Value>,
    entries: EntriesBuilder,
    /// Only this shard's entries are kept (all are validated).
    shard: Option<Shard>,
    /// Entries validated so far, kept or not.
    seen: usize,
    data_schema_id: Option<u64>,
}

impl Builder {
    fn new(header: RawHeader, dir: &Path, shard: Option<Shard>) -> Result<Builder, ManifestError> {
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
        let source_root = header.source_root.as_deref().map(crate::remote::normalize_root).transpose();
        Ok(Builder {
            root,
            source_root: source_root.map_err(manifest_error)?,
            service_data: header.service_data,
            entries: EntriesBuilder::default(),
            shard,
            seen: 0,
            data_schema_id: header.data_schema_id,
        })
    }

    fn push(&mut self, e: RawEntry, line: Option<usize>) -> Result<(), ManifestError> {
        let index = self.seen;
        self.seen += 1;
        let position = Position::Entry { index, line };
        let invalid = |message: String| ManifestError::Invalid {
            path: PathBuf::from(SOURCE),
            position: position.clone(),
            message,
        };
        let (written, remote) = match (&e.path, &e.source) {
            (Some(path), None) => (path.as_str(), false),
            (None, Some(source)) => (source.as_str(), true),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "an entry has `path` (a local file) or `source` (a remote object), not both".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "missing field `path` (a local file) or `source` (a remote object: s3://, gs://, az://, \
                     https://)"
                        .into(),
                ));
            }
        };
        let default_filename;
        let default_id;
        let (filename, id) = if remote {
            crate::remote::check_source(self.source_root.as_deref(), written).map_err(invalid)?;
            default_filename = crate::remote::default_filename(written, self.source_root.as_deref());
            default_id = crate::remote::redact(written);
            let filename = match (&e.filename, &default_filename) {
                (Some(f), _) => f.as_str(),
                (None, Some(f)) => f.as_str(),
                (None, None) => {
                    return Err(invalid(format!(
                        "source {default_id:?} names no file (its path ends in '/'): give a `filename`"
                    )));
                }
            };
            (filename, e.id.as_deref().unwrap_or(&default_id))
        } else {
            if written.is_empty() {
                return Err(invalid("`path` is empty".into()));
            }
            if escapes_root(&self.root, written) {
                return Err(invalid(format!(
                    "path {written:?} is outside the manifest's root {}; paths must stay inside the root",
                    self.root.display()
                )));
            }
            let filename = match &e.filename {
                Some(f) => f.as_str(),
                // A `&str` path's last component is UTF-8 too.
                None => Path::new(written).file_name().and_then(|f| f.to_str()).unwrap_or_default(),
            };
            (filename, e.id.as_deref().unwrap_or(written))
        };
        if filename.is_empty() || filename.contains('/') {
            return Err(invalid(format!("filename {filename:?} must be a non-empty name without '/'")));
        }
        if id.is_empty() {
            return Err(invalid("`id` is empty".into()));
        }
        let data = match &e.data {
            None => None,
            Some(data) => Some(validate_data(data).map_err(invalid)?),
        };
        if self.shard.is_some_and(|shard| !shard.contains(id)) {
            return Ok(());
        }
        let id = (id != written).then_some(id);
        self.entries.push(id, written, remote, filename, data.as_deref(), index, line).map_err(invalid)
    }

    /// Refuses an empty manifest and duplicate ids.
    fn finish(self) -> Result<Manifest, ManifestError> {
        // Duplicates of an id are all in the id's shard, so a shard finds every duplicate of its own.
        if self.seen == 0 {
            return Err(manifest_error("the manifest lists no assets".into()));
        }
        let entries = self.entries;
        let duplicate = first_duplicate(&entries);
        if let Some((first, second)) = duplicate {
            let e = entries.at(second);
            return Err(ManifestError::Invalid {
                path: PathBuf::from(SOURCE),
                position: e.position(),
                message: format!(
                    "duplicate id {:?}: first used at {}; ids must be unique",
                    e.id(),
                    entries.at(first).position()
                ),
            });
        }
        Ok(Manifest {
            source: PathBuf::from(SOURCE),
            root: self.root,
            source_root: self.source_root,
            service_data: self.service_data,
            entries: entries.finish(),
            shard: self.shard,
            data_schema_id: self.data_schema_id,
            resolver: Default::default(),
        })
    }
}

/// The most characters FileSpin takes in one Update Data payload (developers.filespin.io, "Assets -
/// Data", "Update Data": "limited to 2,000 characters"). Counted here over the `data` object as
/// serde_json writes it compactly, in Unicode characters.
pub const MAX_DATA_CHARS: usize = 2000;

/// An entry's `data` as compact JSON text, or why FileSpin would refuse it: not an object, longer than
/// [`MAX_DATA_CHARS`], or a key FileSpin reserves (`_filespin…`, "Update Data").
pub fn validate_data(data: &serde_json::Value) -> Result<String, String> {
    let serde_json::Value::Object(map) = data else {
        return Err("`data` must be a JSON object (FileSpin's custom metadata: {\"key\": value, …})".into());
    };
    if let Some(key) = map.keys().find(|k| k.starts_with("_filespin")) {
        return Err(format!("`data` key {key:?} is reserved by FileSpin (keys starting with `_filespin`)"));
    }
    let text = serde_json::to_string(data).map_err(|e| e.to_string())?;
    let chars = text.chars().count();
    if chars > MAX_DATA_CHARS {
        return Err(format!(
            "`data` is {chars} characters as JSON; FileSpin takes at most {MAX_DATA_CHARS} in one update"
        ));
    }
    Ok(text)
}

/// The first entry whose id an earlier entry has, with that earlier entry: `(first, second)`.
///
/// Found by sorting positions (4 bytes an entry), not through a second copy of every id. A hash table
/// would be faster (one pass) but takes 16 bytes an entry, and freeing it costs more: glibc then keeps
/// every later block under its size on the heap, where the journal replay's growing buffers leave holes
/// (measured +35 MiB peak RSS resuming 10⁶ entries).
fn first_duplicate(entries: &EntriesBuilder) -> Option<(usize, usize)> {
    let id = |at: u32| entries.at(at as usize).id();
    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| id(a).cmp(id(b)).then(a.cmp(&b)));
    // Of all duplicates, the one a reader meets first in the file is reported.
    order
        .windows(2)
        .filter(|w| id(w[0]) == id(w[1]))
        .map(|w| (w[0] as usize, w[1] as usize))
        .min_by_key(|&(_, second)| second)
}

fn is_header(line: &str) -> bool {
    matches!(serde_json::from_str::<serde_json::Value>(line),
        Ok(serde_json::Value::Object(o))
            if o.contains_key("version") && !o.contains_key("path") && !o.contains_key("source"))
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

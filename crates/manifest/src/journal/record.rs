//! The lines of a journal: the header that opens it and the records that follow, and how each is
//! encoded (compact JSON, one line, `\n`-terminated).

use std::hash::{DefaultHasher, Hash, Hasher};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use spinlift_core::State;

/// The journal format version this code writes and reads.
pub const VERSION: u32 = 1;

/// The source as it was when it was hashed or uploaded: a re-run compares it with the source now to
/// notice a file or object that changed in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceStamp {
    /// The file's (object's) length in bytes.
    pub size: u64,
    /// The file's modification time (an object's `Last-Modified`), milliseconds since the Unix epoch
    /// (negative before it); 0 when unknown.
    pub mtime_ms: i64,
    /// A remote object's ETag (or version), as a 64-bit fingerprint: storage overwrites an object
    /// within the same second and the same size, and only its ETag tells. 0 for a local file, or an
    /// object whose source gives no ETag.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tag: u64,
}

fn is_zero(tag: &u64) -> bool {
    *tag == 0
}

impl SourceStamp {
    /// The stamp of a file from its metadata. A platform without modification times gives `mtime_ms` 0.
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        let mtime_ms = match metadata.modified() {
            Ok(time) => match time.duration_since(std::time::UNIX_EPOCH) {
                Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
                Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
            },
            Err(_) => 0,
        };
        SourceStamp { size: metadata.len(), mtime_ms, tag: 0 }
    }
}

/// A pre-signed upload form as a record carries it: the form's JSON text, written into its line and
/// read back from it as it is.
///
/// The journal does not look inside (to it the form is opaque); the text is kept rather than a
/// [`serde_json::Value`] because a form (~1.3 KB with its policy) is encoded with every file's first
/// record, and a `Value` of it is a tree of maps and strings to build, encode and free each time.
///
/// `Debug` prints `<redacted>`: a pre-signed form is a credential. Two forms are equal when their text
/// is.
#[derive(Clone)]
pub struct Form(Box<str>);

impl Form {
    /// The form `value` encodes to (compact JSON).
    pub fn encode(value: &impl Serialize) -> Result<Form, serde_json::Error> {
        serde_json::to_string(value).map(Form::from_compact_json)
    }

    /// The form whose compact JSON text `json` is, kept as it is: for a caller whose own encoder is
    /// faster than [`Form::encode`]. (The engine does not make a `Form` at all: it writes its form
    /// straight into the record's line, see [`Line`] and [`FormJson`].)
    ///
    /// `json` must be one JSON value with no line break in it, as compact JSON is: a journal record is
    /// one line, and one with anything else in it does not replay. It is not checked (debug builds do
    /// check): serde_json's parser, checking a form, took 7 k instructions per file (callgrind), about
    /// what the faster encoder saves.
    ///
    /// ```
    /// use spinlift_manifest::journal::Form;
    /// let text = r#"{"url":"https://bucket.example/","fields":[["key","a.jpg"]]}"#;
    /// let form = Form::from_compact_json(text.to_owned());
    /// assert_eq!(form.json(), text);
    /// let value: serde_json::Value = form.decode().unwrap();
    /// assert_eq!(value["fields"][0][1], "a.jpg");
    /// ```
    pub fn from_compact_json(json: String) -> Form {
        debug_assert!(
            !json.contains('\n') && serde_json::from_str::<&RawValue>(&json).is_ok(),
            "a form must be one JSON value on one line"
        );
        Form(json.into_boxed_str())
    }

    /// The form read back as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The form's JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }
}

/// The form as the JSON value it is (the journal writes its text into the line as it is, without
/// this).
impl Serialize for Form {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Any JSON value, kept as its text.
impl<'de> Deserialize<'de> for Form {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Form, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        // A value read from one line of a journal, or from compact text: it has no line break in it,
        // unless it came from elsewhere with whitespace between its tokens.
        let text: Box<str> = raw.into();
        if text.contains('\n') {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(serde::de::Error::custom)?;
            return Ok(Form::from(value));
        }
        Ok(Form(text))
    }
}

impl From<serde_json::Value> for Form {
    fn from(value: serde_json::Value) -> Form {
        // A `Value` always encodes: its maps' keys are strings.
        Form::encode(&value).unwrap_or_else(|_| unreachable!("a serde_json::Value always encodes"))
    }
}

impl PartialEq for Form {
    fn eq(&self, other: &Form) -> bool {
        self.json() == other.json()
    }
}

impl Eq for Form {}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One line of the journal: one state change of one manifest entry.
///
/// `Debug` prints `form` as `<redacted>`: a pre-signed form is a credential.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The manifest entry's id.
    pub id: String,
    /// The entry's state after the change.
    pub state: State,
    /// The pre-signed upload form while it is needed (`FormIssued`, `Uploading`, `Uploaded`); `None`
    /// otherwise. A form given with a final state is not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Form>,
    /// The source file as it was when it was hashed or uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStamp>,
}

impl Record {
    /// A record of `state` for entry `id`, without form or source stamp.
    pub fn new(id: impl Into<String>, state: State) -> Self {
        Record { id: id.into(), state, form: None, source: None }
    }

    /// The same record carrying `form`.
    pub fn with_form(self, form: impl Into<Form>) -> Self {
        Record { form: Some(form.into()), ..self }
    }

    /// The same record carrying `source`.
    pub fn with_source(self, source: SourceStamp) -> Self {
        Record { source: Some(source), ..self }
    }

    /// The record as a [`Line`] to append.
    pub fn line(&self) -> Line<'_> {
        Line {
            id: &self.id,
            state: &self.state,
            form: self.form.as_ref().map(|f| f as &dyn FormJson),
            source: self.source,
        }
    }

    /// Drops the form once the state is final: nothing needs it any more, and it holds credentials.
    pub(crate) fn drop_final_form(&mut self) {
        if self.state.is_final() {
            self.form = None;
        }
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("form", &self.form.as_ref().map(|_| format_args!("<redacted>")))
            .field("source", &self.source)
            .finish()
    }
}

/// A record to append, borrowed from whoever holds its parts: what [`Journal`](super::Journal)'s
/// `append*` methods encode before they return. A [`Record`] gives one ([`Record::line`]); an engine
/// that holds the entry's state and form builds one without copying either (a form is ~1.3 KB, and
/// copying it into a [`Form`] of its own cost an allocation above the allocator's small sizes per file).
///
/// ```
/// use spinlift_core::{State, UnixMillis};
/// use spinlift_manifest::journal::{Form, Line, SourceStamp};
/// let state = State::FormIssued { asset_id: "ec27".into(), expires_at: UnixMillis(0) };
/// let form = Form::from_compact_json(r#"{"url":"https://bucket.example/"}"#.to_owned());
/// let line = Line::new("a.jpg", &state)
///     .with_form(&form)
///     .with_source(SourceStamp { size: 3, mtime_ms: 0, tag: 0 });
/// assert_eq!(line.id, "a.jpg");
/// assert!(format!("{line:?}").contains("<redacted>"), "a form is a credential");
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Line<'a> {
    /// The manifest entry's id.
    pub id: &'a str,
    /// The entry's state after the change.
    pub state: &'a State,
    /// The pre-signed upload form while it is needed; not written with a final state.
    pub form: Option<&'a dyn FormJson>,
    /// The source file as it was when it was hashed or uploaded.
    pub source: Option<SourceStamp>,
}

impl<'a> Line<'a> {
    /// The line of `state` for entry `id`, without form or source stamp.
    pub fn new(id: &'a str, state: &'a State) -> Line<'a> {
        Line { id, state, form: None, source: None }
    }

    /// The same line carrying `form`.
    pub fn with_form(self, form: &'a dyn FormJson) -> Line<'a> {
        Line { form: Some(form), ..self }
    }

    /// The same line carrying `source`.
    pub fn with_source(self, source: SourceStamp) -> Line<'a> {
        Line { source: Some(source), ..self }
    }
}

impl std::fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("form", &self.form.map(|_| format_args!("<redacted>")))
            .field("source", &self.source)
            .finish()
    }
}

/// A form that writes itself into a record's line as compact JSON: a [`Form`], or the caller's own
/// form type (the engine's writes its text straight from the form it uploads with).
pub trait FormJson: Sync {
    /// Appends the form to `out` as one compact JSON value: no line break in it (a journal record is
    /// one line, and one with anything else in it does not replay).
    fn write_json(&self, out: &mut Vec<u8>);
}

impl FormJson for Form {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
}

/// The first line of every journal.
#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    fingerprint: &'a str,
    created_at_ms: i64,
}

/// The value of the header's `type` field.
pub(crate) const HEADER_TYPE: &str = "header";

/// Appends `record` to `out` as one `\n`-terminated line ([`encode_line`]).
pub(crate) fn encode_record(record: &Record, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    encode_line(record.line(), out)
}

/// Appends `line` to `out` as one `\n`-terminated line: `{"id":…,"state":…,"form":…,"source":…}`,
/// compact, the form only while the state is not final, the form and the source only when there is
/// one. Byte for byte what serde_json writes for the [`Record`]; the usual states are written by hand
/// ([`super::fast::write_state`]), serde's internally tagged `State` being several times dearer. On
/// error `out` is left as it was.
pub(crate) fn encode_line(line: Line<'_>, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let start = out.len();
    let written = (|| {
        out.extend_from_slice(br#"{"id":"#);
        spinlift_core::json::push_str(out, line.id);
        out.extend_from_slice(br#","state":"#);
        if !super::fast::write_state(line.state, out) {
            serde_json::to_writer(&mut *out, line.state)?;
        }
        if let Some(form) = line.form
            && !line.state.is_final()
        {
            out.extend_from_slice(br#","form":"#);
            let at = out.len();
            form.write_json(out);
            debug_assert!(
                !out[at..].contains(&b'\n') && serde_json::from_slice::<&RawValue>(&out[at..]).is_ok(),
                "a form must be one JSON value on one line"
            );
        }
        if let Some(source) = &line.source {
            out.extend_from_slice(br#","source":"#);
            super::fast::write_source(source, out);
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    })();
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// Appends the header line to `out`.
pub(crate) fn encode_header(fingerprint: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let created_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    encode(&Header { kind: HEADER_TYPE, version: VERSION, fingerprint, created_at_ms }, out)
}

fn encode(value: &impl Serialize, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let start = out.len();
    match serde_json::to_writer(&mut *out, value) {
        Ok(()) => {
            out.push(b'\n');
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// A 64-bit hash of an entry id: the writer counts live entries with these instead of keeping the ids
/// (a collision only makes compaction a little early or late).
pub(crate) fn id_hash(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

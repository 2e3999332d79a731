//! Reading a journal back: the last record of each entry. Tolerant of the torn last line a crash leaves
//! behind, strict about damage anywhere else.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use spinlift_core::State;

use super::entries::{Entries, Slot};
use super::error::JournalError;
use super::fast::registered_line;
use super::record::{Form, HEADER_TYPE, Record, SourceStamp, VERSION};

/// A journal's content after replay: the last record of each entry, and what replay noticed.
///
/// Entries are kept compactly, so that a journal of millions of entries fits in memory: a registered
/// entry takes about 125 bytes plus its id's length, any other entry that plus its state, and its form
/// as JSON text. Each access rebuilds the entry's full [`Record`]. Forms of final states (`Registered`,
/// `Failed`) are dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    /// The manifest fingerprint in the header ([`fingerprint_ids`](super::fingerprint_ids)); `None` when
    /// the file is empty or its header was torn.
    pub fingerprint: Option<String>,
    /// What replay tolerated, e.g. "dropped a torn last line (power cut mid-write?) at line 7".
    pub warnings: Vec<String>,
    /// Records read (the header not counted), including those a later record of the same id replaced.
    pub records_read: u64,
    /// The last record of each entry id.
    entries: Entries,
}

impl Replayed {
    /// Whether the journal was written for the manifest with this fingerprint.
    pub fn belongs_to(&self, fingerprint: &str) -> bool {
        self.fingerprint.as_deref() == Some(fingerprint)
    }

    /// The last record of entry `id`, rebuilt in full; `None` when the journal has none (or it was
    /// [taken](Replayed::take)).
    pub fn get(&self, id: &str) -> Option<Record> {
        self.entries.get(id)
    }

    /// The last record of entry `id`, removed: later calls for `id` find nothing. The engine takes each
    /// entry's record once, when it starts on the entry.
    pub fn take(&mut self, id: &str) -> Option<Record> {
        self.entries.take(id)
    }

    /// Whether the journal has a record of entry `id` (not [taken](Replayed::take)).
    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains(id)
    }

    /// The number of entries with a record (not [taken](Replayed::take)).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry has a record (none was replayed, or all were [taken](Replayed::take)).
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// The ids of the entries with a record (not [taken](Replayed::take)), in the order they first
    /// appear in the journal.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.ids()
    }

    /// The last record of each entry (not [taken](Replayed::take)), rebuilt in full, in the order the
    /// ids first appear in the journal: for snapshots and compaction.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.entries.records()
    }

    /// Makes `record` (without its form: a run's outcome needs none) the last record of its id, as if
    /// the journal ended with it. A run keeps each entry's latest state here, so that a batch's states
    /// take the replayed journal's few bytes an entry, however the entry got there.
    pub fn insert(&mut self, record: Record) {
        let id = record.id.clone();
        let record = Record { form: None, ..record };
        self.entries.upsert(&id, Slot::of(record));
    }

    /// Makes room for `additional` more entries, so that growing does not hold two copies at once.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// [`Replayed::records`] sorted by id, as a snapshot writes them.
    pub(super) fn records_by_id(&self) -> impl Iterator<Item = Record> + '_ {
        self.entries.records_by_id()
    }
}

/// Reads the journal at `path`; `Ok(None)` when there is no file.
///
/// The rules (the file format is described in the [module docs](super)):
/// - a last line without its `\n`, or one that does not parse, is what a crash mid-write leaves: it is
///   dropped, with a warning in [`Replayed::warnings`];
/// - a line before the last that does not parse is damage: [`JournalError::Corrupt`] names its line;
/// - the first line must be the header (or, in a file cut short, the start of one), so a file that is
///   not a journal is never taken for an empty one; a header of another version is
///   [`JournalError::UnsupportedVersion`];
/// - blank lines are skipped.
pub fn replay(path: &Path) -> Result<Option<Replayed>, JournalError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io(path, e)),
    };
    replay_from(BufReader::with_capacity(256 * 1024, file), path).map(Some)
}

/// Every field any line may have; which ones are present says what the line is.
#[derive(Deserialize)]
struct RawLine {
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<u64>,
    fingerprint: Option<String>,
    id: Option<String>,
    state: Option<State>,
    form: Option<Form>,
    source: Option<SourceStamp>,
}

pub(super) enum Parsed<'a> {
    Header { version: u64, fingerprint: Option<String> },
    Registered(super::fast::RegisteredLine<'a>),
    Record(Record),
}

fn parse(text: &[u8]) -> Result<Parsed<'_>, String> {
    match registered_line(text) {
        Some(line) => Ok(Parsed::Registered(line)),
        None => parse_with_serde(text),
    }
}

/// [`parse`] without the fast path: what decides whether a line is valid.
pub(super) fn parse_with_serde(text: &[u8]) -> Result<Parsed<'static>, String> {
    let raw: RawLine = serde_json::from_slice(text).map_err(|e| describe(&e))?;
    match raw.kind.as_deref() {
        Some(HEADER_TYPE) => match raw.version {
            Some(version) => Ok(Parsed::Header { version, fingerprint: raw.fingerprint }),
            None => Err("the header has no version".to_owned()),
        },
        Some(other) => Err(format!("unknown line type {other:?}")),
        None => match (raw.id, raw.state) {
            (Some(id), Some(state)) => {
                Ok(Parsed::Record(Record { id, state, form: raw.form, source: raw.source }))
            }
            _ => Err("a record needs an id and a state".to_owned()),
        },
    }
}

const NOT_A_JOURNAL: &str = "not a spinlift checkpoint journal (the first line is not its header)";

/// Whether a line cut short could be the start of a header (as [`super::record`] writes it).
fn could_be_header(text: &[u8]) -> bool {
    const START: &[u8] = br#"{"type":"header""#;
    text.starts_with(START) || START.starts_with(text)
}

/// What is wrong with a line, without quoting it: a damaged line may hold a pre-signed form, and
/// serde_json's messages can quote the values they choke on.
fn describe(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "cut short",
        serde_json::error::Category::Data => "not a journal record",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{what} (column {})", e.column())
}

fn replay_from(mut reader: impl BufRead, path: &Path) -> Result<Replayed, JournalError> {
    let corrupt =
        |line: u64, message: String| JournalError::Corrupt { path: path.to_path_buf(), line, message };
    let mut out = Replayed::default();
    let mut seen_header = false;
    // A complete line that does not parse: damage, unless nothing but blank lines follows it.
    let mut unreadable: Option<(u64, String)> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| JournalError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let torn = buf.last() != Some(&b'\n');
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if let Some((line, message)) = unreadable.take() {
            return Err(corrupt(line, message));
        }
        if torn {
            if !seen_header && !could_be_header(text) {
                return Err(corrupt(line_no, NOT_A_JOURNAL.to_owned()));
            }
            out.warnings.push(format!("dropped a torn last line (power cut mid-write?) at line {line_no}"));
            break;
        }
        match parse(text) {
            Ok(Parsed::Header { version, fingerprint }) => {
                if seen_header {
                    return Err(corrupt(line_no, "a second header".to_owned()));
                }
                if version != u64::from(VERSION) {
                    return Err(JournalError::UnsupportedVersion {
                        path: path.to_path_buf(),
                        version,
                        supported: VERSION,
                    });
                }
                seen_header = true;
                out.fingerprint = fingerprint;
            }
            Ok(Parsed::Registered(_) | Parsed::Record(_)) if !seen_header => {
                return Err(corrupt(line_no, NOT_A_JOURNAL.to_owned()));
            }
            Ok(Parsed::Registered(line)) => {
                out.records_read += 1;
                let slot = Slot::registered(line.asset_id, line.size, line.md5, line.source);
                out.entries.upsert(line.id, slot);
            }
            Ok(Parsed::Record(mut record)) => {
                record.drop_final_form();
                out.records_read += 1;
                let id = std::mem::take(&mut record.id);
                out.entries.upsert(&id, Slot::of(record));
            }
            Err(message) if !seen_header => {
                return Err(corrupt(line_no, format!("{NOT_A_JOURNAL}: {message}")));
            }
            Err(message) => unreadable = Some((line_no, message)),
        }
    }
    out.entries.shrink();
    if let Some((line, message)) = unreadable {
        out.warnings.push(format!(
            "dropped an unreadable last line (power cut mid-write?) at line {line}: {message}"
        ));
    }
    Ok(out)
}

//! The outcome of a run: one line per manifest entry, as the `--report` JSON Lines file holds it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spinlift_core::{Failure, FailureKind, State, Step};
use spinlift_manifest::Manifest;
use spinlift_manifest::journal::Replayed;

/// An entry's outcome, in the report's JSON Lines schema:
/// `{"id", "path", "status": "registered"|"failed"|"pending", "asset_id", "size", "checksum", "error",
/// "metadata_set", "filespin_status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryReport {
    /// The entry's id.
    pub id: String,
    /// The entry's path as written in the manifest.
    pub path: String,
    /// `registered`, `failed` or `pending`.
    pub status: String,
    /// The FileSpin asset id, once one was issued.
    pub asset_id: Option<String>,
    /// Bytes uploaded.
    pub size: Option<u64>,
    /// MD5 of the bytes uploaded, lowercase hex.
    pub checksum: Option<String>,
    /// Why the entry failed (or what stopped it), without secrets.
    pub error: Option<String>,
    /// Whether the entry's data (its metadata, the batch tag) was set on the asset.
    #[serde(default)]
    pub metadata_set: bool,
    /// The asset's status as FileSpin reported it when it was verified: `OK` (processed, same size and
    /// checksum), `ERROR`, `NOT_READY` (still being saved when verification gave up); `None` when not
    /// verified.
    #[serde(default)]
    pub filespin_status: Option<String>,
}

impl EntryReport {
    /// The report line for an entry in `state`; `note` explains a pending entry (a stopped batch).
    pub fn from_state(id: &str, path: &str, state: &State, note: Option<&Failure>) -> Self {
        let (size, checksum) = match (state, state.registered()) {
            (_, Some((_, size, md5))) => (Some(size), Some(md5.to_owned())),
            (State::Uploaded { size, md5, .. }, _) => (Some(*size), Some(md5.clone())),
            (State::Failed { uploaded: Some(u), failure, .. }, _)
                if matches!(failure.step, Step::SetData | Step::Verify) =>
            {
                (Some(u.size), Some(u.md5.clone()))
            }
            _ => (None, None),
        };
        let filespin_status = match state {
            State::Verified { .. } => Some("OK".to_owned()),
            State::Failed { failure, .. } if failure.step == Step::Verify => match &failure.kind {
                FailureKind::Processing if failure.message.contains("NOT_READY") => {
                    Some("NOT_READY".to_owned())
                }
                FailureKind::Processing if failure.message.contains("status ERROR") => {
                    Some("ERROR".to_owned())
                }
                FailureKind::Mismatch => Some("OK".to_owned()),
                _ => None,
            },
            _ => None,
        };
        let error = match state {
            State::Failed { failure, .. } => Some(failure.to_string()),
            _ => note.map(|f| format!("not finished: {f}")),
        };
        EntryReport {
            id: id.to_owned(),
            path: path.to_owned(),
            status: state.report_status().to_owned(),
            asset_id: state.asset_id().map(str::to_owned),
            size,
            checksum,
            error,
            metadata_set: state.data_set(),
            filespin_status,
        }
    }

    /// Whether FileSpin registered the entry.
    pub fn is_registered(&self) -> bool {
        self.status == "registered"
    }
}

/// Why a run ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A batch-wide failure (authentication, account): nothing more can succeed.
    Batch(Failure),
    /// The run was cancelled (Ctrl-C, SIGTERM, or the library user).
    Cancelled,
    /// The checkpoint journal could not be written: going on would upload without a record.
    Journal(String),
}

/// The outcome of a whole run: each entry's final state, kept as compactly as a replayed journal keeps
/// it (a few dozen bytes an entry, not a line of text), with the manifest it belongs to.
#[derive(Clone)]
pub struct RunReport {
    manifest: Manifest,
    /// The last state of each entry (the manifest's and, for a resumed batch, the journal's others).
    states: Replayed,
    /// Why an entry the run worked on is not finished (the batch stopped), by index in the manifest.
    unfinished: HashMap<usize, Failure>,
    counts: Counts,
    /// Why the run ended early, if it did.
    pub stopped: Option<StopReason>,
    /// What the user should know about the checkpoint (a torn tail dropped, an edited manifest).
    pub notes: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// How many entries ended how.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    registered: usize,
    failed: usize,
    pending: usize,
    registered_bytes: u64,
    metadata_set: usize,
    verified: usize,
}

impl Counts {
    /// Counts an entry that ended as `line` says.
    pub(crate) fn add(&mut self, line: &EntryReport) {
        match line.status.as_str() {
            "registered" => {
                self.registered += 1;
                self.registered_bytes += line.size.unwrap_or(0);
            }
            "failed" => self.failed += 1,
            _ => self.pending += 1,
        }
        self.metadata_set += usize::from(line.metadata_set);
        self.verified +=
            usize::from(line.status == "registered" && line.filespin_status.as_deref() == Some("OK"));
    }
}

impl RunReport {
    /// The report of a run that left `manifest`'s entries in `states`, with `counts` of them.
    pub(crate) fn new(
        manifest: Manifest,
        states: Replayed,
        unfinished: HashMap<usize, Failure>,
        counts: Counts,
        stopped: Option<StopReason>,
        notes: Vec<String>,
        elapsed: Duration,
    ) -> RunReport {
        RunReport { manifest, states, unfinished, counts, stopped, notes, elapsed }
    }

    /// One line per manifest entry, in manifest order (built as it is read: a report of millions of
    /// entries is never held as text).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = EntryReport> + '_ {
        self.manifest.entries.iter().enumerate().map(|(at, entry)| {
            let state = self.states.get(entry.id()).map_or(State::Pending, |r| r.state);
            EntryReport::from_state(entry.id(), &entry.shown_path(), &state, self.unfinished.get(&at))
        })
    }

    /// Entries registered.
    pub fn registered(&self) -> usize {
        self.counts.registered
    }

    /// Entries that failed for good.
    pub fn failed(&self) -> usize {
        self.counts.failed
    }

    /// Entries not finished (a stopped or cancelled run).
    pub fn pending(&self) -> usize {
        self.counts.pending
    }

    /// Registered entries whose data (metadata, the batch tag) was set on the asset.
    pub fn metadata_set(&self) -> usize {
        self.counts.metadata_set
    }

    /// Registered entries FileSpin has processed and holds with the same size and checksum.
    pub fn verified(&self) -> usize {
        self.counts.verified
    }

    /// Bytes of the registered entries.
    pub fn registered_bytes(&self) -> u64 {
        self.counts.registered_bytes
    }

    /// Writes the report as JSON Lines to `path` (created 0600 or truncated): it maps files to asset
    /// ids, which is nobody else's business.
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        let mut out = std::io::BufWriter::new(file);
        for entry in self.entries() {
            serde_json::to_writer(&mut out, &entry)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    }
}

impl std::fmt::Debug for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunReport")
            .field("entries", &self.manifest.entries.len())
            .field("counts", &self.counts)
            .field("stopped", &self.stopped)
            .field("notes", &self.notes)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

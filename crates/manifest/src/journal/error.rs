//! What can go wrong with a journal, and whether trying again can help.

use std::path::PathBuf;

/// A journal that cannot be read or written.
///
/// [`JournalError::is_retryable`] answers whether the same call may succeed later without anyone
/// changing the file; each variant's documentation says the same in words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Reading, writing or fsyncing the journal failed (disk full, I/O error, permissions).
    ///
    /// Not retryable on the same [`Journal`](super::Journal): the journal stops at the first failed
    /// write or fsync and refuses every later append. What is on disk stays a valid journal; a new
    /// run, once the cause is fixed (space freed), carries on from it. On [`replay`](super::replay) and
    /// [`Journal::open`](super::Journal::open) the same call may succeed once the cause is gone.
    #[error("checkpoint journal {path}: {source}")]
    Io {
        /// The journal's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line before the last one is not a journal record: the file was damaged or edited.
    /// (A damaged *last* line is what a power cut leaves; replay drops it with a warning instead.)
    ///
    /// Not retryable: the file must be repaired or removed (removing it means starting the batch
    /// over, which can create a second FileSpin asset for entries that were uploaded already).
    #[error("checkpoint journal {path} is damaged at line {line}: {message}")]
    Corrupt {
        /// The journal's path.
        path: PathBuf,
        /// The 1-based line number of the damaged line.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The journal's header names a format version this spinlift does not know (a newer spinlift
    /// wrote it). Not retryable: use the spinlift that wrote it.
    #[error(
        "checkpoint journal {path} has format version {version}; this spinlift reads version {supported}"
    )]
    UnsupportedVersion {
        /// The journal's path.
        path: PathBuf,
        /// The version in the header.
        version: u64,
        /// The version this code reads and writes.
        supported: u32,
    },
    /// [`Journal::open`](super::Journal::open) was given no replayed content but the file exists and is
    /// not empty: opening it as a new journal would throw its records away.
    ///
    /// Not retryable: [`replay`](super::replay) it and pass the result, or remove the file on purpose.
    #[error(
        "checkpoint journal {path} exists already: resume from it (replay it first) or remove it to start over"
    )]
    Exists {
        /// The journal's path.
        path: PathBuf,
    },
    /// Another journal handle (another spinlift run, or this process) holds the journal open.
    ///
    /// Retryable once the other run has ended; two runs writing one journal would each upload the same
    /// entries.
    #[error("checkpoint journal {path} is in use by another run")]
    Locked {
        /// The journal's path.
        path: PathBuf,
    },
    /// An earlier write or fsync of this journal failed, so it accepts nothing more; `cause` is that
    /// first failure. Not retryable on this handle (see [`JournalError::Io`]).
    #[error("checkpoint journal {path} stopped after a failed write: {cause}")]
    Stopped {
        /// The journal's path.
        path: PathBuf,
        /// The first failure, as text.
        cause: String,
    },
    /// The journal was closed (or its writer is gone). Not retryable: a bug in the caller.
    #[error("the checkpoint journal is closed")]
    Closed,
    /// A record could not be encoded as JSON. Not retryable: a bug, not a condition of the disk.
    #[error("cannot encode a checkpoint record: {0}")]
    Encode(#[source] serde_json::Error),
}

impl JournalError {
    /// Whether the same call may succeed later without anyone repairing the file or the code: only a
    /// journal held by another run ([`JournalError::Locked`]).
    ///
    /// An [`Io`](JournalError::Io) error during a run is not retryable on the same handle; a new run can
    /// resume once its cause (often a full disk) is fixed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, JournalError::Locked { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        JournalError::Io { path: path.into(), source }
    }
}

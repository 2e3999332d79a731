//! Writing a journal's whole content anew: a header and one record per entry, staged in
//! `<name>.compacting` beside the journal, fsync'd, renamed over it, and the directory fsync'd. A crash
//! at any point leaves either the old journal or the new one, never a mix (object_store's `local.rs`
//! stages its files the same way).
//!
//! Used when a journal is opened (a new one, or a snapshot of a replayed one) and when it is closed with
//! more records than its ratio allows, so a journal stays proportional to the manifest, not to its
//! history.
//!
//! Locking: the staging file is locked first, then the journal it replaces, and the new journal keeps
//! the staging file's lock through the rename. Whichever order two runs start in, the second finds one
//! of the two locked and gets [`JournalError::Locked`] instead of replacing a journal that the first is
//! appending to.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::JournalError;
use super::record::{encode_record, id_hash};
use super::replay::Replayed;

/// What to do about a journal already at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Existing {
    /// Only a missing or empty file may be replaced (a new journal).
    MustBeEmpty,
    /// Replace it (its content was replayed and is being written anew); lock it first.
    Replace,
    /// Replace it; this writer holds its lock already.
    HeldByUs,
}

/// A snapshot being written; dropped before [`Staged::commit`], it removes its staging file.
pub(super) struct Staged {
    path: PathBuf,
    staging: PathBuf,
    file: Option<File>,
    /// The lock on the journal being replaced, held until the rename.
    _replaced: Option<File>,
    committed: bool,
}

impl Staged {
    /// Creates (or takes over a leftover) staging file, private to the owner (0600), and locks it and
    /// then the journal.
    pub(super) fn begin(path: &Path, existing: Existing) -> Result<Staged, JournalError> {
        let staging = staging_path(path)?;
        let file = open_private(&staging).map_err(|e| JournalError::io(&staging, e))?;
        lock(&file, path)?;
        // Ours now: a leftover of a crashed snapshot is emptied and made private.
        file.set_len(0).map_err(|e| JournalError::io(&staging, e))?;
        make_private(&file).map_err(|e| JournalError::io(&staging, e))?;
        let mut staged =
            Staged { path: path.to_path_buf(), staging, file: Some(file), _replaced: None, committed: false };
        if existing == Existing::HeldByUs {
            return Ok(staged);
        }
        match File::open(path) {
            Ok(old) => {
                lock(&old, path)?;
                let len = old.metadata().map_err(|e| JournalError::io(path, e))?.len();
                if existing == Existing::MustBeEmpty && len > 0 {
                    return Err(JournalError::Exists { path: path.to_path_buf() });
                }
                staged._replaced = Some(old);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::io(path, e)),
        }
        Ok(staged)
    }

    /// Writes `bytes` to the staging file.
    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        match self.file.as_mut() {
            Some(file) => file.write_all(bytes).map_err(|e| JournalError::io(&self.staging, e)),
            None => Err(JournalError::Closed),
        }
    }

    /// Makes the staged content the journal: fsync, rename over, fsync the directory. Returns the new
    /// journal file, locked, positioned at its end.
    pub(super) fn commit(mut self) -> Result<File, JournalError> {
        let file = self.file.take().ok_or(JournalError::Closed)?;
        file.sync_all().map_err(|e| JournalError::io(&self.staging, e))?;
        std::fs::rename(&self.staging, &self.path).map_err(|e| JournalError::io(&self.path, e))?;
        self.committed = true;
        sync_dir(&self.path).map_err(|e| JournalError::io(&self.path, e))?;
        Ok(file)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a leftover is emptied by the next snapshot anyway.
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

/// A part of a snapshot: encoded record lines, and the hashes of their ids.
pub(super) struct Chunk {
    pub(super) bytes: Vec<u8>,
    pub(super) ids: Vec<u64>,
}

/// Bytes per chunk: large enough that a write is cheap, small enough to keep memory flat.
const CHUNK_BYTES: usize = 256 * 1024;

/// The records of `replayed` as snapshot lines, sorted by id (so a snapshot of the same content is the
/// same file), in chunks of about [`CHUNK_BYTES`].
pub(super) fn snapshot_chunks(replayed: &Replayed) -> impl Iterator<Item = Result<Chunk, JournalError>> + '_ {
    let mut records = replayed.records_by_id().peekable();
    std::iter::from_fn(move || {
        records.peek()?;
        let mut chunk = Chunk { bytes: Vec::with_capacity(CHUNK_BYTES + 4096), ids: Vec::new() };
        while chunk.bytes.len() < CHUNK_BYTES {
            let Some(record) = records.next() else { break };
            if let Err(e) = encode_record(&record, &mut chunk.bytes) {
                return Some(Err(JournalError::Encode(e)));
            }
            chunk.ids.push(id_hash(&record.id));
        }
        Some(Ok(chunk))
    })
}

fn staging_path(path: &Path) -> Result<PathBuf, JournalError> {
    let Some(name) = path.file_name() else {
        let message = "a checkpoint journal path must name a file";
        return Err(JournalError::io(path, io::Error::new(io::ErrorKind::InvalidInput, message)));
    };
    let mut staging = name.to_os_string();
    staging.push(".compacting");
    Ok(path.with_file_name(staging))
}

fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked { path: path.to_path_buf() }),
        // A file system without locks (some network mounts): go on unprotected rather than refuse.
        Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
        Err(std::fs::TryLockError::Error(e)) => Err(JournalError::io(path, e)),
    }
}

fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(unix)]
fn make_private(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn make_private(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Makes the rename durable: fsync the directory that holds `path`.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

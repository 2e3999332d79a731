//! [`Journal`], the handle the engine appends through, and its [`JournalOptions`].

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::compact::{Existing, snapshot_chunks};
use super::error::JournalError;
use super::record::{Record, encode_record, id_hash};
use super::replay::Replayed;
use super::sink::Sink;
use super::writer::{self, Command, Part, Setup, Shared};

/// How a journal writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JournalOptions {
    /// Whether [`Journal::append`] waits for an fsync (default `true`). With `false`, a record is
    /// acknowledged once the operating system has it: it survives a kill -9 but not a power cut.
    /// [`Journal::close`] fsyncs either way.
    pub durable: bool,
    /// [`Journal::close`] rewrites the journal as a snapshot when it holds more than this many records
    /// per live entry (default 4.0). `f64::INFINITY` never compacts on close.
    pub compact_when_records_exceed: f64,
    /// The most records one group commit writes (default 1024).
    pub max_batch: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { durable: true, compact_when_records_exceed: 4.0, max_batch: 1024 }
    }
}

/// A journal open for appending: a cheap, cloneable handle to its one writer.
///
/// Every append goes through a channel to a single writer thread, which writes whatever is queued in one
/// go, fsyncs once, and then acknowledges every record of that group: with many appenders, one fsync
/// covers many records (group commit). Records of one handle are written in the order they were
/// appended.
///
/// The first failed write or fsync stops the journal: that append and every later one returns an error,
/// and the file ends at a record boundary or in one torn line that [`replay`](super::replay) drops.
///
/// Dropping every handle without [`Journal::close`] still fsyncs what was written, but does not compact.
#[derive(Clone)]
pub struct Journal {
    commands: std::sync::mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.shared.path).finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal at `path` for writing, creating it private to its owner (mode 0600: forms are
    /// credentials).
    ///
    /// The file is always written anew, through a staging file in the same directory that is fsync'd,
    /// renamed over `path`, and whose directory is fsync'd: a header line
    /// (`{"type":"header","version":1,"fingerprint":…,"created_at_ms":…}`), then, when `replayed` is
    /// given, one record per entry (its last state). So a journal stays proportional to the manifest,
    /// not to its history. Whether the replayed journal belongs to this manifest
    /// ([`Replayed::belongs_to`]) is the caller's decision.
    ///
    /// Without `replayed`, a journal that exists and is not empty is refused
    /// ([`JournalError::Exists`]) rather than thrown away. A journal another handle holds is refused
    /// ([`JournalError::Locked`]). If `open` fails, the old journal is untouched; if it is cancelled,
    /// the journal is either untouched or already the complete snapshot, never a part of it.
    pub async fn open(
        path: &Path,
        fingerprint: &str,
        replayed: Option<&Replayed>,
        options: JournalOptions,
    ) -> Result<Journal, JournalError> {
        Self::open_with_sink(path, fingerprint, replayed, options, |file| file).await
    }

    /// [`Journal::open`], with the journal file wrapped by `wrap` before the first append: for tests
    /// that count fsyncs or fail like a full disk. The opening snapshot is written to the file itself.
    pub async fn open_with_sink<S: Sink>(
        path: &Path,
        fingerprint: &str,
        replayed: Option<&Replayed>,
        options: JournalOptions,
        wrap: impl FnOnce(File) -> S + Send + 'static,
    ) -> Result<Journal, JournalError> {
        let shared = Arc::new(Shared { path: path.to_path_buf(), stopped: OnceLock::new() });
        let existing = if replayed.is_some() { Existing::Replace } else { Existing::MustBeEmpty };
        let setup = Setup { fingerprint: fingerprint.to_owned(), existing, options, shared: shared.clone() };
        let (parts_tx, parts_rx) = mpsc::channel(4);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (commands, commands_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("spinlift-journal".to_owned())
            .spawn(move || writer::run(setup, parts_rx, ready_tx, commands_rx, wrap))
            .map_err(|e| JournalError::io(path, e))?;

        // The snapshot is encoded here and written by the writer, a few chunks at a time: memory stays
        // flat however large the manifest.
        if let Some(replayed) = replayed {
            for chunk in snapshot_chunks(replayed) {
                if parts_tx.send(Part::Chunk(chunk?)).await.is_err() {
                    break; // The writer failed; `ready` says why.
                }
            }
        }
        let _ = parts_tx.send(Part::End).await;
        drop(parts_tx);
        match ready_rx.await {
            Ok(Ok(())) => Ok(Journal { commands, shared }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JournalError::Closed),
        }
    }

    /// Appends `record` and returns once it is durable: written, and fsync'd when
    /// [`JournalOptions::durable`]. Many tasks may append at once; their records share fsyncs.
    ///
    /// A form given with a final state is not written. Cancelling the returned future does not withdraw
    /// the record: it is written all the same.
    pub async fn append(&self, record: Record) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.send(&record, Some(ack))?;
        done.await.unwrap_or_else(|_| Err(self.shared.gone()))
    }

    /// Appends `record` without waiting: it is written in order with the others, and becomes durable
    /// with the next [`Journal::append`] (of any handle) or [`Journal::close`]. Fails only when the
    /// journal is already closed or stopped.
    ///
    /// The queue is unbounded: a caller that appends without waiting faster than the disk writes should
    /// wait for an [`Journal::append`] now and then.
    pub fn append_nowait(&self, record: Record) -> Result<(), JournalError> {
        self.send(&record, None)
    }

    /// Writes and fsyncs everything queued, compacts the journal when it holds more records per entry
    /// than [`JournalOptions::compact_when_records_exceed`], and stops the writer. Appends through other
    /// handles after this fail with [`JournalError::Closed`].
    ///
    /// A compaction that fails leaves the journal as it was, complete; the error says why.
    pub async fn close(self) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.commands.send(Command::Close { ack }).map_err(|_| self.shared.gone())?;
        done.await.unwrap_or_else(|_| Err(self.shared.gone()))
    }

    fn send(&self, record: &Record, ack: Option<writer::Ack>) -> Result<(), JournalError> {
        if self.shared.stopped.get().is_some() {
            return Err(self.shared.gone());
        }
        let mut line = Vec::with_capacity(128 + record.id.len());
        encode_record(record, &mut line).map_err(JournalError::Encode)?;
        let command = Command::Append { line, id: id_hash(&record.id), ack };
        self.commands.send(command).map_err(|_| self.shared.gone())
    }
}

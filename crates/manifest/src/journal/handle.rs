//! [`Journal`], the handle the engine appends through, and its [`JournalOptions`].

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::compact::{Existing, snapshot_chunks};
use super::error::JournalError;
use super::queue::{Queue, Urgency};
use super::record::{Line, Record, encode_line, id_hash};
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
    /// How long a group commit that someone waits on may wait for more records to share its fsync
    /// (default zero: it goes at once). Each fsync costs the same however many records it covers, so
    /// with many appenders a short wait saves most of them, at the price of that wait.
    pub group_wait: std::time::Duration,
    /// A group commit goes at once, [`group_wait`](Self::group_wait) or not, when this many appenders
    /// wait on it (default 1).
    pub group_size: usize,
    /// Whether the writer keeps blank lines ahead of the records for the next ones to overwrite
    /// (default `true`; see the module docs). Each fsync then writes only the records' pages, not the
    /// file's new size and block map, but every page is written twice (blank, then with records) and
    /// the blank lines cost a write each: worth it with many fsyncs a second, not with few.
    pub blank_room: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            durable: true,
            compact_when_records_exceed: 4.0,
            max_batch: 1024,
            group_wait: std::time::Duration::ZERO,
            group_size: 1,
            blank_room: true,
        }
    }
}

/// A journal open for appending: a cheap, cloneable handle to its one writer.
///
/// Every append goes through a queue to a single writer thread, which writes whatever is queued in one
/// go, fsyncs once, and then acknowledges every record of that group: with many appenders, one fsync
/// covers many records (group commit). Records of one handle are written in the order they were
/// appended.
///
/// The first failed write or fsync stops the journal: that append and every later one returns an error,
/// and the file ends at a record boundary or in one torn line that [`replay`](super::replay) drops.
///
/// Dropping every handle without [`Journal::close`] still fsyncs what was written, but does not compact.
pub struct Journal {
    shared: Arc<Shared>,
}

impl Journal {
    fn handle(shared: &Arc<Shared>) -> Journal {
        shared.queue.add_handle();
        Journal { shared: shared.clone() }
    }
}

impl Clone for Journal {
    fn clone(&self) -> Self {
        Journal::handle(&self.shared)
    }
}

/// The last handle gone, the writer makes what was written durable and stops.
impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.queue.drop_handle();
    }
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
        // Without fsyncs there is nothing for a group to share.
        let group_wait = if options.durable { options.group_wait } else { std::time::Duration::ZERO };
        let queue = Queue::new(group_wait, options.group_size);
        let shared = Arc::new(Shared { path: path.to_path_buf(), stopped: OnceLock::new(), queue });
        let existing = if replayed.is_some() { Existing::Replace } else { Existing::MustBeEmpty };
        let setup = Setup { fingerprint: fingerprint.to_owned(), existing, options, shared: shared.clone() };
        let (parts_tx, parts_rx) = mpsc::channel(4);
        let (ready_tx, ready_rx) = oneshot::channel();
        // The first handle, before anything can fail: if `open` fails or is cancelled, it goes, and the
        // writer with it.
        let journal = Journal::handle(&shared);
        std::thread::Builder::new()
            .name("spinlift-journal".to_owned())
            .spawn(move || writer::run(setup, parts_rx, ready_tx, wrap))
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
            Ok(Ok(())) => Ok(journal),
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
        self.append_begin(record.line()).await
    }

    /// [`Journal::append`] in two halves: the record is queued at once, in order with this handle's
    /// other appends (before any made after this returns), and the returned future resolves once it is
    /// durable. The caller may do other work while the disk catches up, and learn the outcome later.
    /// Dropping the future does not withdraw the record.
    pub fn append_begin(
        &self,
        record: Line<'_>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static + use<> {
        let (ack, done) = oneshot::channel();
        let queued = self.send(record, Some(ack), Urgency::Now);
        let shared = self.shared.clone();
        async move {
            queued?;
            done.await.unwrap_or_else(|_| Err(shared.gone()))
        }
    }

    /// [`Journal::append_begin`] for a record nothing else waits on: it does not start a group commit
    /// of its own, but joins the next one that someone else's append starts, or one of its own after
    /// `within` (at the latest after [`WHENEVER`](super::queue::WHENEVER), however long `within`
    /// is). For a record the caller must know durable before it reports something, but not before it
    /// goes on. Dropping the future does not withdraw the record; it is then durable within
    /// [`WHENEVER`](super::queue::WHENEVER) at the latest.
    pub fn append_lazy(
        &self,
        record: Line<'_>,
        within: std::time::Duration,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static + use<> {
        let (ack, mut done) = oneshot::channel();
        let queued = self.send(record, Some(ack), Urgency::Whenever);
        let shared = self.shared.clone();
        async move {
            queued?;
            // The queue takes it within `WHENEVER` anyway: no timer of its own (a timer per record,
            // set from outside the runtime's workers, wakes one of them to take it).
            if within >= super::queue::WHENEVER {
                return done.await.unwrap_or_else(|_| Err(shared.gone()));
            }
            let answer = tokio::select! {
                answer = &mut done => answer,
                () = tokio::time::sleep(within) => {
                    shared.queue.hurry();
                    done.await
                }
            };
            answer.unwrap_or_else(|_| Err(shared.gone()))
        }
    }

    /// Appends `record` without waiting: it is written in order with the others, and becomes durable
    /// with the next [`Journal::append`] (of any handle) or [`Journal::close`]. Fails only when the
    /// journal is already closed or stopped.
    ///
    /// It does not wake the writer: it is written with the next group, or within a few tens of
    /// milliseconds when none comes. A crash may lose it either way (it is not durable until the next
    /// fsync).
    ///
    /// The queue is unbounded: a caller that appends without waiting faster than the disk writes should
    /// wait for an [`Journal::append`] now and then.
    pub fn append_nowait(&self, record: Line<'_>) -> Result<(), JournalError> {
        self.send(record, None, Urgency::Whenever)
    }

    /// Tells the writer that someone now waits on what is queued (records appended with
    /// [`Journal::append_lazy`], say): it goes as a group someone waits on does, within
    /// [`JournalOptions::group_wait`] or once [`JournalOptions::group_size`] wait on it.
    pub fn commit_soon(&self) {
        self.shared.queue.urge();
    }

    /// Asks the writer to commit what is queued now, rather than when a later append or its own timer
    /// ([`WHENEVER`](super::queue::WHENEVER)) would: for a caller that knows no more records are coming
    /// soon, whose [`Journal::append_lazy`] records would otherwise wait that long.
    pub fn commit_now(&self) {
        self.shared.queue.hurry();
    }

    /// Writes and fsyncs everything queued, compacts the journal when it holds more records per entry
    /// than [`JournalOptions::compact_when_records_exceed`], and stops the writer. Appends through other
    /// handles after this fail with [`JournalError::Closed`].
    ///
    /// A compaction that fails leaves the journal as it was, complete; the error says why.
    pub async fn close(self) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.shared.queue.push(&[], Command::Close { ack }, Urgency::Now).map_err(|_| self.shared.gone())?;
        // Nothing comes after a close for a group to wait for.
        self.shared.queue.hurry();
        done.await.unwrap_or_else(|_| Err(self.shared.gone()))
    }

    fn send(&self, record: Line<'_>, ack: Option<writer::Ack>, urgency: Urgency) -> Result<(), JournalError> {
        if self.shared.stopped.get().is_some() {
            return Err(self.shared.gone());
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            encode_line(record, line).map_err(JournalError::Encode)?;
            let command = Command::Append { end: 0, id: id_hash(record.id), ack };
            let queued = self.shared.queue.push(line, command, urgency).map_err(|_| self.shared.gone());
            // A rare long line (a form with large fields) does not stay with the thread.
            if line.capacity() > 64 * 1024 {
                *line = Vec::new();
            }
            queued
        })
    }
}

thread_local! {
    /// Where a record is encoded before it joins the queue: one buffer per thread, reused.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

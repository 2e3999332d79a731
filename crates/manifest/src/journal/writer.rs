//! The one writer of a journal: a dedicated thread that owns the file, commits appends in groups (one
//! write and at most one fsync per group) and acknowledges each record once its group is durable.
//!
//! A thread rather than a tokio task: every step of it blocks (write, fsync, rename), and a thread
//! parked on its [`Queue`] costs nothing between groups, where `spawn_blocking` per group would pay a
//! hand-off to the blocking pool each time.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::compact::{Chunk, Existing, Staged, snapshot_chunks};
use super::error::JournalError;
use super::handle::JournalOptions;
use super::queue::Queue;
use super::record::encode_header;
use super::replay::replay;
use super::sink::Sink;

/// Answers a caller waiting for its record (or for `close`).
pub(super) type Ack = oneshot::Sender<Result<(), JournalError>>;

/// What the handles ask of the writer.
pub(super) enum Command {
    /// Write this record's line, which ends at `end` in the bytes queued with it (see
    /// [`Queue::push`]); answer `ack` (if any) once it is durable.
    Append { end: usize, id: u64, ack: Option<Ack> },
    /// Make everything durable, compact if due, stop.
    Close { ack: Ack },
}

/// A part of the snapshot `open` streams to the writer; the snapshot is only committed after `End`,
/// so an `open` that fails or is cancelled half-way leaves the old journal untouched.
pub(super) enum Part {
    Chunk(Chunk),
    End,
}

/// What the handles and the writer share.
pub(super) struct Shared {
    pub(super) path: PathBuf,
    /// Set once, by the writer, when a write or fsync failed: the first failure, as text.
    pub(super) stopped: OnceLock<String>,
    /// The commands on their way to the writer.
    pub(super) queue: Queue,
}

impl Shared {
    /// The error for a caller that finds the writer gone.
    pub(super) fn gone(&self) -> JournalError {
        match self.stopped.get() {
            Some(cause) => JournalError::Stopped { path: self.path.clone(), cause: cause.clone() },
            None => JournalError::Closed,
        }
    }
}

/// How the writer starts.
pub(super) struct Setup {
    pub(super) fingerprint: String,
    pub(super) existing: Existing,
    pub(super) options: JournalOptions,
    pub(super) shared: Arc<Shared>,
}

/// The writer thread's body: write the opening snapshot, report readiness, then serve appends until
/// closed or until every handle is gone.
pub(super) fn run<S: Sink>(
    setup: Setup,
    parts: mpsc::Receiver<Part>,
    ready: oneshot::Sender<Result<(), JournalError>>,
    wrap: impl FnOnce(File) -> S,
) {
    let shared = setup.shared.clone();
    let (file, live) = match write_opening(&setup, parts) {
        Ok(opened) => opened,
        Err(e) => {
            shared.queue.shut();
            let _ = ready.send(Err(e));
            return;
        }
    };
    let records_in_file = live.len() as u64;
    let room = if setup.options.blank_room { Room::of(&file) } else { None };
    let sink = wrap(file);
    let mut writer = Writer { sink, room, setup, live, records_in_file, unsynced: false, buf: Vec::new() };
    if ready.send(Ok(())).is_err() {
        shared.queue.shut();
        return; // `open` was cancelled: the snapshot stands, nobody will append.
    }
    let closed = writer.serve();
    // Nothing is accepted from now on; whatever is still queued is answered as refused.
    shared.queue.shut();
    // The file (and its lock) goes before `close` returns: a journal closed can be opened again at once.
    drop(writer);
    if let Some((ack, result)) = closed {
        let _ = ack.send(result);
    }
}

/// Writes header + snapshot to a staging file and makes it the journal.
fn write_opening(
    setup: &Setup,
    mut parts: mpsc::Receiver<Part>,
) -> Result<(File, HashSet<u64>), JournalError> {
    let mut staged = Staged::begin(&setup.shared.path, setup.existing)?;
    let mut header = Vec::new();
    encode_header(&setup.fingerprint, &mut header).map_err(JournalError::Encode)?;
    staged.write(&header)?;
    let mut live = HashSet::new();
    loop {
        match parts.blocking_recv() {
            Some(Part::Chunk(chunk)) => {
                staged.write(&chunk.bytes)?;
                live.extend(chunk.ids);
            }
            Some(Part::End) => break,
            // `open` failed or was cancelled mid-snapshot: dropping `staged` keeps the old journal.
            None => return Err(JournalError::Closed),
        }
    }
    Ok((staged.commit()?, live))
}

struct Writer<S> {
    sink: S,
    /// Blank lines ahead of the records (see [`Room`]); `None` when the file could not be shared.
    room: Option<Room>,
    setup: Setup,
    /// Hashes of the ids in the file, to tell records from live entries.
    live: HashSet<u64>,
    records_in_file: u64,
    /// Bytes written since the last fsync.
    unsynced: bool,
    /// The lines of the group being committed.
    buf: Vec<u8>,
}

enum Flow {
    Continue,
    Stop,
    /// Closed: answer `close` with this once the file is released.
    Closed(Ack, Result<(), JournalError>),
}

impl<S: Sink> Writer<S> {
    /// Serves appends until the journal stops; returns the answer owed to `close`, if it was closed.
    fn serve(&mut self) -> Option<(Ack, Result<(), JournalError>)> {
        let max_batch = self.setup.options.max_batch.max(1);
        let mut group = Vec::with_capacity(max_batch.min(4096));
        let shared = self.setup.shared.clone();
        loop {
            self.buf.clear();
            if !shared.queue.next_group(&mut group, &mut self.buf, max_batch) {
                // Every handle is gone without `close`: make what was written durable.
                if let Err(e) = self.write_group(true, true) {
                    self.stop(&e);
                }
                return None;
            }
            match self.commit(&mut group) {
                Flow::Continue => {}
                Flow::Stop => return None,
                Flow::Closed(ack, result) => return Some((ack, result)),
            }
        }
    }

    /// Writes one group, fsyncs once if anyone waits for durability, acknowledges.
    /// The group's lines are in `self.buf`.
    fn commit(&mut self, group: &mut Vec<Command>) -> Flow {
        let mut acks = Vec::new();
        let mut close: Option<Ack> = None;
        let mut written = 0;
        for command in group.drain(..) {
            match command {
                Command::Append { end, id, ack } if close.is_none() => {
                    written = end;
                    self.live.insert(id);
                    self.records_in_file += 1;
                    acks.extend(ack);
                }
                // Sent by another handle after `close`: refused like any later append.
                Command::Append { ack, .. } => {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(JournalError::Closed));
                    }
                }
                Command::Close { ack } if close.is_none() => close = Some(ack),
                Command::Close { ack } => {
                    let _ = ack.send(Err(JournalError::Closed));
                }
            }
        }
        // Lines queued after a close are not written.
        self.buf.truncate(written);
        let sync = close.is_some() || (self.setup.options.durable && !acks.is_empty());
        if let Err(e) = self.write_group(sync, close.is_some()) {
            self.stop(&e);
            for ack in acks.into_iter().chain(close) {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                let _ = ack.send(Err(JournalError::io(&self.setup.shared.path, copy)));
            }
            return Flow::Stop;
        }
        for ack in acks {
            let _ = ack.send(Ok(()));
        }
        match close {
            Some(ack) => Flow::Closed(ack, self.compact_if_due()),
            None => Flow::Continue,
        }
    }

    /// Writes the group's bytes; fsyncs when `sync`. A `last` group also takes the blank lines ahead
    /// away: the journal it leaves ends with its last record.
    fn write_group(&mut self, sync: bool, last: bool) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            if let Some(room) = &mut self.room
                && room.make(self.buf.len()).is_err()
            {
                // Only an optimisation: without it the file grows with each append, as it would anyway.
                self.room = None;
            }
            self.sink.append(&self.buf)?;
            self.unsynced = true;
        }
        if last && let Some(room) = self.room.take() {
            room.remove()?;
            self.unsynced = true;
        }
        if sync && self.unsynced {
            self.sink.sync()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Refuses everything from now on: after a failed write the file may end in part of a line, and a
    /// record written after it would turn that torn tail into damage in the middle.
    fn stop(&self, cause: &std::io::Error) {
        let _ = self.setup.shared.stopped.set(cause.to_string());
    }

    /// Rewrites the journal as a snapshot when it holds more records than the ratio allows.
    fn compact_if_due(&self) -> Result<(), JournalError> {
        let live = self.live.len().max(1) as f64;
        let due = self.records_in_file as f64 > self.setup.options.compact_when_records_exceed * live;
        if !due {
            return Ok(());
        }
        let path = &self.setup.shared.path;
        let replayed = replay(path)?.unwrap_or_default();
        let mut staged = Staged::begin(path, Existing::HeldByUs)?;
        let mut header = Vec::new();
        encode_header(&self.setup.fingerprint, &mut header).map_err(JournalError::Encode)?;
        staged.write(&header)?;
        for chunk in snapshot_chunks(&replayed) {
            staged.write(&chunk?.bytes)?;
        }
        staged.commit().map(drop)
    }
}

/// Blank lines written ahead of the records, for appends to overwrite.
///
/// An fsync after an append that makes the file longer must also write the file's new size and, when
/// the append took a new block, the metadata of that allocation: more I/Os, waited for in turn, and
/// more CPU (ext4 without a journal, on a virtual disk: about 10 % more files per second on a workload
/// of small files with the room than without). An append that overwrites bytes already in the file
/// needs none of that. So the writer keeps up to [`ROOM`] bytes of `\n` ahead of the journal's end,
/// written (and made durable) a chunk at a time with the next group, and the records overwrite them.
/// Blank lines are no records: [`replay`] skips them, so a journal that was not closed (a crash) reads
/// the same with them. Closing removes them.
struct Room {
    /// The journal file, sharing its offset with the sink's: where the next record goes.
    file: File,
    /// The file's length: the end of the blank lines.
    len: u64,
}

/// How many bytes of blank lines are written ahead at a time.
const ROOM: u64 = 256 * 1024;

/// The size of each write of blank lines: one page.
const BLANK_WRITE: usize = 4096;

impl Room {
    fn of(file: &File) -> Option<Room> {
        let file = file.try_clone().ok()?;
        let len = file.metadata().ok()?.len();
        Some(Room { file, len })
    }

    /// The offset where the next record goes.
    fn end(&self) -> std::io::Result<u64> {
        use std::io::Seek;
        (&self.file).stream_position()
    }

    /// Makes sure the next `bytes` land on blank lines already in the file.
    fn make(&mut self, bytes: usize) -> std::io::Result<()> {
        let needed = self.end()? + bytes as u64;
        if needed <= self.len {
            return Ok(());
        }
        let len = needed.next_multiple_of(ROOM);
        // A page at a time. Written 256 KiB at once, the blank lines made a 10,000-file run write
        // 89.5 MB for its 17 MB journal, a page at a time 33 MB (`/proc/<pid>/io`, Linux 6.18, ext4):
        // as we read it, the page cache keeps them in folios as large as the write that made them,
        // and each group's fsync writes back every folio it touched whole.
        let blank = [b'\n'; BLANK_WRITE];
        while self.len < len {
            let n = usize::try_from(len - self.len).unwrap_or(usize::MAX).min(BLANK_WRITE);
            write_all_at(&self.file, &blank[..n], self.len)?;
            self.len += n as u64;
        }
        Ok(())
    }

    /// Cuts the file where the records end.
    fn remove(self) -> std::io::Result<()> {
        let end = self.end()?;
        self.file.set_len(end)
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_all_at(_file: &File, _bytes: &[u8], _offset: u64) -> std::io::Result<()> {
    // Without positioned writes the blank lines would move the offset the sink writes at.
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

//! The journal's story, told as tests: appending and replaying, many appenders sharing fsyncs, crashes
//! that tear the last line, compaction, and a disk that fills up.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use spinlift_core::{Failure, FailureKind, State, Step, UnixMillis};

use super::*;

mod append;
mod compact;
mod compaction;
mod disk_full;
mod group_commit;
mod prefix;
mod torn;

const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";

/// A fresh directory and a journal path inside it.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("batch.journal");
    (dir, path)
}

fn form(asset_id: &str) -> Form {
    Form::from(
        json!({"url": "https://bucket.example/", "fields": {"key": asset_id, "policy": "cG9saWN5", "x-amz-signature": "c2ln"}}),
    )
}

fn form_issued(asset_id: &str) -> State {
    State::FormIssued { asset_id: asset_id.into(), expires_at: UnixMillis(1_700_086_400_000) }
}

fn uploading(asset_id: &str) -> State {
    State::Uploading { asset_id: asset_id.into(), expires_at: UnixMillis(1_700_086_400_000) }
}

fn uploaded(asset_id: &str) -> State {
    State::Uploaded {
        asset_id: asset_id.into(),
        size: 3,
        md5: "900150983cd24fb0d6963f7d28e17f72".into(),
        started_at: UnixMillis(1_700_000_000_000),
        completed_at: UnixMillis(1_700_000_001_000),
    }
}

fn registered(asset_id: &str) -> State {
    State::Registered { asset_id: asset_id.into(), size: 3, md5: "900150983cd24fb0d6963f7d28e17f72".into() }
}

fn failed(asset_id: Option<&str>) -> State {
    State::Failed {
        asset_id: asset_id.map(str::to_owned),
        failure: Failure::new(Step::Upload, FailureKind::Source, "no such file"),
        uploaded: None,
        data_set: false,
    }
}

fn stamp() -> SourceStamp {
    SourceStamp { size: 3, mtime_ms: 1_699_990_000_000, tag: 0 }
}

/// The life of one entry, one record per step, each carrying the form while it is needed.
fn life_of(id: &str) -> Vec<Record> {
    let asset = format!("asset-{id}");
    vec![
        Record::new(id, State::Pending),
        Record::new(id, form_issued(&asset)).with_form(form(&asset)),
        Record::new(id, uploading(&asset)).with_form(form(&asset)).with_source(stamp()),
        Record::new(id, uploaded(&asset)).with_form(form(&asset)).with_source(stamp()),
        Record::new(id, registered(&asset)).with_form(form(&asset)).with_source(stamp()),
    ]
}

/// Options for tests that need no fsync.
fn quick() -> JournalOptions {
    JournalOptions { durable: false, ..JournalOptions::default() }
}

/// Writes `records` through a new journal and closes it (no compaction).
async fn write_journal(path: &Path, records: &[Record]) {
    let options = JournalOptions { compact_when_records_exceed: f64::INFINITY, ..quick() };
    let journal = Journal::open(path, FINGERPRINT, None, options).await.expect("open");
    for record in records {
        journal.append_nowait(record.line()).expect("append");
    }
    journal.close().await.expect("close");
}

fn replay_ok(path: &Path) -> Replayed {
    replay(path).expect("replay").expect("the journal exists")
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
}

/// The last record of each id, as replay should give it (forms of final states dropped).
fn last_per_id(records: &[Record]) -> std::collections::HashMap<String, Record> {
    let mut last = std::collections::HashMap::new();
    for record in records {
        let mut record = record.clone();
        record.drop_final_form();
        last.insert(record.id.clone(), record);
    }
    last
}

/// The entries of `replayed` by id, to compare with [`last_per_id`].
fn entries_of(replayed: &Replayed) -> std::collections::HashMap<String, Record> {
    replayed.records().map(|record| (record.id.clone(), record)).collect()
}

/// The real journal file, counting its writes and fsyncs.
/// A journal at `path` whose file counts its fsyncs and appends: `(journal, syncs, appends)`.
async fn counting(path: &Path, options: JournalOptions) -> (Journal, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (syncs, appends) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, a) = (syncs.clone(), appends.clone());
    let journal = Journal::open_with_sink(path, FINGERPRINT, None, options, move |file| Counting {
        file,
        syncs: s,
        appends: a,
    })
    .await
    .unwrap();
    (journal, syncs, appends)
}

struct Counting {
    file: File,
    syncs: Arc<AtomicU64>,
    appends: Arc<AtomicU64>,
}

impl Sink for Counting {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.file.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync()
    }
}

/// The real journal file on a disk with `room` bytes left: the write that does not fit writes what
/// fits, then fails like a full disk.
struct DiskFull {
    file: File,
    room: usize,
}

impl Sink for DiskFull {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() <= self.room {
            self.room -= bytes.len();
            return self.file.append(bytes);
        }
        let fits = std::mem::take(&mut self.room);
        self.file.append(&bytes[..fits])?;
        Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device"))
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync()
    }
}

//! The checkpoint journal: what happened to each manifest entry, kept on disk so that an interrupted run
//! (kill -9, power cut, Ctrl-C) carries on where it stopped and leaves exactly one FileSpin asset per
//! entry.
//!
//! The engine appends a [`Record`] — an entry id and its new [`spinlift_core::State`] — before each step
//! that must survive a crash; a re-run [`replay`]s the journal and feeds each entry's last state back into
//! core. The journal knows core's states, nothing of HTTP.
//!
//! # File format
//!
//! JSON Lines, UTF-8, one compact JSON object per `\n`-terminated line, private to its owner (mode 0600:
//! pre-signed forms are credentials). The first line is the header:
//!
//! ```text
//! {"type":"header","version":1,"fingerprint":"<32 hex digits>","created_at_ms":1700000000000}
//! ```
//!
//! `fingerprint` is [`fingerprint_ids`] of the manifest's entry ids, so a re-run can tell whether the
//! journal belongs to its manifest. Every other line is one state change of one entry:
//!
//! ```text
//! {"id":"photos/a.jpg","state":{"state":"form_issued","asset_id":"ec27","expires_at":1700086400000},"form":{…},"source":{"size":3,"mtime_ms":1699990000000}}
//! {"id":"photos/a.jpg","state":{"state":"registered","asset_id":"ec27","size":3,"md5":"9001…"}}
//! ```
//!
//! `state` is core's `State` as serde writes it; `form` (the opaque pre-signed form) is present only while
//! it is needed (`form_issued`, `uploading`, `uploaded`), `source` only when known. The last line of an
//! id wins, but an `uploaded` line without a form keeps the form of the line before it when that is of
//! the same asset id (the engine writes the form once, with `form_issued`). A crash can leave the last line torn; [`replay`] drops it with a warning. Damage before the
//! last line is an error, never silently skipped.
//!
//! While a journal is open its file ends in blank lines that the next records overwrite (unless
//! [`JournalOptions::blank_room`] is off): an fsync of bytes overwritten in place need not also write
//! the file's new size and block map. [`replay`] skips
//! blank lines, so a journal left open by a crash reads the same; [`Journal::close`] removes them.
//!
//! [`Journal::open`] always writes the file anew (header plus one line per entry of the replayed journal,
//! staged and renamed over), and [`Journal::close`] does so again when the journal holds more than
//! [`JournalOptions::compact_when_records_exceed`] records per entry: a journal stays proportional to
//! the manifest, not to its history.
//!
//! # Example
//!
//! ```
//! use spinlift_core::State;
//! use spinlift_manifest::journal::{Journal, JournalOptions, Record, fingerprint_ids, replay};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("batch.journal");
//! let fingerprint = fingerprint_ids(["photo-1"].into_iter());
//!
//! let journal = Journal::open(&path, &fingerprint, None, JournalOptions::default()).await.unwrap();
//! journal.append(Record::new("photo-1", State::Pending)).await.unwrap();
//! journal.close().await.unwrap();
//!
//! let replayed = replay(&path).unwrap().expect("the journal exists");
//! assert!(replayed.belongs_to(&fingerprint));
//! assert_eq!(replayed.get("photo-1").map(|record| record.state), Some(State::Pending));
//! # });
//! ```

mod compact;
mod entries;
mod error;
mod fast;
mod fingerprint;
mod handle;
mod queue;
mod record;
mod replay;
mod sink;
mod writer;

pub use error::JournalError;
pub use fingerprint::fingerprint_ids;
pub use handle::{Journal, JournalOptions};
pub use queue::WHENEVER;
pub use record::{Form, FormJson, Line, Record, SourceStamp, VERSION};
pub use replay::{Replayed, replay};
pub use sink::Sink;

#[cfg(test)]
mod tests;

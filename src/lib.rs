//! spinlift moves thousands to millions of files into the FileSpin asset platform, and survives
//! crashes and network faults on the way.
//!
//! Each manifest entry goes through FileSpin's three-step upload (developers.filespin.io, "Get Storage
//! Upload URL"): ask for a pre-signed S3 POST form, stream the file to S3 with its MD5 computed on the
//! way, register the asset. The [`Engine`] drives every entry's state machine (`spinlift-core`)
//! through the wire layer (`spinlift-transport`), a bounded number at a time.
//!
//! A migration from your own program: build the manifest (or [`Manifest::load`] a file), build the
//! engine, start the run, watch its events, take the report. The checkpoint makes the same program,
//! run again after a crash, carry on where it stopped. (Here against the embedded emulator; point
//! `api_url` and the key at `https://app.filespin.io` for the real thing.)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures::StreamExt;
//! use spinlift::{Engine, Manifest, Progress, Secret};
//!
//! # let filespin = spinlift_emulator::Emulator::start(Default::default()).await?;
//! # let (api_url, api_key) = (filespin.api_url(), filespin.api_key().to_owned());
//! # let library = tempfile::tempdir()?;
//! # std::fs::create_dir(library.path().join("photos"))?;
//! # std::fs::write(library.path().join("photos/a.jpg"), b"first photo")?;
//! # std::fs::write(library.path().join("photos/b.jpg"), b"second photo")?;
//! # let checkpoint = library.path().join("photos.checkpoint");
//! let manifest = Manifest::builder(library.path())
//!     .entry_with("legacy-1", "photos/a.jpg", None)?
//!     .entry_with("legacy-2", "photos/b.jpg", None)?
//!     .build()?;
//! let engine = Engine::builder(api_url, Secret::new(api_key))
//!     .concurrency(32)
//!     .checkpoint(checkpoint)
//!     .build()?;
//!
//! let mut run = engine.spawn(manifest);
//! while let Some(event) = run.next().await {
//!     if let Progress::Finished(entry) = event {
//!         println!("{} -> {:?} ({})", entry.id, entry.asset_id, entry.status);
//!     }
//! }
//! let report = run.report().await?;
//! assert_eq!(report.registered(), 2);
//! report.write_jsonl(&library.path().join("report.jsonl"))?;
//! # Ok(()) }
//! ```
//!
//! [`Engine::run`] is the same run awaited in place, with an [`Observer`] for progress and a
//! [`CancellationToken`] to stop it. The command-line tool `spinlift` is built on this API.
#![warn(missing_docs)]

mod ahead;
mod backoff;
mod checkpoint;
mod clock;
mod data;
mod drive;
mod engine;
mod error;
mod events;
mod observer;
mod report;
pub mod sample;
mod source;
mod throttle;

pub use backoff::BackoffConfig;
#[doc(hidden)] // for `spinlift bench entries`, which writes a finished checkpoint without uploading
pub use checkpoint::fingerprint as checkpoint_fingerprint;
pub use checkpoint::{Checkpoint, shard_conflict, shard_path};
pub use engine::{Engine, EngineBuilder, EngineConfig, JournalSinkFn, MAX_POST_OBJECT_SIZE, RunOptions};
pub use error::EngineError;
pub use events::{Progress, ProgressSender, RunHandle};
pub use observer::{Observer, Silent};
pub use report::{EntryReport, RunReport, StopReason};
pub use source::Plan;
pub use spinlift_core::{Failure, Limits};
pub use spinlift_manifest::journal::Sink;
pub use spinlift_manifest::{Manifest, ManifestBuilder, Shard};
pub use spinlift_source::{SourceUrl, Sources, SourcesConfig};
pub use spinlift_transport::Secret;
pub use tokio_util::sync::CancellationToken;

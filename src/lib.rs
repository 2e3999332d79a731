//! spinlift moves thousands to millions of files into the FileSpin asset platform, and survives
//! crashes and network faults on the way.
//!
//! Each manifest entry goes through FileSpin's three-step upload (developers.filespin.io, "Get Storage
//! Upload URL"): ask for a pre-signed S3 POST form, stream the file to S3 with its MD5 computed on the
//! way, register the asset. The [`Engine`] drives every entry's state machine (`spinlift-core`)
//! through the wire layer (`spinlift-transport`), a bounded number at a time.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use spinlift::{Engine, EngineConfig, Manifest, Secret, Silent};
//!
//! let manifest = Manifest::load("batch.json".as_ref())?;
//! let mut config = EngineConfig::new("https://app.filespin.io", Secret::new("my-api-key"));
//! config.concurrency = 32;
//! let report = Engine::new(config)?.run(&manifest, &Default::default(), &Silent, Default::default()).await?;
//! report.write_jsonl("report.jsonl".as_ref())?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod backoff;
mod checkpoint;
mod clock;
mod drive;
mod engine;
mod error;
mod observer;
mod report;
pub mod sample;
mod source;
mod throttle;

pub use backoff::BackoffConfig;
pub use checkpoint::Checkpoint;
pub use engine::{Engine, EngineConfig, MAX_POST_OBJECT_SIZE, RunOptions};
pub use error::EngineError;
pub use observer::{Observer, Silent};
pub use report::{EntryReport, RunReport, StopReason};
pub use source::Plan;
pub use spinlift_core::{Failure, Limits};
pub use spinlift_manifest::Manifest;
pub use spinlift_transport::Secret;
pub use tokio_util::sync::CancellationToken;

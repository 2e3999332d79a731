//! spinlift's batch files: reading manifests (JSON or JSON Lines), validating them with errors that say
//! where the problem is, and resolving each entry's path safely inside the manifest's `root`.
//!
//! A manifest lists the files of one batch:
//!
//! ```json
//! {"version": 1,
//!  "root": "optional: directory the paths are relative to; default: the manifest's own directory",
//!  "service_data": {"app": "...", "build": "...", "deployment_data": {"client": "...", "location": "..."}},
//!  "assets": [{"path": "photos/a.jpg", "id": "optional unique id, default: path",
//!              "filename": "optional, default: the path's file name"}]}
//! ```
//!
//! A `.jsonl` manifest has one asset object per line; an optional first line without `path` and with
//! `version` carries `root` and `service_data`.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("a.jpg"), b"abc").unwrap();
//! let text = r#"{"version": 1, "assets": [{"path": "a.jpg", "id": "photo-1"}]}"#;
//! let manifest = spinlift_manifest::Manifest::parse(text, spinlift_manifest::Format::Json, dir.path()).unwrap();
//! let entry = manifest.entries.at(0);
//! assert_eq!(entry.id(), "photo-1");
//! assert_eq!(entry.filename(), "a.jpg");
//! assert!(manifest.resolve(&entry).unwrap().ends_with("a.jpg"));
//! ```
#![warn(missing_docs)]

mod entries;
mod error;
mod manifest;
mod paths;
mod remote;
mod shard;

pub use entries::{Entries, Entry};
pub use error::{ManifestError, Position};
pub use manifest::{Format, MAX_DATA_CHARS, Manifest, ManifestBuilder, VERSION, validate_data};
pub use paths::{escapes_root, resolve_within};
pub use remote::{SOURCE_SCHEMES, redact as redact_source};
pub use shard::Shard;

pub mod journal;

//! The life of one FileSpin asset as a pure state machine: no I/O, no clock, no network.
//!
//! An upload into FileSpin takes three steps (developers.filespin.io, "Get Storage Upload URL"):
//! ask for a pre-signed S3 POST form, POST the file to S3, register the asset. [`Asset`] holds where one
//! manifest entry is in that path. The engine asks it for the next [`Action`], performs the action with
//! real I/O, and tells it what happened as an [`Event`]. Failures are events too: [`classify`] sorts each
//! [`Failure`] into a [`Disposition`] (retry the same request, fetch a fresh form, fail the asset, stop
//! the batch), and the machine turns that into its next action. Time comes in as a value
//! ([`UnixMillis`]), so every rule is testable without waiting.
//!
//! This is the sans-IO pattern of quinn-proto and rustls: the protocol is a value that is told what
//! happened and answers what to do next.
//!
//! ```
//! use spinlift_core::{Action, Asset, Event, Limits, UnixMillis};
//!
//! let now = UnixMillis(1_700_000_000_000);
//! let mut asset = Asset::new(Limits::default());
//! assert_eq!(asset.next_action(now), Action::RequestForm);
//!
//! asset.apply(Event::FormIssued { asset_id: "ec27".into(), expires_at: now.plus_secs(86_400) }, now).unwrap();
//! assert_eq!(asset.next_action(now), Action::Upload { asset_id: "ec27".into() });
//!
//! asset.apply(Event::UploadStarted, now).unwrap();
//! asset.apply(Event::Uploaded { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72".into(),
//!     started_at: now, completed_at: now }, now).unwrap();
//! assert!(matches!(asset.next_action(now), Action::Register { .. }));
//!
//! asset.apply(Event::Registered { already_existed: false }, now).unwrap();
//! assert_eq!(asset.next_action(now), Action::Done);
//! ```
#![warn(missing_docs)]

mod aimd;
mod asset;
mod budget;
mod failure;
pub mod json;
mod time;

pub use aimd::Aimd;
pub use asset::{
    Action, Asset, Event, Goal, Limits, LookedUp, ResumeFacts, State, TransitionError, Uploaded,
};
pub use budget::RetryBudget;
pub use failure::is_throttle;
pub use failure::{Disposition, Failure, FailureKind, Step, classify};
pub use time::UnixMillis;

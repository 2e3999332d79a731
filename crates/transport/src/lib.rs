//! The wire of spinlift: FileSpin's two upload calls and the S3 POST between them, and the asset's data
//! calls after them.
//!
//! An upload into FileSpin takes three steps (developers.filespin.io, "Get Storage Upload URL"):
//!
//! 1. [`FileSpinClient::request_form`] — `GET /api/v1/assets/new/content_storage_url?filename=…` —
//!    returns an [`UploadForm`]: a new asset id and a pre-signed S3 POST form.
//! 2. [`FileSpinClient::upload_file`] (or [`upload_reader`](FileSpinClient::upload_reader)) POSTs the
//!    file to storage as `multipart/form-data`: the form's fields first, the file last, streamed in
//!    chunks with its MD5 computed in the same pass and its length announced up front. It returns an
//!    [`UploadReceipt`] (size, MD5, times). Its two halves are there too:
//!    [`prepare_file`](FileSpinClient::prepare_file) opens the file and reads its first chunk (all of a
//!    small file) in one hand-off to a blocking thread, while the caller waits for something else;
//!    [`upload_prepared`](FileSpinClient::upload_prepared) sends it.
//! 3. [`FileSpinClient::register`] — `POST /api/v1/assets/new/register_asset` — registers the asset
//!    with a [`RegisterRequest`] built from the receipt.
//!
//! After the upload ("Assets - Data", developers.filespin.io):
//!
//! - [`FileSpinClient::update_asset_data`] — `POST /api/v1/assets/{id}/data/update[?async=1]` — sets the
//!   asset's custom metadata with a [`DataUpdate`] (`APPEND` or `REPLACE`; at most [`MAX_DATA_CHARS`]);
//!   FileSpin answers 400 `NOT_READY` while the file is still being saved, and the engine retries.
//! - [`FileSpinClient::asset_data`] — `GET /api/v1/assets/{id}/data` — reads the asset back as
//!   [`AssetData`]: its [`AssetStatus`] (`NOT_READY`, `OK`, `ERROR`, `ARCHIVED`), size, MD5 and data.
//!
//! One shared `reqwest` client (rustls, pooled connections) serves every call, with a connect timeout,
//! a whole-request timeout on the API calls, a stall watchdog on uploads and the limits below
//! ([`ClientConfig`]). Each call is one attempt: a failure comes back as a [`TransportError`]
//! that names its step and what the server said, and never a credential. Its
//! [`to_failure`](TransportError::to_failure) is what `spinlift_core::classify` sorts into retry,
//! fresh form, fail or stop; the engine drives the retries. This crate knows nothing of manifests or
//! journals.
//!
//! # Limits
//!
//! Every limit belongs to the client and is shared by its clones, so one limit holds across all the
//! engine's assets in flight. Each is a wrapper around the request it governs, taken in this order:
//!
//! | call | limits, in order |
//! |---|---|
//! | [`request_form`](FileSpinClient::request_form), [`register`](FileSpinClient::register), [`update_asset_data`](FileSpinClient::update_asset_data), [`asset_data`](FileSpinClient::asset_data) | API requests per second ([`api_rps`](ClientConfig::api_rps), default 30, the four calls together) |
//! | [`upload_file`](FileSpinClient::upload_file), [`upload_prepared`](FileSpinClient::upload_prepared), [`upload_reader`](FileSpinClient::upload_reader) | 1. an upload slot ([`max_concurrent_uploads`](ClientConfig::max_concurrent_uploads), default 16), held to the answer; 2. S3 POSTs per second ([`s3_rps`](ClientConfig::s3_rps), default off); 3. bytes per second ([`bandwidth`](ClientConfig::bandwidth), default off), before each chunk of the body is handed to the connection |
//!
//! A limit is taken when a call is made, inside the call: a retry is the engine calling again, so it
//! takes every permit again and no retry can skip a limit. The form's expiry is checked after the
//! slot and the S3 rate have been waited for. Waiting for bandwidth does not count as a stall.
//!
//! - **Requests per second** are `governor` GCRA quotas with a burst of two: requests are spaced
//!   `1/rps` apart on average. FileSpin documents 30 requests/s for most APIs, answered with 429 beyond
//!   (developers.filespin.io, "Rate limits"), and does not say whether it counts in a sliding or a
//!   fixed 1-second window. A burst of `rps` would be allowed by a sliding window but could put up to
//!   `2 × rps` requests into one fixed window (a burst at its end after a quiet second, the refill in
//!   the next instants); a burst of two holds any 1-second window to `rps + 1`, and the one request of
//!   slack lets a caller that woke late (tokio's timer ticks in milliseconds; a loaded machine wakes
//!   later) catch up: with a burst of one, 30/s ran at 28.9/s under load. A 429 is retried (core's
//!   `classify`), through this limit again. Invalid requests have a stricter limit that FileSpin does
//!   not reset automatically; core fails an asset on an invalid request (a 4xx) instead of retrying
//!   it, so retries do not run into that one.
//! - **Bandwidth** is a quota sized in bytes over every upload body together, the multipart framing
//!   included. Before a chunk (at most 256 KiB) goes, the body stream waits until the quota has room
//!   for all of its bytes. The burst — what may go at line speed after a pause — is the larger of one
//!   chunk and 100 ms' worth of bytes, so over any `t` seconds the bodies carry at most
//!   `bandwidth × t + burst` bytes. Waiters are served first come, first served, so concurrent uploads
//!   take turns chunk by chunk.
//!
//! The limiters read tokio's clock and sleep on tokio's timer (not `governor`'s `until_ready`, which
//! uses a timer thread of its own), so tests drive them exactly with paused time.
//! [`FileSpinClient::stats`] counts what was sent: API requests, S3 POSTs and body bytes, retries
//! included.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use spinlift_transport::{ClientConfig, FileSpinClient, RegisterOutcome, RegisterRequest, Secret};
//!
//! # async fn run() -> Result<(), spinlift_transport::TransportError> {
//! let config = ClientConfig::new("https://app.filespin.io", Secret::new("YOUR_API_KEY"));
//! let client = FileSpinClient::new(config)?;
//!
//! let form = client.request_form("photo.jpg").await?;
//! let receipt = client.upload_file(&form, Path::new("photo.jpg"), &|bytes| eprint!("+{bytes}")).await?;
//! let request = RegisterRequest::new(&form.asset_id, &receipt, serde_json::json!({"app": "spinlift"}));
//! match client.register(&request).await {
//!     Ok(RegisterOutcome::Registered | RegisterOutcome::AlreadyExists) => println!("{} registered", form.asset_id),
//!     Err(error) => {
//!         let failure = error.to_failure(); // what core's classify decides on
//!         eprintln!("{failure} (retryable: {})", error.is_retryable());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod api_error;
mod client;
mod clock;
mod config;
mod data;
mod error;
mod form;
mod limit;
mod multipart;
mod redact;
mod register;
mod retry_after;
mod s3_error;
mod secret;
mod stats;

pub use client::{FileSpinClient, PreparedFile, SourceBody};
pub use config::{ClientConfig, parse_bandwidth};
pub use data::{AssetData, AssetStatus, DataUpdate, MAX_DATA_CHARS, UpdateMode, UpdateOutcome};
pub use error::TransportError;
pub use form::{Policy, UploadForm};
pub use register::{RegisterOutcome, RegisterRequest, UploadReceipt};
pub use secret::Secret;
pub use stats::TransportStats;

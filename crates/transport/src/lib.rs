//! The wire of spinlift: FileSpin's two API calls and the S3 POST between them.
//!
//! An upload into FileSpin takes three steps (developers.filespin.io, "Get Storage Upload URL"):
//!
//! 1. [`FileSpinClient::request_form`] — `GET /api/v1/assets/new/content_storage_url?filename=…` —
//!    returns an [`UploadForm`]: a new asset id and a pre-signed S3 POST form.
//! 2. [`FileSpinClient::upload_file`] (or [`upload_reader`](FileSpinClient::upload_reader)) POSTs the
//!    file to storage as `multipart/form-data`: the form's fields first, the file last, streamed in
//!    chunks with its MD5 computed in the same pass and its length announced up front. It returns an
//!    [`UploadReceipt`] (size, MD5, times).
//! 3. [`FileSpinClient::register`] — `POST /api/v1/assets/new/register_asset` — registers the asset
//!    with a [`RegisterRequest`] built from the receipt.
//!
//! One shared `reqwest` client (rustls, pooled connections) serves all three, with a connect timeout,
//! a whole-request timeout on the API calls, a stall watchdog on uploads and a limit on concurrent
//! uploads ([`ClientConfig`]). Each call is one attempt: a failure comes back as a [`TransportError`]
//! that names its step and what the server said, and never a credential. Its
//! [`to_failure`](TransportError::to_failure) is what `spinlift_core::classify` sorts into retry,
//! fresh form, fail or stop; the engine drives the retries. This crate knows nothing of manifests or
//! journals.
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
mod error;
mod form;
mod multipart;
mod redact;
mod register;
mod retry_after;
mod s3_error;
mod secret;

pub use client::FileSpinClient;
pub use config::ClientConfig;
pub use error::TransportError;
pub use form::UploadForm;
pub use register::{RegisterOutcome, RegisterRequest, UploadReceipt};
pub use secret::Secret;

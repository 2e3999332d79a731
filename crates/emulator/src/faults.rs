//! Fault injection — the seam only.
//!
//! Every request on both ports asks [`Faults::pick`] first whether to misbehave; today the answer is always
//! "no". A later change fills in [`FaultConfig`] (seeded error rates, `429` with `Retry-After`, dropped
//! connections, an API key that goes invalid after N requests) and [`Fault`] (what to do to one request),
//! and answers them at the existing call sites in `api.rs` and `s3.rs`.
//!
//! The two simple account switches tests need now (`upload_limit_exceeded`, `account_disabled`) are not
//! faults but states of the account, and live in [`EmulatorConfig`](crate::EmulatorConfig).

/// Which faults to inject. Today there are none to choose from; `Default` is "no faults".
///
/// This is the seam for fault injection: every request on both ports already asks whether to misbehave.
/// Seeded error rates, `429` with `Retry-After`, dropped connections and an API key that goes invalid
/// after N requests will be settings here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultConfig {}

/// The endpoint a request is for, so faults can target one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /api/v1/assets/new/content_storage_url`
    ContentStorageUrl,
    /// `POST /api/v1/assets/new/register_asset`
    RegisterAsset,
    /// The S3 POST endpoint.
    S3Post,
}

/// What to do to one request instead of answering it normally. No variant yet.
#[derive(Debug)]
pub(crate) enum Fault {}

/// Decides, request by request, whether to inject a fault.
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
}

impl Faults {
    pub(crate) fn new(config: FaultConfig) -> Self {
        Self { config }
    }

    /// The fault to inject into this request, if any.
    pub(crate) fn pick(&self, endpoint: Endpoint) -> Option<Fault> {
        let FaultConfig {} = self.config;
        let _ = endpoint;
        None
    }
}

//! Fault injection: the ways real networks and APIs fail, on demand and seeded so that a failure replays.
//!
//! [`FaultConfig`] says which faults to inject and how often; [`Faults`] decides, request by request, what
//! happens to each one; `api.rs` and `s3.rs` carry the decision out. The two simple account switches
//! (`upload_limit_exceeded`, `account_disabled`) are not faults but states of the account, and live in
//! [`EmulatorConfig`](crate::EmulatorConfig).
//!
//! The source servers' faults ([`SourceFaults`], scopes `source.` and `web.`) live in `faults/source.rs`:
//! the same grammar, seeding and draw, with the faults of a read (a brief `404`, a body cut off or
//! stalled) instead of those of an upload. Everything below is about the FileSpin endpoints.
//!
//! # The order of the checks
//!
//! Every request to one of the four API endpoints (`content_storage_url`, `register_asset`, Get Data,
//! Update Data) or to the S3 POST endpoint is first recorded
//! ([`Stats::api_requests`](crate::Stats::api_requests) / [`Stats::s3_requests`](crate::Stats::s3_requests)
//! and the request log), then asked, in this order:
//!
//! 1. API: has the key been revoked ([`FaultConfig::key_invalid_after`])? → `401 UNAUTHORIZED`.
//!    S3: is an outage on ([`FaultConfig::s3_outage`], [`Emulator::set_s3_outage`])? → `503 SlowDown`.
//! 2. API: is the request over the rate limit ([`FaultConfig::api_rps`])? → `429` with `Retry-After: 1`.
//! 3. One random draw against the endpoint's probabilities ([`ApiFaults`], [`S3Faults`]), which are
//!    mutually exclusive: at most one of them happens to a request.
//!
//! The added latency is waited out after the decision, before the answer (or the drop).
//!
//! # Faults never change what landed
//!
//! Error answers, `429`s and drops are decided and carried out *before* the real handler runs: a
//! `register_asset` answered `503` registers nothing, an Update Data answered `503` changes no data, an S3
//! upload dropped in the middle of its body stores nothing. The one exception is on purpose: a *lost
//! reply* runs the real handler and then closes the connection instead of answering, so the work is done
//! (a form issued, an asset registered, its data updated, an object stored) but the client never hears
//! of it — and its retry meets `ASSET_ID_EXISTS`, a second asset id, or
//! an overwritten object.
//!
//! Injected answers are counted in [`Stats::faults_injected`](crate::Stats::faults_injected) (rate-limit
//! answers in [`Stats::rate_limited`](crate::Stats::rate_limited)), never in
//! [`Stats::rejected`](crate::Stats::rejected), which keeps counting only what the emulator refused for
//! real: a run under faults can still assert that the client never sent a request FileSpin would refuse.
//!
//! [`Emulator::set_s3_outage`]: crate::Emulator::set_s3_outage

mod source;
mod spec;

pub use source::SourceFaults;
pub(crate) use source::{SourceDecision, SourceFault, SourceFaultPicker, SourceRefusal, SourceServer};
pub(crate) use spec::duration as parse_duration;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which faults to inject, and how often. `Default` is "no faults".
///
/// Build one from a spec string with [`FaultConfig::parse`] (the syntax is documented there; `Display`
/// writes it back), or start from `FaultConfig::default()` and set the fields:
///
/// ```
/// use std::time::Duration;
/// use spinlift_emulator::FaultConfig;
///
/// let mut faults = FaultConfig::default();
/// faults.seed = 7;
/// faults.register_asset.lost_reply = 0.1;
/// faults.s3.slow_down = 0.05;
/// faults.api_rps = Some(30);
/// assert_eq!(faults, FaultConfig::parse("seed=7,register_asset.lost_reply=0.1,s3.503=0.05,api.rps=30")?);
/// assert_eq!(faults.to_string(), "seed=7,register_asset.lost_reply=0.1,s3.503=0.05,api.rps=30");
/// # Ok::<(), String>(())
/// ```
///
/// # Seeding
///
/// Every random choice (which fault, which `5xx`, how much latency) comes from [`seed`](Self::seed): each
/// endpoint draws from its own seeded stream, a fixed number of draws per request, so the *n*-th request
/// to an endpoint meets the same fate in every run with the same seed, whatever happened to the requests
/// before it. With concurrent requests the order in which they arrive — which request is the *n*-th — is
/// not deterministic, so neither is which request fails; the rates are.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FaultConfig {
    /// Seeds every random choice. Log it: with the same seed, a failure replays.
    pub seed: u64,
    /// Faults of `GET /api/v1/assets/new/content_storage_url`.
    pub content_storage_url: ApiFaults,
    /// Faults of `POST /api/v1/assets/new/register_asset`.
    pub register_asset: ApiFaults,
    /// Faults of Get Data, `GET /api/v1/assets/{id}/data`.
    pub asset_data: ApiFaults,
    /// Faults of Update Data, `POST /api/v1/assets/{id}/data/update`.
    pub update_data: ApiFaults,
    /// Faults of the S3 POST endpoint.
    pub s3: S3Faults,
    /// After this many API requests (all four endpoints, counted in arrival order, whatever their answer),
    /// the API key is refused: request N+1 and every later one is answered `401 UNAUTHORIZED`, as if the
    /// key had been revoked mid-run.
    pub key_invalid_after: Option<u64>,
    /// The API's rate limit in requests per second, over the four API endpoints together; a request over it is
    /// answered `429 RATE_LIMIT_EXCEEDED` with `Retry-After: 1`.
    ///
    /// FileSpin documents such a limit ("Rate limits", developers.filespin.io: 30 requests per second for
    /// most APIs, `429` when exceeded); it is off by default so that benchmarks measure the client. It is a
    /// token bucket (governor's GCRA): a burst of up to `api_rps` requests passes at once, then one more
    /// every `1/api_rps` seconds — so a burst of 100 requests at `api_rps = 30` gets 30 answers and 70
    /// `429`s, plus one answer per 33 ms the burst takes. A request refused by the limit does not use up a
    /// token. Must be at least 1.
    pub api_rps: Option<u32>,
    /// An S3 outage as `(start, length)`, measured from the emulator's start: during it, every S3 request
    /// is answered `503 SlowDown`. [`Emulator::set_s3_outage`](crate::Emulator::set_s3_outage) starts one
    /// at any moment.
    pub s3_outage: Option<(Duration, Duration)>,
    /// Faults of the S3-compatible source, [`SourceBucket`](crate::SourceBucket) (spec scope `source`).
    /// The [`Emulator`](crate::Emulator) ignores them.
    pub source: SourceFaults,
    /// Faults of the plain HTTP source, [`SourceWeb`](crate::SourceWeb) (spec scope `web`). The
    /// [`Emulator`](crate::Emulator) ignores them.
    pub web: SourceFaults,
}

/// The faults of one API endpoint: probabilities per request (each between 0 and 1, together at most 1,
/// since one draw picks at most one of them), latency and `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ApiFaults {
    /// Answer `500 INTERNAL_ERROR` (JSON), `502 Bad Gateway` or `503 Service Unavailable` (HTML, as a load
    /// balancer would), one of the three at random.
    pub server_error: f64,
    /// Answer `429 RATE_LIMIT_EXCEEDED` with `Retry-After: <retry_after_secs>`.
    pub too_many_requests: f64,
    /// Close the connection without answering (the handler does not run).
    pub drop_connection: f64,
    /// Run the handler — the form is issued, the asset registered, its data updated — then close the
    /// connection instead of answering.
    pub lost_reply: f64,
    /// Wait this long before every answer (or drop).
    pub latency: Latency,
    /// The `Retry-After` of an injected `429`, in seconds. Default 1.
    pub retry_after_secs: u64,
}

/// The faults of the S3 POST endpoint: probabilities per request (each between 0 and 1, together at most
/// 1, since one draw picks at most one of them), latency and `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct S3Faults {
    /// Answer `500 InternalError` ("We encountered an internal error. Please try again.").
    pub server_error: f64,
    /// Answer `503 SlowDown` ("Reduce your request rate."), the way S3 throttles.
    pub slow_down: f64,
    /// Answer `429 TooManyRequests` with `Retry-After: <retry_after_secs>`. AWS S3 throttles with
    /// `503 SlowDown` instead; S3-compatible stores (GCS's XML API among them) answer `429`.
    pub too_many_requests: f64,
    /// Read part of the body (half of its `Content-Length`), then close the connection: nothing is stored.
    pub drop_connection: f64,
    /// Store the upload, then close the connection instead of answering.
    pub lost_reply: f64,
    /// Read the body slowly — a pause of [`slow_body_pause`](Self::slow_body_pause) before each 16 KiB
    /// piece after the first — then answer normally. Exercises a client's stall detection; note that the
    /// kernel's socket buffers (on loopback up to a few MiB) take the first bytes at full speed.
    pub slow_body: f64,
    /// The pause between pieces of a slow body. Default 1 s.
    pub slow_body_pause: Duration,
    /// Wait this long before every answer (or drop).
    pub latency: Latency,
    /// The `Retry-After` of an injected `429`, in seconds. Default 1.
    pub retry_after_secs: u64,
}

/// Added latency: uniformly random between `min` and `max` (equal for a fixed latency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// The least latency added.
    pub min: Duration,
    /// The most latency added; at least `min`.
    pub max: Duration,
}

impl Latency {
    /// No added latency.
    pub const NONE: Latency = Latency { min: Duration::ZERO, max: Duration::ZERO };

    /// Always `latency`.
    pub const fn fixed(latency: Duration) -> Self {
        Self { min: latency, max: latency }
    }

    /// Uniformly random between `min` and `max`.
    pub const fn between(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    fn is_none(&self) -> bool {
        self.max.is_zero()
    }

    /// The latency for one request, given a uniform draw in `[0, 1)`.
    fn pick(&self, draw: f64) -> Duration {
        self.min + (self.max.saturating_sub(self.min)).mul_f64(draw)
    }
}

impl Default for ApiFaults {
    fn default() -> Self {
        Self {
            server_error: 0.0,
            too_many_requests: 0.0,
            drop_connection: 0.0,
            lost_reply: 0.0,
            latency: Latency::NONE,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }
    }
}

impl Default for S3Faults {
    fn default() -> Self {
        Self {
            server_error: 0.0,
            slow_down: 0.0,
            too_many_requests: 0.0,
            drop_connection: 0.0,
            lost_reply: 0.0,
            slow_body: 0.0,
            slow_body_pause: DEFAULT_SLOW_BODY_PAUSE,
            latency: Latency::NONE,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }
    }
}

const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
const DEFAULT_SLOW_BODY_PAUSE: Duration = Duration::from_secs(1);

impl ApiFaults {
    /// The probabilities, in the order one draw walks them.
    fn outcomes(&self) -> [(f64, Outcome); 4] {
        [
            (self.server_error, Outcome::ServerError),
            (self.too_many_requests, Outcome::TooManyRequests),
            (self.drop_connection, Outcome::Drop),
            (self.lost_reply, Outcome::LostReply),
        ]
    }
}

impl S3Faults {
    /// The probabilities, in the order one draw walks them.
    fn outcomes(&self) -> [(f64, Outcome); 6] {
        [
            (self.server_error, Outcome::ServerError),
            (self.slow_down, Outcome::SlowDown),
            (self.too_many_requests, Outcome::TooManyRequests),
            (self.drop_connection, Outcome::Drop),
            (self.lost_reply, Outcome::LostReply),
            (self.slow_body, Outcome::SlowBody),
        ]
    }
}

impl FaultConfig {
    /// Whether any fault is configured.
    pub fn is_none(&self) -> bool {
        let FaultConfig {
            seed: _,
            content_storage_url,
            register_asset,
            asset_data,
            update_data,
            s3,
            key_invalid_after,
            api_rps,
            s3_outage,
            source,
            web,
        } = self;
        [content_storage_url, register_asset, asset_data, update_data]
            .iter()
            .all(|api| api.outcomes().iter().all(|(p, _)| *p == 0.0) && api.latency.is_none())
            && s3.outcomes().iter().all(|(p, _)| *p == 0.0)
            && s3.latency.is_none()
            && key_invalid_after.is_none()
            && api_rps.is_none()
            && s3_outage.is_none()
            && source.is_none()
            && web.is_none()
    }

    /// Checks what the types cannot: probabilities in `[0, 1]` adding up to at most 1 per endpoint,
    /// latencies with `min <= max`, a rate of at least 1.
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_endpoint(
            "content_storage_url",
            &self.content_storage_url.outcomes(),
            self.content_storage_url.latency,
        )?;
        check_endpoint("register_asset", &self.register_asset.outcomes(), self.register_asset.latency)?;
        check_endpoint("asset_data", &self.asset_data.outcomes(), self.asset_data.latency)?;
        check_endpoint("update_data", &self.update_data.outcomes(), self.update_data.latency)?;
        check_endpoint("s3", &self.s3.outcomes(), self.s3.latency)?;
        if self.api_rps == Some(0) {
            return Err("api.rps: the rate limit must be at least 1 request per second".into());
        }
        self.source.validate("source")?;
        self.web.validate("web")?;
        Ok(())
    }

    /// The faults of one API endpoint.
    fn api(&self, endpoint: Endpoint) -> &ApiFaults {
        match endpoint {
            Endpoint::ContentStorageUrl => &self.content_storage_url,
            Endpoint::AssetData => &self.asset_data,
            Endpoint::UpdateData => &self.update_data,
            Endpoint::RegisterAsset => &self.register_asset,
            // Never asked: the S3 endpoint has `S3Faults`.
            Endpoint::S3Post => &self.register_asset,
        }
    }
}

fn check_endpoint(name: &str, outcomes: &[(f64, Outcome)], latency: Latency) -> Result<(), String> {
    for &(p, outcome) in outcomes {
        if !(0.0..=1.0).contains(&p) {
            return Err(format!(
                "{name}.{}: the probability {p} is not between 0 and 1",
                outcome.spec_name()
            ));
        }
    }
    let total: f64 = outcomes.iter().map(|(p, _)| p).sum();
    // A little slack for sums like 0.1 + 0.2 + 0.7 that are 1 in decimal but not in binary.
    if total > 1.0 + 1e-9 {
        return Err(format!("{name}: the fault probabilities add up to {total}, more than 1"));
    }
    if latency.min > latency.max {
        return Err(format!(
            "{name}.latency: the least latency {:?} is above the most {:?}",
            latency.min, latency.max
        ));
    }
    Ok(())
}

/// What one draw can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    ServerError,
    SlowDown,
    TooManyRequests,
    Drop,
    LostReply,
    SlowBody,
    NotFound,
    ResetMid,
    Stall,
}

impl Outcome {
    /// The name after `<endpoint>.` in a spec.
    fn spec_name(self) -> &'static str {
        match self {
            Outcome::ServerError => "5xx",
            Outcome::SlowDown => "503",
            Outcome::TooManyRequests => "429",
            Outcome::Drop => "drop",
            Outcome::LostReply => "lost_reply",
            Outcome::SlowBody => "slow_body",
            Outcome::NotFound => "404",
            Outcome::ResetMid => "reset_mid",
            Outcome::Stall => "stall",
        }
    }
}

/// An endpoint the emulator serves, as named in [`Emulator::request_times`](crate::Emulator::request_times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `GET /api/v1/assets/new/content_storage_url`
    ContentStorageUrl,
    /// `POST /api/v1/assets/new/register_asset`
    RegisterAsset,
    /// The S3 POST endpoint (every request on its port).
    S3Post,
    /// Get Data: `GET /api/v1/assets/{id}/data`
    AssetData,
    /// Update Data: `POST /api/v1/assets/{id}/data/update`
    UpdateData,
}

impl Endpoint {
    /// Every endpoint, in the order of [`index`](Self::index).
    pub(crate) const ALL: [Endpoint; 5] = [
        Endpoint::ContentStorageUrl,
        Endpoint::RegisterAsset,
        Endpoint::S3Post,
        Endpoint::AssetData,
        Endpoint::UpdateData,
    ];

    /// A dense index, for per-endpoint tables. The data endpoints come last so that the first three
    /// keep the seeded streams they had before the data endpoints existed: a seed replays as it did.
    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::ContentStorageUrl => 0,
            Endpoint::RegisterAsset => 1,
            Endpoint::S3Post => 2,
            Endpoint::AssetData => 3,
            Endpoint::UpdateData => 4,
        }
    }

    /// Whether the endpoint is one of the FileSpin API's.
    pub(crate) fn is_api(self) -> bool {
        !matches!(self, Endpoint::S3Post)
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Wait this long first.
    pub(crate) delay: Duration,
    /// Then do this instead of (or, for a lost reply, besides) answering normally.
    pub(crate) fault: Option<Fault>,
}

/// What to do to one request instead of answering it normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with an error, without running the handler.
    Refuse(Refusal),
    /// Close the connection without answering, without running the handler (S3: after reading part of the
    /// body).
    Drop,
    /// Run the handler, then close the connection instead of answering.
    LostReply,
    /// Read the body with this pause between pieces, then answer normally (S3 only).
    SlowBody(Duration),
}

/// An injected error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The API key has been revoked: `401`.
    KeyRevoked,
    /// Over [`FaultConfig::api_rps`]: `429`, `Retry-After: 1`.
    RateLimited,
    /// An injected `429`.
    TooManyRequests { retry_after_secs: u64 },
    /// An injected `5xx`: 500, 502 or 503 on the API, always 500 on S3.
    ServerError(StatusCode),
    /// S3's `503 SlowDown`, injected or during an outage.
    SlowDown,
}

/// The `5xx` statuses the API answers with, one picked at random.
const API_SERVER_ERRORS: [StatusCode; 3] =
    [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE];

/// Decides, request by request, whether to inject a fault.
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
    /// One seeded stream per endpoint (see [`FaultConfig`]'s "Seeding").
    rngs: [Mutex<StdRng>; Endpoint::ALL.len()],
    /// Over the four API endpoints.
    limiter: Option<DefaultDirectRateLimiter>,
    /// API requests seen, for `key_invalid_after`.
    api_requests: AtomicU64,
    /// When the current S3 outage starts and ends.
    s3_outage: Mutex<Option<(Instant, Instant)>>,
}

impl Faults {
    /// Faults as `config` says, with outages measured from `started`. `config` must be valid
    /// ([`FaultConfig::validate`]); a rate limit of 0 is taken as 1.
    pub(crate) fn new(config: FaultConfig, started: Instant) -> Self {
        let rngs = Endpoint::ALL.map(|endpoint| {
            // Distinct seeds give independent streams: `seed_from_u64` expands its input with a PCG.
            let stream =
                config.seed.wrapping_add((endpoint.index() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            Mutex::new(StdRng::seed_from_u64(stream))
        });
        let limiter = config.api_rps.map(|rps| {
            RateLimiter::direct(Quota::per_second(NonZeroU32::new(rps).unwrap_or(NonZeroU32::MIN)))
        });
        let s3_outage = config.s3_outage.map(|(start, length)| (started + start, started + start + length));
        Self { config, rngs, limiter, api_requests: AtomicU64::new(0), s3_outage: Mutex::new(s3_outage) }
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Starts an S3 outage now, lasting `length` (ending any other).
    pub(crate) fn set_s3_outage(&self, length: Duration) {
        let now = Instant::now();
        *lock(&self.s3_outage) = Some((now, now + length));
    }

    /// What happens to a request to `endpoint` arriving now.
    pub(crate) fn pick(&self, endpoint: Endpoint) -> Decision {
        // Always three draws per request, so the n-th request's draws do not depend on what earlier
        // requests met (a rate limit, an outage) — only on n.
        let (latency_draw, outcome_draw, status_draw) = {
            let mut rng = lock(&self.rngs[endpoint.index()]);
            (rng.random::<f64>(), rng.random::<f64>(), rng.random_range(0..API_SERVER_ERRORS.len()))
        };
        match endpoint {
            Endpoint::ContentStorageUrl
            | Endpoint::RegisterAsset
            | Endpoint::AssetData
            | Endpoint::UpdateData => {
                let faults = self.config.api(endpoint);
                let ordinal = self.api_requests.fetch_add(1, Ordering::Relaxed) + 1;
                let fault = if self.config.key_invalid_after.is_some_and(|n| ordinal > n) {
                    Some(Fault::Refuse(Refusal::KeyRevoked))
                } else if self.limiter.as_ref().is_some_and(|limiter| limiter.check().is_err()) {
                    Some(Fault::Refuse(Refusal::RateLimited))
                } else {
                    draw(&faults.outcomes(), outcome_draw).map(|outcome| match outcome {
                        Outcome::ServerError => {
                            Fault::Refuse(Refusal::ServerError(API_SERVER_ERRORS[status_draw]))
                        }
                        Outcome::TooManyRequests => Fault::Refuse(Refusal::TooManyRequests {
                            retry_after_secs: faults.retry_after_secs,
                        }),
                        Outcome::Drop => Fault::Drop,
                        Outcome::LostReply => Fault::LostReply,
                        // Not among an API endpoint's outcomes.
                        Outcome::SlowDown
                        | Outcome::SlowBody
                        | Outcome::NotFound
                        | Outcome::ResetMid
                        | Outcome::Stall => {
                            Fault::Refuse(Refusal::ServerError(StatusCode::SERVICE_UNAVAILABLE))
                        }
                    })
                };
                Decision { delay: faults.latency.pick(latency_draw), fault }
            }
            Endpoint::S3Post => {
                let faults = &self.config.s3;
                let in_outage =
                    lock(&self.s3_outage).is_some_and(|(start, end)| (start..end).contains(&Instant::now()));
                let fault = if in_outage {
                    Some(Fault::Refuse(Refusal::SlowDown))
                } else {
                    draw(&faults.outcomes(), outcome_draw).map(|outcome| match outcome {
                        Outcome::ServerError => {
                            Fault::Refuse(Refusal::ServerError(StatusCode::INTERNAL_SERVER_ERROR))
                        }
                        Outcome::SlowDown => Fault::Refuse(Refusal::SlowDown),
                        Outcome::TooManyRequests => Fault::Refuse(Refusal::TooManyRequests {
                            retry_after_secs: faults.retry_after_secs,
                        }),
                        Outcome::Drop => Fault::Drop,
                        Outcome::LostReply => Fault::LostReply,
                        Outcome::SlowBody => Fault::SlowBody(faults.slow_body_pause),
                        // Not among the S3 POST endpoint's outcomes.
                        Outcome::NotFound | Outcome::ResetMid | Outcome::Stall => {
                            Fault::Refuse(Refusal::ServerError(StatusCode::INTERNAL_SERVER_ERROR))
                        }
                    })
                };
                Decision { delay: faults.latency.pick(latency_draw), fault }
            }
        }
    }
}

/// The outcome a uniform draw in `[0, 1)` lands on, walking the probabilities in order.
fn draw(outcomes: &[(f64, Outcome)], draw: f64) -> Option<Outcome> {
    let mut bound = 0.0;
    for &(p, outcome) in outcomes {
        bound += p;
        if draw < bound {
            return Some(outcome);
        }
    }
    None
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single read or write: a panic cannot leave it half done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(spec: &str) -> Faults {
        Faults::new(FaultConfig::parse(spec).unwrap(), Instant::now())
    }

    fn fates(faults: &Faults, endpoint: Endpoint, n: usize) -> Vec<Decision> {
        (0..n).map(|_| faults.pick(endpoint)).collect()
    }

    #[test]
    fn no_faults_by_default() {
        let faults = Faults::new(FaultConfig::default(), Instant::now());
        for endpoint in Endpoint::ALL {
            for decision in fates(&faults, endpoint, 1000) {
                assert_eq!(decision, Decision { delay: Duration::ZERO, fault: None });
            }
        }
        assert!(FaultConfig::default().is_none());
    }

    #[test]
    fn the_same_seed_gives_the_same_fates() {
        let spec = "seed=42,api.5xx=0.2,api.drop=0.1,s3.503=0.3,latency=1ms..9ms";
        let (a, b) = (faults(spec), faults(spec));
        for endpoint in Endpoint::ALL {
            assert_eq!(fates(&a, endpoint, 200), fates(&b, endpoint, 200));
        }
        let c = faults(&spec.replace("seed=42", "seed=43"));
        assert_ne!(fates(&a, Endpoint::RegisterAsset, 200), fates(&c, Endpoint::RegisterAsset, 200));
    }

    #[test]
    fn an_endpoints_fates_do_not_depend_on_the_others_traffic() {
        let spec = "seed=3,api.5xx=0.3,s3.drop=0.3";
        let (quiet, busy) = (faults(spec), faults(spec));
        let alone = fates(&quiet, Endpoint::RegisterAsset, 100);
        let interleaved: Vec<Decision> = (0..100)
            .map(|i| {
                fates(&busy, Endpoint::S3Post, i % 3);
                busy.pick(Endpoint::RegisterAsset)
            })
            .collect();
        assert_eq!(alone, interleaved);
    }

    #[test]
    fn a_draw_walks_the_probabilities_in_order() {
        let outcomes = [(0.25, Outcome::ServerError), (0.5, Outcome::Drop)];
        assert_eq!(draw(&outcomes, 0.0), Some(Outcome::ServerError));
        assert_eq!(draw(&outcomes, 0.2499), Some(Outcome::ServerError));
        assert_eq!(draw(&outcomes, 0.25), Some(Outcome::Drop));
        assert_eq!(draw(&outcomes, 0.7499), Some(Outcome::Drop));
        assert_eq!(draw(&outcomes, 0.75), None);
    }

    #[test]
    fn api_server_errors_are_500_502_and_503() {
        let faults = faults("seed=1,api.5xx=1");
        let mut seen: Vec<StatusCode> = fates(&faults, Endpoint::ContentStorageUrl, 100)
            .into_iter()
            .map(|decision| match decision.fault {
                Some(Fault::Refuse(Refusal::ServerError(status))) => status,
                other => panic!("{other:?}"),
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, API_SERVER_ERRORS);
    }

    #[test]
    fn the_api_scope_covers_the_data_endpoints_and_each_has_its_own() {
        let all = faults("seed=2,api.5xx=1");
        for endpoint in [Endpoint::AssetData, Endpoint::UpdateData] {
            for decision in fates(&all, endpoint, 20) {
                assert!(
                    matches!(decision.fault, Some(Fault::Refuse(Refusal::ServerError(_)))),
                    "{decision:?}"
                );
            }
        }
        let each = faults("update_data.drop=1,get_data.429=1");
        assert_eq!(each.pick(Endpoint::UpdateData).fault, Some(Fault::Drop));
        let throttled = each.pick(Endpoint::AssetData).fault;
        assert!(matches!(throttled, Some(Fault::Refuse(Refusal::TooManyRequests { .. }))), "{throttled:?}");
        assert_eq!(each.pick(Endpoint::RegisterAsset).fault, None);
        assert_eq!(each.pick(Endpoint::ContentStorageUrl).fault, None);
    }

    #[test]
    fn latency_stays_within_its_bounds() {
        let faults = faults("seed=5,s3.latency=10ms..20ms,api.latency=7ms");
        for decision in fates(&faults, Endpoint::S3Post, 200) {
            assert!((Duration::from_millis(10)..=Duration::from_millis(20)).contains(&decision.delay));
        }
        for decision in fates(&faults, Endpoint::RegisterAsset, 20) {
            assert_eq!(decision.delay, Duration::from_millis(7));
        }
    }

    #[test]
    fn the_key_is_revoked_after_n_api_requests_on_either_endpoint() {
        let faults = faults("key_invalid_after=3");
        let revoked = |endpoint| faults.pick(endpoint).fault == Some(Fault::Refuse(Refusal::KeyRevoked));
        assert!(!revoked(Endpoint::ContentStorageUrl));
        assert!(!revoked(Endpoint::S3Post));
        assert!(!revoked(Endpoint::RegisterAsset));
        assert!(!revoked(Endpoint::ContentStorageUrl));
        assert!(revoked(Endpoint::RegisterAsset));
        assert!(revoked(Endpoint::ContentStorageUrl));
        assert!(!revoked(Endpoint::S3Post));
    }

    #[test]
    fn an_outage_from_the_config_is_measured_from_the_start() {
        let started = Instant::now();
        let config = FaultConfig {
            s3_outage: Some((Duration::ZERO, Duration::from_secs(3600))),
            ..FaultConfig::default()
        };
        let faults = Faults::new(config, started);
        assert_eq!(faults.pick(Endpoint::S3Post).fault, Some(Fault::Refuse(Refusal::SlowDown)));
        assert_eq!(faults.pick(Endpoint::RegisterAsset).fault, None);

        let config = FaultConfig {
            s3_outage: Some((Duration::from_secs(3600), Duration::from_secs(1))),
            ..FaultConfig::default()
        };
        assert_eq!(Faults::new(config, started).pick(Endpoint::S3Post).fault, None);
    }

    #[test]
    fn validation_names_the_setting() {
        let mut config = FaultConfig::default();
        config.register_asset.drop_connection = 1.5;
        assert_eq!(
            config.validate().unwrap_err(),
            "register_asset.drop: the probability 1.5 is not between 0 and 1"
        );

        let mut config = FaultConfig::default();
        config.s3.slow_down = 0.7;
        config.s3.slow_body = 0.7;
        assert_eq!(config.validate().unwrap_err(), "s3: the fault probabilities add up to 1.4, more than 1");

        let mut config = FaultConfig::default();
        config.s3.server_error = 0.1;
        config.s3.slow_down = 0.2;
        config.s3.drop_connection = 0.7;
        assert_eq!(config.validate(), Ok(()), "0.1 + 0.2 + 0.7 is 1 in decimal");

        let mut config = FaultConfig::default();
        config.content_storage_url.latency = Latency::between(Duration::from_secs(2), Duration::from_secs(1));
        assert!(config.validate().unwrap_err().starts_with("content_storage_url.latency:"));

        let config = FaultConfig { api_rps: Some(0), ..FaultConfig::default() };
        assert!(config.validate().unwrap_err().starts_with("api.rps:"));
    }
}

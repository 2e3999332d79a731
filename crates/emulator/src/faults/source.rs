//! The faults of the two source servers, [`SourceBucket`](crate::SourceBucket) (`source.*`) and
//! [`SourceWeb`](crate::SourceWeb) (`web.*`): what can be configured, and the seeded choice per request.
//!
//! They share the grammar, the seeding and the draw with the FileSpin endpoints' faults; what differs is
//! what can go wrong when a client *reads*: an object that is briefly not found, and a body cut off in the
//! middle or stalled.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{DEFAULT_RETRY_AFTER_SECS, Latency, Outcome, check_endpoint, draw, lock};

/// The faults of one source server: probabilities per request (each between 0 and 1, together at most
/// 1, since one draw picks at most one of them), a rate limit, latency and `Retry-After`.
///
/// In a spec they are `source.<setting>` for the [`SourceBucket`](crate::SourceBucket) and
/// `web.<setting>` for the [`SourceWeb`](crate::SourceWeb) (see [`FaultConfig::parse`](crate::FaultConfig::parse)).
/// Faults never change what is stored: every one is decided before the request is served, and carried
/// out on the answer.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SourceFaults {
    /// Answer `500` (the bucket: S3's `InternalError` in XML). Spec `5xx` (or `500`).
    pub server_error: f64,
    /// Answer `503` with `Retry-After: <retry_after_secs>` (the bucket: S3's `SlowDown` in XML). Spec `503`.
    pub slow_down: f64,
    /// Answer `429` with `Retry-After: <retry_after_secs>` (the bucket: `TooManyRequests` in XML, as
    /// S3-compatible stores throttle). Spec `429`.
    pub too_many_requests: f64,
    /// Answer `404` as if the object were missing (the bucket: `NoSuchKey`, only to a GET or HEAD of an
    /// object; other requests are served normally), as a lagging replica does. Spec `404`.
    pub not_found: f64,
    /// Close the connection without answering. Spec `drop`.
    pub drop_connection: f64,
    /// Send the answer's headers, with the full `Content-Length`, then half of the body, then close the
    /// connection: the client reads fewer bytes than announced and an error. Only a GET answered `2xx`
    /// with a non-empty body is cut; other requests are served normally. Spec `reset_mid` (or `cut`).
    pub reset_mid: f64,
    /// Send the headers and half of the body, then nothing for [`stall_for`](Self::stall_for), then the
    /// rest: exercises a client's read timeout. Only a GET answered `2xx` with a non-empty body stalls.
    /// Spec `stall`.
    pub stall: f64,
    /// How long a stalled body pauses. Default 30 s. Spec `stall_for`.
    pub stall_for: Duration,
    /// A rate limit in requests per second over the whole server; a request over it is answered `429`
    /// with `Retry-After: 1`. A token bucket (governor's GCRA), as [`FaultConfig::api_rps`]: a burst of
    /// up to `rps` requests passes at once, then one every `1/rps` seconds; a refused request uses no
    /// token. Must be at least 1. Spec `rps`.
    ///
    /// [`FaultConfig::api_rps`]: crate::FaultConfig::api_rps
    pub rps: Option<u32>,
    /// Wait this long before every answer (or drop). Spec `latency`.
    pub latency: Latency,
    /// The `Retry-After` of an injected `503` or `429`, in seconds. Default 1. Spec `retry_after`.
    pub retry_after_secs: u64,
}

impl Default for SourceFaults {
    fn default() -> Self {
        Self {
            server_error: 0.0,
            slow_down: 0.0,
            too_many_requests: 0.0,
            not_found: 0.0,
            drop_connection: 0.0,
            reset_mid: 0.0,
            stall: 0.0,
            stall_for: DEFAULT_STALL_FOR,
            rps: None,
            latency: Latency::NONE,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }
    }
}

pub(super) const DEFAULT_STALL_FOR: Duration = Duration::from_secs(30);

impl SourceFaults {
    /// The probabilities, in the order one draw walks them.
    pub(super) fn outcomes(&self) -> [(f64, Outcome); 7] {
        [
            (self.server_error, Outcome::ServerError),
            (self.slow_down, Outcome::SlowDown),
            (self.too_many_requests, Outcome::TooManyRequests),
            (self.not_found, Outcome::NotFound),
            (self.drop_connection, Outcome::Drop),
            (self.reset_mid, Outcome::ResetMid),
            (self.stall, Outcome::Stall),
        ]
    }

    /// Whether any fault is configured.
    pub fn is_none(&self) -> bool {
        self.outcomes().iter().all(|(p, _)| *p == 0.0) && self.latency.is_none() && self.rps.is_none()
    }

    pub(super) fn validate(&self, scope: &str) -> Result<(), String> {
        check_endpoint(scope, &self.outcomes(), self.latency)?;
        if self.rps == Some(0) {
            return Err(format!("{scope}.rps: the rate limit must be at least 1 request per second"));
        }
        Ok(())
    }
}

/// Which of the two source servers: each draws from its own seeded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceServer {
    Bucket,
    Web,
}

impl SourceServer {
    /// The stream index, after the FileSpin endpoints' (`Endpoint::index`), so that adding the source
    /// servers changed no existing seed's fates.
    fn stream(self) -> u64 {
        match self {
            SourceServer::Bucket => 5,
            SourceServer::Web => 6,
        }
    }
}

/// What happens to one request to a source server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceDecision {
    /// Wait this long first.
    pub(crate) delay: Duration,
    pub(crate) fault: Option<SourceFault>,
}

/// What to do to one request instead of answering it normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceFault {
    /// Answer with an error, without serving the request.
    Refuse(SourceRefusal),
    /// Close the connection without answering.
    Drop,
    /// Serve, but cut the body after half of it (a GET answered 2xx with a body only).
    ResetMid,
    /// Serve, but pause this long after half of the body (a GET answered 2xx with a body only).
    Stall(Duration),
}

/// An injected error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceRefusal {
    ServerError,
    SlowDown {
        retry_after_secs: u64,
    },
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// Over [`SourceFaults::rps`]: `429`, `Retry-After: 1`.
    RateLimited,
    NotFound,
}

/// Decides, request by request, what happens to the requests of one source server.
#[derive(Debug)]
pub(crate) struct SourceFaultPicker {
    faults: SourceFaults,
    rng: Mutex<StdRng>,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl SourceFaultPicker {
    /// `faults` must be valid; a rate limit of 0 is taken as 1.
    pub(crate) fn new(faults: SourceFaults, seed: u64, server: SourceServer) -> Self {
        // As `Faults::new`: distinct seeds give independent streams.
        let stream = seed.wrapping_add(server.stream().wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let limiter = faults.rps.map(|rps| {
            RateLimiter::direct(Quota::per_second(NonZeroU32::new(rps).unwrap_or(NonZeroU32::MIN)))
        });
        Self { faults, rng: Mutex::new(StdRng::seed_from_u64(stream)), limiter }
    }

    pub(crate) fn faults(&self) -> &SourceFaults {
        &self.faults
    }

    /// What happens to a request arriving now.
    pub(crate) fn pick(&self) -> SourceDecision {
        // Always two draws per request, so that the n-th request's fate depends only on n.
        let (latency_draw, outcome_draw) = {
            let mut rng = lock(&self.rng);
            (rng.random::<f64>(), rng.random::<f64>())
        };
        let faults = &self.faults;
        let fault = if self.limiter.as_ref().is_some_and(|limiter| limiter.check().is_err()) {
            Some(SourceFault::Refuse(SourceRefusal::RateLimited))
        } else {
            let retry_after_secs = faults.retry_after_secs;
            draw(&faults.outcomes(), outcome_draw).map(|outcome| match outcome {
                Outcome::SlowDown => SourceFault::Refuse(SourceRefusal::SlowDown { retry_after_secs }),
                Outcome::TooManyRequests => {
                    SourceFault::Refuse(SourceRefusal::TooManyRequests { retry_after_secs })
                }
                Outcome::NotFound => SourceFault::Refuse(SourceRefusal::NotFound),
                Outcome::Drop => SourceFault::Drop,
                Outcome::ResetMid => SourceFault::ResetMid,
                Outcome::Stall => SourceFault::Stall(faults.stall_for),
                // Not among a source server's outcomes but the first.
                Outcome::ServerError | Outcome::LostReply | Outcome::SlowBody => {
                    SourceFault::Refuse(SourceRefusal::ServerError)
                }
            })
        };
        SourceDecision { delay: faults.latency.pick(latency_draw), fault }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FaultConfig;

    fn picker(spec: &str, server: SourceServer) -> SourceFaultPicker {
        let config = FaultConfig::parse(spec).unwrap();
        let faults = match server {
            SourceServer::Bucket => config.source,
            SourceServer::Web => config.web,
        };
        SourceFaultPicker::new(faults, config.seed, server)
    }

    fn fates(picker: &SourceFaultPicker, n: usize) -> Vec<SourceDecision> {
        (0..n).map(|_| picker.pick()).collect()
    }

    #[test]
    fn no_faults_by_default() {
        let picker = SourceFaultPicker::new(SourceFaults::default(), 0, SourceServer::Bucket);
        assert!(
            fates(&picker, 1000).iter().all(|d| *d == SourceDecision { delay: Duration::ZERO, fault: None })
        );
        assert!(SourceFaults::default().is_none());
    }

    #[test]
    fn the_same_seed_gives_the_same_fates_and_the_servers_differ() {
        let spec = "seed=9,source.503=0.2,source.reset_mid=0.2,web.503=0.2,web.reset_mid=0.2";
        let a = fates(&picker(spec, SourceServer::Bucket), 300);
        assert_eq!(a, fates(&picker(spec, SourceServer::Bucket), 300));
        assert_ne!(a, fates(&picker(spec, SourceServer::Web), 300));
        assert_ne!(a, fates(&picker(&spec.replace("seed=9", "seed=10"), SourceServer::Bucket), 300));
    }

    #[test]
    fn each_fault_comes_at_its_rate() {
        let spec = "seed=1,source.5xx=0.1,source.503=0.1,source.429=0.1,source.404=0.1,source.drop=0.1,\
                    source.reset_mid=0.1,source.stall=0.1,source.stall_for=2s,source.retry_after=4";
        let decisions = fates(&picker(spec, SourceServer::Bucket), 10_000);
        let count =
            |f: &dyn Fn(&Option<SourceFault>) -> bool| decisions.iter().filter(|d| f(&d.fault)).count();
        use SourceFault as F;
        use SourceRefusal as R;
        let counts = [
            count(&|f| *f == Some(F::Refuse(R::ServerError))),
            count(&|f| *f == Some(F::Refuse(R::SlowDown { retry_after_secs: 4 }))),
            count(&|f| *f == Some(F::Refuse(R::TooManyRequests { retry_after_secs: 4 }))),
            count(&|f| *f == Some(F::Refuse(R::NotFound))),
            count(&|f| *f == Some(F::Drop)),
            count(&|f| *f == Some(F::ResetMid)),
            count(&|f| *f == Some(F::Stall(Duration::from_secs(2)))),
            count(&|f| f.is_none()),
        ];
        for (i, n) in counts.iter().enumerate().take(7) {
            assert!((850..=1150).contains(n), "outcome {i}: {n} of 10000");
        }
        assert!((2700..=3300).contains(&counts[7]), "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 10_000);
    }

    #[test]
    fn the_rate_limit_passes_a_burst_then_refuses() {
        let picker = picker("web.rps=5", SourceServer::Web);
        let refused = fates(&picker, 20)
            .iter()
            .filter(|d| d.fault == Some(SourceFault::Refuse(SourceRefusal::RateLimited)))
            .count();
        // A burst of 5 passes; the 15 others come within microseconds, long before the next token.
        assert_eq!(refused, 15);
    }
}

//! The source servers a migration reads from: [`SourceBucket`] (S3-compatible, on s3s over s3s-fs) and
//! [`SourceWeb`] (files over plain HTTP). What they share lives here: the counters and the request log,
//! and the answer's body, which a fault can cut off or stall (`body.rs`); conditional requests
//! (`conditions.rs`).

mod body;
mod bucket;
mod conditions;
mod store;
mod web;

pub use bucket::{SourceBucket, SourceBucketConfig};
pub use web::{SourceWeb, SourceWebConfig};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::faults::{SourceDecision, SourceFault, SourceFaultPicker, SourceRefusal};

/// What a source server has seen, as [`SourceBucket::stats`] and [`SourceWeb::stats`] return it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SourceStats {
    /// Every request, whatever its answer.
    pub requests: u64,
    /// `HEAD` of an object (or file).
    pub heads: u64,
    /// `GET` of an object (or file).
    pub gets: u64,
    /// Listings (`GET` of a bucket: ListObjectsV2 or ListObjects). Always 0 on a [`SourceWeb`].
    pub lists: u64,
    /// `PUT` of an object (uploads, copies, parts). Always 0 on a [`SourceWeb`].
    pub puts: u64,
    /// `DELETE` of an object. Always 0 on a [`SourceWeb`].
    pub deletes: u64,
    /// Any other request (bucket operations, multipart uploads; on a [`SourceWeb`], a method other than
    /// GET and HEAD).
    pub other: u64,
    /// Body bytes of objects (files) handed to the network by GETs, including those of bodies cut off
    /// by a fault.
    pub bytes_served: u64,
    /// Answers `304 Not Modified` to a conditional GET or HEAD.
    pub not_modified: u64,
    /// Answers with a 4xx or 5xx status by the server's own checks — a missing object, a failed
    /// precondition, a bad signature, a refused HEAD — not injected faults.
    pub rejected: u64,
    /// Requests that met an injected fault: an error answer, a drop, a body cut off or stalled (not
    /// added latency, nor the rate limit).
    pub faults_injected: u64,
    /// Requests answered `429` for going over the rate limit ([`SourceFaults::rps`](crate::SourceFaults::rps)).
    pub rate_limited: u64,
}

/// The kind of a request, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Head,
    Get,
    List,
    Put,
    Delete,
    Other,
}

impl Op {
    /// Whether the request reads an object (or file): where a `404` fault applies.
    fn reads_object(self) -> bool {
        matches!(self, Op::Head | Op::Get)
    }

    /// Whether the answer has a body that a cut or a stall can apply to.
    fn is_get(self) -> bool {
        matches!(self, Op::Get | Op::List)
    }
}

/// A source server's counters, request log and faults.
#[derive(Debug)]
struct Log {
    started: Instant,
    /// Arrival times, microseconds since `started`.
    arrivals: Mutex<Vec<u64>>,
    faults: SourceFaultPicker,
    requests: AtomicU64,
    heads: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    other: AtomicU64,
    bytes_served: Arc<AtomicU64>,
    not_modified: AtomicU64,
    rejected: AtomicU64,
    faults_injected: AtomicU64,
    rate_limited: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Log {
    fn new(faults: SourceFaultPicker) -> Self {
        Self {
            started: Instant::now(),
            arrivals: Mutex::new(Vec::new()),
            faults,
            requests: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            other: AtomicU64::new(0),
            bytes_served: Arc::new(AtomicU64::new(0)),
            not_modified: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// Records a request arriving now, and decides its fate. An error answer or a drop is counted here;
    /// a cut or a stall only once it applies ([`Log::injected`]).
    fn arrive(&self, op: Op) -> SourceDecision {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.arrivals.lock().unwrap_or_else(PoisonError::into_inner).push(micros);
        bump(&self.requests);
        bump(match op {
            Op::Head => &self.heads,
            Op::Get => &self.gets,
            Op::List => &self.lists,
            Op::Put => &self.puts,
            Op::Delete => &self.deletes,
            Op::Other => &self.other,
        });
        let mut decision = self.faults.pick();
        match decision.fault {
            Some(SourceFault::Refuse(SourceRefusal::RateLimited)) => bump(&self.rate_limited),
            // A 404 is for reading an object; anything else is served.
            Some(SourceFault::Refuse(SourceRefusal::NotFound)) if !op.reads_object() => decision.fault = None,
            Some(SourceFault::Refuse(_) | SourceFault::Drop) => self.injected(),
            Some(SourceFault::ResetMid | SourceFault::Stall(_)) if !op.is_get() => decision.fault = None,
            Some(SourceFault::ResetMid | SourceFault::Stall(_)) | None => {}
        }
        decision
    }

    fn injected(&self) {
        bump(&self.faults_injected);
    }

    fn rejected(&self) {
        bump(&self.rejected);
    }

    fn not_modified(&self) {
        bump(&self.not_modified);
    }

    fn snapshot(&self) -> SourceStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SourceStats {
            requests: get(&self.requests),
            heads: get(&self.heads),
            gets: get(&self.gets),
            lists: get(&self.lists),
            puts: get(&self.puts),
            deletes: get(&self.deletes),
            other: get(&self.other),
            bytes_served: get(&self.bytes_served),
            not_modified: get(&self.not_modified),
            rejected: get(&self.rejected),
            faults_injected: get(&self.faults_injected),
            rate_limited: get(&self.rate_limited),
        }
    }

    fn times(&self) -> Vec<Duration> {
        let arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        arrivals.iter().map(|&micros| Duration::from_micros(micros)).collect()
    }
}

/// `KEY=value`, the value quoted for a POSIX shell when it needs to be.
fn env_line(key: &str, value: &str) -> String {
    let plain =
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./:@%+=,".contains(&b));
    if plain { format!("{key}={value}") } else { format!("{key}='{}'", value.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_quoted_only_when_needed() {
        assert_eq!(env_line("AWS_REGION", "us-east-1"), "AWS_REGION=us-east-1");
        assert_eq!(env_line("AWS_ENDPOINT", "http://127.0.0.1:9000"), "AWS_ENDPOINT=http://127.0.0.1:9000");
        assert_eq!(env_line("K", "a b"), "K='a b'");
        assert_eq!(env_line("K", "it's"), "K='it'\\''s'");
        assert_eq!(env_line("K", ""), "K=''");
    }
}

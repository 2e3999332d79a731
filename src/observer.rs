//! Progress: what a run tells whoever watches it (the CLI's progress bar, a library user's metrics).

use spinlift_core::Failure;

use crate::report::EntryReport;

/// Receives progress while a run goes on. Every method has a no-op default; implementations must be
/// cheap, they are called from the upload loop.
pub trait Observer: Send + Sync {
    /// `n` more bytes were handed to the network (retried uploads count again).
    fn bytes_sent(&self, _n: u64) {}
    /// An attempt failed and will be retried or replaced; the failure says why.
    fn retrying(&self, _id: &str, _failure: &Failure) {}
    /// Adaptive concurrency changed the number of requests allowed in flight.
    fn concurrency(&self, _limit: usize) {}
    /// Work on entry `id` began in this run (entries finished in an earlier run are not started).
    fn started(&self, _id: &str) {}
    /// The number of entries being worked on changed (an entry started, or reached its outcome).
    /// Entries finished in an earlier run are not counted: they need no work.
    fn in_flight(&self, _assets: usize) {}
    /// An entry reached its outcome for this run.
    fn finished(&self, _entry: &EntryReport) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

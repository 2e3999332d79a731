//! A run's progress as a stream of events, for programs that would rather read a channel than
//! implement [`Observer`]: [`Engine::spawn`](crate::Engine::spawn) returns a [`RunHandle`] that is
//! both the stream and the way to cancel and to get the report.

use std::pin::Pin;
use std::task::{Context, Poll};

use spinlift_core::Failure;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::observer::Observer;
use crate::report::{EntryReport, RunReport};

/// Something that happened in a run, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// `bytes` more file bytes were handed to the network (retried uploads count again).
    BytesSent {
        /// How many.
        bytes: u64,
    },
    /// An attempt for entry `id` failed and will be retried or replaced by a fresh form.
    Retrying {
        /// The entry's id.
        id: String,
        /// Why the attempt failed.
        failure: Failure,
    },
    /// Adaptive concurrency changed how many requests may be in flight.
    Concurrency {
        /// The new limit.
        limit: usize,
    },
    /// Work on entry `id` began (entries finished in an earlier run are not started again).
    Started {
        /// The entry's id.
        id: String,
    },
    /// The number of entries being worked on changed.
    InFlight {
        /// Entries started and not finished.
        assets: usize,
    },
    /// An entry reached its outcome for this run (registered, failed, or left pending by a stop).
    Finished(EntryReport),
}

/// An [`Observer`] that sends every event into a channel. The channel is unbounded so that the upload
/// loop never waits for a slow reader; bytes are reported per chunk (256 KiB at most), so a reader
/// that falls behind holds a few events per megabyte.
#[derive(Debug, Clone)]
pub struct ProgressSender(mpsc::UnboundedSender<Progress>);

impl ProgressSender {
    /// A sender and the receiver of what it sends.
    pub fn channel() -> (ProgressSender, mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ProgressSender(tx), rx)
    }

    fn send(&self, event: Progress) {
        // A receiver that went away does not stop the run.
        let _ = self.0.send(event);
    }
}

impl Observer for ProgressSender {
    fn bytes_sent(&self, bytes: u64) {
        self.send(Progress::BytesSent { bytes });
    }
    fn retrying(&self, id: &str, failure: &Failure) {
        self.send(Progress::Retrying { id: id.to_owned(), failure: failure.clone() });
    }
    fn concurrency(&self, limit: usize) {
        self.send(Progress::Concurrency { limit });
    }
    fn started(&self, id: &str) {
        self.send(Progress::Started { id: id.to_owned() });
    }
    fn in_flight(&self, assets: usize) {
        self.send(Progress::InFlight { assets });
    }
    fn finished(&self, entry: &EntryReport) {
        self.send(Progress::Finished(entry.clone()));
    }
}

/// A run started by [`Engine::spawn`](crate::Engine::spawn) on the current tokio runtime.
///
/// It is a [`Stream`](futures::Stream) of [`Progress`] events that ends when the run has ended; then
/// [`report`](RunHandle::report) gives the outcome. Dropping the handle does not stop the run: call
/// [`cancel`](RunHandle::cancel) for that.
#[derive(Debug)]
pub struct RunHandle {
    pub(crate) events: mpsc::UnboundedReceiver<Progress>,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: JoinHandle<Result<RunReport, EngineError>>,
}

impl RunHandle {
    /// The next event; `None` once the run has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<Progress> {
        self.events.recv().await
    }

    /// Asks the run to stop: no new request starts, requests in flight get the grace period, and
    /// whatever was done is in the checkpoint for the next run. The report still comes.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The token that stops the run (to hand to a signal handler).
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the run to end and returns its report (events not read yet are dropped).
    pub async fn report(self) -> Result<RunReport, EngineError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(EngineError::Config("the run's task was cancelled".into())),
        }
    }
}

impl futures::Stream for RunHandle {
    type Item = Progress;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Progress>> {
        self.events.poll_recv(cx)
    }
}

//! Forms requested ahead of the entries that use them, so that their records are on the disk by the
//! time the entries upload.
//!
//! With a journal, an upload may not start before its form's record is durable (a crash after it
//! must not lead to a second asset), and records reach the disk in groups, one fsync each. When each
//! entry requested its own form and then waited for the group, the entries of a group came back
//! together and queued for the request slots as a block: for a while the run sent only uploads and
//! registrations, then only form requests, and so on. Sampled every 250 µs (a temporary probe, not
//! kept), the emulator had at most 2 requests in hand 15–20 % of the time with the journal against
//! 5 % without, and the cores sat idle 0.4–0.7 s more per 10,000 small files: most of what the journal
//! cost.
//!
//! Here one task of the run ([`prefetch`]) requests the forms of fresh entries (no record yet, a local
//! file) in manifest order, at most [`LEAD`] ahead of the entries that take them, each recorded as soon
//! as it comes. An entry takes its form when it would have requested one ([`FormsAhead::take`]); its
//! record went to the disk meanwhile. Since nobody waits for those records when they are made, they
//! start no group commit of their own, but go with the next one, at the latest after the journal's
//! timer for such records: one fsync in about 50 ms rather than one in 10. Each form taken makes room for the next, so form requests go out
//! one for one with the entries that start, mixed with the uploads and registrations as without a
//! journal.
//!
//! Only the way a form is requested changes: the entry turns the answer into the same event (form
//! issued, or the failure) its own request would have given, and goes on through core's state machine
//! as before. The first failure stops requesting ahead for the rest of the run: retries, backoffs and a
//! batch stop stay with the entries' own path.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use spinlift_core::{Disposition, Failure};
use spinlift_manifest::journal::Replayed;
use spinlift_transport::UploadForm;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::drive::{Durable, Run};
use crate::report::StopReason;
use crate::source::Source;

/// How many forms may be requested ahead of the entries that take them, at first: at the rates of
/// the real API (30 requests/s) forms come seconds before their entries, and a longer lead would only
/// put more form requests ahead of the first uploads.
pub(crate) const FIRST_LEAD: usize = 64;

/// How far the lead grows ([`FormsAhead::widen`]). The records of forms ahead wait for the journal's
/// timer for records nobody waits on now ([`WHENEVER`](spinlift_manifest::journal::WHENEVER), 50 ms)
/// and an fsync: at about 1,700 files/s (10,000 × 4 KiB on 2 cores) some 90 entries start meanwhile,
/// and this is three times that. At most this many forms, about 1.5 KB each, are held for entries not
/// started yet.
pub(crate) const LEAD: usize = 256;

/// How much the lead grows each time an entry catches up with its form's record.
const LEAD_STEP: usize = 32;

/// What the entry gets instead of making its own form request.
pub(crate) type Answer = Result<Ahead, Failure>;

/// A form requested ahead, and its record on its way to the disk.
pub(crate) struct Ahead {
    pub(crate) form: UploadForm,
    /// Its entry's file, as checked before the request: the entry does not check it again (the upload
    /// compares the file with this stamp once it is sent).
    pub(crate) source: Source,
    /// The form's record, on its way to the disk.
    pub(crate) durable: Durable,
    /// Its place among the forms ahead: freed when the entry takes the form.
    _lead: OwnedSemaphorePermit,
}

/// The forms ahead of a run, shared by the entries and [`prefetch`].
pub(crate) struct FormsAhead {
    window: Mutex<Window>,
    lead: Arc<Semaphore>,
    /// The lead's permits so far: [`FIRST_LEAD`], grown up to [`LEAD`].
    granted: AtomicUsize,
}

#[derive(Default)]
struct Window {
    /// The entries before this one were claimed by the prefetch or passed over.
    next: usize,
    /// Entries whose form is being requested ahead (or is there): the answer.
    claimed: HashMap<usize, oneshot::Receiver<Answer>>,
    /// Entries at or after `next` that asked for their form first: they request it themselves.
    started: BTreeSet<usize>,
    /// Requesting ahead stopped (a failure): later entries request their own forms.
    over: bool,
}

impl FormsAhead {
    pub(crate) fn new() -> FormsAhead {
        FormsAhead {
            window: Mutex::default(),
            lead: Arc::new(Semaphore::new(FIRST_LEAD)),
            granted: AtomicUsize::new(FIRST_LEAD),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The form requested ahead for entry `index`, waiting for it if the request is still under way;
    /// `None` when none was (the entry requests its own). Asked once per entry, before its first form
    /// request. A form that was there before its entry but whose record is not on the disk yet says
    /// the lead is too short for the rate: it grows ([`FormsAhead::widen`]).
    pub(crate) async fn take(&self, index: usize) -> Option<Answer> {
        let mut answer = {
            let mut window = self.window();
            if index >= window.next {
                if !window.over {
                    // The prefetch passes it over when it gets there.
                    window.started.insert(index);
                }
                return None;
            }
            window.claimed.remove(&index)?
        };
        let mut answer = match answer.try_recv() {
            Ok(Ok(mut ahead)) => {
                if !ahead.on_disk() {
                    self.widen();
                }
                return Some(Ok(ahead));
            }
            Ok(failed) => return Some(failed),
            Err(oneshot::error::TryRecvError::Empty) => answer,
            Err(oneshot::error::TryRecvError::Closed) => return None,
        };
        // Dropped unanswered: the prefetch stopped (the run did) before the form came.
        (&mut answer).await.ok()
    }

    /// Lets the prefetch go [`LEAD_STEP`] further ahead, up to [`LEAD`].
    fn widen(&self) {
        let grown = self.granted.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |granted| {
            (granted < LEAD).then(|| (granted + LEAD_STEP).min(LEAD))
        });
        if let Ok(before) = grown {
            self.lead.add_permits((before + LEAD_STEP).min(LEAD) - before);
        }
    }

    /// Claims entry `index` for a request ahead, unless it asked for its form already.
    fn claim(&self, index: usize) -> Option<oneshot::Sender<Answer>> {
        let mut window = self.window();
        if window.over {
            return None;
        }
        window.next = index + 1;
        let asked = window.started.remove(&index);
        // Those before it that asked are past: forget them.
        let later = window.started.split_off(&(index + 1));
        window.started = later;
        if asked {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        window.claimed.insert(index, receiver);
        Some(sender)
    }

    fn stop(&self) {
        self.window().over = true;
    }

    /// Requesting ahead stopped: no request may go out any more.
    pub(crate) fn stopped(&self) -> bool {
        self.window().over
    }
}

/// Requests the forms of the run's fresh entries ahead, until every one is claimed, requesting ahead
/// stops, or `done` is cancelled (every entry is through). Requests already sent then finish and are
/// recorded: a form FileSpin issued is not lost to a run that stopped (the next run uses it). Each
/// request takes a request slot like any other; at most [`LEAD`] are under way (at the start, before
/// the requests are ahead of the entries; then one goes out as an entry takes its form). Limited to 8
/// at a time, the requests fell behind the entries on 10,000 × 4 KiB files: a quarter of the entries
/// requested their own forms, and a third of those taken were not on the disk yet.
///
/// The requests are made by [`LEAD`] loops that live as long as the prefetch, each taking the next
/// fresh entry once it has a place in the lead: a future per request (1.6 KB, in a
/// `FuturesUnordered`) was an allocation per file above the allocator's small sizes.
pub(crate) async fn prefetch(
    run: Arc<Run>,
    ahead: Arc<FormsAhead>,
    states: Arc<Mutex<Replayed>>,
    done: CancellationToken,
) {
    let entries = &run.manifest.entries;
    // The first fresh entry at or after `from`: no record (a recorded entry resumes through core's
    // rules) and a local file (a remote source is read as the upload goes). The states are looked at a
    // stretch at a time, not under one lock per entry: a resumed batch of finished entries is passed
    // over while the run answers them from the same states.
    let next_fresh = |mut from: usize| {
        while from < entries.len() {
            let to = (from + 1024).min(entries.len());
            let states = states.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = (from..to).find(|&i| {
                let entry = entries.at(i);
                !entry.is_remote() && !states.contains(entry.id())
            }) {
                return Some(i);
            }
            from = to;
        }
        None
    };
    // Where the search for the next fresh entry goes on (the end once none is left).
    let scan = Mutex::new(0);
    // The next fresh entry not asked for by its entry first, claimed.
    let claim_next = || {
        let mut scan = scan.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(index) = next_fresh(*scan) {
            *scan = index + 1;
            if let Some(answer) = ahead.claim(index) {
                return Some((index, answer));
            }
        }
        *scan = entries.len();
        None
    };
    let request_loop = || async {
        loop {
            let permit = tokio::select! {
                biased;
                () = done.cancelled() => return,
                permit = ahead.lead.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            if run.stop.is_cancelled() || ahead.stopped() {
                return;
            }
            let Some((index, answer)) = claim_next() else { return };
            match run.form_ahead(entries.at(index), permit, &ahead).await {
                Some(Ok(got)) => {
                    let _ = answer.send(Ok(got));
                }
                Some(Err(failure)) => {
                    ahead.stop();
                    // A refusal no entry can get past (a revoked key, an account over its limit) stops
                    // the batch now, not when its entry gets this far.
                    if spinlift_core::classify(&failure) == Disposition::StopBatch {
                        run.stop_with(StopReason::Batch(failure.clone()));
                    }
                    let _ = answer.send(Err(failure));
                }
                // The entry finds nothing and requests its own.
                None => {}
            }
        }
    };
    futures::future::join_all((0..LEAD).map(|_| request_loop())).await;
    // Entries asking from now on are not remembered for a prefetch that will not come.
    ahead.stop();
}

impl Ahead {
    pub(crate) fn new(
        form: UploadForm,
        source: Source,
        durable: Durable,
        lead: OwnedSemaphorePermit,
    ) -> Ahead {
        Ahead { form, source, durable, _lead: lead }
    }

    /// Whether the form's record is durable already (or failed to be: the entry finds out), without
    /// waiting.
    fn on_disk(&mut self) -> bool {
        match (&mut self.durable).now_or_never() {
            Some(written) => {
                self.durable = futures::future::ready(written).boxed();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit(ahead: &FormsAhead) -> OwnedSemaphorePermit {
        ahead.lead.clone().try_acquire_owned().expect("a lead permit")
    }

    fn form(asset_id: &str) -> UploadForm {
        let fields = vec![("key".to_owned(), asset_id.to_owned())];
        UploadForm::new(asset_id, "http://127.0.0.1:9/bucket", fields, spinlift_core::UnixMillis(0))
    }

    #[tokio::test]
    async fn an_entry_takes_the_form_requested_ahead_for_it_and_frees_its_place() {
        let ahead = FormsAhead::new();
        let answer = ahead.claim(0).expect("entry 0 is claimed");
        let on_disk = futures::FutureExt::boxed(futures::future::ready(Ok(())));
        answer
            .send(Ok(Ahead::new(form("a0"), source(), on_disk, permit(&ahead))))
            .ok()
            .expect("the entry waits");
        assert_eq!(ahead.lead.available_permits(), FIRST_LEAD - 1);

        let Some(Ok(got)) = ahead.take(0).await else { panic!("entry 0 finds its form") };
        assert_eq!(got.form.asset_id, "a0");
        drop(got);
        assert_eq!(ahead.lead.available_permits(), FIRST_LEAD, "taking the form makes room for the next");
        assert!(ahead.take(0).await.is_none(), "asked once: a retry requests its own");
    }

    fn source() -> Source {
        let stamp = spinlift_manifest::journal::SourceStamp { size: 1, mtime_ms: 0, tag: 0 };
        let url = spinlift_source::SourceUrl::Local("a0.jpg".into());
        Source { url, meta: spinlift_source::ObjectMeta::default(), stamp }
    }

    fn on_the_way() -> Durable {
        futures::future::pending().boxed()
    }

    #[tokio::test]
    async fn a_form_there_before_its_entry_but_not_on_the_disk_yet_lengthens_the_lead() {
        let ahead = FormsAhead::new();
        let answer = ahead.claim(0).expect("claimed");
        answer.send(Ok(Ahead::new(form("a0"), source(), on_the_way(), permit(&ahead)))).ok().expect("sent");

        let Some(Ok(got)) = ahead.take(0).await else { panic!("entry 0 finds its form") };
        drop(got);
        assert_eq!(ahead.lead.available_permits(), FIRST_LEAD + LEAD_STEP);
    }

    #[tokio::test]
    async fn a_form_that_comes_after_its_entry_asked_leaves_the_lead_as_it_is() {
        // At the start, and wherever requests are slower than the entries (the API's rate limit), the
        // entries wait for their forms: a longer lead would not help them.
        let ahead = FormsAhead::new();
        let answer = ahead.claim(0).expect("claimed");
        let lead = permit(&ahead);
        let (taken, ()) = tokio::join!(ahead.take(0), async move {
            tokio::task::yield_now().await;
            answer.send(Ok(Ahead::new(form("a0"), source(), on_the_way(), lead))).ok().expect("sent");
        });
        assert!(matches!(taken, Some(Ok(_))));
        drop(taken);
        assert_eq!(ahead.lead.available_permits(), FIRST_LEAD);
    }

    #[test]
    fn the_lead_grows_no_further_than_its_limit() {
        let ahead = FormsAhead::new();
        for _ in 0..LEAD {
            ahead.widen();
        }
        assert_eq!(ahead.lead.available_permits(), LEAD);
    }

    #[tokio::test]
    async fn an_entry_that_asks_first_requests_its_own_and_is_passed_over() {
        let ahead = FormsAhead::new();
        assert!(ahead.take(3).await.is_none(), "not reached yet: the entry requests its own");
        assert!(ahead.claim(3).is_none(), "the prefetch does not request it a second time");
        assert!(ahead.claim(4).is_some());
        assert!(ahead.window().started.is_empty(), "entries passed are forgotten");
    }

    #[tokio::test]
    async fn entries_passed_over_or_unanswered_request_their_own() {
        let ahead = FormsAhead::new();
        // Entry 0 was passed over (it has a record), entry 1 claimed, its request given up (the run
        // stopped, or the file could not be looked at).
        let answer = ahead.claim(1).expect("claimed");
        drop(answer);
        assert!(ahead.take(0).await.is_none());
        assert!(ahead.take(1).await.is_none());
    }

    #[tokio::test]
    async fn after_a_failure_no_entry_is_claimed_and_the_failed_one_hears_why() {
        let ahead = FormsAhead::new();
        let answer = ahead.claim(0).expect("claimed");
        ahead.stop();
        let failure =
            Failure::new(spinlift_core::Step::RequestForm, spinlift_core::FailureKind::Network, "401");
        answer.send(Err(failure)).ok().expect("the entry waits");
        assert!(ahead.stopped());
        assert!(ahead.claim(1).is_none(), "no request ahead after a failure");
        assert!(matches!(ahead.take(0).await, Some(Err(f)) if f.message == "401"));
        assert!(ahead.take(1).await.is_none());
        assert!(ahead.window().started.is_empty(), "entries after a stop are not remembered");
    }
}

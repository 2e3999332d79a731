//! One entry's way through a run: core's actions performed through the transport, each state change
//! recorded in the journal (durably where a crash would otherwise cost an extra asset).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use spinlift_core::{Action, Asset, Event, Failure, FailureKind, Goal, LookedUp, State, Step};
use spinlift_manifest::journal::{Journal, JournalError, Record, SourceStamp, WHENEVER};
use spinlift_manifest::{Entry, Manifest};
use spinlift_source::{Opened, SourceError, SourceUrl};
use spinlift_transport::{
    DataUpdate, RegisterOutcome, RegisterRequest, SourceBody, UpdateMode, UpdateOutcome, UploadForm,
    UploadReceipt,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::ahead::{Ahead, Answer, FormsAhead};
use crate::checkpoint::{must_be_durable, record, resume};
use crate::clock::now;
use crate::engine::Engine;
use crate::observer::Observer;
use crate::report::{EntryReport, StopReason};
use crate::source::{Source, check_source};
use crate::throttle::{Slot, Throttle};

/// What the entries of one run share.
pub(crate) struct Run {
    pub(crate) engine: Engine,
    pub(crate) manifest: Manifest,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) journal: Option<Journal>,
    pub(crate) retry_failed: bool,
    /// Only entries registered already are worked on (set data, verify).
    pub(crate) registered_only: bool,
    /// Cancelled by the caller, or by the first batch-wide failure.
    pub(crate) stop: CancellationToken,
    pub(crate) stop_reason: Mutex<Option<StopReason>>,
    pub(crate) service_data: serde_json::Value,
    pub(crate) throttle: Throttle,
    /// Entries at work: every entry under way but those waiting for their form's record to reach the
    /// disk. The spare entries of a run (see `entries_in_flight`) only fill in for those: without work
    /// to wait for, no more entries are at work (and make their first requests) than before.
    pub(crate) active: Semaphore,
    /// What the user should hear about single entries (printed with the summary).
    pub(crate) notes: Mutex<Vec<String>>,
    /// The jitter of backoffs.
    pub(crate) rng: Mutex<StdRng>,
    /// Entries being worked on (for the observer).
    pub(crate) in_flight: AtomicUsize,
    /// The journal was written for files elsewhere: registered entries are checked against their files.
    pub(crate) verify_registered: bool,
    /// Forms requested ahead of the entries (with a journal, see [`crate::ahead`]).
    pub(crate) ahead: Option<Arc<FormsAhead>>,
}

/// A record on its way to the disk: resolves once it is durable.
pub(crate) type Durable = BoxFuture<'static, Result<(), JournalError>>;

/// How far [`Run::drive`] took an entry.
pub(crate) struct Driven {
    /// The entry's line of the report, for the observer.
    pub(crate) report: EntryReport,
    /// The state the entry ended in, when it is not the one recorded before the run.
    pub(crate) state: Option<State>,
    /// Why the entry is not finished, when the batch stopped before it was.
    pub(crate) note: Option<Failure>,
    /// The record of the entry's registration, still on its way to the disk: the run counts the entry
    /// (reports it) once it is durable, and meanwhile lets the next entry start.
    pub(crate) registered: Option<Durable>,
}

/// Counts an entry in flight while it lives.
struct InFlight<'r>(&'r Run);

impl<'r> InFlight<'r> {
    fn enter(run: &'r Run, id: &str) -> Self {
        run.observer.started(id);
        let n = run.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        run.observer.in_flight(n);
        InFlight(run)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.0.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        self.0.observer.in_flight(n);
    }
}

/// An entry's place among those at work ([`Run::active`]), left while its form goes to the disk.
struct AtWork<'a> {
    places: &'a Semaphore,
    place: Option<SemaphorePermit<'a>>,
}

impl<'a> AtWork<'a> {
    async fn enter(places: &'a Semaphore) -> Self {
        // The semaphore is never closed, so the acquire cannot fail.
        AtWork { places, place: places.acquire().await.ok() }
    }

    fn leave(&mut self) {
        self.place = None;
    }

    async fn come_back(&mut self) {
        if self.place.is_none() {
            self.place = self.places.acquire().await.ok();
        }
    }
}

impl Run {
    /// Stops the batch: no new request starts. The first reason wins.
    pub(crate) fn stop_with(&self, reason: StopReason) {
        if let Ok(mut slot) = self.stop_reason.lock()
            && slot.is_none()
        {
            let why = match &reason {
                StopReason::Batch(failure) => failure.to_string(),
                StopReason::Journal(e) => format!("the checkpoint journal cannot be written: {e}"),
                StopReason::Cancelled => "cancelled".to_owned(),
            };
            tracing::error!("stopping the batch: {why}");
            *slot = Some(reason);
        }
        self.stop.cancel();
    }

    fn stop_note(&self) -> Option<Failure> {
        match self.stop_reason.lock().ok()?.as_ref()? {
            StopReason::Batch(f) => Some(f.clone()),
            _ => None,
        }
    }

    /// A request slot, unless the batch stopped while this entry waited for one: more entries are under
    /// way than there are slots, and none of them may send a request after the stop.
    async fn slot(&self) -> Option<Slot<'_>> {
        let slot = self.throttle.slot().await;
        (!self.stop.is_cancelled()).then_some(slot)
    }

    /// What the run must get done for `entry`.
    fn goal(&self, entry: Entry<'_>, recorded: Option<&Record>) -> Goal {
        // A verification that failed is verified again when retried, --verify or not: otherwise the retry
        // would report an asset FileSpin could not process as registered.
        let retry_verify = self.retry_failed
            && matches!(recorded, Some(r)
                if matches!(&r.state, State::Failed { failure, .. } if failure.step == Step::Verify));
        Goal {
            set_data: self.engine.config.tag || entry.data().is_some(),
            verify: self.engine.config.verify || retry_verify,
        }
    }

    /// The entry's report when the run has nothing to do for it, as recorded: a finished entry needs
    /// nothing, not even a look at its file, so a resumed batch drains fast; `spinlift verify` leaves
    /// alone what is not registered. (A run that checks registered entries against their files asks
    /// after the check.)
    pub(crate) fn needs_nothing(&self, entry: Entry<'_>, recorded: Option<&Record>) -> Option<Driven> {
        let goal = self.goal(entry, recorded);
        let recorded_state = recorded.map_or(&State::Pending, |r| &r.state);
        let retry = self.retry_failed && matches!(recorded_state, State::Failed { .. });
        let nothing = (recorded_state.is_done(goal) && !retry)
            || (self.registered_only && recorded_state.registered().is_none() && !retry);
        nothing.then(|| {
            let report = EntryReport::from_state(entry.id(), &entry.shown_path(), recorded_state, None);
            Driven { report, state: None, note: None, registered: None }
        })
    }

    /// Takes one entry (the manifest's `index`th) as far as it goes in this run, from what the journal
    /// recorded for it.
    pub(crate) async fn drive(&self, index: usize, entry: Entry<'_>, mut recorded: Option<Record>) -> Driven {
        let engine = &self.engine;
        if self.verify_registered
            && let Some(r) = &recorded
            && r.state.registered().is_some()
        {
            let now = check_source(&self.manifest, &engine.sources, entry).await.ok().map(|s| s.stamp);
            if now.is_none() || now != r.source {
                let note = "recorded as registered from another file (the checkpoint was written for files \
                            elsewhere): uploaded as a new asset";
                self.warn_note(entry, note);
                recorded = None;
            }
        }
        if let Some(driven) = self.needs_nothing(entry, recorded.as_ref()) {
            return driven;
        }
        let goal = self.goal(entry, recorded.as_ref());
        // In flight (for the observer: its latency, the count) from when it is first at work.
        let mut at_work = AtWork::enter(&self.active).await;
        let _in_flight = InFlight::enter(self, entry.id());
        // A fresh entry's first form may have been requested ahead (see `crate::ahead`: local files
        // only), its file checked then: not checked a second time.
        let mut ahead = match (&recorded, &self.ahead) {
            (None, Some(ahead)) if !entry.is_remote() => ahead.take(index).await,
            _ => None,
        };
        let mut source = match &ahead {
            Some(Ok(got)) => Ok(got.source.clone()),
            _ => check_source(&self.manifest, &engine.sources, entry).await,
        };
        // A source that failed retryably (a remote one, busy) is read again before the next attempt,
        // after core's backoff; `fresh` says the check is this attempt's own.
        let mut fresh = true;
        let stamp = source.as_ref().ok().map(|s| s.stamp);
        let resumed = resume(recorded.as_ref(), stamp, self.retry_failed, engine.config.limits, now());
        let (mut asset, mut form) = (resumed.asset.with_goal(goal), resumed.form);
        let mut last_failure_timed_out = false;
        if let Some(r) = &recorded
            && &r.state != asset.state()
        {
            self.checkpoint(entry, &asset, form.as_ref(), stamp).await;
        }
        // A local file, opened and its first chunk read while the form's record went to the disk.
        let mut prepared: Option<Result<Opened, SourceError>> = None;
        let mut registered = None;
        // The record of a form requested ahead, made by the request: not made again.
        let mut recorded_ahead: Option<Durable> = None;
        loop {
            // Only for the upload that comes right after: anything else in between, and it is stale.
            let ready = prepared.take();
            if self.stop.is_cancelled() {
                break;
            }
            let before = asset.state().clone();
            let event = match asset.next_action(now()) {
                Action::Done => break,
                Action::StopBatch(failure) => {
                    self.stop_with(StopReason::Batch(failure));
                    break;
                }
                Action::Backoff { attempt, retry_after_ms } => {
                    let delay = {
                        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                        // Waiting for FileSpin to save an asset is not a failure: it draws nothing from
                        // the retry budget (else a batch of NOT_READY polls dries it up and every
                        // retry then waits the cooldown: measured 39 s for 50 files at 1 s NOT_READY).
                        if asset.waits_for_processing() || self.throttle.try_retry(last_failure_timed_out) {
                            engine.config.backoff.delay(attempt, retry_after_ms, &mut *rng)
                        } else {
                            // The budget is dry: everyone is failing. Wait long, then try anyway.
                            engine.config.backoff.cooldown(&mut *rng)
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => Event::BackedOff,
                        _ = self.stop.cancelled() => break,
                    }
                }
                Action::RequestForm => match (&source, ahead.take()) {
                    // A remote source that was busy: read again after the backoff.
                    (Err(failure), _) if !fresh && failure.step == Step::ReadSource => {
                        source = check_source(&self.manifest, &engine.sources, entry).await;
                        fresh = true;
                        continue;
                    }
                    (Err(failure), _) if busy(failure) => {
                        fresh = false;
                        Event::Failed(failure.clone())
                    }
                    // Checked before FileSpin is asked for an asset id it would never see used.
                    (Err(failure), _) => {
                        asset.fail_source(failure.step, failure.message.clone());
                        self.checkpoint(entry, &asset, None, None).await;
                        continue;
                    }
                    (Ok(_), answer) => {
                        // Requested ahead (its record made already), or now: the same event either way.
                        let got = match answer {
                            Some(Ok(Ahead { form: f, durable, .. })) => {
                                recorded_ahead = Some(durable);
                                Ok(f)
                            }
                            Some(Err(failure)) => Err(failure),
                            None => match self.request_form(entry, || false).await {
                                Some(got) => got,
                                None => break,
                            },
                        };
                        match got {
                            Ok(f) => {
                                let event = issued(&f);
                                form = Some(f);
                                event
                            }
                            Err(failure) => Event::Failed(failure),
                        }
                    }
                },
                Action::Upload { asset_id } => match (form.as_ref(), &source) {
                    (Some(f), Ok(src)) if f.asset_id == asset_id => {
                        let too_slow = self
                            .throttle
                            .expected_upload_ms(src.stamp.size)
                            .is_some_and(|ms| now().plus_millis(ms) > f.expires_at);
                        if too_slow {
                            Event::Failed(Failure::new(
                                Step::Upload,
                                FailureKind::FormExpired,
                                "the form would expire before the upload finishes at the rate seen so far",
                            ))
                        } else if asset.apply(Event::UploadStarted, now()).is_err() {
                            Event::Failed(Failure::new(
                                Step::Upload,
                                FailureKind::FormExpired,
                                "the form expired",
                            ))
                        } else {
                            self.checkpoint(entry, &asset, form.as_ref(), Some(src.stamp)).await;
                            let Some(slot) = self.slot().await else { break };
                            self.upload(f, entry, src, ready, slot).await
                        }
                    }
                    // A remote source that was busy when read again after a change: retried.
                    (_, Err(failure)) if busy(failure) => {
                        let failure = failure.clone();
                        source = check_source(&self.manifest, &engine.sources, entry).await;
                        Event::Failed(failure)
                    }
                    (_, Err(failure)) => {
                        asset.fail_source(Step::Upload, failure.message.clone());
                        self.checkpoint(entry, &asset, None, None).await;
                        continue;
                    }
                    _ => {
                        Event::Failed(Failure::new(Step::Upload, FailureKind::FormExpired, "no usable form"))
                    }
                },
                Action::Register { asset_id, size, md5, started_at, completed_at } => {
                    let own_rate =
                        (size as f64 * 1000.0) / started_at.millis_until(completed_at).max(1) as f64;
                    let rate = self.throttle.upload_rate().unwrap_or(own_rate);
                    let receipt = UploadReceipt { size, md5, started_at, completed_at };
                    let request =
                        RegisterRequest::new(asset_id, &receipt, with_bandwidth(&self.service_data, rate));
                    let Some(slot) = self.slot().await else { break };
                    let result = engine.client.register(&request).await;
                    drop(slot);
                    match result {
                        Ok(RegisterOutcome::Registered) => Event::Registered { already_existed: false },
                        Ok(RegisterOutcome::AlreadyExists) => Event::Registered { already_existed: true },
                        Err(e) => Event::Failed(e.to_failure()),
                    }
                }
                Action::SetData { asset_id } => {
                    let update = DataUpdate {
                        // Checked before the run started (Engine::run).
                        data: crate::data::payload(entry, engine.config.tag, engine.config.batch.as_deref())
                            .unwrap_or_default(),
                        // APPEND is idempotent: a crash between the update and its record, and the
                        // same keys are set again to the same values, nothing else touched.
                        mode: UpdateMode::Append,
                        data_schema_id: self.manifest.data_schema_id,
                        asynchronous: false,
                    };
                    let Some(slot) = self.slot().await else { break };
                    let result = engine.client.update_asset_data(&asset_id, &update).await;
                    drop(slot);
                    match result {
                        // 202: another update of the asset is in progress, or accepted to apply later
                        // ("Update Data"); our keys are applied either way.
                        Ok(UpdateOutcome::Applied | UpdateOutcome::Accepted) => Event::DataSet,
                        Err(e) => Event::Failed(e.to_failure()),
                    }
                }
                Action::Verify { asset_id } => {
                    let Some(slot) = self.slot().await else { break };
                    let result = engine.client.asset_data(&asset_id).await;
                    drop(slot);
                    match result {
                        Ok(data) => Event::Checked {
                            status: data.status.as_str().to_owned(),
                            size: data.size,
                            checksum: data.checksum,
                            reason: data.reason,
                        },
                        Err(e) => Event::Failed(e.to_failure()),
                    }
                }
                Action::LookUp { asset_id } => {
                    // Get Data ("Assets - Data", developers.filespin.io) on an asset id whose
                    // registration a crash may have cut off unrecorded. The docs do not say what it
                    // answers for an id that was issued but never registered: 404 (as the emulator
                    // does) is taken as "not registered"; an answer with the size and checksum as
                    // "registered"; anything else tells nothing (core's resume rules say what follows:
                    // never a second asset, never an upload over a registered asset's object).
                    let Some(slot) = self.slot().await else { break };
                    let result = engine.client.asset_data(&asset_id).await;
                    drop(slot);
                    match result {
                        Ok(data) => Event::Found { size: data.size, checksum: data.checksum },
                        Err(e) if e.status() == Some(404) => Event::NotFound,
                        Err(e) => Event::Failed(Failure { step: Step::LookUp, ..e.to_failure() }),
                    }
                }
                other => unreachable!("core asked for an action this engine does not know: {other:?}"),
            };
            // Failures the engine found itself (an expiring form) sent nothing to any server.
            let sent_request = match &event {
                Event::BackedOff => false,
                Event::Failed(f) => f.kind != FailureKind::FormExpired,
                _ => true,
            };
            if let Event::Failed(failure) = &event {
                tracing::debug!(id = %entry.id(), %failure, "attempt failed");
                last_failure_timed_out = failure.kind == FailureKind::Timeout;
                if failure.kind == FailureKind::SourceChanged {
                    source = check_source(&self.manifest, &engine.sources, entry).await;
                }
            }
            if sent_request {
                let failure = match &event {
                    Event::Failed(f) => Some(f),
                    _ => None,
                };
                if let Some(limit) = self.throttle.outcome(failure, now()) {
                    self.observer.concurrency(limit);
                }
            }
            let failure = match &event {
                Event::Failed(f) => Some(f.clone()),
                _ => None,
            };
            let looked_up = asset.looked_up();
            if let Err(e) = asset.apply(event, now()) {
                // A bug, not a network condition: fail the entry loudly rather than loop.
                asset.fail_source(Step::Upload, format!("internal error: {e}"));
            }
            if let Some(outcome) = asset.looked_up()
                && looked_up.is_none()
            {
                self.looked_up_note(entry, &before, outcome);
            }
            if let Some(f) = failure
                && !asset.state().is_final()
            {
                self.observer.retrying(entry.id(), &f);
            }
            if asset.state() != &before {
                let stamp = source.as_ref().ok().map(|s| s.stamp);
                let ahead = recorded_ahead.take();
                let from_ahead = ahead.is_some();
                let durable = ahead.or_else(|| self.record(entry, &asset, form.as_ref(), stamp));
                match (asset.state(), &source) {
                    // Nothing is left to do but count it: the next entry need not wait for the disk.
                    (state, _) if state.is_done(goal) && state.registered().is_some() => registered = durable,
                    // The upload may not start before the form's record is durable, but a local file
                    // can be opened and read meanwhile. (Not a remote object: its GET would be held
                    // open while the upload waits for its slot.)
                    // Waiting for the disk, the entry is not at work: a spare takes its place. A form
                    // requested ahead is usually on the disk already, and its entry stays at work.
                    (State::FormIssued { .. }, source) if durable.is_some() => {
                        let durable = durable.map(|mut written| match (&mut written).now_or_never() {
                            Some(on_disk) => futures::future::ready(on_disk).boxed(),
                            None => {
                                // A record made ahead waits for a group nobody needed yet: now
                                // someone does.
                                if from_ahead && let Some(journal) = &self.journal {
                                    journal.commit_soon();
                                }
                                at_work.leave();
                                written
                            }
                        });
                        match source {
                            Ok(src) if !src.url.is_remote() => {
                                let (_, file) = tokio::join!(
                                    self.settle(durable),
                                    engine.sources.open(&src.url, &src.meta)
                                );
                                prepared = Some(file);
                            }
                            _ => self.settle(durable).await,
                        }
                        at_work.come_back().await;
                    }
                    _ => self.settle(durable).await,
                }
            }
        }
        if let State::Failed { failure, .. } = asset.state() {
            tracing::info!(id = %entry.id(), path = %entry.shown_path(), %failure, "entry failed");
        }
        let note = if asset.state().is_done(goal) { None } else { self.stop_note() };
        let report = EntryReport::from_state(entry.id(), &entry.shown_path(), asset.state(), note.as_ref());
        Driven { report, state: Some(asset.state().clone()), note, registered }
    }

    /// Tells the user how the look-up of a resumed entry ended, where it matters: an entry whose
    /// source changed since its upload, or one in flight whose registration FileSpin cannot confirm.
    fn looked_up_note(&self, entry: Entry<'_>, from: &State, outcome: LookedUp) {
        let changed = matches!(from, State::Uploaded { .. });
        let note = match (changed, outcome) {
            // In flight when the run stopped: registered already, or not, is an ordinary recovery.
            (false, LookedUp::Registered | LookedUp::NotRegistered) => {
                tracing::info!(path = %entry.shown_path(), ?outcome, "looked up an entry in flight when the run stopped");
                return;
            }
            (false, _) => {
                "in flight when the last run stopped, and FileSpin's answer does not tell whether it was \
                 registered: uploaded again (with the same asset id while its form is valid)"
            }
            (true, LookedUp::Registered) => {
                "changed after it was uploaded, but FileSpin had registered it already (a crash cut off the \
                 record): its asset keeps the version uploaded before; upload the new one as another entry \
                 if it is wanted"
            }
            (true, LookedUp::NotRegistered) => {
                "changed after it was uploaded, before it was registered: uploaded again"
            }
            (true, _) => {
                "changed after it was uploaded, and FileSpin's answer does not tell whether it was \
                 registered: registering the version already in storage rather than creating a second asset"
            }
        };
        self.warn_note(entry, note);
    }

    /// Logs `note` about the entry and keeps it for the run's summary.
    fn warn_note(&self, entry: Entry<'_>, note: &str) {
        tracing::warn!(path = %entry.shown_path(), "{note}");
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{}: {note}", entry.shown_path()));
    }

    /// Uploads the source with `form`, streamed from where it is (a local file, a remote object's GET);
    /// a source that changed while it was sent is not reported as uploaded.
    async fn upload(
        &self,
        form: &UploadForm,
        entry: Entry<'_>,
        src: &Source,
        prepared: Option<Result<Opened, SourceError>>,
        slot: Slot<'_>,
    ) -> Event {
        let observer = &*self.observer;
        let engine = &self.engine;
        let opened = match prepared {
            Some(prepared) => prepared,
            None => engine.sources.open(&src.url, &src.meta).await,
        };
        let result = match opened {
            Ok(opened) => {
                let body = SourceBody {
                    len: opened.meta.size,
                    prefix: opened.prefix,
                    ended: opened.prefix_is_all,
                    reader: opened.reader,
                    name: src.shown(),
                };
                engine.client.upload_source(form, body, entry.filename(), &|n| observer.bytes_sent(n)).await
            }
            Err(e) => {
                drop(slot);
                // The object's GET (or the file's open) failed: a remote source's trouble is its own step.
                let step = if src.url.is_remote() { Step::ReadSource } else { Step::Upload };
                return Event::Failed(crate::source::source_failure(&e, step, &src.url));
            }
        };
        drop(slot);
        match result {
            Ok(r) => {
                self.throttle.upload_took(r.size, r.started_at.millis_until(r.completed_at));
                // A remote object's GET was conditional on its ETag and its length checked: it is the
                // object that was read. A local file is looked at again.
                if let SourceUrl::Local(path) = &src.url {
                    let after = std::fs::metadata(path).map(|m| SourceStamp::of(&m)).ok();
                    if after != Some(src.stamp) {
                        return Event::Failed(Failure::new(
                            Step::Upload,
                            FailureKind::SourceChanged,
                            "the file changed while it was uploaded",
                        ));
                    }
                }
                Event::Uploaded {
                    size: r.size,
                    md5: r.md5,
                    started_at: r.started_at,
                    completed_at: r.completed_at,
                }
            }
            Err(e) => Event::Failed(e.to_failure()),
        }
    }

    /// Requests `entry`'s form ahead of it and records it (see [`crate::ahead`]). `None` when the
    /// entry should request its own: its file cannot be looked at, or the run stopped.
    pub(crate) async fn form_ahead(
        &self,
        entry: Entry<'_>,
        lead: OwnedSemaphorePermit,
        ahead: &FormsAhead,
    ) -> Option<Answer> {
        let src = check_source(&self.manifest, &self.engine.sources, entry).await.ok()?;
        // Another request ahead failed while this one waited for its slot: its entry asks itself.
        Some(match self.request_form(entry, || ahead.stopped()).await? {
            Ok(form) => {
                let mut asset = Asset::new(self.engine.config.limits);
                asset.apply(issued(&form), now()).ok()?;
                // Its entry waits for it before the upload (`must_be_durable`), but not yet: the entry
                // comes for the form later. So the record starts no group of its own; it joins the next
                // one, at the latest when the journal's timer for records nobody waits on comes round,
                // and an entry that finds its record still on the way asks for the group at once
                // (`drive`). Four to five times fewer fsyncs than a group every 10 ms (10,000 × 4 KiB:
                // 137–165 instead of 653).
                let journal = self.journal.as_ref()?;
                let durable: Durable =
                    record(entry.id(), asset.state(), Some(&form), Some(src.stamp), |line| {
                        Box::pin(journal.append_lazy(line, WHENEVER))
                    })?;
                Ok(Ahead::new(form, src, durable, lead))
            }
            Err(failure) => Err(failure),
        })
    }

    /// Asks FileSpin for `entry`'s form, in a request slot. `None` when the run stopped before a slot
    /// was free, or when `give_up` says so once it is.
    async fn request_form(
        &self,
        entry: Entry<'_>,
        give_up: impl FnOnce() -> bool,
    ) -> Option<Result<UploadForm, Failure>> {
        let slot = self.slot().await?;
        if give_up() {
            return None;
        }
        let result = self.engine.client.request_form(entry.filename()).await;
        drop(slot);
        Some(result.map_err(|e| e.to_failure()))
    }

    /// Records the entry's state; waits for the disk where a crash would otherwise cost an asset.
    /// A journal that cannot be written stops the batch: going on would upload without a record.
    async fn checkpoint(
        &self,
        entry: Entry<'_>,
        asset: &Asset,
        form: Option<&UploadForm>,
        stamp: Option<SourceStamp>,
    ) {
        let durable = self.record(entry, asset, form, stamp);
        self.settle(durable).await;
    }

    /// Queues the record of the entry's state. For a state that must be durable before the run goes on,
    /// returns the wait for the disk, which the caller must [`settle`](Self::settle) before the next
    /// step.
    fn record(
        &self,
        entry: Entry<'_>,
        asset: &Asset,
        form: Option<&UploadForm>,
        stamp: Option<SourceStamp>,
    ) -> Option<Durable> {
        let journal = self.journal.as_ref()?;
        let state = asset.state();
        record(entry.id(), state, form, stamp, |line| {
            if state.registered().is_some() {
                // Only the count (the report, the progress) waits for it, not the next entry, and a
                // crash that loses it costs one request on resume (a registration FileSpin answers
                // `ASSET_ID_EXISTS`, or a look-up), never a second asset: it rides with the next group
                // rather than calling one of its own, within the journal's own limit for records
                // nobody waits on now (so no timer is set per record).
                return Some(Box::pin(journal.append_lazy(line, WHENEVER)) as Durable);
            }
            if must_be_durable(state) {
                return Some(Box::pin(journal.append_begin(line)));
            }
            if let Err(e) = journal.append_nowait(line) {
                self.stop_with(StopReason::Journal(e.to_string()));
            }
            None
        })?
    }

    /// Waits until a record is durable; a journal that cannot be written stops the batch.
    pub(crate) async fn settle(&self, durable: Option<Durable>) {
        if let Some(durable) = durable
            && let Err(e) = durable.await
        {
            self.stop_with(StopReason::Journal(e.to_string()));
        }
    }
}

/// The event of a form FileSpin issued.
fn issued(form: &UploadForm) -> Event {
    Event::FormIssued { asset_id: form.asset_id.clone(), expires_at: form.expires_at }
}

/// Whether a source check failed because a remote source was busy or unreachable (worth trying again
/// after a backoff), rather than because the entry cannot be uploaded.
fn busy(failure: &Failure) -> bool {
    failure.step == Step::ReadSource && spinlift_core::classify(failure) == spinlift_core::Disposition::Retry
}

/// `service_data` with `network_bandwidth` filled in from the upload rate this run measured, unless the
/// caller set it. The page's example (developers.filespin.io, "Get Storage Upload URL") shows
/// `"network_bandwidth": 50` and names no unit; we send whole megabits per second (at least 1), the
/// usual unit of a network's bandwidth.
pub(crate) fn with_bandwidth(service_data: &serde_json::Value, bytes_per_second: f64) -> serde_json::Value {
    let mut data = service_data.clone();
    if let Some(object) = data.as_object_mut()
        && !object.contains_key("network_bandwidth")
    {
        let mbps = (bytes_per_second * 8.0 / 1e6).round().max(1.0);
        object.insert("network_bandwidth".into(), serde_json::json!(mbps as u64));
    }
    data
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("manifest", &self.manifest.source).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::with_bandwidth;

    #[test]
    fn network_bandwidth_is_whole_megabits_unless_the_caller_set_it() {
        let data = serde_json::json!({"app": "x"});
        assert_eq!(with_bandwidth(&data, 6_250_000.0)["network_bandwidth"], 50);
        assert_eq!(with_bandwidth(&data, 10.0)["network_bandwidth"], 1);
        let set = serde_json::json!({"app": "x", "network_bandwidth": 7});
        assert_eq!(with_bandwidth(&set, 6_250_000.0)["network_bandwidth"], 7);
    }
}

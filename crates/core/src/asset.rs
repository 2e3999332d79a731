//! One asset's state machine: states, the events that move them, the actions they ask for.

use serde::{Deserialize, Serialize};

use crate::failure::{Disposition, Failure, FailureKind, Step, classify};
use crate::time::UnixMillis;

/// Bounds on how hard one asset tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Attempts at one step (form, upload, register) before the asset fails for good.
    pub max_attempts_per_step: u32,
    /// Fresh forms one asset may ask for after expired or refused ones.
    pub max_fresh_forms: u32,
    /// A form closer to its expiry than this is not used for a new upload: a fresh one is asked for.
    /// For forms that live shorter than four times this, a quarter of their lifetime is used instead.
    pub min_form_validity_ms: i64,
    /// Times FileSpin may answer that the asset is still being saved (`NOT_READY`) before setting its
    /// data or verifying it gives up (each after a backoff, growing to its cap).
    #[serde(default = "default_not_ready_polls")]
    pub max_not_ready_polls: u32,
}

fn default_not_ready_polls() -> u32 {
    30
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attempts_per_step: 10,
            max_fresh_forms: 3,
            min_form_validity_ms: 5 * 60 * 1000,
            max_not_ready_polls: default_not_ready_polls(),
        }
    }
}

/// What a run asks of an asset beyond its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Goal {
    /// Set the entry's data (custom metadata, the batch tag) with one Update Data call.
    pub set_data: bool,
    /// Read the asset back until FileSpin has processed it, and check its size and checksum.
    pub verify: bool,
}

/// Where one asset is on its way into FileSpin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum State {
    /// Nothing has been asked of FileSpin yet (or the last form was dropped).
    Pending,
    /// FileSpin issued an asset id and an upload form; no upload has started with it.
    FormIssued {
        /// The asset id FileSpin issued.
        asset_id: String,
        /// When the form stops being valid.
        expires_at: UnixMillis,
    },
    /// An upload with this form is under way (it may have finished without us hearing it).
    Uploading {
        /// The asset id of the form in use.
        asset_id: String,
        /// When the form stops being valid.
        expires_at: UnixMillis,
    },
    /// The bytes are in storage; the asset is not registered yet.
    Uploaded {
        /// The asset id the bytes were stored under.
        asset_id: String,
        /// Bytes sent.
        size: u64,
        /// MD5 of the bytes sent, lowercase hex.
        md5: String,
        /// When the upload started.
        started_at: UnixMillis,
        /// When storage acknowledged it.
        completed_at: UnixMillis,
    },
    /// FileSpin registered the asset. The upload is finished; a run may still set its data and
    /// verify it ([`Goal`]).
    Registered {
        /// The registered asset id.
        asset_id: String,
        /// Bytes registered.
        size: u64,
        /// MD5 registered, lowercase hex.
        md5: String,
    },
    /// Registered, and the entry's data set on the asset (Update Data, mode APPEND).
    DataSet {
        /// The registered asset id.
        asset_id: String,
        /// Bytes registered.
        size: u64,
        /// MD5 registered, lowercase hex.
        md5: String,
    },
    /// FileSpin processed the asset (status `OK`) and holds the size and checksum uploaded. Final.
    Verified {
        /// The registered asset id.
        asset_id: String,
        /// Bytes registered, as FileSpin reports them.
        size: u64,
        /// MD5, as FileSpin reports it.
        md5: String,
        /// Whether the entry's data was set before the verification.
        data_set: bool,
    },
    /// The asset cannot be uploaded: the failure says why. Final.
    Failed {
        /// The last asset id this entry held, if any.
        asset_id: Option<String>,
        /// The failure that ended it.
        failure: Failure,
        /// What was stored under `asset_id` when the asset failed after its upload (registration
        /// failed): a retry registers these bytes instead of uploading the file as a second asset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uploaded: Option<Uploaded>,
        /// The entry's data was set on the asset before it failed (its verification failed).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        data_set: bool,
    },
}

impl State {
    /// Whether the upload is over: registered (data set, verified) or failed. An asset whose [`Goal`]
    /// asks for more may still move from `Registered` and `DataSet`; [`Asset::next_action`] says.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            State::Registered { .. } | State::DataSet { .. } | State::Verified { .. } | State::Failed { .. }
        )
    }

    /// Whether this state is done for `goal`: nothing is left to ask of FileSpin.
    pub fn is_done(&self, goal: Goal) -> bool {
        match self {
            State::Registered { .. } => !goal.set_data && !goal.verify,
            State::DataSet { .. } => !goal.verify,
            State::Verified { .. } | State::Failed { .. } => true,
            _ => false,
        }
    }

    /// The asset id, size and MD5 of a registered asset (registered, data set or verified).
    pub fn registered(&self) -> Option<(&str, u64, &str)> {
        match self {
            State::Registered { asset_id, size, md5 }
            | State::DataSet { asset_id, size, md5 }
            | State::Verified { asset_id, size, md5, .. } => Some((asset_id, *size, md5)),
            _ => None,
        }
    }

    /// Whether the entry's data was set on the asset.
    pub fn data_set(&self) -> bool {
        matches!(
            self,
            State::DataSet { .. }
                | State::Verified { data_set: true, .. }
                | State::Failed { data_set: true, .. }
        )
    }

    /// The asset id this state holds, if any.
    pub fn asset_id(&self) -> Option<&str> {
        match self {
            State::Pending => None,
            State::FormIssued { asset_id, .. }
            | State::Uploading { asset_id, .. }
            | State::Uploaded { asset_id, .. }
            | State::Registered { asset_id, .. }
            | State::DataSet { asset_id, .. }
            | State::Verified { asset_id, .. } => Some(asset_id),
            State::Failed { asset_id, .. } => asset_id.as_deref(),
        }
    }

    /// A short name for reports: `pending`, `registered` or `failed`.
    pub fn report_status(&self) -> &'static str {
        match self {
            State::Registered { .. } | State::DataSet { .. } | State::Verified { .. } => "registered",
            State::Failed { .. } => "failed",
            _ => "pending",
        }
    }
}

/// Bytes stored under an asset id, as an upload left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    /// Bytes sent.
    pub size: u64,
    /// MD5 of the bytes sent, lowercase hex.
    pub md5: String,
    /// When the upload started.
    pub started_at: UnixMillis,
    /// When storage acknowledged it.
    pub completed_at: UnixMillis,
}

/// What happened to the asset, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
#[non_exhaustive]
pub enum Event {
    /// FileSpin answered `content_storage_url` with this asset id and a form valid until `expires_at`.
    FormIssued {
        /// The asset id FileSpin issued.
        asset_id: String,
        /// When the form stops being valid.
        expires_at: UnixMillis,
    },
    /// The engine is about to send the file with the current form.
    UploadStarted,
    /// Storage acknowledged the upload.
    Uploaded {
        /// Bytes sent.
        size: u64,
        /// MD5 of the bytes sent, lowercase hex.
        md5: String,
        /// When the upload started.
        started_at: UnixMillis,
        /// When storage acknowledged it.
        completed_at: UnixMillis,
    },
    /// FileSpin registered the asset; `already_existed` when it answered `ASSET_ID_EXISTS` for our own id.
    Registered {
        /// Whether FileSpin said the asset id was registered already.
        already_existed: bool,
    },
    /// FileSpin took the entry's data (Update Data answered 200, or 202: accepted, applied eventually).
    DataSet,
    /// FileSpin's data of the asset: its status, and the size and checksum it holds.
    Checked {
        /// `OK`, `NOT_READY`, `ERROR`, `ARCHIVED`, or what else FileSpin said.
        status: String,
        /// The size FileSpin reports, if it does.
        size: Option<u64>,
        /// The checksum (MD5) FileSpin reports, if it does.
        checksum: Option<String>,
        /// FileSpin's reason for an `ERROR`, if it gives one.
        reason: Option<String>,
    },
    /// [`Action::LookUp`]: FileSpin holds the asset as registered, with this size and checksum (`None`
    /// when its answer does not say: then nothing tells whether it is registered).
    Found {
        /// The size FileSpin reports.
        size: Option<u64>,
        /// The checksum (MD5) FileSpin reports.
        checksum: Option<String>,
    },
    /// [`Action::LookUp`]: FileSpin does not know the asset id (404): it was never registered.
    NotFound,
    /// The backoff the machine asked for has been waited out.
    BackedOff,
    /// An attempt failed.
    Failed(Failure),
}

/// What the engine should do next for this asset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Ask FileSpin for an upload form.
    RequestForm,
    /// Upload the file with the form of `asset_id` (send [`Event::UploadStarted`] first).
    Upload {
        /// The asset id whose form to use.
        asset_id: String,
    },
    /// Register the uploaded asset.
    Register {
        /// The asset id to register.
        asset_id: String,
        /// Bytes uploaded.
        size: u64,
        /// MD5 of the bytes, lowercase hex.
        md5: String,
        /// When the upload started.
        started_at: UnixMillis,
        /// When storage acknowledged it.
        completed_at: UnixMillis,
    },
    /// Set the entry's data on the asset (Update Data, APPEND); send [`Event::DataSet`].
    SetData {
        /// The asset id.
        asset_id: String,
    },
    /// Read the asset's data (Get Data); send [`Event::Checked`].
    Verify {
        /// The asset id.
        asset_id: String,
    },
    /// Ask FileSpin whether `asset_id` is registered (Get Data): a resumed entry whose registration a
    /// crash may have cut off unrecorded (one in flight, or one uploaded whose source changed since). Send
    /// [`Event::Found`], [`Event::NotFound`] (404) or [`Event::Failed`] (with [`Step::LookUp`]).
    LookUp {
        /// The asset id.
        asset_id: String,
    },
    /// Wait before the next attempt; `attempt` counts the failures of this step so far (1 = first
    /// retry). Send [`Event::BackedOff`] when done.
    Backoff {
        /// Failures of the current step so far.
        attempt: u32,
        /// The server's `Retry-After`, in milliseconds, if it sent one.
        retry_after_ms: Option<u64>,
    },
    /// Nothing in this batch can succeed: stop the batch. The asset keeps its state for a later run.
    StopBatch(Failure),
    /// The asset is in a final state.
    Done,
}

/// An event that does not fit the asset's state: a bug in the caller, never a network condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event} does not apply to an asset in state {state}")]
pub struct TransitionError {
    /// The state's name.
    pub state: &'static str,
    /// The event's name.
    pub event: &'static str,
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::FormIssued { .. } => "form_issued",
        State::Uploading { .. } => "uploading",
        State::Uploaded { .. } => "uploaded",
        State::Registered { .. } => "registered",
        State::DataSet { .. } => "data_set",
        State::Verified { .. } => "verified",
        State::Failed { .. } => "failed",
    }
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::FormIssued { .. } => "form_issued",
        Event::UploadStarted => "upload_started",
        Event::Uploaded { .. } => "uploaded",
        Event::Registered { .. } => "registered",
        Event::DataSet => "data_set",
        Event::Checked { .. } => "checked",
        Event::Found { .. } => "found",
        Event::NotFound => "not_found",
        Event::BackedOff => "backed_off",
        Event::Failed(_) => "failed",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingBackoff {
    attempt: u32,
    retry_after_ms: Option<u64>,
    /// A wait for FileSpin to finish saving the asset (NOT_READY), not a retry of a failed request.
    not_ready: bool,
}

/// One manifest entry's way into FileSpin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    state: State,
    limits: Limits,
    /// Consecutive failures of the current step.
    attempts: u32,
    /// Fresh forms asked for after the first.
    fresh_forms: u32,
    backoff: Option<PendingBackoff>,
    stop: Option<Failure>,
    /// How long before its expiry the current form is no longer used.
    form_margin_ms: i64,
    goal: Goal,
    /// `NOT_READY` answers so far.
    not_ready: u32,
    /// A resumed asset to look up before anything else (see [`Action::LookUp`]); this is its recorded
    /// form's expiry, if the form was recorded.
    lookup: Option<Option<UnixMillis>>,
    /// How the last look-up ended, for the engine to tell the user.
    looked_up: Option<LookedUp>,
}

/// How [`Action::LookUp`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookedUp {
    /// FileSpin holds the asset registered: the entry is registered with what FileSpin holds (the
    /// version uploaded before the source changed).
    Registered,
    /// FileSpin does not know it: the source is uploaded (again).
    NotRegistered,
    /// FileSpin's answer did not tell: an uploaded asset's version in storage is registered (never a
    /// second asset); one not uploaded is uploaded with its form while it is valid, else a fresh one.
    Unknown,
}

/// What a resumed run knows about an entry besides its recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResumeFacts {
    /// The expiry of the recorded upload form, when the form itself was recorded too.
    pub form_expires_at: Option<UnixMillis>,
    /// The source file's size or modification time differs from when it was uploaded.
    pub source_changed: bool,
    /// The user asked to try entries that failed for good last time again.
    pub retry_failed: bool,
}

impl Asset {
    /// A new asset, nothing done yet.
    pub fn new(limits: Limits) -> Self {
        Self::from_state(State::Pending, limits)
    }

    /// An asset that continues from a recorded state (a resumed run).
    ///
    /// `Uploading` continues as a fresh upload with the same form: S3 overwrites an object POSTed
    /// twice to the same key, so uploading again is safe while the form is valid.
    pub fn from_state(state: State, limits: Limits) -> Self {
        let state = match state {
            State::Uploading { asset_id, expires_at } => State::FormIssued { asset_id, expires_at },
            other => other,
        };
        Asset {
            state,
            limits,
            attempts: 0,
            fresh_forms: 0,
            backoff: None,
            stop: None,
            form_margin_ms: limits.min_form_validity_ms,
            goal: Goal::default(),
            not_ready: 0,
            lookup: None,
            looked_up: None,
        }
    }

    /// How the look-up of a resumed asset whose source changed ended, once it has (see
    /// [`Action::LookUp`]).
    pub fn looked_up(&self) -> Option<LookedUp> {
        self.looked_up
    }

    /// This asset, asked for `goal` beyond its registration.
    #[must_use]
    pub fn with_goal(mut self, goal: Goal) -> Self {
        self.goal = goal;
        self
    }

    /// What is asked of this asset beyond its registration.
    pub fn goal(&self) -> Goal {
        self.goal
    }

    /// Whether the backoff [`Asset::next_action`] asks for is a wait for FileSpin to finish saving the
    /// asset (NOT_READY) rather than a retry after a failure: it is not drawn from a retry budget.
    pub fn waits_for_processing(&self) -> bool {
        self.backoff.is_some_and(|b| b.not_ready)
    }

    /// An asset resumed from the state a previous run recorded, by the resume rules:
    ///
    /// | recorded state | resumed as |
    /// |---|---|
    /// | registered, data set | registered: data set and verified if the [`Goal`] asks, else skipped |
    /// | verified | skipped |
    /// | failed setting data or verifying | failed; with `retry_failed`: registered (set and verified again) |
    /// | failed | failed; with `retry_failed`: registered again if it failed after its upload, else pending |
    /// | uploaded, source unchanged | uploaded: register (`ASSET_ID_EXISTS` for our id counts as done) |
    /// | uploaded, source changed | look the asset id up first ([`Action::LookUp`]): registered (a crash cut off its record) → registered with what FileSpin holds; not known (404) → uploaded again, with the same form while it is valid long enough, else with a fresh one (the old id was never registered); no answer that tells → register what storage holds (never a second asset) |
    /// | form issued; uploading | look the asset id up first: registered (a crash cut off the records of its upload and registration) → registered with what FileSpin holds; otherwise → uploaded with the same form while it is valid long enough (same key: S3 overwrites), else with a fresh one |
    /// | pending | pending |
    pub fn resume(state: State, facts: ResumeFacts, limits: Limits, now: UnixMillis) -> Self {
        let usable = |expires_at: Option<UnixMillis>| {
            expires_at.filter(|e| now.millis_until(*e) >= limits.min_form_validity_ms)
        };
        let state = match state {
            // Setting the data or verifying failed for good (FileSpin still processing, an ERROR, a
            // mismatch): the asset is registered; a retry sets its data and checks it again.
            State::Failed { asset_id: Some(asset_id), uploaded: Some(u), failure, .. }
                if facts.retry_failed && matches!(failure.step, Step::SetData | Step::Verify) =>
            {
                State::Registered { asset_id, size: u.size, md5: u.md5 }
            }
            // A registration that failed for good: its bytes are stored under its asset id, so a
            // retry registers them rather than creating a second asset.
            State::Failed { asset_id: Some(asset_id), uploaded: Some(u), .. } if facts.retry_failed => {
                State::Uploaded {
                    asset_id,
                    size: u.size,
                    md5: u.md5,
                    started_at: u.started_at,
                    completed_at: u.completed_at,
                }
            }
            State::Failed { .. } if facts.retry_failed => State::Pending,
            // Changed since it was uploaded: whether it may be uploaded again depends on whether a
            // crash cut off the record of its registration; the asset is looked up first.
            state @ State::Uploaded { .. } if facts.source_changed => {
                let mut asset = Self::from_state(state, limits);
                asset.lookup = Some(facts.form_expires_at);
                return asset;
            }
            // In flight when the run stopped. The records of its upload and registration may have been
            // lost to the crash (neither is waited for before the next step), so the asset id may be
            // registered already: it is looked up first, so that nothing FileSpin holds is uploaded
            // again, nor a second asset made with a fresh form.
            State::FormIssued { asset_id, .. } | State::Uploading { asset_id, .. } => {
                // Without a usable form, the state's expiry says "ask for a fresh one" once the
                // look-up finds the id unregistered. A changed source may go up under the same id: it
                // was never registered.
                let expires_at = usable(facts.form_expires_at).unwrap_or(UnixMillis(0));
                let mut asset = Self::from_state(State::FormIssued { asset_id, expires_at }, limits);
                asset.lookup = Some(facts.form_expires_at);
                return asset;
            }
            other => other,
        };
        Self::from_state(state, limits)
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The limits this asset runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What to do next, at time `now`.
    pub fn next_action(&self, now: UnixMillis) -> Action {
        if let Some(failure) = &self.stop {
            return Action::StopBatch(failure.clone());
        }
        if let Some(b) = self.backoff {
            return Action::Backoff { attempt: b.attempt, retry_after_ms: b.retry_after_ms };
        }
        match &self.state {
            State::Pending => Action::RequestForm,
            // Resumed: a look-up comes before anything else.
            State::Uploaded { asset_id, .. } | State::FormIssued { asset_id, .. }
                if self.lookup.is_some() =>
            {
                Action::LookUp { asset_id: asset_id.clone() }
            }
            State::FormIssued { asset_id, expires_at } => {
                if now.millis_until(*expires_at) <= self.form_margin_ms {
                    Action::RequestForm
                } else {
                    Action::Upload { asset_id: asset_id.clone() }
                }
            }
            // The engine sent UploadStarted and is waiting for the upload's outcome.
            State::Uploading { asset_id, .. } => Action::Upload { asset_id: asset_id.clone() },
            State::Uploaded { asset_id, size, md5, started_at, completed_at } => Action::Register {
                asset_id: asset_id.clone(),
                size: *size,
                md5: md5.clone(),
                started_at: *started_at,
                completed_at: *completed_at,
            },
            State::Registered { asset_id, .. } if self.goal.set_data => {
                Action::SetData { asset_id: asset_id.clone() }
            }
            State::Registered { asset_id, .. } | State::DataSet { asset_id, .. } if self.goal.verify => {
                Action::Verify { asset_id: asset_id.clone() }
            }
            State::Registered { .. }
            | State::DataSet { .. }
            | State::Verified { .. }
            | State::Failed { .. } => Action::Done,
        }
    }

    /// Tells the machine what happened. On error the state is unchanged.
    pub fn apply(&mut self, event: Event, now: UnixMillis) -> Result<(), TransitionError> {
        let reject = |state: &State, event: &Event| TransitionError {
            state: state_name(state),
            event: event_name(event),
        };
        if self.state.is_done(self.goal) || self.stop.is_some() {
            return Err(reject(&self.state, &event));
        }
        match (&self.state, event) {
            (_, Event::BackedOff) if self.backoff.is_some() => {
                self.backoff = None;
            }
            (_, event) if self.backoff.is_some() => return Err(reject(&self.state, &event)),
            // A form nobody uploaded with may be replaced (it came too close to expiry unused); that
            // counts as a fresh form, so forms that always arrive nearly expired end the asset.
            (State::Pending | State::FormIssued { .. }, Event::FormIssued { asset_id, expires_at }) => {
                if matches!(self.state, State::FormIssued { .. }) {
                    self.fresh_forms += 1;
                    if self.fresh_forms > self.limits.max_fresh_forms {
                        let message = format!(
                            "gave up after {} fresh upload forms: each expired too soon to be used",
                            self.fresh_forms
                        );
                        self.give_up(Failure::new(Step::RequestForm, FailureKind::FormExpired, message));
                        return Ok(());
                    }
                }
                let lifetime = now.millis_until(expires_at);
                self.form_margin_ms = self.limits.min_form_validity_ms.min(lifetime / 4);
                self.state = State::FormIssued { asset_id, expires_at };
                self.attempts = 0;
            }
            (State::FormIssued { asset_id, expires_at }, Event::UploadStarted) => {
                if now.millis_until(*expires_at) <= 0 {
                    return Err(reject(&self.state, &Event::UploadStarted));
                }
                self.state = State::Uploading { asset_id: asset_id.clone(), expires_at: *expires_at };
            }
            (State::Uploading { asset_id, .. }, Event::Uploaded { size, md5, started_at, completed_at }) => {
                self.state =
                    State::Uploaded { asset_id: asset_id.clone(), size, md5, started_at, completed_at };
                self.attempts = 0;
            }
            (
                State::Uploaded { asset_id, .. } | State::FormIssued { asset_id, .. },
                Event::Found { size: found, checksum },
            ) if self.lookup.is_some() => {
                self.lookup = None;
                self.attempts = 0;
                self.looked_up = Some(match (found, checksum) {
                    // Registered: it is FileSpin's size and checksum that the asset holds.
                    (Some(found), Some(checksum)) => {
                        self.state =
                            State::Registered { asset_id: asset_id.clone(), size: found, md5: checksum };
                        LookedUp::Registered
                    }
                    // An answer without them tells nothing: register what storage holds (or, not
                    // uploaded yet, upload as if it were unknown).
                    _ => LookedUp::Unknown,
                });
            }
            // Not registered (or no answer that tells): upload with the recorded form while it is valid
            // long enough, else ask for a fresh one (the state's expiry says which).
            (State::FormIssued { .. }, Event::NotFound) if self.lookup.is_some() => {
                self.lookup = None;
                self.attempts = 0;
                self.looked_up = Some(LookedUp::NotRegistered);
            }
            (State::Uploaded { asset_id, .. }, Event::NotFound) if self.lookup.is_some() => {
                let limits = self.limits;
                let form = self.lookup.take().flatten();
                self.attempts = 0;
                self.looked_up = Some(LookedUp::NotRegistered);
                // Never registered: upload the changed source again, under the same asset id while its
                // form is valid long enough (S3 overwrites), else under a fresh one.
                self.state = match form.filter(|e| now.millis_until(*e) >= limits.min_form_validity_ms) {
                    Some(expires_at) => State::FormIssued { asset_id: asset_id.clone(), expires_at },
                    None => State::Pending,
                };
            }
            (State::Uploaded { asset_id, size, md5, .. }, Event::Registered { .. }) => {
                self.state = State::Registered { asset_id: asset_id.clone(), size: *size, md5: md5.clone() };
                self.attempts = 0;
            }
            (State::Registered { asset_id, size, md5 }, Event::DataSet) if self.goal.set_data => {
                self.state = State::DataSet { asset_id: asset_id.clone(), size: *size, md5: md5.clone() };
                self.attempts = 0;
                self.not_ready = 0;
            }
            (
                State::Registered { .. } | State::DataSet { .. },
                Event::Checked { status, size, checksum, reason },
            ) if self.goal.verify
                && !(self.goal.set_data && matches!(self.state, State::Registered { .. })) =>
            {
                self.checked(&status, size, checksum.as_deref(), reason);
            }
            (_, Event::Failed(failure)) => self.fail(failure),
            (state, event) => return Err(reject(state, &event)),
        }
        Ok(())
    }

    /// What FileSpin's data of the asset says: processed and the same bytes, still being saved, or
    /// not (developers.filespin.io, "Asset Data Format": `status` is OK, NOT_READY, ERROR or
    /// ARCHIVED).
    fn checked(&mut self, status: &str, size: Option<u64>, checksum: Option<&str>, reason: Option<String>) {
        let Some((asset_id, our_size, our_md5)) = self.state.registered() else { return };
        let (asset_id, our_size, our_md5) = (asset_id.to_owned(), our_size, our_md5.to_owned());
        let fail = |kind: FailureKind, message: String| Failure::new(Step::Verify, kind, message);
        match status {
            "NOT_READY" => self.not_ready(Failure::new(
                Step::Verify,
                FailureKind::Processing,
                "FileSpin still reports the asset NOT_READY (being saved)",
            )),
            // An archived asset was processed before it was archived: its size and checksum still
            // tell whether it holds our bytes.
            "OK" | "ARCHIVED" => {
                let mut differences = Vec::new();
                match size {
                    Some(size) if size != our_size => {
                        differences.push(format!("size {size} where {our_size} bytes were uploaded"))
                    }
                    None => differences.push("no size".to_owned()),
                    _ => {}
                }
                match checksum {
                    Some(sum) if !sum.eq_ignore_ascii_case(&our_md5) => {
                        differences.push(format!("checksum {sum} where the MD5 uploaded is {our_md5}"))
                    }
                    None => differences.push("no checksum".to_owned()),
                    _ => {}
                }
                if differences.is_empty() {
                    let data_set = matches!(self.state, State::DataSet { .. });
                    self.state = State::Verified { asset_id, size: our_size, md5: our_md5, data_set };
                    self.attempts = 0;
                } else {
                    let message = format!("FileSpin holds {}", differences.join(" and "));
                    self.fail(fail(FailureKind::Mismatch, message));
                }
            }
            "ERROR" => {
                let message = match reason {
                    Some(reason) => format!("FileSpin could not process the file (status ERROR): {reason}"),
                    None => "FileSpin could not process the file (status ERROR, no reason given)".to_owned(),
                };
                self.fail(fail(FailureKind::Processing, message));
            }
            other => {
                let message = format!("FileSpin reports the asset's status as {other:?}, not OK");
                self.fail(fail(FailureKind::Processing, message));
            }
        }
    }

    /// FileSpin is still saving the asset: wait and ask again, up to [`Limits::max_not_ready_polls`]
    /// times.
    fn not_ready(&mut self, failure: Failure) {
        self.not_ready += 1;
        if self.not_ready > self.limits.max_not_ready_polls {
            let message = format!(
                "gave up after {} checks: {}; run `spinlift verify` later",
                self.not_ready, failure.message
            );
            self.give_up(Failure { message, ..failure });
            return;
        }
        self.backoff = Some(PendingBackoff {
            attempt: self.not_ready,
            retry_after_ms: failure.retry_after_ms,
            not_ready: true,
        });
    }

    fn fail(&mut self, failure: Failure) {
        // A look-up that cannot tell (an answer the API does not document, retries spent) goes on as if
        // it had not been made: an uploaded asset registers what storage holds, one in flight uploads
        // with its form while valid, else a fresh one (the state's expiry says which); never a failure.
        if self.lookup.is_some() {
            match classify(&failure) {
                Disposition::StopBatch => self.stop = Some(failure),
                Disposition::Retry if self.attempts + 1 < self.limits.max_attempts_per_step => {
                    self.attempts += 1;
                    self.backoff = Some(PendingBackoff {
                        attempt: self.attempts,
                        retry_after_ms: failure.retry_after_ms,
                        not_ready: false,
                    });
                }
                _ => {
                    self.lookup = None;
                    self.attempts = 0;
                    self.looked_up = Some(LookedUp::Unknown);
                }
            }
            return;
        }
        // "Update Data" answers 400 while the asset is NOT_READY: a wait, not an attempt that failed.
        if failure.step == Step::SetData
            && matches!(&failure.kind, FailureKind::Status { status: 400, code: Some(c) } if c == "NOT_READY")
        {
            self.not_ready(failure);
            return;
        }
        let mut disposition = classify(&failure);
        // Once the bytes are stored under an asset id, that id is the entry's: a fresh form would
        // mean a second upload of the same file.
        if matches!(self.state, State::Uploaded { .. }) && disposition == Disposition::FreshForm {
            disposition = Disposition::FailAsset;
        }
        match disposition {
            Disposition::StopBatch => self.stop = Some(failure),
            Disposition::FailAsset => self.give_up(failure),
            Disposition::Retry => {
                self.attempts += 1;
                if self.attempts >= self.limits.max_attempts_per_step {
                    let message = format!("gave up after {} attempts: {}", self.attempts, failure.message);
                    self.give_up(Failure { message, ..failure });
                    return;
                }
                // A failed upload leaves the form unused again.
                if let State::Uploading { asset_id, expires_at } = &self.state {
                    self.state = State::FormIssued { asset_id: asset_id.clone(), expires_at: *expires_at };
                }
                self.backoff = Some(PendingBackoff {
                    attempt: self.attempts,
                    retry_after_ms: failure.retry_after_ms,
                    not_ready: false,
                });
            }
            Disposition::FreshForm => {
                self.fresh_forms += 1;
                if self.fresh_forms > self.limits.max_fresh_forms {
                    let message =
                        format!("gave up after {} fresh upload forms: {}", self.fresh_forms, failure.message);
                    self.give_up(Failure { message, ..failure });
                    return;
                }
                self.state = State::Pending;
                self.attempts = 0;
            }
        }
    }

    fn give_up(&mut self, failure: Failure) {
        let asset_id = self.state.asset_id().map(str::to_owned);
        let uploaded = match &self.state {
            State::Uploaded { size, md5, started_at, completed_at, .. } => Some(Uploaded {
                size: *size,
                md5: md5.clone(),
                started_at: *started_at,
                completed_at: *completed_at,
            }),
            // Registered: what a retry needs to set the data and verify again (it does not register).
            State::Registered { size, md5, .. } | State::DataSet { size, md5, .. } => Some(Uploaded {
                size: *size,
                md5: md5.clone(),
                started_at: UnixMillis(0),
                completed_at: UnixMillis(0),
            }),
            _ => None,
        };
        let data_set = self.state.data_set();
        self.state = State::Failed { asset_id, failure, uploaded, data_set };
        self.backoff = None;
    }

    /// Fails the asset for a reason found outside the three steps (e.g. the source cannot be read).
    pub fn fail_source(&mut self, step: Step, message: impl Into<String>) {
        if !self.state.is_final() {
            self.fail(Failure::new(step, FailureKind::Source, message));
        }
    }
}

#[cfg(test)]
mod tests;

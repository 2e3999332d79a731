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
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_attempts_per_step: 10, max_fresh_forms: 3, min_form_validity_ms: 5 * 60 * 1000 }
    }
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
    /// FileSpin registered the asset. Final.
    Registered {
        /// The registered asset id.
        asset_id: String,
        /// Bytes registered.
        size: u64,
        /// MD5 registered, lowercase hex.
        md5: String,
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
    },
}

impl State {
    /// Whether no event can move this state any more.
    pub fn is_final(&self) -> bool {
        matches!(self, State::Registered { .. } | State::Failed { .. })
    }

    /// The asset id this state holds, if any.
    pub fn asset_id(&self) -> Option<&str> {
        match self {
            State::Pending => None,
            State::FormIssued { asset_id, .. }
            | State::Uploading { asset_id, .. }
            | State::Uploaded { asset_id, .. }
            | State::Registered { asset_id, .. } => Some(asset_id),
            State::Failed { asset_id, .. } => asset_id.as_deref(),
        }
    }

    /// A short name for reports: `pending`, `registered` or `failed`.
    pub fn report_status(&self) -> &'static str {
        match self {
            State::Registered { .. } => "registered",
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
        State::Failed { .. } => "failed",
    }
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::FormIssued { .. } => "form_issued",
        Event::UploadStarted => "upload_started",
        Event::Uploaded { .. } => "uploaded",
        Event::Registered { .. } => "registered",
        Event::BackedOff => "backed_off",
        Event::Failed(_) => "failed",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingBackoff {
    attempt: u32,
    retry_after_ms: Option<u64>,
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
        }
    }

    /// An asset resumed from the state a previous run recorded, by the resume rules:
    ///
    /// | recorded state | resumed as |
    /// |---|---|
    /// | registered | registered: skipped |
    /// | failed | failed; with `retry_failed`: registered again if it failed after its upload, else pending |
    /// | uploaded, source unchanged | uploaded: register (`ASSET_ID_EXISTS` for our id counts as done) |
    /// | uploaded, source changed | upload again with the same form while it is valid long enough, else register what storage holds (never a second asset) |
    /// | form issued; uploading | upload again with the same form (same key: S3 overwrites) while it is valid long enough, else pending (a fresh form) |
    /// | pending | pending |
    pub fn resume(state: State, facts: ResumeFacts, limits: Limits, now: UnixMillis) -> Self {
        let usable = |expires_at: Option<UnixMillis>| {
            expires_at.filter(|e| now.millis_until(*e) >= limits.min_form_validity_ms)
        };
        let state = match state {
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
            // Changed since it was uploaded: upload the new bytes under the same asset id while its form
            // is valid (S3 overwrites). With the form expired, register what storage holds rather than
            // create a second asset; the engine tells the user.
            State::Uploaded { asset_id, size, md5, started_at, completed_at } if facts.source_changed => {
                match usable(facts.form_expires_at) {
                    Some(expires_at) => State::FormIssued { asset_id, expires_at },
                    None => State::Uploaded { asset_id, size, md5, started_at, completed_at },
                }
            }
            State::FormIssued { asset_id, .. } | State::Uploading { asset_id, .. } => {
                match usable(facts.form_expires_at) {
                    Some(expires_at) => State::FormIssued { asset_id, expires_at },
                    None => State::Pending,
                }
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
            State::Registered { .. } | State::Failed { .. } => Action::Done,
        }
    }

    /// Tells the machine what happened. On error the state is unchanged.
    pub fn apply(&mut self, event: Event, now: UnixMillis) -> Result<(), TransitionError> {
        let reject = |state: &State, event: &Event| TransitionError {
            state: state_name(state),
            event: event_name(event),
        };
        if self.state.is_final() || self.stop.is_some() {
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
            (State::Uploaded { asset_id, size, md5, .. }, Event::Registered { .. }) => {
                self.state = State::Registered { asset_id: asset_id.clone(), size: *size, md5: md5.clone() };
                self.attempts = 0;
            }
            (_, Event::Failed(failure)) => self.fail(failure),
            (state, event) => return Err(reject(state, &event)),
        }
        Ok(())
    }

    fn fail(&mut self, failure: Failure) {
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
                self.backoff =
                    Some(PendingBackoff { attempt: self.attempts, retry_after_ms: failure.retry_after_ms });
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
            _ => None,
        };
        self.state = State::Failed { asset_id, failure, uploaded };
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

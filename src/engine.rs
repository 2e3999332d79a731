//! The engine: drives every entry's state machine through the transport, a bounded number at a time.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt;
use spinlift_core::{Action, Asset, Event, Failure, FailureKind, Limits, Step};
use spinlift_manifest::{Entry, Manifest, ManifestError};
use spinlift_transport::{
    ClientConfig, FileSpinClient, RegisterOutcome, RegisterRequest, Secret, UploadForm, UploadReceipt,
};
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffConfig;
use crate::clock::now;
use crate::error::EngineError;
use crate::observer::Observer;
use crate::report::{EntryReport, RunReport, StopReason};

/// The largest object an S3 POST upload accepts (AWS S3: "POST Object", 5 GB).
pub const MAX_POST_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// How a run is configured. Build it with [`EngineConfig::new`] and adjust the fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// FileSpin's base URL, e.g. `https://app.filespin.io`.
    pub api_url: String,
    /// The FileSpin API key (never printed).
    pub api_key: Secret,
    /// Assets in flight at once.
    pub concurrency: usize,
    /// Per-asset attempt limits.
    pub limits: Limits,
    /// Backoff between attempts.
    pub backoff: BackoffConfig,
    /// `service_data` sent with each registration when the manifest has none.
    pub service_data: serde_json::Value,
}

impl EngineConfig {
    /// A configuration with defaults: 16 assets in flight, core's default limits.
    pub fn new(api_url: impl Into<String>, api_key: Secret) -> Self {
        EngineConfig {
            api_url: api_url.into(),
            api_key,
            concurrency: 16,
            limits: Limits::default(),
            backoff: BackoffConfig::default(),
            service_data: serde_json::json!({"app": "spinlift", "build": env!("CARGO_PKG_VERSION")}),
        }
    }
}

/// Uploads a manifest's entries into FileSpin.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use spinlift::{Engine, EngineConfig, Secret, Silent};
/// use tokio_util::sync::CancellationToken;
///
/// let manifest = spinlift::Manifest::load("batch.json".as_ref())?;
/// let config = EngineConfig::new("https://app.filespin.io", Secret::new(std::env::var("FILESPIN_API_KEY")?));
/// let engine = Engine::new(config)?;
/// let report = engine.run(&manifest, &Silent, CancellationToken::new()).await;
/// println!("{} registered, {} failed", report.registered(), report.failed());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    client: FileSpinClient,
    config: EngineConfig,
}

/// What the entries of one run share.
struct Shared<'a> {
    engine: &'a Engine,
    manifest: &'a Manifest,
    observer: &'a dyn Observer,
    /// Cancelled by the caller, or by the first batch-wide failure.
    stop: CancellationToken,
    stop_reason: Mutex<Option<StopReason>>,
    service_data: serde_json::Value,
}

impl Engine {
    /// An engine with its own HTTP client.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        if config.concurrency == 0 {
            return Err(EngineError::Config("concurrency must be at least 1".into()));
        }
        let mut client_config = ClientConfig::new(config.api_url.clone(), config.api_key.clone());
        client_config.max_concurrent_uploads = config.concurrency;
        let client = FileSpinClient::new(client_config)?;
        Ok(Engine { client, config })
    }

    /// The configuration this engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Uploads every entry of `manifest`; returns when all are finished, the batch stopped, or
    /// `cancel` was cancelled (in-flight requests finish; no new request starts).
    pub async fn run(
        &self,
        manifest: &Manifest,
        observer: &dyn Observer,
        cancel: CancellationToken,
    ) -> RunReport {
        let started = Instant::now();
        let shared = Shared {
            engine: self,
            manifest,
            observer,
            stop: cancel.child_token(),
            stop_reason: Mutex::new(None),
            service_data: manifest.service_data.clone().unwrap_or_else(|| self.config.service_data.clone()),
        };
        let mut entries: Vec<Option<EntryReport>> = vec![None; manifest.entries.len()];
        let mut outcomes = futures::stream::iter(manifest.entries.iter().enumerate())
            .map(|(i, entry)| {
                let shared = &shared;
                async move { (i, shared.drive(entry).await) }
            })
            .buffer_unordered(self.config.concurrency);
        while let Some((i, report)) = outcomes.next().await {
            observer.finished(&report);
            entries[i] = Some(report);
        }
        drop(outcomes);
        let mut stopped = shared.stop_reason.lock().map(|mut g| g.take()).unwrap_or(None);
        if stopped.is_none() && cancel.is_cancelled() {
            stopped = Some(StopReason::Cancelled);
        }
        RunReport {
            entries: entries.into_iter().map(|e| e.expect("every entry is driven once")).collect(),
            stopped,
            elapsed: started.elapsed(),
        }
    }
}

impl Shared<'_> {
    fn stop_batch(&self, failure: Failure) {
        if let Ok(mut reason) = self.stop_reason.lock()
            && reason.is_none()
        {
            tracing::error!(%failure, "stopping the batch");
            *reason = Some(StopReason::Batch(failure));
        }
        self.stop.cancel();
    }

    fn stop_note(&self) -> Option<Failure> {
        match self.stop_reason.lock().ok()?.as_ref()? {
            StopReason::Batch(f) => Some(f.clone()),
            StopReason::Cancelled => None,
        }
    }

    /// Takes one entry as far as it goes in this run.
    async fn drive(&self, entry: &Entry) -> EntryReport {
        let engine = self.engine;
        let mut asset = Asset::new(engine.config.limits);
        let mut form: Option<UploadForm> = None;
        let mut source: Option<PathBuf> = None;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let action = asset.next_action(now());
            let event = match action {
                Action::Done => break,
                Action::StopBatch(failure) => {
                    self.stop_batch(failure);
                    break;
                }
                Action::Backoff { attempt, retry_after_ms } => {
                    let delay = engine.config.backoff.delay(attempt, retry_after_ms);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => Event::BackedOff,
                        _ = self.stop.cancelled() => break,
                    }
                }
                Action::RequestForm => {
                    // Check the source before asking FileSpin for an asset id it would never use.
                    if source.is_none() {
                        match self.check_source(entry) {
                            Ok(path) => source = Some(path),
                            Err(message) => {
                                asset.fail_source(Step::RequestForm, message);
                                continue;
                            }
                        }
                    }
                    match engine.client.request_form(&entry.filename).await {
                        Ok(f) => {
                            let event =
                                Event::FormIssued { asset_id: f.asset_id.clone(), expires_at: f.expires_at };
                            form = Some(f);
                            event
                        }
                        Err(e) => Event::Failed(e.to_failure()),
                    }
                }
                Action::Upload { asset_id } => match (form.as_ref(), source.as_ref()) {
                    (Some(f), Some(path)) if f.asset_id == asset_id => {
                        if asset.apply(Event::UploadStarted, now()).is_err() {
                            // The form expired between the check and now: ask for a fresh one.
                            Event::Failed(Failure::new(
                                Step::Upload,
                                FailureKind::FormExpired,
                                "the form expired",
                            ))
                        } else {
                            let observer = self.observer;
                            match engine.client.upload_file(f, path, &|n| observer.bytes_sent(n)).await {
                                Ok(r) => Event::Uploaded {
                                    size: r.size,
                                    md5: r.md5,
                                    started_at: r.started_at,
                                    completed_at: r.completed_at,
                                },
                                Err(e) => Event::Failed(e.to_failure()),
                            }
                        }
                    }
                    // The form lives only in memory: without it, ask for a fresh one.
                    _ => {
                        Event::Failed(Failure::new(Step::Upload, FailureKind::FormExpired, "no usable form"))
                    }
                },
                Action::Register { asset_id, size, md5, started_at, completed_at } => {
                    let receipt = UploadReceipt { size, md5, started_at, completed_at };
                    let request = RegisterRequest::new(asset_id, &receipt, self.service_data.clone());
                    match engine.client.register(&request).await {
                        Ok(RegisterOutcome::Registered) => Event::Registered { already_existed: false },
                        Ok(RegisterOutcome::AlreadyExists) => Event::Registered { already_existed: true },
                        Err(e) => Event::Failed(e.to_failure()),
                    }
                }
                other => unreachable!("core asked for an action this engine does not know: {other:?}"),
            };
            if let Event::Failed(failure) = &event {
                tracing::debug!(id = %entry.id, %failure, "attempt failed");
                self.observer.retrying(&entry.id, failure);
            }
            if let Err(e) = asset.apply(event, now()) {
                // A bug, not a network condition: fail the entry loudly rather than loop.
                asset.fail_source(Step::Upload, format!("internal error: {e}"));
            }
        }
        let note = if asset.state().is_final() { None } else { self.stop_note() };
        EntryReport::from_state(&entry.id, &entry.path, asset.state(), note.as_ref())
    }

    /// The entry's file, resolved inside the root, as long as it is a regular file S3 can take.
    fn check_source(&self, entry: &Entry) -> Result<PathBuf, String> {
        let path = self.manifest.resolve(entry).map_err(|e| match e {
            ManifestError::Source { source, .. } => format!("cannot read the file: {source}"),
            other => other.to_string(),
        })?;
        let meta = std::fs::metadata(&path).map_err(|e| format!("cannot read the file: {e}"))?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        if meta.len() > MAX_POST_OBJECT_SIZE {
            return Err(format!("{} bytes is more than an S3 POST upload takes (5 GiB)", meta.len()));
        }
        Ok(path)
    }
}

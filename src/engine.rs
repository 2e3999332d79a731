//! The engine: drives every entry's state machine through the transport, a bounded number at a time.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use spinlift_core::{Limits, State};
use spinlift_manifest::Manifest;
use spinlift_manifest::journal::{Journal, JournalOptions, fingerprint_ids, replay};
use spinlift_transport::{ClientConfig, FileSpinClient, Secret};
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffConfig;
use crate::checkpoint::{Checkpoint, reconcile_notes};
use crate::drive::Run;
use crate::error::EngineError;
use crate::observer::Observer;
use crate::report::{EntryReport, RunReport, StopReason};
use crate::throttle::Throttle;

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
    /// FileSpin API requests per second over both API calls (FileSpin documents 30 for most APIs,
    /// developers.filespin.io "Rate limits"); `None` for no limit.
    pub api_rps: Option<NonZeroU32>,
    /// S3 POSTs started per second; `None` for no limit.
    pub s3_rps: Option<NonZeroU32>,
    /// Upload bandwidth over all uploads together, bytes per second; `None` for no limit.
    pub bandwidth: Option<NonZeroU64>,
    /// Allow plain `http://` beyond loopback (the API key and forms then cross the network in clear).
    pub allow_http: bool,
}

impl EngineConfig {
    /// A configuration with defaults: 16 assets in flight, 30 API requests/s, core's default limits.
    pub fn new(api_url: impl Into<String>, api_key: Secret) -> Self {
        EngineConfig {
            api_url: api_url.into(),
            api_key,
            concurrency: 16,
            limits: Limits::default(),
            backoff: BackoffConfig::default(),
            service_data: serde_json::json!({"app": "spinlift", "build": env!("CARGO_PKG_VERSION")}),
            api_rps: NonZeroU32::new(30),
            s3_rps: None,
            bandwidth: None,
            allow_http: false,
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
/// let report = engine.run(&manifest, &Default::default(), &Silent, CancellationToken::new()).await?;
/// println!("{} registered, {} failed", report.registered(), report.failed());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) client: FileSpinClient,
    pub(crate) config: EngineConfig,
}

/// How one run goes, beyond the engine's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Where the checkpoint journal lives.
    pub checkpoint: Checkpoint,
    /// Entries that failed for good in an earlier run are tried again.
    pub retry_failed: bool,
    /// After cancellation, how long requests in flight may take to finish before they are dropped
    /// (their entries resume from the journal next time).
    pub grace: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            checkpoint: Checkpoint::BesideManifest,
            retry_failed: false,
            grace: Duration::from_secs(10),
        }
    }
}

/// Takes the checkpoint's lock file (`<checkpoint>.lock`), or says which run holds it.
fn lock_checkpoint(path: &std::path::Path) -> Result<std::fs::File, EngineError> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| EngineError::Config(format!("cannot create {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Config(format!(
            "checkpoint {} is in use by another spinlift run; wait for it to finish",
            path.display()
        ))),
        // A file system without locks: run unprotected rather than not at all.
        Err(std::fs::TryLockError::Error(_)) => Ok(file),
    }
}

impl Engine {
    /// An engine with its own HTTP client.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        if config.concurrency == 0 {
            return Err(EngineError::Config("concurrency must be at least 1".into()));
        }
        let mut client_config = ClientConfig::new(config.api_url.clone(), config.api_key.clone());
        client_config.max_concurrent_uploads = config.concurrency;
        client_config.api_rps = config.api_rps;
        client_config.s3_rps = config.s3_rps;
        client_config.bandwidth = config.bandwidth;
        client_config.allow_http = config.allow_http;
        let client = FileSpinClient::new(client_config)?;
        Ok(Engine { client, config })
    }

    /// The configuration this engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Uploads every entry of `manifest` that is not registered yet, carrying on from the checkpoint
    /// journal of an earlier run. Returns when all entries are finished, the batch stopped, or `cancel`
    /// was cancelled (no new request starts; requests in flight get `options.grace` to finish).
    ///
    /// Errors only when the run cannot start (the journal is damaged, locked by another run, or cannot
    /// be written); what happens to single entries is in the report.
    pub async fn run(
        &self,
        manifest: &Manifest,
        options: &RunOptions,
        observer: &dyn Observer,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        let ids: Vec<&str> = manifest.entries.iter().map(|e| e.id.as_str()).collect();
        let fingerprint = fingerprint_ids(ids.iter().copied());
        let journal_path = options.checkpoint.path_for(&manifest.source);
        let mut notes = Vec::new();
        let mut _lock = None;
        let (journal, mut replayed) = match &journal_path {
            Some(path) => {
                // Held from before the replay to the end of the run: a second run on the same checkpoint
                // must not replay a journal that is still being written, then overwrite it.
                _lock = Some(lock_checkpoint(path)?);
                let replayed = replay(path)?;
                if let Some(r) = &replayed {
                    notes = reconcile_notes(r, &ids, &fingerprint);
                }
                for note in &notes {
                    tracing::warn!("{note}");
                }
                let journal =
                    Journal::open(path, &fingerprint, replayed.as_ref(), JournalOptions::default()).await?;
                (Some(journal), replayed.unwrap_or_default())
            }
            None => (None, Default::default()),
        };
        drop(ids);

        let run = Run {
            engine: self,
            manifest,
            observer,
            journal: journal.clone(),
            retry_failed: options.retry_failed,
            stop: cancel.child_token(),
            stop_reason: Mutex::new(None),
            service_data: manifest.service_data.clone().unwrap_or_else(|| self.config.service_data.clone()),
            throttle: Throttle::new(self.config.concurrency),
            notes: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::from_os_rng()),
        };
        let mut entries: Vec<Option<EntryReport>> = vec![None; manifest.entries.len()];
        {
            let run = &run;
            let mut outcomes = futures::stream::iter(manifest.entries.iter().enumerate())
                .map(|(i, entry)| {
                    let recorded = replayed.take(&entry.id);
                    async move { (i, run.drive(entry, recorded).await) }
                })
                .buffer_unordered(self.config.concurrency);
            let mut grace_over = std::pin::pin!(async {
                run.stop.cancelled().await;
                tokio::time::sleep(options.grace).await;
            });
            loop {
                tokio::select! {
                    next = outcomes.next() => match next {
                        Some((i, report)) => {
                            observer.finished(&report);
                            entries[i] = Some(report);
                        }
                        None => break,
                    },
                    _ = &mut grace_over => {
                        tracing::warn!("requests still in flight after the grace period: dropped");
                        break;
                    }
                }
            }
        }
        if let Some(journal) = journal
            && let Err(e) = journal.close().await
        {
            run.stop_with(StopReason::Journal(e.to_string()));
        }
        let mut stopped = run.stop_reason.lock().map(|mut g| g.take()).unwrap_or(None);
        if stopped.is_none() && cancel.is_cancelled() {
            stopped = Some(StopReason::Cancelled);
        }
        // Entries the run never reached (it stopped) are reported as the journal has them.
        let entries = entries
            .into_iter()
            .zip(&manifest.entries)
            .map(|(report, entry)| {
                report.unwrap_or_else(|| {
                    let state = replayed.get(&entry.id).map(|r| r.state).unwrap_or(State::Pending);
                    EntryReport::from_state(&entry.id, &entry.path, &state, None)
                })
            })
            .collect();
        notes.extend(run.notes.into_inner().unwrap_or_else(|e| e.into_inner()));
        Ok(RunReport { entries, stopped, notes, elapsed: started.elapsed() })
    }
}

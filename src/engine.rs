//! The engine: drives every entry's state machine through the transport, a bounded number at a time.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::Either;
use rand::SeedableRng;
use rand::rngs::StdRng;
use spinlift_core::{Limits, State};
use spinlift_manifest::Manifest;
use spinlift_manifest::journal::{Journal, JournalOptions, Record, Sink, replay};
use spinlift_source::{Sources, SourcesConfig};
use spinlift_transport::{ClientConfig, FileSpinClient, Secret};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::ahead::FormsAhead;
use crate::backoff::BackoffConfig;
use crate::checkpoint::{Checkpoint, fingerprint, reconcile};
use crate::drive::{Driven, Run};
use crate::error::EngineError;
use crate::events::{ProgressSender, RunHandle};
use crate::observer::Observer;
use crate::report::{Counts, EntryReport, RunReport, StopReason};
use crate::throttle::Throttle;

/// The longest a group commit of the journal waits for company (see `Engine::journal_options`).
const GROUP_WAIT: Duration = Duration::from_millis(10);

/// Entries a run keeps going beyond those at work; see [`entries_in_flight`].
const SPARE_ENTRIES: usize = 64;

/// How many entries at work a run has per request slot (`--concurrency`): an entry also waits for
/// things that are not requests (a backoff, its file, a slot), and meanwhile another entry uses its
/// slot. One per slot had left the slots idle while forms went to the disk.
const AT_WORK_PER_SLOT: usize = 2;

/// How many entries a run keeps going with `concurrency` request slots: those at work, and spares for
/// those waiting for their form's record to reach the disk (which are not at work meanwhile, see
/// `Run::active`). How many wait for the disk at a time depends on the rate, not on the slots (a
/// group's wait times the files per second), hence a fixed number of spares; and since the spares only
/// stand in for entries waiting for the disk, a run whose uploads all fail (an S3 outage) makes no
/// more first attempts at a time than with none (`tests/faults.rs`). Measured with `spinlift bench
/// small` (10,000 × 4 KiB, 16 slots, 2 cores, 6 paired rounds, entries as tasks): 32 entries and 4 ms
/// groups 0.88× of the raw client, 64 and 8 ms 0.91×, 96 and 10 ms 0.91–0.92×, 128 and 16 ms 0.90×.
/// An entry waiting holds a form and, for a file larger than its first read, an open file.
/// Without a journal nobody waits for the disk: no spares.
fn entries_in_flight(concurrency: usize, journal: bool) -> usize {
    entries_at_work(concurrency) + if journal { SPARE_ENTRIES } else { 0 }
}

/// How many entries may be at work at once with `concurrency` request slots (`Run::active`).
fn entries_at_work(concurrency: usize) -> usize {
    concurrency.max(1) * AT_WORK_PER_SLOT
}

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
    /// Allow plain `http://` beyond loopback (the API key and forms then cross the network in clear),
    /// for FileSpin, storage and remote sources alike.
    pub allow_http: bool,
    /// Requests per second to remote sources (HEAD, GET, over all of them: an old system may be
    /// fragile); `None` for no limit.
    pub source_rps: Option<NonZeroU32>,
    /// How remote sources are reached beyond `allow_http` and `source_rps` (endpoints, credentials,
    /// timeouts); the defaults read each provider's usual environment (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`). Its own `allow_http` and `rps` are replaced by the two fields above.
    pub sources: SourcesConfig,
    /// Tag each asset with its entry id (and `batch`) in `filespin_search_txt`, the key FileSpin's
    /// search indexes, so that every migrated asset can be found by its old-system id
    /// (developers.filespin.io, "Update Data"). One Update Data call per asset.
    pub tag: bool,
    /// The batch's name, added to the tag.
    pub batch: Option<String>,
    /// After registration, read each asset back until FileSpin has processed it, and check its size and
    /// checksum ("Get Data"). One call per asset, more while FileSpin reports it NOT_READY.
    pub verify: bool,
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
            source_rps: None,
            sources: SourcesConfig::default(),
            tag: false,
            batch: None,
            verify: false,
        }
    }
}

/// Uploads a manifest's entries into FileSpin.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use spinlift::{Engine, EngineConfig, Secret, Silent};
/// use tokio_util::sync::CancellationToken;
///
/// let manifest = spinlift::Manifest::load("batch.json".as_ref())?;
/// let config = EngineConfig::new("https://app.filespin.io", Secret::new(std::env::var("FILESPIN_API_KEY")?));
/// let engine = Engine::new(config)?;
/// let report = engine.run(&manifest, &Default::default(), Arc::new(Silent), CancellationToken::new()).await?;
/// println!("{} registered, {} failed", report.registered(), report.failed());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) client: FileSpinClient,
    /// Where entries' bytes come from: local files and remote objects.
    pub(crate) sources: Sources,
    pub(crate) config: EngineConfig,
    /// What [`Engine::spawn`] runs with (set by the builder).
    pub(crate) options: RunOptions,
}

/// Wraps the checkpoint journal's file before the run's first record (see [`RunOptions::journal_sink`]).
pub type JournalSinkFn = Arc<dyn Fn(std::fs::File) -> Box<dyn Sink> + Send + Sync>;

/// How one run goes, beyond the engine's configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Where the checkpoint journal lives.
    pub checkpoint: Checkpoint,
    /// Entries that failed for good in an earlier run are tried again.
    pub retry_failed: bool,
    /// After cancellation, how long requests in flight may take to finish before they are dropped
    /// (their entries resume from the journal next time).
    pub grace: Duration,
    /// Wraps the journal file, e.g. in a [`Sink`] that fails like a full disk: how the tests show that
    /// a run stops safely when its checkpoint cannot be written. `None` (the default) writes the file.
    pub journal_sink: Option<JournalSinkFn>,
    /// Only set data on and verify entries registered already (`spinlift verify`): nothing is
    /// uploaded.
    pub registered_only: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            checkpoint: Checkpoint::BesideManifest,
            retry_failed: false,
            grace: Duration::from_secs(10),
            journal_sink: None,
            registered_only: false,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("checkpoint", &self.checkpoint)
            .field("retry_failed", &self.retry_failed)
            .field("grace", &self.grace)
            .field("registered_only", &self.registered_only)
            .field("journal_sink", &self.journal_sink.as_ref().map(|_| "…"))
            .finish()
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
        let mut sources_config = config.sources.clone();
        sources_config.allow_http = config.allow_http;
        sources_config.rps = config.source_rps;
        let sources = Sources::new(sources_config).map_err(|e| EngineError::Config(e.to_string()))?;
        Ok(Engine { client, sources, config, options: RunOptions::default() })
    }

    /// An engine configured step by step; see [`EngineBuilder`].
    pub fn builder(api_url: impl Into<String>, api_key: Secret) -> EngineBuilder {
        EngineBuilder { config: EngineConfig::new(api_url, api_key), options: RunOptions::default() }
    }

    /// How the run's journal commits. Each entry appends one record it must wait for before its upload
    /// (its form), and an fsync costs the same however many records it covers. (On this project's
    /// 2-core VM, before entries were tasks, a journal on tmpfs ran 0.96× of the raw client and one on
    /// the disk 0.88×; since, 0.88× and 0.91×: what is left is the journal path's CPU.) An entry waiting for the disk holds no request slot (see
    /// [`entries_in_flight`]), so a group may wait up to [`GROUP_WAIT`] for company, or until every
    /// entry that can wait while all slots are busy has joined it. Shorter waits cost more than they
    /// save (10,000 × 4 KiB, 32 entries: 4 ms 0.87× of the raw client, 2 ms 0.85×, 1 ms 0.79×).
    ///
    /// With forms requested ahead (`crate::ahead`) most groups go on the journal's timer for records
    /// nobody waits on now, about 20 fsyncs a second instead of 100, and then the blank lines written
    /// ahead of the records cost more than they save: without them the client used 0.2–0.5 s less CPU
    /// per 10,000 small files, and the cores idled less (22 interleaved rounds).
    fn journal_options(&self) -> JournalOptions {
        let concurrency = self.config.concurrency.max(1);
        JournalOptions {
            group_wait: GROUP_WAIT,
            group_size: entries_in_flight(concurrency, true) - concurrency,
            blank_room: false,
            ..JournalOptions::default()
        }
    }

    /// The configuration this engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The run options [`Engine::spawn`] uses (the builder's checkpoint, retry and grace settings).
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// Starts a run of `manifest` on the current tokio runtime with the builder's options, and returns
    /// at once: the [`RunHandle`] streams [`Progress`](crate::Progress) events, cancels, and gives the
    /// report. A program that prefers callbacks calls [`Engine::run`] with an
    /// [`Observer`] instead.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(&self, manifest: Manifest) -> RunHandle {
        let (sender, events) = ProgressSender::channel();
        let cancel = CancellationToken::new();
        let engine = self.clone();
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let options = engine.options.clone();
            engine.run(&manifest, &options, Arc::new(sender), token).await
        });
        RunHandle { events, cancel, task }
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
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        let fingerprint = fingerprint(
            manifest.entries.iter().map(|e| e.id()),
            &manifest.root,
            manifest.source_root.as_deref(),
        );
        let mut verify_registered = false;
        if options.checkpoint == Checkpoint::BesideManifest && manifest.source.file_name().is_none() {
            return Err(EngineError::Config(
                "this manifest was not read from a file, so it has no place for a checkpoint beside it: \
                 give a checkpoint path (Checkpoint::At) or run without one (Checkpoint::Off)"
                    .into(),
            ));
        }
        // Data FileSpin would refuse fails the run before anything is uploaded, not each asset after.
        if self.config.tag || manifest.entries.iter().any(|e| e.data().is_some()) {
            let batch = self.config.batch.as_deref().map_or(0, str::len);
            for entry in manifest.entries.iter() {
                // A tag alone is far from the limit unless the id is long (each byte is at most 6
                // characters of JSON): no payload is built for the usual entry.
                if entry.data().is_none()
                    && (entry.id().len() + batch) * 6 + 40 < spinlift_manifest::MAX_DATA_CHARS
                {
                    continue;
                }
                if let Err(e) = crate::data::payload(entry, self.config.tag, self.config.batch.as_deref()) {
                    return Err(EngineError::Config(format!(
                        "entry {:?} (manifest {}, {}): {e}",
                        entry.id(),
                        manifest.source.display(),
                        entry.position()
                    )));
                }
            }
        }
        if let Some(base) = options.checkpoint.path_for(&manifest.source)
            && let Some(conflict) = crate::checkpoint::shard_conflict(&base, manifest.shard)
        {
            return Err(EngineError::Config(conflict));
        }
        let journal_path = options.checkpoint.path_for_manifest(manifest);
        let mut notes = Vec::new();
        let mut _lock = None;
        let (journal, mut replayed) = match &journal_path {
            Some(path) => {
                // Held from before the replay to the end of the run: a second run on the same checkpoint
                // must not replay a journal that is still being written, then overwrite it.
                _lock = Some(lock_checkpoint(path)?);
                let replayed = replay(path)?;
                if let Some(r) = &replayed {
                    let reconciled = reconcile(r, manifest, &fingerprint);
                    notes = reconciled.notes;
                    verify_registered = reconciled.verify_registered;
                }
                for note in &notes {
                    tracing::warn!("{note}");
                }
                let journal_options = self.journal_options();
                let journal = match &options.journal_sink {
                    None => Journal::open(path, &fingerprint, replayed.as_ref(), journal_options).await?,
                    Some(wrap) => {
                        let wrap = wrap.clone();
                        let options = journal_options;
                        Journal::open_with_sink(path, &fingerprint, replayed.as_ref(), options, move |f| {
                            wrap(f)
                        })
                        .await?
                    }
                };
                (Some(journal), replayed.unwrap_or_default())
            }
            None => (None, Default::default()),
        };
        // The run keeps each entry's latest state in the replayed journal's compact form: the report is
        // built from it, so no entry is held twice.
        replayed.reserve(manifest.entries.len().saturating_sub(replayed.len()));
        // With a journal, fresh entries' forms are requested ahead (`crate::ahead`); not when the journal
        // has as many records as the manifest has entries (usually a resumed batch with little left:
        // looking for fresh entries among 10⁶ finished ones cost `bench entries` 0.1–0.2 s).
        let ahead =
            (journal.is_some() && !options.registered_only && replayed.len() < manifest.entries.len())
                .then(|| Arc::new(FormsAhead::new()));
        let states = Arc::new(Mutex::new(replayed));

        let run = Arc::new(Run {
            engine: self.clone(),
            manifest: manifest.clone(),
            observer: observer.clone(),
            journal: journal.clone(),
            retry_failed: options.retry_failed,
            registered_only: options.registered_only,
            stop: cancel.child_token(),
            stop_reason: Mutex::new(None),
            service_data: manifest.service_data.clone().unwrap_or_else(|| self.config.service_data.clone()),
            throttle: Throttle::new(self.config.concurrency),
            active: tokio::sync::Semaphore::new(entries_at_work(self.config.concurrency)),
            notes: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::from_os_rng()),
            in_flight: Default::default(),
            verify_registered,
            ahead: ahead.clone(),
        });
        let mut unfinished = HashMap::new();
        let mut counts = Counts::default();
        // Which entries the run finished, one bit each: the others are counted as the journal has them.
        let mut reached = vec![0u64; manifest.entries.len().div_ceil(64)];
        // Every entry's task, so that none outlives the run: a stop past its grace aborts them, and the
        // journal closes once they are gone.
        let tasks = TaskTracker::new();
        // Ends the requests ahead once every entry is through (those sent finish and are recorded).
        let ahead_done = CancellationToken::new();
        let mut prefetch = ahead.as_ref().map(|ahead| {
            AbortOnDropHandle::new(tasks.spawn(crate::ahead::prefetch(
                run.clone(),
                ahead.clone(),
                states.clone(),
                ahead_done.clone(),
            )))
        });
        {
            let states = &states;
            let mut outcomes = futures::stream::iter(0..manifest.entries.len())
                .map(|i| {
                    let entry = manifest.entries.at(i);
                    let recorded = lock(states).get(entry.id());
                    // A finished entry is answered here: a task each would cost a resumed batch of 10⁶
                    // finished entries 2.6 s (4.51 s instead of 1.87, `spinlift bench entries`).
                    if !run.verify_registered
                        && let Some(driven) = run.needs_nothing(entry, recorded.as_ref())
                    {
                        return Either::Left(std::future::ready((i, driven)));
                    }
                    // Each entry is a task of its own, so that the entries' work (requests, responses,
                    // hashing, records) spreads over the runtime's workers. Polled together in the run's
                    // one task they took one core at a time: 0.86× of the raw client on 10,000 × 4 KiB
                    // files without a journal, 0.98× as tasks (`spinlift bench small`, 2 cores).
                    let run = run.clone();
                    let task = AbortOnDropHandle::new(tasks.spawn(async move {
                        let entry = run.manifest.entries.at(i);
                        run.drive(i, entry, recorded).await
                    }));
                    Either::Right(async move {
                        match task.await {
                            Ok(driven) => (i, driven),
                            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                            // Cancelled: only when the runtime shuts down, which drops this future too.
                            Err(_) => std::future::pending().await,
                        }
                    })
                })
                .buffer_unordered(entries_in_flight(self.config.concurrency, run.journal.is_some()));
            // Registered entries whose record is still on its way to the disk: counted once it is there.
            // Their place in flight goes to the next entry meanwhile.
            let mut settling = futures::stream::FuturesUnordered::new();
            let mut all_driven = false;
            let mut grace_over = std::pin::pin!(async {
                run.stop.cancelled().await;
                tokio::time::sleep(options.grace).await;
            });
            let mut finished = |i: usize, driven: Driven| {
                observer.finished(&driven.report);
                counts.add(&driven.report);
                reached[i / 64] |= 1 << (i % 64);
                if let Some(state) = driven.state {
                    lock(states).insert(Record::new(manifest.entries.at(i).id(), state));
                }
                if let Some(note) = driven.note {
                    unfinished.insert(i, note);
                }
            };
            while !(all_driven && settling.is_empty()) {
                tokio::select! {
                    next = outcomes.next(), if !all_driven => match next {
                        Some((i, mut driven)) => match driven.registered.take() {
                            Some(durable) => {
                                let run = &run;
                                settling.push(async move { (i, driven, run.settle(Some(durable)).await) });
                            }
                            None => finished(i, driven),
                        },
                        None => {
                            all_driven = true;
                            // No form is coming to start the next group: the last registrations'
                            // records go now, not at the journal's timer (50 ms at the end of every run).
                            if let Some(journal) = &run.journal {
                                journal.commit_now();
                            }
                        }
                    },
                    Some((i, driven, ())) = settling.next(), if !settling.is_empty() => finished(i, driven),
                    _ = &mut grace_over => {
                        tracing::warn!("requests still in flight after the grace period: dropped");
                        // Forms being requested ahead are dropped with the entries' requests.
                        drop(prefetch.take());
                        break;
                    }
                }
            }
        }
        // After a stop past its grace the aborted tasks may still be in their last poll: the journal
        // closes once none can append to it.
        ahead_done.cancel();
        tasks.close();
        tasks.wait().await;
        if let Some(journal) = journal
            && let Err(e) = journal.close().await
        {
            run.stop_with(StopReason::Journal(e.to_string()));
        }
        let mut stopped = run.stop_reason.lock().map(|mut g| g.take()).unwrap_or(None);
        if stopped.is_none() && cancel.is_cancelled() {
            stopped = Some(StopReason::Cancelled);
        }
        notes.append(&mut lock(&run.notes));
        let states = std::mem::take(&mut *lock(&states));
        // Entries the run never reached (it stopped) are reported as the journal has them.
        for (i, entry) in manifest.entries.iter().enumerate() {
            if reached[i / 64] & (1 << (i % 64)) == 0 {
                let state = states.get(entry.id()).map_or(State::Pending, |r| r.state);
                counts.add(&EntryReport::from_state(entry.id(), &entry.shown_path(), &state, None));
            }
        }
        Ok(RunReport::new(manifest.clone(), states, unfinished, counts, stopped, notes, started.elapsed()))
    }
}

/// Builds an [`Engine`] step by step: the configuration ([`EngineConfig`]) and the options
/// [`Engine::spawn`] runs with ([`RunOptions`]).
///
/// ```
/// use spinlift::{Engine, Secret};
///
/// let engine = Engine::builder("https://app.filespin.io", Secret::new("my-api-key"))
///     .concurrency(32)
///     .checkpoint("/var/lib/migration/photos.checkpoint")
///     .api_rps(30)
///     .build()?;
/// assert_eq!(engine.config().concurrency, 32);
/// # Ok::<(), spinlift::EngineError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EngineBuilder {
    config: EngineConfig,
    options: RunOptions,
}

impl EngineBuilder {
    /// Assets in flight at once (default 16).
    pub fn concurrency(mut self, assets: usize) -> Self {
        self.config.concurrency = assets;
        self
    }

    /// Per-asset attempt limits (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Backoff between attempts.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// FileSpin API requests per second over both API calls; 0 for no limit (default 30, FileSpin's
    /// documented limit for most APIs).
    pub fn api_rps(mut self, rps: u32) -> Self {
        self.config.api_rps = NonZeroU32::new(rps);
        self
    }

    /// S3 POSTs started per second; 0 for no limit (the default).
    pub fn s3_rps(mut self, rps: u32) -> Self {
        self.config.s3_rps = NonZeroU32::new(rps);
        self
    }

    /// Requests per second to remote sources (HEAD and GET of each object, over all of them); 0 for no
    /// limit (the default).
    pub fn source_rps(mut self, rps: u32) -> Self {
        self.config.source_rps = NonZeroU32::new(rps);
        self
    }

    /// How remote sources are reached (an S3 endpoint, keys, timeouts) instead of from the
    /// environment alone; see [`SourcesConfig`]. Its `allow_http` and `rps` are those of
    /// [`allow_http`](Self::allow_http) and [`source_rps`](Self::source_rps).
    pub fn sources(mut self, sources: SourcesConfig) -> Self {
        self.config.sources = sources;
        self
    }

    /// Upload bandwidth over all uploads together, bytes per second; 0 for no limit (the default).
    pub fn bandwidth(mut self, bytes_per_second: u64) -> Self {
        self.config.bandwidth = NonZeroU64::new(bytes_per_second);
        self
    }

    /// `service_data` sent with each registration when the manifest has none (a JSON object).
    pub fn service_data(mut self, service_data: serde_json::Value) -> Self {
        self.config.service_data = service_data;
        self
    }

    /// Allows plain `http://` to hosts other than loopback.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.config.allow_http = allow;
        self
    }

    /// Keeps the checkpoint journal at `path` (default: beside the manifest file).
    pub fn checkpoint(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.options.checkpoint = Checkpoint::At(path.into());
        self
    }

    /// Keeps no checkpoint journal: a re-run starts over and may upload files again.
    pub fn no_checkpoint(mut self) -> Self {
        self.options.checkpoint = Checkpoint::Off;
        self
    }

    /// Tags each asset with its entry id (and `batch`, if given) in `filespin_search_txt`.
    pub fn tag(mut self, batch: Option<&str>) -> Self {
        self.config.tag = true;
        self.config.batch = batch.map(str::to_owned);
        self
    }

    /// Reads each asset back after its registration until FileSpin has processed it, and checks it.
    pub fn verify(mut self, verify: bool) -> Self {
        self.config.verify = verify;
        self
    }

    /// Tries again the entries that failed for good in an earlier run.
    pub fn retry_failed(mut self, retry: bool) -> Self {
        self.options.retry_failed = retry;
        self
    }

    /// How long requests in flight may finish after a cancellation (default 10 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// The engine; refused when the configuration cannot work (no concurrency, a URL that is not
    /// http(s), plain http to a remote host without [`allow_http`](Self::allow_http)).
    pub fn build(self) -> Result<Engine, EngineError> {
        let mut engine = Engine::new(self.config)?;
        engine.options = self.options;
        Ok(engine)
    }
}

/// The store of entry states; a panic elsewhere while it was held leaves it usable (each insert is
/// whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

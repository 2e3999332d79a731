//! The emulator's shared state: its settings, and what it has seen (counters, forms issued, assets
//! registered).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::AssetErrorRule;
use crate::faults::{Decision, Endpoint, Fault, Faults, Refusal};

/// Request counters, as returned by [`Emulator::stats`](crate::Emulator::stats) and `GET /_emulator/stats`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stats {
    /// Forms handed out by `content_storage_url`.
    pub issued: u64,
    /// Files stored by the S3 POST endpoint.
    pub uploaded: u64,
    /// Assets registered by `register_asset`.
    pub registered: u64,
    /// Requests refused with a 4xx or 5xx status, on either port, by the emulator's own checks — not
    /// injected faults (those count in [`faults_injected`](Self::faults_injected)) nor the rate limit
    /// ([`rate_limited`](Self::rate_limited)).
    pub rejected: u64,
    /// Requests to the four API endpoints (`content_storage_url`, `register_asset`, Get Data, Update
    /// Data), whatever their answer.
    pub api_requests: u64,
    /// Requests on the S3 port, whatever their answer.
    pub s3_requests: u64,
    /// Requests that met an injected fault: an error answer, a drop, a lost reply, a slow body, an S3
    /// outage's `503`, a revoked key's `401` (not added latency).
    pub faults_injected: u64,
    /// API requests answered `429` for going over [`FaultConfig::api_rps`](crate::FaultConfig::api_rps).
    pub rate_limited: u64,
    /// Requests to Get Data (`GET /api/v1/assets/{id}/data`), whatever their answer.
    pub data_gets: u64,
    /// Requests to Update Data (`POST /api/v1/assets/{id}/data/update`), whatever their answer.
    pub data_updates: u64,
}

/// One successful `register_asset`, as the client sent it (checksum in lowercase).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    /// The asset registered.
    pub asset_id: String,
    /// The object key its form named (no leading `/`).
    pub key: String,
    /// The file name given to `content_storage_url`.
    pub filename: String,
    /// The size the client declared (checked against the stored object).
    pub size: u64,
    /// The MD5 the client declared, lowercase hex (checked against the stored object).
    pub checksum: String,
    /// `upload_time`, as sent.
    pub upload_time: Option<String>,
    /// `upload_started_at`, as sent.
    pub upload_started_at: Option<String>,
    /// `upload_completed_at`, as sent.
    pub upload_completed_at: Option<String>,
    /// `service_data`, as sent (`null` when absent).
    pub service_data: serde_json::Value,
}

/// One form handed out by `content_storage_url`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedForm {
    /// The new asset's id.
    pub asset_id: String,
    /// The file name asked for.
    pub filename: String,
    /// The object key the form names (no leading `/`).
    pub key: String,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Issued,
    Uploaded,
    Registered,
    Rejected,
    ApiRequests,
    S3Requests,
    FaultsInjected,
    RateLimited,
    DataGets,
    DataUpdates,
}

/// Lock-free request counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    issued: AtomicU64,
    uploaded: AtomicU64,
    registered: AtomicU64,
    rejected: AtomicU64,
    api_requests: AtomicU64,
    s3_requests: AtomicU64,
    faults_injected: AtomicU64,
    rate_limited: AtomicU64,
    data_gets: AtomicU64,
    data_updates: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::Issued => &self.issued,
            Counter::Uploaded => &self.uploaded,
            Counter::Registered => &self.registered,
            Counter::Rejected => &self.rejected,
            Counter::ApiRequests => &self.api_requests,
            Counter::S3Requests => &self.s3_requests,
            Counter::FaultsInjected => &self.faults_injected,
            Counter::RateLimited => &self.rate_limited,
            Counter::DataGets => &self.data_gets,
            Counter::DataUpdates => &self.data_updates,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            issued: self.issued.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            registered: self.registered.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            api_requests: self.api_requests.load(Ordering::Relaxed),
            s3_requests: self.s3_requests.load(Ordering::Relaxed),
            faults_injected: self.faults_injected.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            data_gets: self.data_gets.load(Ordering::Relaxed),
            data_updates: self.data_updates.load(Ordering::Relaxed),
        }
    }
}

/// When each request arrived, per endpoint, as microseconds since the emulator started.
///
/// Eight bytes a request: a million requests hold 8 MB.
#[derive(Debug)]
pub(crate) struct RequestLog {
    started: Instant,
    arrivals: [Mutex<Vec<u64>>; Endpoint::ALL.len()],
}

impl RequestLog {
    pub(crate) fn new(started: Instant) -> Self {
        Self { started, arrivals: Default::default() }
    }

    fn record(&self, endpoint: Endpoint) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        lock(&self.arrivals[endpoint.index()]).push(micros);
    }

    /// The arrival times at `endpoint`, since the start, in the order recorded.
    pub(crate) fn times(&self, endpoint: Endpoint) -> Vec<Duration> {
        lock(&self.arrivals[endpoint.index()]).iter().map(|&micros| Duration::from_micros(micros)).collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single push or read: a panic cannot leave it half done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The asset was registered already.
#[derive(Debug)]
pub(crate) struct AlreadyRegistered;

/// How Update Data combines the data sent with the data stored ("Update Data", developers.filespin.io).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// "APPEND will append the data to any existing data": keys sent overwrite the same keys, the others
    /// stay.
    Append,
    /// "REPLACE will overwrite with the new data".
    Replace,
}

/// One accepted Update Data request.
#[derive(Debug, Clone)]
pub(crate) struct DataUpdate {
    pub(crate) data: Map<String, Value>,
    pub(crate) mode: UpdateMode,
    pub(crate) data_schema_id: Option<u64>,
}

/// An asynchronous update not visible yet.
#[derive(Debug)]
struct Pending {
    /// When it shows; `None`: never by itself (only when a synchronous update comes after it).
    visible_at: Option<Instant>,
    update: DataUpdate,
}

/// What FileSpin keeps of a registered asset besides its registration.
#[derive(Debug)]
struct AssetRecord {
    /// Index in `registrations`.
    index: usize,
    registered_at: Instant,
    data: Map<String, Value>,
    data_schema_id: Option<u64>,
    /// Asynchronous updates, in the order received.
    pending: VecDeque<Pending>,
}

impl AssetRecord {
    fn apply(&mut self, update: DataUpdate) {
        match update.mode {
            UpdateMode::Append => self.data.extend(update.data),
            UpdateMode::Replace => self.data = update.data,
        }
        if update.data_schema_id.is_some() {
            self.data_schema_id = update.data_schema_id;
        }
    }

    /// Applies the asynchronous updates that have become visible, in the order received (a later one
    /// waits for the earlier ones).
    fn catch_up(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|p| p.visible_at.is_some_and(|at| at <= now)) {
            if let Some(pending) = self.pending.pop_front() {
                self.apply(pending.update);
            }
        }
    }
}

/// A registered asset as Get Data sees it.
#[derive(Debug, Clone)]
pub(crate) struct AssetView {
    pub(crate) registration: Registration,
    pub(crate) registered_at: Instant,
    pub(crate) data: Map<String, Value>,
    pub(crate) data_schema_id: Option<u64>,
}

/// No registered asset has this id.
#[derive(Debug)]
pub(crate) struct UnknownAsset;

/// When an update shows in Get Data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visible {
    /// Now (a synchronous update): every update received before it is applied first.
    Now,
    /// At this instant, or, `None`, only once a synchronous update comes after it (an `?async=1`
    /// update).
    At(Option<Instant>),
}

/// An asset's status, as Get Data reports it ("Asset Data Format", developers.filespin.io). The
/// emulator never archives an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssetStatus {
    /// "file is being saved".
    NotReady,
    /// "Asset was saved successfully".
    Ok,
    /// "the asset has any errors".
    Error,
}

impl AssetStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AssetStatus::NotReady => "NOT_READY",
            AssetStatus::Ok => "OK",
            AssetStatus::Error => "ERROR",
        }
    }
}

/// Forms issued and assets registered, in order.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Debug, Default)]
struct LedgerInner {
    issued: Vec<IssuedForm>,
    /// asset id → index in `issued`
    issued_by_asset: HashMap<String, usize>,
    registrations: Vec<Registration>,
    /// The assets in `registrations`, by id.
    assets: HashMap<String, AssetRecord>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, LedgerInner> {
        // Every update below is a single push + insert, so a panic elsewhere cannot leave it half done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record_issued(&self, form: IssuedForm) {
        let mut inner = self.lock();
        let index = inner.issued.len();
        inner.issued_by_asset.insert(form.asset_id.clone(), index);
        inner.issued.push(form);
    }

    pub(crate) fn issued_form(&self, asset_id: &str) -> Option<IssuedForm> {
        let inner = self.lock();
        inner.issued_by_asset.get(asset_id).map(|&i| inner.issued[i].clone())
    }

    pub(crate) fn is_registered(&self, asset_id: &str) -> bool {
        self.lock().assets.contains_key(asset_id)
    }

    /// Records a registration unless the asset has one already; check and insert are one step. The asset
    /// is registered as of `now`.
    pub(crate) fn record_registration(
        &self,
        registration: Registration,
        now: Instant,
    ) -> Result<(), AlreadyRegistered> {
        let mut inner = self.lock();
        if inner.assets.contains_key(&registration.asset_id) {
            return Err(AlreadyRegistered);
        }
        let record = AssetRecord {
            index: inner.registrations.len(),
            registered_at: now,
            data: Map::new(),
            data_schema_id: None,
            pending: VecDeque::new(),
        };
        inner.assets.insert(registration.asset_id.clone(), record);
        inner.registrations.push(registration);
        Ok(())
    }

    /// A registered asset as of `now` (asynchronous updates visible by then applied).
    pub(crate) fn asset(&self, asset_id: &str, now: Instant) -> Option<AssetView> {
        let mut inner = self.lock();
        let LedgerInner { assets, registrations, .. } = &mut *inner;
        let record = assets.get_mut(asset_id)?;
        record.catch_up(now);
        Some(AssetView {
            registration: registrations[record.index].clone(),
            registered_at: record.registered_at,
            data: record.data.clone(),
            data_schema_id: record.data_schema_id,
        })
    }

    /// Applies `update` now, or queues it until it becomes visible. A synchronous update first applies
    /// every update received before it: FileSpin serialises updates and applies them "according to the
    /// time they were received" ("Update Data", developers.filespin.io).
    pub(crate) fn update_data(
        &self,
        asset_id: &str,
        update: DataUpdate,
        visible: Visible,
        now: Instant,
    ) -> Result<(), UnknownAsset> {
        let mut inner = self.lock();
        let record = inner.assets.get_mut(asset_id).ok_or(UnknownAsset)?;
        match visible {
            Visible::Now => {
                while let Some(pending) = record.pending.pop_front() {
                    record.apply(pending.update);
                }
                record.apply(update);
            }
            Visible::At(visible_at) => {
                record.pending.push_back(Pending { visible_at, update });
                record.catch_up(now);
            }
        }
        Ok(())
    }

    pub(crate) fn issued(&self) -> Vec<IssuedForm> {
        self.lock().issued.clone()
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        self.lock().registrations.clone()
    }
}

/// What both servers share: the settings they answer with and the record of what they did.
///
/// Not `Debug`: it holds the API key and the secret access key.
pub(crate) struct Shared {
    pub(crate) api_key: String,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) form_expiry_secs: i64,
    pub(crate) max_object_size: u64,
    /// The longest object key the store can hold (see `keys::max_key_len`).
    pub(crate) max_key_len: usize,
    pub(crate) upload_limit_exceeded: bool,
    pub(crate) account_disabled: bool,
    /// How long a registered asset stays `NOT_READY`.
    pub(crate) not_ready_for: Duration,
    /// Which assets end in `ERROR`.
    pub(crate) asset_errors: Vec<AssetErrorRule>,
    /// How long an `?async=1` update takes to show.
    pub(crate) async_update_delay: Duration,
    /// The `storage.url` handed out: path-style, `http://host:port/<bucket>/`.
    pub(crate) s3_url: String,
    /// The s3s-fs root; objects live at `<root>/<bucket>/<key>`.
    pub(crate) storage_root: PathBuf,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    pub(crate) requests: RequestLog,
    pub(crate) ledger: Ledger,
}

impl Shared {
    /// Where the bytes of the object stored under `key` are (a leading `/` is ignored).
    pub(crate) fn object_path(&self, key: &str) -> PathBuf {
        self.storage_root.join(&self.bucket).join(key.trim_start_matches('/'))
    }

    /// An asset's status as of `now`, and FileSpin's reason when it is `ERROR`: `NOT_READY` for
    /// `not_ready_for` after its registration, then `ERROR` if a rule of `asset_errors` matches its file
    /// name, else `OK`.
    pub(crate) fn asset_status(&self, asset: &AssetView, now: Instant) -> (AssetStatus, Option<&str>) {
        if now.saturating_duration_since(asset.registered_at) < self.not_ready_for {
            return (AssetStatus::NotReady, None);
        }
        match self.asset_errors.iter().find(|rule| rule.matches(&asset.registration.filename)) {
            Some(rule) => (AssetStatus::Error, Some(&rule.reason)),
            None => (AssetStatus::Ok, None),
        }
    }

    /// Records a request to `endpoint` arriving now, and decides what happens to it.
    pub(crate) fn arrive(&self, endpoint: Endpoint) -> Decision {
        self.requests.record(endpoint);
        self.counters.bump(if endpoint.is_api() { Counter::ApiRequests } else { Counter::S3Requests });
        match endpoint {
            Endpoint::AssetData => self.counters.bump(Counter::DataGets),
            Endpoint::UpdateData => self.counters.bump(Counter::DataUpdates),
            _ => {}
        }
        let decision = self.faults.pick(endpoint);
        match decision.fault {
            None => {}
            Some(Fault::Refuse(Refusal::RateLimited)) => self.counters.bump(Counter::RateLimited),
            Some(_) => self.counters.bump(Counter::FaultsInjected),
        }
        decision
    }
}

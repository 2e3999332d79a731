//! The engine's side of the checkpoint journal: where it lives, what a resumed entry starts from, and
//! which state changes must be durable before the run goes on.

use std::path::{Path, PathBuf};

use spinlift_core::{Asset, Limits, ResumeFacts, State, UnixMillis};
use spinlift_manifest::journal::{Record, Replayed, SourceStamp};
use spinlift_transport::UploadForm;

/// Where a run keeps its checkpoint journal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Checkpoint {
    /// Beside the manifest: `<manifest file name>.checkpoint` (the default).
    #[default]
    BesideManifest,
    /// At this path.
    At(PathBuf),
    /// No journal: a re-run starts over (benchmarks and throwaway runs only).
    Off,
}

impl Checkpoint {
    /// The journal's path for `manifest`, or `None` when the journal is off.
    pub fn path_for(&self, manifest: &Path) -> Option<PathBuf> {
        match self {
            Checkpoint::BesideManifest => {
                let mut name = manifest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".checkpoint");
                Some(manifest.with_file_name(name))
            }
            Checkpoint::At(p) => Some(p.clone()),
            Checkpoint::Off => None,
        }
    }
}

/// Whether a move into `state` must be on disk before the run goes on: the asset id and its form
/// before the upload starts (a crash after it must not lead to a second asset), the upload before the
/// registration (a crash while FileSpin registers must resume as "register this asset id", whatever
/// became of the form), and a registration before the run reports it. Every other change may be lost
/// to a crash and is redone safely.
pub(crate) fn must_be_durable(state: &State) -> bool {
    matches!(state, State::FormIssued { .. } | State::Uploaded { .. } | State::Registered { .. })
}

/// The journal record of an entry now in `state`.
pub(crate) fn record(
    id: &str,
    state: &State,
    form: Option<&UploadForm>,
    source: Option<SourceStamp>,
) -> Record {
    let mut record = Record::new(id, state.clone());
    let needs_form =
        matches!(state, State::FormIssued { .. } | State::Uploading { .. } | State::Uploaded { .. });
    if needs_form
        && let Some(form) = form
        && let Ok(value) = serde_json::to_value(form)
    {
        record = record.with_form(value);
    }
    if let Some(stamp) = source {
        record = record.with_source(stamp);
    }
    record
}

/// What an entry starts from: its recorded state put through core's resume rules, and the form that
/// goes with it.
pub(crate) struct Resumed {
    pub(crate) asset: Asset,
    pub(crate) form: Option<UploadForm>,
    /// Something the user should hear about this entry.
    pub(crate) note: Option<String>,
}

pub(crate) fn resume(
    recorded: Option<&Record>,
    current_source: Option<SourceStamp>,
    retry_failed: bool,
    limits: Limits,
    now: UnixMillis,
) -> Resumed {
    let Some(record) = recorded else {
        return Resumed { asset: Asset::new(limits), form: None, note: None };
    };
    let form: Option<UploadForm> = record.form.clone().and_then(|v| serde_json::from_value(v).ok());
    let source_changed = match (record.source, current_source) {
        (Some(then), Some(now)) => then != now,
        _ => false,
    };
    let facts =
        ResumeFacts { form_expires_at: form.as_ref().map(|f| f.expires_at), source_changed, retry_failed };
    let asset = Asset::resume(record.state.clone(), facts, limits, now);
    let form = form.filter(|f| asset.state().asset_id() == Some(f.asset_id.as_str()));
    let note = (source_changed && matches!(asset.state(), State::Uploaded { .. })).then(|| {
        "changed since it was uploaded, and its upload form has expired: registering the version \
         already in storage rather than creating a second asset"
            .to_owned()
    });
    Resumed { asset, form, note }
}

/// What replay found that the user should know.
pub(crate) fn reconcile_notes(replayed: &Replayed, manifest_ids: &[&str], fingerprint: &str) -> Vec<String> {
    let mut notes = replayed.warnings.clone();
    if !replayed.belongs_to(fingerprint) {
        let known = manifest_ids.iter().filter(|id| replayed.contains(id)).count();
        let added = manifest_ids.len() - known;
        let removed = replayed.len().saturating_sub(known);
        notes.push(format!(
            "the manifest changed since the checkpoint was written: {added} new entries, \
             {removed} recorded entries no longer listed (their records are kept)"
        ));
    }
    notes
}

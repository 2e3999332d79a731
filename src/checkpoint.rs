//! The engine's side of the checkpoint journal: where it lives, what a resumed entry starts from, and
//! which state changes must be durable before the run goes on.

use std::path::{Path, PathBuf};

use spinlift_core::{Asset, Limits, ResumeFacts, State, UnixMillis};
use spinlift_manifest::journal::{FormJson, Line, Record, Replayed, SourceStamp, fingerprint_ids};
use spinlift_manifest::{Manifest, Shard};
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

    /// The journal's path for a run of `manifest`: [`Checkpoint::path_for`] its file, and for a
    /// manifest loaded as a shard ([`Manifest::load_shard`]) that path with the shard's tag in it
    /// ([`shard_path`]): each shard has a journal of its own.
    pub fn path_for_manifest(&self, manifest: &Manifest) -> Option<PathBuf> {
        let path = self.path_for(&manifest.source)?;
        Some(match manifest.shard {
            Some(shard) => shard_path(&path, shard),
            None => path,
        })
    }
}

/// `path` with the shard's tag (`shard-I-of-N`) before its last extension, or at its end when it has
/// none: `/state/batch.checkpoint` → `/state/batch.shard-2-of-4.checkpoint`,
/// `report.jsonl` → `report.shard-2-of-4.jsonl`, `journal` → `journal.shard-2-of-4`.
///
/// ```
/// use spinlift::{Shard, shard_path};
/// let shard = Shard::new(2, 4).unwrap();
/// assert_eq!(shard_path("/state/batch.checkpoint".as_ref(), shard), std::path::Path::new("/state/batch.shard-2-of-4.checkpoint"));
/// assert_eq!(shard_path("journal".as_ref(), shard), std::path::Path::new("journal.shard-2-of-4"));
/// ```
pub fn shard_path(path: &Path, shard: Shard) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tagged = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{}.{ext}", shard.tag()),
        _ => format!("{name}.{}", shard.tag()),
    };
    path.with_file_name(tagged)
}

/// Whether a move into `state` must be on disk before the run goes on: the asset id and its form
/// before the upload starts (a crash after it must not lead to a second asset), and a registration
/// before the run reports it (the engine waits for that one lazily, see `Run::record`).
///
/// Every other change may be lost to a crash and is redone safely. That includes the upload's record:
/// a crash that loses it resumes the entry from its form, and core's resume rules look the asset id up
/// on FileSpin before anything would create a second asset (`Asset::resume`). Not waiting for it saves
/// one fsync wait per file, the half of the journal's cost on small files.
pub(crate) fn must_be_durable(state: &State) -> bool {
    matches!(state, State::FormIssued { .. } | State::Registered { .. })
}

/// The journal record of an entry now in `state`, given to `append` as a [`Line`] (borrowed: neither
/// the state nor the form is copied); `None` for `Uploading`, which resumes as the `FormIssued`
/// recorded before it (an upload cut off is made again with the same form), so its record would be
/// bytes written for nothing.
pub(crate) fn record<T>(
    id: &str,
    state: &State,
    form: Option<&UploadForm>,
    source: Option<SourceStamp>,
    append: impl FnOnce(Line<'_>) -> T,
) -> Option<T> {
    if matches!(state, State::Uploading { .. }) {
        return None;
    }
    // Only with the form's own record: a replayed `Uploaded` record takes the form of the
    // `FormIssued` record before it (the journal's replay), so a second copy would be ~1 KB per file
    // written for nothing.
    let form = form.filter(|_| matches!(state, State::FormIssued { .. })).map(FormText);
    let mut line = Line::new(id, state);
    if let Some(form) = &form {
        line = line.with_form(form);
    }
    if let Some(stamp) = source {
        line = line.with_source(stamp);
    }
    Some(append(line))
}

/// The engine's form as its record carries it: its compact JSON written straight into the record's
/// line (`UploadForm::write_json`), byte for byte what serde_json writes.
struct FormText<'a>(&'a UploadForm);

impl FormJson for FormText<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.0.write_json(out);
    }
}

/// What an entry starts from: its recorded state put through core's resume rules, and the form that
/// goes with it.
pub(crate) struct Resumed {
    pub(crate) asset: Asset,
    pub(crate) form: Option<UploadForm>,
}

pub(crate) fn resume(
    recorded: Option<&Record>,
    current_source: Option<SourceStamp>,
    retry_failed: bool,
    limits: Limits,
    now: UnixMillis,
) -> Resumed {
    let Some(record) = recorded else {
        return Resumed { asset: Asset::new(limits), form: None };
    };
    let form: Option<UploadForm> = record.form.as_ref().and_then(|f| f.decode().ok());
    let source_changed = match (record.source, current_source) {
        (Some(then), Some(now)) => then != now,
        _ => false,
    };
    let facts =
        ResumeFacts { form_expires_at: form.as_ref().map(|f| f.expires_at), source_changed, retry_failed };
    let asset = Asset::resume(record.state.clone(), facts, limits, now);
    let form = form.filter(|f| asset.state().asset_id() == Some(f.asset_id.as_str()));
    Resumed { asset, form }
}

/// The fingerprint a run writes into its journal's header: the manifest's entry ids, and the directory
/// its files are in (`<ids>:<root>`), with the manifest's `source_root` when it has one
/// (`<root>\n<source_root>` fingerprinted as the root). The root part tells a checkpoint taken to
/// another tree or bucket (or given with `--checkpoint` to another batch with the same ids) from its
/// own.
pub fn fingerprint<'a>(ids: impl Iterator<Item = &'a str>, root: &Path, source_root: Option<&str>) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut root = root.to_string_lossy().into_owned();
    if let Some(source_root) = source_root {
        root.push('\n');
        root.push_str(source_root);
    }
    format!("{}:{}", fingerprint_ids(ids), fingerprint_ids([root.as_str()].into_iter()))
}

/// What a run must know about a journal written for another manifest or another tree.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// What to tell the user.
    pub(crate) notes: Vec<String>,
    /// The journal was written for files in another directory: an entry recorded as registered is
    /// trusted only if its file is the one recorded (size and modification time).
    pub(crate) verify_registered: bool,
}

/// Compares the journal's fingerprint with this run's (see [`fingerprint`]).
pub(crate) fn reconcile(replayed: &Replayed, manifest: &Manifest, fingerprint: &str) -> Reconciled {
    let mut notes = replayed.warnings.clone();
    let (ids, root) = fingerprint.split_once(':').unwrap_or((fingerprint, ""));
    let recorded = replayed.fingerprint.as_deref().unwrap_or("");
    // Journals of spinlift 0.1 before this change carry the ids part alone.
    let (recorded_ids, recorded_root) = match recorded.split_once(':') {
        Some((i, r)) => (i, Some(r)),
        None => (recorded, None),
    };
    if recorded_ids != ids {
        let known = manifest.entries.iter().filter(|e| replayed.contains(e.id())).count();
        let added = manifest.entries.len() - known;
        let removed = replayed.len().saturating_sub(known);
        notes.push(format!(
            "the manifest changed since the checkpoint was written: {added} new entries, \
             {removed} recorded entries no longer listed (their records are kept)"
        ));
    }
    let verify_registered = recorded_root.is_some_and(|r| r != root);
    if verify_registered {
        notes.push(
            "the checkpoint was written for files in another directory (the tree moved, or the checkpoint \
             belongs to another batch): each entry recorded as registered is checked against its file, and \
             uploaded again if the file is not the one recorded"
                .to_owned(),
        );
    }
    Reconciled { notes, verify_registered }
}

/// The shard counts of the checkpoints beside `base` (the checkpoint a run without shards uses) that
/// belong to shards of the same batch: `base` with `.shard-I-of-N` in its name.
fn shard_counts_beside(base: &Path) -> std::collections::BTreeSet<u32> {
    let mut counts = std::collections::BTreeSet::new();
    let (Some(dir), Some(_)) = (base.parent(), base.file_name()) else {
        return counts;
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(listing) = std::fs::read_dir(dir) else { return counts };
    for candidate in listing.flatten() {
        let candidate = candidate.file_name();
        let Some(candidate) = candidate.to_str() else { continue };
        let Some(at) = candidate.find(".shard-") else { continue };
        let rest = &candidate[at + ".shard-".len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let i_len = digits(rest);
        let Some(after_i) = rest.get(i_len..).and_then(|r| r.strip_prefix("-of-")) else { continue };
        let n_len = digits(after_i);
        let (Ok(i), Ok(n)) = (rest[..i_len].parse::<u32>(), after_i[..n_len].parse::<u32>()) else {
            continue;
        };
        let Ok(shard) = Shard::new(i, n) else { continue };
        if shard_path(base, shard).file_name().and_then(|f| f.to_str()) == Some(candidate) {
            counts.insert(n);
        }
    }
    counts
}

/// Why a run of `shard` (or of the whole batch, `None`) must not start beside the checkpoints already
/// at `base`: a batch run in shards and then without (or in another number of shards) would upload
/// every entry again, since each checkpoint knows only its own entries.
pub fn shard_conflict(base: &Path, shard: Option<Shard>) -> Option<String> {
    let counts = shard_counts_beside(base);
    let listed = || counts.iter().map(|n| format!("{n} shards")).collect::<Vec<_>>().join(", ");
    match shard {
        None if !counts.is_empty() => Some(format!(
            "this batch was run in shards (checkpoints of {} beside {}): run each shard again with \
             --shard I/N (or --shards N), and see the whole batch with `spinlift status --shards N`; a \
             run without shards would upload every entry again",
            listed(),
            base.display()
        )),
        Some(_) if base.exists() => Some(format!(
            "this batch has a checkpoint of a run without shards ({}): finish it without --shard, or \
             move that checkpoint away; a sharded run would upload its entries again",
            base.display()
        )),
        Some(shard) if counts.iter().any(|&n| n != shard.count()) => Some(format!(
            "this batch was run in {} (checkpoints beside {}), not {}: keep the number of shards a batch \
             started with, or its entries are uploaded again",
            listed(),
            base.display(),
            shard.count()
        )),
        _ => None,
    }
}

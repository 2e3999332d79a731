//! A manifest entry's source — a local file or a remote object — checked before anything is asked of
//! FileSpin, and the dry-run plan built from those checks.

use spinlift_core::{Failure, FailureKind, Step};
use spinlift_manifest::journal::SourceStamp;
use spinlift_manifest::{Entry, Manifest, ManifestError};
use spinlift_source::{ObjectMeta, SourceError, SourceUrl, Sources};

use crate::engine::MAX_POST_OBJECT_SIZE;

/// The source of an entry as checked before its upload: where it is, what it said about itself, and
/// the stamp the journal keeps to notice a change.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// A local file (resolved inside the root) or a remote object.
    pub(crate) url: SourceUrl,
    /// Its metadata: size, and for a remote object its ETag, which the GET must still match.
    pub(crate) meta: ObjectMeta,
    pub(crate) stamp: SourceStamp,
}

impl Source {
    /// How errors and logs name it: a path, or a URL without its query.
    pub(crate) fn shown(&self) -> String {
        self.url.to_string()
    }
}

/// A failure found before any request to FileSpin: the entry fails for good with `message`.
fn unusable(message: impl Into<String>) -> Failure {
    Failure::new(Step::RequestForm, FailureKind::Source, message)
}

/// The entry's source, as long as S3 can take it: a local file resolved inside the root and regular,
/// or a remote object whose metadata its source gave (one HEAD, under `--source-rps`). Else why not,
/// as core's [`Failure`]: a remote source that is busy or unreachable is a retryable failure of
/// [`Step::ReadSource`]; everything else fails the entry.
pub(crate) async fn check_source(
    manifest: &Manifest,
    sources: &Sources,
    entry: Entry<'_>,
) -> Result<Source, Failure> {
    if !entry.is_remote() {
        return check_local(manifest, entry);
    }
    let url = remote_url(manifest, entry)?;
    let meta = sources.head(&url).await.map_err(|e| source_failure(&e, Step::ReadSource, &url))?;
    if meta.size > MAX_POST_OBJECT_SIZE {
        return Err(unusable(format!("{} bytes is more than an S3 POST upload takes (5 GiB)", meta.size)));
    }
    let stamp = SourceStamp {
        size: meta.size,
        mtime_ms: meta.last_modified_ms.unwrap_or(0),
        tag: meta.fingerprint(),
    };
    Ok(Source { url, meta, stamp })
}

/// A source's error as core's [`Failure`] at `step`, its message without the source's URL in front: the
/// report and the summary name the entry already, and the summary counts failures by reason ("2 × not
/// found"), as it does for local files.
pub(crate) fn source_failure(error: &SourceError, step: Step, url: &SourceUrl) -> Failure {
    let mut failure = error.to_failure(step);
    let shown = url.to_string();
    if let Some(rest) = failure.message.strip_prefix(shown.as_str()) {
        failure.message = rest.trim_start_matches([':', ' ']).to_owned();
    }
    failure
}

/// A remote entry's location, parsed (the manifest checked it lexically when it was read).
fn remote_url(manifest: &Manifest, entry: Entry<'_>) -> Result<SourceUrl, Failure> {
    let text = manifest.source_url(&entry).unwrap_or_default();
    SourceUrl::parse(&text).map_err(|e| unusable(e.to_string()))
}

/// A local entry's file, without blocking on anything but its metadata (small files are the common
/// case, and this runs for each on the async workers: measured cheaper than a hop to the blocking pool).
fn check_local(manifest: &Manifest, entry: Entry<'_>) -> Result<Source, Failure> {
    let (path, meta) = manifest.resolve_file(&entry).map_err(|e| match e {
        ManifestError::Source { source, .. } => unusable(format!("cannot read the file: {source}")),
        // The report and the summary name the path already.
        ManifestError::OutsideRoot { root, .. } => {
            unusable(format!("refusing to read outside the manifest's root {}", root.display()))
        }
        other => unusable(other.to_string()),
    })?;
    if !meta.is_file() {
        return Err(unusable("not a regular file"));
    }
    if meta.len() > MAX_POST_OBJECT_SIZE {
        return Err(unusable(format!("{} bytes is more than an S3 POST upload takes (5 GiB)", meta.len())));
    }
    // A file this process may not read (mode 000, an ACL) fails here, before FileSpin is asked for an
    // asset id it would never see used. Only regular files get this far: opening a FIFO would block.
    std::fs::File::open(&path).map_err(|e| unusable(format!("cannot read the file: {e}")))?;
    let stamp = SourceStamp::of(&meta);
    let object =
        ObjectMeta { size: stamp.size, last_modified_ms: Some(stamp.mtime_ms), ..ObjectMeta::default() };
    Ok(Source { url: SourceUrl::Local(path), meta: object, stamp })
}

/// What a run of a manifest would upload, found without touching FileSpin (`run --dry-run`): local
/// files are checked on disk, remote objects with one HEAD each (under `--source-rps`, 16 at a time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Entries whose source can be uploaded.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Each such entry's size, in manifest order.
    pub sizes: Vec<u64>,
    /// Entries that would fail, with the reason: `(path, reason)`.
    pub problems: Vec<(String, String)>,
}

impl Plan {
    /// Checks every entry's source as a run would before its first request. A remote source that
    /// cannot be reached now is listed as a problem, with the reason.
    pub async fn of(manifest: &Manifest, sources: &Sources) -> Plan {
        use futures::StreamExt;
        let mut plan = Plan::default();
        let mut checks = futures::stream::iter(manifest.entries.iter())
            .map(|entry| async move { (entry, check_source(manifest, sources, entry).await) })
            .buffered(16);
        while let Some((entry, checked)) = checks.next().await {
            match checked {
                Ok(source) => {
                    plan.files += 1;
                    plan.bytes += source.stamp.size;
                    plan.sizes.push(source.stamp.size);
                }
                Err(failure) => plan.problems.push((entry.shown_path().into_owned(), failure.to_string())),
            }
        }
        plan
    }

    /// The least time the API calls take at `api_rps` requests per second (two calls a file).
    pub fn api_bound_secs(&self, api_rps: u32) -> Option<f64> {
        (api_rps > 0).then(|| self.files as f64 * 2.0 / f64::from(api_rps))
    }
}

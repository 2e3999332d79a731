//! A manifest entry's file, checked before anything is asked of FileSpin, and the dry-run plan built
//! from those checks.

use std::path::PathBuf;

use spinlift_manifest::journal::SourceStamp;
use spinlift_manifest::{Entry, Manifest, ManifestError};

use crate::engine::MAX_POST_OBJECT_SIZE;

/// The source file of an entry as checked before its upload.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) stamp: SourceStamp,
}

/// The entry's file, resolved inside the root, as long as it is a regular file S3 can take; else why
/// not.
pub(crate) fn check_source(manifest: &Manifest, entry: Entry<'_>) -> Result<Source, String> {
    let path = manifest.resolve(&entry).map_err(|e| match e {
        ManifestError::Source { source, .. } => format!("cannot read the file: {source}"),
        // The report and the summary name the path already.
        ManifestError::OutsideRoot { root, .. } => {
            format!("refusing to read outside the manifest's root {}", root.display())
        }
        other => other.to_string(),
    })?;
    let meta = std::fs::metadata(&path).map_err(|e| format!("cannot read the file: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_POST_OBJECT_SIZE {
        return Err(format!("{} bytes is more than an S3 POST upload takes (5 GiB)", meta.len()));
    }
    // A file this process may not read (mode 000, an ACL) fails here, before FileSpin is asked for an
    // asset id it would never see used. Only regular files get this far: opening a FIFO would block.
    std::fs::File::open(&path).map_err(|e| format!("cannot read the file: {e}"))?;
    Ok(Source { path, stamp: SourceStamp::of(&meta) })
}

/// What a run of a manifest would upload, found without touching any API (`run --dry-run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Entries whose file can be uploaded.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Entries that would fail, with the reason: `(path, reason)`.
    pub problems: Vec<(String, String)>,
}

impl Plan {
    /// Checks every entry's file as a run would before its first request.
    pub fn of(manifest: &Manifest) -> Plan {
        let mut plan = Plan::default();
        for entry in manifest.entries.iter() {
            match check_source(manifest, entry) {
                Ok(source) => {
                    plan.files += 1;
                    plan.bytes += source.stamp.size;
                }
                Err(reason) => plan.problems.push((entry.path().to_owned(), reason)),
            }
        }
        plan
    }

    /// The least time the API calls take at `api_rps` requests per second (two calls a file).
    pub fn api_bound_secs(&self, api_rps: u32) -> Option<f64> {
        (api_rps > 0).then(|| self.files as f64 * 2.0 / f64::from(api_rps))
    }
}

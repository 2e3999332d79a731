//! Path rules: every entry stays inside the manifest's root.
//!
//! A user who runs someone else's manifest must not upload files from outside the tree they meant, so
//! a path is checked twice: lexically when the manifest is read (absolute paths elsewhere, `..` that
//! climbs out), and again after symlinks are followed, just before the file is opened.

use std::path::{Component, Path, PathBuf};

use crate::error::ManifestError;

/// Whether `path`, taken relative to `root`, leaves `root` without following symlinks.
/// Absolute paths are allowed only when they lie inside `root`.
pub fn escapes_root(root: &Path, path: &str) -> bool {
    let p = Path::new(path);
    let rel: PathBuf = if p.is_absolute() {
        match p.strip_prefix(root) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => return true,
        }
    } else {
        p.to_path_buf()
    };
    let mut depth: usize = 0;
    for c in rel.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    depth == 0
}

/// Whether a relative key written with `/` (a remote entry under its `source_root`) leaves its root:
/// the lexical rule of [`escapes_root`], on `/`-separated segments whatever the platform. An empty
/// key, or one that comes back to the root itself, names no object and counts as out.
pub(crate) fn climbs_out(key: &str) -> bool {
    let mut depth: usize = 0;
    for segment in key.split('/') {
        match segment {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    depth == 0
}

/// The real path of `path` under `root`, refused if it leaves `root` once symlinks are followed.
pub fn resolve_within(root: &Path, path: &str) -> Result<PathBuf, ManifestError> {
    if escapes_root(root, path) {
        return Err(ManifestError::OutsideRoot { path: path.to_owned(), root: root.to_path_buf() });
    }
    let joined = root.join(path);
    let real =
        joined.canonicalize().map_err(|source| ManifestError::Source { path: path.to_owned(), source })?;
    let real_root = root
        .canonicalize()
        .map_err(|source| ManifestError::Source { path: root.display().to_string(), source })?;
    if !real.starts_with(&real_root) {
        return Err(ManifestError::OutsideRoot { path: path.to_owned(), root: root.to_path_buf() });
    }
    Ok(real)
}

/// [`resolve_within`] for many files of one tree, with what it learned kept: the real path of the root
/// and of each directory seen, so a file costs one `lstat` instead of a `readlink` per component of
/// its path (measured: nine per file of a small-file batch, the engine's largest system-call count).
///
/// A file that is itself a symlink, or a path with `.` or `..` in it, is resolved in full. A directory
/// is resolved once per run: one swapped for a symlink later is followed as the directory it was (as
/// a file swapped between the check and the open would be anyway).
#[derive(Default)]
pub(crate) struct Resolver {
    /// The root and its real path, for the root last asked about.
    root: std::sync::Mutex<Option<(PathBuf, PathBuf)>>,
    /// A directory as joined (root + path) → its real path, when that is inside the root.
    dirs: std::sync::Mutex<std::collections::HashMap<PathBuf, PathBuf>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs = self.dirs.lock().map_or(0, |d| d.len());
        f.debug_struct("Resolver").field("directories", &dirs).finish_non_exhaustive()
    }
}

impl Resolver {
    /// The real path of `path` under `root` and its metadata (of the file, not of a symlink to it),
    /// refused as [`resolve_within`] refuses.
    pub(crate) fn resolve(
        &self,
        root: &Path,
        path: &str,
    ) -> Result<(PathBuf, std::fs::Metadata), ManifestError> {
        let source = |source| ManifestError::Source { path: path.to_owned(), source };
        let joined = root.join(path);
        let plain =
            Path::new(path).components().all(|c| matches!(c, Component::Normal(_) | Component::RootDir));
        if let (true, Some(dir), Some(name)) = (plain, joined.parent(), joined.file_name())
            && !escapes_root(root, path)
        {
            let real_dir = self.real_dir(root, dir, path)?;
            let real = real_dir.join(name);
            let metadata = std::fs::symlink_metadata(&real).map_err(source)?;
            if !metadata.file_type().is_symlink() {
                return Ok((real, metadata));
            }
        }
        let real = resolve_within(root, path)?;
        let metadata = std::fs::metadata(&real).map_err(source)?;
        Ok((real, metadata))
    }

    fn real_dir(&self, root: &Path, dir: &Path, path: &str) -> Result<PathBuf, ManifestError> {
        if let Some(real) = self.dirs.lock().ok().and_then(|d| d.get(dir).cloned()) {
            return Ok(real);
        }
        // The entry's own directory first: a missing one is named by the entry's path.
        let real =
            dir.canonicalize().map_err(|source| ManifestError::Source { path: path.to_owned(), source })?;
        let real_root = {
            let mut cached = self.root.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match cached.as_ref() {
                Some((r, real)) if r == root => real.clone(),
                _ => {
                    let real = root.canonicalize().map_err(|source| ManifestError::Source {
                        path: root.display().to_string(),
                        source,
                    })?;
                    if let Ok(mut dirs) = self.dirs.lock() {
                        dirs.clear();
                    }
                    *cached = Some((root.to_path_buf(), real.clone()));
                    real
                }
            }
        };
        if !real.starts_with(&real_root) {
            return Err(ManifestError::OutsideRoot { path: path.to_owned(), root: root.to_path_buf() });
        }
        if let Ok(mut dirs) = self.dirs.lock() {
            dirs.insert(dir.to_path_buf(), real.clone());
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_inside_the_root_are_fine() {
        let root = Path::new("/data/lib");
        assert!(!escapes_root(root, "a.jpg"));
        assert!(!escapes_root(root, "photos/2024/a.jpg"));
        assert!(!escapes_root(root, "./photos/../a.jpg"));
        assert!(!escapes_root(root, "/data/lib/photos/a.jpg"));
    }

    #[test]
    fn paths_that_climb_out_or_point_elsewhere_are_refused() {
        let root = Path::new("/data/lib");
        assert!(escapes_root(root, "../secret"));
        assert!(escapes_root(root, "photos/../../secret"));
        assert!(escapes_root(root, "/etc/passwd"));
        assert!(escapes_root(root, "/data/library/a.jpg"));
        // The root itself is not a file to upload.
        assert!(escapes_root(root, "."));
        assert!(escapes_root(root, "photos/.."));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_out_of_the_root_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
        std::fs::write(root.path().join("ok"), b"y").unwrap();
        assert!(matches!(resolve_within(root.path(), "link"), Err(ManifestError::OutsideRoot { .. })));
        assert!(resolve_within(root.path(), "ok").is_ok());
        assert!(matches!(resolve_within(root.path(), "missing"), Err(ManifestError::Source { .. })));
    }

    /// The resolver that keeps what it learned refuses and allows exactly what `resolve_within` does,
    /// the second time it sees a directory as the first.
    #[cfg(unix)]
    #[test]
    fn the_resolver_that_remembers_directories_refuses_what_resolve_within_refuses() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"outside").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("photos/2024")).unwrap();
        std::fs::write(r.join("photos/2024/a.jpg"), b"abc").unwrap();
        std::fs::write(r.join("photos/2024/b.jpg"), b"abcd").unwrap();
        // A directory and a file that lead out of the root, and a file link that stays inside.
        symlink(outside.path(), r.join("escape")).unwrap();
        symlink(outside.path().join("secret"), r.join("photos/leak")).unwrap();
        symlink(r.join("photos/2024/a.jpg"), r.join("photos/alias.jpg")).unwrap();

        let resolver = Resolver::default();
        for _ in 0..2 {
            let (path, meta) = resolver.resolve(r, "photos/2024/a.jpg").unwrap();
            assert_eq!((path, meta.len()), (r.canonicalize().unwrap().join("photos/2024/a.jpg"), 3));
            assert_eq!(resolver.resolve(r, "photos/2024/b.jpg").unwrap().1.len(), 4);
            let (path, meta) = resolver.resolve(r, "photos/alias.jpg").unwrap();
            assert_eq!((path.ends_with("photos/2024/a.jpg"), meta.is_file()), (true, true), "followed");
            for out in ["escape/secret", "photos/leak", "../secret", "photos/2024/../../escape/secret"] {
                assert!(
                    matches!(resolver.resolve(r, out), Err(ManifestError::OutsideRoot { .. })),
                    "{out} must be refused"
                );
                assert!(matches!(resolve_within(r, out), Err(ManifestError::OutsideRoot { .. })));
            }
            for missing in ["photos/2024/none.jpg", "nowhere/a.jpg"] {
                assert!(
                    matches!(resolver.resolve(r, missing), Err(ManifestError::Source { .. })),
                    "{missing}"
                );
            }
        }
    }
}

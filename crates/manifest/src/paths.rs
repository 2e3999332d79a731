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
}

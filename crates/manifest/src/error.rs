//! Errors of reading and validating a manifest: each says which file, and where in it.

use std::path::PathBuf;

/// Where in a manifest a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A line and column (1-based), as the JSON parser saw them.
    LineColumn {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An entry of a JSON manifest's `assets` array (0-based), and its line when known.
    Entry {
        /// 0-based index in `assets`.
        index: usize,
        /// 1-based line of a JSON Lines manifest.
        line: Option<usize>,
    },
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
            Position::Entry { index, line: Some(line) } => write!(f, "line {line} (entry {index})"),
            Position::Entry { index, line: None } => write!(f, "assets[{index}]"),
        }
    }
}

/// A manifest that cannot be used. None of these is retryable: the file must be fixed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON, or a value has the wrong type or name.
    #[error("invalid manifest {path} at {position}: {message}")]
    Syntax {
        /// The manifest's path.
        path: PathBuf,
        /// Where the parser stopped.
        position: Position,
        /// What the parser said.
        message: String,
    },
    /// The manifest is valid JSON but breaks a rule (version, duplicate id, escaping path, …).
    #[error("invalid manifest {path} at {position}: {message}")]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// The offending entry or line.
        position: Position,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The manifest as a whole breaks a rule (no assets, bad root).
    #[error("invalid manifest {path}: {message}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An entry's file is outside the manifest's root (after following symlinks).
    #[error("{path}: refusing to read outside the manifest's root {root}")]
    OutsideRoot {
        /// The entry's path as written.
        path: String,
        /// The root it escapes.
        root: PathBuf,
    },
    /// An entry's file cannot be found or opened.
    #[error("{path}: {source}")]
    Source {
        /// The entry's path as written.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

//! Errors that stop a run before or while it starts. Per-asset problems are not errors: they are
//! reported per entry in the [`RunReport`](crate::RunReport).

/// A run that cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The manifest cannot be used.
    #[error(transparent)]
    Manifest(#[from] spinlift_manifest::ManifestError),
    /// The checkpoint journal cannot be read or written (damaged, locked by another run, disk).
    #[error(transparent)]
    Journal(#[from] spinlift_manifest::journal::JournalError),
    /// The HTTP client could not be built (bad URL, TLS set-up).
    #[error(transparent)]
    Transport(#[from] spinlift_transport::TransportError),
    /// The configuration is incomplete or contradictory.
    #[error("{0}")]
    Config(String),
}

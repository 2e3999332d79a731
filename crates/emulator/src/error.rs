//! Why an [`Emulator`](crate::Emulator) could not start.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why an [`Emulator`](crate::Emulator) could not start. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// A setting in [`EmulatorConfig`](crate::EmulatorConfig) is unusable.
    #[error("invalid emulator configuration: {0}")]
    InvalidConfig(String),
    /// A port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The object store could not be set up.
    #[error("cannot set up the object store at {}: {source}", path.display())]
    Storage {
        /// The store's directory (or its parent, for a temporary one).
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
}

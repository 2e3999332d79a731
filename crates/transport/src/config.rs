//! How the client is set up: where FileSpin is, the key, timeouts and limits.

use std::time::Duration;

use crate::secret::Secret;

/// Settings of a [`FileSpinClient`](crate::FileSpinClient). [`ClientConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the FileSpin API, e.g. `https://app.filespin.io` (a path prefix is kept).
    pub api_url: String,
    /// The API key, sent as `X-FileSpin-Api-Key` to the two API calls (never to storage).
    pub api_key: Secret,
    /// Time allowed to open a TCP (and TLS) connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Whole-request timeout of the two API calls. Default 60 s.
    pub api_timeout: Duration,
    /// An upload whose bytes stop moving for this long, or whose answer does not come this long after
    /// the last byte, fails with a timeout. Default 60 s. Large uploads are not bounded as a whole.
    pub upload_stall_timeout: Duration,
    /// How many S3 POSTs may be in flight at once through this client (and its clones). Default 16.
    pub max_concurrent_uploads: usize,
    /// The `User-Agent` of every request. Default `spinlift/<version>`.
    pub user_agent: String,
}

impl ClientConfig {
    /// A configuration with the defaults above.
    pub fn new(api_url: impl Into<String>, api_key: Secret) -> Self {
        ClientConfig {
            api_url: api_url.into(),
            api_key,
            connect_timeout: Duration::from_secs(10),
            api_timeout: Duration::from_secs(60),
            upload_stall_timeout: Duration::from_secs(60),
            max_concurrent_uploads: 16,
            user_agent: concat!("spinlift/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_no_key_in_debug() {
        let config = ClientConfig::new("https://app.filespin.io", Secret::new("k-123456789"));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.api_timeout, Duration::from_secs(60));
        assert_eq!(config.upload_stall_timeout, Duration::from_secs(60));
        assert_eq!(config.max_concurrent_uploads, 16);
        assert!(config.user_agent.starts_with("spinlift/"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("k-123456789"), "{debug}");
        assert!(debug.contains("REDACTED"));
    }
}

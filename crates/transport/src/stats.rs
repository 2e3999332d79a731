//! What a client has sent: requests and bytes, counted as they go.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`FileSpinClient`](crate::FileSpinClient) and its clones, from
/// [`FileSpinClient::stats`](crate::FileSpinClient::stats). Every attempt counts, retries included,
/// whatever its outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// FileSpin API requests sent (`content_storage_url`, `register_asset`, Update Data and Get Data
    /// together).
    pub api_requests: u64,
    /// S3 POSTs sent.
    pub s3_requests: u64,
    /// Bytes of S3 POST bodies handed to the connection: the file bytes and the multipart framing
    /// around them (what the bandwidth limit counts).
    pub bytes_sent: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    api_requests: AtomicU64,
    s3_requests: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Counters {
    pub(crate) fn api_request(&self) {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn s3_request(&self) {
        self.s3_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TransportStats {
        TransportStats {
            api_requests: self.api_requests.load(Ordering::Relaxed),
            s3_requests: self.s3_requests.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

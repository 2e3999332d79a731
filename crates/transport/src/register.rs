//! Step 3: `POST /api/v1/assets/new/register_asset`.

use serde::Serialize;
use spinlift_core::UnixMillis;

use crate::clock::rfc3339_seconds;

/// What an upload produced: the bytes sent, their MD5, and when it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UploadReceipt {
    /// Bytes of the file sent.
    pub size: u64,
    /// MD5 of those bytes, lowercase hex.
    pub md5: String,
    /// When the upload started (after the upload slot was taken, before the first byte).
    pub started_at: UnixMillis,
    /// When storage's success answer arrived.
    pub completed_at: UnixMillis,
}

/// The body of `register_asset`, as in the "Get Storage Upload URL" page's example
/// (developers.filespin.io): `asset_id`, `size`, `checksum` (MD5), three RFC 3339 UTC times and
/// `service_data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterRequest {
    /// The asset id FileSpin issued with the form.
    pub asset_id: String,
    /// Bytes uploaded.
    pub size: u64,
    /// MD5 of the bytes, lowercase hex.
    pub checksum: String,
    /// When the upload finished (the example gives it the value of `upload_completed_at`).
    pub upload_time: String,
    /// When the upload started, e.g. `2024-05-15T15:43:00Z`.
    pub upload_started_at: String,
    /// When the upload finished, e.g. `2024-05-15T15:43:02Z`.
    pub upload_completed_at: String,
    /// Free-form data about the uploader (`app`, `build`, …); omitted when `null`.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub service_data: serde_json::Value,
}

impl RegisterRequest {
    /// The request for an upload described by `receipt`.
    pub fn new(
        asset_id: impl Into<String>,
        receipt: &UploadReceipt,
        service_data: serde_json::Value,
    ) -> Self {
        RegisterRequest {
            asset_id: asset_id.into(),
            size: receipt.size,
            checksum: receipt.md5.clone(),
            upload_time: rfc3339_seconds(receipt.completed_at),
            upload_started_at: rfc3339_seconds(receipt.started_at),
            upload_completed_at: rfc3339_seconds(receipt.completed_at),
            service_data,
        }
    }
}

/// How FileSpin took a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOutcome {
    /// FileSpin registered the asset now.
    Registered,
    /// FileSpin answered `ASSET_ID_EXISTS` for this asset id. The id is one FileSpin issued to us, so
    /// this is our own earlier registration (a repeat after a lost answer or a crash). The docs do not
    /// say what a repeated `register_asset` answers; a 2xx is taken as `Registered`, an
    /// `ASSET_ID_EXISTS` (in a 4xx, or in a 2xx body) as this.
    AlreadyExists,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_the_documented_example() {
        let receipt = UploadReceipt {
            size: 1_048_576,
            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
            started_at: UnixMillis(1_715_787_780_000),
            completed_at: UnixMillis(1_715_787_782_400),
        };
        let request = RegisterRequest::new(
            "ec279822540b412e903827f473bb53a3",
            &receipt,
            serde_json::json!({"app": "spinlift", "build": "0.1.0"}),
        );
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "asset_id": "ec279822540b412e903827f473bb53a3",
                "size": 1048576,
                "checksum": "d41d8cd98f00b204e9800998ecf8427e",
                "upload_time": "2024-05-15T15:43:02Z",
                "upload_started_at": "2024-05-15T15:43:00Z",
                "upload_completed_at": "2024-05-15T15:43:02Z",
                "service_data": {"app": "spinlift", "build": "0.1.0"}
            })
        );
        let bare = RegisterRequest::new("a", &receipt, serde_json::Value::Null);
        assert!(serde_json::to_value(&bare).unwrap().get("service_data").is_none());
    }
}

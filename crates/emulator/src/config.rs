//! How an [`Emulator`](crate::Emulator) is set up.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::FaultConfig;

/// Everything an [`Emulator`](crate::Emulator) needs to start.
///
/// `Default` gives a ready-to-use emulator on two free loopback ports with a private temporary store.
/// The secrets (`api_key`, `secret_access_key`) never appear in `Debug` output.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The key clients must send in `X-FileSpin-Api-Key`. Default `"emulator-api-key"`.
    pub api_key: String,
    /// The bucket the forms upload into (path-style, a valid S3 bucket name). Default `"spinlift-emulator"`.
    pub bucket: String,
    /// The region named in the forms' credential scope. Default `"us-east-1"`.
    pub region: String,
    /// The access key id named in the forms' `x-amz-credential`.
    pub access_key_id: String,
    /// The secret that signs the forms' policies, and that the S3 endpoint checks them with.
    pub secret_access_key: String,
    /// How long a form stays valid, in seconds: the `expiry` returned and the policy's `expiration`
    /// (`now + form_expiry_secs`). Default 86400, as the docs state. Negative values hand out forms that
    /// are already expired.
    pub form_expiry_secs: i64,
    /// The upper bound of the policy's `content-length-range`, in bytes. Default 5 GiB.
    pub max_object_size: u64,
    /// Where the S3 store keeps its files. `None`: a temporary directory owned, and deleted, by the
    /// emulator.
    pub storage_dir: Option<PathBuf>,
    /// Where the FileSpin API listens. Default `127.0.0.1:0` (a free port).
    pub api_addr: SocketAddr,
    /// Where the S3 POST endpoint listens. Default `127.0.0.1:0` (a free port).
    pub s3_addr: SocketAddr,
    /// When set, the API answers `403 FORBIDDEN` "Upload limit exceeded" (the FREE-plan limit in the docs).
    pub upload_limit_exceeded: bool,
    /// When set, the API answers `403 FORBIDDEN` "User account is disabled".
    pub account_disabled: bool,
    /// Injected faults. Default: none.
    pub faults: FaultConfig,
    /// How long a registered asset stays `NOT_READY` ("file is being saved", "Asset Data Format",
    /// developers.filespin.io) before its status turns `OK` (or `ERROR`, see
    /// [`asset_errors`](Self::asset_errors)). Meanwhile Get Data reports `NOT_READY` and Update Data
    /// answers `400 NOT_READY`. Default zero: an asset is `OK` as soon as it is registered, so that a
    /// client's tests and the demo do not wait; set it to exercise a client's polling.
    pub not_ready_for: Duration,
    /// Assets whose status ends `ERROR` instead of `OK`: the first rule whose pattern matches the file
    /// name given to `content_storage_url` decides, and its reason is reported. Default: none.
    pub asset_errors: Vec<AssetErrorRule>,
    /// How long an update sent with `?async=1` ("Update with Higher Throughput") takes to show in Get
    /// Data. Default zero: it is applied before the `202` is sent. Updates are applied in the order
    /// received; a synchronous update applies every earlier asynchronous one first.
    pub async_update_delay: Duration,
}

/// Which assets end in `ERROR`, and why: see [`EmulatorConfig::asset_errors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetErrorRule {
    /// A glob over the whole file name (`*` any run of characters, `?` one character, case-sensitive),
    /// e.g. `*.corrupt` or `broken-*`.
    pub pattern: String,
    /// What FileSpin says went wrong, reported in Get Data's `message` field.
    pub reason: String,
}

impl AssetErrorRule {
    /// Assets named like `pattern` end in `ERROR` with `reason`.
    pub fn new(pattern: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { pattern: pattern.into(), reason: reason.into() }
    }

    /// Whether the rule applies to the file `name`.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.pattern, name)
    }
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it was tried at: on a mismatch, let it take one
    // more character (the classic linear-time wildcard match).
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl EmulatorConfig {
    /// The default API key.
    pub const DEFAULT_API_KEY: &'static str = "emulator-api-key";
    /// The default bucket.
    pub const DEFAULT_BUCKET: &'static str = "spinlift-emulator";
    /// The default region.
    pub const DEFAULT_REGION: &'static str = "us-east-1";
    /// The default access key id.
    pub const DEFAULT_ACCESS_KEY_ID: &'static str = "AKIASPINLIFTEMULATOR";
    /// The default form lifetime: 24 hours, as stated in "Get Storage Upload URL"
    /// (developers.filespin.io): "The returned URL is valid for 24 hours (expiry: 86400 seconds)".
    pub const DEFAULT_FORM_EXPIRY_SECS: i64 = 86_400;
    /// The default object size limit: 5 GiB, S3's limit for a single upload.
    pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
}

pub(crate) const DEFAULT_SECRET_ACCESS_KEY: &str = "spinlift-emulator-secret-access-key";

impl Default for EmulatorConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            api_key: Self::DEFAULT_API_KEY.to_owned(),
            bucket: Self::DEFAULT_BUCKET.to_owned(),
            region: Self::DEFAULT_REGION.to_owned(),
            access_key_id: Self::DEFAULT_ACCESS_KEY_ID.to_owned(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
            form_expiry_secs: Self::DEFAULT_FORM_EXPIRY_SECS,
            max_object_size: Self::DEFAULT_MAX_OBJECT_SIZE,
            storage_dir: None,
            api_addr: loopback,
            s3_addr: loopback,
            upload_limit_exceeded: false,
            account_disabled: false,
            faults: FaultConfig::default(),
            not_ready_for: Duration::ZERO,
            asset_errors: Vec::new(),
            async_update_delay: Duration::ZERO,
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("api_key", &"<redacted>")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("form_expiry_secs", &self.form_expiry_secs)
            .field("max_object_size", &self.max_object_size)
            .field("storage_dir", &self.storage_dir)
            .field("api_addr", &self.api_addr)
            .field("s3_addr", &self.s3_addr)
            .field("upload_limit_exceeded", &self.upload_limit_exceeded)
            .field("account_disabled", &self.account_disabled)
            .field("faults", &self.faults)
            .field("not_ready_for", &self.not_ready_for)
            .field("asset_errors", &self.asset_errors)
            .field("async_update_delay", &self.async_update_delay)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = EmulatorConfig {
            api_key: "key-that-must-not-leak".into(),
            secret_access_key: "secret-that-must-not-leak".into(),
            ..EmulatorConfig::default()
        };
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("must-not-leak"), "{shown}");
        assert!(shown.contains("spinlift-emulator"), "{shown}");
    }

    #[test]
    fn error_rules_match_the_whole_file_name() {
        let rule = AssetErrorRule::new("*.corrupt", "not an image");
        assert!(rule.matches("photo.corrupt"));
        assert!(rule.matches(".corrupt"));
        assert!(!rule.matches("photo.corrupt.jpg"));
        assert!(!rule.matches("photo.CORRUPT"));
        for (pattern, name, matches) in [
            ("broken-*", "broken-1.jpg", true),
            ("broken-*", "a-broken-1.jpg", false),
            ("*broken*", "a-broken-1.jpg", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "a-x-b-y-b-c", true),
            ("a*b*c", "a-x-b-y-c-d", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("é*", "éclair", true),
            ("exact.bin", "exact.bin", true),
        ] {
            assert_eq!(glob_match(pattern, name), matches, "{pattern:?} vs {name:?}");
        }
    }
}

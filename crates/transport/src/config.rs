//! How the client is set up: where FileSpin is, the key, timeouts and limits.

use std::num::{NonZeroU32, NonZeroU64};
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
    /// FileSpin API requests per second, every API call together (the two upload calls and the two data
    /// calls), through this client and its clones.
    /// Default 30: FileSpin's documented limit for most APIs (developers.filespin.io, "Rate limits"),
    /// above which it answers 429. `None`: unlimited. Requests are spaced `1/api_rps` apart (no burst),
    /// so that a server counting per fixed 1-second window never sees more than `api_rps`; see the
    /// crate docs, "Limits".
    pub api_rps: Option<NonZeroU32>,
    /// S3 POSTs started per second, spaced as `api_rps` is. Default `None`: unlimited.
    pub s3_rps: Option<NonZeroU32>,
    /// Bytes per second of all upload bodies together (one limit shared by every upload of this
    /// client and its clones), taken chunk by chunk as each is handed to the connection. Default
    /// `None`: unlimited. [`parse_bandwidth`] reads `50MiB/s`-style values.
    pub bandwidth: Option<NonZeroU64>,
    /// The `User-Agent` of every request. Default `spinlift/<version>`.
    pub user_agent: String,
    /// Allow plain `http://` to hosts other than loopback (the API, and storage URLs in forms). Default
    /// off: the API key and the pre-signed forms are credentials.
    pub allow_http: bool,
}

/// Whether `url` may be used: https anywhere, plain http only on loopback unless `allow_http`.
pub(crate) fn transport_allowed(url: &url::Url, allow_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => {
            allow_http
                || match url.host() {
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                }
        }
        _ => false,
    }
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
            api_rps: NonZeroU32::new(30),
            s3_rps: None,
            bandwidth: None,
            user_agent: concat!("spinlift/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow_http: false,
        }
    }
}

/// Reads a bandwidth in bytes per second: a number (fractions allowed), an optional unit and an
/// optional `/s`: `50MiB/s`, `50MiB`, `10MB/s`, `800KiB/s`, `1.5 GiB/s`, `1000000` (bytes/s).
///
/// Units, in any case: `B`; decimal `KB`, `MB`, `GB`, `TB` (powers of 1000); binary `KiB`, `MiB`, `GiB`,
/// `TiB` (powers of 1024). A bare `K`, `M` or `G` is refused as ambiguous. Fractions of a byte are
/// dropped; a result below 1 byte/s, or beyond `u64`, is an error. The error is a sentence for a
/// command line (`--bwlimit`).
pub fn parse_bandwidth(s: &str) -> Result<NonZeroU64, String> {
    const EXAMPLES: &str = "expected bytes per second such as 50MiB/s, 10MB/s, 800KiB/s or 1000000";
    let invalid = |why: &str| format!("invalid bandwidth {s:?}: {why}; {EXAMPLES}");
    let text = s.trim();
    let lower = text.to_ascii_lowercase();
    let text = match lower.strip_suffix("/s") {
        Some(rest) => rest.trim_end(),
        None => lower.as_str(),
    };
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (&text[..number_end], text[number_end..].trim_start());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(invalid("not a number"));
    }
    let multiplier: u128 = match unit {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u128.pow(2),
        "gb" => 1000u128.pow(3),
        "tb" => 1000u128.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "k" | "m" | "g" | "t" => {
            return Err(invalid(&format!(
                "the unit {unit:?} is ambiguous (write {0}iB for powers of 1024 or {0}B for powers of 1000)",
                unit.to_ascii_uppercase()
            )));
        }
        _ => return Err(invalid(&format!("unknown unit {unit:?}"))),
    };
    let too_large = || invalid("too large");
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    // 20 digits are more precision than a byte needs, and keep the arithmetic inside a u128.
    let fraction = &fraction[..fraction.len().min(20)];
    let fraction_value: u128 = if fraction.is_empty() { 0 } else { fraction.parse().unwrap_or(0) };
    let scale = 10u128.pow(fraction.len() as u32);
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|w| w.checked_add(fraction_value.checked_mul(multiplier)? / scale))
        .ok_or_else(too_large)?;
    let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
    NonZeroU64::new(bytes).ok_or_else(|| invalid("must be at least 1 byte per second"))
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
        assert_eq!(config.api_rps, NonZeroU32::new(30));
        assert_eq!(config.s3_rps, None);
        assert_eq!(config.bandwidth, None);
        assert!(config.user_agent.starts_with("spinlift/"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("k-123456789"), "{debug}");
        assert!(debug.contains("REDACTED"));
    }

    #[test]
    fn bandwidths_in_every_documented_spelling() {
        let cases: &[(&str, u64)] = &[
            ("50MiB/s", 50 * 1024 * 1024),
            ("50MiB", 50 * 1024 * 1024),
            ("10MB/s", 10_000_000),
            ("800KiB/s", 800 * 1024),
            ("1000000", 1_000_000),
            ("1000000/s", 1_000_000),
            ("1000000B/s", 1_000_000),
            (" 1.5 GiB/s ", 3 * 512 * 1024 * 1024),
            ("0.5KB", 500),
            (".5kib", 512),
            ("2.KB", 2000),
            ("1tb/S", 1_000_000_000_000),
            ("1TiB", 1 << 40),
            ("1.0000001B", 1),
            ("1.0000000000000000000000000000001TiB", 1 << 40),
            ("18446744073709551615", u64::MAX),
        ];
        for &(text, bytes) in cases {
            assert_eq!(parse_bandwidth(text), Ok(NonZeroU64::new(bytes).unwrap()), "{text}");
        }
    }

    #[test]
    fn bandwidth_errors_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "not a number"),
            ("MiB/s", "not a number"),
            ("/s", "not a number"),
            (".", "not a number"),
            ("1.2.3MB", "not a number"),
            ("-5MB", "not a number"),
            ("0", "at least 1 byte"),
            ("0.5", "at least 1 byte"),
            ("0MiB/s", "at least 1 byte"),
            ("10M", "ambiguous"),
            ("10k/s", "ambiguous"),
            ("10 Mbit/s", "unknown unit"),
            ("10MiB/min", "unknown unit"),
            ("fast", "not a number"),
            ("18446744073709551616", "too large"),
            ("20000000TiB", "too large"),
            ("99999999999999999999999999999999999999999999", "too large"),
        ];
        for &(text, why) in cases {
            let error = parse_bandwidth(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
            assert!(error.contains("50MiB/s"), "the error shows an example: {error}");
        }
    }
}

#[cfg(test)]
mod http_tests {
    use super::transport_allowed;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let ok = |u: &str, allow| transport_allowed(&url::Url::parse(u).unwrap(), allow);
        assert!(ok("https://app.filespin.io", false));
        assert!(ok("http://127.0.0.1:8080/", false));
        assert!(ok("http://localhost:9000/bucket/", false));
        assert!(ok("http://[::1]:9000/", false));
        assert!(!ok("http://app.filespin.io", false));
        assert!(!ok("http://10.0.0.5/", false));
        assert!(ok("http://10.0.0.5/", true));
        assert!(!ok("ftp://127.0.0.1/", true));
    }
}

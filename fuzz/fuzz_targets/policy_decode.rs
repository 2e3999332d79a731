//! `Policy::decode` on any field, and on any bytes sent as a well-formed base64 field.
//!
//! Properties checked on every input:
//! - it never panics (and never hangs: libFuzzer's `-timeout`);
//! - the input as a field: whitespace does not matter (the same field with every whitespace removed,
//!   or with line breaks inserted, decodes the same), and a field with a character outside base64's
//!   alphabet, `=` and whitespace decodes to `None`;
//! - the input base64-encoded (padded, unpadded, wrapped at 76 columns): `Some` exactly when the input
//!   is a JSON object, and then `max_size` is the smallest `max` (a `u64` number, or a string of one)
//!   of its `["content-length-range", min, max]` conditions.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use spinlift_transport::Policy;

fuzz_target!(|data: &[u8]| {
    let field = String::from_utf8_lossy(data);
    as_field(&field);
    as_content(data);
});

fn as_field(field: &str) {
    let decoded = Policy::decode(field);
    let compact: String = field.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(Policy::decode(&compact), decoded, "whitespace changed the answer");
    assert_eq!(Policy::decode(&wrap(&compact)), decoded, "line breaks changed the answer");
    let alphabet = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if !compact.chars().all(alphabet) {
        assert_eq!(decoded, None, "a field that is not base64 decoded");
    }
}

fn as_content(data: &[u8]) {
    let expected = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(policy)) => Some(smallest_max(&policy)),
        _ => None,
    };
    for field in [STANDARD.encode(data), STANDARD_NO_PAD.encode(data), wrap(&STANDARD.encode(data))] {
        let decoded = Policy::decode(&field);
        assert_eq!(decoded.is_some(), expected.is_some(), "{field}");
        if let (Some(policy), Some(max_size)) = (decoded, expected) {
            assert_eq!(policy.max_size, max_size, "{field}");
        }
    }
}

/// The smallest upper bound of the policy's `content-length-range` conditions, written independently of
/// the crate's decoder.
fn smallest_max(policy: &serde_json::Map<String, Value>) -> Option<u64> {
    let Some(Value::Array(conditions)) = policy.get("conditions") else { return None };
    conditions
        .iter()
        .filter_map(|condition| match condition {
            Value::Array(parts) if parts.len() == 3 => Some(parts),
            _ => None,
        })
        .filter(
            |parts| matches!(&parts[0], Value::String(name) if name.to_lowercase() == "content-length-range"),
        )
        .filter_map(|parts| match &parts[2] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        })
        .min()
}

/// `text` broken into MIME-style lines of 76 characters.
fn wrap(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(76).map(|line| line.iter().collect::<String>()).collect::<Vec<_>>().join("\r\n")
}

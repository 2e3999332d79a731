//! Compact JSON text written by hand, byte for byte as serde_json writes it, for the few values a
//! run encodes once per file (the journal's records, the upload form kept in them).
//!
//! serde_json looks at every byte of a string through a 256-entry table to find the few it must
//! escape; a record line is mostly strings (ids, asset ids, checksums, a form's base64 policy). Here a
//! string is checked in one branch-free pass the compiler vectorizes, and copied as it is when nothing
//! in it needs escaping, as is almost always the case.
//!
//! ```
//! let mut out = Vec::new();
//! spinlift_core::json::push_str(&mut out, "a \"b\"\n");
//! assert_eq!(out, br#""a \"b\"\n""#);
//! ```

/// Appends `text` as a JSON string (quotes included): `"`, `\` and the control characters below
/// 0x20 escaped as serde_json escapes them (`\b`, `\t`, `\n`, `\f`, `\r`, else `\u00XX` in lower
/// case hex), everything else, non-ASCII included, as it is.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let escapes = bytes.iter().fold(false, |any, &b| any | (b < 0x20) | (b == b'"') | (b == b'\\'));
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if escapes {
        push_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0..0x20 => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `n` as a JSON number.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `n` as a JSON number.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_json(text: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, text);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        for text in ["", "plain", "a\"b\\c", "\u{7f}é😀", &every_control, "end\n", "\r\n\t\u{8}\u{c}"] {
            assert_eq!(str_json(text), serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for n in [0, 1, 9, 10, 4096, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
        for n in [0, -1, 1_796_535_150_320, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in "(?s).{0,64}") {
            proptest::prop_assert_eq!(str_json(&text), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn any_number_is_written_as_serde_json_writes_it(u in proptest::num::u64::ANY, i in proptest::num::i64::ANY) {
            let mut out = Vec::new();
            push_u64(&mut out, u);
            push_i64(&mut out, i);
            let mut want = serde_json::to_vec(&u).unwrap();
            want.extend(serde_json::to_vec(&i).unwrap());
            proptest::prop_assert_eq!(out, want);
        }
    }
}

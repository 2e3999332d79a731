//! A fast path for the line most of a finished journal consists of: a `Registered` record exactly as
//! [`encode_record`](super::record::encode_record) writes it,
//!
//! ```text
//! {"id":"…","state":{"state":"registered","asset_id":"…","size":N,"md5":"…"},"source":{"size":N,"mtime_ms":N,"tag":N}}
//! ```
//!
//! (`source` optional, and `tag` in it). serde's internally tagged `State` buffers every field before it knows the
//! variant, which makes such a line several times dearer than reading it byte by byte.
//!
//! The fast path accepts a subset of what serde accepts and gives the same values: strings without
//! escapes or control characters and valid UTF-8, integers without sign (`mtime_ms`: with `-`),
//! leading zeros, fraction or exponent, no whitespace, the fields in the order written. Any other line
//! (`None`) is left to serde, which decides whether it is valid. A test feeds every `State` variant and
//! random lines to both and compares.

use spinlift_core::State;
use spinlift_core::json::{push_i64, push_str, push_u64};

use super::record::SourceStamp;

/// Appends `state` as serde_json writes it (`{"state":"registered","asset_id":…}`), for the states a
/// run writes once per file; `false`, with nothing written, for the others (serde writes those).
pub(super) fn write_state(state: &State, out: &mut Vec<u8>) -> bool {
    // `{"state":"<tag>","asset_id":"…"`: how every state with an asset id begins.
    let begin = |out: &mut Vec<u8>, tag: &[u8], asset_id: &str| {
        out.extend_from_slice(br#"{"state":""#);
        out.extend_from_slice(tag);
        out.extend_from_slice(br#"","asset_id":"#);
        push_str(out, asset_id);
    };
    match state {
        State::Pending => out.extend_from_slice(br#"{"state":"pending"}"#),
        State::FormIssued { asset_id, expires_at } | State::Uploading { asset_id, expires_at } => {
            let tag: &[u8] =
                if matches!(state, State::FormIssued { .. }) { b"form_issued" } else { b"uploading" };
            begin(out, tag, asset_id);
            out.extend_from_slice(br#","expires_at":"#);
            push_i64(out, expires_at.0);
            out.push(b'}');
        }
        State::Uploaded { asset_id, size, md5, started_at, completed_at } => {
            begin(out, b"uploaded", asset_id);
            write_size_md5(out, *size, md5);
            out.extend_from_slice(br#","started_at":"#);
            push_i64(out, started_at.0);
            out.extend_from_slice(br#","completed_at":"#);
            push_i64(out, completed_at.0);
            out.push(b'}');
        }
        State::Registered { asset_id, size, md5 } | State::DataSet { asset_id, size, md5 } => {
            let tag: &[u8] =
                if matches!(state, State::Registered { .. }) { b"registered" } else { b"data_set" };
            begin(out, tag, asset_id);
            write_size_md5(out, *size, md5);
            out.push(b'}');
        }
        _ => return false,
    }
    true
}

fn write_size_md5(out: &mut Vec<u8>, size: u64, md5: &str) {
    out.extend_from_slice(br#","size":"#);
    push_u64(out, size);
    out.extend_from_slice(br#","md5":"#);
    push_str(out, md5);
}

/// Appends `source` as serde_json writes it (`tag` only when it is not 0).
pub(super) fn write_source(source: &SourceStamp, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"size":"#);
    push_u64(out, source.size);
    out.extend_from_slice(br#","mtime_ms":"#);
    push_i64(out, source.mtime_ms);
    if source.tag != 0 {
        out.extend_from_slice(br#","tag":"#);
        push_u64(out, source.tag);
    }
    out.push(b'}');
}

/// The parts of a `Registered` record line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RegisteredLine<'a> {
    pub(super) id: &'a str,
    pub(super) asset_id: &'a str,
    pub(super) size: u64,
    pub(super) md5: &'a str,
    pub(super) source: Option<SourceStamp>,
}

/// `text` (a line without its `\n`) as a `Registered` record, if it is one written the usual way.
pub(super) fn registered_line(text: &[u8]) -> Option<RegisteredLine<'_>> {
    let mut line = Cursor { text, at: 0 };
    line.expect(br#"{"id":""#)?;
    let id = line.string()?;
    line.expect(br#","state":{"state":"registered","asset_id":""#)?;
    let asset_id = line.string()?;
    line.expect(br#","size":"#)?;
    let size = line.unsigned()?;
    line.expect(br#","md5":""#)?;
    let md5 = line.string()?;
    line.expect(b"}")?;
    let source = if line.expect(b"}").is_some() {
        None
    } else {
        line.expect(br#","source":{"size":"#)?;
        let size = line.unsigned()?;
        line.expect(br#","mtime_ms":"#)?;
        let mtime_ms = line.signed()?;
        let tag = if line.expect(b"}}").is_some() {
            0
        } else {
            line.expect(br#","tag":"#)?;
            let tag = line.unsigned()?;
            line.expect(b"}}")?;
            tag
        };
        Some(SourceStamp { size, mtime_ms, tag })
    };
    (line.at == text.len()).then_some(RegisteredLine { id, asset_id, size, md5, source })
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn expect(&mut self, literal: &[u8]) -> Option<()> {
        let rest = &self.text[self.at..];
        rest.starts_with(literal).then(|| self.at += literal.len())
    }

    /// The rest of a string whose opening quote is consumed, and its closing quote.
    fn string(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.at..];
        let len = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        let text = std::str::from_utf8(&rest[..len]).ok()?;
        self.at += len + 1;
        Some(text)
    }

    /// `0`, or a digit 1–9 followed by digits, that fits a `u64`.
    fn unsigned(&mut self) -> Option<u64> {
        let rest = &self.text[self.at..];
        let len = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
        let digits = &rest[..len];
        if digits.is_empty() || (digits[0] == b'0' && len > 1) {
            return None;
        }
        let mut value = 0u64;
        for &digit in digits {
            value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        }
        self.at += len;
        Some(value)
    }

    /// An unsigned integer, or `-` and a non-zero one, that fits an `i64` (serde_json reads `-0` as a
    /// float, which an `i64` field refuses).
    fn signed(&mut self) -> Option<i64> {
        let negative = self.expect(b"-").is_some();
        let magnitude = i64::try_from(self.unsigned()?).ok()?;
        match negative {
            true if magnitude == 0 => None,
            true => Some(-magnitude),
            false => Some(magnitude),
        }
    }
}

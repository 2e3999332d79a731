//! In-process servers for the tests: a real S3 (s3s over s3s-fs) and a scriptable http server.
#![allow(dead_code)]

pub(crate) mod http;
pub(crate) mod s3;

use md5::{Digest, Md5};

/// `len` bytes of a fixed pattern (not all alike, so a misplaced chunk shows).
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect()
}

pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

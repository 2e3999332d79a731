//! What a source says about an object, and its fingerprint for change detection.

use md5::{Digest, Md5};

/// What a source says about an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ObjectMeta {
    /// Its length in bytes.
    pub size: u64,
    /// Its ETag exactly as the source gives it, quotes included (S3: `"9e107d9d372bb6826bd81d3542a419d6"`;
    /// none for local files).
    pub etag: Option<String>,
    /// Its version (S3 `x-amz-version-id`, GCS generation), when the source has versions.
    pub version: Option<String>,
    /// When it was last modified, in milliseconds since the Unix epoch (a local file's mtime).
    pub last_modified_ms: Option<i64>,
}

impl ObjectMeta {
    /// A stable, platform-independent 64-bit fingerprint of the object's identity for change detection,
    /// or 0 when the source gives nothing to fingerprint.
    ///
    /// The first 8 bytes, read big-endian, of the MD5 of:
    /// - `"etag:"` followed by the ETag with one pair of surrounding double quotes removed (so
    ///   `"abc"` and `abc` agree; a weak `W/"abc"` stays distinct), when there is an ETag;
    /// - else `"version:"` followed by the version, when there is one;
    /// - else nothing: the fingerprint is 0.
    ///
    /// A hash that happens to be 0 is given as 1, so 0 always means "none". Size and modification time
    /// are not part of it: compare them separately.
    pub fn fingerprint(&self) -> u64 {
        let input = match (&self.etag, &self.version) {
            (Some(etag), _) => {
                let bare = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag);
                format!("etag:{bare}")
            }
            (None, Some(version)) => format!("version:{version}"),
            (None, None) => return 0,
        };
        let digest = Md5::digest(input.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        match u64::from_be_bytes(first) {
            0 => 1,
            hash => hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(etag: Option<&str>, version: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            size: 1,
            etag: etag.map(Into::into),
            version: version.map(Into::into),
            last_modified_ms: None,
        }
    }

    #[test]
    fn fingerprints_are_spelled_out_and_stable() {
        // MD5("etag:abc") = 68d60c08e703f892…, MD5("version:v1") = 52402a79994b56df…: pinned, so that a
        // change of the recipe (which would make every stored fingerprint look changed) is noticed.
        let expected = 0x68d6_0c08_e703_f892;
        assert_eq!(meta(Some("\"abc\""), None).fingerprint(), expected);
        assert_eq!(meta(Some("abc"), None).fingerprint(), expected);
        assert_eq!(
            meta(Some("\"abc\""), Some("v1")).fingerprint(),
            expected,
            "the ETag wins over the version"
        );
        assert_ne!(meta(Some("W/\"abc\""), None).fingerprint(), expected);
        assert_ne!(meta(Some("\"abd\""), None).fingerprint(), expected);
        assert_eq!(meta(None, Some("v1")).fingerprint(), 0x5240_2a79_994b_56df);
        assert_eq!(meta(None, None).fingerprint(), 0);
        assert_eq!(ObjectMeta { size: 99, ..meta(Some("abc"), None) }.fingerprint(), expected);
    }
}

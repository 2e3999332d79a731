//! The manifest fingerprint a journal's header carries: which manifest the journal belongs to.

use md5::{Digest, Md5};

/// A stable fingerprint of a manifest's entry ids, in order: 32 lowercase hex digits (MD5).
///
/// A journal written for one manifest carries its fingerprint in the header; a re-run compares it with
/// the fingerprint of the manifest it was given before it resumes. Each id is hashed with its length
/// in front, so `["ab", "c"]` and `["a", "bc"]` differ. MD5 serves as a checksum here, not as a defence
/// against someone crafting two manifests with one fingerprint.
///
/// ```
/// use spinlift_manifest::journal::fingerprint_ids;
/// let a = fingerprint_ids(["photo-1", "photo-2"].into_iter());
/// assert_eq!(a, fingerprint_ids(["photo-1", "photo-2"].into_iter()));
/// assert_ne!(a, fingerprint_ids(["photo-2", "photo-1"].into_iter()));
/// assert_eq!(a.len(), 32);
/// ```
pub fn fingerprint_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut hasher = Md5::new();
    for id in ids {
        hasher.update((id.len() as u64).to_le_bytes());
        hasher.update(id.as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

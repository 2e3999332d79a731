//! Asset ids and the object keys FileSpin stores originals under.

use uuid::Uuid;

/// The longest file name component most file systems allow (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A fresh asset id: 32 lowercase hex digits, like the docs' `ec279822540b412e903827f473bb53a3`.
pub(crate) fn new_asset_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// What the policy lets an asset's key start with.
pub(crate) fn key_prefix(asset_id: &str) -> String {
    format!("originals/{asset_id}/")
}

/// The object key for an asset, laid out as in the docs' example
/// (`originals/<asset_id>/original/original__photo.jpg`, "Get Storage Upload URL", developers.filespin.io).
///
/// The docs do not say what FileSpin does with awkward file names; we make the name one harmless path
/// segment (see [`sanitize`]) and shorten it to fit `max_key_len` (see [`max_key_len`]).
pub(crate) fn object_key(asset_id: &str, filename: &str, max_key_len: usize) -> String {
    let head = format!("{}original/original__", key_prefix(asset_id));
    let room = max_key_len.saturating_sub(head.len());
    head + &shorten(&sanitize(filename), room)
}

/// The longest key the store can hold in the bucket.
///
/// s3s-fs keeps each object's metadata beside it in a file named
/// `.bucket-<base64 bucket>.object-<base64 key>.metadata.json` (and `.internal.json`), so that name,
/// not S3's 1024-byte key limit, bounds the key: past it every upload fails with a 500.
pub(crate) fn max_key_len(bucket: &str) -> usize {
    let fixed = ".bucket-".len() + base64_len(bucket.len()) + ".object-".len() + ".metadata.json".len();
    // base64 without padding: 4 characters for every 3 bytes, so n bytes fit in floor(3 * room / 4).
    NAME_MAX.saturating_sub(fixed) * 3 / 4
}

fn base64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// One path segment made of the file name: no `/` or `\`, no control characters, no `..`.
fn sanitize(filename: &str) -> String {
    let flat: String =
        filename.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    flat.replace("..", "_")
}

/// `name` cut to at most `room` bytes on a character boundary, keeping a short extension.
fn shorten(name: &str, room: usize) -> String {
    if name.len() <= room {
        return name.to_owned();
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 && name.len() - dot < room => &name[dot..],
        _ => "",
    };
    let mut stem_len = room - extension.len();
    while !name.is_char_boundary(stem_len) {
        stem_len -= 1;
    }
    format!("{}{extension}", &name[..stem_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ec279822540b412e903827f473bb53a3";

    #[test]
    fn asset_ids_are_32_lowercase_hex_digits() {
        let id = new_asset_id();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{id}");
        assert_ne!(id, new_asset_id());
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(
            object_key(ID, "photo.jpg", 1024),
            "originals/ec279822540b412e903827f473bb53a3/original/original__photo.jpg"
        );
    }

    #[test]
    fn file_names_cannot_leave_their_segment() {
        let key = object_key(ID, "../../etc/passwd", 1024);
        assert_eq!(key, format!("originals/{ID}/original/original______etc_passwd"));
        let key = object_key(ID, "a\\b\r\n..c...d", 1024);
        assert_eq!(key, format!("originals/{ID}/original/original__a_b___c_.d"));
    }

    #[test]
    fn long_names_are_cut_to_fit_keeping_the_extension() {
        let max = max_key_len("spinlift-emulator");
        let key = object_key(ID, &format!("{}.jpeg", "é".repeat(200)), max);
        assert!(key.len() <= max, "{} > {max}", key.len());
        assert!(key.ends_with("é.jpeg"), "{key}");
    }

    #[test]
    fn the_longest_key_still_names_a_metadata_file_the_file_system_accepts() {
        for bucket in ["abc", "spinlift-emulator", &"b".repeat(63)] {
            let max = max_key_len(bucket);
            let bucket_b64 = "x".repeat(base64_len(bucket.len()));
            let key_b64 = "y".repeat(base64_len(max));
            let file = format!(".bucket-{bucket_b64}.object-{key_b64}.metadata.json");
            assert!(file.len() <= NAME_MAX, "{bucket}: {}", file.len());
            assert!(max >= 100, "{bucket}: {max}");
        }
    }
}

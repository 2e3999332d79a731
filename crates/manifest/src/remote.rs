//! Remote entries: objects named by URL (`s3://`, `gs://`, `az://`, `https://`) instead of a local
//! path, alone or relative to the manifest's `source_root`.
//!
//! Checked lexically when the manifest is read, by the same rule as local paths: an entry relative to
//! `source_root` may not climb out of it with `..`, and an absolute URL must lie under `source_root`
//! when the manifest has one. The URL is parsed for real, and the object read, at run time
//! (`spinlift-source`); this crate makes no network call.

/// The schemes a `source` may have.
pub const SOURCE_SCHEMES: &[&str] = &["s3", "gs", "az", "http", "https"];

/// `text` as a source root: an absolute URL of a known scheme with a bucket, container or host, and no
/// query; returned ending in `/`, so that joining a relative entry is appending it.
pub(crate) fn normalize_root(text: &str) -> Result<String, String> {
    let url = parse_absolute(text).map_err(|why| format!("`source_root` {text:?}: {why}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`source_root` {:?} has a query or fragment; give the prefix alone",
            redact(text)
        ));
    }
    let mut root = text.to_owned();
    if !root.ends_with('/') {
        root.push('/');
    }
    Ok(root)
}

/// Whether `text` is written as an absolute URL (`scheme://…`).
pub(crate) fn is_absolute(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Why an entry's `source` is not usable under `root` (the normalized `source_root`, if any).
pub(crate) fn check_source(root: Option<&str>, source: &str) -> Result<(), String> {
    if source.is_empty() {
        return Err("`source` is empty".into());
    }
    if is_absolute(source) {
        parse_absolute(source).map_err(|why| format!("source {:?}: {why}", redact(source)))?;
        if let Some(root) = root {
            let path = source.split(['?', '#']).next().unwrap_or(source);
            if !path.starts_with(root) || crate::paths::climbs_out(&path[root.len()..]) {
                return Err(format!(
                    "source {:?} is outside the manifest's source_root {root:?}; sources must stay \
                     inside it",
                    redact(source)
                ));
            }
        } else if has_dot_dot(source) {
            return Err(format!(
                "source {:?} has a `..` segment; write the object's own key",
                redact(source)
            ));
        }
        return Ok(());
    }
    let Some(root) = root else {
        return Err(format!(
            "source {source:?} is relative, but the manifest has no `source_root`; give a URL \
             (s3://bucket/key, gs://, az://, https://) or a `source_root` in the header"
        ));
    };
    if source.starts_with('/') || crate::paths::climbs_out(source) {
        return Err(format!(
            "source {source:?} is outside the manifest's source_root {root:?}; sources must stay inside it"
        ));
    }
    Ok(())
}

/// The name FileSpin is told for a remote entry, by default: the last segment of the URL's path
/// (without query or fragment; percent-decoded for http(s), whose paths are percent-encoded), or
/// `None` when that is empty (`https://host/`).
pub(crate) fn default_filename(source: &str, root: Option<&str>) -> Option<String> {
    let path = source.split(['?', '#']).next().unwrap_or(source);
    let last = path.rsplit('/').next().unwrap_or(path);
    if last.is_empty() || last == "." || last == ".." {
        return None;
    }
    let scheme = if is_absolute(source) { source } else { root.unwrap_or_default() };
    if scheme.starts_with("http://") || scheme.starts_with("https://") {
        let decoded = percent_decode(last)?;
        (!decoded.is_empty() && !decoded.contains('/')).then_some(decoded)
    } else {
        Some(last.to_owned())
    }
}

/// A source as it may be shown (reports, errors, logs, default ids): without its query and fragment
/// (an https source's query may be a signature) and without user information.
pub fn redact(source: &str) -> String {
    let (mut shown, cut) = match source.find(['?', '#']) {
        Some(at) => (source[..at].to_owned(), true),
        None => (source.to_owned(), false),
    };
    if let Some((scheme, rest)) = shown.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            shown = format!("{scheme}://{}", &rest[at + 1..]);
        }
    }
    if cut {
        shown.push_str("?…");
    }
    shown
}

fn parse_absolute(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !SOURCE_SCHEMES.contains(&url.scheme()) {
        return Err(format!("scheme `{}` is not one spinlift reads (s3, gs, az, http, https)", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(match url.scheme() {
            "s3" | "gs" => "no bucket: write s3://BUCKET/KEY".to_owned(),
            "az" => "no container: write az://CONTAINER/KEY".to_owned(),
            _ => "no host".to_owned(),
        });
    }
    Ok(url)
}

fn has_dot_dot(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.split('/').skip(3).any(|segment| segment == "..")
}

/// `%XX` sequences decoded; `None` when the result is not UTF-8 or a sequence is broken.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_ends_in_a_slash_and_names_a_bucket() {
        assert_eq!(normalize_root("s3://old-dam/media").unwrap(), "s3://old-dam/media/");
        assert_eq!(normalize_root("gs://b/").unwrap(), "gs://b/");
        assert_eq!(
            normalize_root("https://cdn.example.com/files/").unwrap(),
            "https://cdn.example.com/files/"
        );
        assert!(normalize_root("s3:///key").unwrap_err().contains("no bucket"));
        assert!(normalize_root("ftp://host/x").unwrap_err().contains("scheme `ftp`"));
        assert!(normalize_root("media/").unwrap_err().contains("not a URL"));
        let err = normalize_root("https://h/x?sig=SECRET").unwrap_err();
        assert!(err.contains("query") && !err.contains("SECRET"), "{err}");
    }

    #[test]
    fn relative_sources_stay_inside_the_root() {
        let root = Some("s3://old-dam/media/");
        assert!(check_source(root, "photos/a.jpg").is_ok());
        assert!(check_source(root, "photos/../a.jpg").is_ok());
        assert!(check_source(root, "../secret/a.jpg").unwrap_err().contains("outside"));
        assert!(check_source(root, "photos/../../a.jpg").unwrap_err().contains("outside"));
        assert!(check_source(root, "/a.jpg").unwrap_err().contains("outside"));
        assert!(check_source(root, ".").unwrap_err().contains("outside"));
        assert!(check_source(None, "photos/a.jpg").unwrap_err().contains("no `source_root`"));
        assert!(check_source(root, "").is_err());
    }

    #[test]
    fn absolute_sources_must_lie_under_the_root_when_there_is_one() {
        assert!(check_source(None, "s3://other/x.jpg").is_ok());
        assert!(check_source(None, "https://h/a.jpg?token=1").is_ok());
        assert!(check_source(None, "s3://b/a/../../x").unwrap_err().contains("`..`"));
        let root = Some("s3://old-dam/media/");
        assert!(check_source(root, "s3://old-dam/media/a.jpg").is_ok());
        assert!(check_source(root, "s3://old-dam/mediafiles/a.jpg").unwrap_err().contains("outside"));
        assert!(check_source(root, "s3://old-dam/media/../secret").unwrap_err().contains("outside"));
        assert!(check_source(root, "s3://other/media/a.jpg").unwrap_err().contains("outside"));
        assert!(check_source(None, "ftp://h/a").unwrap_err().contains("scheme"));
        let err = check_source(None, "sftp://user:pw@h/a").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn file_names_come_from_the_last_segment() {
        assert_eq!(default_filename("s3://b/photos/a.jpg", None).as_deref(), Some("a.jpg"));
        assert_eq!(default_filename("photos/a b.jpg", Some("s3://b/")).as_deref(), Some("a b.jpg"));
        assert_eq!(default_filename("https://h/x/a%20b.jpg?sig=1", None).as_deref(), Some("a b.jpg"));
        assert_eq!(default_filename("x/a%20b.jpg", Some("https://h/")).as_deref(), Some("a b.jpg"));
        assert_eq!(default_filename("https://h/", None), None);
        assert_eq!(default_filename("https://h/a%2Fb", None), None, "a decoded '/' is no file name");
    }

    #[test]
    fn shown_sources_carry_no_query_and_no_user() {
        assert_eq!(redact("https://h/a.jpg?X-Amz-Signature=abc"), "https://h/a.jpg?…");
        assert_eq!(redact("https://user:pw@h/a.jpg"), "https://h/a.jpg");
        assert_eq!(redact("s3://b/k"), "s3://b/k");
        assert_eq!(redact("photos/a.jpg"), "photos/a.jpg");
    }
}

//! Keeping credentials out of messages: URLs without their query, secrets scrubbed, text bounded.

/// Longest server message kept in an error (characters).
const MAX_MESSAGE_CHARS: usize = 500;

/// `scheme://host[:port]/path` — a pre-signed URL's query carries its signature, so it never goes
/// into an error or a log (object_store strips URLs from its errors for the same reason).
pub(crate) fn url_without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        Err(_) => {
            let end = url.find(['?', '#']).unwrap_or(url.len());
            url[..end].to_owned()
        }
    }
}

/// Replaces every occurrence of each secret with `REDACTED`, folds the text onto one line and bounds
/// its length, so a server that echoes a credential cannot leak it through our errors.
pub(crate) fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret) {
            out = out.replace(secret, "REDACTED");
        }
    }
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query_and_credentials() {
        assert_eq!(
            url_without_query("https://b.s3.amazonaws.com/up?X-Amz-Signature=abc#frag"),
            "https://b.s3.amazonaws.com/up"
        );
        assert_eq!(url_without_query("https://user:pw@host/"), "https://host/");
        assert_eq!(url_without_query("not a url?sig=1"), "not a url");
    }

    #[test]
    fn secrets_are_scrubbed_and_text_bounded() {
        assert_eq!(scrub("bad key\n  sk-123 given", ["sk-123"]), "bad key REDACTED given");
        assert_eq!(scrub("x", [""]), "x");
        let long = "a".repeat(2000);
        assert_eq!(scrub(&long, []).chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}

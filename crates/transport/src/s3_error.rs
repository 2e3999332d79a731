//! S3's error document: `<Error><Code>…</Code><Message>…</Message></Error>` (AWS S3 "Error responses").

/// The code and message of an S3 error document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct S3Error {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

impl S3Error {
    /// Reads an error document; `None` when the body is not one (no `<Error>` element).
    ///
    /// A tiny hand parser is enough: we need two leaf elements of a flat document, and everything else
    /// in it (`RequestId`, `HostId`, and for signature errors `StringToSign`/`SignatureProvided`) is
    /// deliberately ignored.
    pub(crate) fn parse(body: &[u8]) -> Option<S3Error> {
        let text = String::from_utf8_lossy(body);
        let start = find_element_start(&text, "Error")?;
        let inner = &text[start..];
        let error = S3Error { code: leaf(inner, "Code"), message: leaf(inner, "Message") };
        Some(error)
    }

    /// Whether a 2xx body is in fact an error document (object_store's `body_contains_error`).
    pub(crate) fn in_success_body(body: &[u8]) -> Option<S3Error> {
        S3Error::parse(body).filter(|e| e.code.is_some())
    }
}

/// Byte offset just past `<name>` or `<name attr…>`.
fn find_element_start(text: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = text[from..].find('<') {
        let open = from + pos + 1;
        let rest = &text[open..];
        if let Some(after) = rest.strip_prefix(name)
            && after.starts_with(['>', ' ', '\t', '\r', '\n', '/'])
        {
            let close = rest.find('>')?;
            if rest[..close].ends_with('/') {
                return None; // <Error/>: an empty error document
            }
            return Some(open + close + 1);
        }
        from = open;
    }
    None
}

/// The unescaped text of the first `<name>…</name>` in `text`.
fn leaf(text: &str, name: &str) -> Option<String> {
    let start = find_element_start(text, name)?;
    let end = text[start..].find(&format!("</{name}>"))? + start;
    let raw = &text[start..end];
    let raw = raw
        .strip_prefix("<![CDATA[")
        .and_then(|r| r.strip_suffix("]]>"))
        .map_or_else(|| unescape(raw), str::to_owned);
    let value = raw.trim().to_owned();
    (!value.is_empty()).then_some(value)
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&s| s <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_aws_error_document() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy expired.</Message><RequestId>R1</RequestId><HostId>H1</HostId></Error>"#;
        assert_eq!(
            S3Error::parse(body),
            Some(S3Error {
                code: Some("AccessDenied".into()),
                message: Some("Invalid according to Policy: Policy expired.".into())
            })
        );
    }

    #[test]
    fn unescapes_entities_and_ignores_signature_details() {
        let body = b"<Error>\n  <Code>SignatureDoesNotMatch</Code>\n  <Message>a &lt;b&gt; &amp; &quot;c&quot; &#65;&#x42; &bogus;</Message>\n  <StringToSign>secret-policy</StringToSign><SignatureProvided>sig</SignatureProvided>\n</Error>";
        let error = S3Error::parse(body).unwrap();
        assert_eq!(error.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error.message.as_deref(), Some("a <b> & \"c\" AB &bogus;"));
    }

    #[test]
    fn not_an_error_document() {
        assert_eq!(S3Error::parse(b""), None);
        assert_eq!(S3Error::parse(b"<PostResponse><Key>k</Key></PostResponse>"), None);
        assert_eq!(S3Error::parse(b"<Errors>x</Errors>"), None);
        assert_eq!(S3Error::parse(b"<Error/>"), None);
        assert_eq!(
            S3Error::parse(b"<Error><Message>only</Message></Error>"),
            Some(S3Error { code: None, message: Some("only".into()) })
        );
        assert_eq!(
            S3Error::parse(b"<Error><Code><![CDATA[SlowDown]]></Code></Error>").unwrap().code.as_deref(),
            Some("SlowDown")
        );
    }

    #[test]
    fn a_success_body_can_hide_an_error() {
        assert!(S3Error::in_success_body(b"").is_none());
        assert!(S3Error::in_success_body(b"<PostResponse><Location>x</Location></PostResponse>").is_none());
        let hidden = S3Error::in_success_body(
            b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
        )
        .unwrap();
        assert_eq!(hidden.code.as_deref(), Some("InternalError"));
    }
}

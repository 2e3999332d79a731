//! FileSpin's error answers.
//!
//! The "Get Storage Upload URL" page (developers.filespin.io) names the error codes of a 400 —
//! `MISSING_MANDATORY_PARAMETERS`, `ASSET_ID_EXISTS`, `INVALID_REQUEST` — and the reasons of a 403
//! (authentication failed, upload limit exceeded, account disabled), but it is silent on the shape of
//! the error body. So the code is looked for in a JSON body's `error` / `code` / `error_code` fields
//! (also one level down, `{"error": {"code": …}}`), and failing that as a substring of the body text;
//! the message in `message` / `detail` / `error_description` / a non-code `error`, or else the text.

/// Codes documented for the two FileSpin calls, plus the ones spinlift's later steps meet; searched
/// for in the body text when the body is not JSON or has no code field.
const KNOWN_CODES: &[&str] = &[
    "ASSET_ID_EXISTS",
    "MISSING_MANDATORY_PARAMETERS",
    "INVALID_REQUEST",
    "UPLOAD_LIMIT_EXCEEDED",
    "ACCOUNT_DISABLED",
    "CHECKSUM_MISMATCH",
    "NOT_READY",
];

/// The code and message of a FileSpin error answer, as far as the body tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

impl ApiError {
    pub(crate) fn parse(body: &[u8]) -> ApiError {
        let text = String::from_utf8_lossy(body);
        let mut error = ApiError::default();
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
            from_json(&json, &mut error, 0);
        } else if !text.trim().is_empty() {
            error.message = Some(text.trim().to_owned());
        }
        if error.code.is_none() {
            error.code = KNOWN_CODES.iter().find(|code| text.contains(*code)).map(|code| (*code).to_owned());
        }
        error
    }
}

fn from_json(json: &serde_json::Value, error: &mut ApiError, depth: u8) {
    match json {
        serde_json::Value::Object(map) => {
            for key in ["code", "error_code", "errorCode", "error"] {
                match map.get(key) {
                    Some(serde_json::Value::String(s)) if error.code.is_none() && looks_like_code(s) => {
                        error.code = Some(s.clone());
                    }
                    Some(nested @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)))
                        if depth < 2 =>
                    {
                        from_json(nested, error, depth + 1);
                    }
                    _ => {}
                }
            }
            if error.message.is_none() {
                for key in ["message", "detail", "error_description", "msg", "error"] {
                    if let Some(serde_json::Value::String(s)) = map.get(key)
                        && !s.trim().is_empty()
                        && Some(s) != error.code.as_ref()
                    {
                        error.message = Some(s.trim().to_owned());
                        break;
                    }
                }
            }
            if let Some(nested @ serde_json::Value::Array(_)) = map.get("errors")
                && depth < 2
            {
                from_json(nested, error, depth + 1);
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(first) = items.first() {
                from_json(first, error, depth + 1);
            }
        }
        serde_json::Value::String(s) if error.code.is_none() && looks_like_code(s) => {
            error.code = Some(s.clone())
        }
        serde_json::Value::String(s) if error.message.is_none() && !s.trim().is_empty() => {
            error.message = Some(s.trim().to_owned());
        }
        _ => {}
    }
}

/// `ASSET_ID_EXISTS`-like: upper case letters, digits and underscores, at least three characters.
fn looks_like_code(s: &str) -> bool {
    s.len() >= 3
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> (Option<String>, Option<String>) {
        let e = ApiError::parse(body.as_bytes());
        (e.code, e.message)
    }

    #[test]
    fn json_bodies_in_several_shapes() {
        assert_eq!(
            parse(r#"{"error": "ASSET_ID_EXISTS", "message": "asset id exists"}"#),
            (Some("ASSET_ID_EXISTS".into()), Some("asset id exists".into()))
        );
        assert_eq!(
            parse(r#"{"code": "MISSING_MANDATORY_PARAMETERS", "detail": "filename is required"}"#),
            (Some("MISSING_MANDATORY_PARAMETERS".into()), Some("filename is required".into()))
        );
        assert_eq!(
            parse(r#"{"error": {"code": "INVALID_REQUEST", "message": "unsupported protocol"}}"#),
            (Some("INVALID_REQUEST".into()), Some("unsupported protocol".into()))
        );
        assert_eq!(
            parse(r#"{"errors": [{"error_code": "UPLOAD_LIMIT_EXCEEDED"}]}"#),
            (Some("UPLOAD_LIMIT_EXCEEDED".into()), None)
        );
        assert_eq!(
            parse(r#"{"error": "Authentication failed"}"#),
            (None, Some("Authentication failed".into()))
        );
        assert_eq!(parse(r#"["ASSET_ID_EXISTS"]"#), (Some("ASSET_ID_EXISTS".into()), None));
    }

    #[test]
    fn codes_inside_text_or_unknown_json_fields() {
        assert_eq!(
            parse("Bad request: ASSET_ID_EXISTS"),
            (Some("ASSET_ID_EXISTS".into()), Some("Bad request: ASSET_ID_EXISTS".into()))
        );
        assert_eq!(
            parse(r#"{"status": "failed", "reason": "MISSING_MANDATORY_PARAMETERS: filename"}"#),
            (Some("MISSING_MANDATORY_PARAMETERS".into()), None)
        );
        assert_eq!(
            parse("<html>Internal Server Error</html>"),
            (None, Some("<html>Internal Server Error</html>".into()))
        );
        assert_eq!(parse(""), (None, None));
        // A message in capitals is not a code unless it looks like one.
        assert_eq!(parse(r#"{"message": "NOT FOUND"}"#), (None, Some("NOT FOUND".into())));
    }
}

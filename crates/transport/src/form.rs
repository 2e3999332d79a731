//! The upload form FileSpin hands out: where to POST, which signed fields to send, until when.

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use spinlift_core::UnixMillis;

use crate::clock;
use crate::redact::url_without_query;

/// How long a form is valid when FileSpin's answer does not say: "The returned URL is valid for 24 hours
/// (expiry: 86400 seconds)" (developers.filespin.io, "Get Storage Upload URL").
const DOCUMENTED_EXPIRY_SECS: i64 = 86_400;

/// A pre-signed S3 POST form from `GET /api/v1/assets/new/content_storage_url`, with the asset id it
/// was issued for.
///
/// The form's fields are credentials (a signed policy, a signature): `Debug` prints their names only,
/// and the URL without its query. The form is `Serialize` so that the engine's journal can keep it
/// across a crash; whoever stores it must treat the stored copy as a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadForm {
    /// The asset id FileSpin issued with this form.
    pub asset_id: String,
    /// The URL to POST the multipart form to (`storage.url`).
    pub url: String,
    /// `storage.fields`, in the order FileSpin sent them.
    fields: Vec<(String, String)>,
    /// `storage.key`: where the object lands in the bucket, as FileSpin reports it.
    pub key: Option<String>,
    /// `storage.bucket`.
    pub bucket: Option<String>,
    /// `storage.storage_type`, e.g. `AMAZON_S3`.
    pub storage_type: Option<String>,
    /// When the form stops being valid: the earlier of "answer received + `storage.expiry`" and the
    /// signed policy's own `expiration`.
    pub expires_at: UnixMillis,
    /// The largest file the policy accepts (the upper bound of its `content-length-range`), if it says.
    pub max_size: Option<u64>,
}

impl UploadForm {
    /// A form built by hand (tests, or a form restored from elsewhere). `key`, `bucket`,
    /// `storage_type` and `max_size` start as `None`; they are public fields to set.
    pub fn new(
        asset_id: impl Into<String>,
        url: impl Into<String>,
        fields: Vec<(String, String)>,
        expires_at: UnixMillis,
    ) -> Self {
        UploadForm {
            asset_id: asset_id.into(),
            url: url.into(),
            fields,
            key: None,
            bucket: None,
            storage_type: None,
            expires_at,
            max_size: None,
        }
    }

    /// The form fields to send before the file, in the order FileSpin sent them.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Field values worth scrubbing from anything printed (signature, policy, credential…).
    pub(crate) fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(_, value)| value.as_str()).filter(|value| value.len() >= 8)
    }

    /// Reads FileSpin's answer to `content_storage_url`, received at `received_at`.
    pub(crate) fn from_answer(body: &[u8], received_at: UnixMillis) -> Result<UploadForm, String> {
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|e| format!("the answer is not the documented JSON: {e}"))?;
        let asset_id = match answer.asset_id {
            Some(serde_json::Value::String(id)) if !id.trim().is_empty() => id,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) if !other.is_null() => {
                return Err(format!("asset_id is not a string: {}", kind_of(&other)));
            }
            _ => return Err("asset_id is missing".to_owned()),
        };
        let storage = answer.storage.ok_or("storage is missing")?;
        let url = match storage.url {
            Some(serde_json::Value::String(url)) => url,
            Some(other) if !other.is_null() => {
                return Err(format!("storage.url is not a string: {}", kind_of(&other)));
            }
            _ => return Err("storage.url is missing".to_owned()),
        };
        match url::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
            Ok(parsed) => {
                return Err(format!("storage.url is not an http(s) URL (scheme {:?})", parsed.scheme()));
            }
            Err(e) => return Err(format!("storage.url is not a URL ({e})")),
        }
        let fields = storage.fields.ok_or("storage.fields is missing")?.0;
        // The page documents `"protocol": "POST"` and INVALID_REQUEST for "unsupported protocol value";
        // an answer without the field is taken as the documented POST.
        if let Some(protocol) = &storage.protocol
            && !protocol.eq_ignore_ascii_case("POST")
        {
            return Err(format!("storage.protocol is {protocol:?}; only POST forms are supported"));
        }
        // The page shows `"storage_type": "AMAZON_S3"` and no other value; what a form for other storage
        // (Azure, GCS) looks like it does not say. A POST form is only sent where the answer names S3
        // (`AMAZON_S3`, or a spelling such as `S3`/`AWS_S3`), or names nothing.
        if let Some(kind) = &storage.storage_type
            && !kind.is_empty()
            && !kind.to_ascii_uppercase().contains("S3")
        {
            return Err(format!(
                "storage.storage_type is {kind:?}; spinlift uploads only to S3 POST forms (AMAZON_S3)"
            ));
        }
        let expiry_secs = match storage.expiry {
            None | Some(serde_json::Value::Null) => DOCUMENTED_EXPIRY_SECS,
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(n) => n,
                None => n.as_f64().map(|f| f as i64).ok_or("storage.expiry is not a number")?,
            },
            Some(serde_json::Value::String(s)) => {
                s.trim().parse::<i64>().map_err(|_| format!("storage.expiry is not a number: {s:?}"))?
            }
            Some(other) => return Err(format!("storage.expiry is not a number: {}", kind_of(&other))),
        };
        let mut expires_at = received_at.plus_secs(expiry_secs);
        let policy = fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("policy"))
            .and_then(|(_, value)| Policy::decode(value));
        let mut max_size = None;
        if let Some(policy) = policy {
            if let Some(expiration) = policy.expiration {
                expires_at = expires_at.min(expiration);
            }
            max_size = policy.max_size;
        }
        Ok(UploadForm {
            asset_id,
            url,
            fields,
            key: storage.key.filter(|k| !k.is_empty()),
            bucket: storage.bucket.filter(|b| !b.is_empty()),
            storage_type: storage.storage_type.filter(|t| !t.is_empty()),
            expires_at,
            max_size,
        })
    }
}

impl std::fmt::Debug for UploadForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Names<'a>(&'a [(String, String)]);
        impl std::fmt::Debug for Names<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_map().entries(self.0.iter().map(|(name, _)| (name, "REDACTED"))).finish()
            }
        }
        f.debug_struct("UploadForm")
            .field("asset_id", &self.asset_id)
            .field("url", &url_without_query(&self.url))
            .field("fields", &Names(&self.fields))
            .field("key", &self.key)
            .field("bucket", &self.bucket)
            .field("storage_type", &self.storage_type)
            .field("expires_at", &self.expires_at)
            .field("max_size", &self.max_size)
            .finish()
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The answer's shape, loose enough to say precisely what is missing.
#[derive(Deserialize)]
struct Answer {
    asset_id: Option<serde_json::Value>,
    storage: Option<Storage>,
}

#[derive(Deserialize)]
struct Storage {
    url: Option<serde_json::Value>,
    fields: Option<OrderedFields>,
    protocol: Option<String>,
    expiry: Option<serde_json::Value>,
    key: Option<String>,
    bucket: Option<String>,
    storage_type: Option<String>,
}

/// `storage.fields` in the order received. serde_json's own map sorts its keys (unless the
/// workspace-wide `preserve_order` feature is on), and S3 does not care about order, but sending
/// them as received keeps us byte-for-byte with the documented `curl -F` example.
struct OrderedFields(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of form fields (storage.fields)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedFields, A::Error> {
                let mut fields = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, serde_json::Value>()? {
                    let value = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(de::Error::custom(format_args!(
                                "storage.fields.{name} is {}, not a string",
                                kind_of(&other)
                            )));
                        }
                    };
                    fields.push((name, value));
                }
                Ok(OrderedFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// What spinlift reads from an AWS POST policy (the base64 `policy` field of a form): its expiration and
/// the `content-length-range` condition (AWS S3, "Creating a POST policy"). Used to refuse a file the
/// policy would reject before any byte is sent, and to trust the earlier of two expiries.
///
/// ```
/// use base64::Engine as _;
/// let json = r#"{"expiration": "2024-05-16T15:43:02Z",
///               "conditions": [["content-length-range", 0, 1048576]]}"#;
/// let field = base64::engine::general_purpose::STANDARD.encode(json);
/// let policy = spinlift_transport::Policy::decode(&field).unwrap();
/// assert_eq!(policy.max_size, Some(1_048_576));
/// assert!(policy.expiration.is_some());
/// assert_eq!(spinlift_transport::Policy::decode("not base64 JSON"), None);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// The policy's `expiration`, when it has a readable one.
    pub expiration: Option<UnixMillis>,
    /// The smallest upper bound of its `content-length-range` conditions, if any.
    pub max_size: Option<u64>,
}

impl Policy {
    /// Decodes a policy field; `None` when it is not base64 JSON (then the form is taken as opaque).
    /// Never panics, whatever the input.
    pub fn decode(field: &str) -> Option<Policy> {
        let compact: String = field.chars().filter(|c| !c.is_whitespace()).collect();
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = lenient.decode(compact.as_bytes()).ok()?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let object = json.as_object()?;
        let expiration = object.get("expiration").and_then(|e| e.as_str()).and_then(clock::parse_rfc3339);
        let mut max_size: Option<u64> = None;
        for condition in object.get("conditions").and_then(|c| c.as_array()).into_iter().flatten() {
            let Some([name, _min, max]) = condition.as_array().map(Vec::as_slice) else { continue };
            if !name.as_str().is_some_and(|n| n.eq_ignore_ascii_case("content-length-range")) {
                continue;
            }
            let max = match max {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            if let Some(max) = max {
                max_size = Some(max_size.map_or(max, |m| m.min(max)));
            }
        }
        Some(Policy { expiration, max_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const RECEIVED: UnixMillis = UnixMillis(1_715_787_782_000); // 2024-05-15T15:43:02Z

    fn answer(policy: &str) -> String {
        format!(
            r#"{{
              "asset_id": "ec279822540b412e903827f473bb53a3",
              "storage": {{
                "name": "photo.jpg",
                "url": "https://my-bucket.s3.amazonaws.com/",
                "fields": {{
                  "key": "originals/ec27/original/original__photo.jpg",
                  "x-amz-algorithm": "AWS4-HMAC-SHA256",
                  "x-amz-credential": "AKIAEXAMPLE/20240515/eu-west-2/s3/aws4_request",
                  "x-amz-date": "20240515T154302Z",
                  "policy": "{policy}",
                  "x-amz-signature": "cc47e86f1353deadbeef"
                }},
                "protocol": "POST",
                "expiry": 86400,
                "key": "/originals/ec27/original/original__photo.jpg",
                "bucket": "my-bucket",
                "storage_type": "AMAZON_S3"
              }}
            }}"#
        )
    }

    fn policy(json: &str) -> String {
        STANDARD.encode(json)
    }

    #[test]
    fn reads_the_documented_example_keeping_field_order() {
        let form = UploadForm::from_answer(answer("eyJleHBpcmF0aW9uIjog").as_bytes(), RECEIVED).unwrap();
        assert_eq!(form.asset_id, "ec279822540b412e903827f473bb53a3");
        assert_eq!(form.url, "https://my-bucket.s3.amazonaws.com/");
        let names: Vec<&str> = form.fields().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["key", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "policy", "x-amz-signature"]
        );
        assert_eq!(form.key.as_deref(), Some("/originals/ec27/original/original__photo.jpg"));
        assert_eq!(form.bucket.as_deref(), Some("my-bucket"));
        assert_eq!(form.storage_type.as_deref(), Some("AMAZON_S3"));
        // The truncated example policy does not decode: the expiry alone decides.
        assert_eq!(form.expires_at, RECEIVED.plus_secs(86_400));
        assert_eq!(form.max_size, None);
    }

    #[test]
    fn the_policy_can_shorten_the_expiry_and_bound_the_size() {
        let p = policy(
            r#"{"expiration": "2024-05-15T16:43:02.000Z", "conditions": [{"bucket": "my-bucket"},
               ["starts-with", "$key", "originals/"], ["content-length-range", 0, 10485760]]}"#,
        );
        let form = UploadForm::from_answer(answer(&p).as_bytes(), RECEIVED).unwrap();
        assert_eq!(form.expires_at, RECEIVED.plus_secs(3600));
        assert_eq!(form.max_size, Some(10_485_760));

        // A later policy expiration does not extend the documented expiry.
        let p = policy(
            r#"{"expiration": "2024-05-20T00:00:00Z", "conditions": [["content-length-range", "1", "99"]]}"#,
        );
        let form = UploadForm::from_answer(answer(&p).as_bytes(), RECEIVED).unwrap();
        assert_eq!(form.expires_at, RECEIVED.plus_secs(86_400));
        assert_eq!(form.max_size, Some(99));
    }

    #[test]
    fn policy_decoding_is_lenient_about_padding_and_junk() {
        let unpadded = policy(r#"{"expiration":"2024-05-15T15:43:02Z","conditions":[]}"#);
        let unpadded = unpadded.trim_end_matches('=');
        assert_eq!(Policy::decode(unpadded), Some(Policy { expiration: Some(RECEIVED), max_size: None }));
        assert_eq!(Policy::decode("not base64 at all!"), None);
        assert_eq!(Policy::decode(&STANDARD.encode("[1,2]")), None);
    }

    #[test]
    fn a_negative_expiry_means_already_expired() {
        let body = answer("x").replace("86400", "-60");
        let form = UploadForm::from_answer(body.as_bytes(), RECEIVED).unwrap();
        assert_eq!(form.expires_at, UnixMillis(RECEIVED.0 - 60_000));
    }

    #[test]
    fn answers_that_break_the_documented_shape_say_what_is_wrong() {
        let cases = [
            (
                answer("x").replace(r#""asset_id": "ec279822540b412e903827f473bb53a3","#, ""),
                "asset_id is missing",
            ),
            (answer("x").replace(r#""ec279822540b412e903827f473bb53a3""#, "[]"), "asset_id is not a string"),
            (
                answer("x").replace(r#""url": "https://my-bucket.s3.amazonaws.com/","#, ""),
                "storage.url is missing",
            ),
            (answer("x").replace("https://my-bucket", "ftp://my-bucket"), "not an http(s) URL"),
            (answer("x").replace("https://my-bucket.s3.amazonaws.com/", "::"), "storage.url is not a URL"),
            (answer("x").replace(r#""protocol": "POST""#, r#""protocol": "PUT""#), "only POST"),
            (answer("x").replace(r#""AMAZON_S3""#, r#""AZURE_BLOB""#), "only to S3 POST forms"),
            (
                answer("x").replace(r#""x-amz-date": "20240515T154302Z""#, r#""x-amz-date": {}"#),
                "storage.fields.x-amz-date",
            ),
            (
                r#"{"asset_id": "a", "storage": {"url": "https://b/"}}"#.to_owned(),
                "storage.fields is missing",
            ),
            (r#"{"asset_id": "a"}"#.to_owned(), "storage is missing"),
            ("<html>502</html>".to_owned(), "not the documented JSON"),
        ];
        for (body, expected) in cases {
            let error = UploadForm::from_answer(body.as_bytes(), RECEIVED).unwrap_err();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
            assert!(!error.contains("cc47e86f"), "{error}");
        }
    }

    #[test]
    fn debug_shows_no_field_value_and_no_query() {
        let mut form = UploadForm::new(
            "a1",
            "https://bucket.example/upload?X-Amz-Signature=topsecret",
            vec![
                ("policy".into(), "cG9saWN5LXNlY3JldA==".into()),
                ("x-amz-signature".into(), "sig-secret-value".into()),
            ],
            RECEIVED,
        );
        form.max_size = Some(5);
        let debug = format!("{form:?}");
        assert!(!debug.contains("cG9saWN5"), "{debug}");
        assert!(!debug.contains("sig-secret-value"), "{debug}");
        assert!(!debug.contains("topsecret"), "{debug}");
        assert!(debug.contains("x-amz-signature"), "{debug}");
        assert!(debug.contains("https://bucket.example/upload"), "{debug}");
    }

    #[test]
    fn round_trips_through_json_for_the_journal() {
        let form = UploadForm::from_answer(answer("x").as_bytes(), RECEIVED).unwrap();
        let json = serde_json::to_string(&form).unwrap();
        let back: UploadForm = serde_json::from_str(&json).unwrap();
        assert_eq!(back, form);
        assert_eq!(back.fields().next(), Some(("key", "originals/ec27/original/original__photo.jpg")));
    }
}

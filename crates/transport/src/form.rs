//! The upload form FileSpin hands out: where to POST, which signed fields to send, until when.

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

    /// The form as compact JSON, byte for byte what `serde_json::to_string(&form)` writes
    /// ([`UploadForm::write_json`]).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Built from `&str`s and ASCII only.
        String::from_utf8(out).unwrap_or_else(|_| unreachable!("JSON text of strings is UTF-8"))
    }

    /// Appends the form as compact JSON to `out`, byte for byte what `serde_json::to_string(&form)`
    /// writes: for a journal that keeps the form with each file's first record, written straight into
    /// the record's line.
    ///
    /// serde_json looks at every byte of every string to find the few it must escape. A form is about
    /// 1.3 KB, most of it base64 (the policy), so that took 15 k instructions per file (callgrind, a
    /// 2,000-file run), about a third of what the journal cost the client. Here each string is checked
    /// in one pass that the compiler vectorizes and copied as it is ([`spinlift_core::json`]).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use spinlift_core::json::{push_i64, push_str, push_u64};
        let strings = self.fields.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
            + [&self.key, &self.bucket, &self.storage_type]
                .iter()
                .map(|s| s.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + self.asset_id.len()
            + self.url.len();
        out.reserve(strings + 160 + 8 * self.fields.len());
        out.extend_from_slice(br#"{"asset_id":"#);
        push_str(out, &self.asset_id);
        out.extend_from_slice(br#","url":"#);
        push_str(out, &self.url);
        out.extend_from_slice(br#","fields":["#);
        for (i, (name, value)) in self.fields.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"[" } else { b",[" });
            push_str(out, name);
            out.push(b',');
            push_str(out, value);
            out.push(b']');
        }
        out.push(b']');
        let optional: [(&[u8], &Option<String>); 3] = [
            (br#","key":"#, &self.key),
            (br#","bucket":"#, &self.bucket),
            (br#","storage_type":"#, &self.storage_type),
        ];
        for (label, value) in optional {
            out.extend_from_slice(label);
            match value {
                Some(value) => push_str(out, value),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(br#","expires_at":"#);
        push_i64(out, self.expires_at.0);
        out.extend_from_slice(br#","max_size":"#);
        match self.max_size {
            Some(max) => push_u64(out, max),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
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
    ///
    /// Every file's form has a policy, so this is on the small-file path: read as a
    /// `serde_json::Value` tree (~650 bytes of JSON, every condition a map or list), with the base64
    /// copied char by char to drop whitespace, it took 36 k instructions per file, 7 % of the
    /// client's (callgrind, 2,000 × 4 KiB). Now only the two fields read are looked at: the rest of
    /// the JSON is skipped, and the base64 is copied only when it has whitespace to drop.
    pub fn decode(field: &str) -> Option<Policy> {
        // Whitespace (`char::is_whitespace`: ASCII's, and some beyond ASCII) may break up base64;
        // checked branch-free so that the scan vectorizes.
        let maybe_spaced =
            field.bytes().fold(false, |any, b| any | (b == b' ') | (b.wrapping_sub(9) < 5) | (b >= 0x80));
        let compact: std::borrow::Cow<'_, str> = if maybe_spaced {
            field.chars().filter(|c| !c.is_whitespace()).collect::<String>().into()
        } else {
            field.into()
        };
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = lenient.decode(compact.as_bytes()).ok()?;
        let document: PolicyDocument<'_> = serde_json::from_slice(&bytes).ok()?;
        let expiration = document
            .expiration
            .and_then(|e| serde_json::from_str::<String>(e.get()).ok())
            .and_then(|e| clock::parse_rfc3339(&e));
        let conditions =
            document.conditions.and_then(|c| serde_json::from_str::<Vec<&RawValue>>(c.get()).ok());
        let mut max_size: Option<u64> = None;
        for condition in conditions.into_iter().flatten() {
            // Only a list of three can be a `content-length-range` (conditions such as `{"bucket": …}`
            // are maps): the others are passed over without being read.
            if !condition.get().starts_with('[') {
                continue;
            }
            let Ok([name, _min, max]) = serde_json::from_str::<[&RawValue; 3]>(condition.get()) else {
                continue;
            };
            if !serde_json::from_str::<String>(name.get())
                .is_ok_and(|n| n.eq_ignore_ascii_case("content-length-range"))
            {
                continue;
            }
            // A JSON integer, or a string of one.
            let max =
                serde_json::from_str::<serde_json::Number>(max.get()).ok().and_then(|n| n.as_u64()).or_else(
                    || serde_json::from_str::<String>(max.get()).ok().and_then(|s| s.trim().parse().ok()),
                );
            if let Some(max) = max {
                max_size = Some(max_size.map_or(max, |m| m.min(max)));
            }
        }
        Some(Policy { expiration, max_size })
    }
}

/// The two fields of a policy spinlift reads, as their JSON text; any other is skipped. A field given
/// twice counts as given last (as a `serde_json::Value` would keep it). Any JSON object reads.
#[derive(Default)]
struct PolicyDocument<'a> {
    expiration: Option<&'a RawValue>,
    conditions: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for PolicyDocument<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;
        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = PolicyDocument<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyDocument<'de>, A::Error> {
                let mut document = PolicyDocument::default();
                while let Some(key) = map.next_key::<PolicyKey>()? {
                    match key {
                        PolicyKey::Expiration => document.expiration = Some(map.next_value()?),
                        PolicyKey::Conditions => document.conditions = Some(map.next_value()?),
                        PolicyKey::Other => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(document)
            }
        }
        deserializer.deserialize_map(DocumentVisitor)
    }
}

/// A key of a policy's top-level object.
enum PolicyKey {
    Expiration,
    Conditions,
    Other,
}

impl<'de> Deserialize<'de> for PolicyKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = PolicyKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<PolicyKey, E> {
                Ok(match key {
                    "expiration" => PolicyKey::Expiration,
                    "conditions" => PolicyKey::Conditions,
                    _ => PolicyKey::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
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

    #[test]
    fn to_json_writes_what_serde_json_writes() {
        let policy = STANDARD
            .encode(r#"{"expiration":"2024-05-16T15:43:02Z","conditions":[["content-length-range",0,5]]}"#);
        let mut form = UploadForm::from_answer(answer(&policy).as_bytes(), RECEIVED).unwrap();
        assert!(form.max_size.is_some() && form.key.is_some());
        assert_eq!(form.to_json(), serde_json::to_string(&form).unwrap());
        form.key = None;
        form.bucket = Some("a \"quoted\" \\ bucket\n\u{1}\u{7f}é😀".into());
        form.max_size = None;
        form.expires_at = UnixMillis(-5);
        assert_eq!(form.to_json(), serde_json::to_string(&form).unwrap());
        let empty = UploadForm::new("", "", Vec::new(), UnixMillis(0));
        assert_eq!(empty.to_json(), serde_json::to_string(&empty).unwrap());
    }

    /// `Policy::decode` as it was, reading the whole policy as a `serde_json::Value`: what the faster
    /// one must agree with.
    fn decode_through_value(field: &str) -> Option<Policy> {
        let compact: String = field.chars().filter(|c| !c.is_whitespace()).collect();
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let json: serde_json::Value =
            serde_json::from_slice(&lenient.decode(compact.as_bytes()).ok()?).ok()?;
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

    /// JSON text of any shape a policy could take, keys given twice and escaped names among it.
    fn policy_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("-0".to_owned()),
            Just("1e3".to_owned()),
            Just("18446744073709551616".to_owned()),
            "-?(0|[1-9][0-9]{0,19})(\\.[0-9])?",
            Just(r#""content-length-range""#.to_owned()),
            Just(r#""Content-Length-RANGE""#.to_owned()),
            Just(r#""content-length-r\u0061nge""#.to_owned()),
            Just(r#""2024-05-16T15:43:02Z""#.to_owned()),
            Just(r#"" 42\t""#.to_owned()),
            "\"[a-z0-9 $-]{0,8}\"",
        ];
        let value = leaf.prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(("expiration|conditions|bucket|ex\\u0070iration", inner), 0..4)
                    .prop_map(|pairs| {
                        let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
                        format!("{{{}}}", pairs.join(","))
                    }),
            ]
        });
        let name = prop_oneof![
            Just(r#""content-length-range""#.to_owned()),
            Just(r#""Content-Length-RANGE""#.to_owned()),
            Just(r#""content-length-r\u0061nge""#.to_owned()),
            Just(r#""starts-with""#.to_owned()),
        ];
        let condition = prop_oneof![
            (name, value.clone(), value.clone()).prop_map(|(n, min, max)| format!("[{n},{min},{max}]")),
            (value.clone(), value.clone())
                .prop_map(|(a, b)| format!(r#"["content-length-range",{a},{b},0]"#)),
            value.clone(),
        ];
        let conditions =
            proptest::collection::vec(condition, 0..6).prop_map(|c| format!("[{}]", c.join(",")));
        let field = prop_oneof![
            ("expiration|conditions|bucket", value.clone()),
            (Just("conditions".to_owned()), conditions),
        ];
        prop_oneof![
            1 => value,
            3 => proptest::collection::vec(field, 0..5).prop_map(|pairs| {
                let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!(r#""{k}" : {v}"#)).collect();
                format!("{{ {} }}", pairs.join(", "))
            }),
        ]
    }

    proptest::proptest! {
        /// The policy read only where it is needed reads as the whole of it read as a `Value` did, for
        /// any JSON, its base64 laid out in any way.
        #[test]
        fn policy_decode_agrees_with_reading_the_whole_value(text in policy_text(), wrap in 0usize..3) {
            let mut field = STANDARD.encode(&text);
            match wrap {
                1 => field = field.as_bytes().chunks(16).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n "),
                2 => field = format!("\u{a0}{}", field.trim_end_matches('=')),
                _ => {}
            }
            proptest::prop_assert_eq!(Policy::decode(&field), decode_through_value(&field), "{}", text);
        }
    }

    proptest::proptest! {
        /// Any strings at all, escapes and control characters among them: the same bytes as
        /// serde_json, and the same form read back.
        #[test]
        fn to_json_matches_serde_json_for_any_form(
            asset_id in "(?s).{0,12}",
            url in "(?s).{0,12}",
            fields in proptest::collection::vec(("(?s).{0,8}", "(?s).{0,40}"), 0..5),
            key in proptest::option::of("(?s).{0,12}"),
            storage_type in proptest::option::of("[A-Z_\"\\\\]{0,8}"),
            expires_at in proptest::num::i64::ANY,
            max_size in proptest::option::of(proptest::num::u64::ANY),
        ) {
            let mut form = UploadForm::new(asset_id, url, fields, UnixMillis(expires_at));
            form.key = key;
            form.storage_type = storage_type;
            form.max_size = max_size;
            let json = form.to_json();
            proptest::prop_assert_eq!(&json, &serde_json::to_string(&form).unwrap());
            proptest::prop_assert_eq!(serde_json::from_str::<UploadForm>(&json).unwrap(), form);
        }
    }
}

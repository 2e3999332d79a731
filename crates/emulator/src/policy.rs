//! The signed POST form handed out by `content_storage_url`: its policy and its fields.
//!
//! The field names are those of the docs' example response ("Get Storage Upload URL",
//! developers.filespin.io): `key`, `x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `policy`,
//! `x-amz-signature`. The policy follows AWS's "Creating a POST Policy" (S3 API reference): an `expiration`
//! and one condition for every form field but `policy` and `x-amz-signature` — S3 refuses a form carrying a
//! field that no condition covers — plus the `x-amz-*` eq conditions SigV4 POST requires.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

use crate::signing;

/// ISO 8601 in UTC with milliseconds, as in AWS's policy examples: `2015-12-30T12:00:00.000Z`.
const EXPIRATION_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
/// `x-amz-date`: ISO 8601 basic format, `20240515T154302Z`.
const AMZ_DATE_FORMAT: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// The credential scope's date: `20240515`.
const SCOPE_DATE_FORMAT: &[FormatItem<'static>] = format_description!("[year][month][day]");

/// What a form is for, and who signs it.
#[derive(Debug)]
pub(crate) struct FormRequest<'a> {
    pub(crate) bucket: &'a str,
    /// The object key the form names.
    pub(crate) key: &'a str,
    /// The prefix the policy lets the key start with.
    pub(crate) key_prefix: &'a str,
    pub(crate) max_object_size: u64,
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) region: &'a str,
    /// When the form is issued (the `x-amz-date`).
    pub(crate) now: OffsetDateTime,
    /// How long it stays valid; negative gives a form that is already expired.
    pub(crate) lifetime: Duration,
}

/// The `storage.fields` of a content_storage_url answer, in the docs' order.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FormFields {
    pub(crate) key: String,
    #[serde(rename = "x-amz-algorithm")]
    pub(crate) algorithm: &'static str,
    #[serde(rename = "x-amz-credential")]
    pub(crate) credential: String,
    #[serde(rename = "x-amz-date")]
    pub(crate) date: String,
    pub(crate) policy: String,
    #[serde(rename = "x-amz-signature")]
    pub(crate) signature: String,
}

/// Builds and signs the form. Fails only if the expiration falls outside the representable dates.
pub(crate) fn sign_form(req: &FormRequest<'_>) -> Result<FormFields, time::error::Format> {
    // `x-amz-date` has whole seconds; the expiration is counted from the same instant.
    let now = req.now.replace_nanosecond(0).unwrap_or(req.now);
    let expiration = now.saturating_add(req.lifetime);
    let date = now.format(AMZ_DATE_FORMAT)?;
    let scope_date = now.format(SCOPE_DATE_FORMAT)?;
    let credential = signing::credential(req.access_key_id, &scope_date, req.region);

    let policy = serde_json::json!({
        "expiration": expiration.format(EXPIRATION_FORMAT)?,
        "conditions": [
            { "bucket": req.bucket },
            ["starts-with", "$key", req.key_prefix],
            ["content-length-range", 0, req.max_object_size],
            { "x-amz-algorithm": signing::ALGORITHM },
            { "x-amz-credential": credential },
            { "x-amz-date": date },
        ],
    });
    let policy = BASE64.encode(policy.to_string());
    let signature = signing::sign_policy(req.secret_access_key, &scope_date, req.region, &policy);

    Ok(FormFields {
        key: req.key.to_owned(),
        algorithm: signing::ALGORITHM,
        credential,
        date,
        policy,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn request(lifetime: Duration) -> FormRequest<'static> {
        FormRequest {
            bucket: "bucket",
            key: "originals/abc/original/original__a.jpg",
            key_prefix: "originals/abc/",
            max_object_size: 1000,
            access_key_id: "AKID",
            secret_access_key: "secret",
            region: "eu-west-2",
            now: datetime!(2024-05-15 15:43:02.5 UTC),
            lifetime,
        }
    }

    fn decoded_policy(fields: &FormFields) -> serde_json::Value {
        serde_json::from_slice(&BASE64.decode(&fields.policy).unwrap()).unwrap()
    }

    #[test]
    fn the_policy_covers_every_field_and_expires_after_the_lifetime() {
        let fields = sign_form(&request(Duration::days(1))).unwrap();
        assert_eq!(fields.date, "20240515T154302Z");
        assert_eq!(fields.credential, "AKID/20240515/eu-west-2/s3/aws4_request");
        assert_eq!(
            decoded_policy(&fields),
            serde_json::json!({
                "expiration": "2024-05-16T15:43:02.000Z",
                "conditions": [
                    { "bucket": "bucket" },
                    ["starts-with", "$key", "originals/abc/"],
                    ["content-length-range", 0, 1000],
                    { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
                    { "x-amz-credential": "AKID/20240515/eu-west-2/s3/aws4_request" },
                    { "x-amz-date": "20240515T154302Z" },
                ],
            })
        );
        let expected = signing::sign_policy("secret", "20240515", "eu-west-2", &fields.policy);
        assert_eq!(fields.signature, expected);
    }

    #[test]
    fn a_negative_lifetime_gives_a_policy_that_has_already_expired() {
        let fields = sign_form(&request(Duration::seconds(-60))).unwrap();
        assert_eq!(decoded_policy(&fields)["expiration"], "2024-05-15T15:42:02.000Z");
    }

    #[test]
    fn the_fields_serialize_under_the_documented_names_in_order() {
        let fields = sign_form(&request(Duration::days(1))).unwrap();
        let json = serde_json::to_string(&fields).unwrap();
        let names = ["key", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "policy", "x-amz-signature"];
        let positions: Vec<usize> =
            names.iter().map(|name| json.find(&format!("\"{name}\":")).unwrap()).collect();
        assert!(positions.is_sorted(), "{json}");
    }
}

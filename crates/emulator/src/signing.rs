//! AWS Signature Version 4 for browser-based POST uploads: our own implementation, on purpose.
//!
//! For a POST policy the string to sign is the base64 policy itself; the signing key is the usual SigV4
//! HMAC chain (AWS S3 API reference, "Calculating a Signature" and "Example: Browser-Based Upload using
//! HTTP POST (Using AWS Signature Version 4)"):
//!
//! ```text
//! kDate    = HMAC("AWS4" + secret, "YYYYMMDD")
//! kRegion  = HMAC(kDate, region)
//! kService = HMAC(kRegion, "s3")
//! kSigning = HMAC(kService, "aws4_request")
//! signature = hex(HMAC(kSigning, base64_policy))
//! ```
//!
//! The S3 endpoint (s3s) verifies these signatures with its own code, so the two implementations check
//! each other in every upload test.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only algorithm we sign with, as the docs' example fields show.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

const SERVICE: &str = "s3";
const TERMINATOR: &str = "aws4_request";

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key for one day, region and service.
fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret_access_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// The `x-amz-credential` value: `<access key id>/<YYYYMMDD>/<region>/s3/aws4_request`.
pub(crate) fn credential(access_key_id: &str, date: &str, region: &str) -> String {
    format!("{access_key_id}/{date}/{region}/{SERVICE}/{TERMINATOR}")
}

/// The `x-amz-signature` of a base64-encoded POST policy, in lowercase hex.
pub(crate) fn sign_policy(secret_access_key: &str, date: &str, region: &str, policy_base64: &str) -> String {
    let key = signing_key(secret_access_key, date, region, SERVICE);
    hex::encode(hmac_sha256(&key, policy_base64.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example in the AWS S3 API reference, "Example: Browser-Based Upload using HTTP POST
    /// (Using AWS Signature Version 4)": its published policy, credentials and signature.
    #[test]
    fn signs_the_aws_documentation_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let signature =
            sign_policy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20151229", "us-east-1", policy);
        assert_eq!(signature, "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e");
    }

    #[test]
    fn credential_names_the_scope() {
        assert_eq!(
            credential("AKIAIOSFODNN7EXAMPLE", "20151229", "us-east-1"),
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"
        );
    }
}

//! Properties of reading the AWS POST policy of an upload form (`Policy::decode`): whatever FileSpin
//! (or a proxy in between) sends, spinlift never panics, reads the tightest size bound and the
//! expiration of a real policy however its base64 is laid out, and takes anything else as opaque.
//!
//! The same properties are fuzzed by `fuzz/fuzz_targets/policy_decode.rs` (`cargo +nightly fuzz run
//! policy_decode`, see fuzz/README.md).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use proptest::prelude::*;
use serde_json::{Value, json};
use spinlift_core::UnixMillis;
use spinlift_transport::Policy;

/// How a `content-length-range` condition's upper bound is written.
#[derive(Debug, Clone)]
enum Max {
    /// A JSON integer: counts.
    Number(u64),
    /// A string of an integer, maybe padded with spaces: counts.
    Text(u64, &'static str),
    /// Anything else (a fraction, a negative number, a word, null): ignored.
    Unreadable(Value),
}

impl Max {
    fn bound(&self) -> Option<u64> {
        match self {
            Max::Number(n) | Max::Text(n, _) => Some(*n),
            Max::Unreadable(_) => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Max::Number(n) => json!(n),
            Max::Text(n, pad) => json!(format!("{pad}{n}{pad}")),
            Max::Unreadable(value) => value.clone(),
        }
    }
}

fn any_max() -> impl Strategy<Value = Max> {
    prop_oneof![
        3 => any::<u64>().prop_map(Max::Number),
        2 => (0..u64::MAX / 2, prop_oneof![Just(""), Just(" "), Just("\t")])
            .prop_map(|(n, pad)| Max::Text(n, pad)),
        1 => prop_oneof![
            Just(json!(10.5)),
            Just(json!(-1)),
            Just(json!("ten")),
            Just(json!("18446744073709551616")),
            Just(Value::Null),
            Just(json!([1])),
        ]
        .prop_map(Max::Unreadable),
    ]
}

/// One condition of a policy; only the well-formed `content-length-range` ones bound the size.
#[derive(Debug, Clone)]
enum Condition {
    Range { name: &'static str, min: Value, max: Max },
    Other(Value),
}

fn any_condition() -> impl Strategy<Value = Condition> {
    let name =
        prop_oneof![Just("content-length-range"), Just("Content-Length-Range"), Just("CONTENT-LENGTH-RANGE")];
    let min = prop_oneof![Just(json!(0)), Just(json!("1")), Just(json!(1_048_576))];
    prop_oneof![
        3 => (name, min, any_max()).prop_map(|(name, min, max)| Condition::Range { name, min, max }),
        2 => prop_oneof![
            Just(json!({"bucket": "my-bucket"})),
            Just(json!(["starts-with", "$key", "originals/"])),
            Just(json!(["eq", "$Content-Type", "image/jpeg"])),
            Just(json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"})),
            // Not the three-element form: ignored.
            Just(json!(["content-length-range", 5])),
            Just(json!(["content-length-range", 0, 5, 6])),
            Just(json!(["content-length", 0, 5])),
            Just(json!({"content-length-range": [0, 5]})),
        ]
        .prop_map(Condition::Other),
    ]
}

impl Condition {
    fn to_json(&self) -> Value {
        match self {
            Condition::Range { name, min, max } => json!([name, min, max.to_json()]),
            Condition::Other(value) => value.clone(),
        }
    }
}

/// A policy of these conditions, as JSON text.
fn policy_of(conditions: &[Condition]) -> String {
    json!({"conditions": conditions.iter().map(Condition::to_json).collect::<Vec<_>>()}).to_string()
}

/// An expiration as AWS writes it (`2024-05-16T15:43:02.000Z`), and the instant it names.
fn any_expiration() -> impl Strategy<Value = (String, UnixMillis)> {
    // 1970-01-01 to 9999-12-31.
    (0..253_402_300_800i64, 0..1000i64).prop_map(|(secs, millis)| {
        let at = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        (text, UnixMillis(secs * 1000 + millis))
    })
}

/// A policy field as it may arrive: padded or not, on one line or wrapped, with spaces around.
fn encodings(json: &str) -> Vec<String> {
    let padded = STANDARD.encode(json);
    let wrap = |sep: &str| {
        padded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap()).collect::<Vec<_>>().join(sep)
    };
    vec![padded.clone(), STANDARD_NO_PAD.encode(json), wrap("\n"), wrap("\r\n"), format!("  {padded}\n")]
}

/// JSON values that are not objects.
fn any_non_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    let nested = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    nested.prop_filter("not an object", |value| !value.is_object())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_smallest_content_length_range_bounds_the_size_however_the_field_is_laid_out(
        conditions in proptest::collection::vec(any_condition(), 0..8),
        expiration in proptest::option::of(any_expiration()),
    ) {
        let mut policy = json!({"conditions": conditions.iter().map(Condition::to_json).collect::<Vec<_>>()});
        if let Some((text, _)) = &expiration {
            policy["expiration"] = json!(text);
        }
        let smallest = conditions
            .iter()
            .filter_map(|c| match c {
                Condition::Range { max, .. } => max.bound(),
                Condition::Other(_) => None,
            })
            .min();
        for field in encodings(&policy.to_string()) {
            let decoded = Policy::decode(&field);
            prop_assert!(decoded.is_some(), "{}", field);
            let decoded = decoded.unwrap();
            prop_assert_eq!(decoded.max_size, smallest, "{}", policy);
            prop_assert_eq!(decoded.expiration, expiration.as_ref().map(|(_, at)| *at), "{}", policy);
        }
    }

    #[test]
    fn an_expiration_that_is_not_an_instant_is_no_expiration(
        expiration in prop_oneof![
            Just(json!("tomorrow")),
            Just(json!("2024-13-01T00:00:00Z")),
            Just(json!("2024-05-16")),
            Just(json!(1_715_787_782_000i64)),
            Just(Value::Null),
            "[ -~]{0,24}".prop_map(Value::from),
        ],
        max in any::<u64>(),
    ) {
        let policy = json!({"expiration": expiration, "conditions": [["content-length-range", 0, max]]});
        let decoded = Policy::decode(&STANDARD.encode(policy.to_string()));
        prop_assert!(decoded.is_some());
        let decoded = decoded.unwrap();
        prop_assert_eq!(decoded.max_size, Some(max));
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let readable =
            expiration.as_str().is_some_and(|s| time::OffsetDateTime::parse(s.trim(), rfc3339).is_ok());
        prop_assert_eq!(decoded.expiration.is_some(), readable, "{}", expiration);
    }

    #[test]
    fn base64_of_anything_but_a_json_object_is_taken_as_opaque(
        content in prop_oneof![
            any_non_object().prop_map(|value| value.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..64).prop_filter("not a JSON object", |bytes| {
                !matches!(serde_json::from_slice(bytes), Ok(Value::Object(_)))
            }),
            Just(br#"{"expiration": "2024-05-16T15:43:02Z", "conditions": ["#.to_vec()),
        ],
    ) {
        prop_assert_eq!(Policy::decode(&STANDARD.encode(&content)), None);
        prop_assert_eq!(Policy::decode(&STANDARD_NO_PAD.encode(&content)), None);
    }

    #[test]
    fn a_field_with_a_character_outside_base64_is_taken_as_opaque(
        conditions in proptest::collection::vec(any_condition(), 0..4),
        at in any::<prop::sample::Index>(),
        intruder in proptest::sample::select(vec!['!', '*', '.', '-', '_', '%', 'é', '\0']),
    ) {
        let mut field: Vec<char> = STANDARD.encode(policy_of(&conditions)).chars().collect();
        field.insert(at.index(field.len() + 1), intruder);
        let field: String = field.into_iter().collect();
        prop_assert_eq!(Policy::decode(&field), None, "{}", field);
    }

    #[test]
    fn whitespace_anywhere_in_any_field_changes_nothing(
        field in prop_oneof![
            "\\PC{0,64}",
            "[A-Za-z0-9+/=]{0,64}",
            proptest::collection::vec(any_condition(), 0..4).prop_map(|c| STANDARD.encode(policy_of(&c))),
        ],
        spaces in proptest::collection::vec(
            (any::<prop::sample::Index>(), proptest::sample::select(vec![' ', '\n', '\t', '\r'])),
            0..6,
        ),
    ) {
        let decoded = Policy::decode(&field);
        let mut spaced: Vec<char> = field.chars().collect();
        for (at, space) in &spaces {
            spaced.insert(at.index(spaced.len() + 1), *space);
        }
        let spaced: String = spaced.into_iter().collect();
        prop_assert_eq!(Policy::decode(&spaced), decoded, "{:?} / {:?}", field, spaced);
    }
}

//! `SourceUrl::join` never yields a location outside its root, whatever the relative part.

use proptest::prelude::*;
use spinlift_source::SourceUrl;

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("%2e%2e".to_owned()),
        Just("a b".to_owned()),
        Just("ü".to_owned()),
        Just("x:y".to_owned()),
        Just("\\".to_owned()),
        "[a-z]{1,3}",
    ]
}

fn root() -> impl Strategy<Value = SourceUrl> {
    prop_oneof![
        Just("s3://b/media/"),
        Just("s3://b/media"),
        Just("s3://b"),
        Just("gs://b/x/y/"),
        Just("az://c/m"),
        Just("https://cdn.example.com/media/"),
        Just("https://cdn.example.com"),
        Just("/data/lib"),
    ]
    .prop_map(|root| SourceUrl::parse(root).unwrap())
}

proptest! {
    #[test]
    fn joined_locations_stay_within_their_root(
        root in root(),
        segments in prop::collection::vec(segment(), 1..6),
        leading_slash in any::<bool>(),
    ) {
        let relative = format!("{}{}", if leading_slash { "/" } else { "" }, segments.join("/"));
        if let Ok(joined) = SourceUrl::join(&root, &relative) {
            prop_assert!(joined.is_within(&root), "{} + {:?} = {}", root, relative, joined);
            prop_assert!(!leading_slash);
            // What the join made parses back to the same place.
            if let SourceUrl::S3 { .. } | SourceUrl::Gcs { .. } | SourceUrl::Azure { .. } = joined {
                prop_assert_eq!(SourceUrl::parse(&joined.to_string()).unwrap(), joined);
            }
        }
    }
}

//! Whatever byte a crash stops the file at, replay gives a valid state: the last complete record of each
//! entry in what is left, and never a `Corrupt` error.

use proptest::prelude::*;

use super::super::record::{encode_header, encode_record};
use super::*;

fn any_state() -> impl Strategy<Value = State> {
    let asset = "[a-f0-9]{1,8}";
    prop_oneof![
        Just(State::Pending),
        asset.prop_map(|a| form_issued(&a)),
        asset.prop_map(|a| uploading(&a)),
        asset.prop_map(|a| uploaded(&a)),
        asset.prop_map(|a| registered(&a)),
        proptest::option::of(asset).prop_map(|a| failed(a.as_deref())),
    ]
}

fn any_record() -> impl Strategy<Value = Record> {
    // Few ids, so entries get histories; some multi-byte, so cuts fall inside characters.
    let id = prop_oneof![
        Just("a".to_owned()),
        Just("photos/b.jpg".to_owned()),
        Just("çé/😀".to_owned()),
        "[a-z]{1,3}"
    ];
    (id, any_state(), proptest::option::of("[ -~]{0,20}"), any::<bool>()).prop_map(
        |(id, state, form, stamped)| {
            let mut record = Record::new(id, state);
            record.form = form.map(|f| Form::from(json!({"fields": {"policy": f}})));
            record.source = stamped.then(stamp);
            record
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_journal_cut_at_any_byte_replays_to_its_last_complete_records(
        records in proptest::collection::vec(any_record(), 0..24),
        cut_fraction in 0.0..=1.0f64,
    ) {
        // The file as the writer lays it out, and where each line ends.
        let mut bytes = Vec::new();
        encode_header(FINGERPRINT, &mut bytes).unwrap();
        let mut line_ends = vec![bytes.len()];
        for record in &records {
            encode_record(record, &mut bytes).unwrap();
            line_ends.push(bytes.len());
        }
        let cut = ((bytes.len() as f64) * cut_fraction) as usize;
        let (_dir, path) = scratch();
        std::fs::write(&path, &bytes[..cut]).unwrap();

        let replayed = replay(&path);
        prop_assert!(replayed.is_ok(), "cut at {} of {}: {:?}", cut, bytes.len(), replayed);
        let replayed = replayed.unwrap().unwrap();

        // Complete lines: those whose `\n` is inside the prefix.
        let complete = line_ends.iter().filter(|&&end| end <= cut).count();
        let complete_records = complete.saturating_sub(1);
        prop_assert_eq!(replayed.fingerprint.is_some(), complete >= 1);
        prop_assert_eq!(replayed.records_read, complete_records as u64);
        prop_assert_eq!(entries_of(&replayed), last_per_id(&records[..complete_records]));
        let torn = !line_ends.contains(&cut) && cut > 0;
        prop_assert_eq!(replayed.warnings.len(), usize::from(torn));
    }
}

//! Properties of the checkpoint journal's replay, on journals written through the real `Journal` API:
//! a crash that stops the file at any byte loses at most the line it was writing; damage anywhere else
//! is an error that names its line; a replayed journal reopened and carried on replays to the same
//! entries; and no bytes at all make replay panic.
//!
//! The same properties are fuzzed by `fuzz/fuzz_targets/journal_replay.rs` (`cargo +nightly fuzz run
//! journal_replay`, see fuzz/README.md).

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::json;
use spinlift_core::{Failure, FailureKind, State, Step, UnixMillis, Uploaded};
use spinlift_manifest::journal::{
    Form, Journal, JournalError, JournalOptions, Record, Replayed, SourceStamp, fingerprint_ids, replay,
};

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Runtime::new().expect("a tokio runtime"));

const IDS: [&str; 4] = ["photos/a.jpg", "b", "çé/😀.jpg", "batch/0001"];

fn fingerprint() -> String {
    fingerprint_ids(IDS.into_iter())
}

fn asset_id() -> impl Strategy<Value = String> {
    // Mostly what FileSpin issues (32 hex digits), sometimes anything.
    prop_oneof![3 => "[0-9a-f]{32}", 1 => "[ -~]{1,12}"]
}

fn md5() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[0-9a-f]{32}", 1 => "[0-9A-F]{32}"]
}

fn any_state() -> impl Strategy<Value = State> {
    let at = || any::<i64>().prop_map(UnixMillis);
    prop_oneof![
        Just(State::Pending),
        (asset_id(), at()).prop_map(|(asset_id, expires_at)| State::FormIssued { asset_id, expires_at }),
        (asset_id(), at()).prop_map(|(asset_id, expires_at)| State::Uploading { asset_id, expires_at }),
        (asset_id(), any::<u64>(), md5(), at(), at()).prop_map(
            |(asset_id, size, md5, started_at, completed_at)| State::Uploaded {
                asset_id,
                size,
                md5,
                started_at,
                completed_at
            }
        ),
        (asset_id(), any::<u64>(), md5()).prop_map(|(asset_id, size, md5)| State::Registered {
            asset_id,
            size,
            md5
        }),
        (proptest::option::of(asset_id()), "[ -~]{0,30}", any::<bool>()).prop_map(
            |(asset_id, message, uploaded)| State::Failed {
                asset_id,
                failure: Failure::new(
                    Step::Register,
                    FailureKind::Status { status: 503, code: Some("SlowDown".into()) },
                    message
                ),
                uploaded: uploaded.then(|| Uploaded {
                    size: 3,
                    md5: "900150983cd24fb0d6963f7d28e17f72".into(),
                    started_at: UnixMillis(1_715_787_782_000),
                    completed_at: UnixMillis(1_715_787_783_000),
                }),
                data_set: uploaded,
            }
        ),
    ]
}

/// A pre-signed form as the engine keeps it: opaque JSON (no floats: they need not come back equal).
fn any_form() -> impl Strategy<Value = serde_json::Value> {
    ("[ -~]{0,20}", any::<i64>(), "\\PC{0,8}").prop_map(|(key, expires, name)| {
        json!({"url": "https://bucket.example/", "expires_at": expires,
               "fields": [["key", key], ["policy", "eyJleHBpcmF0aW9uIjog"], ["x-amz-meta-name", name]]})
    })
}

fn any_record() -> impl Strategy<Value = Record> {
    (
        proptest::sample::select(IDS.to_vec()),
        any_state(),
        proptest::option::of(any_form()),
        proptest::option::of((any::<u64>(), any::<i64>(), prop_oneof![Just(0u64), any::<u64>()])),
    )
        .prop_map(|(id, state, form, source)| Record {
            id: id.to_owned(),
            state,
            form: form.map(Form::from),
            source: source.map(|(size, mtime_ms, tag)| SourceStamp { size, mtime_ms, tag }),
        })
}

fn records(sizes: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Record>> {
    proptest::collection::vec(any_record(), sizes)
}

fn options(compact_when_records_exceed: f64) -> JournalOptions {
    JournalOptions { durable: false, compact_when_records_exceed, ..JournalOptions::default() }
}

/// Opens the journal (anew, or from `replayed`), appends `records` one by one and closes it.
fn write(path: &Path, replayed: Option<&Replayed>, records: &[Record], compact_when_records_exceed: f64) {
    RUNTIME.block_on(async {
        let journal = Journal::open(path, &fingerprint(), replayed, options(compact_when_records_exceed))
            .await
            .expect("open the journal");
        for record in records {
            journal.append(record.clone()).await.expect("append");
        }
        journal.close().await.expect("close");
    });
}

/// The last record of each id, in the order ids first appear, as replay promises them: the form of a
/// final state is not kept.
fn expected(records: &[Record]) -> (Vec<String>, HashMap<String, Record>) {
    let mut order = Vec::new();
    let mut last = HashMap::new();
    for record in records {
        let mut record = record.clone();
        if record.state.is_final() {
            record.form = None;
        }
        if !last.contains_key(&record.id) {
            order.push(record.id.clone());
        }
        last.insert(record.id.clone(), record);
    }
    (order, last)
}

fn assert_entries(replayed: &Replayed, records: &[Record]) -> Result<(), TestCaseError> {
    let (order, last) = expected(records);
    let ids: Vec<&str> = replayed.ids().collect();
    prop_assert_eq!(&ids, &order);
    prop_assert_eq!(replayed.len(), last.len());
    for (id, record) in &last {
        prop_assert_eq!(replayed.get(id), Some(record.clone()), "{:?}", id);
    }
    Ok(())
}

/// The bytes of each line without its `\n`, and the offset after the `\n`.
fn line_ends(bytes: &[u8]) -> Vec<usize> {
    bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(at, _)| at + 1).collect()
}

/// Ways a line can be damaged: none of them is a record, a header or blank.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut short, keeping this many bytes (at least one).
    Truncated(usize),
    /// Replaced by these bytes.
    Replaced(Vec<u8>),
    /// Replaced by a second header.
    SecondHeader,
}

fn any_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (1..400usize).prop_map(Damage::Truncated),
        prop_oneof![
            Just(b"#".to_vec()),
            Just(b"\0\0\0\0".to_vec()),
            Just(b"\xff\xfe{}".to_vec()),
            Just(b"[]".to_vec()),
            Just(b"null".to_vec()),
            Just(br#"{"id":"photos/a.jpg"}"#.to_vec()),
            Just(br#"{"id":"b","state":{"state":"teleported"}}"#.to_vec()),
            Just(br#"{"type":"footer","version":1}"#.to_vec()),
            Just(br#"{"id":"b","state":{"state":"pending"}"#.to_vec()),
        ]
        .prop_map(Damage::Replaced),
        Just(Damage::SecondHeader),
    ]
}

/// `bytes` with line `index` (0-based) damaged as `damage` says.
fn damaged(bytes: &[u8], index: usize, damage: &Damage) -> Vec<u8> {
    let ends = line_ends(bytes);
    let start = if index == 0 { 0 } else { ends[index - 1] };
    let end = ends[index] - 1; // the line's `\n`
    let line = &bytes[start..end];
    let replacement = match damage {
        Damage::Truncated(keep) => line[..(*keep).clamp(1, line.len() - 1)].to_vec(),
        Damage::Replaced(bytes) => bytes.clone(),
        Damage::SecondHeader => bytes[..ends[0] - 1].to_vec(),
    };
    [&bytes[..start], &replacement[..], &bytes[end..]].concat()
}

/// A line of a journal, of something like one, or of anything at all.
fn journal_like_line() -> impl Strategy<Value = Vec<u8>> {
    const HEADER: &str = r#"{"type":"header","version":1,"fingerprint":"x","created_at_ms":0}"#;
    const PENDING: &str = r#"{"id":"a","state":{"state":"pending"}}"#;
    const REGISTERED: &str = concat!(
        r#"{"id":"a","state":{"state":"registered","asset_id":"0123456789abcdef0123456789abcdef","#,
        r#""size":3,"md5":"900150983cd24fb0d6963f7d28e17f72"}}"#
    );
    const FORM_ISSUED: &str =
        r#"{"id":"b","state":{"state":"form_issued","asset_id":"x","expires_at":1},"form":{"k":[1,"v"]}}"#;
    prop_oneof![
        proptest::sample::select(vec![HEADER, PENDING, REGISTERED, FORM_ISSUED, ""])
            .prop_map(|line| line.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        "[ -~]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_torn_tail_at_any_byte_replays_to_a_prefix_of_the_records(
        records in records(0..24),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.journal");
        write(&path, None, &records, f64::INFINITY);
        let whole = std::fs::read(&path).unwrap();
        let ends = line_ends(&whole);
        // The documented layout: a header line, then one line per record appended.
        prop_assert_eq!(ends.len(), records.len() + 1);
        prop_assert_eq!(ends.last(), Some(&whole.len()));

        let cut_path = dir.path().join("cut.journal");
        for cut in cuts.iter().map(|at| at.index(whole.len() + 1)) {
            std::fs::write(&cut_path, &whole[..cut]).unwrap();
            let replayed = replay(&cut_path);
            prop_assert!(
                matches!(replayed, Ok(Some(_))),
                "cut at byte {} of {}: {:?}", cut, whole.len(), replayed
            );
            let replayed = replayed.unwrap().unwrap();
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            let kept = complete.saturating_sub(1);
            prop_assert_eq!(replayed.fingerprint.clone(), (complete > 0).then(fingerprint), "cut at {}", cut);
            prop_assert_eq!(replayed.records_read, kept as u64, "cut at {}", cut);
            assert_entries(&replayed, &records[..kept])?;
            let torn = cut > 0 && !ends.contains(&cut);
            prop_assert_eq!(
                replayed.warnings.len(), usize::from(torn),
                "cut at {}: {:?}", cut, replayed.warnings
            );
        }
    }

    #[test]
    fn one_damaged_line_in_the_middle_is_an_error_naming_that_line(
        records in records(1..16),
        at in any::<prop::sample::Index>(),
        damage in any_damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.journal");
        write(&path, None, &records, f64::INFINITY);
        let whole = std::fs::read(&path).unwrap();
        // Any line but the last: the header or a record with another after it.
        let index = at.index(records.len());
        prop_assume!(index > 0 || !matches!(damage, Damage::SecondHeader), "the header is no second header");
        std::fs::write(&path, damaged(&whole, index, &damage)).unwrap();

        match replay(&path) {
            Err(error @ JournalError::Corrupt { .. }) => {
                let JournalError::Corrupt { line, .. } = &error else { unreachable!() };
                prop_assert_eq!(*line, index as u64 + 1, "{}", error);
                prop_assert!(error.to_string().contains(&format!("line {}", index + 1)), "{}", error);
                prop_assert!(!error.is_retryable());
            }
            other => return Err(TestCaseError::fail(format!("line {} {damage:?}: {other:?}", index + 1))),
        }
    }

    #[test]
    fn the_same_damage_on_the_last_line_is_dropped_like_a_torn_one(
        records in records(1..16),
        damage in any_damage()
            .prop_filter("a second header is never a torn line", |d| !matches!(d, Damage::SecondHeader)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.journal");
        write(&path, None, &records, f64::INFINITY);
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, damaged(&whole, records.len(), &damage)).unwrap();

        let replayed = replay(&path).unwrap().unwrap();
        assert_entries(&replayed, &records[..records.len() - 1])?;
        prop_assert_eq!(replayed.warnings.len(), 1);
        let line = format!("line {}", records.len() + 1);
        prop_assert!(replayed.warnings[0].contains(&line), "{:?}", replayed.warnings);
    }

    #[test]
    fn a_replayed_journal_reopened_and_carried_on_replays_to_every_last_record(
        first in records(0..16),
        then in records(0..16),
        compact in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.journal");
        write(&path, None, &first, f64::INFINITY);
        let replayed = replay(&path).unwrap().unwrap();
        assert_entries(&replayed, &first)?;

        // Reopening writes a snapshot: one line per entry, then the new records.
        let threshold = if compact { 0.0 } else { f64::INFINITY };
        write(&path, Some(&replayed), &then, threshold);
        let again = replay(&path).unwrap().unwrap();
        prop_assert!(again.belongs_to(&fingerprint()));
        prop_assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        let all = [first.clone(), then.clone()].concat();
        let (_, last) = expected(&all);
        prop_assert_eq!(again.len(), last.len());
        for (id, record) in &last {
            prop_assert_eq!(again.get(id), Some(record.clone()), "{:?}", id);
        }
        let lines = line_ends(&std::fs::read(&path).unwrap()).len();
        let expected_lines = if compact { 1 + last.len() } else { 1 + replayed.len() + then.len() };
        prop_assert_eq!(lines, expected_lines);
    }

    #[test]
    fn any_bytes_replay_to_entries_or_an_error_never_a_panic(
        lines in proptest::collection::vec(journal_like_line(), 0..12),
        end_with_newline in any::<bool>(),
    ) {
        let mut bytes = lines.join(&b'\n');
        if end_with_newline {
            bytes.push(b'\n');
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.journal");
        std::fs::write(&path, &bytes).unwrap();
        match replay(&path) {
            Ok(Some(replayed)) => {
                prop_assert!(replayed.records_read >= replayed.len() as u64);
                for id in replayed.ids() {
                    let record = replayed.get(id);
                    prop_assert_eq!(record.map(|r| r.id), Some(id.to_owned()));
                }
                prop_assert_eq!(replayed.records().count(), replayed.len());
            }
            Ok(None) => return Err(TestCaseError::fail("a file that exists replayed as missing")),
            Err(JournalError::Corrupt { line, .. }) => {
                let count = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                prop_assert!((1..=count).contains(&line), "line {} of {}", line, count);
            }
            Err(JournalError::UnsupportedVersion { .. }) => {}
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        }
    }
}

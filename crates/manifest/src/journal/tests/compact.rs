//! Replay keeps entries compactly and reads `Registered` lines without serde: both must give back
//! exactly what serde reads from the line.

use std::collections::HashMap;

use proptest::prelude::*;

use super::super::entries::{Entries, Slot};
use super::super::fast::{RegisteredLine, registered_line};
use super::super::record::encode_record;
use super::super::replay::{Parsed, parse_with_serde};
use super::*;

const HEX: &str = "0123456789abcdef0123456789abcdef";

/// Every `State` variant, each in the shapes the store keeps it in (compact or boxed). A variant core
/// adds later has another `state` tag, which the fast path never takes: serde reads it.
fn every_state() -> Vec<State> {
    vec![
        State::Pending,
        form_issued(HEX),
        uploading("asset-a"),
        uploaded(HEX),
        registered(HEX),
        registered("asset-a"),
        State::Registered { asset_id: HEX.into(), size: u64::MAX, md5: HEX.to_uppercase() },
        State::Registered { asset_id: HEX.to_uppercase(), size: 0, md5: HEX.into() },
        State::Registered { asset_id: String::new(), size: 7, md5: "x\"y\\z".into() },
        State::DataSet { asset_id: HEX.into(), size: 9, md5: HEX.into() },
        State::DataSet { asset_id: "asset-a".into(), size: 9, md5: HEX.into() },
        State::Verified { asset_id: HEX.into(), size: 9, md5: HEX.into(), data_set: true },
        State::Verified { asset_id: HEX.into(), size: 9, md5: HEX.into(), data_set: false },
        State::Verified { asset_id: HEX.to_uppercase(), size: 9, md5: HEX.into(), data_set: true },
        failed(None),
        failed(Some(HEX)),
        State::Failed {
            asset_id: Some("a\"b\\c\u{1}é".into()),
            failure: Failure {
                step: Step::Register,
                kind: FailureKind::Status { status: 503, code: Some("SlowDown".into()) },
                message: "try later".into(),
                retry_after_ms: Some(1500),
            },
            uploaded: Some(spinlift_core::Uploaded {
                size: 5,
                md5: HEX.into(),
                started_at: UnixMillis(1),
                completed_at: UnixMillis(2),
            }),
            data_set: true,
        },
    ]
}

fn ids() -> [&'static str; 4] {
    ["photos/a.jpg", "çé/😀", "quote\"back\\slash\ttab", ""]
}

/// `record` as one line, without its `\n`.
fn line_of(record: &Record) -> Vec<u8> {
    let mut line = Vec::new();
    encode_record(record, &mut line).unwrap();
    assert_eq!(line.pop(), Some(b'\n'));
    line
}

/// What serde reads from `line`.
fn serde_reads(line: &[u8]) -> Result<Record, String> {
    match parse_with_serde(line)? {
        Parsed::Record(record) => Ok(record),
        _ => Err("not a record".to_owned()),
    }
}

/// The record the fast path read.
fn as_record(fast: RegisteredLine<'_>) -> Record {
    let state =
        State::Registered { asset_id: fast.asset_id.to_owned(), size: fast.size, md5: fast.md5.to_owned() };
    Record { id: fast.id.to_owned(), state, form: None, source: fast.source }
}

/// Whatever the fast path reads, serde reads the same.
fn assert_fast_agrees(line: &[u8]) -> Result<bool, TestCaseError> {
    let Some(fast) = registered_line(line) else { return Ok(false) };
    let serde = serde_reads(line);
    prop_assert_eq!(serde.as_ref(), Ok(&as_record(fast)), "line {:?}", String::from_utf8_lossy(line));
    Ok(true)
}

/// Every record shape: each state, with and without form and source, under ids that need escaping.
fn every_record() -> Vec<Record> {
    let mut records = Vec::new();
    for id in ids() {
        for state in every_state() {
            // A remote object's stamp carries its ETag's fingerprint.
            let tagged = SourceStamp { tag: 0x9e37_79b9_7f4a_7c15, ..stamp() };
            let shapes = [
                (false, None),
                (false, Some(stamp())),
                (true, None),
                (true, Some(stamp())),
                (false, Some(tagged)),
            ];
            for (with_form, source) in shapes {
                let mut record = Record::new(id, state.clone());
                record.form = with_form.then(|| form(HEX));
                record.source = source;
                records.push(record);
            }
        }
    }
    records
}

#[test]
fn every_state_reads_the_same_through_the_fast_path_and_the_compact_store() {
    let mut fast_lines = 0;
    for record in every_record() {
        let line = line_of(&record);
        let mut expected = record.clone();
        expected.drop_final_form();
        assert_eq!(serde_reads(&line).as_ref(), Ok(&expected), "{record:?}");

        let fast = registered_line(&line);
        if let Some(fast) = fast {
            assert_eq!(as_record(fast), expected, "{record:?}");
            fast_lines += 1;
        }
        // The fast path takes every registered line written the usual way.
        let plain = |text: &str| !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        if let State::Registered { asset_id, md5, .. } = &record.state {
            assert_eq!(fast.is_some(), plain(&record.id) && plain(asset_id) && plain(md5), "{record:?}");
        } else {
            assert!(fast.is_none(), "{record:?}");
        }

        let slot = Slot::of(expected.clone());
        let compact = matches!(expected.state.registered(), Some((asset_id, _, md5))
            if asset_id == HEX && md5.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(matches!(slot, Slot::Registered { .. }), compact, "{record:?}");
        let mut entries = Entries::default();
        entries.upsert(&expected.id, slot);
        assert_eq!(entries.get(&expected.id), Some(expected), "{record:?}");
    }
    assert_eq!(fast_lines, 3 * 4 * 5, "3 ids without escapes, 4 such registered states, 5 shapes");
}

/// What serde_json writes for `record` as a journal keeps it (no form with a final state).
fn serde_line(record: &Record) -> Vec<u8> {
    let mut kept = record.clone();
    kept.drop_final_form();
    serde_json::to_vec(&kept).unwrap()
}

#[test]
fn every_record_is_written_as_serde_writes_it() {
    // The usual states are written by hand (`fast::write_state`), the rest by serde: either way the
    // bytes are serde's, so a journal reads the same whoever wrote it.
    for record in every_record() {
        assert_eq!(
            String::from_utf8(line_of(&record)).unwrap(),
            String::from_utf8(serde_line(&record)).unwrap(),
            "{record:?}"
        );
    }
}

#[tokio::test]
async fn every_state_comes_back_from_a_journal_and_from_its_snapshot() {
    let (_dir, path) = scratch();
    let records = every_record();
    write_journal(&path, &records).await;
    let replayed = replay_ok(&path);
    assert_eq!(entries_of(&replayed), last_per_id(&records));

    let journal = Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap();
    journal.close().await.unwrap();
    let snapshot = replay_ok(&path);
    let mut expected = replayed.clone();
    expected.records_read = snapshot.records_read;
    assert_eq!(snapshot, expected);
    assert_eq!(entries_of(&snapshot), last_per_id(&records));
}

#[test]
fn numbers_serde_would_read_differently_are_left_to_serde() {
    let line = |size: &str, mtime: &str| {
        format!(
            r#"{{"id":"a","state":{{"state":"registered","asset_id":"{HEX}","size":{size},"md5":"{HEX}"}},"source":{{"size":1,"mtime_ms":{mtime}}}}}"#
        )
    };
    for (size, mtime, fast) in [
        ("0", "0", true),
        ("18446744073709551615", "-9223372036854775807", true),
        ("01", "0", false),
        ("18446744073709551616", "0", false),
        ("1.0", "0", false),
        ("1e3", "0", false),
        ("-1", "0", false),
        ("1", "-0", false),
        ("1", "-9223372036854775808", false),
        ("1", "9223372036854775808", false),
        ("1", "01", false),
        (" 1", "0", false),
    ] {
        let text = line(size, mtime);
        assert_eq!(assert_fast_agrees(text.as_bytes()).unwrap(), fast, "{text}");
    }
    // What the fast path leaves, serde decides: `-0` is a float to serde_json, so not an `i64`.
    assert!(serde_reads(line("1", "-0").as_bytes()).is_err());
    assert!(serde_reads(line("1", "-9223372036854775808").as_bytes()).is_ok());
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(HEX.to_owned()),
        "[a-f0-9]{32}",
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn any_registered() -> impl Strategy<Value = Record> {
    let source = proptest::option::of((any::<u64>(), any::<i64>(), prop_oneof![Just(0u64), any::<u64>()]));
    (any_text(), any_text(), any::<u64>(), any_text(), source).prop_map(
        |(id, asset_id, size, md5, source)| {
            let mut record = Record::new(id, State::Registered { asset_id, size, md5 });
            record.source = source.map(|(size, mtime_ms, tag)| SourceStamp { size, mtime_ms, tag });
            record
        },
    )
}

/// A record in one of the states written by hand, with any strings and numbers.
fn any_hand_written() -> impl Strategy<Value = Record> {
    let millis = || any::<i64>().prop_map(UnixMillis);
    let state = prop_oneof![
        Just(State::Pending),
        (any_text(), millis()).prop_map(|(asset_id, expires_at)| State::FormIssued { asset_id, expires_at }),
        (any_text(), millis()).prop_map(|(asset_id, expires_at)| State::Uploading { asset_id, expires_at }),
        (any_text(), any::<u64>(), any_text(), millis(), millis()).prop_map(
            |(asset_id, size, md5, started_at, completed_at)| State::Uploaded {
                asset_id,
                size,
                md5,
                started_at,
                completed_at
            }
        ),
        (any_text(), any::<u64>(), any_text()).prop_map(|(asset_id, size, md5)| State::DataSet {
            asset_id,
            size,
            md5
        }),
    ];
    let source = proptest::option::of((any::<u64>(), any::<i64>(), prop_oneof![Just(0u64), any::<u64>()]));
    (any_text(), state, any::<bool>(), source).prop_map(|(id, state, with_form, source)| {
        let mut record = Record::new(id, state);
        record.form = with_form.then(|| form(HEX));
        record.source = source.map(|(size, mtime_ms, tag)| SourceStamp { size, mtime_ms, tag });
        record
    })
}

/// Bytes that change what a line means: quotes, escapes, signs, number syntax, whitespace, bad UTF-8.
fn any_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        proptest::sample::select(b"0159-+.eE\"\\ \t{}[],:nult".to_vec()),
        Just(0x01u8),
        Just(0xc3u8),
        Just(0xffu8),
        any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_agrees_with_serde_on_any_registered_record(record in any_registered()) {
        let line = line_of(&record);
        let took = assert_fast_agrees(&line)?;
        let plain = |text: &str| !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        if let State::Registered { asset_id, md5, .. } = &record.state {
            prop_assert_eq!(took, plain(&record.id) && plain(asset_id) && plain(md5));
        }
    }

    #[test]
    fn any_record_is_written_as_serde_writes_it(
        record in prop_oneof![any_hand_written(), any_registered()],
    ) {
        prop_assert_eq!(line_of(&record), serde_line(&record));
    }

    #[test]
    fn the_fast_path_agrees_with_serde_on_an_altered_line(
        record in any_registered(),
        edits in proptest::collection::vec((0.0..1.0f64, 0..3u8, any_byte()), 1..4),
    ) {
        let mut line = line_of(&record);
        for (at, how, byte) in edits {
            let at = ((line.len() as f64) * at) as usize;
            match how {
                0 if at < line.len() => line[at] = byte,
                1 => line.insert(at, byte),
                _ if at < line.len() => { line.remove(at); }
                _ => line.push(byte),
            }
        }
        assert_fast_agrees(&line)?;
    }

    #[test]
    fn the_store_answers_like_a_map(
        ops in proptest::collection::vec((0..400u32, any::<bool>(), 0..3u8), 0..1500),
    ) {
        let mut entries = Entries::default();
        let mut model: HashMap<String, Record> = HashMap::new();
        for (n, take, kind) in ops {
            let id = format!("photos/{n}.jpg");
            if take {
                prop_assert_eq!(entries.take(&id), model.remove(&id));
                continue;
            }
            let state = match kind {
                0 => State::Registered { asset_id: format!("{n:032x}"), size: u64::from(n), md5: HEX.into() },
                1 => form_issued(&format!("asset-{n}")),
                _ => State::Pending,
            };
            let mut record = Record::new(&id, state);
            if kind == 1 {
                record.form = Some(form(&id));
            }
            entries.upsert(&id, Slot::of(record.clone()));
            model.insert(id, record);
        }
        prop_assert_eq!(entries.len(), model.len());
        for n in 0..400u32 {
            let id = format!("photos/{n}.jpg");
            prop_assert_eq!(entries.get(&id), model.get(&id).cloned());
            prop_assert_eq!(entries.contains(&id), model.contains_key(&id));
        }
        let records: HashMap<String, Record> = entries.records().map(|r| (r.id.clone(), r)).collect();
        prop_assert_eq!(&records, &model);
        let mut ids: Vec<&str> = entries.ids().collect();
        ids.sort_unstable();
        let mut expected: Vec<&str> = model.keys().map(String::as_str).collect();
        expected.sort_unstable();
        prop_assert_eq!(ids, expected);
        let by_id: Vec<String> = entries.records_by_id().map(|r| r.id).collect();
        let mut sorted = by_id.clone();
        sorted.sort_unstable();
        prop_assert_eq!(by_id, sorted);
    }
}

#[tokio::test]
async fn a_replayed_journal_answers_by_id_and_gives_each_record_once() {
    let (_dir, path) = scratch();
    let mut records = life_of("a");
    records.push(Record::new("b", form_issued("asset-b")).with_form(form("asset-b")));
    records.push(Record::new("c", failed(None)));
    records.push(Record::new("a", registered(HEX)).with_source(stamp()));
    write_journal(&path, &records).await;

    let mut replayed = replay_ok(&path);
    assert_eq!((replayed.len(), replayed.is_empty()), (3, false));
    assert_eq!(replayed.ids().collect::<Vec<_>>(), ["a", "b", "c"], "in the order ids first appear");
    let a = Record::new("a", registered(HEX)).with_source(stamp());
    assert_eq!(replayed.get("a").as_ref(), Some(&a), "the last record wins");
    assert_eq!(replayed.records().map(|r| r.id).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(replayed.get("nobody"), None);
    assert!(!replayed.contains("nobody"));

    assert_eq!(replayed.take("a"), Some(a));
    assert_eq!(replayed.take("a"), None, "taken once");
    assert_eq!((replayed.get("a"), replayed.contains("a"), replayed.len()), (None, false, 2));
    assert_eq!(replayed.ids().collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(replayed.take("b").and_then(|b| b.form), Some(form("asset-b")));
    assert!(replayed.take("c").is_some());
    assert!(replayed.is_empty());
    assert_eq!(replayed.records().count(), 0);
}

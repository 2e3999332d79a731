//! A crash mid-write tears the last line; anything worse is named, never skipped.

use super::*;

fn three_entries() -> Vec<Record> {
    ["a", "b", "c"].iter().flat_map(|id| life_of(id)).collect()
}

#[tokio::test]
async fn a_last_record_cut_at_any_byte_is_dropped_with_a_warning_and_the_rest_kept() {
    let (dir, path) = scratch();
    let mut records = three_entries();
    let last = Record::new("a", failed(Some("asset-a")));
    records.push(last);
    write_journal(&path, &records).await;
    let whole = std::fs::read(&path).unwrap();
    let last_line_starts = whole[..whole.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let before_the_last = last_per_id(&records[..records.len() - 1]);

    let cut_path = dir.path().join("cut.journal");
    for cut in last_line_starts + 1..whole.len() {
        std::fs::write(&cut_path, &whole[..cut]).unwrap();
        let replayed = replay(&cut_path)
            .unwrap_or_else(|e| panic!("cut at byte {cut}: {e}"))
            .expect("the journal exists");
        assert_eq!(entries_of(&replayed), before_the_last, "cut at byte {cut}");
        assert_eq!(replayed.records_read, records.len() as u64 - 1);
        let line = lines_of(&path).len();
        assert_eq!(
            replayed.warnings,
            [format!("dropped a torn last line (power cut mid-write?) at line {line}")],
            "cut at byte {cut}"
        );
    }

    // Uncut, the last record counts.
    assert_eq!(entries_of(&replay_ok(&path)), last_per_id(&records));
}

#[tokio::test]
async fn garbage_in_a_middle_line_is_corruption_named_by_its_line() {
    let (_dir, path) = scratch();
    write_journal(&path, &three_entries()).await;
    let mut lines = lines_of(&path);
    lines[3] = r#"{"id":"b","state":{"sta"#.to_owned(); // line 4
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    match replay(&path) {
        Err(JournalError::Corrupt { line, message, .. }) => {
            assert_eq!(line, 4, "{message}");
        }
        other => panic!("expected Corrupt at line 4, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreadable_complete_last_line_is_dropped_like_a_torn_one() {
    let (_dir, path) = scratch();
    write_journal(&path, &life_of("a")).await;
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\0\0\0\0\n");
    std::fs::write(&path, text).unwrap();

    let replayed = replay_ok(&path);
    assert_eq!(entries_of(&replayed), last_per_id(&life_of("a")));
    assert_eq!(replayed.warnings.len(), 1);
    assert!(replayed.warnings[0].contains("line 7"), "{:?}", replayed.warnings);
}

#[test]
fn a_header_of_another_version_is_refused() {
    let (_dir, path) = scratch();
    std::fs::write(&path, "{\"type\":\"header\",\"version\":2,\"fingerprint\":\"x\",\"created_at_ms\":0}\n")
        .unwrap();
    match replay(&path) {
        Err(JournalError::UnsupportedVersion { version: 2, supported: 1, .. }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_journal_is_never_taken_for_an_empty_one() {
    let (_dir, path) = scratch();
    // A manifest given as the journal by mistake: complete line, or cut short.
    for text in [r#"{"path":"a.jpg","id":"a"}"#.to_owned() + "\n", r#"{"path":"a.jpg""#.to_owned()] {
        std::fs::write(&path, text).unwrap();
        assert!(matches!(replay(&path), Err(JournalError::Corrupt { line: 1, .. })));
    }
    // A record before any header.
    std::fs::write(&path, "{\"id\":\"a\",\"state\":{\"state\":\"pending\"}}\n").unwrap();
    assert!(matches!(replay(&path), Err(JournalError::Corrupt { line: 1, .. })));
}

#[test]
fn a_second_header_is_corruption() {
    let (_dir, path) = scratch();
    let header = format!(
        "{{\"type\":\"header\",\"version\":1,\"fingerprint\":\"{FINGERPRINT}\",\"created_at_ms\":0}}\n"
    );
    std::fs::write(&path, header.repeat(2)).unwrap();
    assert!(matches!(replay(&path), Err(JournalError::Corrupt { line: 2, .. })));
}

#[tokio::test]
async fn a_journal_with_a_torn_tail_resumes_into_a_clean_one() {
    let (_dir, path) = scratch();
    write_journal(&path, &three_entries()).await;
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();

    let replayed = replay_ok(&path);
    assert_eq!(replayed.warnings.len(), 1);
    let journal = Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap();
    journal.append(Record::new("d", State::Pending)).await.unwrap();
    journal.close().await.unwrap();

    let resumed = replay_ok(&path);
    assert!(resumed.warnings.is_empty(), "{:?}", resumed.warnings);
    let mut expected = entries_of(&replayed);
    expected.insert("d".into(), Record::new("d", State::Pending));
    assert_eq!(entries_of(&resumed), expected);
}

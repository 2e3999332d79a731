//! A journal stays proportional to the manifest, not to its history.

use std::os::unix::fs::PermissionsExt;

use super::*;

/// 10 records for each of 100 ids: a long history of few entries.
fn history() -> Vec<Record> {
    let mut records = Vec::new();
    for round in 0..10 {
        for id in 0..100 {
            let state = match round {
                9 if id % 2 == 0 => registered(&format!("asset-{id}")),
                9 => failed(None),
                _ => form_issued(&format!("asset-{id}-{round}")),
            };
            records.push(Record::new(format!("entry-{id:03}"), state).with_form(form("f")));
        }
    }
    records
}

#[tokio::test]
async fn reopening_with_the_replayed_content_writes_one_line_per_entry() {
    let (dir, path) = scratch();
    write_journal(&path, &history()).await;
    assert_eq!(lines_of(&path).len(), 1 + 1000);
    let replayed = replay_ok(&path);

    let journal = Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap();
    journal.close().await.unwrap();

    let lines = lines_of(&path);
    assert_eq!(lines.len(), 1 + 100, "a header and one record per entry");
    assert!(lines[0].contains(r#""type":"header""#));
    let compacted = replay_ok(&path);
    assert_eq!(entries_of(&compacted), entries_of(&replayed), "the same content");
    assert_eq!(compacted.fingerprint.as_deref(), Some(FINGERPRINT));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, [path.file_name().unwrap()], "no staging file left behind");
}

#[tokio::test]
async fn the_snapshot_of_the_same_content_is_the_same_file() {
    let (_dir, path) = scratch();
    write_journal(&path, &history()).await;
    let replayed = replay_ok(&path);
    Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap().close().await.unwrap();
    let first = lines_of(&path);
    let again = replay_ok(&path);
    Journal::open(&path, FINGERPRINT, Some(&again), quick()).await.unwrap().close().await.unwrap();
    // Records sorted by id; only the header's creation time may differ.
    assert_eq!(first[1..], lines_of(&path)[1..]);
}

#[tokio::test]
async fn close_compacts_a_journal_with_too_many_records_per_entry() {
    let (_dir, path) = scratch();
    let options = JournalOptions { compact_when_records_exceed: 4.0, ..quick() };
    let journal = Journal::open(&path, FINGERPRINT, None, options).await.unwrap();
    for record in history() {
        journal.append_nowait(record.line()).unwrap();
    }
    journal.close().await.unwrap();

    assert_eq!(lines_of(&path).len(), 1 + 100);
    assert_eq!(entries_of(&replay_ok(&path)), last_per_id(&history()));
}

#[tokio::test]
async fn close_leaves_a_journal_within_its_ratio_alone() {
    let (_dir, path) = scratch();
    let options = JournalOptions { compact_when_records_exceed: 4.0, ..quick() };
    let journal = Journal::open(&path, FINGERPRINT, None, options).await.unwrap();
    // 4 records per entry: not more than the ratio.
    for record in history().into_iter().take(400) {
        journal.append_nowait(record.line()).unwrap();
    }
    journal.close().await.unwrap();
    assert_eq!(lines_of(&path).len(), 1 + 400);
}

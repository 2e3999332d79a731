//! Appending, replaying, and what a journal refuses.

use super::*;

#[tokio::test]
async fn replay_gives_the_last_record_of_each_entry_without_the_forms_of_final_states() {
    let (_dir, path) = scratch();
    let journal = Journal::open(&path, FINGERPRINT, None, JournalOptions::default()).await.unwrap();

    // "a" goes all the way; "b" stops with its form in hand; "c" fails.
    for record in life_of("a") {
        journal.append(record).await.unwrap();
    }
    journal.append(Record::new("b", State::Pending)).await.unwrap();
    journal.append(Record::new("b", form_issued("asset-b")).with_form(form("asset-b"))).await.unwrap();
    let failed_with_form = Record::new("c", failed(Some("asset-c"))).with_form(form("asset-c"));
    journal.append(failed_with_form).await.unwrap();
    journal.close().await.unwrap();

    let replayed = replay_ok(&path);
    assert_eq!(replayed.fingerprint.as_deref(), Some(FINGERPRINT));
    assert!(replayed.belongs_to(FINGERPRINT));
    assert_eq!(replayed.records_read, 8);
    assert_eq!(replayed.len(), 3);
    assert!(replayed.warnings.is_empty(), "{:?}", replayed.warnings);

    let a = replayed.get("a").unwrap();
    assert_eq!(a.state, registered("asset-a"));
    assert_eq!((a.form.as_ref(), a.source), (None, Some(stamp())), "a registered entry keeps no form");

    let b = replayed.get("b").unwrap();
    assert_eq!(b.state, form_issued("asset-b"));
    assert_eq!(b.form, Some(form("asset-b")), "a form still needed is kept");

    assert_eq!(replayed.get("c").unwrap().form, None, "a failed entry keeps no form");
    // Nor was it ever written: forms are credentials.
    assert!(!std::fs::read_to_string(&path).unwrap().contains("\"key\":\"asset-c\""));
}

#[tokio::test]
async fn records_appended_without_waiting_are_durable_after_close() {
    let (_dir, path) = scratch();
    let journal = Journal::open(&path, FINGERPRINT, None, JournalOptions::default()).await.unwrap();
    for i in 0..100 {
        journal.append_nowait(Record::new(format!("e{i}"), State::Pending).line()).unwrap();
    }
    journal.close().await.unwrap();

    let replayed = replay_ok(&path);
    assert_eq!(replayed.len(), 100);
    assert_eq!(replayed.records_read, 100);
}

#[tokio::test]
async fn a_clone_appends_to_the_same_journal_and_is_refused_after_close() {
    let (_dir, path) = scratch();
    let journal = Journal::open(&path, FINGERPRINT, None, quick()).await.unwrap();
    let clone = journal.clone();
    clone.append(Record::new("from-clone", State::Pending)).await.unwrap();
    journal.close().await.unwrap();

    assert!(matches!(clone.append(Record::new("late", State::Pending)).await, Err(JournalError::Closed)));
    assert!(matches!(
        clone.append_nowait(Record::new("late", State::Pending).line()),
        Err(JournalError::Closed)
    ));
    assert!(matches!(clone.close().await, Err(JournalError::Closed)));
    assert_eq!(replay_ok(&path).ids().collect::<Vec<_>>(), ["from-clone"]);
}

#[tokio::test]
async fn dropping_every_handle_keeps_what_was_appended() {
    let (_dir, path) = scratch();
    let journal = Journal::open(&path, FINGERPRINT, None, JournalOptions::default()).await.unwrap();
    journal.append_nowait(Record::new("kept", State::Pending).line()).unwrap();
    drop(journal);

    // The writer drains its queue on its own thread, after the last handle is gone.
    let mut replayed = replay_ok(&path);
    for _ in 0..500 {
        if !replayed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        replayed = replay_ok(&path);
    }
    assert!(replayed.contains("kept"));
}

#[test]
fn a_missing_journal_replays_as_none_and_an_empty_one_as_nothing() {
    let (_dir, path) = scratch();
    assert!(replay(&path).unwrap().is_none());

    std::fs::write(&path, b"").unwrap();
    assert_eq!(replay_ok(&path), Replayed::default());
}

#[tokio::test]
async fn a_journal_with_records_is_not_opened_as_a_new_one() {
    let (_dir, path) = scratch();
    write_journal(&path, &life_of("a")).await;

    let err = Journal::open(&path, FINGERPRINT, None, quick()).await.unwrap_err();
    assert!(matches!(err, JournalError::Exists { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(replay_ok(&path).records_read, 5, "the journal is untouched");

    // Resuming from it is the way in.
    let replayed = replay_ok(&path);
    let journal = Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap();
    journal.close().await.unwrap();
}

#[tokio::test]
async fn a_journal_in_use_is_refused_to_a_second_writer() {
    let (_dir, path) = scratch();
    let first = Journal::open(&path, FINGERPRINT, None, quick()).await.unwrap();
    first.append(Record::new("a", State::Pending)).await.unwrap();

    let replayed = replay_ok(&path);
    let err = Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(err.is_retryable());

    // The first writer carries on, undisturbed.
    first.append(Record::new("b", State::Pending)).await.unwrap();
    first.close().await.unwrap();
    assert_eq!(replay_ok(&path).len(), 2);
}

#[tokio::test]
async fn a_new_journal_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = scratch();
    Journal::open(&path, FINGERPRINT, None, quick()).await.unwrap().close().await.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(lines_of(&path).len(), 1, "just the header");
    assert!(lines_of(&path)[0].starts_with(r#"{"type":"header","version":1,"fingerprint":""#));
}

#[test]
fn a_record_is_one_compact_line_and_its_debug_hides_the_form() {
    let record = Record::new("photos/a.jpg", form_issued("ec27")).with_form(form("ec27"));
    let mut line = Vec::new();
    super::super::record::encode_record(&record, &mut line).unwrap();
    let line = String::from_utf8(line).unwrap();
    assert!(line.starts_with(
        r#"{"id":"photos/a.jpg","state":{"state":"form_issued","asset_id":"ec27","expires_at":1700086400000},"form":{"#
    ));
    assert_eq!(line.matches('\n').count(), 1);
    assert!(line.ends_with("}\n"));

    let debug = format!("{record:?}");
    assert!(debug.contains("<redacted>") && !debug.contains("c2ln"), "{debug}");
}

#[test]
fn a_fingerprint_depends_on_the_ids_and_their_order_only() {
    let ids = ["a", "b", "c"];
    assert_eq!(fingerprint_ids(ids.into_iter()), fingerprint_ids(ids.into_iter()));
    assert_ne!(fingerprint_ids(ids.into_iter()), fingerprint_ids(["a", "c", "b"].into_iter()));
    assert_ne!(fingerprint_ids(["ab", "c"].into_iter()), fingerprint_ids(["a", "bc"].into_iter()));
    // Stable across versions: a journal written today must be recognised by tomorrow's spinlift.
    assert_eq!(fingerprint_ids(std::iter::empty()), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn a_source_stamp_reads_size_and_modification_time() {
    let (_dir, path) = scratch();
    std::fs::write(&path, b"abc").unwrap();
    let stamp = SourceStamp::of(&std::fs::metadata(&path).unwrap());
    assert_eq!(stamp.size, 3);
    assert!(stamp.mtime_ms > 1_600_000_000_000, "{stamp:?}");
}

#[test]
fn the_handle_and_its_futures_cross_threads() {
    fn send_and_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let (_dir, path) = scratch();
    let replayed = Replayed::default();
    send(&Journal::open(&path, FINGERPRINT, Some(&replayed), quick()));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let journal = rt.block_on(Journal::open(&path, FINGERPRINT, None, quick())).unwrap();
    send_and_sync(&journal);
    send(&journal.append(Record::new("a", State::Pending)));
    send(&journal.clone().close());
}

#[tokio::test]
async fn an_upload_recorded_without_its_form_keeps_the_form_it_was_issued_with() {
    let (_dir, path) = scratch();
    let journal = Journal::open(&path, FINGERPRINT, None, JournalOptions::default()).await.unwrap();
    // "a": the form once, with its issue; the upload's record carries none.
    journal.append(Record::new("a", form_issued("asset-a")).with_form(form("asset-a"))).await.unwrap();
    journal.append(Record::new("a", uploaded("asset-a")).with_source(stamp())).await.unwrap();
    // "b": an upload of another asset id than the form recorded before it takes nothing of it.
    journal.append(Record::new("b", form_issued("asset-b")).with_form(form("asset-b"))).await.unwrap();
    journal.append(Record::new("b", uploaded("asset-other")).with_source(stamp())).await.unwrap();
    journal.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().matches("\"form\"").count(), 2, "written once each");

    let replayed = replay_ok(&path);
    let a = replayed.get("a").unwrap();
    assert_eq!((a.state, a.form, a.source), (uploaded("asset-a"), Some(form("asset-a")), Some(stamp())));
    assert_eq!(replayed.get("b").unwrap().form, None, "a form is never given to another asset id");

    // Compaction writes the form with the upload's record: a second replay reads the same.
    let again = Journal::open(&path, FINGERPRINT, Some(&replayed), quick()).await.unwrap();
    again.close().await.unwrap();
    assert_eq!(replay_ok(&path).get("a").unwrap().form, Some(form("asset-a")));
}

//! A disk that fills up (or an fsync that fails) stops the journal; what is on disk stays valid.

use super::*;

fn disk_with_room(room: usize) -> impl FnOnce(File) -> DiskFull + Send + 'static {
    move |file| DiskFull { file, room }
}

#[tokio::test]
async fn a_full_disk_fails_the_append_and_every_later_one_and_leaves_a_valid_journal() {
    let (_dir, path) = scratch();
    let options = JournalOptions::default();
    let journal =
        Journal::open_with_sink(&path, FINGERPRINT, None, options, disk_with_room(1000)).await.unwrap();

    let records: Vec<Record> = (0..10).flat_map(|i| life_of(&format!("e{i}"))).collect();
    let mut acknowledged = Vec::new();
    let mut first_error = None;
    for record in &records {
        match journal.append(record.clone()).await {
            Ok(()) => acknowledged.push(record.clone()),
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    let first_error = first_error.expect("1000 bytes cannot hold 50 records");
    assert!(
        matches!(&first_error, JournalError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull),
        "{first_error:?}"
    );
    assert!(!first_error.is_retryable());

    // The journal has stopped: nothing more is accepted, by any means.
    let later = journal.append(Record::new("later", State::Pending)).await.unwrap_err();
    assert!(matches!(&later, JournalError::Stopped { cause, .. } if cause.contains("No space")), "{later}");
    assert!(matches!(
        journal.append_nowait(Record::new("later", State::Pending).line()),
        Err(JournalError::Stopped { .. })
    ));
    assert!(matches!(journal.clone().close().await, Err(JournalError::Stopped { .. })));

    // What is on disk replays: every acknowledged record, the torn one dropped with a warning.
    let replayed = replay_ok(&path);
    assert_eq!(entries_of(&replayed), last_per_id(&acknowledged));
    assert_eq!(replayed.warnings.len(), 1, "{:?}", replayed.warnings);

    // Space freed, the next run carries on from a clean snapshot.
    drop(journal);
    let resumed = resume_when_unlocked(&path, &replayed).await;
    resumed.append(Record::new("later", State::Pending)).await.unwrap();
    resumed.close().await.unwrap();
    let after = replay_ok(&path);
    assert!(after.warnings.is_empty());
    assert_eq!(after.len(), replayed.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_on_a_full_disk_each_get_an_answer_and_the_acknowledged_records_survive() {
    let (_dir, path) = scratch();
    let options = JournalOptions::default();
    let journal =
        Journal::open_with_sink(&path, FINGERPRINT, None, options, disk_with_room(20_000)).await.unwrap();

    let mut tasks = Vec::new();
    for task in 0..64 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..20 {
                let record = Record::new(format!("t{task}-{i}"), form_issued("x")).with_form(form("x"));
                match journal.append(record.clone()).await {
                    Ok(()) => acknowledged.push(record),
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(!acknowledged.is_empty() && acknowledged.len() < 64 * 20, "{}", acknowledged.len());

    let replayed = replay_ok(&path);
    for record in &acknowledged {
        assert_eq!(replayed.get(&record.id).as_ref(), Some(record), "acknowledged, so on disk");
    }
    // A record of the failed group may have reached the disk whole, unacknowledged: still a valid record.
    assert!(replayed.len() >= acknowledged.len());
}

/// The real file, whose fsync fails once (as after a writeback error).
struct FailingSync(File);

impl Sink for FailingSync {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        Err(io::Error::other("Input/output error"))
    }
}

#[tokio::test]
async fn a_failed_fsync_stops_the_journal_too() {
    let (_dir, path) = scratch();
    let journal = Journal::open_with_sink(&path, FINGERPRINT, None, JournalOptions::default(), FailingSync)
        .await
        .unwrap();
    let err = journal.append(Record::new("a", State::Pending)).await.unwrap_err();
    assert!(matches!(err, JournalError::Io { .. }), "{err}");
    let later = journal.append(Record::new("b", State::Pending)).await.unwrap_err();
    assert!(matches!(later, JournalError::Stopped { .. }), "{later}");
    // Nothing that follows a failed fsync is trusted, nor written.
    assert!(replay_ok(&path).ids().all(|id| id == "a"));
}

/// Opens the journal from `replayed` once the stopped writer has let go of its lock.
async fn resume_when_unlocked(path: &Path, replayed: &Replayed) -> Journal {
    for _ in 0..500 {
        match Journal::open(path, FINGERPRINT, Some(replayed), quick()).await {
            Ok(journal) => return journal,
            Err(JournalError::Locked { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the stopped writer kept its lock");
}

//! Many appenders, few fsyncs: the writer commits whatever is queued as one group.

use super::*;

const TASKS: usize = 64;
const RECORDS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_durable_appends_from_64_tasks_share_their_fsyncs() {
    let (_dir, path) = scratch();
    let (journal, syncs, appends) = counting(&path, JournalOptions::default()).await;

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            for i in (task..RECORDS).step_by(TASKS) {
                // Each record is acknowledged only once it is written and fsync'd.
                journal.append(Record::new(format!("entry-{i}"), State::Pending)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let syncs_before_close = syncs.load(Ordering::Relaxed);
    journal.close().await.unwrap();

    let replayed = replay_ok(&path);
    assert_eq!(replayed.records_read, RECORDS as u64);
    assert_eq!(replayed.len(), RECORDS);
    assert!((0..RECORDS).all(|i| replayed.contains(&format!("entry-{i}"))));

    let groups = appends.load(Ordering::Relaxed);
    println!(
        "{RECORDS} durable appends from {TASKS} tasks: {syncs_before_close} fsyncs, {groups} writes, \
         {:.1} records per fsync",
        RECORDS as f64 / syncs_before_close as f64
    );
    assert!(syncs_before_close > 0, "durable appends are fsync'd");
    assert!(
        syncs_before_close * 4 <= RECORDS as u64,
        "{syncs_before_close} fsyncs for {RECORDS} records: appenders should share fsyncs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_appender_still_gets_an_fsync_per_record_and_no_more() {
    let (_dir, path) = scratch();
    let (journal, syncs, _) = counting(&path, JournalOptions::default()).await;
    for i in 0..10 {
        journal.append(Record::new(format!("e{i}"), State::Pending)).await.unwrap();
    }
    assert_eq!(syncs.load(Ordering::Relaxed), 10);

    // Records that do not wait share the fsync of the next one that does.
    for i in 10..20 {
        journal.append_nowait(Record::new(format!("e{i}"), State::Pending).line()).unwrap();
    }
    journal.append(Record::new("e20", State::Pending)).await.unwrap();
    assert_eq!(syncs.load(Ordering::Relaxed), 11);
    journal.close().await.unwrap();
    assert_eq!(replay_ok(&path).len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durability_nothing_is_fsynced_until_close() {
    let (_dir, path) = scratch();
    let (journal, syncs, _) = counting(&path, quick()).await;
    for i in 0..50 {
        journal.append(Record::new(format!("e{i}"), State::Pending)).await.unwrap();
    }
    assert_eq!(syncs.load(Ordering::Relaxed), 0);
    journal.close().await.unwrap();
    assert_eq!(syncs.load(Ordering::Relaxed), 1, "close fsyncs once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_begun_is_queued_at_once_and_its_future_says_when_it_is_durable() {
    let (_dir, path) = scratch();
    let (journal, syncs, _) = counting(&path, JournalOptions::default()).await;
    // Queued in call order, before anything appended after the call, whether or not anyone waits.
    let first = journal.append_begin(Record::new("e", State::Pending).line());
    let dropped = journal.append_begin(Record::new("e", form_issued("asset-e")).line());
    drop(dropped);
    journal.append_nowait(Record::new("e", uploading("asset-e")).line()).unwrap();
    first.await.unwrap();
    assert!(syncs.load(Ordering::Relaxed) >= 1, "acknowledged once fsync'd");
    journal.close().await.unwrap();
    let replayed = replay_ok(&path);
    assert_eq!(replayed.records_read, 3);
    assert_eq!(replayed.get("e").unwrap().state, uploading("asset-e"));

    // After close, the future carries the refusal.
    let late = journal_after_close(&path).await;
    assert!(matches!(late.await, Err(JournalError::Closed)));
}

/// A handle whose journal is closed, and an append begun on it.
async fn journal_after_close(path: &Path) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
    let replayed = replay_ok(path);
    let journal = Journal::open(path, FINGERPRINT, Some(&replayed), quick()).await.unwrap();
    let clone = journal.clone();
    journal.close().await.unwrap();
    clone.append_begin(Record::new("late", State::Pending).line())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_window_gathers_appenders_into_one_fsync_and_a_lone_appender_waits_no_longer() {
    let (_dir, path) = scratch();
    let options = JournalOptions {
        group_wait: std::time::Duration::from_millis(300),
        group_size: 8,
        ..JournalOptions::default()
    };
    let (journal, syncs, _) = counting(&path, options).await;

    // Eight appenders: the group is full with the eighth, and goes before its window is over.
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.append(Record::new(format!("e{i}"), State::Pending)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(syncs.load(Ordering::Relaxed), 1, "one fsync for the eight");
    assert!(started.elapsed() < std::time::Duration::from_millis(250), "{:?}", started.elapsed());

    // Alone, an appender waits out the window, then its record goes.
    let started = std::time::Instant::now();
    journal.append(Record::new("alone", State::Pending)).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "{:?}", started.elapsed());
    assert_eq!(syncs.load(Ordering::Relaxed), 2);
    journal.close().await.unwrap();
    assert_eq!(replay_ok(&path).len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_append_joins_the_next_group_or_goes_on_its_own_when_none_comes() {
    let (_dir, path) = scratch();
    let (journal, syncs, _) = counting(&path, JournalOptions::default()).await;

    // It starts no group of its own: the next append someone waits on takes it along.
    let lazy =
        journal.append_lazy(Record::new("lazy", State::Pending).line(), std::time::Duration::from_secs(60));
    journal.append(Record::new("eager", State::Pending)).await.unwrap();
    lazy.await.unwrap();
    assert_eq!(syncs.load(Ordering::Relaxed), 1, "one fsync for both");

    // No other append comes: it goes on its own after `within`.
    let started = std::time::Instant::now();
    let within = std::time::Duration::from_millis(30);
    journal.append_lazy(Record::new("alone", State::Pending).line(), within).await.unwrap();
    assert!(started.elapsed() >= within, "{:?}", started.elapsed());
    assert_eq!(syncs.load(Ordering::Relaxed), 2);
    journal.close().await.unwrap();
    assert_eq!(replay_ok(&path).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_nobody_waits_on_goes_with_the_next_group_or_soon_after() {
    let (_dir, path) = scratch();
    let (journal, _, appends) = counting(&path, JournalOptions::default()).await;
    // With the next append someone waits on: one write for both.
    journal.append_nowait(Record::new("a", State::Pending).line()).unwrap();
    journal.append(Record::new("b", State::Pending)).await.unwrap();
    assert_eq!(appends.load(Ordering::Relaxed), 1);

    // Alone: written (not fsync'd) within a few tens of milliseconds all the same.
    journal.append_nowait(Record::new("c", State::Pending).line()).unwrap();
    let mut waited = 0;
    while !std::fs::read_to_string(&path).unwrap().contains(r#""id":"c""#) {
        assert!(waited < 2_000, "the record was never written");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 10;
    }
    assert_eq!(appends.load(Ordering::Relaxed), 2);
    journal.close().await.unwrap();
}

#[tokio::test]
async fn an_open_journal_ends_in_blank_lines_that_replay_skips_and_a_closed_one_in_its_last_record() {
    let (_dir, path) = scratch();
    let journal = Journal::open(&path, FINGERPRINT, None, JournalOptions::default()).await.unwrap();
    let records: Vec<Record> = (0..50).flat_map(|i| life_of(&format!("e{i}"))).collect();
    for record in &records {
        journal.append(record.clone()).await.unwrap();
    }
    // Open (or left behind by a crash): the records, then blank lines for the next ones to overwrite.
    let open = std::fs::read(&path).unwrap();
    assert!(open.ends_with(b"\n\n\n"), "room ahead of the records");
    let replayed = replay_ok(&path);
    assert!(replayed.warnings.is_empty(), "{:?}", replayed.warnings);
    assert_eq!(entries_of(&replayed), last_per_id(&records));

    // Closed: the room is gone, the file ends with its last record.
    journal.close().await.unwrap();
    let closed = std::fs::read_to_string(&path).unwrap();
    assert!(closed.ends_with("}\n") && !closed.ends_with("\n\n"), "{:?}", &closed[closed.len() - 20..]);
    assert!(lines_of(&path).iter().all(|line| !line.is_empty()));
    assert_eq!(entries_of(&replay_ok(&path)), last_per_id(&records));

    // The same when the last handle goes without `close`.
    let replayed = replay_ok(&path);
    let journal =
        Journal::open(&path, FINGERPRINT, Some(&replayed), JournalOptions::default()).await.unwrap();
    journal.append(Record::new("late", State::Pending)).await.unwrap();
    drop(journal);
    let mut text = String::new();
    for _ in 0..500 {
        text = std::fs::read_to_string(&path).unwrap();
        if !text.ends_with("\n\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(text.ends_with("}\n") && text.contains(r#""id":"late""#));
}

#[tokio::test]
async fn without_blank_room_an_open_journal_ends_in_its_last_durable_record() {
    let (_dir, path) = scratch();
    let options = JournalOptions { blank_room: false, ..JournalOptions::default() };
    let journal = Journal::open(&path, FINGERPRINT, None, options).await.unwrap();
    let records: Vec<Record> = (0..50).flat_map(|i| life_of(&format!("e{i}"))).collect();
    for record in &records {
        journal.append(record.clone()).await.unwrap();
    }
    // What a crash right now would leave: the records, nothing after them.
    let open = std::fs::read_to_string(&path).unwrap();
    assert!(open.ends_with("}\n"), "{:?}", &open[open.len() - 20..]);
    assert!(lines_of(&path).iter().all(|line| !line.is_empty()));
    assert_eq!(entries_of(&replay_ok(&path)), last_per_id(&records));
    journal.close().await.unwrap();
    assert_eq!(entries_of(&replay_ok(&path)), last_per_id(&records));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_longer_than_a_batch_is_written_in_several_groups_with_every_line_whole() {
    let (_dir, path) = scratch();
    let options = JournalOptions { max_batch: 3, ..JournalOptions::default() };
    let (journal, _, appends) = counting(&path, options).await;
    // Lines of different lengths, so that a batch cut in the wrong place would tear one.
    let records: Vec<Record> = (0..10).flat_map(|i| life_of(&format!("entry-{}", "x".repeat(i)))).collect();
    let (last, queued) = records.split_last().unwrap();
    for record in queued {
        journal.append_nowait(record.line()).unwrap();
    }
    journal.append(last.clone()).await.unwrap();
    let groups = appends.load(Ordering::Relaxed);
    assert!(
        groups >= records.len().div_ceil(3) as u64,
        "{} records in {groups} writes of at most 3",
        records.len()
    );

    // Read while open: closing would compact the file to one record per entry.
    let replayed = replay_ok(&path);
    assert!(replayed.warnings.is_empty(), "{:?}", replayed.warnings);
    assert_eq!(replayed.records_read, records.len() as u64);
    assert_eq!(entries_of(&replayed), last_per_id(&records));
    journal.close().await.unwrap();
}

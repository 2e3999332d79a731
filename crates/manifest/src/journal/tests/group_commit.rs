//! Many appenders, few fsyncs: the writer commits whatever is queued as one group.

use super::*;

const TASKS: usize = 64;
const RECORDS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_durable_appends_from_64_tasks_share_their_fsyncs() {
    let (_dir, path) = scratch();
    let syncs = Arc::new(AtomicU64::new(0));
    let appends = Arc::new(AtomicU64::new(0));
    let (s, a) = (syncs.clone(), appends.clone());
    let journal = Journal::open_with_sink(&path, FINGERPRINT, None, JournalOptions::default(), move |file| {
        Counting { file, syncs: s, appends: a }
    })
    .await
    .unwrap();

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
    let syncs = Arc::new(AtomicU64::new(0));
    let s = syncs.clone();
    let journal = Journal::open_with_sink(&path, FINGERPRINT, None, JournalOptions::default(), move |file| {
        Counting { file, syncs: s, appends: Arc::default() }
    })
    .await
    .unwrap();
    for i in 0..10 {
        journal.append(Record::new(format!("e{i}"), State::Pending)).await.unwrap();
    }
    assert_eq!(syncs.load(Ordering::Relaxed), 10);

    // Records that do not wait share the fsync of the next one that does.
    for i in 10..20 {
        journal.append_nowait(Record::new(format!("e{i}"), State::Pending)).unwrap();
    }
    journal.append(Record::new("e20", State::Pending)).await.unwrap();
    assert_eq!(syncs.load(Ordering::Relaxed), 11);
    journal.close().await.unwrap();
    assert_eq!(replay_ok(&path).len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durability_nothing_is_fsynced_until_close() {
    let (_dir, path) = scratch();
    let syncs = Arc::new(AtomicU64::new(0));
    let s = syncs.clone();
    let journal = Journal::open_with_sink(&path, FINGERPRINT, None, quick(), move |file| Counting {
        file,
        syncs: s,
        appends: Arc::default(),
    })
    .await
    .unwrap();
    for i in 0..50 {
        journal.append(Record::new(format!("e{i}"), State::Pending)).await.unwrap();
    }
    assert_eq!(syncs.load(Ordering::Relaxed), 0);
    journal.close().await.unwrap();
    assert_eq!(syncs.load(Ordering::Relaxed), 1, "close fsyncs once");
}

//! The library as a program of the user's own uses it: a manifest built in code, the engine's builder,
//! the stream of progress events, cancellation, and a checkpoint whose disk fills up.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift::{Checkpoint, Engine, EngineError, Manifest, Progress, RunOptions, Secret, Sink, StopReason};
use spinlift_emulator::{Emulator, EmulatorConfig};

#[path = "../examples/migrate.rs"]
#[allow(dead_code)]
mod example;

fn sample(dir: &Path, count: usize) -> SampleSet {
    SampleSet::write(dir, &SampleSpec::mixed(count, 11)).unwrap()
}

fn engine(emulator: &Emulator) -> spinlift::EngineBuilder {
    Engine::builder(emulator.api_url(), Secret::new(emulator.api_key().to_owned())).api_rps(0)
}

/// Every file of `set` registered exactly once (by its unique file name), with its bytes in S3.
fn assert_each_file_registered_once(emulator: &Emulator, set: &SampleSet) {
    let mut by_name: HashMap<String, Vec<spinlift_emulator::Registration>> = HashMap::new();
    for r in emulator.registrations() {
        by_name.entry(r.filename.clone()).or_default().push(r);
    }
    for file in &set.files {
        let name = file.path.rsplit('/').next().unwrap();
        let regs = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(regs.len(), 1, "{}: registered {} times", file.path, regs.len());
        assert_eq!((regs[0].size, regs[0].checksum.as_str()), (file.size, file.md5.as_str()));
        let stored = emulator.read_object(&regs[0].key).unwrap();
        assert!(stored == std::fs::read(set.dir.join(&file.path)).unwrap(), "{}: bytes differ", file.path);
    }
    assert_eq!(emulator.registrations().len(), set.files.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_migrates_a_legacy_list_and_writes_the_id_mapping_once() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = sample(dir.path(), 60);
    let export = dir.path().join("export.csv");
    let lines: Vec<String> =
        set.files.iter().enumerate().map(|(i, f)| format!("legacy-{i},{}", f.path)).collect();
    std::fs::write(&export, format!("legacy_id,relative_path\n{}\n", lines.join("\n"))).unwrap();
    let mapping = dir.path().join("mapping.csv");
    let key = || Secret::new(emulator.api_key().to_owned());

    let report = example::migrate(&export, dir.path(), &mapping, &emulator.api_url(), key()).await.unwrap();
    assert_eq!(report.registered(), 60);
    assert_each_file_registered_once(&emulator, &set);
    let registered: HashMap<String, String> =
        emulator.registrations().into_iter().map(|r| (r.filename, r.asset_id)).collect();
    let text = std::fs::read_to_string(&mapping).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 60);
    for (i, (row, file)) in rows.iter().zip(&set.files).enumerate() {
        let name = file.path.rsplit('/').next().unwrap();
        assert_eq!(*row, format!("legacy-{i},{},registered,", registered[name]));
    }

    // Run again: everything is in the checkpoint, nothing is asked of FileSpin.
    let issued = emulator.stats().issued;
    let again = example::migrate(&export, dir.path(), &mapping, &emulator.api_url(), key()).await.unwrap();
    assert_eq!(again.registered(), 60);
    assert_eq!(emulator.stats().issued, issued);
    assert_eq!(std::fs::read_to_string(&mapping).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_account_for_every_entry_and_every_byte() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = sample(dir.path(), 40);
    let manifest = Manifest::load(&set.manifest).unwrap();
    let mut run = engine(&emulator).concurrency(8).build().unwrap().spawn(manifest);

    let (mut finished, mut bytes) = (Vec::new(), 0u64);
    while let Some(event) = run.next().await {
        match event {
            Progress::BytesSent { bytes: n } => bytes += n,
            Progress::Finished(entry) => finished.push(entry),
            _ => {}
        }
    }
    let report = run.report().await.unwrap();
    assert_eq!(report.registered(), 40);
    finished.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        finished,
        report.entries().collect::<Vec<_>>(),
        "one Finished event per entry, as the report has it"
    );
    assert!(bytes >= set.total_bytes(), "{bytes} bytes reported sent for {} in the files", set.total_bytes());
    // What the run measured goes to FileSpin as `network_bandwidth` (whole Mbit/s).
    for r in emulator.registrations() {
        assert!(r.service_data["network_bandwidth"].as_u64().is_some_and(|n| n >= 1), "{}", r.service_data);
        assert_eq!(r.service_data["app"], "spinlift-sample");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_says_so_and_the_next_run_finishes_without_duplicates() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 200 files: well beyond the 72 entries a run keeps going with 4 slots and a journal.
    let set = sample(dir.path(), 200);
    let build = || engine(&emulator).concurrency(4).build().unwrap();

    let mut run = build().spawn(Manifest::load(&set.manifest).unwrap());
    while let Some(event) = run.next().await {
        if matches!(event, Progress::Finished(_)) {
            run.cancel();
        }
    }
    let first = run.report().await.unwrap();
    assert_eq!(first.stopped, Some(StopReason::Cancelled));
    assert!(
        first.registered() < 200,
        "cancelled after the first entry, yet all {} registered",
        first.registered()
    );

    let second = build().spawn(Manifest::load(&set.manifest).unwrap()).report().await.unwrap();
    assert_eq!((second.registered(), second.stopped), (200, None));
    assert_each_file_registered_once(&emulator, &set);
    // Forms requested ahead of entries the cancelled run never reached were recorded, and the next run
    // used them: FileSpin issued one asset id per file.
    assert_eq!(emulator.stats().issued, 200, "{:?}", emulator.stats());
}

/// The journal file until `appends` groups of records were written; then half a group, and the disk
/// is full.
struct FillsUp {
    file: std::fs::File,
    appends_left: Arc<AtomicUsize>,
}

impl Sink for FillsUp {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.appends_left.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.file.append(&bytes[..bytes.len() / 2])?;
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.file.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_run_and_what_was_recorded_stays_valid() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Eight groups of records are written, the ninth fills the disk. Past the first groups (forms
    // only, some requested ahead of their entries) records come only as files are uploaded.
    let set = sample(dir.path(), 200);
    let manifest = Manifest::load(&set.manifest).unwrap();
    let engine = engine(&emulator).concurrency(4).build().unwrap();

    let appends_left = Arc::new(AtomicUsize::new(8));
    let mut options = RunOptions::default();
    let left = appends_left.clone();
    options.journal_sink =
        Some(Arc::new(move |file| Box::new(FillsUp { file, appends_left: left.clone() }) as Box<dyn Sink>));
    let first = engine
        .run(&manifest, &options, std::sync::Arc::new(spinlift::Silent), Default::default())
        .await
        .unwrap();
    match &first.stopped {
        Some(StopReason::Journal(message)) => assert!(message.contains(".checkpoint"), "{message}"),
        other => panic!("expected a stop for the journal, got {other:?}"),
    }
    // Nothing reported registered is unknown to FileSpin.
    let registered: Vec<String> = emulator.registrations().into_iter().map(|r| r.asset_id).collect();
    for entry in first.entries().filter(|e| e.is_registered()) {
        assert!(registered.contains(entry.asset_id.as_ref().unwrap()), "{entry:?}");
    }
    // The journal replays (its torn tail dropped), and it knows every asset whose file reached S3: an
    // upload starts only once its form's record is on the disk.
    let checkpoint = Checkpoint::default().path_for(&set.manifest).unwrap();
    let replayed = spinlift_manifest::journal::replay(&checkpoint).unwrap().expect("a journal");
    let known: std::collections::HashSet<String> =
        replayed.records().filter_map(|r| r.state.asset_id().map(str::to_owned)).collect();
    let stored: Vec<_> =
        emulator.issued().into_iter().filter(|f| emulator.object_path(&f.key).exists()).collect();
    assert!(!stored.is_empty(), "no file was uploaded before the disk filled up: {:?}", emulator.stats());
    for form in &stored {
        assert!(known.contains(&form.asset_id), "{} reached S3 unrecorded", form.asset_id);
    }
    // The next run finishes the batch.
    let second = engine
        .run(&manifest, &RunOptions::default(), std::sync::Arc::new(spinlift::Silent), Default::default())
        .await
        .unwrap();
    assert_eq!((second.registered(), second.stopped), (200, None));
    assert_each_file_registered_once(&emulator, &set);
}

/// A disk whose every fsync fails: nothing written ever becomes durable.
struct NeverDurable(std::fs::File);

impl Sink for NeverDurable {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        Err(io::Error::other("fsync failed (injected)"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_is_uploaded_before_its_forms_record_is_on_the_disk() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = sample(dir.path(), 300);
    let manifest = Manifest::load(&set.manifest).unwrap();
    // Slots to spare: an upload that did not wait for its record would find one at once.
    let engine = engine(&emulator).concurrency(64).build().unwrap();
    let mut options = RunOptions::default();
    options.journal_sink = Some(Arc::new(|file| Box::new(NeverDurable(file)) as Box<dyn Sink>));

    let first =
        engine.run(&manifest, &options, Arc::new(spinlift::Silent), Default::default()).await.unwrap();

    match &first.stopped {
        Some(StopReason::Journal(message)) => assert!(message.contains("fsync failed"), "{message}"),
        other => panic!("expected a stop for the journal, got {other:?}"),
    }
    // Forms were asked for (some ahead of their entries), but none was used: a crash could have lost
    // its record, and the next run would upload the file as a second asset.
    let stats = emulator.stats();
    assert!(stats.issued > 0, "{stats:?}");
    assert_eq!(stats.s3_requests, 0, "uploads without a durable record: {stats:?}");
    let second = engine
        .run(&manifest, &RunOptions::default(), Arc::new(spinlift::Silent), Default::default())
        .await
        .unwrap();
    assert_eq!((second.registered(), second.stopped), (300, None));
    assert_each_file_registered_once(&emulator, &set);
}

/// A disk whose first fsync takes until FileSpin has issued `forms` forms (at most a minute), and
/// notes how many files had reached S3 by then.
struct SlowFirstSync {
    file: std::fs::File,
    emulator: Arc<Emulator>,
    forms: u64,
    uploads_meanwhile: Arc<std::sync::Mutex<Option<u64>>>,
}

impl Sink for SlowFirstSync {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut meanwhile = self.uploads_meanwhile.lock().unwrap();
        if meanwhile.is_none() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while self.emulator.stats().issued < self.forms && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            *meanwhile = Some(self.emulator.stats().s3_requests);
        }
        self.file.sync()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_first_records_wait_for_the_disk_no_file_is_uploaded() {
    let emulator = Arc::new(Emulator::start(EmulatorConfig::default()).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![1_000; 300], seed: 12 }).unwrap();
    let manifest = Manifest::load(&set.manifest).unwrap();
    let engine = engine(&emulator).build().unwrap();
    // 16 slots keep 96 entries going, and forms are requested 64 or more ahead of them: while the first
    // fsync lasts, FileSpin issues well over 100 forms, and every one of them must wait for it.
    let uploads_meanwhile = Arc::new(std::sync::Mutex::new(None));
    let (held, noted) = (emulator.clone(), uploads_meanwhile.clone());
    let mut options = RunOptions::default();
    options.journal_sink = Some(Arc::new(move |file| {
        let sink =
            SlowFirstSync { file, emulator: held.clone(), forms: 100, uploads_meanwhile: noted.clone() };
        Box::new(sink) as Box<dyn Sink>
    }));

    let report =
        engine.run(&manifest, &options, Arc::new(spinlift::Silent), Default::default()).await.unwrap();

    assert!(emulator.stats().issued >= 100, "{:?}", emulator.stats());
    assert_eq!(*uploads_meanwhile.lock().unwrap(), Some(0), "uploads before any record was durable");
    assert_eq!((report.registered(), report.stopped), (300, None));
    assert_each_file_registered_once(&emulator, &set);
    assert_eq!(emulator.stats().issued, 300, "one form per file");
}

#[tokio::test]
async fn a_manifest_built_in_code_needs_a_checkpoint_path_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    let manifest = Manifest::builder(dir.path()).entry("a.txt").unwrap().build().unwrap();
    let engine = Engine::builder("http://127.0.0.1:9", Secret::new("k")).build().unwrap();
    let error = engine
        .run(&manifest, &RunOptions::default(), std::sync::Arc::new(spinlift::Silent), Default::default())
        .await;
    match error {
        Err(EngineError::Config(message)) => assert!(message.contains("checkpoint path"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

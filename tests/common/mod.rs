//! What the end-to-end tests share: a local FileSpin running on its own runtime, and the `spinlift`
//! binary pointed at it.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::Path;

use spinlift_emulator::{Emulator, EmulatorConfig, Registration};

/// A local FileSpin (API + S3 POST endpoint) serving on a runtime of its own, so the tests can drive
/// the real binary synchronously.
pub struct LocalFileSpin {
    pub emulator: Emulator,
    _runtime: tokio::runtime::Runtime,
}

impl LocalFileSpin {
    pub fn start() -> Self {
        Self::with(EmulatorConfig::default())
    }

    pub fn with(config: EmulatorConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emulator = runtime.block_on(Emulator::start(config)).expect("emulator starts");
        LocalFileSpin { emulator, _runtime: runtime }
    }

    /// `spinlift` with the API URL and key of this FileSpin in its environment.
    pub fn spinlift(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_spinlift"));
        cmd.env("FILESPIN_API_URL", self.emulator.api_url())
            .env("FILESPIN_API_KEY", self.emulator.api_key())
            .env("SPINLIFT_API_RPS", "0")
            .env_remove("RUST_LOG");
        cmd
    }

    /// The same, as a plain process to spawn and signal.
    pub fn spinlift_process(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"));
        cmd.env("FILESPIN_API_URL", self.emulator.api_url())
            .env("FILESPIN_API_KEY", self.emulator.api_key())
            .env("SPINLIFT_API_RPS", "0")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// Waits until the server's stats satisfy `done` (a minute at most).
    pub fn wait_for(&self, what: &str, done: impl Fn(spinlift_emulator::Stats) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done(self.emulator.stats()) {
            assert!(std::time::Instant::now() < deadline, "no progress: waited a minute for {what}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    pub fn registrations_by_id(&self) -> HashMap<String, Registration> {
        self.emulator.registrations().into_iter().map(|r| (r.asset_id.clone(), r)).collect()
    }
}

/// The report's lines as JSON values.
pub fn read_report(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("report written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each report line is JSON"))
        .collect()
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Plays the first two steps of a run for one entry and records them in the manifest's checkpoint, as
/// a run killed between upload and registration leaves it. Returns the asset id.
pub fn upload_without_registering(
    filespin: &LocalFileSpin,
    manifest: &Path,
    id: &str,
    file: &Path,
) -> String {
    use spinlift_core::State;
    use spinlift_manifest::journal::{Journal, JournalOptions, Record, SourceStamp, fingerprint_ids};
    use spinlift_transport::{ClientConfig, FileSpinClient, Secret};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut config =
            ClientConfig::new(filespin.emulator.api_url(), Secret::new(filespin.emulator.api_key()));
        config.api_rps = None;
        let client = FileSpinClient::new(config).unwrap();
        let form = client.request_form("a.txt").await.unwrap();
        let receipt = client.upload_file(&form, file, &|_| {}).await.unwrap();
        let stamp = SourceStamp::of(&std::fs::metadata(file).unwrap());
        let checkpoint = spinlift::Checkpoint::default().path_for(manifest).unwrap();
        let journal =
            Journal::open(&checkpoint, &fingerprint_ids([id].into_iter()), None, JournalOptions::default())
                .await
                .unwrap();
        let state = State::Uploaded {
            asset_id: form.asset_id.clone(),
            size: receipt.size,
            md5: receipt.md5,
            started_at: receipt.started_at,
            completed_at: receipt.completed_at,
        };
        let record =
            Record::new(id, state).with_form(serde_json::to_value(&form).unwrap()).with_source(stamp);
        journal.append(record).await.unwrap();
        journal.close().await.unwrap();
        form.asset_id
    })
}

/// Every entry registered exactly once, with the source's bytes and MD5.
pub fn assert_exactly_one_asset_per_entry(
    filespin: &LocalFileSpin,
    set: &spinlift::sample::SampleSet,
    report: &Path,
) {
    let lines = read_report(report);
    assert_eq!(lines.len(), set.files.len());
    let registrations = filespin.emulator.registrations();
    // Registrations by the file name FileSpin was given (each sample file's name is unique).
    let mut per_file: HashMap<String, Vec<&spinlift_emulator::Registration>> = HashMap::new();
    for r in &registrations {
        let name = r.key.rsplit("original__").next().unwrap().to_owned();
        per_file.entry(name).or_default().push(r);
    }
    for (file, line) in set.files.iter().zip(&lines) {
        assert_eq!(line["status"], "registered", "{line}");
        let name = file.path.rsplit('/').next().unwrap();
        let regs = per_file.get(name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(regs.len(), 1, "{}: {} registered assets", file.path, regs.len());
        let reg = regs[0];
        assert_eq!(line["asset_id"], reg.asset_id.as_str());
        assert_eq!((reg.size, reg.checksum.as_str()), (file.size, file.md5.as_str()), "{}", file.path);
        let stored = filespin.emulator.read_object(&reg.key).unwrap();
        assert!(
            stored == std::fs::read(set.dir.join(&file.path)).unwrap(),
            "{}: stored bytes differ",
            file.path
        );
    }
    assert_eq!(registrations.len(), set.files.len());
}

/// Progress as FileSpin saw it: forms issued, uploads stored, assets registered.
pub fn progress(filespin: &LocalFileSpin) -> u64 {
    let s = filespin.emulator.stats();
    s.issued + s.uploaded + s.registered
}

/// Kills the run with SIGKILL once FileSpin has seen `steps` more requests succeed (no sleeps that
/// guess at timing: the server's own count), or returns false if the run finished first.
pub fn kill_after(filespin: &LocalFileSpin, child: &mut std::process::Child, steps: u64) -> bool {
    let target = progress(filespin) + steps;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if progress(filespin) >= target {
            child.kill().expect("kill -9");
            child.wait().unwrap();
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(std::time::Instant::now() < deadline, "the run made no progress for two minutes");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

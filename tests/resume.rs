//! A user's batch is interrupted — kill -9, expired forms, an edited manifest, a changed file — and the
//! same command, run again, finishes it with exactly one FileSpin asset per entry.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{LocalFileSpin, assert_exactly_one_asset_per_entry, kill_after, read_report, stderr_of};
use rand::{Rng, SeedableRng, rngs::StdRng};
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift_emulator::EmulatorConfig;

fn spawn_run(filespin: &LocalFileSpin, manifest: &std::path::Path) -> std::process::Child {
    filespin
        .spinlift_process()
        .args(["run", "--quiet", "--concurrency", "8"])
        .arg(manifest)
        .spawn()
        .expect("spinlift starts")
}

#[test]
fn kill_9_at_random_moments_then_resume_leaves_exactly_one_asset_per_entry() {
    let seed: u64 = std::env::var("SPINLIFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261125);
    eprintln!("seed {seed} (replay with SPINLIFT_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SampleSpec::mixed(520, seed);
    // Mostly small files so that many kills land in every phase; a few large ones keep uploads in flight.
    for s in spec.sizes.iter_mut().skip(5) {
        *s %= 64 * 1024;
    }
    let set = SampleSet::write(dir.path(), &spec).unwrap();

    let mut kills = 0;
    while kills < 12 {
        let mut child = spawn_run(&filespin, &set.manifest);
        let steps = rng.random_range(1..=90);
        if !kill_after(&filespin, &mut child, steps) {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 10, "only {kills} kills landed before the batch finished");

    let report = dir.path().join("report.jsonl");
    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &report);
    eprintln!("survived {kills} kills; stats {:?}", filespin.emulator.stats());

    // `status` agrees, from the checkpoint alone.
    let status = filespin.spinlift().arg("status").arg(&set.manifest).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("{} entries: {} registered", set.files.len(), set.files.len())), "{text}");
}

#[test]
fn forms_that_expired_while_the_run_was_dead_are_replaced() {
    let filespin = LocalFileSpin::with(EmulatorConfig { form_expiry_secs: 2, ..EmulatorConfig::default() });
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![50_000; 120], seed: 9 }).unwrap();

    let mut child = spawn_run(&filespin, &set.manifest);
    assert!(kill_after(&filespin, &mut child, 40), "the run finished before it could be killed");
    // Wait until every form issued so far is past its expiry (2 s), then resume.
    let issued_before = filespin.emulator.stats().issued;
    std::thread::sleep(Duration::from_millis(2_500));

    let report = dir.path().join("report.jsonl");
    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &report);
    assert!(filespin.emulator.stats().issued > issued_before);
}

#[test]
fn an_edited_manifest_uploads_only_the_new_entries() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![1_000; 12], seed: 11 }).unwrap();
    let output = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));

    // The user drops two entries and adds three files.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&set.manifest).unwrap()).unwrap();
    let assets = doc["assets"].as_array_mut().unwrap();
    assets.drain(0..2);
    for i in 0..3 {
        std::fs::write(dir.path().join(format!("new-{i}.txt")), format!("new file {i}")).unwrap();
        assets.push(serde_json::json!({"path": format!("new-{i}.txt")}));
    }
    std::fs::write(&set.manifest, serde_json::to_vec(&doc).unwrap()).unwrap();

    let output = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("3 new entries, 2 recorded entries no longer listed"));
    let stats = filespin.emulator.stats();
    assert_eq!((stats.issued, stats.registered), (15, 15));
}

#[test]
fn a_source_changed_after_its_upload_is_uploaded_again_not_registered_stale() {
    // Step 1 of a run that died between upload and registration, recorded in its checkpoint: the form
    // and the upload of the file's old contents.
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"old contents").unwrap();
    let manifest = dir.path().join("m.json");
    std::fs::write(&manifest, r#"{"version": 1, "assets": [{"path": "a.txt", "id": "a"}]}"#).unwrap();
    let asset_id = common::upload_without_registering(&filespin, &manifest, "a", &file);

    // The user edits the file before running again.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&file, b"new contents, longer").unwrap();
    let report = dir.path().join("report.jsonl");
    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));

    let regs = filespin.emulator.registrations();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].asset_id, asset_id, "the same asset id, its form still valid");
    assert_eq!(regs[0].size, 20);
    assert_eq!(filespin.emulator.read_object(&regs[0].key).unwrap(), b"new contents, longer");
    assert_eq!(filespin.emulator.stats().issued, 1);
}

#[test]
fn sigterm_stops_cleanly_with_exit_130_and_the_same_command_finishes() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![20_000; 400], seed: 12 }).unwrap();
    let report = dir.path().join("report.jsonl");

    let child = filespin
        .spinlift_process()
        .args(["run", "--quiet", "--concurrency", "4", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    filespin.wait_for("20 registrations", |s| s.registered >= 20);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");

    // What the interrupted run reports as registered, FileSpin has; nothing is marked failed.
    let lines = read_report(&report);
    let registered = lines.iter().filter(|l| l["status"] == "registered").count() as u64;
    assert!((20..400).contains(&registered), "{registered} registered before the signal");
    assert!(registered <= filespin.emulator.stats().registered);
    assert!(lines.iter().all(|l| l["status"] != "failed"));

    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &report);
}

#[test]
fn failed_entries_stay_failed_until_retry_failed_is_asked_for() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![300; 5], seed: 13 }).unwrap();
    let missing = set.dir.join(&set.files[2].path);
    let contents = std::fs::read(&missing).unwrap();
    std::fs::remove_file(&missing).unwrap();
    let run = |extra: &[&str]| {
        filespin.spinlift().args(["run", "-q"]).args(extra).arg(&set.manifest).output().unwrap()
    };

    assert_eq!(run(&[]).status.code(), Some(1));
    std::fs::write(&missing, &contents).unwrap();
    // The same command reports the failure again; `status` shows it with its reason.
    assert_eq!(run(&[]).status.code(), Some(1));
    let status = filespin.spinlift().arg("status").arg(&set.manifest).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("4 registered") && text.contains("1 failed") && text.contains(&set.files[2].path),
        "{text}"
    );
    assert_eq!(filespin.emulator.stats().registered, 4);

    let report = dir.path().join("report.jsonl");
    let output = run(&["--retry-failed", "--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &report);
}

#[test]
fn a_second_run_on_the_same_checkpoint_is_refused_while_the_first_runs() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![100; 50], seed: 14 }).unwrap();
    // The first run is slowed to 5 API requests/s so that it is still running.
    let mut first = filespin
        .spinlift_process()
        .args(["run", "--quiet", "--api-rps", "5"])
        .arg(&set.manifest)
        .spawn()
        .unwrap();
    filespin.wait_for("a first form", |s| s.issued >= 1);

    let second = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();

    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(stderr_of(&second).contains("in use by another spinlift run"), "{}", stderr_of(&second));
}

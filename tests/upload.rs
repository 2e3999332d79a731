//! A user uploads a tree of mixed files with `spinlift run` and checks what landed.

mod common;

use std::collections::HashSet;

use common::{LocalFileSpin, read_report, stderr_of};
use spinlift::sample::{SampleSet, SampleSpec};

#[test]
fn a_batch_of_mixed_files_lands_byte_for_byte_and_is_registered_once_each() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(220, 7)).unwrap();
    assert!(set.files.iter().any(|f| f.size == 0));
    assert!(set.files.iter().any(|f| f.size > 8 * 1024 * 1024));
    let report = dir.path().join("report.jsonl");

    let output = filespin
        .spinlift()
        .args(["run", "--quiet", "--concurrency", "8", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr_of(&output));

    // The report: one `registered` line per entry, in manifest order, with size and MD5.
    let lines = read_report(&report);
    assert_eq!(lines.len(), set.files.len());
    let registrations = filespin.registrations_by_id();
    for (file, line) in set.files.iter().zip(&lines) {
        assert_eq!(line["id"], file.id.as_str());
        assert_eq!(line["path"], file.path.as_str());
        assert_eq!(line["status"], "registered", "{line}");
        assert_eq!(line["size"], file.size);
        assert_eq!(line["checksum"], file.md5.as_str());
        assert!(line["error"].is_null());

        // What FileSpin recorded, and the bytes in storage.
        let asset_id = line["asset_id"].as_str().unwrap();
        let reg = &registrations[asset_id];
        assert_eq!((reg.size, reg.checksum.as_str()), (file.size, file.md5.as_str()), "{}", file.path);
        let stored = filespin.emulator.read_object(&reg.key).unwrap();
        assert!(
            stored == std::fs::read(set.dir.join(&file.path)).unwrap(),
            "{} differs in storage",
            file.path
        );
        assert_eq!(reg.service_data["app"], "spinlift-sample");
    }

    // The report and the checkpoint (which holds pre-signed forms) are the user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let checkpoint = spinlift::Checkpoint::default().path_for(&set.manifest).unwrap();
        for file in [&report, &checkpoint] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }

    // Exactly one asset per entry: no second form, no second registration.
    let stats = filespin.emulator.stats();
    assert_eq!(stats.registered as usize, set.files.len());
    assert_eq!(stats.issued as usize, set.files.len());
    let ids: HashSet<_> = lines.iter().map(|l| l["asset_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), set.files.len());
}

#[test]
fn a_missing_file_fails_alone_and_the_rest_of_the_batch_goes_on() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![10, 20, 30, 40], seed: 1 }).unwrap();
    std::fs::remove_file(set.dir.join(&set.files[1].path)).unwrap();
    std::fs::remove_file(set.dir.join(&set.files[3].path)).unwrap();
    let report = dir.path().join("report.jsonl");

    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(&set.files[1].path), "the failure names the file: {stderr}");
    assert!(stderr.contains("2 registered (2 with their data set), 2 failed"), "{stderr}");
    let lines = read_report(&report);
    let statuses: Vec<_> = lines.iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["registered", "failed", "registered", "failed"]);
    let reason = lines[1]["error"].as_str().unwrap();
    assert!(reason.contains("No such file"), "{}", lines[1]);
    // The summary counts failures by reason.
    assert!(stderr.contains(&format!("failures by reason:\n        2 × {reason}")), "{stderr}");
    // No asset id was asked for a file that is not there.
    assert_eq!(filespin.emulator.stats().issued, 2);
}

#[test]
fn without_a_terminal_progress_comes_as_plain_lines() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![10_000; 30], seed: 16 }).unwrap();

    // stderr is a pipe here, as in a CI job or a log file.
    let output =
        filespin.spinlift().args(["run", "--progress-interval", "0"]).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    let lines: Vec<_> = stderr.lines().filter(|l| l.starts_with("progress: ")).collect();
    assert!(lines.len() >= 30, "{stderr}");
    assert!(lines.iter().any(|l| l.contains("30/30 files")), "{stderr}");
    // Each line: totals, the current rate, the time left, assets in flight, failures and retries.
    for field in ["MiB sent", "files/s", "MB/s now", "eta ", "in flight", "failed", "retries"] {
        assert!(lines.iter().all(|l| l.contains(field)), "{field:?} missing: {stderr}");
    }
    assert!(lines.iter().any(|l| !l.contains(" 0 in flight")), "some line shows work in flight: {stderr}");
    assert!(lines.last().is_some_and(|l| l.contains("eta 0 s") && l.contains(" 0 in flight")), "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "no terminal control codes in a log");

    // --quiet prints only the summary.
    let output = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
    assert!(!stderr_of(&output).contains("progress: "));
}

#[test]
fn the_mapping_from_path_to_asset_id_can_be_rebuilt_from_the_checkpoint() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![700; 12], seed: 17 }).unwrap();
    let report = dir.path().join("report.jsonl");
    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("this run: 12 entries in"), "{}", stderr_of(&output));
    // Run again: nothing to do, and the summary says so rather than quoting a rate.
    let again = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stderr_of(&again)
            .contains("12 registered (12 with their data set), 0 failed, 0 not finished; nothing left to do"),
        "{}",
        stderr_of(&again)
    );

    // JSON Lines: the same lines the run wrote.
    let rebuilt = filespin.spinlift().arg("report").arg(&set.manifest).output().unwrap();
    assert_eq!(rebuilt.status.code(), Some(0));
    assert_eq!(String::from_utf8(rebuilt.stdout).unwrap(), std::fs::read_to_string(&report).unwrap());

    // CSV with a header, one row per entry, the asset ids FileSpin registered.
    let csv_path = dir.path().join("map.csv");
    let output = filespin
        .spinlift()
        .args(["report", "--format", "csv", "-o"])
        .arg(&csv_path)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut rows = text.lines();
    assert_eq!(rows.next(), Some("id,path,status,asset_id,size,checksum,error,metadata_set,filespin_status"));
    let registrations = filespin.registrations_by_id();
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), set.files.len());
    for (row, file) in rows.iter().zip(&set.files) {
        assert_eq!((row[0], row[1], row[2]), (file.id.as_str(), file.path.as_str(), "registered"));
        assert_eq!(registrations[row[3]].checksum, file.md5);
    }
}

#[test]
fn logs_go_to_a_file_as_json_lines_when_asked() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![100; 3], seed: 20 }).unwrap();
    std::fs::remove_file(set.dir.join(&set.files[0].path)).unwrap();
    let log = dir.path().join("spinlift.log");

    let output = filespin
        .spinlift()
        .env("RUST_LOG", "debug")
        .args(["run", "-q", "--log-format", "json", "--log-file"])
        .arg(&log)
        .arg(&set.manifest)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1), "one file is missing");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("each log line is JSON")).collect();
    let missing = &set.files[0].path;
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"] == "entry failed"
            && l["fields"]["path"] == missing.as_str()),
        "{text}"
    );
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "RUST_LOG=debug reached the file: {text}");
    assert!(!stderr_of(&output).contains("entry failed"), "logs went to the file, not stderr");
}

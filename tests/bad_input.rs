//! Bad input, through the real binary: files that cannot be uploaded, paths that leave the root, names
//! a manifest cannot hold, a file that changes under the upload, a damaged checkpoint, and a FileSpin
//! API that answers what its documentation does not promise.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use common::{LocalFileSpin, read_report, stderr_of, stdout_of};
use md5::{Digest, Md5};
use spinlift::sample::{SampleSet, SampleSpec};
use spinlift_emulator::EmulatorConfig;

const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
const GIB: u64 = 1024 * 1024 * 1024;
/// The user spinlift drops to where root would read a mode-000 file anyway.
const NOBODY: u32 = 65534;

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Bytes that differ from file to file (`seed`) and from offset to offset.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// A JSON manifest at `manifest` listing `paths` (ids default to the paths) under `root`.
fn write_manifest(manifest: &Path, root: &Path, paths: &[&str]) {
    let assets: Vec<_> = paths.iter().map(|p| serde_json::json!({ "path": p })).collect();
    let doc = serde_json::json!({"version": 1, "root": root.to_str().unwrap(), "assets": assets});
    std::fs::write(manifest, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// The report line of `path`.
fn line_of<'a>(lines: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    lines.iter().find(|l| l["path"] == path).unwrap_or_else(|| panic!("no report line for {path}"))
}

fn error_of(line: &serde_json::Value) -> &str {
    line["error"].as_str().unwrap_or_else(|| panic!("no error in {line}"))
}

/// Captures both outputs of a command built by [`LocalFileSpin::spinlift_process`] (which discards them).
fn captured(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap()
}

// ---------------------------------------------------------------------------------------------------
// 1. One batch, good files mixed with files that cannot be uploaded.
// ---------------------------------------------------------------------------------------------------

#[test]
fn bad_files_fail_alone_with_their_reason_and_the_rest_of_the_batch_is_registered() {
    const LIMIT: u64 = 64 * 1024;
    let filespin =
        LocalFileSpin::with(EmulatorConfig { max_object_size: LIMIT, ..EmulatorConfig::default() });
    // The tree must be readable (and the work directory writable) by the user spinlift may run as.
    let outside = tempfile::tempdir().unwrap();
    chmod(outside.path(), 0o755);
    std::fs::write(outside.path().join("secret.txt"), b"not for upload").unwrap();
    let work = tempfile::tempdir().unwrap();
    chmod(work.path(), 0o777);
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    chmod(&root, 0o755);

    let good_1 = pattern(1_000, 1);
    let good_2 = pattern(LIMIT as usize, 2);
    std::fs::write(root.join("good-1.bin"), &good_1).unwrap();
    std::fs::create_dir(root.join("a-directory")).unwrap();
    let mkfifo = Command::new("mkfifo").arg(root.join("a-fifo")).status().unwrap();
    assert!(mkfifo.success());
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("escapes.txt")).unwrap();
    std::fs::write(root.join("empty.bin"), b"").unwrap();
    std::fs::write(root.join("too-large.bin"), pattern(LIMIT as usize + 1, 3)).unwrap();
    std::fs::File::create(root.join("sparse.bin")).unwrap().set_len(5 * GIB + 1).unwrap();
    std::fs::write(root.join("unreadable.bin"), b"locked away").unwrap();
    chmod(&root.join("unreadable.bin"), 0o000);
    std::fs::write(root.join("good-2.bin"), &good_2).unwrap();
    let paths = [
        "good-1.bin",
        "a-directory",
        "a-fifo",
        "escapes.txt",
        "empty.bin",
        "too-large.bin",
        "sparse.bin",
        "unreadable.bin",
        "good-2.bin",
    ];
    let manifest = work.path().join("manifest.json");
    write_manifest(&manifest, &root, &paths);
    let report = work.path().join("report.jsonl");

    let mut cmd = filespin.spinlift_process();
    cmd.args(["run", "-q", "--report"]).arg(&report).arg(&manifest);
    // Root reads a mode-000 file all the same: the refusal is then exercised as an ordinary user.
    let mode_000_is_readable_here = std::fs::File::open(root.join("unreadable.bin")).is_ok();
    if mode_000_is_readable_here {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let output = captured(cmd);

    assert_eq!(output.status.code(), Some(1), "some entries failed: {}", stderr_of(&output));
    let lines = read_report(&report);
    let statuses: Vec<_> = lines.iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "registered",
            "failed",
            "failed",
            "failed",
            "registered",
            "failed",
            "failed",
            "failed",
            "registered"
        ],
        "{lines:#?}"
    );
    let expected_errors = [
        ("a-directory", "not a regular file"),
        ("a-fifo", "not a regular file"),
        ("escapes.txt", "outside the manifest's root"),
        ("too-large.bin", "65537 bytes, more than the 65536 bytes the upload form allows"),
        ("sparse.bin", "5368709121 bytes is more than an S3 POST upload takes (5 GiB)"),
        ("unreadable.bin", "cannot read the file: Permission denied"),
    ];
    let stderr = stderr_of(&output);
    for (path, reason) in expected_errors {
        let error = error_of(line_of(&lines, path));
        assert!(error.contains(reason), "{path}: expected {reason:?} in {error:?}");
        assert!(stderr.contains(&format!("failed: {path}: ")), "stderr names {path}: {stderr}");
    }

    // The good files and the empty one: registered with their bytes and MD5.
    let registrations = filespin.registrations_by_id();
    for (path, bytes) in [("good-1.bin", &good_1[..]), ("empty.bin", &[][..]), ("good-2.bin", &good_2[..])] {
        let line = line_of(&lines, path);
        let reg = &registrations[line["asset_id"].as_str().unwrap()];
        assert_eq!(
            (reg.size, reg.checksum.as_str()),
            (bytes.len() as u64, md5_hex(bytes).as_str()),
            "{path}"
        );
        assert_eq!(line["checksum"], reg.checksum.as_str());
        assert_eq!(filespin.emulator.read_object(&reg.key).unwrap(), bytes, "{path} in storage");
    }
    assert_eq!(line_of(&lines, "empty.bin")["checksum"], EMPTY_MD5);
    assert_eq!(line_of(&lines, "empty.bin")["size"], 0);

    // What FileSpin saw: forms only for files that could be sent as far as the files alone tell (the
    // form's own size limit is known only from the form), and no S3 request for the oversized file.
    let stats = filespin.emulator.stats();
    let mut asked_for: Vec<_> = filespin.emulator.issued().into_iter().map(|f| f.filename).collect();
    asked_for.sort();
    assert_eq!(asked_for, ["empty.bin", "good-1.bin", "good-2.bin", "too-large.bin"], "{stats:?}");
    assert_eq!((stats.s3_requests, stats.uploaded, stats.registered), (3, 3, 3), "{stats:?}");
    let too_large_form =
        filespin.emulator.issued().into_iter().find(|f| f.filename == "too-large.bin").unwrap();
    assert!(filespin.emulator.read_object(&too_large_form.key).is_err(), "nothing stored for it");
    assert!(
        filespin.emulator.registrations().iter().all(|r| r.filename != "escapes.txt"),
        "nothing from outside the root"
    );
}

// ---------------------------------------------------------------------------------------------------
// 2. Paths in the manifest.
// ---------------------------------------------------------------------------------------------------

/// `tests/refusals.rs` checks `../../etc/passwd` and `/etc/passwd` as the only entry; here the bad entry
/// comes after good ones, and the message must say which one it is.
#[test]
fn a_path_leaving_the_root_refuses_the_manifest_naming_the_entry_and_its_position() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.jpg"), b"a").unwrap();
    std::fs::write(dir.path().join("outside.jpg"), b"o").unwrap();
    let outside = dir.path().join("outside.jpg");
    let outside = outside.to_str().unwrap();

    let json = dir.path().join("manifest.json");
    let jsonl = dir.path().join("manifest.jsonl");
    let header = serde_json::json!({"version": 1, "root": root.to_str().unwrap()});
    let cases: Vec<(&Path, String, &str, &str)> = vec![
        (
            &json,
            serde_json::json!({"version": 1, "root": root.to_str().unwrap(),
                "assets": [{"path": "a.jpg"}, {"path": "sub/../../outside.jpg"}]})
            .to_string(),
            "sub/../../outside.jpg",
            "at assets[1]",
        ),
        (
            &json,
            serde_json::json!({"version": 1, "root": root.to_str().unwrap(),
                "assets": [{"path": "a.jpg"}, {"path": outside}]})
            .to_string(),
            outside,
            "at assets[1]",
        ),
        (
            &jsonl,
            format!("{header}\n{{\"path\": \"a.jpg\"}}\n{{\"path\": \"../outside.jpg\"}}\n"),
            "../outside.jpg",
            "at line 3 (entry 1)",
        ),
        (
            &jsonl,
            format!("{header}\n{{\"path\": \"a.jpg\"}}\n{{\"path\": {outside:?}}}\n"),
            outside,
            "at line 3 (entry 1)",
        ),
    ];
    for (manifest, text, entry, position) in cases {
        std::fs::write(manifest, &text).unwrap();
        let output = filespin.spinlift().args(["run", "-q"]).arg(manifest).output().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(&manifest.display().to_string()), "names the manifest: {stderr}");
        assert!(stderr.contains(position), "names the position {position:?}: {stderr}");
        assert!(stderr.contains(&format!("{entry:?}")), "names the entry {entry:?}: {stderr}");
        assert!(stderr.contains("outside the manifest's root"), "{stderr}");
    }
    let stats = filespin.emulator.stats();
    assert_eq!(stats.api_requests + stats.s3_requests, 0, "nothing was sent: {stats:?}");
}

/// The README allows absolute paths that lie inside the root. The default root is the manifest's
/// directory as the user named it, so `spinlift run manifest.json` (a relative name) must accept
/// `/abs/dir/a.jpg` as well as `spinlift run /abs/dir/manifest.json` does.
#[test]
fn an_absolute_path_inside_the_root_is_accepted_when_the_manifest_is_named_relatively() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    std::fs::write(dir_path.join("a.jpg"), b"abc").unwrap();
    let inside = dir_path.join("a.jpg");
    let text = serde_json::json!({"version": 1, "assets": [{"path": inside.to_str().unwrap()}]});
    std::fs::write(dir_path.join("manifest.json"), text.to_string()).unwrap();

    let absolute = filespin
        .spinlift()
        .args(["run", "-q", "--no-checkpoint"])
        .arg(dir_path.join("manifest.json"))
        .output()
        .unwrap();
    assert_eq!(absolute.status.code(), Some(0), "named absolutely: {}", stderr_of(&absolute));

    let relative = filespin
        .spinlift()
        .current_dir(&dir_path)
        .args(["run", "-q", "--no-checkpoint", "manifest.json"])
        .output()
        .unwrap();
    assert_eq!(relative.status.code(), Some(0), "named relatively: {}", stderr_of(&relative));
}

#[test]
fn a_symlink_inside_the_root_to_a_file_inside_is_followed_and_uploads_the_target_under_the_link_name() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("photos")).unwrap();
    let bytes = pattern(5_000, 9);
    std::fs::write(root.join("photos/a.jpg"), &bytes).unwrap();
    std::os::unix::fs::symlink("photos/a.jpg", root.join("link.jpg")).unwrap();
    std::os::unix::fs::symlink("photos", root.join("album")).unwrap();
    let manifest = root.join("manifest.json");
    write_manifest(&manifest, root, &["photos/a.jpg", "link.jpg", "album/a.jpg"]);
    let report = root.join("report.jsonl");

    let output =
        filespin.spinlift().args(["run", "-q", "--report"]).arg(&report).arg(&manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    // Each entry is its own asset, with the target's bytes, under the name the entry gives.
    let lines = read_report(&report);
    let registrations = filespin.registrations_by_id();
    let mut names = Vec::new();
    for line in &lines {
        assert_eq!(line["status"], "registered", "{line}");
        let reg = &registrations[line["asset_id"].as_str().unwrap()];
        assert_eq!(reg.checksum, md5_hex(&bytes));
        assert_eq!(filespin.emulator.read_object(&reg.key).unwrap(), bytes);
        names.push(reg.filename.clone());
    }
    assert_eq!(names, ["a.jpg", "link.jpg", "a.jpg"]);
    assert_eq!(filespin.emulator.stats().registered, 3, "three entries, three assets");
}

// ---------------------------------------------------------------------------------------------------
// 3. A file name that is not UTF-8.
// ---------------------------------------------------------------------------------------------------

#[test]
fn scan_skips_names_that_are_not_utf8_and_says_so_then_run_uploads_the_rest() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let filespin = LocalFileSpin::start();
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::write(t.join("ok.jpg"), b"ok").unwrap();
    std::fs::write(t.join("sub/ok2.jpg"), b"ok too").unwrap();
    std::fs::write(t.join(OsStr::from_bytes(b"caf\xe9.jpg")), b"latin-1 name").unwrap();
    let latin1_dir = t.join(OsStr::from_bytes(b"r\xe9sum\xe9s"));
    std::fs::create_dir(&latin1_dir).unwrap();
    std::fs::write(latin1_dir.join("cv.pdf"), b"inside a latin-1 directory").unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = out.path().join("m.json");

    let scan = filespin.spinlift().arg("scan").arg(t).arg("-o").arg(&manifest).output().unwrap();

    assert_eq!(scan.status.code(), Some(0), "{}", stderr_of(&scan));
    let said = stdout_of(&scan);
    assert!(said.contains("2 files"), "{said}");
    assert!(said.contains("skipped 2 with names that are not UTF-8 (a manifest cannot name them)"), "{said}");
    // Each one is named (lossily), so the user can find and rename it.
    let warned = stderr_of(&scan);
    assert!(
        warned.contains("caf\u{fffd}.jpg") && warned.contains("r\u{fffd}sum\u{fffd}s/cv.pdf"),
        "{warned}"
    );
    let listed = std::fs::read_to_string(&manifest).unwrap();
    assert!(listed.contains("\"ok.jpg\"") && listed.contains("\"sub/ok2.jpg\""), "{listed}");
    assert!(!listed.contains("caf") && !listed.contains("cv.pdf"), "{listed}");

    let run = filespin.spinlift().args(["run", "-q"]).arg(&manifest).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
    let mut names: Vec<_> = filespin.emulator.registrations().into_iter().map(|r| r.filename).collect();
    names.sort();
    assert_eq!(names, ["ok.jpg", "ok2.jpg"]);
}

// ---------------------------------------------------------------------------------------------------
// 4. A file that changes while it is uploaded.
// ---------------------------------------------------------------------------------------------------

#[test]
fn a_file_changed_during_its_upload_is_never_registered_with_a_checksum_storage_does_not_hold() {
    const SIZE: usize = 1024 * 1024;
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let rewritten = dir.path().join("rewritten.bin");
    let appended = dir.path().join("appended.bin");
    for (path, seed) in [(&rewritten, 1), (&appended, 2)] {
        std::fs::write(path, pattern(SIZE, seed)).unwrap();
        // An hour old, so that any change is a new modification time.
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    }
    let manifest = dir.path().join("manifest.json");
    write_manifest(&manifest, dir.path(), &["rewritten.bin", "appended.bin"]);
    let report = dir.path().join("report.jsonl");

    // 2 MiB at 512 KiB/s: the uploads take about four seconds.
    let mut cmd = filespin.spinlift_process();
    cmd.args(["run", "-q", "--concurrency", "2", "--bwlimit", "512KiB/s", "--report"])
        .arg(&report)
        .arg(&manifest)
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    filespin.wait_for("both uploads to start", |s| s.s3_requests >= 2);
    // Rewritten in place with other bytes of the same length; the other grows.
    std::fs::File::options().write(true).open(&rewritten).unwrap().write_all(&pattern(SIZE, 7)).unwrap();
    std::fs::File::options().append(true).open(&appended).unwrap().write_all(&pattern(4096, 8)).unwrap();
    assert_eq!(filespin.emulator.stats().uploaded, 0, "the files changed while both uploads were under way");
    let output = child.wait_with_output().unwrap();

    let stderr = stderr_of(&output);
    let lines = read_report(&report);
    let registrations = filespin.emulator.registrations();
    assert!(registrations.len() <= 2, "{registrations:?}");
    for (path, file) in [("rewritten.bin", &rewritten), ("appended.bin", &appended)] {
        let line = line_of(&lines, path);
        match line["status"].as_str() {
            Some("registered") => {
                let reg = registrations.iter().find(|r| r.asset_id == line["asset_id"]).unwrap();
                let stored = filespin.emulator.read_object(&reg.key).unwrap();
                assert_eq!(reg.checksum, md5_hex(&stored), "{path}: registered MD5 is the stored bytes'");
                assert_eq!(stored, std::fs::read(file).unwrap(), "{path}: retried with the new content");
                assert_eq!(line["checksum"], reg.checksum.as_str());
                assert_eq!(registrations.iter().filter(|r| r.filename == path).count(), 1, "{path}");
            }
            Some("failed") => {
                assert!(error_of(line).contains("changed"), "{path}: {line}");
                assert!(registrations.iter().all(|r| r.filename != path), "{path} not registered");
            }
            other => panic!("{path}: {other:?}: {stderr}"),
        }
    }
    // Whatever happened, the run says so in its exit code: 0 only if both were registered.
    let all_registered = lines.iter().all(|l| l["status"] == "registered");
    assert_eq!(output.status.code(), Some(if all_registered { 0 } else { 1 }), "{stderr}");
    assert!(filespin.emulator.stats().s3_requests >= 3 || !all_registered, "a changed file was sent again");
}

// ---------------------------------------------------------------------------------------------------
// 5. The checkpoint journal.
// ---------------------------------------------------------------------------------------------------

fn checkpoint_of(manifest: &Path) -> PathBuf {
    spinlift::Checkpoint::default().path_for(manifest).unwrap()
}

#[test]
fn a_checkpoint_damaged_before_its_last_line_stops_the_run_naming_the_file_and_line() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![300; 6], seed: 31 }).unwrap();
    // One file is missing on the first run: a `--retry-failed` run has work to do.
    let missing = set.dir.join(&set.files[2].path);
    let kept = std::fs::read(&missing).unwrap();
    std::fs::remove_file(&missing).unwrap();
    let first = filespin.spinlift().args(["run", "-q"]).arg(&set.manifest).output().unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", stderr_of(&first));
    std::fs::write(&missing, kept).unwrap();

    let checkpoint = checkpoint_of(&set.manifest);
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 5, "{text}");
    let damaged = lines.len() / 2;
    lines[damaged] = "{\"id\": \"sample-00001\", \"state\": {\"state\": \"regist";
    let damaged_text = format!("{}\n", lines.join("\n"));
    std::fs::write(&checkpoint, &damaged_text).unwrap();
    let before = filespin.emulator.stats();

    let output =
        filespin.spinlift().args(["run", "-q", "--retry-failed"]).arg(&set.manifest).output().unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(&checkpoint.display().to_string()), "names the checkpoint: {stderr}");
    assert!(stderr.contains(&format!("line {}", damaged + 1)), "names the line: {stderr}");
    assert_eq!(filespin.emulator.stats(), before, "nothing was sent");
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        damaged_text,
        "the checkpoint is left as found"
    );
}

#[test]
fn a_torn_last_line_in_the_checkpoint_is_dropped_with_a_warning_and_nothing_is_uploaded_twice() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec { sizes: vec![2_000; 8], seed: 32 }).unwrap();
    let report = dir.path().join("report.jsonl");
    // Without the tag's fourth record per entry, the journal is not compacted when the run closes it:
    // its last line is an append, which is what a crash can tear (a compacted journal is written aside
    // and renamed whole).
    let first = filespin.spinlift().args(["run", "-q", "--no-tag"]).arg(&set.manifest).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));

    // Cut mid-way through the last line, as a power cut during its write leaves it.
    let checkpoint = checkpoint_of(&set.manifest);
    let text = std::fs::read(&checkpoint).unwrap();
    let last_start = text[..text.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let cut = last_start + (text.len() - last_start) / 2;
    std::fs::write(&checkpoint, &text[..cut]).unwrap();
    let torn_line = text[..last_start].iter().filter(|&&b| b == b'\n').count() + 1;

    let output = filespin
        .spinlift()
        .args(["run", "-q", "--no-tag", "--report"])
        .arg(&report)
        .arg(&set.manifest)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("torn last line") && stderr.contains(&format!("line {torn_line}")), "{stderr}");
    common::assert_exactly_one_asset_per_entry(&filespin, &set, &report);
    assert_eq!(filespin.emulator.stats().issued, 8, "no second form for any entry");
}

/// Two manifests with their own ids: the run is told the checkpoint holds other entries, uploads its
/// own, and leaves the other manifest's assets alone.
#[test]
fn a_checkpoint_of_another_manifest_is_noted_and_nothing_registered_is_registered_again() {
    let filespin = LocalFileSpin::start();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = SampleSet::write(a_dir.path(), &SampleSpec { sizes: vec![500; 3], seed: 33 }).unwrap();
    let mut b = SampleSet::write(b_dir.path(), &SampleSpec { sizes: vec![700; 3], seed: 34 }).unwrap();
    // B's own ids.
    for f in &mut b.files {
        f.id = format!("b-{}", f.id);
    }
    let assets: Vec<_> = b.files.iter().map(|f| serde_json::json!({"path": f.path, "id": f.id})).collect();
    std::fs::write(&b.manifest, serde_json::json!({"version": 1, "assets": assets}).to_string()).unwrap();
    let a_checkpoint = checkpoint_of(&a.manifest);

    let first = filespin.spinlift().args(["run", "-q"]).arg(&a.manifest).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    let a_assets: Vec<_> = filespin.emulator.registrations().into_iter().map(|r| r.asset_id).collect();

    let b_report = b_dir.path().join("report.jsonl");
    let output = filespin
        .spinlift()
        .args(["run", "-q", "--checkpoint"])
        .arg(&a_checkpoint)
        .arg("--report")
        .arg(&b_report)
        .arg(&b.manifest)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("the manifest changed since the checkpoint was written: 3 new entries, 3 recorded entries no longer listed"),
        "the user is told: {stderr}"
    );
    let lines = read_report(&b_report);
    let registrations = filespin.registrations_by_id();
    for (file, line) in b.files.iter().zip(&lines) {
        assert_eq!(line["status"], "registered", "{line}");
        let asset_id = line["asset_id"].as_str().unwrap();
        assert!(!a_assets.iter().any(|a| a == asset_id), "{}: its own asset", file.path);
        assert_eq!(registrations[asset_id].checksum, file.md5);
    }
    // A again, on its own checkpoint (now also holding B's records): nothing registered twice.
    let again = filespin.spinlift().args(["run", "-q"]).arg(&a.manifest).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    let stats = filespin.emulator.stats();
    assert_eq!((stats.issued, stats.registered), (6, 6), "{stats:?}");
}

/// Two trees scanned alike have the same ids (paths): a run pointed at the other tree's checkpoint
/// must not report its own files as registered under the other tree's assets without a word.
#[test]
fn a_checkpoint_of_another_manifest_with_the_same_ids_is_not_taken_silently() {
    let filespin = LocalFileSpin::start();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = SampleSet::write(a_dir.path(), &SampleSpec { sizes: vec![500; 3], seed: 35 }).unwrap();
    let b = SampleSet::write(b_dir.path(), &SampleSpec { sizes: vec![700; 3], seed: 36 }).unwrap();
    let first = filespin.spinlift().args(["run", "-q"]).arg(&a.manifest).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));

    let b_report = b_dir.path().join("report.jsonl");
    let output = filespin
        .spinlift()
        .args(["run", "-q", "--checkpoint"])
        .arg(checkpoint_of(&a.manifest))
        .arg("--report")
        .arg(&b_report)
        .arg(&b.manifest)
        .output()
        .unwrap();

    let stderr = stderr_of(&output);
    // Either refused, naming the checkpoint, or B's own files uploaded; never A's assets in B's report.
    if output.status.code() == Some(2) {
        assert!(stderr.contains("checkpoint"), "{stderr}");
        assert_eq!(filespin.emulator.stats().registered, 3);
        return;
    }
    assert!(stderr.contains("checkpoint"), "the user is told: {stderr}");
    let registrations = filespin.registrations_by_id();
    for (file, line) in b.files.iter().zip(read_report(&b_report)) {
        let reg = &registrations[line["asset_id"].as_str().unwrap()];
        assert_eq!(reg.checksum, file.md5, "{}: reported as another file's asset", file.path);
    }
}

// ---------------------------------------------------------------------------------------------------
// 6. A FileSpin API that answers `content_storage_url` with what its documentation does not promise.
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum BadAnswer {
    Html,
    NoFields,
    FtpUrl,
    Huge,
}

const HUGE: usize = 50 * 1024 * 1024;

/// A one-endpoint FileSpin on a loopback port, answering every request the same wrong way. Returns its
/// URL and a count of the requests it received.
fn fake_api(answer: BadAnswer) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let respond = |stream: &mut std::net::TcpStream, kind: &str, body: &str| {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                };
                match answer {
                    BadAnswer::Html => respond(
                        &mut stream,
                        "text/html",
                        "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>",
                    ),
                    BadAnswer::NoFields => respond(
                        &mut stream,
                        "application/json",
                        r#"{"asset_id": "0f3c", "storage": {"url": "https://s3.example.com/bucket/",
                            "protocol": "POST", "storage_type": "AMAZON_S3", "expiry": 86400}}"#,
                    ),
                    BadAnswer::FtpUrl => respond(
                        &mut stream,
                        "application/json",
                        r#"{"asset_id": "0f3c", "storage": {"url": "ftp://s3.example.com/bucket/",
                            "protocol": "POST", "storage_type": "AMAZON_S3", "expiry": 86400,
                            "fields": {"key": "0f3c/original__a.jpg", "policy": "e30="}}}"#,
                    ),
                    BadAnswer::Huge => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {HUGE}\r\nConnection: close\r\n\r\n"
                        );
                        // JSON whitespace: nothing a parser could stop early on.
                        let chunk = vec![b' '; 64 * 1024];
                        for _ in 0..HUGE / chunk.len() {
                            if stream.write_all(&chunk).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, requests)
}

/// The most memory the process held, from `/proc/<pid>/status` (`VmHWM`, kB), sampled until it exits.
fn run_and_watch_memory(mut cmd: Command) -> (Output, Option<u64>) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = None;
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = Some(peak_kb.unwrap_or(0).max(kb));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), peak_kb)
}

/// What `transport/tests/wire.rs` checks for the client alone, here as the user sees it: the run ends
/// on its own (each answer is retried as the classification table says, then the entry fails: exit 1),
/// the report and stderr say what was wrong, and a huge answer is neither read whole nor printed.
#[test]
fn answers_the_api_does_not_document_fail_the_entry_with_a_short_message_naming_the_problem() {
    let cases = [
        (BadAnswer::Html, "the answer is not the documented JSON"),
        (BadAnswer::NoFields, "storage.fields is missing"),
        (BadAnswer::FtpUrl, "storage.url is not an http(s) URL (scheme \"ftp\")"),
        (BadAnswer::Huge, "the answer is larger than 1048576 bytes"),
    ];
    // Side by side: each run waits out the backoff of ten attempts.
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(answer, problem)| {
            std::thread::spawn(move || {
                let (url, requests) = fake_api(answer);
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("a.jpg"), b"jpeg").unwrap();
                let manifest = dir.path().join("manifest.json");
                write_manifest(&manifest, dir.path(), &["a.jpg"]);
                let report = dir.path().join("report.jsonl");
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_spinlift"));
                cmd.env("FILESPIN_API_URL", &url)
                    .env("FILESPIN_API_KEY", "test-key")
                    .env_remove("RUST_LOG")
                    .stdin(Stdio::null())
                    .args(["run", "-q", "--api-rps", "0", "--report"])
                    .arg(&report)
                    .arg(&manifest);
                let (output, peak_kb) = run_and_watch_memory(cmd);
                let line = read_report(&report).remove(0);
                (answer, problem, output, peak_kb, line, requests.load(Ordering::SeqCst))
            })
        })
        .collect();
    for run in runs {
        let (answer, problem, output, peak_kb, line, requests) = run.join().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{answer:?}: {stderr}");
        assert_eq!(line["status"], "failed", "{answer:?}: {line}");
        let error = error_of(&line);
        assert!(
            error.starts_with("requesting an upload form: gave up after 10 attempts: ")
                && error.contains(problem),
            "{answer:?}: {error}"
        );
        assert!(stderr.contains(&format!("failed: a.jpg: {error}")), "{answer:?}: {stderr}");
        assert_eq!(requests, 10, "{answer:?}: the attempt limit bounds the requests");
        assert!(error.len() < 300 && stderr.len() < 2_000, "{answer:?}: bounded: {stderr}");
        assert!(
            !stderr.contains("nginx") && !stderr.contains("e30="),
            "{answer:?}: no body echoed: {stderr}"
        );
        if let Some(kb) = peak_kb {
            // About 15 MiB for every case here; a body held whole would be 50 MiB more.
            assert!(kb * 1024 < 40 * 1024 * 1024, "{answer:?}: peak memory {kb} kB");
        }
    }
}

//! A user migrates straight from remote storage (issue #8): an S3 bucket listed with `spinlift scan
//! s3://…` and uploaded with `spinlift run`, http(s) URLs in a manifest, through kill -9, changed
//! objects, flaky sources and a request limit, without a secret in any output.

mod common;
#[path = "common/remote.rs"]
mod remote_support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{LocalFileSpin, kill_after, read_report, stderr_of, stdout_of};
use rand::{Rng, SeedableRng, rngs::StdRng};
use remote_support::{
    Held, RegisterGate, RemoteBucket, RemoteWeb, densest_window, md5_hex, random_bytes, seed,
};
use spinlift_emulator::{EmulatorConfig, SourceBucketConfig};

/// An object put into the source bucket.
struct Object {
    key: String,
    bytes: Vec<u8>,
    etag: String,
}

/// What one manifest entry must have become: its id in the report, the file name FileSpin was told, and
/// the bytes FileSpin must hold.
struct Expect<'a> {
    id: String,
    filename: String,
    bytes: &'a [u8],
}

fn last_segment(key: &str) -> String {
    key.rsplit('/').next().unwrap().to_owned()
}

/// Puts each `(key, size)` into the bucket with bytes drawn from `seed`.
fn put_objects(bucket: &RemoteBucket, specs: &[(String, usize)], seed: u64) -> Vec<Object> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (key, size))| {
            let bytes = random_bytes(seed.wrapping_mul(1_000_003).wrapping_add(i as u64), *size);
            let etag = bucket.put(key, &bytes);
            assert_eq!(etag.trim_matches('"'), md5_hex(&bytes), "the bucket's ETag of {key}");
            Object { key: key.clone(), bytes, etag }
        })
        .collect()
}

/// Entries of a manifest relative to its `source_root`: id = the key as written.
fn expect_relative<'a>(objects: impl IntoIterator<Item = &'a Object>, prefix: &str) -> Vec<Expect<'a>> {
    objects
        .into_iter()
        .map(|o| {
            let rel = o.key.strip_prefix(prefix).expect("under the prefix");
            Expect { id: rel.to_owned(), filename: last_segment(rel), bytes: &o.bytes }
        })
        .collect()
}

/// `spinlift` pointed at this FileSpin and this bucket, run in `dir` (no stray spinlift.toml).
fn spinlift(filespin: &LocalFileSpin, bucket: &RemoteBucket, dir: &Path) -> assert_cmd::Command {
    let mut cmd = filespin.spinlift();
    bucket.env_of(&mut cmd);
    cmd.current_dir(dir).timeout(Duration::from_secs(300));
    cmd
}

fn scan(filespin: &LocalFileSpin, bucket: &RemoteBucket, dir: &Path, prefix: &str, extra: &[&str]) -> Output {
    let manifest = dir.join("m.jsonl");
    spinlift(filespin, bucket, dir)
        .arg("scan")
        .arg(prefix)
        .arg("-o")
        .arg(&manifest)
        .args(extra)
        .output()
        .unwrap()
}

fn run(filespin: &LocalFileSpin, bucket: &RemoteBucket, manifest: &Path, extra: &[&str]) -> Output {
    let dir = manifest.parent().unwrap();
    spinlift(filespin, bucket, dir).args(["run", "-q"]).args(extra).arg(manifest).output().unwrap()
}

/// The report lines by entry id.
fn report_by_id(report: &Path) -> HashMap<String, serde_json::Value> {
    let lines = read_report(report);
    let by_id: HashMap<String, serde_json::Value> =
        lines.iter().map(|l| (l["id"].as_str().expect("an id").to_owned(), l.clone())).collect();
    assert_eq!(by_id.len(), lines.len(), "the report has one line per entry id");
    by_id
}

/// Each expected entry is registered in the report, under an asset of its own that FileSpin registered
/// with the entry's size, MD5 and file name, and whose stored bytes are the source's. Returns the asset
/// ids by entry id.
fn assert_registered(
    filespin: &LocalFileSpin,
    report: &Path,
    expected: &[Expect<'_>],
) -> HashMap<String, String> {
    let lines = report_by_id(report);
    let registrations = filespin.registrations_by_id();
    let mut assets = HashMap::new();
    let mut seen = HashSet::new();
    for e in expected {
        let line = lines.get(&e.id).unwrap_or_else(|| panic!("{}: not in the report", e.id));
        assert_eq!(line["status"], "registered", "{line}");
        assert_eq!(line["path"], e.id.as_str(), "a remote entry's path is its source as written: {line}");
        let asset_id = line["asset_id"].as_str().unwrap_or_else(|| panic!("no asset id: {line}")).to_owned();
        assert!(seen.insert(asset_id.clone()), "{}: asset {asset_id} is another entry's too", e.id);
        let reg = registrations.get(&asset_id).unwrap_or_else(|| {
            panic!("{}: asset {asset_id} of the report is not registered at FileSpin", e.id)
        });
        let md5 = md5_hex(e.bytes);
        assert_eq!((reg.size, reg.checksum.as_str()), (e.bytes.len() as u64, md5.as_str()), "{}", e.id);
        assert_eq!(
            (line["size"].as_u64(), line["checksum"].as_str()),
            (Some(reg.size), Some(md5.as_str())),
            "{line}"
        );
        assert_eq!(reg.filename, e.filename, "{}: the file name FileSpin was told", e.id);
        let stored = filespin.emulator.read_object(&reg.key).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert!(
            stored == e.bytes,
            "{}: FileSpin stored {} bytes that are not the source's",
            e.id,
            stored.len()
        );
        assets.insert(e.id.clone(), asset_id);
    }
    assets
}

/// The manifest's lines as JSON values.
fn manifest_lines(manifest: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each manifest line is JSON"))
        .collect()
}

/// A JSON Lines manifest: a header with `source_root`, then one `{"source": …}` line per source.
fn write_manifest(path: &Path, source_root: Option<&str>, sources: &[&str]) {
    let mut text = match source_root {
        Some(root) => serde_json::json!({"version": 1, "source_root": root}).to_string(),
        None => serde_json::json!({"version": 1}).to_string(),
    };
    for source in sources {
        text.push('\n');
        text.push_str(&serde_json::json!({ "source": source }).to_string());
    }
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

// 1 ------------------------------------------------------------------------------------------------

#[test]
fn a_bucket_is_migrated_by_scan_then_run_and_a_second_run_uploads_nothing() {
    let seed = seed(2026_0811);
    let mut rng = StdRng::seed_from_u64(seed);
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();

    // 220 objects of mixed sizes under nested prefixes, two empty ones, two over 8 MiB, and keys with
    // spaces and non-ASCII characters.
    let mut specs: Vec<(String, usize)> = (0..216)
        .map(|i| {
            let size = match i % 10 {
                0..=5 => rng.random_range(1..16 * 1024),
                6..=8 => rng.random_range(16 * 1024..256 * 1024),
                _ => rng.random_range(256 * 1024..1024 * 1024),
            };
            let key = match i {
                0..150 => format!("photos/{}/{:02}/IMG_{i:04}.jpg", 2017 + i % 5, i % 12 + 1),
                150..200 => format!("docs/reports/report-{i}.pdf"),
                _ => format!("videos/clip-{i}.mp4"),
            };
            (key, size)
        })
        .collect();
    specs.extend([
        ("photos/2021/summer trip/beach day 1.jpg".to_owned(), 70_000),
        ("archives/Zürich/café ☕ menü.png".to_owned(), 12_345),
        ("empty/zero.bin".to_owned(), 0),
        ("empty/also empty.txt".to_owned(), 0),
        ("videos/master-8MiB-plus-one.mov".to_owned(), 8 * 1024 * 1024 + 1),
        ("videos/master-9MiB.mov".to_owned(), 9 * 1024 * 1024 + 4321),
    ]);
    let objects = put_objects(&bucket, &specs, seed);

    let scanned = scan(&filespin, &bucket, dir.path(), "s3://source/", &[]);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let manifest = dir.path().join("m.jsonl");
    let lines = manifest_lines(&manifest);
    assert_eq!(lines[0], serde_json::json!({"version": 1, "source_root": "s3://source/"}));
    let listed: HashMap<&str, &serde_json::Value> =
        lines[1..].iter().map(|l| (l["source"].as_str().expect("a source"), l)).collect();
    assert_eq!(listed.len(), objects.len(), "one manifest line per object");
    for o in &objects {
        let line = listed.get(o.key.as_str()).unwrap_or_else(|| panic!("{} not in the manifest", o.key));
        assert_eq!(line["size"].as_u64(), Some(o.bytes.len() as u64), "{line}");
        assert_eq!(
            line["etag"].as_str().map(|t| t.trim_matches('"')),
            Some(o.etag.trim_matches('"')),
            "{line}"
        );
        assert!(line["mtime_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{line}");
    }
    assert_eq!(bucket.bucket.stats().gets, 0, "a scan lists; it reads no object");

    let report = dir.path().join("r.jsonl");
    let started = Instant::now();
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    eprintln!("run of {} objects: {:.1} s", objects.len(), started.elapsed().as_secs_f64());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_registered(&filespin, &report, &expect_relative(&objects, ""));
    assert_eq!(filespin.emulator.registrations().len(), objects.len(), "each object registered exactly once");
    let stats = filespin.emulator.stats();
    assert_eq!((stats.issued, stats.uploaded), (objects.len() as u64, objects.len() as u64));
    let source = bucket.bucket.stats();
    eprintln!("source: {source:?}");
    assert_eq!(source.gets, objects.len() as u64, "one GET an object");
    assert!(source.heads >= objects.len() as u64, "a HEAD an object before its form");

    // The same command again: every entry is finished, nothing is asked of FileSpin or of the source.
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("nothing left to do"), "{}", stderr_of(&output));
    assert_eq!(filespin.emulator.stats(), stats, "the second run sent FileSpin nothing");
    assert_eq!(bucket.bucket.stats().gets, source.gets, "the second run read no object");
    assert_registered(&filespin, &report, &expect_relative(&objects, ""));
}

/// The arguments of a scan, and which keys (relative to the prefix) the user expects it to list.
type Selection = (&'static [&'static str], fn(&str) -> bool);

// 2 ------------------------------------------------------------------------------------------------

#[test]
fn scan_filters_a_prefix_like_a_local_tree_and_the_run_uploads_exactly_that_subset() {
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let mut keys: Vec<String> = [
        "media/photos/a.jpg",
        "media/photos/2019/b.jpg",
        "media/photos/2019/x.tmp",
        "media/photos/2019/deep/z.jpg",
        "media/photos/.thumbs/c.jpg",
        "media/photos/2020/f.tmp.jpg",
        "media/photos/2020/.DS_Store",
        "media/.hidden/readme.txt",
        "media/.top.jpg",
        "media/docs/d.pdf",
        "media/docs/e.tmp",
        "media/docs/photos/not-top-level.jpg",
        "media/photosX/g.jpg",
        "media/top.tmp",
        "media/notes.txt",
        "media-old/photos/x.jpg",
        "other/media/photos/y.jpg",
    ]
    .map(str::to_owned)
    .to_vec();
    for i in 0..40 {
        let ext = ["jpg", "png", "tmp", "jpg.tmp"][i % 4];
        keys.push(format!("media/photos/{}/{:02}/p{i}.{ext}", 2015 + i % 3, i % 5));
    }
    let specs: Vec<(String, usize)> =
        keys.iter().enumerate().map(|(i, k)| (k.clone(), 100 + i * 37)).collect();
    let objects = put_objects(&bucket, &specs, 77);
    let under_prefix = || objects.iter().filter(|o| o.key.starts_with("media/"));
    let rel = |o: &Object| o.key.strip_prefix("media/").unwrap().to_owned();

    // What the user asks for, and what they expect from the keys they know.
    let cases: [Selection; 2] = [
        (&["--include", "photos/**", "--exclude", "*.tmp"], |r| {
            let hidden = r.split('/').any(|s| s.starts_with('.'));
            !hidden && r.starts_with("photos/") && !last_segment(r).ends_with(".tmp")
        }),
        // A glob without '/' matches the name at any depth; `*` stays within one directory.
        (&["--hidden", "--include", "*.jpg", "--exclude", "photos/2019/*"], |r| {
            let in_2019 = r.strip_prefix("photos/2019/").is_some_and(|rest| !rest.contains('/'));
            last_segment(r).ends_with(".jpg") && !in_2019
        }),
    ];
    for (args, wanted) in &cases {
        let scanned = scan(&filespin, &bucket, dir.path(), "s3://source/media", args);
        assert_eq!(scanned.status.code(), Some(0), "{args:?}: {}", stderr_of(&scanned));
        let lines = manifest_lines(&dir.path().join("m.jsonl"));
        assert_eq!(lines[0], serde_json::json!({"version": 1, "source_root": "s3://source/media/"}));
        let mut got: Vec<&str> = lines[1..].iter().map(|l| l["source"].as_str().unwrap()).collect();
        got.sort_unstable();
        let mut expected: Vec<String> = under_prefix().map(rel).filter(|r| wanted(r)).collect();
        expected.sort_unstable();
        assert!(expected.len() >= 10, "{args:?}: a test of a subset of {} keys", expected.len());
        assert_eq!(got, expected, "{args:?}: the manifest's sources");
        let sizes: HashMap<String, usize> = under_prefix().map(|o| (rel(o), o.bytes.len())).collect();
        for l in &lines[1..] {
            assert_eq!(l["size"].as_u64(), Some(sizes[l["source"].as_str().unwrap()] as u64), "{l}");
        }
        let out = stdout_of(&scanned);
        assert!(out.contains(&format!("{} files", expected.len())), "{out}");
    }

    // The first selection, uploaded: exactly those objects and nothing else.
    let scanned = scan(&filespin, &bucket, dir.path(), "s3://source/media", cases[0].0);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let manifest = dir.path().join("m.jsonl");
    let report = dir.path().join("r.jsonl");
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let chosen: Vec<&Object> = under_prefix().filter(|o| cases[0].1(&rel(o))).collect();
    assert_registered(&filespin, &report, &expect_relative(chosen.iter().copied(), "media/"));
    assert_eq!(filespin.emulator.registrations().len(), chosen.len());
    assert_eq!(read_report(&report).len(), chosen.len());
}

// 3 ------------------------------------------------------------------------------------------------

#[test]
fn http_sources_are_uploaded_and_a_missing_url_fails_alone() {
    let web = RemoteWeb::start();
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("img/a.jpg", random_bytes(1, 100_000)),
        ("img/b b.png", random_bytes(2, 3_000)),
        ("img/sub/c.jpg", random_bytes(3, 2 * 1024 * 1024 + 17)),
        ("docs/ü.pdf", random_bytes(4, 40_000)),
        ("empty.txt", Vec::new()),
    ];
    for (path, bytes) in &files {
        web.web.write_file(path, bytes).unwrap();
    }
    let local = random_bytes(5, 5_000);
    std::fs::write(dir.path().join("local.bin"), &local).unwrap();

    // Absolute URLs (one with a query, as a signed URL has), a local file, and a URL that is not there.
    let signed = format!("{}?token=QUERY-SECRET-123", web.web.file_url("img/a.jpg"));
    let missing = format!("{}?sig=QUERY-SECRET-456", web.web.file_url("img/missing.jpg"));
    let mut assets: Vec<serde_json::Value> =
        files[1..].iter().map(|(path, _)| serde_json::json!({"source": web.web.file_url(path)})).collect();
    assets.push(serde_json::json!({ "source": signed }));
    assets.push(serde_json::json!({"path": "local.bin"}));
    assets.push(serde_json::json!({ "source": missing }));
    let manifest = dir.path().join("web.json");
    std::fs::write(&manifest, serde_json::json!({"version": 1, "assets": assets}).to_string()).unwrap();
    let report = dir.path().join("r.jsonl");

    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines = report_by_id(&report);
    assert_eq!(lines.len(), files.len() + 2);
    // The signed URL's id and path are the URL without its query.
    let signed_line = lines
        .values()
        .find(|l| l["path"].as_str().unwrap().starts_with(&web.web.file_url("img/a.jpg")))
        .expect("the signed URL's entry");
    let signed_id = signed_line["id"].as_str().unwrap().to_owned();
    let missing_line = lines
        .values()
        .find(|l| l["path"].as_str().unwrap().starts_with(&web.web.file_url("img/missing.jpg")))
        .expect("the missing URL's entry");
    assert_eq!(missing_line["status"], "failed", "{missing_line}");
    assert!(missing_line["asset_id"].is_null(), "no asset for a missing source: {missing_line}");
    let error = missing_line["error"].as_str().unwrap_or_default();
    assert!(error.contains("404") || error.to_lowercase().contains("not found"), "{missing_line}");
    assert!(
        error.contains(&web.web.file_url("img/missing.jpg"))
            || stderr.contains(&web.web.file_url("img/missing.jpg")),
        "the failure names the URL: {missing_line}\n{stderr}"
    );
    let report_text = std::fs::read_to_string(&report).unwrap();
    for text in [report_text.as_str(), stderr.as_str()] {
        assert!(!text.contains("QUERY-SECRET"), "a URL's query was shown:\n{text}");
    }

    let mut expected: Vec<Expect<'_>> = files[1..]
        .iter()
        .map(|(path, bytes)| Expect { id: web.web.file_url(path), filename: last_segment(path), bytes })
        .collect();
    expected.push(Expect { id: signed_id, filename: "a.jpg".into(), bytes: &files[0].1 });
    let mut registered = assert_registered(&filespin, &report, &expected).len();
    let local_line = &lines["local.bin"];
    assert_eq!(local_line["status"], "registered", "{local_line}");
    assert_eq!(local_line["checksum"], md5_hex(&local).as_str());
    registered += 1;
    assert_eq!(filespin.emulator.registrations().len(), registered);

    // The same files as keys relative to the web server's URL.
    let manifest = dir.path().join("rel.jsonl");
    let root = format!("{}/img/", web.web.url());
    write_manifest(&manifest, Some(&root), &["a.jpg", "sub/c.jpg"]);
    let report = dir.path().join("rel-report.jsonl");
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let expected = [
        Expect { id: "a.jpg".into(), filename: "a.jpg".into(), bytes: &files[0].1 },
        Expect { id: "sub/c.jpg".into(), filename: "c.jpg".into(), bytes: &files[2].1 },
    ];
    assert_registered(&filespin, &report, &expected);
    assert_eq!(filespin.emulator.registrations().len(), registered + 2);
    assert_eq!(bucket.bucket.stats().requests, 0, "no s3:// entry: the bucket was not asked");
}

// 4 ------------------------------------------------------------------------------------------------

fn spawn_run(filespin: &LocalFileSpin, bucket: &RemoteBucket, manifest: &Path) -> std::process::Child {
    let mut cmd = filespin.spinlift_process();
    bucket.process_env(&mut cmd);
    cmd.current_dir(manifest.parent().unwrap())
        .args(["run", "--quiet", "--concurrency", "8"])
        .arg(manifest)
        .spawn()
        .expect("spinlift starts")
}

#[test]
fn kill_9_during_a_remote_migration_then_resume_leaves_exactly_one_asset_per_object() {
    let seed = seed(2026_0812);
    let mut rng = StdRng::seed_from_u64(seed);
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    // Mostly small objects, so that kills land in every step; a few large ones keep uploads in flight.
    let specs: Vec<(String, usize)> = (0..320)
        .map(|i| {
            let size = if i % 40 == 0 {
                rng.random_range(1024 * 1024..3 * 1024 * 1024)
            } else {
                rng.random_range(0..48 * 1024)
            };
            (format!("batch/{:02}/obj-{i:04}.jpg", i % 17), size)
        })
        .collect();
    let objects = put_objects(&bucket, &specs, seed);
    let scanned = scan(&filespin, &bucket, dir.path(), "s3://source/batch", &[]);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let manifest = dir.path().join("m.jsonl");

    let mut kills = 0;
    while kills < 8 {
        let mut child = spawn_run(&filespin, &bucket, &manifest);
        if !kill_after(&filespin, &mut child, rng.random_range(1..=90)) {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 6, "only {kills} kills landed before the batch finished");

    let report = dir.path().join("r.jsonl");
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_registered(&filespin, &report, &expect_relative(&objects, "batch/"));
    assert_eq!(filespin.emulator.registrations().len(), objects.len(), "exactly one asset per object");
    eprintln!(
        "survived {kills} kills; FileSpin {:?}; source {:?}",
        filespin.emulator.stats(),
        bucket.bucket.stats()
    );
}

// 5 ------------------------------------------------------------------------------------------------

/// A batch killed with every request slot waiting on a registration (see [`RegisterGate`]): the first
/// `ADMIT` entries registered, the next ones uploaded and their registrations held as `mode` says.
struct Interrupted {
    bucket: RemoteBucket,
    filespin: LocalFileSpin,
    dir: tempfile::TempDir,
    manifest: std::path::PathBuf,
    specs: Vec<(String, usize)>,
    old: Vec<Object>,
    registered_before: HashMap<String, spinlift_emulator::Registration>,
    stats_before: spinlift_emulator::Stats,
}

const ADMIT: u64 = 20;
const CONCURRENCY: u64 = 8;

fn interrupt_with_registrations_held(mode: Held) -> Interrupted {
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<(String, usize)> =
        (0..60).map(|i| (format!("album/{}/pic-{i:03}.jpg", i % 4), 1_000 + i * 3_001)).collect();
    let old = put_objects(&bucket, &specs, 5);
    let scanned = scan(&filespin, &bucket, dir.path(), "s3://source/album", &[]);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let manifest = dir.path().join("m.jsonl");

    let gate = RegisterGate::start(&filespin.emulator.api_url(), ADMIT, mode);
    let mut cmd = filespin.spinlift_process();
    bucket.process_env(&mut cmd);
    let mut child = cmd
        .env("FILESPIN_API_URL", gate.url())
        .current_dir(dir.path())
        .args(["run", "--quiet", "--concurrency", &CONCURRENCY.to_string()])
        .arg(&manifest)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while gate.held() < CONCURRENCY {
        assert!(child.try_wait().unwrap().is_none(), "the run ended with registrations held");
        assert!(Instant::now() < deadline, "only {} registrations held after a minute", gate.held());
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
    let registered_before = filespin.registrations_by_id();
    let expected = if mode == Held::Unsent { ADMIT } else { ADMIT + CONCURRENCY };
    assert_eq!(registered_before.len() as u64, expected, "registered when the run was killed");
    let stats_before = filespin.emulator.stats();
    assert!(stats_before.uploaded >= ADMIT + CONCURRENCY, "{stats_before:?}");
    Interrupted { bucket, filespin, dir, manifest, specs, old, registered_before, stats_before }
}

impl Interrupted {
    /// Overwrites every object (half keep their size: only the ETag tells), then runs the same command
    /// again, straight against FileSpin. Returns the new objects and the report.
    fn overwrite_and_resume(&self) -> (Vec<Object>, std::path::PathBuf) {
        let new_specs: Vec<(String, usize)> = self
            .specs
            .iter()
            .enumerate()
            .map(|(i, (k, n))| (k.clone(), if i % 2 == 0 { *n } else { n + 777 }))
            .collect();
        let new = put_objects(&self.bucket, &new_specs, 6);
        let report = self.dir.path().join("r.jsonl");
        let output =
            run(&self.filespin, &self.bucket, &self.manifest, &["--report", report.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        (new, report)
    }

    /// Every registration's size and checksum are those of the bytes FileSpin stores under it, the
    /// report says what FileSpin registered, and there is one asset per entry.
    fn assert_consistent(&self, report: &Path) {
        let registrations = self.filespin.emulator.registrations();
        for reg in &registrations {
            let stored = self.filespin.emulator.read_object(&reg.key).unwrap();
            assert_eq!(
                (reg.size, reg.checksum.as_str()),
                (stored.len() as u64, md5_hex(&stored).as_str()),
                "asset {} ({}) is registered with the size and checksum of bytes FileSpin no longer holds",
                reg.asset_id,
                reg.filename
            );
        }
        assert_eq!(registrations.len(), self.specs.len(), "exactly one asset per entry");
        let by_asset = self.filespin.registrations_by_id();
        for line in read_report(report) {
            let reg = &by_asset[line["asset_id"].as_str().expect("registered")];
            assert_eq!(line["checksum"], reg.checksum.as_str(), "the report says what FileSpin registered");
        }
    }
}

#[test]
fn objects_overwritten_between_runs_are_uploaded_again_never_registered_stale() {
    let batch = interrupt_with_registrations_held(Held::Unsent);
    let (new, report) = batch.overwrite_and_resume();
    batch.assert_consistent(&report);

    // What was registered before stays; everything else is the new version.
    let lines = report_by_id(&report);
    let mut expected = Vec::new();
    for (o, n) in batch.old.iter().zip(&new) {
        let id = o.key.strip_prefix("album/").unwrap();
        let asset_id = lines[id]["asset_id"].as_str().unwrap_or_default();
        let bytes = if batch.registered_before.contains_key(asset_id) { &o.bytes } else { &n.bytes };
        expected.push(Expect { id: id.to_owned(), filename: last_segment(id), bytes });
    }
    assert_registered(&batch.filespin, &report, &expected);
    let after = batch.filespin.emulator.stats();
    assert_eq!(
        after.uploaded - batch.stats_before.uploaded,
        batch.specs.len() as u64 - ADMIT,
        "each entry not registered was uploaded once by the resumed run, the held ones again"
    );
    assert_eq!(
        batch.filespin.emulator.issued().len(),
        batch.specs.len(),
        "no entry was given a second asset id"
    );
}

#[test]
fn an_asset_registered_whose_answer_was_lost_keeps_a_checksum_matching_its_bytes_after_the_object_changes() {
    // The registrations held were carried out by FileSpin; only their answers were lost, so the
    // checkpoint says "uploaded" for assets FileSpin has registered.
    let batch = interrupt_with_registrations_held(Held::AnswerLost);
    let (_new, report) = batch.overwrite_and_resume();
    batch.assert_consistent(&report);
    for (asset_id, before) in &batch.registered_before {
        let now = &batch.filespin.registrations_by_id()[asset_id];
        assert_eq!(now, before, "a registration does not change");
    }
}

// 6 ------------------------------------------------------------------------------------------------

#[test]
fn flaky_sources_are_retried_and_a_missing_key_fails_alone() {
    let seed = seed(7);
    let bucket = RemoteBucket::with_faults(&format!(
        "seed={seed},source.503=0.1,source.reset_mid=0.1,source.drop=0.05"
    ));
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let specs: Vec<(String, usize)> = (0..80)
        .map(|i| (format!("shoot/{}/frame-{i:03}.jpg", i % 3), rng.random_range(10_000..600_000)))
        .collect();
    let objects = put_objects(&bucket, &specs, seed);
    let manifest = dir.path().join("m.jsonl");
    let mut sources: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    sources.insert(40, "shoot/1/frame-missing.jpg");
    write_manifest(&manifest, Some("s3://source/"), &sources);
    let report = dir.path().join("r.jsonl");

    let started = Instant::now();
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    let stderr = stderr_of(&output);
    let source = bucket.bucket.stats();
    eprintln!(
        "{:.1} s; source {source:?}; FileSpin {:?}",
        started.elapsed().as_secs_f64(),
        filespin.emulator.stats()
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_registered(&filespin, &report, &expect_relative(&objects, ""));
    assert_eq!(filespin.emulator.registrations().len(), objects.len());
    assert!(source.faults_injected >= 15, "only {} faults injected", source.faults_injected);

    let lines = report_by_id(&report);
    let missing = &lines["shoot/1/frame-missing.jpg"];
    assert_eq!(missing["status"], "failed", "{missing}");
    assert!(missing["asset_id"].is_null(), "FileSpin was not asked for an asset: {missing}");
    let error = missing["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("not found") || error.contains("404") || error.contains("no such key"),
        "{missing}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("failed") && l.contains("shoot/1/frame-missing.jpg")),
        "the summary names the missing key:\n{stderr}"
    );
    assert_eq!(filespin.emulator.stats().issued, objects.len() as u64, "no form for the missing key");
}

#[test]
fn missing_objects_are_summed_up_under_one_reason_as_missing_files_are() {
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let objects = put_objects(&bucket, &[("set/a.jpg".to_owned(), 10), ("set/b.jpg".to_owned(), 20)], 13);
    let manifest = dir.path().join("m.jsonl");
    write_manifest(&manifest, Some("s3://source/set/"), &["a.jpg", "gone-1.jpg", "b.jpg", "gone-2.jpg"]);
    let report = dir.path().join("r.jsonl");

    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_registered(&filespin, &report, &expect_relative(&objects, "set/"));
    let lines = report_by_id(&report);
    let reasons: Vec<&str> = ["gone-1.jpg", "gone-2.jpg"]
        .iter()
        .map(|id| lines[*id]["error"].as_str().unwrap_or_default())
        .collect();
    // The report's `path` and the summary's "failed: <path>" name the object; the reason says what
    // happened to it, so that a thousand missing objects are one line of the summary.
    assert_eq!(reasons[0], reasons[1], "two missing objects, one reason");
    assert!(stderr.contains(&format!("failures by reason:\n        2 × {}", reasons[0])), "{stderr}");
}

// 7 ------------------------------------------------------------------------------------------------

#[test]
fn source_rps_limits_the_requests_to_the_bucket() {
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<(String, usize)> =
        (0..60).map(|i| (format!("rps/o-{i:02}.bin"), 2_000 + i * 10)).collect();
    let objects = put_objects(&bucket, &specs, 8);
    let scanned = scan(&filespin, &bucket, dir.path(), "s3://source/rps/", &["--source-rps", "20"]);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let manifest = dir.path().join("m.jsonl");
    let report = dir.path().join("r.jsonl");

    let started = Instant::now();
    let output =
        run(&filespin, &bucket, &manifest, &["--source-rps", "20", "--report", report.to_str().unwrap()]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_registered(&filespin, &report, &expect_relative(&objects, "rps/"));
    let times = bucket.bucket.request_times();
    let densest = densest_window(&times, Duration::from_secs(1));
    eprintln!(
        "{} source requests in {:.1} s, at most {densest} in a second",
        times.len(),
        took.as_secs_f64()
    );
    assert!(times.len() >= 2 * objects.len(), "a HEAD and a GET an object: {} requests", times.len());
    assert!(densest <= 21, "{densest} requests to the bucket within one second at --source-rps 20");
}

// 8 ------------------------------------------------------------------------------------------------

const SOURCE_SECRET: &str = "srcSECRET-5b1f0c9e-must-not-leak";
const FILESPIN_KEY: &str = "fsKEY-a93d27e4-must-not-leak";
const WRONG_SECRET: &str = "wrongSECRET-77e0d1aa-must-not-leak";

#[test]
fn no_secret_reaches_any_output_even_at_trace_level() {
    let bucket = RemoteBucket::with(SourceBucketConfig {
        secret_access_key: SOURCE_SECRET.into(),
        ..SourceBucketConfig::default()
    });
    let filespin =
        LocalFileSpin::with(EmulatorConfig { api_key: FILESPIN_KEY.into(), ..EmulatorConfig::default() });
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<(String, usize)> = (0..6).map(|i| (format!("s/k-{i}.jpg"), 20_000 + i)).collect();
    put_objects(&bucket, &specs, 9);

    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep = |what: &str, output: &Output| {
        outputs.push((format!("{what} stdout"), output.stdout.clone()));
        outputs.push((format!("{what} stderr"), output.stderr.clone()));
    };
    let traced = |cmd: &mut assert_cmd::Command| {
        cmd.env("RUST_LOG", "trace");
    };

    let mut cmd = spinlift(&filespin, &bucket, dir.path());
    traced(&mut cmd);
    let scanned = cmd.args(["scan", "s3://source/s", "-o"]).arg(dir.path().join("m.jsonl")).output().unwrap();
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    keep("scan", &scanned);
    let manifest = dir.path().join("m.jsonl");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("{\"source\": \"k-missing.jpg\"}\n");
    std::fs::write(&manifest, text).unwrap();

    // Text logs to stderr, then JSON logs to a file (another copy of the manifest: its own checkpoint).
    let report = dir.path().join("r.jsonl");
    let mut cmd = spinlift(&filespin, &bucket, dir.path());
    traced(&mut cmd);
    let output = cmd.args(["run", "--report"]).arg(&report).arg(&manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("TRACE"), "trace logs were written to stderr");
    keep("run", &output);

    let manifest2 = dir.path().join("m2.jsonl");
    std::fs::copy(&manifest, &manifest2).unwrap();
    let report2 = dir.path().join("r2.jsonl");
    let log = dir.path().join("log.jsonl");
    let mut cmd = spinlift(&filespin, &bucket, dir.path());
    traced(&mut cmd);
    let output = cmd
        .args(["--log-format", "json", "--log-file"])
        .arg(&log)
        .args(["run", "--report"])
        .arg(&report2)
        .arg(&manifest2)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    keep("run --log-file", &output);
    // And a user whose secret is wrong: the bucket refuses every request.
    let manifest3 = dir.path().join("m3.jsonl");
    std::fs::copy(&manifest, &manifest3).unwrap();
    let mut cmd = spinlift(&filespin, &bucket, dir.path());
    traced(&mut cmd);
    let output =
        cmd.env("AWS_SECRET_ACCESS_KEY", WRONG_SECRET).args(["run", "-q"]).arg(&manifest3).output().unwrap();
    assert!(matches!(output.status.code(), Some(1 | 2)), "{}", stderr_of(&output));
    keep("run with a wrong secret", &output);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.lines().count() > 20 && log_text.contains("\"TRACE\""), "trace logs in the log file");
    assert_eq!(filespin.emulator.registrations().len(), 2 * specs.len());

    for file in [&log, &report, &report2, &manifest] {
        outputs.push((file.display().to_string(), std::fs::read(file).unwrap()));
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("checkpoint") && path.is_file() {
            eprintln!("checkpoint file {}", path.display());
            outputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(
        outputs.iter().filter(|(name, _)| name.contains("checkpoint")).count() >= 2,
        "two checkpoints read"
    );
    for (what, bytes) in &outputs {
        let text = String::from_utf8_lossy(bytes);
        for secret in [SOURCE_SECRET, FILESPIN_KEY, WRONG_SECRET] {
            assert!(!text.contains(secret), "{what} shows the secret {secret}");
        }
    }
}

#[test]
fn plain_http_to_another_host_is_refused_before_any_request() {
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let objects = put_objects(&bucket, &[("fine/ok.jpg".to_owned(), 4_000)], 10);
    let manifest = dir.path().join("m.jsonl");
    // 192.0.2.1 is TEST-NET-1: nothing answers there, a connection would hang until a timeout.
    write_manifest(&manifest, None, &["http://192.0.2.1/x.jpg", "s3://source/fine/ok.jpg"]);
    let report = dir.path().join("r.jsonl");

    let started = Instant::now();
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(took < Duration::from_secs(8), "{:.1} s: did it try to connect?", took.as_secs_f64());
    let lines = report_by_id(&report);
    let refused = &lines["http://192.0.2.1/x.jpg"];
    assert_eq!(refused["status"], "failed", "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("plain http") && error.contains("refused"), "{refused}");
    assert!(refused["asset_id"].is_null(), "no asset asked for: {refused}");
    let expected = [Expect {
        id: "s3://source/fine/ok.jpg".into(),
        filename: "ok.jpg".into(),
        bytes: &objects[0].bytes,
    }];
    assert_registered(&filespin, &report, &expected);
    assert_eq!(filespin.emulator.stats().issued, 1);
}

// 9 ------------------------------------------------------------------------------------------------

#[test]
fn bad_remote_manifests_exit_2_naming_the_line() {
    let bucket = RemoteBucket::start();
    bucket.put("media/a.jpg", b"a");
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jpg"), b"local").unwrap();
    let header = r#"{"version": 1, "source_root": "s3://source/media/"}"#;
    let cases = [
        (r#"{"source": "../secret/x.jpg"}"#, "outside"),
        (r#"{"source": "photos/../../x.jpg"}"#, "outside"),
        (r#"{"source": "s3://other-bucket/media/x.jpg"}"#, "outside"),
        (r#"{"source": "s3://source/media-old/x.jpg"}"#, "outside"),
        (r#"{"source": "ftp://files.example.com/x.jpg"}"#, "ftp"),
        (r#"{"path": "a.jpg", "source": "s3://source/media/a.jpg"}"#, "not both"),
    ];
    for (bad, why) in cases {
        let manifest = dir.path().join("m.jsonl");
        std::fs::write(&manifest, format!("{header}\n{{\"source\": \"a.jpg\"}}\n{bad}\n")).unwrap();
        let output = run(&filespin, &bucket, &manifest, &[]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("line 3"), "{bad}: the error names the line: {stderr}");
        assert!(stderr.contains(why), "{bad}: the error says {why:?}: {stderr}");
    }
    assert_eq!(filespin.emulator.stats().api_requests, 0, "FileSpin was asked nothing");
    assert_eq!(bucket.bucket.stats().requests, 0, "the bucket was asked nothing");
}

#[test]
fn an_http_url_cannot_be_scanned() {
    let web = RemoteWeb::start();
    web.web.write_file("files/a.jpg", b"a").unwrap();
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}/files/", web.web.url());
    let output = scan(&filespin, &bucket, dir.path(), &prefix, &[]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no listing"), "{stderr}");
    assert!(!dir.path().join("m.jsonl").exists(), "no manifest written");
    assert_eq!(web.web.stats().requests, 0);
}

// Remote scan with custom metadata -------------------------------------------------------------------

#[test]
fn scan_gives_remote_objects_their_data_from_a_csv() {
    let bucket = RemoteBucket::start();
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<(String, usize)> = ["meta/photos/a.jpg", "meta/photos/b b.jpg", "meta/docs/c.pdf"]
        .iter()
        .map(|k| (k.to_string(), 1_000))
        .collect();
    put_objects(&bucket, &specs, 12);
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "path,title,owner\nphotos/a.jpg,Sunset,ann\nphotos/b b.jpg,Beach,bob\n").unwrap();

    let output =
        scan(&filespin, &bucket, dir.path(), "s3://source/meta", &["--metadata-csv", csv.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let manifest = dir.path().join("m.jsonl");
    let lines = manifest_lines(&manifest);
    let data: HashMap<&str, &serde_json::Value> =
        lines[1..].iter().map(|l| (l["source"].as_str().unwrap(), &l["data"])).collect();
    assert_eq!(data["photos/a.jpg"], &serde_json::json!({"title": "Sunset", "owner": "ann"}));
    assert_eq!(data["photos/b b.jpg"], &serde_json::json!({"title": "Beach", "owner": "bob"}));
    assert!(data["docs/c.pdf"].is_null());

    let report = dir.path().join("r.jsonl");
    let output = run(&filespin, &bucket, &manifest, &["--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let lines = report_by_id(&report);
    for (id, title) in [("photos/a.jpg", "Sunset"), ("photos/b b.jpg", "Beach")] {
        assert_eq!(lines[id]["metadata_set"], true, "{}", lines[id]);
        let asset = lines[id]["asset_id"].as_str().unwrap();
        let data = filespin.emulator.asset_data(asset).expect("registered");
        assert_eq!(data["title"], title, "{data}");
    }
}

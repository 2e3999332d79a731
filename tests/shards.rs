//! A batch split between workers (`--shard I/N`, or `--shards N` with Kubernetes' JOB_COMPLETION_INDEX):
//! four processes run at once against one FileSpin, one is killed with SIGKILL halfway and started
//! again, and together they register every entry exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{LocalFileSpin, assert_exactly_one_asset_per_entry, read_report, stderr_of, stdout_of};
use spinlift::Shard;
use spinlift::sample::{SampleSet, SampleSpec};

const SHARDS: u32 = 4;

fn spawn_shard(
    filespin: &LocalFileSpin,
    set: &SampleSet,
    index: u32,
    report: &std::path::Path,
) -> std::process::Child {
    filespin
        .spinlift_process()
        .args(["run", "--quiet", "--concurrency", "2", "--shards", &SHARDS.to_string(), "--report"])
        .arg(report)
        .arg(&set.manifest)
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .spawn()
        .expect("spinlift starts")
}

/// Registrations so far of the files of `shard`, by the file name FileSpin was given.
fn registered_in(filespin: &LocalFileSpin, names: &HashMap<String, u32>, shard: u32) -> usize {
    filespin
        .emulator
        .registrations()
        .iter()
        .filter(|r| names.get(r.key.rsplit("original__").next().unwrap()) == Some(&shard))
        .count()
}

#[test]
fn four_shards_one_killed_and_restarted_register_every_entry_exactly_once() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SampleSpec::mixed(400, 7);
    for s in spec.sizes.iter_mut() {
        *s %= 48 * 1024;
    }
    let set = SampleSet::write(dir.path(), &spec).unwrap();
    // Each file's shard (by its id), found by its name (the sample's file names are unique).
    let names: HashMap<String, u32> = set
        .files
        .iter()
        .map(|f| (f.path.rsplit('/').next().unwrap().to_owned(), Shard::of(&f.id, SHARDS)))
        .collect();
    let per_shard = |i: u32| names.values().filter(|&&s| s == i).count();
    for i in 0..SHARDS {
        assert!(
            per_shard(i) > 60,
            "shard {i} has only {} of 400 entries: the hash does not spread",
            per_shard(i)
        );
    }

    let report = dir.path().join("report.jsonl");
    let mut workers: Vec<_> = (0..SHARDS).map(|i| spawn_shard(&filespin, &set, i, &report)).collect();
    // Shard 2 is killed once a fifth of its entries are registered, while the others go on.
    let victim = 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    while registered_in(&filespin, &names, victim) < per_shard(victim) / 5 {
        assert!(
            workers[victim as usize].try_wait().unwrap().is_none(),
            "shard {victim} finished before the kill"
        );
        assert!(Instant::now() < deadline, "shard {victim} made no progress for two minutes");
        std::thread::sleep(Duration::from_millis(1));
    }
    workers[victim as usize].kill().expect("kill -9");
    workers[victim as usize].wait().unwrap();
    let at_kill = registered_in(&filespin, &names, victim);
    assert!(at_kill < per_shard(victim), "the kill landed after shard {victim} had finished");
    for (i, worker) in workers.iter_mut().enumerate() {
        if i as u32 != victim {
            assert_eq!(worker.wait().unwrap().code(), Some(0), "shard {i}");
        }
    }
    // The rescheduled worker: the same command, the same index.
    let restarted = spawn_shard(&filespin, &set, victim, &report).wait_with_output().unwrap();
    assert_eq!(restarted.status.code(), Some(0));

    // One checkpoint and one report per shard; each report holds exactly its shard's entries, and
    // together they are the manifest.
    let mut seen = HashSet::new();
    for i in 0..SHARDS {
        let tag = format!("shard-{i}-of-{SHARDS}");
        let checkpoint = set.manifest.with_file_name(format!("manifest.json.{tag}.checkpoint"));
        assert!(checkpoint.exists(), "{} missing", checkpoint.display());
        let lines = read_report(&dir.path().join(format!("report.{tag}.jsonl")));
        assert_eq!(lines.len(), per_shard(i), "shard {i}'s report");
        for line in lines {
            let id = line["id"].as_str().unwrap().to_owned();
            assert_eq!(Shard::of(&id, SHARDS), i, "{id} reported by shard {i}");
            assert_eq!(line["status"], "registered", "{line}");
            assert!(seen.insert(id.clone()), "{id} reported by two shards");
        }
    }
    assert_eq!(seen.len(), set.files.len(), "the shards' reports together are the manifest");

    // One view over the fleet: the merged report and status.
    let merged = dir.path().join("merged.jsonl");
    let output = filespin
        .spinlift()
        .args(["report", "--shards", "4", "-o"])
        .arg(&merged)
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_exactly_one_asset_per_entry(&filespin, &set, &merged);
    let status = filespin.spinlift().args(["status", "--shards", "4"]).arg(&set.manifest).output().unwrap();
    let text = stdout_of(&status);
    assert!(text.contains(&format!("{0} entries: {0} registered", set.files.len())), "{text}");
    assert_eq!(text.matches("checkpoint: ").count(), 4, "{text}");

    // The same batch run without shards, or in another number of them, would upload every entry again:
    // refused, saying what to do.
    let registered = filespin.emulator.stats().registered;
    for args in [vec!["run", "-q"], vec!["run", "-q", "--shard", "0/3"], vec!["status"]] {
        let output = filespin.spinlift().args(&args).arg(&set.manifest).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr_of(&output));
        assert!(
            stderr_of(&output).contains("run in 4 shards") || stderr_of(&output).contains("in shards"),
            "{args:?}: {}",
            stderr_of(&output)
        );
    }
    assert_eq!(filespin.emulator.stats().registered, registered, "nothing uploaded again");
}

#[test]
fn shards_without_a_job_index_is_refused_with_what_to_do() {
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(4, 1)).unwrap();
    let output = filespin
        .spinlift()
        .args(["run", "--shards", "4"])
        .arg(&set.manifest)
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr_of(&output);
    assert!(err.contains("JOB_COMPLETION_INDEX") && err.contains("--shard I/4"), "{err}");
    let output = filespin.spinlift().args(["run", "--shard", "4/4"]).arg(&set.manifest).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("numbered 0 to 3"), "{}", stderr_of(&output));
    assert!(filespin.emulator.registrations().is_empty());
}

#[test]
fn a_shard_with_no_entries_of_its_own_finishes_at_once() {
    // Two entries over eight shards: most shards are empty, which must be a success, not an error.
    let filespin = LocalFileSpin::start();
    let dir = tempfile::tempdir().unwrap();
    let set = SampleSet::write(dir.path(), &SampleSpec::mixed(2, 3)).unwrap();
    let shards: HashSet<u32> = set.files.iter().map(|f| Shard::of(&f.id, 8)).collect();
    let empty = (0..8).find(|i| !shards.contains(i)).unwrap();
    let output = filespin
        .spinlift()
        .args(["run", "-q", "--shard", &format!("{empty}/8")])
        .arg(&set.manifest)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("0 entries of the manifest"), "{}", stderr_of(&output));
    assert!(filespin.emulator.registrations().is_empty());
}

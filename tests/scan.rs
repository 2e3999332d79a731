//! A user turns a directory tree into a manifest with `spinlift scan`, then uploads it.

mod common;

use common::{LocalFileSpin, stderr_of, stdout_of};

#[test]
fn scan_then_run_uploads_the_tree_the_user_chose() {
    let filespin = LocalFileSpin::start();
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("albums/2024")).unwrap();
    std::fs::create_dir_all(t.join(".cache")).unwrap();
    std::fs::write(t.join("a.jpg"), b"a").unwrap();
    std::fs::write(t.join("albums/2024/b.jpg"), b"bb").unwrap();
    std::fs::write(t.join("albums/notes.txt"), b"skip me").unwrap();
    std::fs::write(t.join(".cache/c.jpg"), b"hidden dir").unwrap();
    std::fs::write(t.join(".d.jpg"), b"hidden file").unwrap();
    std::fs::write(t.join("empty.jpg"), b"").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(t.join("a.jpg"), t.join("link.jpg")).unwrap();
    let out = tempfile::tempdir().unwrap();

    for name in ["m.json", "m.jsonl"] {
        let manifest = out.path().join(name);
        let scan = filespin
            .spinlift()
            .arg("scan")
            .arg(t)
            .arg("-o")
            .arg(&manifest)
            .args(["--exclude", "*.txt"])
            .output()
            .unwrap();
        assert_eq!(scan.status.code(), Some(0), "{}", stderr_of(&scan));
        let text = stdout_of(&scan);
        assert!(text.contains("3 files"), "{text}");
        assert!(text.contains("skipped 1 filtered out") && text.contains("skipped 2 hidden"), "{text}");
        #[cfg(unix)]
        assert!(text.contains("skipped 1 symbolic links"), "{text}");

        let run = filespin.spinlift().args(["run", "-q"]).arg(&manifest).output().unwrap();
        assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
    }
    // Each manifest has its own checkpoint, so each run uploaded the three chosen files once.
    let mut names: Vec<String> = filespin
        .emulator
        .registrations()
        .iter()
        .map(|r| r.key.rsplit("__").next().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.jpg", "a.jpg", "b.jpg", "b.jpg", "empty.jpg", "empty.jpg"]);
}

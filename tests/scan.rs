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

#[test]
fn globs_follow_gitignore_rules_and_a_manifest_written_inside_the_tree_does_not_list_itself() {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    for file in ["photos/a.jpg", "photos/2023/b.jpg", "docs/x.tmp", "docs/sub/y.tmp", "docs/z.txt"] {
        std::fs::create_dir_all(t.join(file).parent().unwrap()).unwrap();
        std::fs::write(t.join(file), file).unwrap();
    }
    let listed = |args: &[&str], output: &str| -> Vec<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"))
            .current_dir(t)
            .args(["scan", ".", "-o", output])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(t.join(output)).unwrap();
        std::fs::remove_file(t.join(output)).unwrap();
        let mut paths: Vec<String> = text
            .lines()
            .skip(1)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].as_str().unwrap().to_owned()
            })
            .collect();
        paths.sort();
        paths
    };
    // `*` stays within one directory; `**` crosses them.
    assert_eq!(listed(&["--include", "photos/*"], "m1.jsonl"), ["photos/a.jpg"]);
    assert_eq!(listed(&["--include", "photos/**"], "m2.jsonl"), ["photos/2023/b.jpg", "photos/a.jpg"]);
    // A glob without '/' matches a name at any depth; the manifest written into the tree is not listed.
    assert_eq!(
        listed(&["--exclude", "*.tmp"], "m3.jsonl"),
        ["docs/z.txt", "photos/2023/b.jpg", "photos/a.jpg"]
    );
}

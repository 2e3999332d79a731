//! A user gives each scanned file its FileSpin custom metadata (`data`): from sidecar JSON files
//! (`spinlift scan --sidecars`), from a CSV keyed by path (`--metadata-csv`), or both.

mod common;

use std::path::Path;

use common::{stderr_of, stdout_of};
use serde_json::{Value, json};

/// A tree of files: `(relative path, contents)`.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

/// `spinlift scan DIR -o OUT ARGS...`, run from `cwd`.
fn scan(cwd: &Path, dir: &str, out: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"))
        .current_dir(cwd)
        .args(["scan", dir, "-o"])
        .arg(out)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The manifest's entries (JSON Lines or JSON), by path.
fn entries(manifest: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(manifest).expect("the manifest is written");
    if manifest.extension().is_some_and(|e| e == "json") {
        let doc: Value = serde_json::from_str(&text).expect("the manifest is JSON");
        doc["assets"].as_array().unwrap().clone()
    } else {
        text.lines().skip(1).map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
    }
}

fn paths(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["path"].as_str().unwrap()).collect()
}

fn data_of<'a>(entries: &'a [Value], path: &str) -> &'a Value {
    &entries.iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("no entry {path}"))["data"]
}

#[test]
fn sidecars_give_each_file_its_data_and_are_not_listed() {
    let t = tree(&[
        // An Update Data request, as FileSpin Teleport reads them.
        ("photos/a.jpg", "a"),
        (
            "photos/a.json",
            r#"{"data": {"title": "Sunset", "tags": ["beach", "sea"], "rating": 5}, "mode": "APPEND"}"#,
        ),
        // The data object itself.
        ("photos/b.png", "b"),
        ("photos/b.json", r#"{"title": "Harbour", "filespin_search_txt": "B-1"}"#),
        ("photos/c.jpg", "no sidecar"),
        // A file without an extension: its sidecar is its name with .json.
        ("notes", "n"),
        ("notes.json", r#"{"data": {"kind": "text"}}"#),
        // A sidecar seen before a subdirectory is walked, its file after.
        ("photos/k.json", r#"{"data": {"k": "after the subdirectory"}}"#),
        ("photos/k.k/inner.jpg", "i"),
        ("photos/k.png", "k"),
        // The sidecar of no file: not listed, and warned about.
        ("photos/lost.json", r#"{"data": {"x": "y"}}"#),
    ]);
    let out = tempfile::tempdir().unwrap();
    for name in ["m.jsonl", "m.json"] {
        let manifest = out.path().join(name);
        let scanned = scan(t.path(), ".", &manifest, &["--sidecars"]);
        assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
        let e = entries(&manifest);
        assert_eq!(
            paths(&e),
            ["notes", "photos/a.jpg", "photos/b.png", "photos/c.jpg", "photos/k.k/inner.jpg", "photos/k.png"],
            "{name}"
        );
        assert_eq!(
            data_of(&e, "photos/a.jpg"),
            &json!({"title": "Sunset", "tags": ["beach", "sea"], "rating": 5})
        );
        assert_eq!(data_of(&e, "photos/b.png"), &json!({"title": "Harbour", "filespin_search_txt": "B-1"}));
        assert_eq!(data_of(&e, "notes"), &json!({"kind": "text"}));
        assert_eq!(data_of(&e, "photos/k.png"), &json!({"k": "after the subdirectory"}));
        assert!(e[3].get("data").is_none(), "a file without a sidecar has no data: {}", e[3]);
        // The existing fields are still there, and `data` comes after them.
        let text = std::fs::read_to_string(&manifest).unwrap();
        let line = text.lines().find(|l| l.contains("photos/a.jpg")).unwrap();
        assert!(line.find("\"size\"").unwrap() < line.find("\"data\"").unwrap(), "{line}");
        assert_eq!(e[1]["size"], 1);

        let stderr = stderr_of(&scanned);
        assert!(stderr.contains("warning: 1 .json files are the sidecar of no listed file"), "{stderr}");
        assert!(stderr.contains("./photos/lost.json"), "{stderr}");
        assert!(
            stdout_of(&scanned).contains("4 files with data: 4 with a sidecar"),
            "{}",
            stdout_of(&scanned)
        );
    }
    // spinlift reads back the manifest it wrote.
    let dry = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"))
        .args(["run", "--dry-run"])
        .arg(out.path().join("m.jsonl"))
        .env_remove("FILESPIN_API_KEY")
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}{}", stdout_of(&dry), stderr_of(&dry));

    // Without --sidecars, the .json files are files like any other, and nothing has data.
    let manifest = out.path().join("plain.jsonl");
    let plain = scan(t.path(), ".", &manifest, &[]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr_of(&plain));
    let e = entries(&manifest);
    assert_eq!(e.len(), 11);
    assert!(e.iter().all(|e| e.get("data").is_none()));
}

#[test]
fn a_sidecar_asking_for_replace_is_warned_about_and_its_schema_must_be_the_manifests() {
    let t = tree(&[
        ("a.jpg", "a"),
        ("a.json", r#"{"data": {"k": "v"}, "mode": "REPLACE", "data_schema_id": 3}"#),
    ]);
    let out = tempfile::tempdir().unwrap();
    let manifest = out.path().join("m.jsonl");

    // The sidecar names schema 3, the manifest none: the user is told which flag to pass.
    let refused = scan(t.path(), ".", &manifest, &["--sidecars"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = stderr_of(&refused);
    assert!(stderr.contains("a.json") && stderr.contains("--data-schema-id 3"), "{stderr}");
    assert!(!manifest.exists());

    let ok = scan(t.path(), ".", &manifest, &["--sidecars", "--data-schema-id", "3"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr_of(&ok));
    let stderr = stderr_of(&ok);
    assert!(
        stderr.contains("1 sidecars ask for \"mode\": \"REPLACE\"") && stderr.contains("a.json"),
        "{stderr}"
    );
    let header: Value =
        serde_json::from_str(std::fs::read_to_string(&manifest).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(header["data_schema_id"], 3);
    assert_eq!(data_of(&entries(&manifest), "a.jpg"), &json!({"k": "v"}));

    let other = scan(t.path(), ".", &out.path().join("m2.jsonl"), &["--sidecars", "--data-schema-id", "4"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(stderr_of(&other).contains("data_schema_id 3"), "{}", stderr_of(&other));
}

#[test]
fn a_csv_gives_string_data_by_path_and_its_rows_naming_no_file_are_warned_about() {
    let t = tree(&[("photos/a.jpg", "a"), ("photos/b.jpg", "b"), ("photos/c.jpg", "c")]);
    let csv = tempfile::NamedTempFile::with_suffix(".csv").unwrap();
    std::fs::write(
        csv.path(),
        "path,title,code,empty\n\
         photos/a.jpg,\"Sunset, beach\",007,\n\
         ./photos/b.jpg,,42,\n\
         photos/gone.jpg,x,1,\n\
         elsewhere/z.jpg,x,2,\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = out.path().join("m.jsonl");
    let csv_arg = csv.path().to_str().unwrap();
    let scanned = scan(t.path(), ".", &manifest, &["--metadata-csv", csv_arg]);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let e = entries(&manifest);
    assert_eq!(paths(&e), ["photos/a.jpg", "photos/b.jpg", "photos/c.jpg"]);
    // Strings as written (no number guessing); empty cells are left out.
    assert_eq!(data_of(&e, "photos/a.jpg"), &json!({"title": "Sunset, beach", "code": "007"}));
    assert_eq!(data_of(&e, "photos/b.jpg"), &json!({"code": "42"}));
    assert!(e[2].get("data").is_none());
    let stderr = stderr_of(&scanned);
    assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
    assert!(stderr.contains("2 rows of") && stderr.contains("name no listed file"), "{stderr}");
    assert!(
        stderr.contains("\"photos/gone.jpg\" (line 4)") && stderr.contains("\"elsewhere/z.jpg\" (line 5)")
    );

    // The paths may be in a column of another name.
    std::fs::write(csv.path(), "title,file\nA,photos/a.jpg\n").unwrap();
    let keyed = scan(t.path(), ".", &manifest, &["--metadata-csv", csv_arg, "--metadata-csv-key", "file"]);
    assert_eq!(keyed.status.code(), Some(0), "{}", stderr_of(&keyed));
    assert_eq!(data_of(&entries(&manifest), "photos/a.jpg"), &json!({"title": "A"}));
    assert!(stderr_of(&keyed).is_empty(), "{}", stderr_of(&keyed));
}

#[test]
fn sidecar_and_csv_are_merged_and_the_sidecars_keys_win() {
    let t = tree(&[
        ("a.jpg", "a"),
        ("a.json", r#"{"data": {"title": "From the sidecar", "s": "1"}}"#),
        ("b.jpg", "b"),
        ("c.jpg", "c"),
        ("c.json", r#"{"only": "sidecar"}"#),
    ]);
    let csv = tempfile::NamedTempFile::with_suffix(".csv").unwrap();
    std::fs::write(csv.path(), "path,title,owner\na.jpg,From the CSV,ann\nb.jpg,B,bob\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = out.path().join("m.jsonl");
    let args = ["--sidecars", "--metadata-csv", csv.path().to_str().unwrap()];
    let scanned = scan(t.path(), ".", &manifest, &args);
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let e = entries(&manifest);
    assert_eq!(paths(&e), ["a.jpg", "b.jpg", "c.jpg"]);
    assert_eq!(data_of(&e, "a.jpg"), &json!({"title": "From the sidecar", "s": "1", "owner": "ann"}));
    assert_eq!(data_of(&e, "b.jpg"), &json!({"title": "B", "owner": "bob"}));
    assert_eq!(data_of(&e, "c.jpg"), &json!({"only": "sidecar"}));
    assert!(stderr_of(&scanned).is_empty(), "{}", stderr_of(&scanned));
    assert!(stdout_of(&scanned).contains("3 files with data: 2 with a sidecar, 2 with a row in"));
}

#[test]
fn bad_metadata_stops_the_scan_naming_the_file_and_writes_no_manifest() {
    let long = "x".repeat(2001);
    let sidecars: Vec<(&str, String, &str)> = vec![
        ("not JSON", r#"{"data": {"title": "unfinished"#.to_owned(), "not valid JSON"),
        ("not an object", "[1, 2]".to_owned(), "not a JSON object"),
        (
            "data not an object",
            r#"{"data": "a string", "mode": "APPEND"}"#.to_owned(),
            "must be a JSON object",
        ),
        ("too long", format!(r#"{{"data": {{"t": "{long}"}}}}"#), "at most 2000"),
        ("too long, plain", format!(r#"{{"t": "{long}"}}"#), "at most 2000"),
        ("reserved key", r#"{"data": {"_filespin_owner": "me"}}"#.to_owned(), "reserved by FileSpin"),
        ("reserved key, plain", r#"{"_filespin": 1}"#.to_owned(), "reserved by FileSpin"),
        ("unknown mode", r#"{"data": {}, "mode": "MERGE"}"#.to_owned(), "\"APPEND\" or \"REPLACE\""),
        ("data beside other keys", r#"{"data": {}, "title": "t"}"#.to_owned(), "inside `data`"),
    ];
    for (case, sidecar, problem) in &sidecars {
        let t = tree(&[("ok.jpg", "ok"), ("ok.json", r#"{"a": "b"}"#), ("photos/x.jpg", "x")]);
        std::fs::write(t.path().join("photos/x.json"), sidecar).unwrap();
        let out = tempfile::tempdir().unwrap();
        let manifest = out.path().join("m.jsonl");
        // An earlier manifest at the same place is left as it was.
        std::fs::write(&manifest, "earlier").unwrap();
        let scanned = scan(t.path(), ".", &manifest, &["--sidecars"]);
        assert_eq!(scanned.status.code(), Some(2), "{case}: {}", stderr_of(&scanned));
        let stderr = stderr_of(&scanned);
        assert!(stderr.contains("sidecar ./photos/x.json:") && stderr.contains(problem), "{case}: {stderr}");
        assert_eq!(std::fs::read_to_string(&manifest).unwrap(), "earlier", "{case}");
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["m.jsonl"], "{case}: nothing else is left behind");
    }

    let csvs: Vec<(&str, String, &str)> = vec![
        (
            "a path twice",
            "path,t\nphotos/x.jpg,1\nok.jpg,2\nphotos/x.jpg,3\n".to_owned(),
            "on line 2 and on line 4",
        ),
        ("reserved column", "path,_filespin_x\nok.jpg,1\n".to_owned(), "reserved by FileSpin"),
        ("too long", format!("path,t\nok.jpg,1\nphotos/x.jpg,{long}\n"), "line 3 (photos/x.jpg)"),
        ("no path column", "file,t\nok.jpg,1\n".to_owned(), "no column \"path\""),
        ("ragged row", "path,t\nok.jpg,1,2\n".to_owned(), "line: 2"),
    ];
    for (case, text, problem) in &csvs {
        let t = tree(&[("ok.jpg", "ok"), ("photos/x.jpg", "x")]);
        let out = tempfile::tempdir().unwrap();
        let csv = out.path().join("meta.csv");
        std::fs::write(&csv, text).unwrap();
        let manifest = out.path().join("m.jsonl");
        let scanned = scan(t.path(), ".", &manifest, &["--metadata-csv", csv.to_str().unwrap()]);
        assert_eq!(scanned.status.code(), Some(2), "{case}: {}", stderr_of(&scanned));
        let stderr = stderr_of(&scanned);
        assert!(stderr.contains("meta.csv") && stderr.contains(problem), "{case}: {stderr}");
        assert!(!manifest.exists(), "{case}");
    }

    // Each source fits alone, but not together: both are named.
    let half = "y".repeat(1200);
    let t = tree(&[("a.jpg", "a"), ("a.json", &format!(r#"{{"data": {{"s": "{half}"}}}}"#))]);
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("meta.csv");
    std::fs::write(&csv, format!("path,c\na.jpg,{half}\n")).unwrap();
    let manifest = out.path().join("m.jsonl");
    let scanned = scan(t.path(), ".", &manifest, &["--sidecars", "--metadata-csv", csv.to_str().unwrap()]);
    assert_eq!(scanned.status.code(), Some(2));
    let stderr = stderr_of(&scanned);
    assert!(
        stderr.contains("a.jpg") && stderr.contains("meta.csv line 2") && stderr.contains("./a.json"),
        "{stderr}"
    );
    assert!(stderr.contains("at most 2000"), "{stderr}");
    assert!(!manifest.exists());
}

//! `Manifest::parse` on any text, as JSON and as JSON Lines.
//!
//! Properties checked on every input:
//! - it never panics (and never hangs: libFuzzer's `-timeout`);
//! - `Ok`: entries are non-empty, ids are unique and non-empty, filenames are non-empty names without
//!   `/`, and no entry's path is outside the root: a relative path (or an absolute one with the root
//!   stripped) never climbs above the root with `..` and names something below it; a JSON Lines entry's
//!   position names the line it was read from;
//! - `Ok` as JSON Lines: the same lines wrapped into one JSON document (`assets: [line, …]`, the
//!   header's fields at the top) read as the same entries and root;
//! - `Err`: the message is non-empty, and a syntax error names a line (1-based, inside the text).
#![no_main]

use std::collections::HashSet;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use spinlift_manifest::{Format, Manifest, ManifestError, Position};

const DIR: &str = "/fuzz/manifests";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text, Format::Json);
    let lines = check(&text, Format::JsonLines);
    if let Some(lines) = &lines {
        same_as_json(&text, lines);
    }
});

/// Parses `text` as `format` and checks what comes back; the manifest, if it was read.
fn check(text: &str, format: Format) -> Option<Manifest> {
    match Manifest::parse(text, format, Path::new(DIR)) {
        Ok(manifest) => {
            check_manifest(text, format, &manifest);
            Some(manifest)
        }
        Err(error) => {
            check_error(text, &error);
            None
        }
    }
}

fn check_manifest(text: &str, format: Format, manifest: &Manifest) {
    assert!(!manifest.entries.is_empty(), "a manifest read without entries");
    let mut ids = HashSet::new();
    let lines: Vec<&str> = text.lines().collect();
    for (index, entry) in manifest.entries.iter().enumerate() {
        assert!(!entry.id().is_empty(), "entry {index} has an empty id");
        assert!(ids.insert(entry.id()), "duplicate id {:?}", entry.id());
        assert!(
            !entry.filename().is_empty() && !entry.filename().contains('/'),
            "entry {index}: filename {:?}",
            entry.filename()
        );
        assert!(
            stays_inside(&manifest.root, entry.path()),
            "entry {index}: path {:?} leaves the root {:?}",
            entry.path(),
            manifest.root
        );
        match (&entry.position(), format) {
            (Position::Entry { index: at, line: None }, Format::Json) => assert_eq!(*at, index),
            (Position::Entry { index: at, line: Some(line) }, Format::JsonLines) => {
                assert_eq!(*at, index);
                // A line is read without the whitespace around it (Unicode's, as `str::trim` has it).
                let source = lines.get(line - 1).expect("the entry's line exists").trim();
                let value: serde_json::Value = serde_json::from_str(source).expect("its line is JSON");
                // Known, reported: serde also reads an entry from an array of its fields in order
                // (`["a.jpg", "id"]`), which the README does not document.
                let path = if value.is_array() { &value[0] } else { &value["path"] };
                assert_eq!(path.as_str(), Some(entry.path()), "line {line}");
            }
            (position, format) => panic!("entry {index} of a {format:?} manifest at {position:?}"),
        }
    }
}

/// Whether `path`, taken relative to `root` the way the manifest documents it, names something strictly
/// below `root` without ever climbing above it. Written independently of the crate's `escapes_root`.
fn stays_inside(root: &Path, path: &str) -> bool {
    let path = Path::new(path);
    let relative = if path.is_absolute() {
        let mut inside = path.components();
        for part in root.components() {
            if inside.next() != Some(part) {
                return false;
            }
        }
        inside.as_path().to_path_buf()
    } else {
        path.to_path_buf()
    };
    let mut depth = 0usize;
    for part in relative.components() {
        depth = match part {
            Component::Normal(_) => depth + 1,
            Component::CurDir => depth,
            Component::ParentDir if depth > 0 => depth - 1,
            _ => return false,
        };
    }
    depth > 0
}

fn check_error(text: &str, error: &ManifestError) {
    let message = error.to_string();
    assert!(!message.trim().is_empty(), "an error without a message: {error:?}");
    if let ManifestError::Syntax { position, message: what, .. } = error {
        assert!(!what.trim().is_empty(), "a syntax error without a message: {error:?}");
        let Position::LineColumn { line, .. } = position else {
            panic!("a syntax error without a line: {error:?}");
        };
        // serde_json counts `\n`; an error at the very end of text ending in `\n` is on the line after.
        let last_line = text.matches('\n').count() + 1;
        assert!((1..=last_line).contains(line), "line {line} of {last_line}: {error:?}");
        assert!(message.contains(&format!("line {line}")), "{message}");
    }
}

/// A JSON Lines manifest that was read says the same as the JSON document made of its lines.
fn same_as_json(text: &str, lines_manifest: &Manifest) {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty()).peekable();
    let first = lines.peek().copied().unwrap_or_default();
    let header = match serde_json::from_str::<serde_json::Value>(first) {
        Ok(serde_json::Value::Object(o)) if o.contains_key("version") && !o.contains_key("path") => {
            lines.next();
            // The header's own text, its closing brace opened up for `assets`.
            first.strip_suffix('}').expect("a JSON object ends with }").to_owned() + ","
        }
        _ => r#"{"version":1,"#.to_owned(),
    };
    let assets: Vec<&str> = lines.collect();
    let document = format!("{header}\"assets\":[{}]}}", assets.join(","));
    let json = Manifest::parse(&document, Format::Json, Path::new(DIR))
        .unwrap_or_else(|e| panic!("read as JSON Lines but not as JSON ({e}): {document}"));
    assert_eq!(json.root, lines_manifest.root);
    let summary = |m: &Manifest| -> Vec<(String, String, String)> {
        m.entries.iter().map(|e| (e.id().to_owned(), e.path().to_owned(), e.filename().to_owned())).collect()
    };
    assert_eq!(summary(&json), summary(lines_manifest), "{document}");
}

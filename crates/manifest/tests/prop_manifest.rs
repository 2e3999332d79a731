//! Properties of reading a manifest, for any input a user (or someone else's script) may hand us: valid
//! manifests read back as written, in JSON and JSON Lines alike; each broken rule is refused, naming
//! the entry or line; and no text makes the parser panic or let a path out of the root.
//!
//! The same properties are fuzzed by `fuzz/fuzz_targets/manifest_parse.rs` (`cargo +nightly fuzz run
//! manifest_parse`, see fuzz/README.md).

use std::collections::HashSet;
use std::path::{Component, Path};

use proptest::prelude::*;
use serde_json::{Value, json};
use spinlift_manifest::{Format, Manifest, ManifestError, Position, Shard};

const DIR: &str = "/srv/batches";

fn parse(text: &str, format: Format) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, format, Path::new(DIR))
}

/// One asset as a user writes it: a path inside the root, maybe an id, maybe a filename.
#[derive(Debug, Clone)]
struct Asset {
    path: String,
    id: Option<String>,
    filename: Option<String>,
    scanned: bool,
}

impl Asset {
    fn to_json(&self) -> Value {
        let mut object = json!({"path": self.path});
        if let Some(id) = &self.id {
            object["id"] = json!(id);
        }
        if let Some(filename) = &self.filename {
            object["filename"] = json!(filename);
        }
        if self.scanned {
            object["size"] = json!(1_234_567);
            object["mtime_ms"] = json!(1_715_787_782_000i64);
        }
        object
    }

    fn expected_id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.path)
    }

    fn expected_filename(&self) -> &str {
        self.filename.as_deref().unwrap_or_else(|| self.path.rsplit('/').next().unwrap())
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,8}(\\.[a-z]{3})?",
        "[a-z]{1,4} [a-z]{1,4}\\.jpg",
        Just("çé😀.jpg".to_owned()),
        Just("IMG_0001.JPG".to_owned()),
    ]
}

/// Stands for the manifest's root in a generated path, until [`under_root`] knows the root.
const ROOT: &str = "@ROOT@";

/// A path that stays inside the root, sometimes through `.` or a `..` that climbs back down, or
/// absolute (starting with [`ROOT`]).
fn inside_path() -> impl Strategy<Value = String> {
    (proptest::collection::vec(name(), 0..3), name(), 0..4u8).prop_map(|(dirs, file, style)| {
        let mut parts = dirs;
        match style {
            1 => parts.insert(0, ".".to_owned()),
            2 if !parts.is_empty() => parts.push(format!("../{}", parts[parts.len() - 1])),
            3 => parts.insert(0, ROOT.to_owned()),
            _ => {}
        }
        parts.push(file);
        parts.join("/")
    })
}

fn asset() -> impl Strategy<Value = Asset> {
    (inside_path(), proptest::option::of("[a-z0-9-]{1,6}"), proptest::option::of(name()), any::<bool>())
        .prop_map(|(path, id, filename, scanned)| Asset { path, id, filename, scanned })
}

/// Assets whose ids (given or defaulted to the path) are unique; absolute paths start with [`ROOT`].
fn assets() -> impl Strategy<Value = Vec<Asset>> {
    proptest::collection::vec(asset(), 1..12).prop_map(|assets| {
        let mut seen = HashSet::new();
        assets.into_iter().filter(|a| seen.insert(a.expected_id().to_owned())).collect()
    })
}

/// The root a manifest with this header has.
fn root_of(header: &Option<Value>) -> std::path::PathBuf {
    let root = header.as_ref().and_then(|h| h["root"].as_str()).unwrap_or("");
    Path::new(DIR).join(root)
}

/// `assets` with [`ROOT`] replaced by `root`: absolute paths inside the root.
fn under_root(mut assets: Vec<Asset>, root: &Path) -> Vec<Asset> {
    let root = root.to_str().unwrap().trim_end_matches('/');
    for asset in &mut assets {
        asset.path = asset.path.replace(ROOT, root);
    }
    assets
}

/// A header and assets that belong together.
fn manifest() -> impl Strategy<Value = (Option<Value>, Vec<Asset>)> {
    (header(), assets()).prop_map(|(header, assets)| {
        let root = root_of(&header);
        (header, under_root(assets, &root))
    })
}

/// The manifest's top-level fields other than `assets`.
fn header() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of((proptest::option::of("[a-z]{1,6}|/data/[a-z]{1,6}"), any::<bool>()).prop_map(
        |(root, service_data)| {
            let mut header = json!({"version": 1});
            if let Some(root) = root {
                header["root"] = json!(root);
            }
            if service_data {
                header["service_data"] = json!({"app": "catalogue", "deployment_data": {"client": "acme"}});
            }
            header
        },
    ))
}

fn json_text(header: &Option<Value>, assets: &[Asset], pretty: bool) -> String {
    let mut document = header.clone().unwrap_or_else(|| json!({"version": 1}));
    document["assets"] = assets.iter().map(Asset::to_json).collect();
    if pretty { serde_json::to_string_pretty(&document).unwrap() } else { document.to_string() }
}

/// JSON Lines, with blank lines where `blank` says and `\r\n` endings when `crlf`.
fn lines_text(header: &Option<Value>, assets: &[Asset], blank: &[bool], crlf: bool) -> String {
    let end = if crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    if let Some(header) = header {
        text += &(header.to_string() + end);
    }
    for (i, asset) in assets.iter().enumerate() {
        if blank.get(i).copied().unwrap_or(false) {
            text += end;
        }
        text += &(asset.to_json().to_string() + end);
    }
    text
}

/// The 1-based line of each asset in `text` (the lines that have a `path`).
fn asset_lines(text: &str) -> Vec<usize> {
    let is_asset = |line: &str| serde_json::from_str::<Value>(line).is_ok_and(|v| v.get("path").is_some());
    text.lines().enumerate().filter(|(_, line)| is_asset(line)).map(|(i, _)| i + 1).collect()
}

/// Whether `path` names something strictly below `root` without climbing above it on the way (written
/// independently of the crate's own check).
fn stays_inside(root: &Path, path: &str) -> bool {
    let path = Path::new(path);
    let relative = match path.strip_prefix(root) {
        Ok(rest) if path.is_absolute() => rest,
        _ if path.is_absolute() => return false,
        _ => path,
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

/// What every successfully read manifest promises, whatever it was read from.
fn assert_sound(manifest: &Manifest) -> Result<(), TestCaseError> {
    prop_assert!(!manifest.entries.is_empty());
    let mut ids = HashSet::new();
    for entry in &manifest.entries {
        prop_assert!(!entry.id().is_empty());
        prop_assert!(ids.insert(entry.id().to_owned()), "duplicate id {:?}", entry.id());
        prop_assert!(
            !entry.filename().is_empty() && !entry.filename().contains('/'),
            "{:?}",
            entry.filename()
        );
        prop_assert!(
            stays_inside(&manifest.root, entry.path()),
            "{:?} leaves {:?}",
            entry.path(),
            manifest.root
        );
    }
    Ok(())
}

/// What every refusal promises: a message, and a line for a syntax error.
fn assert_explained(text: &str, error: &ManifestError) -> Result<(), TestCaseError> {
    let message = error.to_string();
    prop_assert!(!message.trim().is_empty(), "{:?}", error);
    if let ManifestError::Syntax { position, .. } = error {
        let Position::LineColumn { line, .. } = position else {
            return Err(TestCaseError::fail(format!("a syntax error without a line: {error:?}")));
        };
        prop_assert!(*line >= 1 && *line <= text.matches('\n').count() + 1, "{}", message);
        prop_assert!(message.contains(&format!("line {line}")), "{}", message);
    }
    Ok(())
}

/// Text that looks like manifests: their punctuation, keys and values, in any order.
fn manifest_like_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just(" ".to_owned()),
        Just(r#""version""#.to_owned()),
        Just(r#""assets""#.to_owned()),
        Just(r#""path""#.to_owned()),
        Just(r#""id""#.to_owned()),
        Just(r#""filename""#.to_owned()),
        Just(r#""root""#.to_owned()),
        Just(r#""service_data""#.to_owned()),
        Just(r#""size""#.to_owned()),
        Just("1".to_owned()),
        Just("-1".to_owned()),
        Just("null".to_owned()),
        Just(r#""..""#.to_owned()),
        Just(r#""/""#.to_owned()),
        Just(r#""a/../../b""#.to_owned()),
        Just(r#""/srv/batches/x""#.to_owned()),
        "\"[a-z./]{0,6}\"",
        "[ -~]{1,3}",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_valid_manifest_reads_back_every_entry_as_written_in_both_formats(
        (header, assets) in manifest(),
        pretty in any::<bool>(),
        blank in proptest::collection::vec(any::<bool>(), 12),
        crlf in any::<bool>(),
    ) {
        let json = parse(&json_text(&header, &assets, pretty), Format::Json).unwrap();
        let lines_text = lines_text(&header, &assets, &blank, crlf);
        let lines = parse(&lines_text, Format::JsonLines).unwrap();
        let asset_lines = asset_lines(&lines_text);

        for manifest in [&json, &lines] {
            assert_sound(manifest)?;
            prop_assert_eq!(manifest.entries.len(), assets.len());
            for (entry, asset) in manifest.entries.iter().zip(&assets) {
                prop_assert_eq!(entry.path(), &asset.path);
                prop_assert_eq!(entry.id(), asset.expected_id());
                prop_assert_eq!(entry.filename(), asset.expected_filename());
            }
            prop_assert_eq!(&manifest.root, &root_of(&header));
            let service_data = header.as_ref().and_then(|h| h.get("service_data").cloned());
            prop_assert_eq!(&manifest.service_data, &service_data);
        }
        for (index, (entry, line)) in lines.entries.iter().zip(&asset_lines).enumerate() {
            prop_assert_eq!(&entry.position(), &Position::Entry { index, line: Some(*line) });
        }
    }

    #[test]
    fn a_path_that_climbs_out_of_the_root_is_refused_naming_its_entry(
        assets in assets(),
        at in any::<prop::sample::Index>(),
        escape in prop_oneof![
            Just("../secret".to_owned()),
            Just("photos/../../secret".to_owned()),
            Just("./a/./../..".to_owned()),
            Just("/etc/passwd".to_owned()),
            Just(format!("{DIR}-other/a.jpg")),
            Just(format!("{DIR}/../a.jpg")),
            Just(".".to_owned()),
            Just("photos/..".to_owned()),
        ],
    ) {
        let index = at.index(assets.len() + 1);
        let mut assets = under_root(assets, Path::new(DIR));
        let escaping =
            Asset { path: escape.clone(), id: Some("escape".into()), filename: None, scanned: false };
        assets.insert(index, escaping);
        for format in [Format::Json, Format::JsonLines] {
            let text = match format {
                Format::Json => json_text(&None, &assets, false),
                Format::JsonLines => lines_text(&None, &assets, &[], false),
            };
            let line = (format == Format::JsonLines).then_some(index + 1);
            match parse(&text, format) {
                Err(ManifestError::Invalid { position, message, .. }) => {
                    prop_assert_eq!(position, Position::Entry { index, line }, "{}", message);
                }
                other => return Err(TestCaseError::fail(format!("{escape:?} in {format:?}: {other:?}"))),
            }
        }
    }

    #[test]
    fn a_second_use_of_an_id_is_refused_naming_the_second_entry(
        assets in assets().prop_filter("two entries", |a| a.len() >= 2),
        pick in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        let (first, second) = {
            let a = pick.0.index(assets.len());
            let b = pick.1.index(assets.len() - 1);
            let b = if b >= a { b + 1 } else { b };
            (a.min(b), a.max(b))
        };
        let mut assets = under_root(assets, Path::new(DIR));
        assets[second].id = Some(assets[first].expected_id().to_owned());
        let text = lines_text(&None, &assets, &[], false);
        match parse(&text, Format::JsonLines) {
            Err(ManifestError::Invalid { position, message, .. }) => {
                prop_assert_eq!(position, Position::Entry { index: second, line: Some(second + 1) });
                prop_assert!(message.contains(&format!("line {}", first + 1)), "{}", message);
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    #[test]
    fn a_line_cut_short_or_misspelt_is_a_syntax_error_naming_that_line(
        (header, assets) in manifest(),
        blank in proptest::collection::vec(any::<bool>(), 12),
        at in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        misspell in any::<bool>(),
    ) {
        let text = lines_text(&header, &assets, &blank, false);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let non_blank: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].is_empty()).collect();
        let damaged = non_blank[at.index(non_blank.len())];
        let line = &mut lines[damaged];
        if misspell {
            *line = line.replacen("{", r#"{"pth":"x","#, 1);
        } else {
            let chars = line.chars().count();
            *line = line.chars().take(1 + cut.index(chars - 1)).collect();
        }
        let text = lines.join("\n") + "\n";
        match parse(&text, Format::JsonLines) {
            Err(error @ ManifestError::Syntax { .. }) => {
                let ManifestError::Syntax { position: Position::LineColumn { line, .. }, .. } = &error else {
                    return Err(TestCaseError::fail(format!("no line: {error:?}")));
                };
                prop_assert_eq!(*line, damaged + 1, "{}", error);
                prop_assert!(error.to_string().contains(&format!("line {}", damaged + 1)), "{}", error);
                if misspell {
                    prop_assert!(error.to_string().contains("pth"), "{}", error);
                }
            }
            other => return Err(TestCaseError::fail(format!("line {}: {other:?}\n{text}", damaged + 1))),
        }
    }

    #[test]
    fn any_text_is_read_soundly_or_refused_with_a_reason(text in manifest_like_text()) {
        for format in [Format::Json, Format::JsonLines] {
            match parse(&text, format) {
                Ok(manifest) => assert_sound(&manifest)?,
                Err(error) => assert_explained(&text, &error)?,
            }
        }
    }

    #[test]
    fn any_unicode_text_is_read_soundly_or_refused_with_a_reason(text in "\\PC{0,200}") {
        for format in [Format::Json, Format::JsonLines] {
            match parse(&text, format) {
                Ok(manifest) => assert_sound(&manifest)?,
                Err(error) => assert_explained(&text, &error)?,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each worker of a fleet loads its shard of the same manifest file: no entry is in two shards, none
    /// is in no shard, and each keeps its place in the file.
    #[test]
    fn the_shards_of_a_manifest_are_disjoint_and_together_are_the_manifest(
        ids in proptest::collection::hash_set("\\PC{1,16}", 1..60),
        count in 1u32..9,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.jsonl");
        let text: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("{}\n", json!({"path": format!("f{i}.jpg"), "id": id})))
            .collect();
        std::fs::write(&path, text).unwrap();
        let whole = Manifest::load(&path).unwrap();
        let mut found: Vec<Option<(u32, Position)>> = vec![None; whole.entries.len()];
        for index in 0..count {
            let shard = Shard::new(index, count).unwrap();
            let part = Manifest::load_shard(&path, shard).unwrap();
            prop_assert_eq!(part.shard, Some(shard));
            for entry in part.entries.iter() {
                prop_assert!(shard.contains(entry.id()));
                let Position::Entry { index: at, .. } = entry.position() else { unreachable!() };
                prop_assert_eq!(whole.entries.at(at), entry, "an entry moved or changed in its shard");
                prop_assert!(found[at].is_none(), "{:?} is in shards {:?} and {}", entry.id(), found[at], index);
                found[at] = Some((index, entry.position()));
            }
        }
        prop_assert!(found.iter().all(Option::is_some), "entries in no shard: {:?}", found);
    }

    #[test]
    fn every_id_is_in_exactly_one_shard(id in "\\PC{0,40}", count in 1u32..64) {
        let owners: Vec<u32> =
            (0..count).filter(|&i| Shard::new(i, count).unwrap().contains(&id)).collect();
        prop_assert_eq!(owners, vec![Shard::of(&id, count)]);
    }
}

use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Format::Json, Path::new("/data/lib"))
}

fn parse_lines(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Format::JsonLines, Path::new("/data/lib"))
}

#[test]
fn defaults_come_from_the_path() {
    let m = parse(r#"{"version":1,"assets":[{"path":"photos/a.jpg"}]}"#).unwrap();
    assert_eq!(m.root, Path::new("/data/lib"));
    assert_eq!(m.entries.at(0).id(), "photos/a.jpg");
    assert_eq!(m.entries.at(0).filename(), "a.jpg");
}

#[test]
fn root_and_service_data_are_read() {
    let m = parse(
        r#"{"version":1,"root":"media","service_data":{"app":"x"},
            "assets":[{"path":"a.jpg","id":"A","filename":"b.jpg"}]}"#,
    )
    .unwrap();
    assert_eq!(m.root, Path::new("/data/lib/media"));
    assert_eq!(m.service_data.unwrap()["app"], "x");
    assert_eq!((m.entries.at(0).id(), m.entries.at(0).filename()), ("A", "b.jpg"));
}

#[test]
fn bad_json_names_line_and_column() {
    let err = parse("{\"version\":1,\n\"assets\": [\n{\"path\": \"a\",}\n]}").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 3, column"), "{text}");
}

#[test]
fn missing_assets_is_named() {
    let err = parse(r#"{"version":1}"#).unwrap_err().to_string();
    assert!(err.contains("missing field `assets`"), "{err}");
}

#[test]
fn unknown_fields_list_the_known_ones() {
    let err = parse(r#"{"version":1,"assets":[{"pth":"a"}]}"#).unwrap_err().to_string();
    assert!(err.contains("unknown field `pth`") && err.contains("`path`"), "{err}");
}

#[test]
fn a_misspelt_field_gets_a_suggestion_and_a_foreign_one_does_not() {
    let err = parse(r#"{"version":1,"assets":[{"pth":"a"}]}"#).unwrap_err().to_string();
    assert!(err.contains("did you mean `path`?"), "{err}");
    let err = parse(r#"{"version":1,"assets":[{"path":"a","fileName":"b"}]}"#).unwrap_err().to_string();
    assert!(err.contains("did you mean `filename`?"), "{err}");
    let err = parse(r#"{"version":1,"servce_data":{},"assets":[{"path":"a"}]}"#).unwrap_err().to_string();
    assert!(err.contains("did you mean `service_data`?"), "{err}");
    let err = parse(r#"{"version":1,"assets":[{"path":"a","colour":"red"}]}"#).unwrap_err().to_string();
    assert!(err.contains("unknown field `colour`") && !err.contains("did you mean"), "{err}");
}

#[test]
fn json_lines_are_read_from_a_reader_line_by_line() {
    let dir = Path::new("/data");
    let text =
        "{\"version\":1,\"root\":\"photos\"}\n\n{\"path\":\"a.jpg\"}\r\n{\"path\":\"b/c.jpg\",\"id\":\"c\"}";
    let m = Manifest::read_lines(std::io::BufReader::with_capacity(7, text.as_bytes()), dir).unwrap();
    assert_eq!(m.root, Path::new("/data/photos"));
    let got: Vec<_> = m.entries.iter().map(|e| (e.id(), e.filename(), e.position().to_string())).collect();
    assert_eq!(
        got,
        [("a.jpg", "a.jpg", "line 3 (entry 0)".to_owned()), ("c", "c.jpg", "line 4 (entry 1)".to_owned())]
    );
}

#[test]
fn of_several_duplicates_the_first_met_is_reported() {
    let err = parse_lines("{\"path\":\"z\"}\n{\"path\":\"a\"}\n{\"path\":\"z\"}\n{\"path\":\"a\"}\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 3 (entry 2)") && err.contains("\"z\"") && err.contains("line 1 (entry 0)"),
        "{err}"
    );
}

#[test]
fn duplicate_ids_name_both_entries() {
    let err = parse(r#"{"version":1,"assets":[{"path":"a","id":"x"},{"path":"b"},{"path":"c","id":"x"}]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("assets[2]") && err.contains("assets[0]") && err.contains("\"x\""), "{err}");
}

#[test]
fn escaping_paths_are_refused() {
    for p in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
        let err = parse(&format!(r#"{{"version":1,"assets":[{{"path":"{p}"}}]}}"#)).unwrap_err().to_string();
        assert!(err.contains("outside the manifest's root"), "{p}: {err}");
    }
}

#[test]
fn empty_and_unsupported_manifests_are_refused() {
    assert!(parse(r#"{"version":1,"assets":[]}"#).unwrap_err().to_string().contains("no assets"));
    assert!(parse(r#"{"version":2,"assets":[{"path":"a"}]}"#).unwrap_err().to_string().contains("version 2"));
    assert!(parse(r#"{"version":1,"service_data":3,"assets":[{"path":"a"}]}"#).is_err());
}

#[test]
fn json_lines_with_and_without_header() {
    let m =
        parse_lines("{\"version\":1,\"root\":\"r\"}\n{\"path\":\"a\"}\n\n{\"path\":\"b\",\"id\":\"B\"}\n")
            .unwrap();
    assert_eq!(m.root, Path::new("/data/lib/r"));
    assert_eq!(m.entries.len(), 2);
    assert_eq!(m.entries.at(1).position(), Position::Entry { index: 1, line: Some(4) });
    let m = parse_lines("{\"path\":\"a\"}\n").unwrap();
    assert_eq!(m.root, Path::new("/data/lib"));
}

#[test]
fn json_lines_errors_name_the_line() {
    let err = parse_lines("{\"path\":\"a\"}\n{\"path\":\"b\"\n").unwrap_err().to_string();
    assert!(err.contains("line 2, column"), "{err}");
    let err = parse_lines("{\"path\":\"a\"}\n{\"path\":\"a\"}\n").unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("line 1"), "{err}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    std::fs::write(&path, "{oops").unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(err.contains("m.json") && err.contains("line 1"), "{err}");
    let err = Manifest::load(&dir.path().join("nope.json")).unwrap_err().to_string();
    assert!(err.contains("nope.json"), "{err}");
}

#[test]
fn entries_and_manifests_must_be_objects_not_arrays_of_their_fields() {
    let err = parse_lines("[\"a.jpg\", \"photo-1\", \"b.jpg\"]\n").unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("expected a JSON object"), "{err}");
    let err = parse(r#"{"version":1,"assets":[["a.jpg","photo-1"]]}"#).unwrap_err().to_string();
    assert!(err.contains("expected a JSON object"), "{err}");
    let err = parse(r#"[1, null, null, [["a.jpg"]]]"#).unwrap_err().to_string();
    assert!(err.contains("expected a JSON object"), "{err}");
}

#[test]
fn data_is_kept_as_compact_json_with_the_manifests_schema() {
    let m = parse_lines(
        "{\"version\": 1, \"data_schema_id\": 7}\n\
         {\"path\": \"a.jpg\", \"data\": {\"title\": \"Sunset\",  \"tags\": [\"sea\"]}}\n\
         {\"path\": \"b.jpg\"}\n",
    )
    .unwrap();
    assert_eq!(m.data_schema_id, Some(7));
    assert_eq!(m.entries.at(0).data(), Some(r#"{"tags":["sea"],"title":"Sunset"}"#));
    assert_eq!(m.entries.at(1).data(), None);
}

#[test]
fn bad_data_is_refused_naming_the_entry_before_anything_is_uploaded() {
    let long = "x".repeat(MAX_DATA_CHARS);
    for (data, expected) in [
        ("[1, 2]".to_owned(), "must be a JSON object"),
        ("\"title\"".to_owned(), "must be a JSON object"),
        (r#"{"_filespin_owner": 1}"#.to_owned(), "reserved by FileSpin"),
        (format!(r#"{{"t": "{long}"}}"#), "at most 2000"),
    ] {
        let text = format!("{{\"path\": \"a.jpg\"}}\n{{\"path\": \"b.jpg\", \"data\": {data}}}\n");
        let e = parse_lines(&text).unwrap_err().to_string();
        assert!(e.contains(expected) && e.contains("line 2"), "{data}: {e}");
    }
    // Exactly at the limit: {"t":"…"} is 8 characters besides the value.
    let at_limit = format!(r#"{{"path": "a.jpg", "data": {{"t": "{}"}}}}"#, "é".repeat(MAX_DATA_CHARS - 8));
    assert!(parse_lines(&at_limit).is_ok(), "2,000 characters (not bytes) are allowed");
}

#[test]
fn remote_entries_resolve_under_the_source_root_and_mix_with_local_ones() {
    let m = parse_lines(
        "{\"version\":1,\"source_root\":\"s3://old-dam/media\"}\n\
         {\"source\":\"photos/a.jpg\",\"size\":10,\"etag\":\"\\\"abc\\\"\"}\n\
         {\"source\":\"s3://old-dam/media/b.png\",\"id\":\"legacy-2\"}\n\
         {\"path\":\"local/c.jpg\"}\n",
    )
    .unwrap();
    assert_eq!(m.source_root.as_deref(), Some("s3://old-dam/media/"));
    let a = m.entries.at(0);
    assert!(a.is_remote());
    assert_eq!((a.id(), a.path(), a.filename()), ("photos/a.jpg", "photos/a.jpg", "a.jpg"));
    assert_eq!(m.source_url(&a).as_deref(), Some("s3://old-dam/media/photos/a.jpg"));
    assert!(m.resolve(&a).is_err(), "a remote entry has no local file");
    let b = m.entries.at(1);
    assert_eq!((b.id(), b.filename()), ("legacy-2", "b.png"));
    assert_eq!(m.source_url(&b).as_deref(), Some("s3://old-dam/media/b.png"));
    let c = m.entries.at(2);
    assert!(!c.is_remote());
    assert_eq!(m.source_url(&c), None);
    assert!(m.resolve(&c).unwrap_err().to_string().contains("local/c.jpg"), "no such file here");
}

#[test]
fn remote_entries_that_leave_the_source_root_are_refused_naming_the_entry() {
    for (entry, wanted) in [
        (r#"{"source":"../other/a.jpg"}"#, "outside the manifest's source_root"),
        (r#"{"source":"s3://old-dam/private/a.jpg"}"#, "outside the manifest's source_root"),
        (r#"{"source":"s3://old-dam/media/../private/a.jpg"}"#, "outside the manifest's source_root"),
        (r#"{"source":"ftp://host/a.jpg"}"#, "scheme `ftp`"),
        (r#"{"source":"a.jpg","path":"a.jpg"}"#, "not both"),
        (r#"{"id":"x"}"#, "missing field `path`"),
        (r#"{"source":"dir/"}"#, "give a `filename`"),
    ] {
        let text = format!("{{\"version\":1,\"source_root\":\"s3://old-dam/media/\"}}\n{entry}\n");
        let err = parse_lines(&text).unwrap_err().to_string();
        assert!(err.contains(wanted) && err.contains("line 2"), "{entry}: {err}");
    }
    let err = parse(r#"{"version":1,"assets":[{"source":"photos/a.jpg"}]}"#).unwrap_err().to_string();
    assert!(err.contains("no `source_root`"), "{err}");
    let err = parse(r#"{"version":1,"source_root":"old-dam","assets":[{"source":"a"}]}"#).unwrap_err();
    assert!(err.to_string().contains("`source_root`"), "{err}");
}

#[test]
fn an_https_source_is_shown_and_named_without_its_query() {
    let m = parse(
        r#"{"version":1,"assets":[{"source":"https://old.example.com/media/a%20b.jpg?X-Amz-Signature=SECRET"}]}"#,
    )
    .unwrap();
    let e = m.entries.at(0);
    assert_eq!(e.filename(), "a b.jpg");
    assert_eq!(e.id(), "https://old.example.com/media/a%20b.jpg?…");
    assert_eq!(e.shown_path(), "https://old.example.com/media/a%20b.jpg?…");
    assert!(!format!("{e:?}").contains("SECRET"));
    assert!(m.source_url(&e).unwrap().contains("SECRET"), "the request needs its query");
}

#[test]
fn the_builder_takes_remote_entries() {
    let m = Manifest::builder("/srv")
        .source_root("gs://bucket/prefix")
        .unwrap()
        .remote_entry(None, "x/y.tif", None)
        .unwrap()
        .remote_entry(Some("id-2"), "gs://bucket/prefix/z.mov", Some("z-final.mov"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(m.source_url(&m.entries.at(0)).as_deref(), Some("gs://bucket/prefix/x/y.tif"));
    assert_eq!(m.entries.at(1).filename(), "z-final.mov");
    assert!(
        Manifest::builder("/srv").source_root("s3://b/p").unwrap().remote_entry(None, "../q", None).is_err()
    );
}

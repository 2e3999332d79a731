//! `spinlift scan DIR -o manifest.json`: a manifest from a directory tree, with each file's custom
//! metadata (`data`) from its sidecar or a CSV if asked. A remote prefix (`s3://bucket/prefix`, `gs://`,
//! `az://`) is listed instead: see `scan_remote`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::{Map, Value};
use spinlift_manifest::{Format, MAX_DATA_CHARS, validate_data};

use super::{EXIT_OK, EXIT_STOPPED};

#[derive(Args)]
pub(crate) struct ScanArgs {
    /// The directory to scan; it becomes the manifest's root. Or a remote prefix (s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix): its objects are listed, and it becomes the manifest's
    /// source_root.
    pub(crate) dir: PathBuf,
    /// The manifest to write: .json, or .jsonl for big trees (one asset per line).
    #[arg(long, short)]
    pub(crate) output: PathBuf,
    /// Only files whose path (relative to DIR, with '/') matches one of these globs. As in .gitignore:
    /// `*` stays within a directory, `**` crosses them, a glob without '/' matches the name at any depth.
    #[arg(long)]
    pub(crate) include: Vec<String>,
    /// Leave out files whose relative path matches one of these globs (same rules as --include).
    #[arg(long)]
    pub(crate) exclude: Vec<String>,
    /// Include hidden files and directories (names starting with '.').
    #[arg(long)]
    pub(crate) hidden: bool,
    /// Follow symbolic links (the run still refuses any that lead outside DIR).
    #[arg(long)]
    pub(crate) follow_links: bool,
    /// Give each file the custom metadata (FileSpin `data`) of its sidecar: `photos/a.jpg` ->
    /// `photos/a.json`.
    ///
    /// A file's sidecar is the JSON file beside it with `.json` in place of its extension, as FileSpin
    /// Teleport names them (`notes` -> `notes.json`; `a.jpg` and `a.png` share `a.json`). It is an Update
    /// Data request, `{"data": {...}, "mode": "APPEND", "data_schema_id": N}`, or, without a `data` key,
    /// the data object itself. The `.json` files are then sidecars, not listed as files; sidecars are read
    /// whatever --include/--exclude say. A sidecar that is not valid JSON, whose data is not an object, is
    /// over 2000 characters as compact JSON or has `_filespin...` keys, or whose data_schema_id is not
    /// --data-schema-id stops the scan (exit 2); "mode": "REPLACE" is warned about (spinlift always
    /// appends: the same on a new asset).
    #[arg(long)]
    pub(crate) sidecars: bool,
    /// Custom metadata from a CSV file with a header row, one row per file.
    ///
    /// Each row's path (relative to DIR, with '/') is in the `path` column (see --metadata-csv-key);
    /// every other non-empty cell becomes a string in that file's data, under its column's name. Rows
    /// naming no listed file are warned about; a path on two rows stops the scan (exit 2), as does data
    /// that FileSpin would refuse. With --sidecars too, the two are merged and a sidecar's keys win.
    #[arg(long, value_name = "FILE")]
    pub(crate) metadata_csv: Option<PathBuf>,
    /// The --metadata-csv column that holds the paths [default: path].
    #[arg(long, value_name = "COLUMN", requires = "metadata_csv")]
    pub(crate) metadata_csv_key: Option<String>,
    /// The FileSpin data schema of every entry's data, written as the manifest's `data_schema_id`.
    #[arg(long, value_name = "ID")]
    pub(crate) data_schema_id: Option<u64>,
    /// For a remote prefix: listing requests per second (each page of up to 1,000 objects); 0 for no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) source_rps: u32,
    /// For a remote prefix: allow a plain http:// endpoint that is not loopback.
    #[arg(long)]
    pub(crate) allow_http: bool,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    pub(crate) filtered: u64,
    pub(crate) hidden: u64,
    links: u64,
    not_utf8: u64,
    unreadable: u64,
    /// Files whose entry has `data`.
    pub(crate) with_data: u64,
    /// Files that have a sidecar.
    from_sidecars: u64,
    /// Files that have a row in --metadata-csv.
    pub(crate) from_csv: u64,
    /// Sidecars that ask for `"mode": "REPLACE"`.
    replace: Sample,
    /// `.json` files (kept by the filters) that are no listed file's sidecar.
    orphans: Sample,
    /// Rows of --metadata-csv that name no listed file, as (line, path).
    pub(crate) unmatched: Vec<(u64, String)>,
}

/// How many of something there are, and the first few, to name in one warning.
#[derive(Default)]
struct Sample {
    count: u64,
    first: Vec<String>,
}

impl Sample {
    const SHOWN: usize = 5;

    fn add(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.len() < Self::SHOWN {
            self.first.push(what());
        }
    }

    fn list(&self) -> String {
        let more = if self.count > self.first.len() as u64 { ", ..." } else { "" };
        format!("{}{more}", self.first.join(", "))
    }
}

pub(crate) fn globs(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = |p: &str| {
            GlobBuilder::new(p).literal_separator(true).build().map_err(|e| format!("bad glob {p:?}: {e}"))
        };
        b.add(glob(p)?);
        // As in .gitignore: a glob without '/' (`*.tmp`) matches a file's name at any depth.
        if !p.contains('/') {
            b.add(glob(&format!("**/{p}"))?);
        }
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

pub(crate) async fn scan(args: ScanArgs) -> u8 {
    let scanned = match args.dir.to_str() {
        Some(prefix) if super::scan_remote::is_remote(prefix) => {
            super::scan_remote::scan_remote(&args, prefix).await
        }
        _ => scan_inner(&args),
    };
    match scanned {
        Ok(c) => {
            for warning in warnings(&args, &c) {
                eprintln!("warning: {warning}");
            }
            println!(
                "scanned {}: {} files, {:.1} MiB -> {}",
                args.dir.display(),
                c.files,
                c.bytes as f64 / 1048576.0,
                args.output.display()
            );
            let skipped = [
                (c.filtered, "filtered out by --include/--exclude"),
                (c.hidden, "hidden (--hidden to include)"),
                (c.links, "symbolic links (--follow-links to follow)"),
                (c.not_utf8, "with names that are not UTF-8 (a manifest cannot name them)"),
                (c.unreadable, "unreadable"),
            ];
            for (n, why) in skipped {
                if n > 0 {
                    println!("  skipped {n} {why}");
                }
            }
            if args.sidecars || args.metadata_csv.is_some() {
                let mut sources = Vec::new();
                if args.sidecars {
                    sources.push(format!("{} with a sidecar", c.from_sidecars));
                }
                if let Some(csv) = &args.metadata_csv {
                    sources.push(format!("{} with a row in {}", c.from_csv, csv.display()));
                }
                println!("  {} files with data: {}", c.with_data, sources.join(", "));
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_STOPPED
        }
    }
}

/// What the user should know about the metadata the scan did not use or used differently.
fn warnings(args: &ScanArgs, c: &Counts) -> Vec<String> {
    let mut out = Vec::new();
    if c.replace.count > 0 {
        out.push(format!(
            "{} sidecars ask for \"mode\": \"REPLACE\" ({}); spinlift sets data with APPEND, which on a \
             new asset gives the same data",
            c.replace.count,
            c.replace.list()
        ));
    }
    if c.orphans.count > 0 {
        out.push(format!(
            "{} .json files are the sidecar of no listed file, and are not listed themselves ({}): a \
             sidecar is named like its file with .json in place of the extension (a.jpg -> a.json)",
            c.orphans.count,
            c.orphans.list()
        ));
    }
    if let Some(csv) = &args.metadata_csv
        && !c.unmatched.is_empty()
    {
        let mut rows: Vec<&(u64, String)> = c.unmatched.iter().collect();
        rows.sort_unstable();
        let mut sample = Sample::default();
        for (line, path) in rows {
            sample.add(|| format!("{path:?} (line {line})"));
        }
        out.push(format!(
            "{} rows of {} name no listed file: {} (paths are relative to {}, with '/')",
            sample.count,
            csv.display(),
            sample.list(),
            args.dir.display()
        ));
    }
    out
}

/// The data of one --metadata-csv row.
pub(crate) struct CsvRow {
    /// 1-based line the row starts on.
    pub(crate) line: u64,
    pub(crate) data: Map<String, Value>,
}

/// --metadata-csv, read whole: its rows by path.
pub(crate) fn read_csv(file: &Path, key: &str) -> Result<HashMap<String, CsvRow>, String> {
    let name = file.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_path(file)
        .map_err(|e| format!("--metadata-csv {name}: {e}"))?;
    let headers = reader.headers().map_err(|e| format!("{name}: {e}"))?.clone();
    let keys: Vec<usize> = (0..headers.len()).filter(|&i| &headers[i] == key).collect();
    let key_at = match keys[..] {
        [at] => at,
        [] => {
            let columns: Vec<&str> = headers.iter().collect();
            return Err(format!(
                "{name}: no column {key:?} holds the paths (its columns: {columns:?}); name it with \
                 --metadata-csv-key"
            ));
        }
        _ => return Err(format!("{name}: {} columns are named {key:?}", keys.len())),
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, column) in headers.iter().enumerate() {
        if column.is_empty() {
            continue;
        }
        if column.starts_with("_filespin") {
            return Err(format!(
                "{name}: column {column:?}: keys starting with `_filespin` are reserved by FileSpin"
            ));
        }
        if let Some(first) = seen.insert(column, i) {
            return Err(format!("{name}: columns {} and {} are both named {column:?}", first + 1, i + 1));
        }
    }
    let mut rows: HashMap<String, CsvRow> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{name}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        let path = &record[key_at];
        let path = path.strip_prefix("./").unwrap_or(path);
        if path.is_empty() {
            return Err(format!("{name} line {line}: the {key:?} column is empty"));
        }
        let mut data = Map::new();
        for (i, value) in record.iter().enumerate() {
            if i == key_at || value.is_empty() {
                continue;
            }
            if headers[i].is_empty() {
                return Err(format!(
                    "{name} line {line}: {value:?} is in column {}, which has no name",
                    i + 1
                ));
            }
            data.insert(headers[i].to_owned(), Value::String(value.to_owned()));
        }
        let data = Value::Object(data);
        validate_data(&data).map_err(|e| format!("{name} line {line} ({path}): {e}"))?;
        let Value::Object(data) = data else { unreachable!("built as an object") };
        if let Some(first) = rows.get(path) {
            return Err(format!(
                "{name}: {path:?} is on line {} and on line {line}: give each file one row",
                first.line
            ));
        }
        rows.insert(path.to_owned(), CsvRow { line, data });
    }
    Ok(rows)
}

/// A sidecar's data, and whether it asks for `"mode": "REPLACE"`.
struct Sidecar {
    data: Map<String, Value>,
    replace: bool,
}

/// Larger than any sidecar FileSpin could take (2000 characters of data): a file this size is not one.
const MAX_SIDECAR_BYTES: u64 = 1 << 20;

/// Reads and checks the sidecar at `path`; errors say what is wrong with it, not which file it is.
fn read_sidecar(path: &Path, size: u64, schema: Option<u64>) -> Result<Sidecar, String> {
    if size > MAX_SIDECAR_BYTES {
        return Err(format!(
            "{size} bytes is not a sidecar (FileSpin takes at most {MAX_DATA_CHARS} characters of data)"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut top) = value else {
        return Err("not a JSON object: a sidecar is {\"data\": {...}, \"mode\": \"APPEND\"} or the data \
                    object itself"
            .into());
    };
    if !top.contains_key("data") {
        // The data object itself.
        let data = Value::Object(top);
        validate_data(&data)?;
        let Value::Object(data) = data else { unreachable!("an object") };
        return Ok(Sidecar { data, replace: false });
    }
    // An Update Data request (developers.filespin.io, "Update Data"), as FileSpin Teleport reads them.
    let others: Vec<&String> =
        top.keys().filter(|k| !matches!(k.as_str(), "data" | "mode" | "data_schema_id")).collect();
    if !others.is_empty() {
        return Err(format!(
            "it has `data` and also {others:?}: a sidecar with `data` is an Update Data request, with only \
             `data`, `mode` and `data_schema_id`; put those keys inside `data`"
        ));
    }
    let replace = match top.get("mode") {
        None => false,
        Some(Value::String(m)) if m == "APPEND" => false,
        Some(Value::String(m)) if m == "REPLACE" => true,
        Some(other) => return Err(format!("`mode` is {other}: Update Data takes \"APPEND\" or \"REPLACE\"")),
    };
    if let Some(v) = top.get("data_schema_id") {
        let id = v.as_u64().ok_or_else(|| format!("`data_schema_id` is {v}, not a schema id"))?;
        match schema {
            Some(s) if s == id => {}
            Some(s) => {
                return Err(format!(
                    "it asks for data_schema_id {id}, and the manifest's is {s} (--data-schema-id): one \
                     schema holds for every entry of a manifest"
                ));
            }
            None => {
                return Err(format!(
                    "it asks for data_schema_id {id}, and the manifest names none: pass --data-schema-id {id} \
                     (without it, FileSpin assigns its default schema)"
                ));
            }
        }
    }
    let data = top.remove("data").unwrap_or_default();
    validate_data(&data)?;
    let Value::Object(data) = data else { unreachable!("validated as an object") };
    Ok(Sidecar { data, replace })
}

/// Sidecar bookkeeping of one directory the walk is in: its `.json` files (that the filters keep) and
/// the sidecars its listed files used, by relative path.
#[derive(Default)]
struct DirSidecars {
    seen: Vec<String>,
    used: HashSet<String>,
}

/// The manifest being written: a temporary file beside OUT, renamed over it when the scan succeeds,
/// so a failed scan leaves no manifest (and any earlier one intact). OUT that exists and is not a
/// regular file (`/dev/stdout`, a pipe) is written directly.
pub(crate) enum Output {
    Temp(tempfile::NamedTempFile),
    Direct(std::fs::File),
}

impl Output {
    pub(crate) fn create(out: &Path) -> Result<Output, String> {
        let fail = |e: std::io::Error| format!("cannot create the manifest {}: {e}", out.display());
        if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
            return std::fs::File::create(out).map(Output::Direct).map_err(fail);
        }
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // As File::create: what the umask leaves of rw-rw-rw-.
            b.permissions(std::fs::Permissions::from_mode(0o666));
        }
        b.tempfile_in(dir).map(Output::Temp).map_err(fail)
    }

    pub(crate) fn file(&self) -> &std::fs::File {
        match self {
            Output::Temp(t) => t.as_file(),
            Output::Direct(f) => f,
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Output::Temp(t) => Some(t.path()),
            Output::Direct(_) => None,
        }
    }

    pub(crate) fn finish(self, out: &Path) -> Result<(), String> {
        match self {
            Output::Temp(t) => {
                t.persist(out).map(drop).map_err(|e| format!("{}: {}", out.display(), e.error))
            }
            Output::Direct(_) => Ok(()),
        }
    }
}

/// Where `path` is, through its directory's real path, whether or not it exists.
fn real_location(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(path.file_name()?))
}

fn scan_inner(args: &ScanArgs) -> Result<Counts, String> {
    let root = args.dir.canonicalize().map_err(|e| format!("{}: {e}", args.dir.display()))?;
    if !root.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let include = globs(&args.include)?;
    let exclude = globs(&args.exclude)?;
    let root_str = root.to_str().ok_or("the directory's path is not UTF-8")?;
    let csv_name = args.metadata_csv.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let mut csv_rows = match &args.metadata_csv {
        Some(file) => read_csv(file, args.metadata_csv_key.as_deref().unwrap_or("path"))?,
        None => HashMap::new(),
    };
    let format = Format::from_path(&args.output);
    let output = Output::create(&args.output)?;
    // A manifest written inside the tree does not list itself, nor the file it is written as.
    let not_listed: Vec<PathBuf> =
        [output.path().and_then(|p| p.canonicalize().ok()), real_location(&args.output)]
            .into_iter()
            .flatten()
            .collect();
    let mut out = std::io::BufWriter::new(output.file());
    let io = |e: std::io::Error| format!("{}: {e}", args.output.display());
    let mut header = serde_json::json!({"version": 1, "root": root_str});
    if let Some(id) = args.data_schema_id {
        header["data_schema_id"] = id.into();
    }
    match format {
        Format::JsonLines => writeln!(out, "{header}").map_err(io)?,
        Format::Json => {
            let schema =
                args.data_schema_id.map(|id| format!(", \"data_schema_id\": {id}")).unwrap_or_default();
            write!(out, "{{\"version\": 1, \"root\": {}{schema}, \"assets\": [", header["root"])
                .map_err(io)?
        }
    }
    let mut c = Counts::default();
    // With --sidecars, one entry per directory the walk is in (index: the directory's depth).
    let mut dirs: Vec<DirSidecars> = Vec::new();
    let walker = walkdir::WalkDir::new(&root).follow_links(args.follow_links).sort_by_file_name();
    let mut it = walker.into_iter();
    while let Some(next) = it.next() {
        let entry = match next {
            Ok(e) => e,
            Err(_) => {
                c.unreadable += 1;
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        if args.sidecars {
            // Depth first: the directories at this entry's depth or deeper are done.
            while dirs.len() > entry.depth() {
                orphans(dirs.pop().expect("not empty"), &args.dir, &mut c.orphans);
            }
            dirs.resize_with(entry.depth(), Default::default);
        }
        let is_hidden = entry.file_name().to_str().is_some_and(|n| n.starts_with('.'));
        if is_hidden && !args.hidden {
            if entry.file_type().is_dir() {
                it.skip_current_dir();
            }
            c.hidden += 1;
            continue;
        }
        if entry.path_is_symlink() && !args.follow_links {
            c.links += 1;
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        if not_listed.iter().any(|p| p == entry.path()) {
            continue;
        }
        let Some(rel) = relative(&root, entry.path()) else {
            c.not_utf8 += 1;
            if c.not_utf8 <= 20 {
                eprintln!(
                    "warning: skipped {} (its name is not UTF-8: rename it, a manifest cannot name it)",
                    entry.path().display()
                );
            }
            continue;
        };
        let filtered_out = include.as_ref().is_some_and(|g| !g.is_match(&rel))
            || exclude.as_ref().is_some_and(|g| g.is_match(&rel));
        if args.sidecars && rel.ends_with(".json") {
            // A sidecar, not a file to upload; one the filters keep is checked for a file of its own.
            if !filtered_out && let Some(dir) = dirs.last_mut() {
                dir.seen.push(rel);
            }
            continue;
        }
        if filtered_out {
            c.filtered += 1;
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            c.unreadable += 1;
            eprintln!("warning: skipped {} (cannot read its metadata)", entry.path().display());
            continue;
        };
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);

        let mut data = Map::new();
        let mut sources = Vec::new();
        if let Some(row) = csv_rows.remove(&rel) {
            c.from_csv += 1;
            data = row.data;
            sources.push(format!("{csv_name} line {}", row.line));
        }
        if args.sidecars {
            let sidecar_rel = Path::new(&rel).with_extension("json");
            let sidecar_rel = sidecar_rel.to_str().expect("from a UTF-8 path").to_owned();
            let path = entry.path().with_extension("json");
            let shown = args.dir.join(&sidecar_rel);
            let found =
                if args.follow_links { std::fs::metadata(&path) } else { std::fs::symlink_metadata(&path) };
            match found {
                Ok(m) if m.is_file() && !not_listed.contains(&path) => {
                    let sidecar = read_sidecar(&path, m.len(), args.data_schema_id)
                        .map_err(|e| format!("sidecar {}: {e}", shown.display()))?;
                    if sidecar.replace {
                        c.replace.add(|| shown.display().to_string());
                    }
                    // The sidecar's keys win over the CSV's.
                    data.extend(sidecar.data);
                    c.from_sidecars += 1;
                    sources.push(format!("sidecar {}", shown.display()));
                    if let Some(dir) = dirs.last_mut() {
                        dir.used.insert(sidecar_rel);
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("sidecar {}: {e}", shown.display())),
            }
        }

        let mut line = serde_json::json!({"path": rel, "size": meta.len(), "mtime_ms": mtime_ms}).to_string();
        if !data.is_empty() {
            // Each source is valid alone; merged, they may be too long together.
            let text = validate_data(&Value::Object(data))
                .map_err(|e| format!("{rel}: its data from {}: {e}", sources.join(" and ")))?;
            // After the other fields, whatever order serde_json keeps keys in.
            line.pop();
            line.push_str(",\"data\":");
            line.push_str(&text);
            line.push('}');
            c.with_data += 1;
        }
        match format {
            Format::JsonLines => writeln!(out, "{line}").map_err(io)?,
            Format::Json => {
                let sep = if c.files == 0 { "\n  " } else { ",\n  " };
                write!(out, "{sep}{line}").map_err(io)?
            }
        }
        c.files += 1;
        c.bytes += meta.len();
    }
    for dir in dirs.into_iter().rev() {
        orphans(dir, &args.dir, &mut c.orphans);
    }
    c.unmatched = csv_rows.into_iter().map(|(path, row)| (row.line, path)).collect();
    if let Format::Json = format {
        writeln!(out, "\n]}}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    drop(out);
    output.finish(&args.output)?;
    Ok(c)
}

/// The `.json` files of a finished directory that no listed file took as its sidecar, named under `root`
/// (DIR as the user gave it).
fn orphans(dir: DirSidecars, root: &Path, sample: &mut Sample) {
    for json in dir.seen {
        if !dir.used.contains(&json) {
            sample.add(|| root.join(json).display().to_string());
        }
    }
}

/// `path` relative to `root` with '/' separators, if every component is UTF-8.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

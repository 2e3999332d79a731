//! `spinlift.toml`: the settings of `spinlift run` that a team's nightly runs share, under the flags and
//! the environment. Each setting is taken from, in order: its flag, its environment variable, this file,
//! the built-in default. `service_data` merges per key: flags, the manifest, this file, the default.
//!
//! ```toml
//! api_url = "https://app.filespin.io"
//! api_key = "…"            # the file must then be chmod 600
//! concurrency = 32
//! api_rps = 30
//! s3_rps = 0
//! source_rps = 20          # remote sources (s3://, https://…): requests/s
//! bwlimit = "50MiB/s"
//! allow_http = false
//!
//! [service_data]
//! app = "nightly-import"
//! build = "2024.06"
//! deployment_data = { client = "acme", location = "eu-west" }
//! ```
//!
//! Errors name the file, the line and the column, and never echo a value (one of them is the API key).

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The file looked for in the current directory when neither `--config` nor `SPINLIFT_CONFIG` is given.
pub(crate) const DEFAULT_FILE: &str = "spinlift.toml";

const TOP_KEYS: &[&str] = &[
    "api_url",
    "api_key",
    "concurrency",
    "api_rps",
    "s3_rps",
    "source_rps",
    "bwlimit",
    "allow_http",
    "service_data",
];
const SERVICE_DATA_KEYS: &[&str] = &["app", "build", "deployment_data"];

/// What a config file sets; `None` (or empty) for what it leaves out.
#[derive(Default)]
pub(crate) struct FileConfig {
    pub(crate) api_url: Option<String>,
    pub(crate) api_key: Option<String>,
    pub(crate) concurrency: Option<u32>,
    pub(crate) api_rps: Option<u32>,
    pub(crate) s3_rps: Option<u32>,
    pub(crate) source_rps: Option<u32>,
    pub(crate) bwlimit: Option<NonZeroU64>,
    pub(crate) allow_http: Option<bool>,
    pub(crate) service_data: ServiceData,
}

/// `service_data` as one source gives it: each part optional.
#[derive(Default)]
pub(crate) struct ServiceData {
    pub(crate) app: Option<String>,
    pub(crate) build: Option<String>,
    pub(crate) deployment_data: Map<String, Value>,
}

impl ServiceData {
    fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        if let Some(app) = &self.app {
            map.insert("app".into(), Value::String(app.clone()));
        }
        if let Some(build) = &self.build {
            map.insert("build".into(), Value::String(build.clone()));
        }
        if !self.deployment_data.is_empty() {
            map.insert("deployment_data".into(), Value::Object(self.deployment_data.clone()));
        }
        map
    }
}

/// The config file to read: `explicit` (from `--config` or `SPINLIFT_CONFIG`), which must exist, else
/// `./spinlift.toml` when there is one, else none.
pub(crate) fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, String> {
    match explicit.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) if path.is_file() => Ok(Some(path.to_owned())),
        Some(path) if path.exists() => Err(format!("config file {} is not a regular file", path.display())),
        Some(path) => Err(format!(
            "config file {} does not exist (given by --config or SPINLIFT_CONFIG)",
            path.display()
        )),
        None => {
            let default = Path::new(DEFAULT_FILE);
            Ok(default.is_file().then(|| default.to_owned()))
        }
    }
}

/// Reads and checks a config file. Returns the settings and the warnings to print.
pub(crate) fn load(path: &Path) -> Result<(FileConfig, Vec<String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let config = parse(&text).map_err(|e| e.describe(path, &text))?;
    let mut warnings = Vec::new();
    if config.api_key.is_some()
        && let Some(mode) = loose_mode(path)
    {
        warnings.push(format!(
            "config file {} holds an api_key and is readable by other users (mode {mode:04o}); \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok((config, warnings))
}

/// The file's permission bits when group or others may read or write it.
#[cfg(unix)]
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn loose_mode(_path: &Path) -> Option<u32> {
    None
}

/// A problem at a byte range of the file.
#[derive(Debug)]
pub(crate) struct ConfigError {
    span: Option<std::ops::Range<usize>>,
    message: String,
}

impl ConfigError {
    fn at(span: std::ops::Range<usize>, message: impl Into<String>) -> Self {
        ConfigError { span: Some(span), message: message.into() }
    }

    fn describe(&self, path: &Path, text: &str) -> String {
        match &self.span {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!(
                    "invalid config file {} at line {line}, column {column}: {}",
                    path.display(),
                    self.message
                )
            }
            None => format!("invalid config file {}: {}", path.display(), self.message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parses a config file's text.
pub(crate) fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    // Only the parser's message: its rendering quotes the source line, which may hold the key.
    let table = DeTable::parse(text)
        .map_err(|e| ConfigError { span: e.span(), message: e.message().trim().to_owned() })?;
    let mut config = FileConfig::default();
    let mut errors = Vec::new();
    for (key, value) in table.get_ref().iter() {
        if let Err(e) = top_level(&mut config, key, value) {
            errors.push(e);
        }
    }
    // Maps iterate in key order: report the problem that comes first in the file.
    match errors.into_iter().min_by_key(|e| e.span.as_ref().map_or(0, |s| s.start)) {
        Some(e) => Err(e),
        None => Ok(config),
    }
}

fn top_level(
    config: &mut FileConfig,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> Result<(), ConfigError> {
    let name = key.get_ref().as_ref();
    match name {
        "api_url" => config.api_url = Some(string(name, value)?),
        "api_key" => config.api_key = Some(string(name, value)?),
        "concurrency" => config.concurrency = Some(integer(name, value, 1, 4096)?),
        "api_rps" => config.api_rps = Some(integer(name, value, 0, u32::MAX)?),
        "s3_rps" => config.s3_rps = Some(integer(name, value, 0, u32::MAX)?),
        "source_rps" => config.source_rps = Some(integer(name, value, 0, u32::MAX)?),
        "bwlimit" => {
            let text = string(name, value)?;
            let limit = spinlift_transport::parse_bandwidth(&text)
                .map_err(|e| ConfigError::at(value.span(), format!("`bwlimit`: {e}")))?;
            config.bwlimit = Some(limit);
        }
        "allow_http" => match value.get_ref() {
            DeValue::Boolean(b) => config.allow_http = Some(*b),
            _ => return Err(ConfigError::at(value.span(), "`allow_http` must be true or false")),
        },
        "service_data" => {
            let DeValue::Table(table) = value.get_ref() else {
                return Err(ConfigError::at(value.span(), "`service_data` must be a table ([service_data])"));
            };
            let mut first_error: Option<ConfigError> = None;
            for (key, value) in table.iter() {
                if let Err(e) = service_data(&mut config.service_data, key, value)
                    && first_error.as_ref().is_none_or(|f| span_start(&e) < span_start(f))
                {
                    first_error = Some(e);
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        _ => {
            let mut message = format!("unknown key `{name}`");
            if let Some(known) = did_you_mean(name, TOP_KEYS) {
                message.push_str(&format!(" (did you mean `{known}`?)"));
            } else if SERVICE_DATA_KEYS.contains(&name) {
                message.push_str(&format!(" (did you mean `{name}` under [service_data]?)"));
            }
            message.push_str(&format!("; the keys are {}", TOP_KEYS.join(", ")));
            return Err(ConfigError::at(key.span(), message));
        }
    }
    Ok(())
}

fn span_start(e: &ConfigError) -> usize {
    e.span.as_ref().map_or(0, |s| s.start)
}

fn service_data(
    out: &mut ServiceData,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> Result<(), ConfigError> {
    let name = key.get_ref().as_ref();
    match name {
        "app" => out.app = Some(string("service_data.app", value)?),
        "build" => out.build = Some(string("service_data.build", value)?),
        "deployment_data" => {
            let DeValue::Table(table) = value.get_ref() else {
                return Err(ConfigError::at(
                    value.span(),
                    "`service_data.deployment_data` must be a table of names to values",
                ));
            };
            for (key, value) in table.iter() {
                let json = match value.get_ref() {
                    DeValue::String(s) => Value::String(s.to_string()),
                    DeValue::Boolean(b) => Value::Bool(*b),
                    DeValue::Integer(i) => {
                        i64::from_str_radix(i.as_str(), i.radix())
                            .ok()
                            .map(Value::from)
                            .ok_or_else(|| ConfigError::at(value.span(), "integer out of range"))?
                    }
                    DeValue::Float(f) => f
                        .as_str()
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| ConfigError::at(value.span(), "a finite number is expected"))?,
                    _ => {
                        return Err(ConfigError::at(
                            value.span(),
                            format!(
                                "`service_data.deployment_data.{}` must be a string, a number or a boolean",
                                key.get_ref()
                            ),
                        ));
                    }
                };
                out.deployment_data.insert(key.get_ref().to_string(), json);
            }
        }
        _ => {
            let mut message = format!("unknown key `service_data.{name}`");
            if let Some(known) = did_you_mean(name, SERVICE_DATA_KEYS) {
                message.push_str(&format!(" (did you mean `{known}`?)"));
            }
            message.push_str(&format!("; [service_data] takes {}", SERVICE_DATA_KEYS.join(", ")));
            return Err(ConfigError::at(key.span(), message));
        }
    }
    Ok(())
}

fn string(name: &str, value: &Spanned<DeValue<'_>>) -> Result<String, ConfigError> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        other => {
            Err(ConfigError::at(value.span(), format!("`{name}` must be a string, not {}", other.type_str())))
        }
    }
}

fn integer(name: &str, value: &Spanned<DeValue<'_>>, min: u32, max: u32) -> Result<u32, ConfigError> {
    let range = || ConfigError::at(value.span(), format!("`{name}` must be an integer from {min} to {max}"));
    match value.get_ref() {
        DeValue::Integer(i) => u32::from_str_radix(i.as_str(), i.radix())
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(range),
        _ => Err(range()),
    }
}

/// The known key closest to `name`, when it is close enough to be a typo.
fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase().replace('-', "_");
    known
        .iter()
        .map(|k| (strsim::levenshtein(&name, k), *k))
        .filter(|(d, k)| *d <= 2 || *d * 3 <= k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The `service_data` sent with every registration, merged per key (and per `deployment_data` key):
/// `flags` over the manifest's over the config file's over `{"app": "spinlift", "build": <version>}`.
pub(crate) fn merge_service_data(file: &ServiceData, manifest: Option<&Value>, flags: &ServiceData) -> Value {
    let mut merged = Map::new();
    merged.insert("app".into(), Value::from("spinlift"));
    merged.insert("build".into(), Value::from(env!("CARGO_PKG_VERSION")));
    overlay(&mut merged, &file.to_json());
    if let Some(Value::Object(manifest)) = manifest {
        overlay(&mut merged, manifest);
    }
    overlay(&mut merged, &flags.to_json());
    Value::Object(merged)
}

fn overlay(base: &mut Map<String, Value>, layer: &Map<String, Value>) {
    for (key, value) in layer {
        match (key.as_str(), base.get_mut(key), value) {
            ("deployment_data", Some(Value::Object(below)), Value::Object(above)) => {
                for (k, v) in above {
                    below.insert(k.clone(), v.clone());
                }
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// `--deployment-data KEY=VALUE`.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e.describe(Path::new("x.toml"), text),
        }
    }

    #[test]
    fn settings_parse() {
        let c = parse(
            "api_url = \"http://h\"\nconcurrency = 8\napi_rps = 0\nbwlimit = \"1MiB/s\"\nallow_http = true\n\
             [service_data]\napp = \"a\"\ndeployment_data = { client = \"c\", n = 3 }\n",
        )
        .unwrap();
        assert_eq!(c.api_url.as_deref(), Some("http://h"));
        assert_eq!((c.concurrency, c.api_rps, c.s3_rps), (Some(8), Some(0), None));
        assert_eq!(c.bwlimit.map(|b| b.get()), Some(1 << 20));
        assert_eq!(c.allow_http, Some(true));
        assert_eq!(c.service_data.app.as_deref(), Some("a"));
        assert_eq!(Value::Object(c.service_data.deployment_data), serde_json::json!({"client": "c", "n": 3}));
    }

    #[test]
    fn errors_are_positioned_and_never_echo_values() {
        let e = error("api_rps = 1\nconcurency = 4\n");
        assert!(e.contains("line 2, column 1") && e.contains("did you mean `concurrency`"), "{e}");
        let e = error("[service_data]\napp = \"a\"\nbiuld = \"b\"\n");
        assert!(e.contains("line 3") && e.contains("did you mean `build`"), "{e}");
        let e = error("app = \"a\"\n");
        assert!(e.contains("under [service_data]"), "{e}");
        let e = error("api_key = \"sk-secret\"\nconcurrency = = 3\n");
        assert!(e.contains("line 2") && !e.contains("sk-secret"), "{e}");
        let e = error("api_key = 12345678\n");
        assert!(e.contains("must be a string") && !e.contains("12345678"), "{e}");
        let e = error("concurrency = 0\n");
        assert!(e.contains("from 1 to 4096"), "{e}");
    }

    #[test]
    fn service_data_merges_per_key() {
        let file = ServiceData {
            app: Some("file".into()),
            build: Some("file-build".into()),
            deployment_data: serde_json::json!({"client": "f", "location": "f"}).as_object().unwrap().clone(),
        };
        let manifest = serde_json::json!({"app": "manifest", "deployment_data": {"location": "m"}});
        let flags = ServiceData {
            build: Some("flag-build".into()),
            deployment_data: serde_json::json!({"site": "x"}).as_object().unwrap().clone(),
            ..Default::default()
        };
        assert_eq!(
            merge_service_data(&file, Some(&manifest), &flags),
            serde_json::json!({"app": "manifest", "build": "flag-build",
                               "deployment_data": {"client": "f", "location": "m", "site": "x"}})
        );
        assert_eq!(
            merge_service_data(&ServiceData::default(), None, &ServiceData::default()),
            serde_json::json!({"app": "spinlift", "build": env!("CARGO_PKG_VERSION")})
        );
    }

    #[test]
    fn typos_are_caught() {
        assert_eq!(did_you_mean("apikey", TOP_KEYS), Some("api_key"));
        assert_eq!(did_you_mean("api-url", TOP_KEYS), Some("api_url"));
        assert_eq!(did_you_mean("bandwidth", TOP_KEYS), None);
    }
}

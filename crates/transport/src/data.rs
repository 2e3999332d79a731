//! An asset's data: Get Data (`GET /api/v1/assets/{id}/data`) and Update Data
//! (`POST /api/v1/assets/{id}/data/update`).
//!
//! The pages this follows, all on developers.filespin.io: "Asset Data Format" (`/reference/asset-api`,
//! `/api/asset-data-format`), "Assets - Data" (`/api-reference/assets/assets-data`), "Update Data"
//! (`/reference/asset-update-data`, `/api-reference/assets/update-data-post`) and "Update with Higher
//! Throughput" (`/api-reference/assets/update-higher-throughput`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// "Maximum payload size is limited to 2000 characters" ("Update Data", API Limits).
///
/// The docs do not say what is counted. [`DataUpdate::data_chars`] counts the characters of `data` as
/// compact JSON, which is what the local emulator enforces; a FileSpin that counted the whole body would
/// refuse some updates close to the limit (with a 400, which fails the asset).
pub const MAX_DATA_CHARS: usize = 2000;

/// An asset's `status` ("Asset Data Format": "OK if Asset was saved successfully, NOT_READY if file is
/// being saved, ERROR if the asset has any errors …, ARCHIVED if the asset is archived"). A value the docs
/// do not list is kept as [`Other`](AssetStatus::Other), never an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssetStatus {
    /// `OK`: the asset was saved.
    Ok,
    /// `NOT_READY`: the file is being saved; ask again later.
    NotReady,
    /// `ERROR`: FileSpin could not process the asset (see [`AssetData::reason`]).
    Error,
    /// `ARCHIVED`: read-only; it cannot be updated.
    Archived,
    /// Any other value, as FileSpin sent it.
    Other(String),
}

impl AssetStatus {
    /// Reads a status; the four documented values in any case, anything else as [`Other`](Self::Other).
    pub fn parse(status: &str) -> AssetStatus {
        let trimmed = status.trim();
        if trimmed.eq_ignore_ascii_case("OK") {
            AssetStatus::Ok
        } else if trimmed.eq_ignore_ascii_case("NOT_READY") {
            AssetStatus::NotReady
        } else if trimmed.eq_ignore_ascii_case("ERROR") {
            AssetStatus::Error
        } else if trimmed.eq_ignore_ascii_case("ARCHIVED") {
            AssetStatus::Archived
        } else {
            AssetStatus::Other(status.to_owned())
        }
    }

    /// The status as the docs spell it (`OK`, `NOT_READY`, `ERROR`, `ARCHIVED`), or the other value as
    /// received.
    pub fn as_str(&self) -> &str {
        match self {
            AssetStatus::Ok => "OK",
            AssetStatus::NotReady => "NOT_READY",
            AssetStatus::Error => "ERROR",
            AssetStatus::Archived => "ARCHIVED",
            AssetStatus::Other(other) => other,
        }
    }
}

impl std::fmt::Display for AssetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AssetStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AssetStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(AssetStatus::parse(&String::deserialize(deserializer)?))
    }
}

/// What Get Data says of an asset: the fields of the Asset Data Format that spinlift uses. Other fields
/// of the answer are ignored.
///
/// `Debug` shows the custom data's keys, not its values (metadata may be private).
#[derive(Clone, PartialEq)]
pub struct AssetData {
    /// `id`: the asset id (the one asked for, if the answer has none).
    pub id: String,
    /// `status`.
    pub status: AssetStatus,
    /// `name`: the file name.
    pub name: Option<String>,
    /// `size`: bytes.
    pub size: Option<u64>,
    /// `checksum`: MD5, in lowercase hex.
    pub checksum: Option<String>,
    /// `data`: the custom metadata (empty when the answer has none, or `null`).
    pub data: Map<String, Value>,
    /// FileSpin's reason for a status other than `OK`, if the answer carries one. The docs do not say
    /// where FileSpin puts it: it is looked for in a top-level `reason`, `error_message`,
    /// `status_message`, `message`, `error` (a string, or an object's `message`/`reason`/`description`),
    /// `errors` (the first entry), `detail` or `error_description`, then in `metadata.error` and
    /// `metadata.error_message`.
    pub reason: Option<String>,
}

impl std::fmt::Debug for AssetData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetData")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("checksum", &self.checksum)
            .field("data", &Keys(&self.data))
            .field("reason", &self.reason)
            .finish()
    }
}

/// Where a reason may be, in the order looked at.
const REASON_FIELDS: &[&str] = &[
    "reason",
    "error_message",
    "status_message",
    "message",
    "error",
    "errors",
    "detail",
    "error_description",
];

impl AssetData {
    /// Reads Get Data's answer for `asked_id`.
    pub(crate) fn from_answer(body: &[u8], asked_id: &str) -> Result<AssetData, String> {
        let answer: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the answer is not the documented JSON: {e}"))?;
        let Value::Object(mut answer) = answer else {
            return Err("the answer is not a JSON object".to_owned());
        };
        let status = match answer.get("status") {
            Some(Value::String(status)) if !status.trim().is_empty() => AssetStatus::parse(status),
            Some(Value::Null) | None => return Err("status is missing".to_owned()),
            Some(other) => return Err(format!("status is not a string: {other}")),
        };
        let id = match answer.get("id") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => asked_id.to_owned(),
        };
        let data = match answer.remove("data") {
            Some(Value::Object(data)) => data,
            None | Some(Value::Null) => Map::new(),
            Some(other) => return Err(format!("data is not a JSON object: {}", kind_of(&other))),
        };
        let reason = if status == AssetStatus::Ok { None } else { reason(&answer) };
        Ok(AssetData {
            id,
            status,
            name: answer.get("name").and_then(Value::as_str).map(str::to_owned),
            size: answer.get("size").and_then(size),
            checksum: answer
                .get("checksum")
                .and_then(Value::as_str)
                .map(|sum| sum.trim().to_ascii_lowercase())
                .filter(|sum| !sum.is_empty()),
            data,
            reason,
        })
    }
}

/// A byte count: a non-negative integer, or one written as a string or as a whole float.
fn size(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn reason(answer: &Map<String, Value>) -> Option<String> {
    let text = |value: &Value| -> Option<String> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Object(map) => ["message", "reason", "description", "detail"]
                .iter()
                .find_map(|key| map.get(*key).and_then(Value::as_str))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            _ => None,
        }
    };
    let top = REASON_FIELDS.iter().find_map(|key| match answer.get(*key)? {
        Value::Array(items) => items.first().and_then(text),
        value => text(value),
    });
    top.or_else(|| {
        let metadata = answer.get("metadata")?.as_object()?;
        ["error", "error_message"].iter().find_map(|key| metadata.get(*key).and_then(text))
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How an update combines with the data FileSpin holds ("Update Data").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UpdateMode {
    /// `APPEND`: "append the data to any existing data"; a key sent overwrites its old value, the other
    /// keys stay.
    Append,
    /// `REPLACE`: "overwrite with the new data".
    Replace,
}

/// An Update Data request: `{"data": {…}, "mode": "APPEND"|"REPLACE", "data_schema_id": n}`, sent with
/// `?async=1` when [`asynchronous`](Self::asynchronous).
///
/// The docs' rules for `data`, which FileSpin enforces and the client does not check before sending:
/// at most [`MAX_DATA_CHARS`] characters ([`data_chars`](Self::data_chars) counts them); no field
/// beginning with `_filespin` ("a reserved field prefix … not user updateable"); a field
/// `filespin_search_txt` is indexed for search.
///
/// `Debug` shows the data's keys, not its values (metadata may be private).
#[derive(Clone, PartialEq)]
pub struct DataUpdate {
    /// The custom metadata to send.
    pub data: Map<String, Value>,
    /// How it combines with what FileSpin holds.
    pub mode: UpdateMode,
    /// "the optional schema id `data_schema_id` … to automatically assign a schema to the asset data";
    /// without one FileSpin assigns the Default Schema.
    pub data_schema_id: Option<u64>,
    /// Send with `?async=1` ("Update with Higher Throughput"): FileSpin answers 202 and applies the
    /// update later — "Get Data and Search may take seconds to minutes to reflect metadata changes".
    pub asynchronous: bool,
}

impl DataUpdate {
    /// A synchronous `APPEND` of `data`, without a schema.
    pub fn append(data: Map<String, Value>) -> Self {
        DataUpdate { data, mode: UpdateMode::Append, data_schema_id: None, asynchronous: false }
    }

    /// A synchronous `REPLACE` with `data`, without a schema.
    pub fn replace(data: Map<String, Value>) -> Self {
        DataUpdate { data, mode: UpdateMode::Replace, data_schema_id: None, asynchronous: false }
    }

    /// The characters (Unicode scalar values) of `data` written as compact JSON — what is compared with
    /// [`MAX_DATA_CHARS`].
    pub fn data_chars(&self) -> usize {
        serde_json::to_string(&self.data).map_or(usize::MAX, |text| text.chars().count())
    }

    /// The request body.
    pub(crate) fn body(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(Serialize)]
        struct Body<'a> {
            data: &'a Map<String, Value>,
            mode: UpdateMode,
            #[serde(skip_serializing_if = "Option::is_none")]
            data_schema_id: Option<u64>,
        }
        serde_json::to_vec(&Body { data: &self.data, mode: self.mode, data_schema_id: self.data_schema_id })
    }
}

impl std::fmt::Debug for DataUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataUpdate")
            .field("data", &Keys(&self.data))
            .field("mode", &self.mode)
            .field("data_schema_id", &self.data_schema_id)
            .field("asynchronous", &self.asynchronous)
            .finish()
    }
}

/// How FileSpin took an update ("Update Data", Response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateOutcome {
    /// 200 (or another 2xx but 202): the update is applied.
    Applied,
    /// 202: "Asset Metadata is being updated by another process at the same time" or the update was sent
    /// with `?async=1`. "Updates will be serialised and applied according to the time they were received":
    /// it will be applied, but Get Data may not show it yet.
    Accepted,
}

/// A map's keys, with its values hidden.
struct Keys<'a>(&'a Map<String, Value>);

impl std::fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|key| (key, "…"))).finish()
    }
}

/// Whether an error answer says the asset is not ready, whatever its shape: the docs give the status
/// (400) and the state's name (`NOT_READY`, "in-flight to Storage"), not the body.
pub(crate) fn says_not_ready(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    ["not_ready", "not ready", "not-ready", "notready", "in-flight to storage"]
        .iter()
        .any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(answer: Value) -> Result<AssetData, String> {
        AssetData::from_answer(answer.to_string().as_bytes(), "asked")
    }

    #[test]
    fn the_documented_example_is_read() {
        // "Asset Data Format", trimmed of conversions.
        let answer = json!({
            "id": "99d819953914402babbdeb68337ea6a3",
            "status": "OK",
            "name": "sample.mov",
            "size": 8836363,
            "checksum": "5F5F26BD7C0F62C6E02E44C73D09734E",
            "provider": "local",
            "public": false,
            "content_type": "video/quicktime",
            "data_schema_id": 1,
            "metadata": {"width": 1200, "height": 800, "duration": 30},
            "data": {"foo": "bar"},
            "conversions": {},
            "addons_info": {"ON_DEMAND_IMAGE": {"available": true}},
            "something_new": [1, 2, 3],
        });
        let asset = parse(answer).unwrap();
        assert_eq!(asset.id, "99d819953914402babbdeb68337ea6a3");
        assert_eq!(asset.status, AssetStatus::Ok);
        assert_eq!(asset.name.as_deref(), Some("sample.mov"));
        assert_eq!(asset.size, Some(8_836_363));
        assert_eq!(asset.checksum.as_deref(), Some("5f5f26bd7c0f62c6e02e44c73d09734e"), "lowercased");
        assert_eq!(Value::Object(asset.data.clone()), json!({"foo": "bar"}));
        assert_eq!(asset.reason, None);
        let shown = format!("{asset:?}");
        assert!(shown.contains("foo") && !shown.contains("bar"), "keys, not values: {shown}");
    }

    #[test]
    fn statuses_parse_and_never_fail() {
        for (text, status) in [
            ("OK", AssetStatus::Ok),
            ("ok", AssetStatus::Ok),
            ("NOT_READY", AssetStatus::NotReady),
            ("ERROR", AssetStatus::Error),
            ("ARCHIVED", AssetStatus::Archived),
            ("PROCESSING", AssetStatus::Other("PROCESSING".into())),
        ] {
            assert_eq!(AssetStatus::parse(text), status, "{text}");
        }
        assert_eq!(AssetStatus::NotReady.to_string(), "NOT_READY");
        assert_eq!(AssetStatus::Other("QUEUED".into()).as_str(), "QUEUED");
        assert_eq!(serde_json::to_value(AssetStatus::Archived).unwrap(), json!("ARCHIVED"));
        assert_eq!(
            serde_json::from_value::<AssetStatus>(json!("x")).unwrap(),
            AssetStatus::Other("x".into())
        );
        let asset = parse(json!({"status": "QUEUED", "message": "Queued for processing"})).unwrap();
        assert_eq!(asset.status, AssetStatus::Other("QUEUED".into()));
        assert_eq!(asset.id, "asked", "the id asked for when the answer has none");
    }

    #[test]
    fn an_error_reason_is_found_where_it_plausibly_is() {
        let cases = [
            json!({"status": "ERROR", "message": "not an image"}),
            json!({"status": "ERROR", "reason": "not an image", "message": "Asset error"}),
            json!({"status": "ERROR", "error": "not an image"}),
            json!({"status": "ERROR", "error": {"code": "BAD_FILE", "message": "not an image"}}),
            json!({"status": "ERROR", "errors": ["not an image", "second"]}),
            json!({"status": "ERROR", "errors": [{"description": "not an image"}]}),
            json!({"status": "ERROR", "error_message": "not an image"}),
            json!({"status": "ERROR", "metadata": {"error": "not an image"}}),
        ];
        for answer in cases {
            assert_eq!(parse(answer.clone()).unwrap().reason.as_deref(), Some("not an image"), "{answer}");
        }
        assert_eq!(parse(json!({"status": "ERROR"})).unwrap().reason, None);
        assert_eq!(parse(json!({"status": "ERROR", "message": "  "})).unwrap().reason, None);
        assert_eq!(parse(json!({"status": "OK", "message": "fine"})).unwrap().reason, None, "only off OK");
    }

    #[test]
    fn loose_fields_are_read_or_left_out() {
        let asset =
            parse(json!({"id": 42, "status": "OK", "size": "17", "checksum": "", "name": 5})).unwrap();
        assert_eq!((asset.id.as_str(), asset.size, asset.checksum, asset.name), ("42", Some(17), None, None));
        assert_eq!(parse(json!({"status": "OK", "size": 17.0})).unwrap().size, Some(17));
        assert_eq!(parse(json!({"status": "OK", "size": -1})).unwrap().size, None);
        assert!(parse(json!({"status": "OK", "data": null})).unwrap().data.is_empty());
    }

    #[test]
    fn answers_that_are_not_asset_data_are_refused() {
        for (answer, says) in [
            ("<html>502</html>", "not the documented JSON"),
            ("[1]", "not a JSON object"),
            ("{}", "status is missing"),
            (r#"{"status": 1}"#, "status is not a string"),
            (r#"{"status": "OK", "data": [1]}"#, "data is not a JSON object"),
        ] {
            let error = AssetData::from_answer(answer.as_bytes(), "a").unwrap_err();
            assert!(error.contains(says), "{answer}: {error}");
        }
    }

    #[test]
    fn the_update_body_is_the_documented_one() {
        let data = json!({"input1": "value1", "filespin_search_txt": "MY_OWN_FILE_ID"});
        let Value::Object(data) = data else { unreachable!() };
        let mut update = DataUpdate::append(data.clone());
        let body: Value = serde_json::from_slice(&update.body().unwrap()).unwrap();
        assert_eq!(body, json!({"data": data, "mode": "APPEND"}));
        update.mode = UpdateMode::Replace;
        update.data_schema_id = Some(1);
        let body: Value = serde_json::from_slice(&update.body().unwrap()).unwrap();
        assert_eq!(body, json!({"data": data, "mode": "REPLACE", "data_schema_id": 1}));
        assert_eq!(DataUpdate::replace(Map::new()).data_chars(), 2, "{{}}");
        let shown = format!("{update:?}");
        assert!(shown.contains("input1") && !shown.contains("value1"), "{shown}");
    }

    #[test]
    fn not_ready_is_recognised_in_any_shape() {
        for body in [
            r#"{"error": "NOT_READY"}"#,
            r#"{"error": "BAD_REQUEST", "message": "Asset is not ready, retry after a few seconds"}"#,
            r#"{"status": "NOT_READY"}"#,
            "Asset is in-flight to Storage",
            "asset not-ready",
        ] {
            assert!(says_not_ready(body.as_bytes()), "{body}");
        }
        for body in [r#"{"error": "INVALID_REQUEST", "message": "mode must be APPEND"}"#, "", "ready"] {
            assert!(!says_not_ready(body.as_bytes()), "{body}");
        }
    }
}

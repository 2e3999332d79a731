//! The data an asset is given after its registration: the entry's custom metadata and the batch tag,
//! in one Update Data call (developers.filespin.io, "Assets - Data", "Update Data").

use serde_json::{Map, Value};
use spinlift_manifest::{Entry, MAX_DATA_CHARS};

/// The key FileSpin's search indexes ("Update Data": `filespin_search_txt`): the tag goes there, so an
/// asset can be found again by its old-system id.
pub(crate) const SEARCH_KEY: &str = "filespin_search_txt";

/// What to set on an entry's asset: its `data`, plus — when tagging — its id and the batch's name in
/// [`SEARCH_KEY`] (after any text the entry puts there itself). `Err` when the whole is more than
/// FileSpin takes in one update.
pub(crate) fn payload(
    entry: Entry<'_>,
    tag: bool,
    batch: Option<&str>,
) -> Result<Map<String, Value>, String> {
    let mut data = match entry.data() {
        // Validated as a JSON object when the manifest was read.
        Some(text) => serde_json::from_str::<Map<String, Value>>(text).map_err(|e| e.to_string())?,
        None => Map::new(),
    };
    if tag {
        let mut words: Vec<String> = Vec::new();
        if let Some(Value::String(own)) = data.get(SEARCH_KEY) {
            words.push(own.clone());
        }
        words.push(entry.id().to_owned());
        if let Some(batch) = batch {
            words.push(batch.to_owned());
        }
        data.insert(SEARCH_KEY.to_owned(), Value::String(words.join(" ")));
    }
    let chars = serde_json::to_string(&data).map_err(|e| e.to_string())?.chars().count();
    if chars > MAX_DATA_CHARS {
        return Err(format!(
            "its data with the tag is {chars} characters as JSON; FileSpin takes at most {MAX_DATA_CHARS} \
             in one update: shorten `data`, or run with --no-tag"
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(lines: &str) -> spinlift_manifest::Manifest {
        spinlift_manifest::Manifest::read_lines(lines.as_bytes(), std::path::Path::new("/srv")).unwrap()
    }

    #[test]
    fn the_tag_joins_the_entrys_own_search_text() {
        let m = manifest(
            "{\"path\": \"a.jpg\", \"id\": \"legacy-42\", \"data\": {\"title\": \"Sunset\", \"filespin_search_txt\": \"beach\"}}\n\
             {\"path\": \"b.jpg\"}\n",
        );
        let a = payload(m.entries.at(0), true, Some("spring-import")).unwrap();
        assert_eq!(a["filespin_search_txt"], "beach legacy-42 spring-import");
        assert_eq!(a["title"], "Sunset");
        let b = payload(m.entries.at(1), true, None).unwrap();
        assert_eq!(Value::Object(b), serde_json::json!({"filespin_search_txt": "b.jpg"}));
        assert!(payload(m.entries.at(1), false, None).unwrap().is_empty());
    }

    #[test]
    fn data_that_the_tag_pushes_over_the_limit_is_refused_with_what_to_do() {
        let long = "x".repeat(MAX_DATA_CHARS - 8);
        let m = manifest(&format!("{{\"path\": \"a.jpg\", \"data\": {{\"t\": \"{long}\"}}}}\n"));
        assert!(payload(m.entries.at(0), false, None).is_ok());
        assert!(payload(m.entries.at(0), true, None).unwrap_err().contains("--no-tag"));
    }
}

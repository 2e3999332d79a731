//! How a manifest keeps its entries: compactly, because a batch has millions of them.
//!
//! Every entry's path — and its id and file name, when they are not the defaults the path implies — lives
//! end to end in one arena string, with its `data`; an entry is 28 bytes of offsets and lengths into it. A million entries
//! with 25-byte paths take about 50 MB, not the 200 MB that three `String`s an entry would. The arena is
//! shared ([`Arc`]), so a [`Manifest`](crate::Manifest) clones in constant time (a run's report keeps
//! one).
//!
//! An [`Entry`] is a borrowed view of one entry.

use std::sync::Arc;

use crate::error::Position;

/// The entries of a manifest, in manifest order. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Entries {
    inner: Arc<Arena>,
}

#[derive(Default)]
struct Arena {
    text: String,
    spans: Vec<Span>,
}

/// Where one entry's strings are in [`Arena::text`]: the path at `start`, then the id (unless it is the
/// path), then the file name (unless it is the path's last component).
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    /// The path's length; [`REMOTE`] set for a remote entry (its `source`).
    path_len: u32,
    /// `SAME`: the id is the path.
    id_len: u32,
    /// `SAME`: the file name is the path's last component.
    filename_len: u32,
    /// The entry's `data` as compact JSON, after the file name; 0: none.
    data_len: u32,
    /// 0-based index of the entry among all the manifest's entries (other shards' included).
    index: u32,
    /// 1-based line of a JSON Lines manifest; 0 when not known.
    line: u32,
}

const SAME: u32 = u32::MAX;
/// The bit of [`Span::path_len`] that marks a remote entry (texts are under 4 GiB in all, so a single
/// path is far under 2 GiB).
const REMOTE: u32 = 1 << 31;

/// One manifest entry: a file to upload. A view into the manifest's [`Entries`]; `Copy`.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    arena: &'a Arena,
    span: Span,
}

impl<'a> Entry<'a> {
    /// The entry's unique id within the manifest (default: its path).
    pub fn id(&self) -> &'a str {
        match self.span.id_len {
            SAME => self.path(),
            len => self.slice(self.span.start + self.path_len(), len),
        }
    }

    /// The path as written in the manifest, relative to the root; for a remote entry its `source` as
    /// written (a URL, or a key relative to the manifest's `source_root`), which may carry a query:
    /// show [`shown_path`](Self::shown_path) instead.
    pub fn path(&self) -> &'a str {
        self.slice(self.span.start, self.path_len())
    }

    /// Whether the entry names a remote object (`source`) rather than a local file (`path`).
    pub fn is_remote(&self) -> bool {
        self.span.path_len & REMOTE != 0
    }

    /// The path as reports, errors and logs show it: a remote entry's source without its query (which
    /// may be a signature) and user information; a local path as written.
    pub fn shown_path(&self) -> std::borrow::Cow<'a, str> {
        if self.is_remote() && self.path().contains(['?', '#', '@']) {
            std::borrow::Cow::Owned(crate::remote::redact(self.path()))
        } else {
            std::borrow::Cow::Borrowed(self.path())
        }
    }

    fn path_len(&self) -> u32 {
        self.span.path_len & !REMOTE
    }

    /// The file name FileSpin is told (default: the path's last component).
    pub fn filename(&self) -> &'a str {
        match self.span.filename_len {
            SAME => last_component(self.path()),
            len => {
                let id_len = if self.span.id_len == SAME { 0 } else { self.span.id_len };
                self.slice(self.span.start + self.path_len() + id_len, len)
            }
        }
    }

    /// The entry's custom metadata (`data`) as compact JSON text, validated; `None` when it has none.
    pub fn data(&self) -> Option<&'a str> {
        if self.span.data_len == 0 {
            return None;
        }
        let id_len = if self.span.id_len == SAME { 0 } else { self.span.id_len };
        let filename_len = if self.span.filename_len == SAME { 0 } else { self.span.filename_len };
        Some(self.slice(self.span.start + self.path_len() + id_len + filename_len, self.span.data_len))
    }

    /// Where the entry is in the manifest.
    pub fn position(&self) -> Position {
        Position::Entry {
            index: self.span.index as usize,
            line: (self.span.line != 0).then_some(self.span.line as usize),
        }
    }

    fn slice(&self, start: u32, len: u32) -> &'a str {
        &self.arena.text[start as usize..(start + len) as usize]
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id())
            .field("path", &self.shown_path())
            .field("remote", &self.is_remote())
            .field("filename", &self.filename())
            .field("position", &self.position())
            .finish()
    }
}

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
            && self.path() == other.path()
            && self.is_remote() == other.is_remote()
            && self.filename() == other.filename()
            && self.position() == other.position()
    }
}

impl Eq for Entry<'_> {}

/// What `Path::file_name` gives for a path written with `/` separators and ending in a name.
fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Entries {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.inner.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.spans.is_empty()
    }

    /// The entry at `at` (0-based, in this manifest's order).
    pub fn get(&self, at: usize) -> Option<Entry<'_>> {
        self.inner.spans.get(at).map(|&span| Entry { arena: &self.inner, span })
    }

    /// The entry at `at`.
    ///
    /// # Panics
    /// When `at` is out of range.
    pub fn at(&self, at: usize) -> Entry<'_> {
        Entry { arena: &self.inner, span: self.inner.spans[at] }
    }

    /// The entries in manifest order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry<'_>> + DoubleEndedIterator + '_ {
        self.inner.spans.iter().map(|&span| Entry { arena: &self.inner, span })
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = Entry<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Entry<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Entries being added, before they are shared.
#[derive(Default)]
pub(crate) struct EntriesBuilder {
    arena: Arena,
}

impl std::fmt::Debug for EntriesBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntriesBuilder").field("len", &self.len()).finish()
    }
}

/// The arena holds at most this many bytes (offsets are 32-bit).
pub(crate) const MAX_TEXT: usize = u32::MAX as usize - 1;

impl EntriesBuilder {
    pub(crate) fn len(&self) -> usize {
        self.arena.spans.len()
    }

    /// Adds an entry; `Err` with a message when the manifest outgrows the arena.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        id: Option<&str>,
        path: &str,
        remote: bool,
        filename: &str,
        data: Option<&str>,
        index: usize,
        line: Option<usize>,
    ) -> Result<(), String> {
        let id = id.filter(|id| *id != path);
        let filename = (filename != last_component(path)).then_some(filename);
        let data = data.unwrap_or_default();
        let added = path.len() + id.map_or(0, str::len) + filename.map_or(0, str::len) + data.len();
        if path.len() >= REMOTE as usize {
            return Err("a path or source longer than 2 GiB".into());
        }
        if self.arena.text.len() + added > MAX_TEXT {
            return Err("the manifest's paths and ids exceed 4 GiB: split it into several manifests, \
                        or run it in shards (--shard)"
                .into());
        }
        let start = self.arena.text.len() as u32;
        self.arena.text.push_str(path);
        if let Some(id) = id {
            self.arena.text.push_str(id);
        }
        if let Some(filename) = filename {
            self.arena.text.push_str(filename);
        }
        self.arena.text.push_str(data);
        self.arena.spans.push(Span {
            start,
            path_len: path.len() as u32 | if remote { REMOTE } else { 0 },
            id_len: id.map_or(SAME, |id| id.len() as u32),
            filename_len: filename.map_or(SAME, |f| f.len() as u32),
            data_len: data.len() as u32,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            line: line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0),
        });
        Ok(())
    }

    /// The entry at `at` of those added so far.
    pub(crate) fn at(&self, at: usize) -> Entry<'_> {
        Entry { arena: &self.arena, span: self.arena.spans[at] }
    }

    pub(crate) fn finish(mut self) -> Entries {
        self.arena.text.shrink_to_fit();
        self.arena.spans.shrink_to_fit();
        Entries { inner: Arc::new(self.arena) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_takes_28_bytes_besides_its_text() {
        assert_eq!(std::mem::size_of::<Span>(), 28);
    }

    #[test]
    fn defaults_are_not_stored_and_come_back() {
        let mut b = EntriesBuilder::default();
        b.push(None, "photos/a.jpg", false, "a.jpg", None, 0, Some(2)).unwrap();
        b.push(Some("legacy-7"), "b.jpg", false, "renamed.jpg", Some(r#"{"k":1}"#), 1, None).unwrap();
        b.push(Some("c.jpg"), "c.jpg", false, "c.jpg", None, 2, None).unwrap();
        let entries = b.finish();
        assert_eq!(entries.inner.text, r#"photos/a.jpgb.jpglegacy-7renamed.jpg{"k":1}c.jpg"#);
        let a = entries.at(0);
        assert_eq!((a.id(), a.path(), a.filename()), ("photos/a.jpg", "photos/a.jpg", "a.jpg"));
        assert_eq!(a.position(), Position::Entry { index: 0, line: Some(2) });
        let b = entries.at(1);
        assert_eq!((b.id(), b.path(), b.filename()), ("legacy-7", "b.jpg", "renamed.jpg"));
        assert_eq!((a.data(), b.data()), (None, Some(r#"{"k":1}"#)));
        assert_eq!(b.position(), Position::Entry { index: 1, line: None });
        assert_eq!(entries.at(2).id(), "c.jpg");
        assert_eq!(entries.iter().count(), 3);
    }
}

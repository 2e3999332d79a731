//! How a replayed journal keeps its entries: compactly, because a journal of a large manifest has
//! millions of them and replay must not take more memory than a few hundred bytes each.
//!
//! - Ids live end to end in one arena string, not in a `String` each (no allocation, no malloc header).
//! - Entries live in a `Vec` in the order their ids first appear, found through an open-addressing index
//!   of `u64`s (a 32-bit hash and a 32-bit position), kept at most half full.
//! - The common final state, `Registered` with a 32-hex asset id and MD5, is kept as 16 + 16 bytes and
//!   numbers ([`Slot::Registered`]); anything else is boxed ([`Slot::Other`]) with its form as the JSON
//!   text the journal holds ([`Form`]), not as a [`serde_json::Value`] tree (which takes several times
//!   the text's size).
//!
//! A [`Record`] is rebuilt on demand, equal to the one replayed.

use std::hash::{BuildHasher, RandomState};

use spinlift_core::State;

use super::record::{Form, Record, SourceStamp};

/// The entries of a replayed journal: the last record of each id.
#[derive(Clone, Default)]
pub(super) struct Entries {
    /// Every id ever inserted, end to end.
    ids: String,
    /// One per id, in the order ids first appeared; a taken entry stays, as [`Slot::Taken`].
    entries: Vec<Entry>,
    index: Index,
    /// Entries not taken.
    live: usize,
}

#[derive(Clone)]
struct Entry {
    /// Where the id starts in [`Entries::ids`]; it ends where the next entry's starts (ids are appended
    /// in the order entries are), or at the end of `ids` for the last: 8 bytes an entry saved.
    start: usize,
    slot: Slot,
}

/// One entry's last record, without its id.
#[derive(Clone, PartialEq)]
pub(super) enum Slot {
    /// `Registered` (or `DataSet`, `Verified`: [`Stage`]) whose asset id and MD5 are 32 lowercase hex
    /// digits each.
    /// `source` is kept unwrapped, with `has_source` beside `stage`, so the slot stays 64 bytes.
    Registered {
        asset_id: [u8; 16],
        md5: [u8; 16],
        size: u64,
        source: SourceStamp,
        has_source: bool,
        stage: Stage,
    },
    /// Any other record.
    Other(Box<Other>),
    /// Removed by [`Entries::take`].
    Taken,
}

/// How far a registered entry went after its registration.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Registered,
    DataSet,
    Verified { data_set: bool },
}

impl Stage {
    fn state(self, asset_id: String, size: u64, md5: String) -> State {
        match self {
            Stage::Registered => State::Registered { asset_id, size, md5 },
            Stage::DataSet => State::DataSet { asset_id, size, md5 },
            Stage::Verified { data_set } => State::Verified { asset_id, size, md5, data_set },
        }
    }
}

/// A record kept as it is, but for its form.
#[derive(Clone, PartialEq)]
pub(super) struct Other {
    state: State,
    form: Option<Form>,
    source: Option<SourceStamp>,
}

impl Slot {
    /// The slot of a `Registered` state given by its parts.
    pub(super) fn registered(asset_id: &str, size: u64, md5: &str, source: Option<SourceStamp>) -> Slot {
        Slot::registered_at(Stage::Registered, asset_id, size, md5, source)
    }

    fn registered_at(
        stage: Stage,
        asset_id: &str,
        size: u64,
        md5: &str,
        source: Option<SourceStamp>,
    ) -> Slot {
        match (hex_16(asset_id), hex_16(md5)) {
            (Some(asset_id), Some(md5)) => Slot::Registered {
                asset_id,
                md5,
                size,
                source: source.unwrap_or(SourceStamp { size: 0, mtime_ms: 0, tag: 0 }),
                has_source: source.is_some(),
                stage,
            },
            _ => {
                let state = stage.state(asset_id.to_owned(), size, md5.to_owned());
                Slot::Other(Box::new(Other { state, form: None, source }))
            }
        }
    }

    /// The slot of `record`'s state, form and source.
    pub(super) fn of(record: Record) -> Slot {
        if record.form.is_none() {
            let stage = match &record.state {
                State::Registered { .. } => Some(Stage::Registered),
                State::DataSet { .. } => Some(Stage::DataSet),
                State::Verified { data_set, .. } => Some(Stage::Verified { data_set: *data_set }),
                _ => None,
            };
            if let (Some(stage), Some((asset_id, size, md5))) = (stage, record.state.registered()) {
                return Slot::registered_at(stage, asset_id, size, md5, record.source);
            }
        }
        Slot::Other(Box::new(Other { state: record.state, form: record.form, source: record.source }))
    }

    /// The record of entry `id`; `None` once taken.
    fn record(&self, id: &str) -> Option<Record> {
        match self {
            Slot::Registered { asset_id, md5, size, source, has_source, stage } => Some(Record {
                id: id.to_owned(),
                state: stage.state(to_hex(asset_id), *size, to_hex(md5)),
                form: None,
                source: has_source.then_some(*source),
            }),
            Slot::Other(other) => Some(Record {
                id: id.to_owned(),
                state: other.state.clone(),
                form: other.form.clone(),
                source: other.source,
            }),
            Slot::Taken => None,
        }
    }
}

impl Slot {
    /// Takes the form of `previous` (the entry's record before this one) when this record is of an
    /// upload and carries none, and `previous` is the record of the same asset id's form: the engine
    /// writes a form only with `FormIssued` (the bytes of a second copy per file were measured at a
    /// third of the journal's cost on small files), and a resumed `Uploaded` entry whose source changed
    /// uploads again with it.
    fn inherit_form(&mut self, previous: &mut Slot) {
        let (Slot::Other(this), Slot::Other(before)) = (self, previous) else { return };
        if this.form.is_none()
            && matches!(this.state, State::Uploaded { .. })
            && before.form.is_some()
            && before.state.asset_id().is_some()
            && before.state.asset_id() == this.state.asset_id()
        {
            this.form = before.form.take();
        }
    }
}

impl Entries {
    /// Makes `slot` the last record of `id`. A record of an upload without a form keeps the form of
    /// the record before it ([`Slot::inherit_form`]).
    pub(super) fn upsert(&mut self, id: &str, mut slot: Slot) {
        self.index.reserve_for(self.entries.len() + 1);
        let hash = self.index.hash(id);
        match self.index.find(hash, |at| self.id_at(at) == id) {
            Found::At(at) => {
                let entry = &mut self.entries[at];
                if matches!(entry.slot, Slot::Taken) {
                    self.live += 1;
                }
                slot.inherit_form(&mut entry.slot);
                entry.slot = slot;
            }
            Found::Vacant(place) => {
                let at = self.entries.len();
                let start = self.ids.len();
                self.ids.push_str(id);
                self.entries.push(Entry { start, slot });
                self.index.fill(place, hash, at);
                self.live += 1;
            }
        }
    }

    fn id_at(&self, at: usize) -> &str {
        let end = self.entries.get(at + 1).map_or(self.ids.len(), |next| next.start);
        &self.ids[self.entries[at].start..end]
    }

    fn position(&self, id: &str) -> Option<usize> {
        match self.index.find(self.index.hash(id), |at| self.id_at(at) == id) {
            Found::At(at) if !matches!(self.entries[at].slot, Slot::Taken) => Some(at),
            _ => None,
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<Record> {
        self.position(id).and_then(|at| self.entries[at].slot.record(id))
    }

    pub(super) fn take(&mut self, id: &str) -> Option<Record> {
        let at = self.position(id)?;
        let slot = std::mem::replace(&mut self.entries[at].slot, Slot::Taken);
        self.live -= 1;
        slot.record(id)
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The ids not taken, in the order they first appeared in the journal.
    pub(super) fn ids(&self) -> impl Iterator<Item = &str> {
        self.live_positions().map(|at| self.id_at(at))
    }

    /// The records not taken, in the order their ids first appeared in the journal.
    pub(super) fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.live_positions().filter_map(|at| self.entries[at].slot.record(self.id_at(at)))
    }

    /// The records not taken, sorted by id.
    pub(super) fn records_by_id(&self) -> impl Iterator<Item = Record> + '_ {
        let mut order: Vec<usize> = self.live_positions().collect();
        // Stable sort: a journal written as a snapshot is sorted already, and a run of sorted ids costs
        // one pass.
        order.sort_by(|&a, &b| self.id_at(a).cmp(self.id_at(b)));
        order.into_iter().filter_map(|at| self.entries[at].slot.record(self.id_at(at)))
    }

    fn live_positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.entries.len()).filter(|&at| !matches!(self.entries[at].slot, Slot::Taken))
    }

    pub(super) fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
        self.index.reserve_for(self.entries.len() + additional);
    }

    /// Gives back the memory that growing ahead left unused, when it is much.
    pub(super) fn shrink(&mut self) {
        if self.entries.capacity() > self.entries.len() + self.entries.len() / 4 + 64 {
            self.entries.shrink_to_fit();
        }
        if self.ids.capacity() > self.ids.len() + self.ids.len() / 4 + 1024 {
            self.ids.shrink_to_fit();
        }
    }
}

impl PartialEq for Entries {
    /// The same ids with the same records (whatever the order they were replayed in).
    fn eq(&self, other: &Self) -> bool {
        self.live == other.live
            && self.live_positions().all(|at| {
                let id = self.id_at(at);
                other.position(id).is_some_and(|there| other.entries[there].slot == self.entries[at].slot)
            })
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.records().map(|record| (record.id.clone(), record))).finish()
    }
}

/// Where a lookup in the [`Index`] ended.
enum Found {
    /// The entry at this position in [`Entries::entries`] has the id.
    At(usize),
    /// No entry has it; this index slot is free for it.
    Vacant(usize),
}

/// An open-addressing hash index (linear probing) over the positions of [`Entries::entries`]. Each slot
/// is `0` (free) or `hash << 32 | (position + 1)`; nothing is ever removed.
#[derive(Clone, Default)]
struct Index {
    slots: Vec<u64>,
    hasher: RandomState,
}

impl Index {
    fn hash(&self, id: &str) -> u32 {
        (self.hasher.hash_one(id) >> 32) as u32
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Probes from `hash`'s home slot; `is_it(position)` compares the id at a position with the one
    /// looked for (it is only asked for positions with the same hash).
    fn find(&self, hash: u32, is_it: impl Fn(usize) -> bool) -> Found {
        if self.slots.is_empty() {
            return Found::Vacant(0);
        }
        let mask = self.mask();
        let mut place = hash as usize & mask;
        loop {
            let slot = self.slots[place];
            if slot == 0 {
                return Found::Vacant(place);
            }
            if (slot >> 32) as u32 == hash {
                let at = (slot as u32 - 1) as usize;
                if is_it(at) {
                    return Found::At(at);
                }
            }
            place = (place + 1) & mask;
        }
    }

    fn fill(&mut self, place: usize, hash: u32, at: usize) {
        let at = u32::try_from(at + 1).expect("fewer than 2^32 - 1 journal entries");
        self.slots[place] = (u64::from(hash) << 32) | u64::from(at);
    }

    /// Grows (doubling, at least 16 slots) so that `count` entries fill at most half the slots.
    fn reserve_for(&mut self, count: usize) {
        if count * 2 <= self.slots.len() {
            return;
        }
        let size = (count * 2).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        let mask = self.mask();
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            let mut place = (slot >> 32) as usize & mask;
            while self.slots[place] != 0 {
                place = (place + 1) & mask;
            }
            self.slots[place] = slot;
        }
    }
}

/// The 16 bytes that 32 lowercase hex digits spell; `None` for anything else (uppercase included: it
/// would not come back the same).
fn hex_16(text: &str) -> Option<[u8; 16]> {
    let digits = text.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(bytes)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn to_hex(bytes: &[u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_entry_takes_few_bytes() {
        assert!(std::mem::size_of::<Entry>() <= 80, "{}", std::mem::size_of::<Entry>());
    }

    #[test]
    fn hex_comes_back_the_same() {
        let text = "0123456789abcdef00ff10e0d9c8b7a6";
        assert_eq!(to_hex(&hex_16(text).unwrap()), text);
        assert_eq!(hex_16("0123456789ABCDEF00ff10e0d9c8b7a6"), None);
        assert_eq!(hex_16("0123456789abcdef00ff10e0d9c8b7a"), None);
        assert_eq!(hex_16("0123456789abcdef00ff10e0d9c8b7ag"), None);
    }
}

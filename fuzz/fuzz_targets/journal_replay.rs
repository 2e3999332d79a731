//! `journal::replay` on any file content.
//!
//! Properties checked on every input:
//! - it never panics (and never hangs: libFuzzer's `-timeout`), and an existing file never replays to
//!   `Ok(None)`;
//! - `Ok`: the replayed entries agree with themselves (`len`, `ids`, `get`, `contains`, `records`,
//!   `take`), and `records_read` counts at least one record per entry;
//! - `Ok`, when the header is written the way the journal writes it (`{"type":"header"` first): the
//!   file cut at any byte replays too, to a prefix of the records (ids in the same first-seen order,
//!   no more records read), with the header's fingerprint once the header line is whole;
//! - `Ok`: damaging one non-blank line that is not the last one is `Corrupt`, naming that line;
//! - `Err(Corrupt)`: the line it names exists, and the message names it.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use spinlift_manifest::journal::{JournalError, Replayed, replay};

fuzz_target!(|data: &[u8]| {
    let path = scratch_path();
    let result = replay_bytes(&path, data);
    match &result {
        Ok(replayed) => {
            check_entries(replayed);
            if canonical_header(data) {
                check_cuts(&path, data, replayed);
            }
            check_damage(&path, data);
        }
        Err(JournalError::Corrupt { line, .. }) => check_corrupt(data, result.as_ref().unwrap_err(), *line),
        Err(_) => {}
    }
    let _ = std::fs::remove_file(&path);
});

/// A file of this process's own, in memory when `/dev/shm` exists; removed after each input.
fn scratch_path() -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
    dir.join(format!("spinlift-fuzz-journal-{}", std::process::id()))
}

fn replay_bytes(path: &Path, bytes: &[u8]) -> Result<Replayed, JournalError> {
    std::fs::write(path, bytes).expect("write the scratch journal");
    match replay(path) {
        Ok(Some(replayed)) => Ok(replayed),
        Ok(None) => panic!("a journal that exists replayed as missing"),
        Err(e) => Err(e),
    }
}

fn check_entries(replayed: &Replayed) {
    let ids: Vec<&str> = replayed.ids().collect();
    assert_eq!(ids.len(), replayed.len());
    assert_eq!(replayed.is_empty(), ids.is_empty());
    assert!(
        replayed.records_read >= ids.len() as u64,
        "{} records, {} entries",
        replayed.records_read,
        ids.len()
    );
    let records: Vec<_> = replayed.records().collect();
    assert_eq!(records.len(), ids.len());
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(*id, record.id);
        assert!(replayed.contains(id));
        assert_eq!(replayed.get(id).as_ref(), Some(record), "{id:?}");
        if record.state.is_final() {
            assert!(record.form.is_none(), "{id:?} keeps the form of a final state");
        }
    }
    let mut taken = replayed.clone();
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(taken.take(id).as_ref(), Some(record));
        assert_eq!(taken.take(id), None);
        assert!(!taken.contains(id));
    }
    assert!(taken.is_empty());
}

/// Whether the first non-blank line starts the way the journal writes its header.
fn canonical_header(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').map(<[u8]>::trim_ascii).find(|line| !line.is_empty());
    first.is_some_and(|line| line.starts_with(br#"{"type":"header""#))
}

fn check_cuts(path: &Path, data: &[u8], whole: &Replayed) {
    let whole_ids: Vec<&str> = whole.ids().collect();
    let header_end = data.iter().position(|&b| b == b'\n').map_or(data.len() + 1, |at| at + 1);
    let cuts = (1..8).map(|eighth| data.len() * eighth / 8).chain([data.len().saturating_sub(1)]);
    for cut in cuts {
        let part = replay_bytes(path, &data[..cut])
            .unwrap_or_else(|e| panic!("the whole file replays, cut at byte {cut} of {}: {e}", data.len()));
        check_entries(&part);
        assert!(part.records_read <= whole.records_read, "cut at byte {cut}");
        let part_ids: Vec<&str> = part.ids().collect();
        assert!(whole_ids.starts_with(&part_ids), "cut at byte {cut}: {part_ids:?} / {whole_ids:?}");
        // A header line preceded by blank lines ends later; only the simple case is checked.
        if cut >= header_end && data.starts_with(br#"{"type":"header""#) {
            assert_eq!(part.fingerprint, whole.fingerprint, "cut at byte {cut}");
        }
    }
}

/// The bytes of each line (without its `\n`), with where it starts.
fn lines(data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut start = 0;
    data.split(|&b| b == b'\n')
        .map(|line| {
            let at = start;
            start += line.len() + 1;
            (at, line)
        })
        .collect()
}

fn check_damage(path: &Path, data: &[u8]) {
    let lines = lines(data);
    let non_blank: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].1.trim_ascii().is_empty()).collect();
    let Some((_last, before)) = non_blank.split_last() else { return };
    if before.is_empty() {
        return;
    }
    // One line that is not the last, chosen by the input itself.
    let pick = before[data.len() % before.len()];
    let (start, line) = lines[pick];
    let mut damaged = data[..start].to_vec();
    damaged.extend_from_slice(b"#");
    damaged.extend_from_slice(&data[start + line.len()..]);
    let number = pick as u64 + 1;
    match replay_bytes(path, &damaged) {
        Err(JournalError::Corrupt { line, message, .. }) => {
            assert_eq!(line, number, "damaged line {number}, error names line {line}: {message}");
        }
        other => panic!("damaged line {number}: expected Corrupt, got {other:?}"),
    }
}

fn check_corrupt(data: &[u8], error: &JournalError, line: u64) {
    let count = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    assert!((1..=count).contains(&line), "line {line} of {count}: {error}");
    assert!(error.to_string().contains(&format!("line {line}")), "{error}");
}

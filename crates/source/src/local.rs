//! Local files through the same interface: a metadata call for `head`; for `open`, one trip to the
//! blocking pool that checks, opens and reads the first chunk.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use crate::{ObjectMeta, ObjectReader, Opened, SourceError};

/// The most of a file `open` reads in its blocking call (all of a small file).
pub(crate) const PREFIX_MAX: usize = 256 * 1024;

pub(crate) async fn head(path: &Path, shown: String) -> Result<ObjectMeta, SourceError> {
    let path = path.to_owned();
    blocking(shown.clone(), move || {
        let metadata = std::fs::metadata(&path).map_err(|e| io_error(e, &shown))?;
        check_regular(&metadata, &shown)?;
        Ok(meta_of(&metadata))
    })
    .await
}

pub(crate) async fn open(path: &Path, shown: String, expected: &ObjectMeta) -> Result<Opened, SourceError> {
    let path = path.to_owned();
    let expected = expected.clone();
    let url = shown.clone();
    let (meta, prefix, prefix_is_all, file) =
        blocking(shown.clone(), move || open_blocking(&path, &shown, &expected)).await?;
    let reader = if prefix_is_all {
        ObjectReader::empty()
    } else {
        ObjectReader::file(tokio::fs::File::from_std(file), prefix.len() as u64, meta.size, url)
    };
    Ok(Opened { meta, prefix, prefix_is_all, reader })
}

/// Checks, opens, compares with `expected` and reads the first chunk, blocking.
fn open_blocking(
    path: &Path,
    shown: &str,
    expected: &ObjectMeta,
) -> Result<(ObjectMeta, Bytes, bool, File), SourceError> {
    // Opened without blocking (a FIFO put in the file's place would block until a writer came), then
    // its type checked on the open file: one look at the path, not two.
    let mut file = open_nonblocking(path).map_err(|e| io_error(e, shown))?;
    let metadata = file.metadata().map_err(|e| io_error(e, shown))?;
    check_regular(&metadata, shown)?;
    let meta = meta_of(&metadata);
    if meta.size != expected.size {
        return Err(changed(shown, format!("its size is {} bytes, {} expected", meta.size, expected.size)));
    }
    if let (Some(now), Some(then)) = (meta.last_modified_ms, expected.last_modified_ms)
        && now != then
    {
        return Err(changed(shown, format!("it was modified (mtime {now} ms, {then} ms expected)")));
    }
    let want = usize::try_from(meta.size).unwrap_or(usize::MAX).min(PREFIX_MAX);
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..]) {
            Ok(0) => {
                let what =
                    format!("the file is shorter than when it was opened: {filled} of {} bytes", meta.size);
                return Err(changed(shown, what));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e, shown)),
        }
    }
    let mut prefix_is_all = false;
    if want as u64 == meta.size {
        // All of it: confirm that it ends there.
        let mut probe = [0u8; 1];
        loop {
            match file.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    let what =
                        format!("the file grew past the {} bytes it had when it was opened", meta.size);
                    return Err(changed(shown, what));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, shown)),
            }
        }
        prefix_is_all = true;
    }
    Ok((meta, Bytes::from(buf), prefix_is_all, file))
}

/// Opens `path` for reading with `O_NONBLOCK` where there is one: it changes nothing for a regular
/// file, and keeps the open of anything else from waiting.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

async fn blocking<T: Send + 'static>(
    shown: String,
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => {
            Err(SourceError::Unreadable { url: shown, message: format!("the blocking read failed: {e}") })
        }
    }
}

fn changed(shown: &str, what: String) -> SourceError {
    SourceError::Changed { url: shown.to_owned(), what }
}

fn meta_of(metadata: &Metadata) -> ObjectMeta {
    let last_modified_ms = metadata.modified().ok().map(|mtime| match mtime.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    });
    ObjectMeta { size: metadata.len(), etag: None, version: None, last_modified_ms }
}

/// A regular file, or [`SourceError::NotAFile`] saying what it is.
fn check_regular(metadata: &Metadata, shown: &str) -> Result<(), SourceError> {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    let what = if file_type.is_dir() { "a directory" } else { special_kind(&file_type) };
    Err(SourceError::NotAFile { url: shown.to_owned(), what: what.to_owned() })
}

#[cfg(unix)]
fn special_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "something other than a file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "something other than a file"
}

fn io_error(error: io::Error, shown: &str) -> SourceError {
    let url = shown.to_owned();
    match error.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound { url },
        io::ErrorKind::PermissionDenied => SourceError::Denied {
            url,
            status: None,
            message: "permission denied: check the file's permissions and the user spinlift runs as".into(),
        },
        _ => SourceError::Unreadable { url, message: error.to_string() },
    }
}

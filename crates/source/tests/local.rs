//! Local files through the same interface.

use std::io;
use std::time::Duration;

use spinlift_source::{ObjectMeta, SourceError, SourceUrl, Sources, SourcesConfig};
use tokio::io::AsyncReadExt;

fn sources() -> Sources {
    Sources::new(SourcesConfig::default()).unwrap()
}

fn local(path: &std::path::Path) -> SourceUrl {
    SourceUrl::parse(path.to_str().unwrap()).unwrap()
}

async fn read(opened: &mut spinlift_source::Opened) -> io::Result<Vec<u8>> {
    let mut bytes = opened.prefix.to_vec();
    opened.reader.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

#[tokio::test]
async fn a_small_file_is_all_in_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.jpg");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let sources = sources();
    let url = local(&path);
    let meta = sources.head(&url).await.unwrap();
    assert_eq!(meta.size, 4096);
    assert_eq!(meta.etag, None);
    assert!(meta.last_modified_ms.is_some_and(|ms| ms > 1_600_000_000_000));
    assert_eq!(meta.fingerprint(), 0);
    let mut opened = sources.open(&url, &meta).await.unwrap();
    assert!(opened.prefix_is_all);
    assert_eq!(opened.prefix.as_ref(), bytes.as_slice());
    let mut rest = Vec::new();
    opened.reader.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(url.file_name(), "small.jpg");
}

#[tokio::test]
async fn a_large_file_continues_after_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.bin");
    let bytes: Vec<u8> = (0..(1u32 << 20) + 17).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let sources = sources();
    let url = local(&path);
    let meta = sources.head(&url).await.unwrap();
    let mut opened = sources.open(&url, &meta).await.unwrap();
    assert_eq!(opened.prefix.len(), 256 * 1024);
    assert!(!opened.prefix_is_all);
    assert_eq!(read(&mut opened).await.unwrap(), bytes);
    // Exactly the prefix size: still all in the prefix, its end confirmed.
    std::fs::write(&path, &bytes[..256 * 1024]).unwrap();
    let meta = sources.head(&url).await.unwrap();
    let opened = sources.open(&url, &meta).await.unwrap();
    assert!(opened.prefix_is_all);
    // Empty.
    std::fs::write(&path, b"").unwrap();
    let meta = sources.head(&url).await.unwrap();
    let mut opened = sources.open(&url, &meta).await.unwrap();
    assert!(opened.prefix_is_all && opened.prefix.is_empty());
    assert!(read(&mut opened).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_file_that_changed_since_its_head_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.bin");
    std::fs::write(&path, vec![1u8; 1000]).unwrap();
    let sources = sources();
    let url = local(&path);
    let meta = sources.head(&url).await.unwrap();
    std::fs::write(&path, vec![1u8; 1001]).unwrap();
    let e = sources.open(&url, &meta).await.unwrap_err();
    assert!(matches!(e, SourceError::Changed { .. }), "{e}");
    assert!(e.is_retryable());
    // Same size, another mtime.
    let meta = sources.head(&url).await.unwrap();
    let older = ObjectMeta { last_modified_ms: meta.last_modified_ms.map(|ms| ms - 5000), ..meta };
    assert!(matches!(sources.open(&url, &older).await, Err(SourceError::Changed { .. })));
}

#[tokio::test]
async fn a_file_that_shrinks_while_read_fails_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; 600 * 1024]).unwrap();
    let sources = sources();
    let url = local(&path);
    let meta = sources.head(&url).await.unwrap();
    let mut opened = sources.open(&url, &meta).await.unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(300 * 1024).unwrap();
    let e = read(&mut opened).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(matches!(SourceError::from_io(&e), Some(SourceError::Changed { .. })), "{e}");
}

#[tokio::test]
async fn directories_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources();
    let url = local(dir.path());
    let e = sources.head(&url).await.unwrap_err();
    assert!(matches!(e, SourceError::NotAFile { .. }), "{e}");
    assert!(e.to_string().ends_with("is a directory, not a regular file"), "{e}");
    assert!(!e.is_retryable());
    let e = sources.open(&url, &ObjectMeta::default()).await.unwrap_err();
    assert!(matches!(e, SourceError::NotAFile { .. }), "{e}");
    let missing = local(&dir.path().join("missing.jpg"));
    assert!(matches!(sources.head(&missing).await, Err(SourceError::NotFound { .. })));
    assert!(matches!(
        sources.open(&missing, &ObjectMeta::default()).await,
        Err(SourceError::NotFound { .. })
    ));
    let mut listing = sources.list(&url);
    use futures::StreamExt;
    assert!(matches!(listing.next().await, Some(Err(SourceError::Unsupported { .. }))));
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());
    let sources = sources();
    let url = local(&path);
    // Opening a FIFO without a writer would block forever; the type is checked first.
    let e = tokio::time::timeout(Duration::from_secs(5), sources.head(&url)).await.unwrap().unwrap_err();
    assert!(matches!(&e, SourceError::NotAFile { what, .. } if what.contains("FIFO")), "{e}");
    let e = tokio::time::timeout(Duration::from_secs(5), sources.open(&url, &ObjectMeta::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(&e, SourceError::NotAFile { what, .. } if what.contains("FIFO")), "{e}");
}

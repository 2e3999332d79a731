//! [`ObjectReader`]: an object's bytes as an `AsyncRead`, counted against the length announced.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::SourceError;

/// An opened object's bytes (after [`Opened::prefix`](crate::Opened::prefix)), as an [`AsyncRead`].
///
/// Memory stays bounded: it holds at most one chunk of the HTTP client's (or one read of the file).
/// The bytes are counted against the length the source announced when the object was opened:
///
/// | what happens | `io::ErrorKind` | inner [`SourceError`] (`get_ref`, or [`SourceError::from_io`]) |
/// |---|---|---|
/// | the body ends, or breaks off, before its announced end | `UnexpectedEof` | `Network` (remote), `Changed` (a local file that shrank) |
/// | the connection is reset or aborted | `ConnectionReset` / `ConnectionAborted` | `Network` |
/// | no byte arrives for `stall_timeout` while one is wanted | `TimedOut` | `Timeout` |
/// | more bytes than announced | `InvalidData` | `Changed` |
/// | a local read fails | the OS error's kind | `Unreadable` |
///
/// The first four kinds are the ones the transport retries. The stall clock runs only while the
/// reader is being polled and waiting for the source, so a consumer that pauses (a bandwidth limit)
/// does not make the source look stalled. After an error, every further read fails.
pub struct ObjectReader {
    inner: Inner,
}

enum Inner {
    /// Nothing (more) to read.
    Done,
    /// A read failed; further reads fail too.
    Failed(io::ErrorKind),
    Remote(Box<Remote>),
    File(Box<FileBody>),
}

struct Remote {
    stream: BoxStream<'static, Result<Bytes, io::Error>>,
    chunk: Bytes,
    read: u64,
    size: u64,
    url: String,
    stall_timeout: Duration,
    stall: Pin<Box<Sleep>>,
    /// Whether the stall clock is running (set when a poll finds the source with nothing to give).
    waiting: bool,
}

struct FileBody {
    file: tokio::fs::File,
    read: u64,
    size: u64,
    url: String,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Done => f.write_str("ObjectReader(done)"),
            Inner::Failed(kind) => write!(f, "ObjectReader(failed: {kind:?})"),
            Inner::Remote(r) => write!(f, "ObjectReader({}, {} of {} bytes)", r.url, r.read, r.size),
            Inner::File(r) => write!(f, "ObjectReader({}, {} of {} bytes)", r.url, r.read, r.size),
        }
    }
}

impl ObjectReader {
    /// A reader with nothing to read.
    pub fn empty() -> ObjectReader {
        ObjectReader { inner: Inner::Done }
    }

    /// The body of a remote object: `stream` yields its chunks (errors already given their io kind and
    /// a [`SourceError`] inside), `size` bytes in all.
    pub(crate) fn remote(
        stream: BoxStream<'static, Result<Bytes, io::Error>>,
        size: u64,
        url: String,
        stall_timeout: Duration,
    ) -> ObjectReader {
        let remote = Remote {
            stream,
            chunk: Bytes::new(),
            read: 0,
            size,
            url,
            stall_timeout,
            stall: Box::pin(tokio::time::sleep(stall_timeout)),
            waiting: false,
        };
        ObjectReader { inner: Inner::Remote(Box::new(remote)) }
    }

    /// The rest of a local file of `size` bytes, `read` of which were read already.
    pub(crate) fn file(file: tokio::fs::File, read: u64, size: u64, url: String) -> ObjectReader {
        ObjectReader { inner: Inner::File(Box::new(FileBody { file, read, size, url })) }
    }

    fn fail(&mut self, error: io::Error) -> Poll<io::Result<()>> {
        self.inner = Inner::Failed(error.kind());
        Poll::Ready(Err(error))
    }
}

impl AsyncRead for ObjectReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let outcome = match &mut this.inner {
            Inner::Done => return Poll::Ready(Ok(())),
            Inner::Failed(kind) => {
                return Poll::Ready(Err(io::Error::new(*kind, "an earlier read of this source failed")));
            }
            Inner::Remote(remote) => ready!(remote.poll_read(cx, buf)),
            Inner::File(file) => ready!(file.poll_read(cx, buf)),
        };
        match outcome {
            Ok(true) => {
                this.inner = Inner::Done;
                Poll::Ready(Ok(()))
            }
            Ok(false) => Poll::Ready(Ok(())),
            Err(e) => this.fail(e),
        }
    }
}

impl Remote {
    /// `Ok(true)` at the end (nothing put in `buf`), `Ok(false)` when bytes were put in `buf`.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.remaining());
                buf.put_slice(&self.chunk.split_to(n));
                return Poll::Ready(Ok(false));
            }
            match self.stream.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.waiting = false;
                    self.read += chunk.len() as u64;
                    if self.read > self.size {
                        let what = format!("it sends more than the {} bytes it announced", self.size);
                        return Poll::Ready(Err(SourceError::Changed { url: self.url.clone(), what }
                            .into_io(io::ErrorKind::InvalidData)));
                    }
                    self.chunk = chunk;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) if self.read < self.size => {
                    let message = format!("the body ended after {} of {} bytes", self.read, self.size);
                    return Poll::Ready(Err(SourceError::Network { url: self.url.clone(), message }
                        .into_io(io::ErrorKind::UnexpectedEof)));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(true)),
                Poll::Pending => {
                    if !self.waiting {
                        self.waiting = true;
                        let deadline = Instant::now() + self.stall_timeout;
                        self.stall.as_mut().reset(deadline);
                    }
                    ready!(self.stall.as_mut().poll(cx));
                    let message = format!(
                        "no bytes for {:?} after {} of {} bytes (the body stalled)",
                        self.stall_timeout, self.read, self.size
                    );
                    return Poll::Ready(Err(SourceError::Timeout { url: self.url.clone(), message }
                        .into_io(io::ErrorKind::TimedOut)));
                }
            }
        }
    }
}

impl FileBody {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        let before = buf.filled().len();
        if let Err(e) = ready!(Pin::new(&mut self.file).poll_read(cx, buf)) {
            let kind = e.kind();
            let message = e.to_string();
            return Poll::Ready(
                Err(SourceError::Unreadable { url: self.url.clone(), message }.into_io(kind)),
            );
        }
        let n = (buf.filled().len() - before) as u64;
        if n == 0 {
            if self.read < self.size {
                let what = format!(
                    "the file is shorter than when it was opened: {} of {} bytes",
                    self.read, self.size
                );
                return Poll::Ready(Err(SourceError::Changed { url: self.url.clone(), what }
                    .into_io(io::ErrorKind::UnexpectedEof)));
            }
            return Poll::Ready(Ok(true));
        }
        self.read += n;
        if self.read > self.size {
            buf.set_filled(before);
            let what = format!("the file grew past the {} bytes it had when it was opened", self.size);
            return Poll::Ready(Err(
                SourceError::Changed { url: self.url.clone(), what }.into_io(io::ErrorKind::InvalidData)
            ));
        }
        Poll::Ready(Ok(false))
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;
    use tokio::io::AsyncReadExt;

    use super::*;

    fn reader(chunks: Vec<io::Result<&'static [u8]>>, size: u64) -> ObjectReader {
        let stream = stream::iter(chunks.into_iter().map(|c| c.map(Bytes::from_static))).boxed();
        ObjectReader::remote(stream, size, "s3://b/k".into(), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn reads_exactly_what_was_announced() {
        let mut out = Vec::new();
        reader(vec![Ok(b"hel"), Ok(b""), Ok(b"lo")], 5).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hello");
        let mut out = Vec::new();
        ObjectReader::empty().read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_short_body_is_an_unexpected_eof() {
        let mut out = Vec::new();
        let e = reader(vec![Ok(b"hel")], 5).read_to_end(&mut out).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(matches!(SourceError::from_io(&e), Some(SourceError::Network { .. })), "{e}");
        assert!(e.to_string().contains("after 3 of 5 bytes"), "{e}");
    }

    #[tokio::test]
    async fn a_long_body_is_a_change_and_reads_after_an_error_fail() {
        let mut r = reader(vec![Ok(b"hello!")], 5);
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(SourceError::from_io(&e), Some(SourceError::Changed { .. })), "{e}");
        assert!(out.is_empty(), "no byte of the oversized chunk is handed out");
        let mut one = [0u8; 1];
        assert_eq!(r.read(&mut one).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn stream_errors_pass_through() {
        let reset = SourceError::Network { url: "u".into(), message: "reset".into() }
            .into_io(io::ErrorKind::ConnectionReset);
        let mut out = Vec::new();
        let e = reader(vec![Ok(b"he"), Err(reset)], 5).read_to_end(&mut out).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(out, b"he");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_after_the_stall_timeout() {
        let stream = stream::iter([Ok(Bytes::from_static(b"he"))]).chain(stream::pending()).boxed();
        let mut r = ObjectReader::remote(stream, 5, "s3://b/k".into(), Duration::from_secs(3));
        let start = Instant::now();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(SourceError::from_io(&e), Some(SourceError::Timeout { .. })));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(out, b"he");
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_pauses_does_not_look_like_a_stall() {
        let stream = stream::iter([Ok(Bytes::from_static(b"he")), Ok(Bytes::from_static(b"llo"))]).boxed();
        let mut r = ObjectReader::remote(stream, 5, "s3://b/k".into(), Duration::from_secs(3));
        let mut two = [0u8; 2];
        r.read_exact(&mut two).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"llo");
    }
}

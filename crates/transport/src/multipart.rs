//! The S3 POST body: `multipart/form-data` with every form field first and the file last, streamed
//! from its source in chunks with its MD5 computed on the way, its length announced up front.
//!
//! The "Get Storage Upload URL" page (developers.filespin.io) shows the body as `curl -F` would build
//! it: each of `storage.fields`, then `file=@photo.jpg`. S3 ignores every form field that comes after
//! the `file` part, so the file must be last.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::UnboundedSender;

use crate::limit::RateLimit;
use crate::stats::Counters;

/// Bytes read from the source per chunk.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;

/// The fixed parts around the file's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    boundary: String,
    /// All field parts and the `file` part's headers.
    head: Bytes,
    /// The CRLF after the file and the closing boundary.
    tail: Bytes,
}

impl Frame {
    pub(crate) fn new<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
        filename: &str,
        boundary: String,
    ) -> Frame {
        let mut head = Vec::new();
        for (name, value) in fields {
            head.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            head.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", escape(name)).as_bytes(),
            );
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        head.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                escape(filename)
            )
            .as_bytes(),
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        Frame { boundary, head: Bytes::from(head), tail: Bytes::from(tail) }
    }

    /// The request's `Content-Type`.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The request's `Content-Length` for a file of `file_len` bytes.
    pub(crate) fn content_length(&self, file_len: u64) -> u64 {
        self.head.len() as u64 + file_len + self.tail.len() as u64
    }
}

/// Quotes in names the way browsers do for `multipart/form-data` (WHATWG HTML, "multipart/form-data
/// encoding algorithm"): `"` → `%22`, CR → `%0D`, LF → `%0A`.
fn escape(name: &str) -> String {
    name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

/// A boundary that will not occur in the content by chance: 128 bits from the clock, a counter and
/// the process id, hashed.
pub(crate) fn new_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Md5::new();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.update(nanos.to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    // Asked once: a system call per upload was measurable on small files.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    hasher.update(PID.get_or_init(std::process::id).to_le_bytes());
    format!("spinlift-{}", hex::encode(hasher.finalize()))
}

/// Why the body stream stopped before its end.
#[derive(Debug)]
pub(crate) enum BodyFailure {
    /// Reading the source failed.
    Read(io::Error),
    /// The source ended after `read` of the announced bytes.
    Shorter { read: u64 },
    /// The source had more bytes than announced.
    Longer,
}

/// What the body stream learned, for the request future to pick up once the answer is in.
#[derive(Debug, Default)]
pub(crate) struct BodyOutcome {
    md5: Mutex<Option<String>>,
    failure: Mutex<Option<BodyFailure>>,
}

impl BodyOutcome {
    /// The MD5 (lowercase hex) of the file, once every byte of it has been handed to the connection.
    pub(crate) fn md5(&self) -> Option<String> {
        self.md5.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The failure that ended the stream, if one did.
    pub(crate) fn take_failure(&self) -> Option<BodyFailure> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn fail(&self, failure: BodyFailure) -> io::Error {
        let error = io::Error::other(match &failure {
            BodyFailure::Read(e) => format!("reading the source failed: {e}"),
            BodyFailure::Shorter { read } => format!("the source ended after {read} bytes"),
            BodyFailure::Longer => "the source is longer than announced".to_owned(),
        });
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
        error
    }
}

/// What the body stream tells the request future, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The stream waits for the bandwidth limit before handing over its next chunk: time that is
    /// ours, not a stalled connection's.
    Throttled,
    /// The connection took a chunk, `file_bytes` of it from the file (0 for the framing).
    Sent { file_bytes: u64 },
}

/// The limit and the counter the body stream shares with every other upload of its client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pacing {
    /// Bytes per second over all uploads; `None`: unlimited.
    pub(crate) bandwidth: Option<Arc<RateLimit>>,
    /// Counts every byte handed to the connection.
    pub(crate) counters: Arc<Counters>,
}

/// What was read of a file before its upload began, in the same blocking call that opened it: its first
/// chunk (hashed), and for a file of at most one chunk whether it ended where announced. The body
/// stream hands it over first and reads on from there, exactly as if it had read it itself: a source
/// that turns out shorter, longer or unreadable fails at the same point of the body.
#[derive(Debug)]
pub(crate) struct Prefetch {
    chunk: Option<Bytes>,
    /// How reading ended, if it did: `Ok` the source ended where announced, `Err` it did not.
    end: Option<Result<(), BodyFailure>>,
    hasher: Md5,
    read: u64,
}

impl Default for Prefetch {
    fn default() -> Self {
        Prefetch { chunk: None, end: None, hasher: Md5::new(), read: 0 }
    }
}

impl Prefetch {
    /// What a caller read of a source of `len` bytes before the upload: `prefix`, hashed here, and
    /// whether the source was seen to end right after it. A prefix longer than `len` is the source
    /// being longer than announced; one that ends short of `len`, its being shorter.
    pub(crate) fn from_prefix(prefix: Bytes, len: u64, ended: bool) -> Prefetch {
        let mut prefetch = Prefetch::default();
        let read = prefix.len() as u64;
        if read > len {
            prefetch.end = Some(Err(BodyFailure::Longer));
            return prefetch;
        }
        if !prefix.is_empty() {
            prefetch.hasher.update(&prefix);
            prefetch.read = read;
            prefetch.chunk = Some(prefix);
        }
        if ended {
            prefetch.end = Some(if read == len { Ok(()) } else { Err(BodyFailure::Shorter { read }) });
        }
        prefetch
    }

    /// Reads the first chunk of a source of `len` bytes (and, when that is all of it, checks that it
    /// ends there), blocking: for a thread where blocking is allowed.
    pub(crate) fn read(source: &mut impl Read, len: u64) -> Prefetch {
        let mut prefetch = Prefetch::default();
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(CHUNK_SIZE);
        if want > 0 {
            let mut buf = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                match source.read(&mut buf[filled..]) {
                    Ok(0) => {
                        prefetch.end = Some(Err(BodyFailure::Shorter { read: filled as u64 }));
                        return prefetch;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        prefetch.end = Some(Err(BodyFailure::Read(e)));
                        return prefetch;
                    }
                }
            }
            prefetch.hasher.update(&buf);
            prefetch.read = want as u64;
            prefetch.chunk = Some(buf.freeze());
        }
        if prefetch.read == len {
            let mut probe = [0u8; 1];
            prefetch.end = Some(loop {
                break match source.read(&mut probe) {
                    Ok(0) => Ok(()),
                    Ok(_) => Err(BodyFailure::Longer),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(BodyFailure::Read(e)),
                };
            });
        }
        prefetch
    }
}

/// Where a body's MD5 is computed. On the body's own task the chunks are hashed and sent in turn: for
/// one large upload, hashing (~500 MB/s on a core here) and sending (the socket's copies) never
/// overlap. A file of more than [`HASH_APART_FROM`] bytes is hashed on a blocking thread instead, fed
/// through a channel of [`HASH_AHEAD`] chunks (so that memory stays flat however large the file): the
/// next chunk is read while the last one is hashed and sent. Smaller files stay on the task, where a
/// thread's hand-off would cost more than it saves.
enum Hashing {
    Here(Md5),
    Apart { chunks: tokio::sync::mpsc::Sender<Bytes>, hashed: tokio::sync::oneshot::Receiver<Md5> },
}

/// Files with more than this many bytes after their prefetched chunk are hashed on a thread of their own.
const HASH_APART_FROM: u64 = 4 * CHUNK_SIZE as u64;

/// Chunks read ahead of the hashing thread at most.
const HASH_AHEAD: usize = 2;

impl Hashing {
    /// Hashing that goes on from `hasher` (which has seen the prefetched bytes) for `remaining` more.
    fn new(hasher: Md5, remaining: u64) -> Hashing {
        if remaining <= HASH_APART_FROM || tokio::runtime::Handle::try_current().is_err() {
            return Hashing::Here(hasher);
        }
        let (chunks, mut to_hash) = tokio::sync::mpsc::channel::<Bytes>(HASH_AHEAD);
        let (done, hashed) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            while let Some(chunk) = to_hash.blocking_recv() {
                hasher.update(&chunk);
            }
            let _ = done.send(hasher);
        });
        Hashing::Apart { chunks, hashed }
    }

    async fn update(&mut self, chunk: &Bytes) {
        match self {
            Hashing::Here(hasher) => hasher.update(chunk),
            Hashing::Apart { chunks, .. } => {
                // A closed channel means the thread is gone: `finish` says so.
                let _ = chunks.send(chunk.clone()).await;
            }
        }
    }

    /// The MD5 of everything hashed, as hex; `None` if the hashing thread did not finish.
    async fn finish(self) -> Option<String> {
        let hasher = match self {
            Hashing::Here(hasher) => hasher,
            Hashing::Apart { chunks, hashed } => {
                drop(chunks);
                hashed.await.ok()?
            }
        };
        Some(hex::encode(hasher.finalize()))
    }
}

enum Phase {
    Head,
    File,
    Done,
}

struct BodyState<R> {
    phase: Phase,
    frame: Frame,
    reader: R,
    /// Read ahead of the stream, handed over before `reader` is read.
    prefetched: Option<Bytes>,
    /// How reading ended, when the prefetch saw its end.
    end: Option<Result<(), BodyFailure>>,
    remaining: u64,
    read: u64,
    hashing: Hashing,
    progress: UnboundedSender<Progress>,
    outcome: Arc<BodyOutcome>,
    pacing: Pacing,
}

impl<R: AsyncRead + Unpin> BodyState<R> {
    /// Hands `chunk` over: first waits for the bandwidth limit to allow its bytes, then reports and
    /// counts them.
    async fn hand_over(&mut self, chunk: Bytes, file_bytes: u64) -> Bytes {
        if let Some(bandwidth) = &self.pacing.bandwidth {
            let _ = self.progress.send(Progress::Throttled);
            bandwidth.acquire(chunk.len() as u64).await;
        }
        self.pacing.counters.sent(chunk.len() as u64);
        let _ = self.progress.send(Progress::Sent { file_bytes });
        chunk
    }

    /// Reads the next chunk of the file, hashing it.
    async fn next_file_chunk(&mut self) -> Result<Bytes, BodyFailure> {
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(CHUNK_SIZE);
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match self.reader.read(&mut buf[filled..]).await {
                Ok(0) => return Err(BodyFailure::Shorter { read: self.read + filled as u64 }),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BodyFailure::Read(e)),
            }
        }
        let chunk = buf.freeze();
        self.hashing.update(&chunk).await;
        self.remaining -= want as u64;
        self.read += want as u64;
        Ok(chunk)
    }

    /// After the announced bytes: the source must be at its end.
    async fn expect_end(&mut self) -> Result<(), BodyFailure> {
        let mut probe = [0u8; 1];
        loop {
            return match self.reader.read(&mut probe).await {
                Ok(0) => Ok(()),
                Ok(_) => Err(BodyFailure::Longer),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(BodyFailure::Read(e)),
            };
        }
    }
}

/// The request body: the frame's head, the `len` bytes of the source — those of `prefetch` first, then
/// the rest from `reader` — and the tail.
///
/// Each chunk waits for `pacing.bandwidth`, if any, before it is handed over (reported to `progress`
/// as [`Progress::Throttled`]); its file-byte count (0 for the head and tail) is then sent to
/// `progress` as [`Progress::Sent`] and its length added to the counters. If the source yields fewer
/// or more bytes than `len`, or a read fails, the stream
/// ends with an error *before* the closing boundary, so storage can never take the truncated or
/// padded body for a complete one; the reason is left in `outcome`.
pub(crate) fn body_stream<R>(
    frame: Frame,
    reader: R,
    len: u64,
    prefetch: Prefetch,
    progress: UnboundedSender<Progress>,
    outcome: Arc<BodyOutcome>,
    pacing: Pacing,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let state = BodyState {
        phase: Phase::Head,
        frame,
        reader,
        prefetched: prefetch.chunk,
        end: prefetch.end,
        remaining: len.saturating_sub(prefetch.read),
        read: prefetch.read,
        hashing: Hashing::new(prefetch.hasher, len.saturating_sub(prefetch.read)),
        progress,
        outcome,
        pacing,
    };
    futures::stream::unfold(state, |mut st| async move {
        let item = match st.phase {
            Phase::Head => {
                st.phase = Phase::File;
                let head = st.frame.head.clone();
                Ok(st.hand_over(head, 0).await)
            }
            Phase::File if st.prefetched.is_some() => {
                let chunk = st.prefetched.take().unwrap_or_default();
                let file_bytes = chunk.len() as u64;
                Ok(st.hand_over(chunk, file_bytes).await)
            }
            Phase::File if st.remaining > 0 && st.end.is_none() => match st.next_file_chunk().await {
                Ok(chunk) => {
                    let file_bytes = chunk.len() as u64;
                    Ok(st.hand_over(chunk, file_bytes).await)
                }
                Err(failure) => {
                    st.phase = Phase::Done;
                    Err(st.outcome.fail(failure))
                }
            },
            Phase::File => {
                let end = match st.end.take() {
                    Some(end) => end,
                    None => st.expect_end().await,
                };
                match end {
                    Ok(()) => {
                        match std::mem::replace(&mut st.hashing, Hashing::Here(Md5::new())).finish().await {
                            Some(md5) => {
                                *st.outcome.md5.lock().unwrap_or_else(PoisonError::into_inner) = Some(md5);
                                st.phase = Phase::Done;
                                let tail = st.frame.tail.clone();
                                Ok(st.hand_over(tail, 0).await)
                            }
                            None => {
                                st.phase = Phase::Done;
                                let lost = io::Error::other("the thread hashing the file stopped");
                                Err(st.outcome.fail(BodyFailure::Read(lost)))
                            }
                        }
                    }
                    Err(failure) => {
                        st.phase = Phase::Done;
                        Err(st.outcome.fail(failure))
                    }
                }
            }
            Phase::Done => return None,
        };
        Some((item, st))
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use rand::RngCore;
    use tokio::sync::mpsc;

    use super::*;

    struct Collected {
        body: Vec<u8>,
        /// File bytes of each chunk handed over.
        progress: Vec<u64>,
        /// Every message, `Throttled` ones included.
        messages: Vec<Progress>,
        error: Option<io::Error>,
        outcome: Arc<BodyOutcome>,
    }

    async fn collect<R: AsyncRead + Send + Unpin + 'static>(frame: Frame, reader: R, len: u64) -> Collected {
        collect_paced(frame, reader, len, Pacing::default()).await
    }

    async fn collect_paced<R: AsyncRead + Send + Unpin + 'static>(
        frame: Frame,
        reader: R,
        len: u64,
        pacing: Pacing,
    ) -> Collected {
        collect_prefetched(frame, reader, len, Prefetch::default(), pacing).await
    }

    async fn collect_prefetched<R: AsyncRead + Send + Unpin + 'static>(
        frame: Frame,
        reader: R,
        len: u64,
        prefetch: Prefetch,
        pacing: Pacing,
    ) -> Collected {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outcome = Arc::new(BodyOutcome::default());
        let mut stream = Box::pin(body_stream(frame, reader, len, prefetch, tx, outcome.clone(), pacing));
        let mut body = Vec::new();
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(e) => {
                    error = Some(e);
                    assert!(stream.next().await.is_none(), "the stream ends after an error");
                    break;
                }
            }
        }
        drop(stream);
        let mut messages = Vec::new();
        while let Some(message) = rx.recv().await {
            messages.push(message);
        }
        let progress = messages
            .iter()
            .filter_map(|m| match m {
                Progress::Sent { file_bytes } => Some(*file_bytes),
                Progress::Throttled => None,
            })
            .collect();
        Collected { body, progress, messages, error, outcome }
    }

    fn fields() -> Vec<(String, String)> {
        vec![
            ("key".into(), "originals/a1/original/original__x.bin".into()),
            ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
            ("policy".into(), "eyJleHBpcmF0aW9uIjog".into()),
            ("x-amz-signature".into(), "cc47e86f1353".into()),
            ("acl".into(), "line one\r\nline two".into()),
        ]
    }

    fn frame(filename: &str) -> Frame {
        let fields = fields();
        Frame::new(fields.iter().map(|(n, v)| (n.as_str(), v.as_str())), filename, new_boundary())
    }

    /// Parses a body with an independent multipart parser (multer): field names, values, file name.
    async fn parse(frame: &Frame, body: Vec<u8>) -> Vec<(String, Option<String>, Vec<u8>)> {
        let boundary = multer::parse_boundary(frame.content_type()).unwrap();
        let stream = futures::stream::once(async move { Ok::<_, io::Error>(Bytes::from(body)) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await.unwrap() {
            let name = field.name().unwrap().to_owned();
            let filename = field.file_name().map(str::to_owned);
            parts.push((name, filename, field.bytes().await.unwrap().to_vec()));
        }
        parts
    }

    #[tokio::test]
    async fn fields_in_order_then_the_file_with_its_md5_and_exact_length() {
        let mut data = vec![0u8; 3 * CHUNK_SIZE + 12_345];
        rand::rng().fill_bytes(&mut data);
        let frame = frame("photo \"1\".bin");
        let collected = collect(frame.clone(), io::Cursor::new(data.clone()), data.len() as u64).await;
        assert!(collected.error.is_none());
        assert_eq!(collected.body.len() as u64, frame.content_length(data.len() as u64));
        assert_eq!(collected.outcome.md5(), Some(hex::encode(Md5::digest(&data))));
        // Progress: 0 for the head, each chunk's file bytes, 0 for the tail; file bytes add up.
        assert_eq!(collected.progress.iter().sum::<u64>(), data.len() as u64);
        assert_eq!(collected.progress, [0, 262_144, 262_144, 262_144, 12_345, 0]);
        assert!(!collected.messages.contains(&Progress::Throttled), "no limit, no waiting");

        let parts = parse(&frame, collected.body).await;
        let names: Vec<&str> = parts.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["key", "x-amz-algorithm", "policy", "x-amz-signature", "acl", "file"]);
        for ((name, value), (parsed_name, filename, parsed_value)) in fields().iter().zip(&parts) {
            assert_eq!(name, parsed_name);
            assert_eq!(value.as_bytes(), parsed_value.as_slice());
            assert_eq!(*filename, None);
        }
        let (_, filename, file) = parts.last().unwrap();
        assert_eq!(filename.as_deref(), Some("photo %221%22.bin"));
        assert!(file == &data, "the file part holds the file's bytes");
    }

    #[tokio::test]
    async fn an_empty_file_is_a_part_with_no_bytes() {
        let frame = frame("empty");
        let collected = collect(frame.clone(), io::Cursor::new(Vec::new()), 0).await;
        assert!(collected.error.is_none());
        assert_eq!(collected.body.len() as u64, frame.content_length(0));
        assert_eq!(collected.outcome.md5().as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        let parts = parse(&frame, collected.body).await;
        assert_eq!(parts.last().unwrap().0, "file");
        assert!(parts.last().unwrap().2.is_empty());
    }

    #[tokio::test]
    async fn a_shorter_source_stops_before_the_closing_boundary() {
        let frame = frame("short");
        let collected = collect(frame.clone(), io::Cursor::new(vec![7u8; 1000]), 5000).await;
        assert!(collected.error.is_some());
        assert!(matches!(collected.outcome.take_failure(), Some(BodyFailure::Shorter { read: 1000 })));
        assert_eq!(collected.outcome.md5(), None);
        assert!(!collected.body.ends_with(&frame.tail), "no closing boundary after a short source");
    }

    #[tokio::test]
    async fn a_longer_source_stops_before_the_closing_boundary() {
        let frame = frame("long");
        let collected = collect(frame.clone(), io::Cursor::new(vec![7u8; 1001]), 1000).await;
        assert!(collected.error.is_some());
        assert!(matches!(collected.outcome.take_failure(), Some(BodyFailure::Longer)));
        assert_eq!(collected.body.len(), frame.head.len() + 1000);
        assert_eq!(collected.outcome.md5(), None);
    }

    #[tokio::test]
    async fn a_read_error_is_kept() {
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Err(io::Error::new(io::ErrorKind::PermissionDenied, "nope")))
            }
        }
        let collected = collect(frame("x"), Broken, 10).await;
        assert!(collected.error.is_some());
        match collected.outcome.take_failure() {
            Some(BodyFailure::Read(e)) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied),
            other => panic!("{other:?}"),
        }
    }

    /// With a bandwidth limit every chunk, framing included, waits its turn (announced as `Throttled`
    /// so the stall watchdog does not count it), and every byte is counted.
    #[tokio::test(start_paused = true)]
    async fn a_limited_body_waits_before_each_chunk_and_counts_its_bytes() {
        use std::num::NonZeroU64;
        let data = vec![5u8; 4 * CHUNK_SIZE];
        let frame = frame("paced.bin");
        let bandwidth = RateLimit::bytes_per_second(
            NonZeroU64::new(512 * 1024).unwrap(),
            NonZeroU64::new(CHUNK_SIZE as u64).unwrap(),
        );
        let pacing = Pacing { bandwidth: Some(Arc::new(bandwidth)), counters: Arc::default() };
        let start = tokio::time::Instant::now();
        let collected =
            collect_paced(frame.clone(), io::Cursor::new(data.clone()), 1024 * 1024, pacing.clone()).await;
        let elapsed = tokio::time::Instant::now() - start;
        assert!(collected.error.is_none());
        let total = frame.content_length(data.len() as u64);
        assert_eq!(collected.body.len() as u64, total);
        assert_eq!(pacing.counters.snapshot().bytes_sent, total);
        // Head, four chunks and tail: each announced, then handed over.
        let sent = |file_bytes| Progress::Sent { file_bytes };
        let expected: Vec<Progress> = [0, 262_144, 262_144, 262_144, 262_144, 0]
            .into_iter()
            .flat_map(|n| [Progress::Throttled, sent(n)])
            .collect();
        assert_eq!(collected.messages, expected);
        // 1 MiB and the framing at 512 KiB/s, one chunk's burst: about 1.5 s.
        let seconds = (total - CHUNK_SIZE as u64) as f64 / (512.0 * 1024.0);
        assert!(elapsed.as_secs_f64() >= seconds, "{elapsed:?} < {seconds} s");
        assert!(elapsed.as_secs_f64() <= seconds + 0.01, "{elapsed:?} > {seconds} s");
    }

    /// A reader that must not be read: what was prefetched is all there is.
    struct Unread;

    impl AsyncRead for Unread {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            panic!("the source was read again after its end was seen")
        }
    }

    #[tokio::test]
    async fn a_prefetched_source_gives_the_same_body_as_one_read_in_the_stream() {
        for len in [0, 1, 4096, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 12_345] {
            let mut data = vec![0u8; len];
            rand::rng().fill_bytes(&mut data);
            let frame = frame("same.bin");
            let streamed = collect(frame.clone(), io::Cursor::new(data.clone()), len as u64).await;
            let mut source = io::Cursor::new(data.clone());
            let prefetch = Prefetch::read(&mut source, len as u64);
            let prefetched = if len <= CHUNK_SIZE {
                assert!(matches!(prefetch.end, Some(Ok(()))), "{len}: the end is checked with the chunk");
                collect_prefetched(frame, Unread, len as u64, prefetch, Pacing::default()).await
            } else {
                let rest = tokio::io::BufReader::new(io::Cursor::new(data[CHUNK_SIZE..].to_vec()));
                collect_prefetched(frame, rest, len as u64, prefetch, Pacing::default()).await
            };
            assert!(prefetched.error.is_none(), "{len}");
            assert!(prefetched.body == streamed.body, "{len}: the same bytes");
            assert_eq!(prefetched.messages, streamed.messages, "{len}");
            assert_eq!(prefetched.outcome.md5(), Some(hex::encode(Md5::digest(&data))), "{len}");
        }
    }

    #[tokio::test]
    async fn a_prefetched_source_of_the_wrong_length_fails_where_a_streamed_one_does() {
        let frame = frame("wrong");
        // Shorter than announced, within the first chunk.
        let prefetch = Prefetch::read(&mut io::Cursor::new(vec![7u8; 1000]), 5000);
        let collected = collect_prefetched(frame.clone(), Unread, 5000, prefetch, Pacing::default()).await;
        assert!(collected.error.is_some());
        assert!(matches!(collected.outcome.take_failure(), Some(BodyFailure::Shorter { read: 1000 })));
        assert_eq!(collected.outcome.md5(), None);
        assert!(!collected.body.ends_with(&frame.tail), "no closing boundary after a short source");
        // Longer: the whole announced length, then one byte too many.
        let prefetch = Prefetch::read(&mut io::Cursor::new(vec![7u8; 1001]), 1000);
        let collected = collect_prefetched(frame.clone(), Unread, 1000, prefetch, Pacing::default()).await;
        assert!(matches!(collected.outcome.take_failure(), Some(BodyFailure::Longer)));
        assert_eq!(collected.body.len(), frame.head.len() + 1000);
        assert_eq!(collected.outcome.md5(), None);
        // Shorter after the first chunk: the rest comes from the reader, which ends early.
        let len = 2 * CHUNK_SIZE as u64;
        let prefetch = Prefetch::read(&mut io::Cursor::new(vec![1u8; CHUNK_SIZE]), len);
        let rest = io::Cursor::new(vec![1u8; 10]);
        let collected = collect_prefetched(frame, rest, len, prefetch, Pacing::default()).await;
        let expected = CHUNK_SIZE as u64 + 10;
        assert!(
            matches!(collected.outcome.take_failure(), Some(BodyFailure::Shorter { read }) if read == expected)
        );
    }

    /// A prefix read by someone else (a source's first bytes) gives the same body and MD5 as the bytes
    /// streamed, wherever it is cut; a prefix that shows the source shorter or longer fails as the
    /// stream would.
    #[tokio::test]
    async fn a_given_prefix_gives_the_same_body_as_one_read_in_the_stream() {
        let len = 2 * CHUNK_SIZE + 17;
        let mut data = vec![0u8; len];
        rand::rng().fill_bytes(&mut data);
        let frame = frame("prefix.bin");
        let streamed = collect(frame.clone(), io::Cursor::new(data.clone()), len as u64).await;
        for cut in [0, 1, 4096, CHUNK_SIZE, len] {
            let prefix = Bytes::copy_from_slice(&data[..cut]);
            let prefetch = Prefetch::from_prefix(prefix, len as u64, cut == len);
            let rest = io::Cursor::new(data[cut..].to_vec());
            let got = collect_prefetched(frame.clone(), rest, len as u64, prefetch, Pacing::default()).await;
            assert!(got.error.is_none(), "{cut}");
            assert!(got.body == streamed.body, "{cut}: the same bytes");
            assert_eq!(got.outcome.md5(), Some(hex::encode(Md5::digest(&data))), "{cut}");
        }
        let short = Prefetch::from_prefix(Bytes::from_static(b"abc"), 10, true);
        let got = collect_prefetched(frame.clone(), Unread, 10, short, Pacing::default()).await;
        assert!(matches!(got.outcome.take_failure(), Some(BodyFailure::Shorter { read: 3 })));
        let long = Prefetch::from_prefix(Bytes::from_static(b"abcdef"), 3, true);
        let got = collect_prefetched(frame, Unread, 3, long, Pacing::default()).await;
        assert!(matches!(got.outcome.take_failure(), Some(BodyFailure::Longer)));
        assert_eq!(got.outcome.md5(), None);
    }

    /// A file of more than `HASH_APART_FROM` bytes is hashed on a thread of its own: the same body and
    /// MD5 as on the body's task, and the same failures for a source shorter or longer than announced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_file_hashed_apart_gives_the_same_body_md5_and_failures() {
        let len = HASH_APART_FROM as usize + 2 * CHUNK_SIZE + 7;
        assert!(
            matches!(Hashing::new(Md5::new(), len as u64), Hashing::Apart { .. }),
            "this file goes apart"
        );
        assert!(matches!(Hashing::new(Md5::new(), HASH_APART_FROM), Hashing::Here(_)));
        let mut data = vec![0u8; len];
        rand::rng().fill_bytes(&mut data);
        let frame = frame("large.bin");

        let got = collect(frame.clone(), io::Cursor::new(data.clone()), len as u64).await;
        assert!(got.error.is_none());
        assert_eq!(got.body.len() as u64, frame.content_length(len as u64));
        assert_eq!(got.outcome.md5(), Some(hex::encode(Md5::digest(&data))));
        assert_eq!(got.progress.iter().sum::<u64>(), len as u64);
        let parts = parse(&frame, got.body).await;
        assert!(parts.last().unwrap().2 == data, "the file part holds the file's bytes");

        // With its first chunk prefetched, as a local file is uploaded.
        let mut source = io::Cursor::new(data.clone());
        let prefetch = Prefetch::read(&mut source, len as u64);
        let rest = io::Cursor::new(data[CHUNK_SIZE..].to_vec());
        let prefetched =
            collect_prefetched(frame.clone(), rest, len as u64, prefetch, Pacing::default()).await;
        assert_eq!(prefetched.outcome.md5(), Some(hex::encode(Md5::digest(&data))));

        let short = collect(frame.clone(), io::Cursor::new(data[..len - 1].to_vec()), len as u64).await;
        assert!(matches!(short.outcome.take_failure(), Some(BodyFailure::Shorter { .. })));
        assert_eq!(short.outcome.md5(), None);
        let mut longer = data;
        longer.push(1);
        let long = collect(frame, io::Cursor::new(longer), len as u64).await;
        assert!(matches!(long.outcome.take_failure(), Some(BodyFailure::Longer)));
        assert_eq!(long.outcome.md5(), None);
    }

    #[test]
    fn boundaries_differ() {
        let a = new_boundary();
        let b = new_boundary();
        assert_ne!(a, b);
        assert!(a.len() <= 70, "RFC 2046 limits boundaries to 70 characters");
    }
}

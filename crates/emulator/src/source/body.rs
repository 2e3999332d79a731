//! The body of a source server's answer: counted as it goes out, and cut off or stalled in the middle
//! when a fault says so.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use crate::server::Connection;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;
type Inner = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send + Sync>>;

/// What happens to a body on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// All of it.
    Whole,
    /// `after` bytes, then the connection is closed (once those bytes are flushed to the socket).
    Cut { after: u64 },
    /// `after` bytes, a pause, then the rest.
    Stall { after: u64, pause: Duration },
}

enum State {
    Streaming,
    /// Cut: waiting until hyper has flushed what it was given, having seen this many flushes.
    Cutting {
        seen: u64,
    },
    Stalled(Pin<Box<tokio::time::Sleep>>),
}

/// A response body that counts the bytes it hands on and carries out a [`Plan`].
pub(crate) struct ServedBody {
    inner: Inner,
    /// Bytes taken from `inner` but not handed on yet (beyond a stall point).
    rest: Bytes,
    plan: Plan,
    state: State,
    sent: u64,
    /// Where the bytes handed on are counted, if anywhere.
    served: Option<Arc<AtomicU64>>,
    /// The connection to close for a cut; without one the cut is an error at once.
    connection: Option<Connection>,
}

impl ServedBody {
    pub(crate) fn new<B>(inner: B) -> Self
    where
        B: Body<Data = Bytes> + Unpin + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: Box::pin(MapErr(inner)),
            rest: Bytes::new(),
            plan: Plan::Whole,
            state: State::Streaming,
            sent: 0,
            served: None,
            connection: None,
        }
    }

    pub(crate) fn empty() -> Self {
        Self::new(s3s::Body::empty())
    }

    pub(crate) fn with_plan(self, plan: Plan, connection: Option<Connection>) -> Self {
        Self { plan, connection, ..self }
    }

    pub(crate) fn counted_in(self, served: Arc<AtomicU64>) -> Self {
        Self { served: Some(served), ..self }
    }

    /// How many bytes may go out before the plan's cut or stall point; `None`: no limit.
    fn budget(&self) -> Option<u64> {
        match self.plan {
            Plan::Whole => None,
            Plan::Cut { after } | Plan::Stall { after, .. } => Some(after.saturating_sub(self.sent)),
        }
    }

    fn hand_on(&mut self, mut data: Bytes) -> Bytes {
        if let Some(budget) = self.budget() {
            let budget = usize::try_from(budget).unwrap_or(usize::MAX);
            if data.len() > budget {
                self.rest = data.split_off(budget);
            }
        }
        self.sent += data.len() as u64;
        if let Some(served) = &self.served {
            served.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        data
    }
}

fn cut_error() -> BoxError {
    Box::new(io::Error::new(io::ErrorKind::ConnectionReset, "the body was cut off by an injected fault"))
}

impl Body for ServedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Streaming => {}
                State::Cutting { seen } => {
                    // Every byte handed on is in hyper's buffer; once it flushes, they are in the
                    // kernel's, and the error closes the connection behind them.
                    if let Some(connection) = &this.connection {
                        ready!(connection.poll_flushed_since(*seen, cx));
                    }
                    return Poll::Ready(Some(Err(cut_error())));
                }
                State::Stalled(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Streaming;
                    this.plan = Plan::Whole;
                }
            }
            if this.budget() == Some(0) {
                match this.plan {
                    Plan::Cut { .. } => {
                        // Polled again: hyper has buffered the last piece. Any flush from now on sends it.
                        let seen = this.connection.as_ref().map_or(0, Connection::flushes);
                        this.state = State::Cutting { seen };
                    }
                    Plan::Stall { pause, .. } => {
                        this.state = State::Stalled(Box::pin(tokio::time::sleep(pause)));
                    }
                    Plan::Whole => {}
                }
                continue;
            }
            if !this.rest.is_empty() {
                let rest = std::mem::take(&mut this.rest);
                let data = this.hand_on(rest);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            return match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let data = this.hand_on(data);
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Err(trailers) => Poll::Ready(Some(Ok(trailers))),
                },
                other => Poll::Ready(other),
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream() && matches!(self.state, State::Streaming)
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// A body's errors boxed.
struct MapErr<B>(B);

impl<B> Body for MapErr<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx).map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Up to `remaining` bytes of a file, from where it is positioned, in pieces of at most 64 KiB.
pub(crate) struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl FileBody {
    const PIECE: usize = 64 * 1024;

    pub(crate) fn new(file: tokio::fs::File, len: u64) -> Self {
        Self { file, remaining: len, buf: BytesMut::new() }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).unwrap_or(usize::MAX).min(Self::PIECE);
        this.buf.resize(want, 0);
        let mut read_buf = ReadBuf::new(&mut this.buf[..]);
        if let Err(e) = ready!(Pin::new(&mut this.file).poll_read(cx, &mut read_buf)) {
            return Poll::Ready(Some(Err(e)));
        }
        let n = read_buf.filled().len();
        if n == 0 {
            // The file shrank under us: the answer cannot be completed.
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was served",
            ))));
        }
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(this.buf.split_to(n).freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

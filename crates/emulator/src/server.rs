//! The accept loop every port runs.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::EmulatorError;

/// The connection a request came on, found in the request's extensions: a handler uses it to close the
/// connection without answering (an injected drop or lost reply).
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// A message, or this sender's receiver going away, ends the connection's task.
    kill: mpsc::Sender<()>,
    flushes: Arc<Flushes>,
}

/// How often the connection's socket has been flushed: hyper flushes once everything it buffered has
/// been written to the socket, so a flush after a body piece was handed to hyper means that the piece
/// is in the kernel's hands.
#[derive(Debug, Default)]
struct Flushes {
    count: AtomicU64,
    /// Who waits for the next flush.
    waiter: Mutex<Option<Waker>>,
}

impl Flushes {
    fn flushed(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        if let Some(waker) = self.waiter.lock().unwrap_or_else(PoisonError::into_inner).take() {
            waker.wake();
        }
    }
}

impl Connection {
    /// How many times the socket has been flushed so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.count.load(Ordering::Acquire)
    }

    /// Ready once the socket has been flushed more than `seen` times (see [`flushes`](Self::flushes)).
    ///
    /// For a body that must end the connection only once the bytes it handed on are on their way (a cut
    /// body): hyper writes what it buffered, then flushes, whenever the body has nothing more to give.
    pub(crate) fn poll_flushed_since(&self, seen: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.flushes() > seen {
            return Poll::Ready(());
        }
        *self.flushes.waiter.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // A flush between the first look and storing the waker would wake nobody: look again.
        if self.flushes() > seen { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Closes the connection — the TCP socket, and with it every request on it — and returns once it is
    /// closed. An HTTP/1.1 handler calling this is dropped along with its connection before it returns; an
    /// HTTP/2 stream's handler returns, and its answer goes nowhere.
    pub(crate) async fn close(&self) {
        // A full channel means a close is on its way already.
        let _ = self.kill.try_send(());
        self.kill.closed().await;
    }
}

/// Hands each request its [`Connection`].
struct WithConnection<S> {
    inner: S,
    connection: Connection,
}

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for WithConnection<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.connection.clone());
        self.inner.call(request)
    }
}

/// A socket that counts its flushes (see [`Connection::flushes`]).
struct Tracked {
    stream: TcpStream,
    flushes: Arc<Flushes>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(Pin::new(&mut self.stream).poll_flush(cx));
        if flushed.is_ok() {
            self.flushes.flushed();
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Binds a listener, naming the address on failure.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, EmulatorError> {
    TcpListener::bind(addr).await.map_err(|source| EmulatorError::Bind { addr, source })
}

/// Serves `service` on every connection `listener` accepts (HTTP/1.1 and HTTP/2).
///
/// The connections are tasks owned by the accept loop, so aborting the returned task closes them too: a
/// stopped emulator answers nothing, not even on a kept-alive connection. Each request carries its
/// [`Connection`], to close it on purpose.
pub(crate) fn spawn<S, B>(listener: TcpListener, service: S) -> JoinHandle<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next() => continue,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (kill, mut killed) = mpsc::channel(1);
            let flushes = Arc::new(Flushes::default());
            let connection = Connection { kill, flushes: Arc::clone(&flushes) };
            let service = WithConnection { inner: service.clone(), connection };
            connections.spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                let io = TokioIo::new(Tracked { stream, flushes });
                tokio::select! {
                    served = builder.serve_connection(io, service) => {
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    }
                    // The connection (and the socket) are dropped here: the client sees it closed.
                    Some(()) = killed.recv() => tracing::debug!("connection dropped (injected fault)"),
                }
            });
        }
    })
}

//! The accept loop both ports run.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::EmulatorError;

/// The connection a request came on, found in the request's extensions: a handler uses it to close the
/// connection without answering (an injected drop or lost reply).
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// A message, or this sender's receiver going away, ends the connection's task.
    kill: mpsc::Sender<()>,
}

impl Connection {
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
            let service = WithConnection { inner: service.clone(), connection: Connection { kill } };
            connections.spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                tokio::select! {
                    served = builder.serve_connection(TokioIo::new(stream), service) => {
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

//! What an adapter gives the shared layer: how to run a task in the background,
//! its timer, how its I/O objects become a [`Link`], and its stream type. With
//! these, [`Session`](crate::Session), [`Control`](crate::Control),
//! [`Acceptor`](crate::Acceptor) and the resumable client are written once.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::link::{Link, Timer};
use crate::stream::StreamCore;

/// A runtime as the shared layer needs it. Each adapter implements it for a
/// marker type of its own and names the generic types after it
/// (`pub type Session = hawser_driver::Session<Tokio>;`).
pub trait Runtime: Sized + Send + Sync + 'static {
    /// The adapter's stream: a [`StreamCore`] in its ecosystem's I/O traits.
    type Stream: From<StreamCore> + Send + 'static;
    /// The adapter's timer, for the link driver, the redial loop and timeouts.
    type Timer: Timer + Default + Unpin + Send + 'static;

    /// Runs `task` in the background, to completion.
    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static;
}

/// How a runtime turns one of its ecosystem's I/O objects (a TCP stream, a TLS
/// stream, a pipe) into a [`Link`]. The tokio adapter implements it for every
/// tokio `AsyncRead + AsyncWrite`, the futures-io adapter for every futures-io
/// one.
pub trait LinkOf<T>: Runtime {
    /// The link around `T`.
    type Link: Link + Unpin + Send + 'static;

    /// Wraps `io`.
    fn link(io: T) -> Self::Link;
}

/// `future`'s output, or `None` if `limit` passes first (on `R`'s timer).
pub(crate) async fn timeout<R: Runtime, F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let deadline = Instant::now() + limit;
    let mut timer = R::Timer::default();
    let mut future = pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.poll_until(cx, deadline).map(|()| None)
    })
    .await
}

/// Waits `wait` on `R`'s timer.
pub(crate) async fn sleep<R: Runtime>(wait: Duration) {
    sleep_until::<R>(Instant::now() + wait).await
}

/// Waits until `deadline` on `R`'s timer.
pub(crate) async fn sleep_until<R: Runtime>(deadline: Instant) {
    let mut timer = R::Timer::default();
    poll_fn(|cx| timer.poll_until(cx, deadline)).await
}

/// A runtime with TCP, for the helpers that take an address
/// ([`Session::connect`](crate::Session::connect), `connect_resumable`,
/// [`Listener`](crate::Listener), [`Acceptor::serve`](crate::Acceptor::serve)).
/// Its dial and accept set `TCP_NODELAY`: hawser batches frames itself, and
/// Nagle's algorithm would hold a small write behind the peer's delayed ACK
/// (up to 40 ms on Linux).
pub trait TcpRuntime: Runtime {
    /// The runtime's TCP stream.
    type TcpStream: Send + 'static;
    /// The runtime's TCP listener.
    type TcpListener: Send + Sync + 'static;

    /// Dials `addr` (`host:port`, names resolved on the runtime) with
    /// `TCP_NODELAY` set.
    fn connect_tcp(addr: String) -> impl Future<Output = io::Result<Self::TcpStream>> + Send + 'static;

    /// Listens on `addr`.
    fn bind_tcp(addr: String) -> impl Future<Output = io::Result<Self::TcpListener>> + Send + 'static;

    /// The address `listener` listens on.
    fn local_addr(listener: &Self::TcpListener) -> io::Result<SocketAddr>;

    /// The next connection of `listener`, with `TCP_NODELAY` set, and the
    /// peer's address.
    fn accept_tcp(
        listener: &Self::TcpListener,
    ) -> impl Future<Output = io::Result<(Self::TcpStream, SocketAddr)>> + Send;
}

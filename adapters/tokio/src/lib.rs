//! # hawser-tokio
//!
//! hawser sessions over any tokio `AsyncRead + AsyncWrite` link: TCP, TLS, Unix
//! sockets, `tokio::io::duplex`.
//!
//! ```
//! use hawser_tokio::{Config, Listener, Session};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     // Echo every stream of every session.
//!     while let Ok((session, _peer)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             while let Some(stream) = session.accept().await {
//!                 tokio::spawn(async move {
//!                     let (mut from, mut to) = tokio::io::split(stream);
//!                     tokio::io::copy(&mut from, &mut to).await?;
//!                     to.shutdown().await
//!                 });
//!             }
//!         });
//!     }
//! });
//!
//! let session = Session::connect(addr, Config::default()).await?;
//! let mut stream = session.open_stream().await?;
//! stream.write_all(b"hello").await?;
//! stream.shutdown().await?; // finish: the peer reads end-of-stream after "hello"
//! let mut reply = Vec::new();
//! stream.read_to_end(&mut reply).await?;
//! assert_eq!(reply, b"hello");
//! # Ok(()) }
//! ```
//!
//! The session runs in a task of its own (spawned with `tokio::spawn`): it reads the
//! link, answers pings, grants windows and queues inbound streams whether or not
//! anyone calls [`Session::accept`]. Inbound streams wait in the bounded backlog
//! (`Config::accept_backlog`); beyond it the peer's opens are refused.
//!
//! ## Dropping
//! - Dropping a [`Stream`] finishes it: data already written is still sent, then
//!   the FIN; whatever the peer still sends is read and discarded, up to 1 MiB
//!   or for 10 s, after which the stream is reset with `ResetCode::CANCEL` (a
//!   peer that keeps sending cannot hold it forever). Use [`Stream::reset`] to
//!   abandon a stream at once instead.
//! - Dropping the last handle of a session (every [`Session`], [`Control`] and
//!   [`Stream`]) ends it: it goes away with `NORMAL`, the streams still draining
//!   finish, and the link is shut. [`ControlCore::close`] ends it at once.
//! - A process about to exit after ending a session waits for
//!   [`Control::released`], not only [`Control::closed`]: it resolves once the
//!   peer has closed its side of the link too (so it has read the last frames)
//!   or after the driver's 2 s linger. Exiting with unread bytes on the socket
//!   makes the kernel reset the connection, which throws away what the peer
//!   has not read yet.
//!
//! ## Surviving link loss
//! With `Config::resumption` set on both sides, [`Session::connect_resumable`]
//! redials after the link drops (a closure and a [`RetryPolicy`]) and the server's
//! [`Acceptor`] hands each new link to a new session or to the detached session it
//! resumes; streams stay open and nothing is lost or repeated.
//! [`Control::next_link_event`] reports what happens to the link.
//!
//! ## Forwarding TCP over a session
//! `tokio::io::copy_bidirectional` joins a stream and a TCP connection, with
//! half-close carried through. When a forward fails, reset the stream: a clean
//! end-of-stream would make a truncated transfer look complete.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use hawser_tokio::{Config, Listener, ResetCode, Session};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! // The target: an echo service.
//! let target = TcpListener::bind("127.0.0.1:0").await?;
//! let target_addr = target.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut tcp, _)) = target.accept().await {
//!         tokio::spawn(async move {
//!             let (mut from, mut to) = tcp.split();
//!             let _ = tokio::io::copy(&mut from, &mut to).await;
//!         });
//!     }
//! });
//!
//! // The far end forwards every inbound stream to the target.
//! let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
//! let far_end = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let Ok((session, _)) = listener.accept().await else { return };
//!     while let Some(mut stream) = session.accept().await {
//!         tokio::spawn(async move {
//!             let Ok(mut tcp) = TcpStream::connect(target_addr).await else {
//!                 return stream.reset(ResetCode::REFUSED);
//!             };
//!             let _ = tcp.set_nodelay(true);
//!             if tokio::io::copy_bidirectional(&mut stream, &mut tcp).await.is_err() {
//!                 stream.reset(ResetCode(ResetCode::APPLICATION_MIN));
//!             }
//!         });
//!     }
//! });
//!
//! // The near end: each forwarded connection is a stream.
//! let session = Session::connect(far_end, Config::default()).await?;
//! let mut stream = session.open_stream().await?;
//! stream.write_all(b"through the session").await?;
//! stream.shutdown().await?; // half-close: the reply still comes back
//! let mut reply = Vec::new();
//! stream.read_to_end(&mut reply).await?;
//! assert_eq!(reply, b"through the session");
//! # Ok(()) }
//! ```
//!
//! ## HTTP: hyper, tonic, axum
//! Behind the features `hyper`, `tonic` and `axum`, the `http` module
//! (which needs Rust 1.88, as tonic does) puts a session under tokio's HTTP
//! stack: `http::Connector` opens a stream per connection for hyper's
//! client and tonic's `Endpoint::connect_with_connector`;
//! `http::InboundStreams` hands a session's inbound streams to tonic's
//! `serve_with_incoming`; `http::SessionListener` is axum's `Listener`.
//! Over a resumable session, calls survive the loss of the link.
//!
//! ## Cancel safety
//! Reading, writing (`poll_write`: a write that is cancelled took nothing),
//! [`Control::open_stream`], [`Session::accept`], [`Control::closed`], [`Control::released`] and the
//! event streams are cancel-safe: dropping one of them mid-way, as
//! `tokio::time::timeout` does, loses no byte, delivers none twice, and loses
//! or opens no stream (`tests/cancel.rs` cuts each short thousands of times).
//! As with any tokio writer, `write_all` is not: on cancellation it may have
//! written a prefix. To bound a session's operations in time, wrap them in
//! `tokio::time::timeout`.
//!
//! ## Errors
//! Stream operations fail with an `io::Error` whose kind says what happened
//! (`ConnectionReset` for a reset or a lost link, `ConnectionRefused` for a refused open,
//! `ConnectionAborted` once the session is closed, `TimedOut` after missed
//! keepalives) and whose source is the hawser error with the code.
//! [`reset_code`] gives the code a stream was reset with, and [`session_error`]
//! why the session ended, without downcasting:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use hawser_tokio::{reset_code, Config, Listener, ResetCode, Session};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
//! let client = Session::connect(listener.local_addr()?, Config::default()).await?;
//! let (server, _) = listener.accept().await?;
//! let mut stream = client.open_stream().await?;
//! stream.write_all(b"request").await?;
//! let inbound = server.accept().await.expect("the stream arrives");
//! inbound.reset(ResetCode(0x101)); // an application's own code
//! let err = stream.read(&mut [0u8; 16]).await.expect_err("the stream was reset");
//! assert_eq!(reset_code(&err), Some(ResetCode(0x101)));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "hyper", feature = "tonic", feature = "axum"))]
pub mod http;
mod pool;
mod runtime;
mod stream;

pub use hawser_driver::common::*;
pub use pool::{Pool, PoolStream};
pub use runtime::{Tokio, TokioLink, TokioTimer};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, Stream};

/// A multiplexed session over one link, its driver on a tokio task; see
/// [`hawser_driver::Session`].
pub type Session = hawser_driver::Session<Tokio>;
/// A cloneable handle for opening streams and steering a session from any
/// task; see [`hawser_driver::Control`].
pub type Control = hawser_driver::Control<Tokio>;
/// The server side of resumable sessions over links of type `T`; see
/// [`hawser_driver::Acceptor`].
pub type Acceptor<T = tokio::net::TcpStream> = hawser_driver::Acceptor<Tokio, T>;
/// What [`Acceptor::accept`] did with a link.
pub type Accepted = hawser_driver::Accepted<Tokio>;
/// The new sessions of [`Acceptor::serve`]'s loop.
pub type Incoming = hawser_driver::Incoming<Tokio>;
/// A TCP listener whose connections become server sessions, with
/// `TCP_NODELAY` set on each.
pub type Listener = hawser_driver::Listener<Tokio>;
/// The future that runs a session over a link of type `T`, from
/// [`Session::with_driver`].
pub type SessionDriver<T> = hawser_driver::SessionDriver<TokioLink<T>, Tokio>;

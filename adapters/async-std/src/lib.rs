//! # hawser-async-std
//!
//! hawser sessions over any `futures::io` `AsyncRead + AsyncWrite` link, for
//! async-std and smol (and any executor: the driver is a plain future).
//!
//! With async-std, `Session::client` and `Session::server` spawn the session's
//! driver themselves:
//!
//! ```
//! # #[cfg(feature = "async-std")]
//! use hawser_async_std::{Config, Listener, Session};
//!
//! # #[cfg(not(feature = "async-std"))] fn main() {}
//! # #[cfg(feature = "async-std")]
//! # fn main() -> std::io::Result<()> {
//! async_std::task::block_on(async {
//!     let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
//!     let client = Session::connect(listener.local_addr()?, Config::default()).await?;
//!     let (server, _peer) = listener.accept().await?;
//!     let _stream = client.open_stream().await?;
//!     assert!(server.accept().await.is_some());
//!     Ok(())
//! })
//! # }
//! ```
//!
//! With smol, enable the `smol` feature (and switch `async-std` off if you do
//! not use it: async-std is no longer maintained upstream) and take the same
//! types from `hawser_async_std::smol`, whose drivers and helpers spawn on smol.
//! On any other executor, take a session's driver and run it yourself:
//!
//! ```
//! # #[cfg(feature = "async-std")]
//! use hawser_async_std::{Config, Role, Session};
//!
//! # #[cfg(not(feature = "async-std"))] fn main() {}
//! # #[cfg(feature = "async-std")]
//! # fn main() -> std::io::Result<()> {
//! smol::block_on(async {
//!     let listener = smol::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let tcp = smol::net::TcpStream::connect(listener.local_addr()?).await?;
//!     tcp.set_nodelay(true)?;
//!     let (session, driver) = Session::with_driver(tcp, Config::default(), Role::Client)?;
//!     smol::spawn(driver).detach();
//!
//!     let (accepted, _) = listener.accept().await?;
//!     accepted.set_nodelay(true)?;
//!     let (server, server_driver) = Session::with_driver(accepted, Config::default(), Role::Server)?;
//!     smol::spawn(server_driver).detach();
//!
//!     let _stream = session.open_stream().await?;
//!     assert!(server.accept().await.is_some());
//!     Ok(())
//! })
//! # }
//! ```
//!
//! The driver reads the link, answers pings, grants windows and queues inbound
//! streams whether or not anyone accepts; dropping a [`Stream`] finishes it
//! (written data still goes out, then a FIN; what the peer still sends is
//! discarded, up to 1 MiB or for 10 s, then the stream is reset with
//! `ResetCode::CANCEL`), and dropping the last handle of a
//! session (every `Session`, `Control` and `Stream`) makes it go away with
//! `NORMAL`, drain and close. Errors are `io::Error`s whose kind
//! says what happened and whose source carries the hawser error and code;
//! [`reset_code`] and [`session_error`] read them out without downcasting.

//!
//! Reading, writing (`poll_write`: a write that is cancelled took nothing),
//! `open_stream`, `accept`, `closed` and the event streams are cancel-safe:
//! dropping one of them mid-way, as `async_std::future::timeout` does, loses no
//! byte, delivers none twice, and loses or opens no stream (`tests/cancel.rs`).
//! `write_all` is not: on cancellation it may have written a prefix.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "async-std", feature = "smol"))]
mod pool;
mod runtime;
mod stream;

pub use hawser_driver::common::*;
#[cfg(feature = "async-std")]
pub use pool::{Pool, PoolStream};
#[cfg(feature = "async-std")]
pub use runtime::AsyncStd;
#[cfg(feature = "smol")]
pub use runtime::Smol;
pub use runtime::{AsyncIoTimer, FuturesLink};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, Stream};

#[cfg(any(feature = "async-std", feature = "smol"))]
/// The names of one executor's flavour of the shared types.
macro_rules! flavour {
    ($runtime:ty, $tcp:ty, $executor:literal) => {
        #[doc = concat!("A multiplexed session over one link, its driver on ", $executor, "; see [`hawser_driver::Session`].")]
        pub type Session = hawser_driver::Session<$runtime>;
        #[doc = concat!("A cloneable handle for opening streams and steering a session on ", $executor, "; see [`hawser_driver::Control`].")]
        pub type Control = hawser_driver::Control<$runtime>;
        /// The server side of resumable sessions over links of type `T`; see
        /// [`hawser_driver::Acceptor`].
        pub type Acceptor<T = $tcp> = hawser_driver::Acceptor<$runtime, T>;
        /// What `Acceptor::accept` did with a link.
        pub type Accepted = hawser_driver::Accepted<$runtime>;
        /// The new sessions of `Acceptor::serve`'s loop.
        pub type Incoming = hawser_driver::Incoming<$runtime>;
        /// A TCP listener whose connections become server sessions, with
        /// `TCP_NODELAY` set on each.
        pub type Listener = hawser_driver::Listener<$runtime>;
        /// The future that runs a session over a link of type `T`, from
        /// `Session::with_driver`.
        pub type SessionDriver<T> = hawser_driver::SessionDriver<$crate::FuturesLink<T>, $runtime>;
    };
}

#[cfg(feature = "async-std")]
flavour!(AsyncStd, async_std::net::TcpStream, "async-std");

/// The same types with their drivers on smol (feature `smol`), for programs
/// that run smol without async-std.
///
/// ```
/// use hawser_async_std::smol::{Listener, Session};
/// use hawser_async_std::Config;
///
/// # fn main() -> std::io::Result<()> {
/// smol::block_on(async {
///     let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
///     let client = Session::connect(listener.local_addr()?, Config::default()).await?;
///     let (server, _peer) = listener.accept().await?;
///     let _stream = client.open_stream().await?;
///     assert!(server.accept().await.is_some());
///     Ok(())
/// })
/// # }
/// ```
#[cfg(feature = "smol")]
pub mod smol {
    use crate::Stream;

    flavour!(crate::Smol, ::smol::net::TcpStream, "smol");

    hawser_driver::declare_pool! {
        /// A pool of sessions to one service, on smol: the same policy as the
        /// crate root's `Pool` (and hawser-tokio's), its dials and upkeep on
        /// smol tasks.
        ///
        /// ```
        /// use futures::{AsyncReadExt, AsyncWriteExt};
        /// use hawser_async_std::smol::{Listener, Pool, Session};
        /// use hawser_async_std::{Config, PoolConfig};
        ///
        /// # smol::block_on(async {
        /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
        /// let addr = listener.local_addr()?;
        /// smol::spawn(async move {
        ///     while let Ok((session, _)) = listener.accept().await {
        ///         smol::spawn(async move {
        ///             while let Some(mut stream) = session.accept().await {
        ///                 stream.write_all(b"hi").await?;
        ///                 stream.close().await?;
        ///             }
        ///             std::io::Result::Ok(())
        ///         })
        ///         .detach();
        ///     }
        /// })
        /// .detach();
        ///
        /// let pool = Pool::new(PoolConfig::default(), move || Session::connect(addr, Config::default()))?;
        /// let mut stream = pool.open_stream().await?;
        /// let mut greeting = String::new();
        /// stream.read_to_string(&mut greeting).await?;
        /// assert_eq!(greeting, "hi");
        /// # std::io::Result::Ok(()) }).unwrap();
        /// ```
        runtime: crate::Smol,
        session: Session,
        control: Control,
        stream: Stream,
    }

    crate::stream::futures_io!(PoolStream);
}

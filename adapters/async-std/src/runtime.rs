//! futures-io links, the async-io timer, and the two executors the shared
//! layer can spawn on: async-std and smol.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use futures_io::{AsyncRead, AsyncWrite};
use hawser_driver::{Link, Timer};

/// A futures-io link as the session's driver sees it.
pub struct FuturesLink<T>(T);

impl<T> FuturesLink<T> {
    /// Wraps `io`, for a driver made by hand
    /// ([`LinkDriver::with_session`](hawser_driver::LinkDriver::with_session)).
    pub fn new(io: T) -> Self {
        FuturesLink(io)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Link for FuturesLink<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_write_vectored(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(Pin::new(&mut self.0).poll_close(cx))?;
        shut_tcp_write(&self.0);
        Poll::Ready(Ok(()))
    }
}

/// async-std's `TcpStream` only flushes when closed (smol's shuts its sending
/// side): without a shutdown here the peer would see the end of the link
/// only when the driver drops it, after lingering.
fn shut_tcp_write<T: 'static>(io: &T) {
    #[cfg(feature = "async-std")]
    if let Some(tcp) = (io as &dyn std::any::Any).downcast_ref::<async_std::net::TcpStream>() {
        // Already shut, or the peer gone: the driver lingers either way.
        let _ = tcp.shutdown(std::net::Shutdown::Write);
    }
    #[cfg(not(feature = "async-std"))]
    let _ = io;
}

/// The session timer, on async-io (which async-std and smol both run).
#[derive(Default)]
pub struct AsyncIoTimer {
    timer: Option<(StdInstant, async_io::Timer)>,
}

impl Timer for AsyncIoTimer {
    fn poll_until(&mut self, cx: &mut Context<'_>, deadline: StdInstant) -> Poll<()> {
        match &mut self.timer {
            Some((at, timer)) if *at == deadline => Pin::new(timer).poll(cx).map(|_| ()),
            _ => {
                let mut timer = async_io::Timer::at(deadline);
                let result = Pin::new(&mut timer).poll(cx).map(|_| ());
                self.timer = Some((deadline, timer));
                result
            }
        }
    }
}

#[cfg(any(feature = "async-std", feature = "smol"))]
/// Declares an executor's runtime: its spawn, futures-io links, and TCP with
/// `TCP_NODELAY` set on every dialled and accepted socket.
macro_rules! futures_runtime {
    ($(#[$doc:meta])* $name:ident, stream: $tcp:ty, listener: $listener:ty, spawn: |$task:ident| $spawn:expr $(,)?) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name;

        impl hawser_driver::Runtime for $name {
            type Stream = $crate::Stream;
            type Timer = $crate::AsyncIoTimer;

            fn spawn<F>($task: F)
            where
                F: std::future::Future<Output = ()> + Send + 'static,
            {
                $spawn;
            }
        }

        impl<T> hawser_driver::LinkOf<T> for $name
        where
            T: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
        {
            type Link = $crate::FuturesLink<T>;

            fn link(io: T) -> $crate::FuturesLink<T> {
                $crate::runtime::futures_link(io)
            }
        }

        impl hawser_driver::TcpRuntime for $name {
            type TcpStream = $tcp;
            type TcpListener = $listener;

            async fn connect_tcp(addr: String) -> std::io::Result<$tcp> {
                let tcp = <$tcp>::connect(addr).await?;
                hawser_driver::tune_tcp(&tcp)?;
                Ok(tcp)
            }

            async fn bind_tcp(addr: String) -> std::io::Result<$listener> {
                <$listener>::bind(addr).await
            }

            fn local_addr(listener: &$listener) -> std::io::Result<std::net::SocketAddr> {
                listener.local_addr()
            }

            async fn accept_tcp(listener: &$listener) -> std::io::Result<($tcp, std::net::SocketAddr)> {
                let (tcp, peer) = listener.accept().await?;
                hawser_driver::tune_tcp(&tcp)?;
                Ok((tcp, peer))
            }
        }
    };
}

#[cfg(any(feature = "async-std", feature = "smol"))]
pub(crate) fn futures_link<T>(io: T) -> FuturesLink<T> {
    FuturesLink::new(io)
}

#[cfg(feature = "async-std")]
futures_runtime! {
    /// async-std, as hawser's shared layer uses it: sessions' drivers are
    /// spawned with `async_std::task::spawn`.
    AsyncStd,
    stream: async_std::net::TcpStream,
    listener: async_std::net::TcpListener,
    spawn: |task| async_std::task::spawn(task),
}

#[cfg(feature = "smol")]
futures_runtime! {
    /// smol, as hawser's shared layer uses it: sessions' drivers are spawned
    /// with `smol::spawn` (and detached).
    Smol,
    stream: ::smol::net::TcpStream,
    listener: ::smol::net::TcpListener,
    spawn: |task| ::smol::spawn(task).detach(),
}

#[cfg(test)]
mod tests {
    /// Dials and accepts through `R`'s `TcpRuntime` and checks both sockets
    /// have `TCP_NODELAY`, where a plain dial has Nagle on.
    #[cfg(any(feature = "async-std", feature = "smol"))]
    macro_rules! nodelay_test {
        ($name:ident, $runtime:ty, $block_on:path, $plain:path) => {
            #[test]
            fn $name() {
                use hawser_driver::TcpRuntime;
                $block_on(async {
                    let listener = <$runtime>::bind_tcp("127.0.0.1:0".into())
                        .await
                        .expect("bind on loopback");
                    let addr = <$runtime>::local_addr(&listener).expect("bound");
                    let dialled = <$runtime>::connect_tcp(addr.to_string()).await.expect("dial");
                    let (accepted, _) = <$runtime>::accept_tcp(&listener).await.expect("accept");
                    assert!(dialled.nodelay().expect("readable option"));
                    assert!(accepted.nodelay().expect("readable option"));
                    let plain = $plain(addr).await.expect("dial");
                    assert!(
                        !plain.nodelay().expect("readable option"),
                        "the default is Nagle on"
                    );
                });
            }
        };
    }

    #[cfg(feature = "async-std")]
    nodelay_test!(
        async_std_sockets_have_nodelay,
        crate::AsyncStd,
        async_std::task::block_on,
        async_std::net::TcpStream::connect
    );

    #[cfg(feature = "smol")]
    nodelay_test!(
        smol_sockets_have_nodelay,
        crate::Smol,
        ::smol::block_on,
        ::smol::net::TcpStream::connect
    );
}

//! Every conformance scenario over hawser-async-std and loopback TCP, on
//! async-std (feature `async-std`) and on smol (feature `smol`, with or
//! without async-std), and the hashicorp/yamux interop scenarios.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use hawser_async_std::{Config, ResetCode, Role};
use hawser_conformance::harness::{HarnessSession, HarnessStream, RawLink};

/// A session of either flavour: `R` is the runtime its spawning helpers use.
struct Session<R>(Arc<hawser_driver::Session<R>>);

impl<R> Clone for Session<R> {
    fn clone(&self) -> Self {
        Session(self.0.clone())
    }
}

struct Stream(hawser_async_std::Stream);

/// A raw TCP stream of either runtime.
struct Raw<T>(T);

async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *writer).poll_write(cx, data)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}

async fn read<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *reader).poll_read(cx, buf)).await
}

impl<R: hawser_driver::Runtime<Stream = hawser_async_std::Stream>> HarnessSession for Session<R> {
    type Stream = Stream;

    async fn open(&self) -> io::Result<Stream> {
        self.0.open_stream().await.map(Stream)
    }

    async fn accept(&self) -> Option<Stream> {
        self.0.accept().await.map(Stream)
    }

    fn control(&self) -> &hawser_driver::ControlCore {
        &self.0
    }
}

impl HarnessStream for Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read(&mut self.0, buf).await
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        write_all(&mut self.0, data).await
    }

    async fn finish(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut self.0).poll_close(cx)).await
    }

    fn reset(self, code: ResetCode) {
        self.0.reset(code);
    }

    fn reset_with_reason(self, code: ResetCode, reason: &str) {
        self.0.reset_with_reason(code, reason);
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> RawLink for Raw<T> {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        write_all(&mut self.0, data).await
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read(&mut self.0, buf).await
    }
}

/// The harness for one runtime: its TCP types, spawn and sleep.
#[allow(unused_macros)] // with neither executor's feature, no harness is built
macro_rules! runtime_harness {
    ($name:ident, $flavour:ty, $net:path, $spawn:expr, $detach:expr, $sleep:expr, $block_on:expr) => {
        struct $name;

        impl $name {
            async fn loopback() -> io::Result<(TcpStream, TcpStream)> {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let dialled = TcpStream::connect(addr).await?;
                let (accepted, _) = listener.accept().await?;
                Ok((dialled, accepted))
            }

            fn session(link: TcpStream, config: Config, role: Role) -> io::Result<Session<$flavour>> {
                let (session, driver) = hawser_driver::Session::<$flavour>::with_driver(link, config, role)?;
                ($detach)(async move {
                    let _ = driver.await;
                });
                Ok(Session(Arc::new(session)))
            }
        }

        use $net::{TcpListener, TcpStream};

        impl hawser_conformance::harness::Harness for $name {
            type Session = Session<$flavour>;
            type Raw = Raw<TcpStream>;

            async fn pair(client: Config, server: Config) -> io::Result<(Session<$flavour>, Session<$flavour>)> {
                let (a, b) = Self::loopback().await?;
                Ok((
                    Self::session(a, client, Role::Client)?,
                    Self::session(b, server, Role::Server)?,
                ))
            }

            async fn with_raw_peer(role: Role, config: Config) -> io::Result<(Session<$flavour>, Raw<TcpStream>)> {
                let (a, b) = Self::loopback().await?;
                Ok((Self::session(a, config, role)?, Raw(b)))
            }

            fn spawn<F>(task: F) -> impl Future<Output = ()> + Send
            where
                F: Future<Output = ()> + Send + 'static,
            {
                ($spawn)(task)
            }

            async fn sleep(duration: Duration) {
                ($sleep)(duration).await;
            }
        }

        fn run(scenario: impl Future<Output = Result<(), String>>) -> Result<(), String> {
            ($block_on)(async {
                let limit = async {
                    ($sleep)(Duration::from_secs(60)).await;
                    Err("timed out after 60 s".to_string())
                };
                let mut scenario = std::pin::pin!(scenario);
                let mut limit = std::pin::pin!(limit);
                poll_fn(|cx| {
                    if let std::task::Poll::Ready(out) = scenario.as_mut().poll(cx) {
                        return std::task::Poll::Ready(out);
                    }
                    limit.as_mut().poll(cx)
                })
                .await
            })
        }
    };
}

#[cfg(feature = "async-std")]
mod on_async_std {
    use super::*;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) -> async_std::task::JoinHandle<()> {
        async_std::task::spawn(task)
    }

    fn detach<F: Future<Output = ()> + Send + 'static>(task: F) {
        // Dropping an async-std JoinHandle leaves the task running.
        drop(async_std::task::spawn(task));
    }

    runtime_harness!(
        AsyncStd,
        hawser_async_std::AsyncStd,
        async_std::net,
        spawn,
        detach,
        async_std::task::sleep,
        async_std::task::block_on
    );
    hawser_conformance::conformance_tests!(AsyncStd, run);

    impl hawser_conformance::interop::InteropHarness for AsyncStd {
        fn session_over(
            link: std::net::TcpStream,
            role: Role,
            config: Config,
        ) -> io::Result<Session<hawser_async_std::AsyncStd>> {
            Self::session(TcpStream::from(link), config, role)
        }
    }

    // Against hashicorp/yamux (Go); the other yamux peers run through the tokio
    // and blocking adapters.
    hawser_conformance::hashicorp_tests!(AsyncStd, run);
}

#[cfg(feature = "smol")]
mod on_smol {
    use super::*;

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) -> smol::Task<()> {
        smol::spawn(task)
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    fn detach<F: Future<Output = ()> + Send + 'static>(task: F) {
        // Dropping a smol Task cancels it; the session driver must outlive the handle.
        smol::spawn(task).detach();
    }

    runtime_harness!(
        Smol,
        hawser_async_std::Smol,
        smol::net,
        spawn,
        detach,
        sleep,
        smol::block_on
    );
    hawser_conformance::conformance_tests!(Smol, run);
}

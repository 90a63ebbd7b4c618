//! The session handle over futures-io links.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use futures_io::{AsyncRead, AsyncWrite};
use hawser_core::{Config, Role};
use hawser_driver::{ControlCore, Driver, Link, Shared, Timer};

use crate::stream::Stream;

/// The future that runs a session; spawn it on any executor. It resolves when the
/// session has ended, to `Ok` for an orderly end.
pub type SessionDriver<T> = Driver<FuturesLink<T>, AsyncIoTimer>;

/// A cloneable handle for opening streams and steering the session.
#[derive(Clone)]
pub struct Control {
    core: ControlCore,
}

/// A multiplexed session over one link; it derefs to [`Control`].
pub struct Session {
    control: Control,
}

impl Session {
    pub(crate) fn from_shared(shared: hawser_driver::SharedRef) -> Session {
        Session {
            control: Control {
                core: ControlCore::new(shared),
            },
        }
    }

    /// A session and the driver future that runs it; spawn the driver.
    pub fn new<T>(link: T, config: Config, role: Role) -> io::Result<(Session, SessionDriver<T>)>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = Shared::new(role, config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let driver = Driver::new(shared.clone(), FuturesLink(link), AsyncIoTimer::default());
        let control = Control {
            core: ControlCore::new(shared),
        };
        Ok((Session { control }, driver))
    }

    /// A session as the dialling side, its driver spawned on async-std.
    #[cfg(feature = "async-std")]
    pub fn client<T>(link: T, config: Config) -> io::Result<Session>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (session, driver) = Self::new(link, config, Role::Client)?;
        async_std::task::spawn(driver);
        Ok(session)
    }

    /// A session as the accepting side, its driver spawned on async-std.
    #[cfg(feature = "async-std")]
    pub fn server<T>(link: T, config: Config) -> io::Result<Session>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (session, driver) = Self::new(link, config, Role::Server)?;
        async_std::task::spawn(driver);
        Ok(session)
    }

    /// The next inbound stream, or `None` once no more will come.
    pub async fn accept(&self) -> Option<Stream> {
        let id = poll_fn(|cx| self.control.core.poll_accept(cx)).await?;
        Some(Stream::new(self.control.core.shared().clone(), id))
    }

    /// A cloneable control handle.
    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl std::ops::Deref for Session {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Control {
    /// Opens a stream, waiting while a limit is reached.
    pub async fn open_stream(&self) -> io::Result<Stream> {
        let mut wait = self.core.open_wait();
        let id = poll_fn(|cx| wait.poll(cx)).await?;
        Ok(Stream::new(self.core.shared().clone(), id))
    }

    /// Resumable sessions: the next link event (lost, reconnecting, resumed, gave
    /// up); `None` once the session has ended and none are left.
    pub async fn next_link_event(&self) -> Option<hawser_driver::LinkEvent> {
        poll_fn(|cx| self.core.poll_link_event(cx)).await
    }

    /// Waits until the session has ended and its driver has stopped (the link is
    /// shut); returns why it ended (`Ok` for an orderly end; otherwise an error
    /// that [`session_error`](crate::session_error) reads). Cancel-safe.
    pub async fn closed(&self) -> io::Result<()> {
        match poll_fn(|cx| self.core.poll_closed(cx)).await {
            None => Ok(()),
            Some(err) => Err(err.into()),
        }
    }

    /// Resumable sessions: waits until the session would survive losing its link
    /// (the handshake and the ticket exchange are done), or fails with what ended
    /// it first. The driver must be running. Cancel-safe.
    pub async fn resumable(&self) -> io::Result<()> {
        poll_fn(|cx| self.core.poll_resumable(cx)).await
    }

    /// The next health event (pong with its RTT, missed ping, unhealthy,
    /// recovered, go-away received); `None` once the session has ended and none
    /// are left. See [`HealthEvent`](crate::HealthEvent) for when a dead peer is
    /// noticed with the default keepalive; [`status`](ControlCore::status) gives
    /// a snapshot at any time. Cancel-safe: an event is taken only when returned.
    pub async fn next_health_event(&self) -> Option<hawser_driver::HealthEvent> {
        poll_fn(|cx| self.core.poll_health_event(cx)).await
    }
}

impl std::ops::Deref for Control {
    type Target = ControlCore;

    /// Go-away, close, ping, health and counters are the shared [`ControlCore`]'s.
    fn deref(&self) -> &ControlCore {
        &self.core
    }
}

/// A futures-io link as the driver sees it.
pub struct FuturesLink<T>(pub(crate) T);

impl<T: AsyncRead + AsyncWrite + Unpin> Link for FuturesLink<T> {
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
        Pin::new(&mut self.0).poll_close(cx)
    }
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

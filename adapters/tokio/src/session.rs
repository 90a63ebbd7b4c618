//! The session handle and its control handle.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use bytes::BytesMut;
use hawser_core::{Config, Role};
use hawser_driver::{ControlCore, Driver, Link, Shared, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::Stream;

/// A cloneable handle for opening streams and steering the session from any task.
#[derive(Clone)]
pub struct Control {
    core: ControlCore,
}

/// A multiplexed session over one link. It derefs to [`Control`] for opening
/// streams, going away and reading health.
pub struct Session {
    control: Control,
}

impl Session {
    /// A session as the dialling side (odd stream ids). Must be called within a
    /// tokio runtime: the session's driver is spawned at once.
    pub fn client<T>(link: T, config: Config) -> io::Result<Session>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::new(link, config, Role::Client)
    }

    /// A session as the accepting side (even stream ids).
    pub fn server<T>(link: T, config: Config) -> io::Result<Session>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::new(link, config, Role::Server)
    }

    /// The handle of a session whose driver is already spawned.
    pub(crate) fn from_shared(shared: hawser_driver::SharedRef) -> Session {
        Session {
            control: Control {
                core: ControlCore::new(shared),
            },
        }
    }

    fn new<T>(link: T, config: Config, role: Role) -> io::Result<Session>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Shared::new(role, config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        tokio::spawn(Driver::new(shared.clone(), TokioLink(link), TokioTimer::default()));
        Ok(Session::from_shared(shared))
    }

    /// The next inbound stream, or `None` once the session is closed or draining
    /// and no more will come.
    pub async fn accept(&self) -> Option<Stream> {
        let id = poll_fn(|cx| self.control.core.poll_accept(cx)).await?;
        Some(Stream::new(self.control.core.shared().clone(), id))
    }

    /// A cloneable control handle.
    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl Control {
    /// Waits until the session has ended and its link is shut; returns why it
    /// ended (`Ok` for an orderly end; otherwise an error that
    /// [`session_error`](crate::session_error) reads). Cancel-safe, and any
    /// number of tasks may wait at once.
    pub async fn closed(&self) -> io::Result<()> {
        match poll_fn(|cx| self.core.poll_closed(cx)).await {
            None => Ok(()),
            Some(err) => Err(err.into()),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl std::ops::Deref for Session {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Control {
    /// Opens a stream, waiting while a limit (max streams, unacknowledged opens)
    /// is reached.
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

    /// Resumable sessions: waits until the session would survive losing its link
    /// (the handshake and the ticket exchange are done), or fails with what ended
    /// it first; [`Session::connect_resumable`] returns only once this holds.
    /// Cancel-safe.
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

pub(crate) struct TokioLink<T>(pub(crate) T);

impl<T: AsyncRead + AsyncWrite + Unpin> Link for TokioLink<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read_buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read_buf.filled().len())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut, _want: usize) -> Poll<io::Result<usize>> {
        // tokio reads into uninitialised memory safely: no zeroing, so read all
        // the room there is.
        tokio_util::io::poll_read_buf(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_write_vectored(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[derive(Default)]
pub(crate) struct TokioTimer {
    sleep: Option<(StdInstant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Timer for TokioTimer {
    fn poll_until(&mut self, cx: &mut Context<'_>, deadline: StdInstant) -> Poll<()> {
        let sleep = match &mut self.sleep {
            Some((at, sleep)) => {
                if *at != deadline {
                    // Deadlines move with traffic: re-arm the one timer rather
                    // than allocating a new one.
                    sleep.as_mut().reset(tokio::time::Instant::from_std(deadline));
                    *at = deadline;
                }
                sleep
            }
            None => {
                let sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)));
                &mut self.sleep.insert((deadline, sleep)).1
            }
        };
        sleep.as_mut().poll(cx)
    }
}

use std::future::Future;

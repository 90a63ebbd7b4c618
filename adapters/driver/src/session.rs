//! The session and control handles every async adapter exports, written once
//! over a [`Runtime`].

use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;

use hawser_core::{Config, Role};

use crate::control::ControlCore;
use crate::events::LinkEvent;
use crate::health::HealthEvent;
use crate::link_driver::LinkDriver;
use crate::runtime::{LinkOf, Runtime};
use crate::shared::SharedRef;
use crate::stream::StreamCore;

/// A cloneable handle for opening streams and steering the session from any
/// task. It derefs to [`ControlCore`] for going away, closing, pinging, health
/// and counters.
pub struct Control<R> {
    core: ControlCore,
    runtime: PhantomData<fn() -> R>,
}

/// A multiplexed session over one link. It derefs to [`Control`] for opening
/// streams, going away and reading health.
///
/// The session runs in a task of its own: it reads the link, answers pings,
/// grants windows and queues inbound streams whether or not anyone calls
/// [`accept`](Session::accept). Dropping the last handle of a session (every
/// `Session`, `Control` and stream) makes it go away with `NORMAL`, let its
/// streams drain, and close.
pub struct Session<R> {
    control: Control<R>,
}

/// The future that runs a session over the link `L`: what
/// [`Session::with_driver`] hands back for the caller to run. It resolves when
/// the session has ended: `Ok` for an orderly end, otherwise why it ended.
pub type SessionDriver<L, R> = LinkDriver<L, <R as Runtime>::Timer>;

impl<R: Runtime> Session<R> {
    /// A session as the dialling side (odd stream ids) over `link`, its driver
    /// spawned at once on the runtime. `link` is any I/O object of the
    /// runtime's ecosystem; over TCP, tune it with [`tune_tcp`](crate::tune_tcp)
    /// (the adapters' `connect` and `Listener` do).
    pub fn client<T>(link: T, config: Config) -> io::Result<Self>
    where
        R: LinkOf<T>,
    {
        Self::spawned(link, config, Role::Client)
    }

    /// A session as the accepting side (even stream ids), its driver spawned
    /// at once on the runtime.
    pub fn server<T>(link: T, config: Config) -> io::Result<Self>
    where
        R: LinkOf<T>,
    {
        Self::spawned(link, config, Role::Server)
    }

    /// A session for `role` over `link` and the future that drives it, for
    /// running it yourself (on another executor, or to learn when it ends):
    /// nothing moves until the driver is polled.
    pub fn with_driver<T>(link: T, config: Config, role: Role) -> io::Result<(Self, SessionDriver<R::Link, R>)>
    where
        R: LinkOf<T>,
    {
        let (driver, core) = LinkDriver::with_session(R::link(link), R::Timer::default(), config, role)?;
        let session = Session {
            control: Control {
                core,
                runtime: PhantomData,
            },
        };
        Ok((session, driver))
    }

    fn spawned<T>(link: T, config: Config, role: Role) -> io::Result<Self>
    where
        R: LinkOf<T>,
    {
        let (session, driver) = Self::with_driver(link, config, role)?;
        spawn_driver::<R, _>(driver);
        Ok(session)
    }

    /// The handle of a session whose driver is already running.
    pub(crate) fn from_shared(shared: SharedRef) -> Self {
        Session {
            control: Control {
                core: ControlCore::new(shared),
                runtime: PhantomData,
            },
        }
    }

    /// The next inbound stream, or `None` once the session is closed or
    /// draining and no more will come. Cancel-safe: a stream is taken only
    /// when returned.
    pub async fn accept(&self) -> Option<R::Stream> {
        self.accept_core().await.map(R::Stream::from)
    }

    pub(crate) async fn accept_core(&self) -> Option<StreamCore> {
        poll_fn(|cx| self.control.core.poll_accept(cx)).await
    }

    /// A cloneable control handle.
    pub fn control(&self) -> Control<R> {
        self.control.clone()
    }
}

/// Runs a session's driver on `R` in the background.
pub(crate) fn spawn_driver<R: Runtime, L: crate::Link + Unpin + Send + 'static>(driver: LinkDriver<L, R::Timer>) {
    R::spawn(async move {
        if let Err(err) = driver.await {
            tracing::debug!(%err, "session ended");
        }
    });
}

impl<R: Runtime> Control<R> {
    /// Opens a stream, waiting while a limit (max streams, unacknowledged
    /// opens) is reached. Waiting opens are served in order. Cancel-safe: it
    /// opens no stream unless it returns one.
    pub async fn open_stream(&self) -> io::Result<R::Stream> {
        self.open_stream_core().await.map(R::Stream::from)
    }

    pub(crate) async fn open_stream_core(&self) -> io::Result<StreamCore> {
        let mut wait = self.core.open_wait();
        poll_fn(|cx| wait.poll(cx)).await
    }

    /// Waits until the session has ended and its link is shut; returns why it
    /// ended: `Ok` for an orderly end (a go-away from either side, or the last
    /// handle dropped, and the streams drained), otherwise an error that
    /// [`session_error`](crate::session_error) reads, such as
    /// `SessionError::LocallyClosed(code)` after
    /// [`close(code)`](ControlCore::close), whatever the code. Cancel-safe,
    /// and any number of tasks may wait at once.
    pub async fn closed(&self) -> io::Result<()> {
        match poll_fn(|cx| self.core.poll_closed(cx)).await {
            None => Ok(()),
            Some(err) => Err(err.into()),
        }
    }

    /// Waits until the session has ended and its link is let go of: after
    /// [`closed`](Self::closed), until the peer has closed its side too (so
    /// it has read everything this side sent), or the driver's
    /// [`LINGER`](crate::LINGER) has passed. A process about to exit waits
    /// for this rather than `closed`: the kernel resets a socket closed with
    /// unread data, and the reset throws away the last frames (a go-away,
    /// stream resets) the peer has not read yet. Returns as `closed` does.
    /// Cancel-safe.
    pub async fn released(&self) -> io::Result<()> {
        match poll_fn(|cx| self.core.poll_released(cx)).await {
            None => Ok(()),
            Some(err) => Err(err.into()),
        }
    }

    /// Resumable sessions: waits until the session would survive losing its
    /// link (the handshake and the ticket exchange are done), or fails with
    /// what ended it first; `connect_resumable` returns only once this holds.
    /// Cancel-safe.
    pub async fn resumable(&self) -> io::Result<()> {
        poll_fn(|cx| self.core.poll_resumable(cx)).await
    }

    /// Resumable sessions: the next link event (lost, reconnecting, resumed,
    /// gave up, ended); `None` once the session has ended and none are left.
    /// Cancel-safe.
    pub async fn next_link_event(&self) -> Option<LinkEvent> {
        poll_fn(|cx| self.core.poll_link_event(cx)).await
    }

    /// The next health event (pong with its RTT, missed ping, unhealthy,
    /// recovered, go-away received); `None` once the session has ended and
    /// none are left. See [`HealthEvent`] for when a dead peer is noticed with
    /// the default keepalive; [`status`](ControlCore::status) gives a snapshot
    /// at any time. Cancel-safe: an event is taken only when returned.
    pub async fn next_health_event(&self) -> Option<HealthEvent> {
        poll_fn(|cx| self.core.poll_health_event(cx)).await
    }
}

impl<R> Clone for Control<R> {
    fn clone(&self) -> Self {
        Control {
            core: self.core.clone(),
            runtime: PhantomData,
        }
    }
}

impl<R> std::ops::Deref for Session<R> {
    type Target = Control<R>;

    fn deref(&self) -> &Control<R> {
        &self.control
    }
}

impl<R> std::ops::Deref for Control<R> {
    type Target = ControlCore;

    /// Go-away, close, ping, health and counters are the shared [`ControlCore`]'s.
    fn deref(&self) -> &ControlCore {
        &self.core
    }
}

impl<R> std::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl<R> std::fmt::Debug for Control<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl<R> crate::session_pool::PoolMember for Control<R> {
    fn condition(&self) -> crate::session_pool::Condition {
        self.core.condition()
    }
}

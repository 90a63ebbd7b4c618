//! Resumable sessions over futures-io links: a client that redials after losing
//! its link, and a server acceptor for every accepted link. As with
//! [`Session::new`], the driver future is returned for the caller to spawn on any
//! executor.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use hawser_core::frame::HEADER_LEN;
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal};
use hawser_core::Config;
use hawser_driver::{check_resumable, resumable_client, Dial, Driver, Registry, RetryPolicy, Source};

use crate::session::{AsyncIoTimer, FuturesLink, Session, SessionDriver};

impl Session {
    /// A resumable client session and its driver (spawn it): `connect` dials a
    /// link now, and again whenever the link is lost, under `retry`. `config` (and
    /// the server's) must enable `resumption`.
    ///
    /// The first dial is retried under `retry` too; it fails with the last
    /// dial's error once the policy runs out. Once the driver runs,
    /// [`Control::resumable`](crate::Control::resumable) says when the session can
    /// survive losing its link. A session that cannot be resumed (the server
    /// restarted, or it expired while detached) ends with
    /// `SessionError::ResumeRefused` or `SessionError::Expired`, which
    /// [`Control::closed`](crate::Control::closed) and the last link event
    /// (`LinkEvent::Ended`) report; build a new session for new work.
    pub async fn connect_resumable<F, Fut, T>(
        mut connect: F,
        config: Config,
        retry: RetryPolicy,
    ) -> io::Result<(Session, SessionDriver<T>)>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        check_resumable(&config)?;
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        let link = loop {
            attempt += 1;
            let err = match connect().await {
                Ok(link) => break link,
                Err(err) => err,
            };
            let Some(wait) = retry.retry_after(attempt, started) else {
                return Err(err);
            };
            tracing::debug!(%err, attempt, "first connection failed; retrying");
            async_io::Timer::after(wait).await;
        };
        let dial = move || -> Dial<FuturesLink<T>> {
            let connecting = connect();
            Box::pin(async move { connecting.await.map(FuturesLink) })
        };
        let (shared, driver) = resumable_client::<_, AsyncIoTimer>(config, FuturesLink(link), Box::new(dial), retry)?;
        Ok((Session::from_shared(shared), driver))
    }
}

/// What [`Acceptor::accept`] did with a link.
pub enum Accepted<T> {
    /// A new session, and its driver to spawn.
    New(Session, Box<SessionDriver<T>>),
    /// It resumed a detached session, which carries on over this link.
    Resumed,
    /// It refused a resume request; the link was answered and closed.
    Refused(ResumeRefusal),
}

/// The server side of resumable sessions: give it every accepted link.
pub struct Acceptor<T> {
    config: Config,
    registry: Arc<Registry<FuturesLink<T>>>,
}

impl<T> Clone for Acceptor<T> {
    fn clone(&self) -> Self {
        Acceptor {
            config: self.config.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Acceptor<T> {
    /// An acceptor whose new sessions use `config` (which must enable resumption).
    pub fn new(config: Config) -> io::Result<Self> {
        check_resumable(&config)?;
        let budgets = config.resumption.clone().unwrap_or_default();
        Ok(Acceptor {
            config,
            registry: Arc::new(Registry::new(budgets)),
        })
    }

    /// What the acceptor holds now (sessions, detached ones and the bytes they
    /// hold) and what its budgets have done (sessions ended, attempts refused).
    pub fn stats(&self) -> hawser_driver::AcceptorStats {
        self.registry.stats()
    }

    /// Reads the link's first frame (waiting at most the handshake timeout) and
    /// starts a new session, resumes the detached one it names, or refuses it
    /// (answering and closing the link). Call it on a task of its own for each
    /// link, or let `serve` do so: one client that sends nothing must not hold
    /// up the others.
    ///
    /// Without the peer's address, only the global budgets apply; prefer
    /// [`accept_from`](Acceptor::accept_from).
    pub async fn accept(&self, link: T) -> io::Result<Accepted<T>> {
        self.accept_link(link, None).await
    }

    /// [`accept`](Acceptor::accept) for a link from `peer`, whose address the
    /// per-source budgets of `Resumption` (detached sessions, failed resumes)
    /// count against.
    pub async fn accept_from(&self, link: T, peer: std::net::IpAddr) -> io::Result<Accepted<T>> {
        self.accept_link(link, Some(Source::of(peer))).await
    }

    async fn accept_link(&self, link: T, source: Option<Source>) -> io::Result<Accepted<T>> {
        let limit = self.config.handshake_timeout;
        let accepting = std::pin::pin!(self.accept_now(link, source));
        let mut timer = async_io::Timer::after(limit);
        let mut accepting = accepting;
        poll_fn(|cx| {
            if let std::task::Poll::Ready(result) = accepting.as_mut().poll(cx) {
                return std::task::Poll::Ready(result);
            }
            Pin::new(&mut timer)
                .poll(cx)
                .map(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no opening frame in time")))
        })
        .await
    }

    async fn accept_now(&self, mut link: T, source: Option<Source>) -> io::Result<Accepted<T>> {
        let mut buf = vec![0u8; HEADER_LEN];
        read_exact(&mut link, &mut buf).await?;
        let opening = loop {
            match parse_opening(&buf) {
                Ok(Some(opening)) => break opening,
                Ok(None) => {
                    // A resume request is 52 bytes in all; read no further.
                    let mut more = [0u8; 40];
                    let want = (HEADER_LEN + 40).saturating_sub(buf.len()).clamp(1, more.len());
                    read_exact(&mut link, &mut more[..want]).await?;
                    buf.extend_from_slice(&more[..want]);
                }
                Err(err) => {
                    refuse(&mut link, ResumeRefusal::BadRequest).await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            }
        };
        match opening {
            Opening::Hello => {
                let (shared, slot) = self
                    .registry
                    .start_session(self.config.clone(), Bytes::from(buf), source)?;
                let driver = Driver::new(shared.clone(), FuturesLink(link), AsyncIoTimer::default())
                    .with_link_source(Box::new(slot));
                Ok(Accepted::New(Session::from_shared(shared), Box::new(driver)))
            }
            Opening::Resume { request, consumed } => {
                let rest = Bytes::copy_from_slice(&buf[consumed..]);
                match self.registry.resume(&request, FuturesLink(link), rest, source) {
                    Ok(()) => Ok(Accepted::Resumed),
                    Err((refusal, FuturesLink(mut link))) => {
                        refuse(&mut link, refusal).await;
                        Ok(Accepted::Refused(refusal))
                    }
                }
            }
        }
    }
}

async fn read_exact<T: AsyncRead + Unpin>(link: &mut T, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = poll_fn(|cx| Pin::new(&mut *link).poll_read(cx, &mut buf[filled..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(())
}

async fn refuse<T: AsyncWrite + Unpin>(link: &mut T, refusal: ResumeRefusal) {
    let frame = refusal.frame();
    let mut written = 0;
    while written < frame.len() {
        match poll_fn(|cx| Pin::new(&mut *link).poll_write(cx, &frame[written..])).await {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    let _ = poll_fn(|cx| Pin::new(&mut *link).poll_close(cx)).await;
}

/// How many links `serve` reads the first frame of at once, plus the new
/// sessions it keeps for the application to take; beyond that, connections wait
/// in the listener's backlog.
#[cfg(feature = "async-std")]
const MAX_PENDING: usize = 256 + 64;

#[cfg(feature = "async-std")]
impl Acceptor<async_std::net::TcpStream> {
    /// Accepts every connection of `listener` (setting `TCP_NODELAY`) and hands
    /// each to [`accept`](Acceptor::accept) on a task of its own, bounded by the
    /// handshake timeout; new sessions (their drivers spawned on async-std) come
    /// out of the returned [`Incoming`], resumes and refusals are handled here.
    /// At most 320 links are in hand at once (opening, or waiting to be taken);
    /// beyond that, connections wait in the listener's backlog. Listener errors
    /// are logged and retried after 100 ms. Dropping the `Incoming` stops the
    /// loop; sessions already started go on.
    pub fn serve(&self, listener: async_std::net::TcpListener) -> Incoming {
        let (sessions, rx) = async_std::channel::bounded(64);
        // A token per link in hand: sending blocks once MAX_PENDING are out.
        let (in_hand, done) = async_std::channel::bounded::<()>(MAX_PENDING);
        let acceptor = self.clone();
        let task = async_std::task::spawn(async move {
            loop {
                if in_hand.send(()).await.is_err() {
                    return;
                }
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "accept failed; retrying");
                        let _ = done.try_recv();
                        async_std::task::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if sessions.is_closed() {
                    return;
                }
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
                }
                let acceptor = acceptor.clone();
                let sessions = sessions.clone();
                let done = done.clone();
                async_std::task::spawn(async move {
                    match acceptor.accept_from(tcp, peer.ip()).await {
                        Ok(Accepted::New(session, driver)) => {
                            async_std::task::spawn(*driver);
                            let _ = sessions.send(session).await;
                        }
                        Ok(Accepted::Resumed) => tracing::trace!(%peer, "link resumed a session"),
                        Ok(Accepted::Refused(refusal)) => tracing::trace!(%peer, %refusal, "resume refused"),
                        Err(err) => tracing::trace!(%peer, %err, "link dropped before it opened"),
                    }
                    let _ = done.try_recv();
                });
            }
        });
        Incoming {
            sessions: rx,
            task: Some(task),
        }
    }
}

/// The new sessions of `Acceptor::serve`'s loop.
#[cfg(feature = "async-std")]
pub struct Incoming {
    sessions: async_std::channel::Receiver<Session>,
    task: Option<async_std::task::JoinHandle<()>>,
}

#[cfg(feature = "async-std")]
impl Incoming {
    /// The next new session; `None` once the loop has stopped.
    pub async fn next(&mut self) -> Option<Session> {
        self.sessions.recv().await.ok()
    }
}

#[cfg(feature = "async-std")]
impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Cancelling needs an await; stop the loop from a task of its own.
            async_std::task::spawn(task.cancel());
        }
    }
}

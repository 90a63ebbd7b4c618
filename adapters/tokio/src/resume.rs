//! Resumable sessions: a client that redials after losing its link, and a server
//! acceptor that hands each new link to a new session or to the detached session
//! it resumes.

use std::future::{poll_fn, Future};
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal};
use hawser_core::Config;
use hawser_driver::{check_resumable, resumable_client, Dial, Driver, Registry, RetryPolicy, Source};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::session::{Session, TokioLink, TokioTimer};

impl Session {
    /// A resumable client session (see `hawser_core::resume`): `connect` dials a
    /// link, now and again whenever the link is lost, under `retry`. Streams stay
    /// open while it redials; nothing written is lost or repeated. `config` must
    /// have `resumption` set, and so must the server's.
    ///
    /// The first dial is retried under `retry` too (a server that is not up yet,
    /// a network that is not there yet), and the session is returned only once
    /// it can survive losing its link: the handshake and the ticket exchange are
    /// done, each attempt bounded by `Config::handshake_timeout`. It fails with
    /// the last attempt's error once the policy runs out, or at once on a
    /// handshake or protocol error (retrying would not help).
    ///
    /// A session that cannot be resumed (the server restarted, or the session
    /// expired while detached) ends with `SessionError::ResumeRefused` or
    /// `SessionError::Expired`, which [`Control::closed`](crate::Control::closed) returns and the last
    /// link event, [`LinkEvent::Ended`](crate::LinkEvent::Ended), carries. Its
    /// streams fail; build a new session for new work:
    ///
    /// ```
    /// use hawser_tokio::{session_error, Config, Resumption, RetryPolicy, Session, SessionError};
    ///
    /// async fn stay_connected(addr: std::net::SocketAddr) -> std::io::Result<()> {
    ///     let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    ///     loop {
    ///         let dial = move || tokio::net::TcpStream::connect(addr);
    ///         let session = Session::connect_resumable(dial, config.clone(), RetryPolicy::default()).await?;
    ///         // ... hand session.control() to the application ...
    ///         match session.closed().await {
    ///             Ok(()) => return Ok(()), // an orderly end
    ///             Err(err) => match session_error(&err) {
    ///                 Some(SessionError::Expired | SessionError::ResumeRefused(_)) => continue, // start afresh
    ///                 _ => return Err(err),
    ///             },
    ///         }
    ///     }
    /// }
    /// # let _ = stay_connected;
    /// ```
    pub async fn connect_resumable<F, Fut, T>(connect: F, config: Config, retry: RetryPolicy) -> io::Result<Session>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        check_resumable(&config)?;
        let connect = Arc::new(std::sync::Mutex::new(connect));
        let dial = move || -> Dial<TokioLink<T>> {
            let connecting = (connect.lock().unwrap_or_else(|p| p.into_inner()))();
            Box::pin(async move { connecting.await.map(TokioLink) })
        };
        let dial = Arc::new(std::sync::Mutex::new(dial));
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = Self::try_resumable(&dial, &config, &retry).await;
            let err = match outcome {
                Ok(session) => return Ok(session),
                Err(err) if err.kind() == io::ErrorKind::InvalidData => return Err(err),
                Err(err) => err,
            };
            let Some(wait) = retry.retry_after(attempt, started) else {
                return Err(err);
            };
            tracing::debug!(%err, attempt, "first connection failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: dial, start the session, and wait until it is resumable.
    async fn try_resumable<T>(
        dial: &Arc<std::sync::Mutex<impl FnMut() -> Dial<TokioLink<T>> + Send + 'static>>,
        config: &Config,
        retry: &RetryPolicy,
    ) -> io::Result<Session>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let first = (dial.lock().unwrap_or_else(|p| p.into_inner()))();
        let link = first.await?;
        let redial = dial.clone();
        let redial = move || (redial.lock().unwrap_or_else(|p| p.into_inner()))();
        let (shared, driver) =
            resumable_client::<_, TokioTimer>(config.clone(), link, Box::new(redial), retry.clone())?;
        tokio::spawn(driver);
        let session = Session::from_shared(shared);
        let ready = poll_fn(|cx| session.poll_resumable(cx));
        match tokio::time::timeout(config.handshake_timeout, ready).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(err)) => Err(err),
            Err(_) => {
                session.close(hawser_core::GoAwayCode::NORMAL);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the server did not complete the handshake in time",
                ))
            }
        }
    }
}

/// What [`Acceptor::accept`] did with a link.
#[derive(Debug)]
pub enum Accepted {
    /// It started a new session.
    New(Session),
    /// It resumed a detached session, which carries on over this link.
    Resumed,
    /// It refused a resume request; the link was answered and closed.
    Refused(ResumeRefusal),
}

/// The server side of resumable sessions: it reads each new link's first frame
/// and starts a new session, resumes the detached session the link names, or
/// refuses it.
///
/// [`serve`](Acceptor::serve) runs the whole accept loop for a TCP listener,
/// with every link handled on a task of its own, so that a client that sends
/// nothing or sends garbage delays nobody else:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use hawser_tokio::{Acceptor, Config, Resumption, RetryPolicy, Session};
///
/// let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let mut incoming = Acceptor::<tokio::net::TcpStream>::new(config.clone())?.serve(listener);
/// tokio::spawn(async move {
///     while let Some(session) = incoming.next().await {
///         tokio::spawn(async move {
///             while let Some(stream) = session.accept().await {
///                 // serve the stream
///                 # drop(stream);
///             }
///         });
///     }
/// });
///
/// let client = Session::connect_resumable(move || tokio::net::TcpStream::connect(addr), config, RetryPolicy::default())
///     .await?;
/// let _stream = client.open_stream().await?;
/// # Ok(()) }
/// ```
///
/// To run the loop yourself, call [`accept`](Acceptor::accept) on a task of its
/// own for every link (never inline in the loop: one silent client would hold
/// up every accept, resumes included, for the handshake timeout).
pub struct Acceptor<T> {
    config: Config,
    registry: Arc<Registry<TokioLink<T>>>,
}

impl<T> Clone for Acceptor<T> {
    fn clone(&self) -> Self {
        Acceptor {
            config: self.config.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Acceptor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
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
    /// starts a new session, resumes the detached one it names, or refuses it.
    /// Call it on a task of its own for each link, or let
    /// [`serve`](Acceptor::serve) do so. Without the peer's address, only the
    /// global budgets apply; prefer [`accept_from`](Acceptor::accept_from).
    pub async fn accept(&self, link: T) -> io::Result<Accepted> {
        self.accept_link(link, None).await
    }

    /// [`accept`](Acceptor::accept) for a link from `peer`, whose address the
    /// per-source budgets of `Resumption` (detached sessions, failed resumes)
    /// count against.
    pub async fn accept_from(&self, link: T, peer: std::net::IpAddr) -> io::Result<Accepted> {
        self.accept_link(link, Some(Source::of(peer))).await
    }

    async fn accept_link(&self, mut link: T, source: Option<Source>) -> io::Result<Accepted> {
        let limit = self.config.handshake_timeout;
        let (opening, buf) = match tokio::time::timeout(limit, read_opening(&mut link)).await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no opening frame in time")),
        };
        match opening {
            Opening::Hello => self.start(link, buf, source).map(Accepted::New),
            Opening::Resume { request, consumed } => {
                let rest = Bytes::copy_from_slice(&buf[consumed..]);
                match self.registry.resume(&request, TokioLink(link), rest, source) {
                    Ok(()) => Ok(Accepted::Resumed),
                    Err((refusal, TokioLink(mut link))) => {
                        let _ = link.write_all(&refusal.frame()).await;
                        let _ = link.shutdown().await;
                        Ok(Accepted::Refused(refusal))
                    }
                }
            }
        }
    }

    fn start(&self, link: T, first: Vec<u8>, source: Option<Source>) -> io::Result<Session> {
        let (shared, slot) = self
            .registry
            .start_session(self.config.clone(), Bytes::from(first), source)?;
        let driver =
            Driver::new(shared.clone(), TokioLink(link), TokioTimer::default()).with_link_source(Box::new(slot));
        tokio::spawn(driver);
        Ok(Session::from_shared(shared))
    }
}

/// How many links [`Acceptor::serve`] reads the first frame of at once; further
/// connections wait in the listener's backlog until one of these is done.
const MAX_PENDING_OPENINGS: usize = 256;
/// New sessions [`Acceptor::serve`] keeps for the application to take; when they
/// are not taken, no more links are accepted.
const INCOMING_QUEUE: usize = 64;

impl Acceptor<TcpStream> {
    /// Accepts every connection of `listener` (setting `TCP_NODELAY`) and hands
    /// each to [`accept`](Acceptor::accept) on a task of its own, bounded by the
    /// handshake timeout. New sessions come out of the returned [`Incoming`];
    /// resumes and refusals are handled here. At most 256 links wait for their
    /// first frame at once and at most 64 new sessions wait to be taken; beyond
    /// that, connections wait in the listener's backlog. Listener errors (such
    /// as running out of file descriptors) are logged and retried after 100 ms.
    /// Dropping the `Incoming` stops the loop; sessions already started go on.
    pub fn serve(&self, listener: TcpListener) -> Incoming {
        let (sessions, rx) = mpsc::channel(INCOMING_QUEUE);
        let acceptor = self.clone();
        let task = tokio::spawn(async move {
            let pending = Arc::new(Semaphore::new(MAX_PENDING_OPENINGS + INCOMING_QUEUE));
            loop {
                let Ok(permit) = pending.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "accept failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
                tokio::spawn(async move {
                    match acceptor.accept_from(tcp, peer.ip()).await {
                        Ok(Accepted::New(session)) => {
                            let _ = sessions.send(session).await;
                        }
                        Ok(Accepted::Resumed) => tracing::trace!(%peer, "link resumed a session"),
                        Ok(Accepted::Refused(refusal)) => tracing::trace!(%peer, %refusal, "resume refused"),
                        Err(err) => tracing::trace!(%peer, %err, "link dropped before it opened"),
                    }
                    drop(permit);
                });
            }
        });
        Incoming { sessions: rx, task }
    }
}

/// The new sessions of [`Acceptor::serve`]'s loop.
#[derive(Debug)]
pub struct Incoming {
    sessions: mpsc::Receiver<Session>,
    task: JoinHandle<()>,
}

impl Incoming {
    /// The next new session; `None` once the loop has stopped.
    pub async fn next(&mut self) -> Option<Session> {
        self.sessions.recv().await
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads exactly the first frame's header, and a resume request's payload.
async fn read_opening<T: AsyncRead + AsyncWrite + Unpin>(link: &mut T) -> io::Result<(Opening, Vec<u8>)> {
    let mut buf = vec![0u8; hawser_core::frame::HEADER_LEN];
    link.read_exact(&mut buf).await?;
    loop {
        match parse_opening(&buf) {
            Ok(Some(opening)) => return Ok((opening, buf)),
            Ok(None) => {
                let mut more = [0u8; 64];
                let have = buf.len();
                // A resume request is 52 bytes in all; read no further than that.
                let want = (hawser_core::frame::HEADER_LEN + 40)
                    .saturating_sub(have)
                    .clamp(1, more.len());
                link.read_exact(&mut more[..want]).await?;
                buf.extend_from_slice(&more[..want]);
            }
            Err(err) => {
                let refusal = ResumeRefusal::BadRequest;
                let _ = link.write_all(&refusal.frame()).await;
                let _ = link.shutdown().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        }
    }
}

//! TCP the way a multiplexer wants it, for every runtime with TCP: dial and
//! listen helpers that set `TCP_NODELAY`, and the accept loop of resumable
//! servers.
//!
//! hawser batches frames itself (many frames per vectored write), so Nagle's
//! algorithm only adds latency: with it, a small write that follows another
//! waits for the peer's delayed ACK, up to 40 ms on Linux. Use these helpers,
//! or call [`tune_tcp`](crate::tune_tcp) on a socket you hand to a session
//! yourself (it also bounds the kernel's unsent queue on Linux).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use hawser_core::Config;

use crate::acceptor::{Accepted, Acceptor};
use crate::permits::{Permit, Permits};
use crate::resume::check_config;
use crate::runtime::{sleep, LinkOf, TcpRuntime};
use crate::session::Session;

impl<R> Session<R>
where
    R: TcpRuntime + LinkOf<<R as TcpRuntime>::TcpStream>,
{
    /// Dials `addr` (`host:port`) over TCP with `TCP_NODELAY` set and starts a
    /// client session.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use hawser_tokio::{Config, Listener, Session};
    ///
    /// let listener = Listener::bind("127.0.0.1:0", Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// let client = Session::connect(addr, Config::default()).await?;
    /// let (server, _peer) = listener.accept().await?;
    /// let _stream = client.open_stream().await?;
    /// assert!(server.accept().await.is_some());
    /// # Ok(()) }
    /// ```
    pub fn connect(addr: impl std::fmt::Display, config: Config) -> impl Future<Output = io::Result<Self>> + Send {
        let addr = addr.to_string();
        async move {
            check_config(&config)?;
            let tcp = R::connect_tcp(addr).await?;
            Session::client(tcp, config)
        }
    }
}

/// A TCP listener whose accepted connections become server sessions, with
/// `TCP_NODELAY` set on each.
pub struct Listener<R: TcpRuntime> {
    listener: R::TcpListener,
    config: Config,
}

impl<R> Listener<R>
where
    R: TcpRuntime + LinkOf<<R as TcpRuntime>::TcpStream>,
{
    /// Listens on `addr` (`host:port`); every accepted connection gets a
    /// session with `config` (checked here, so that `accept` never fails on it).
    pub fn bind(addr: impl std::fmt::Display, config: Config) -> impl Future<Output = io::Result<Self>> + Send {
        let addr = addr.to_string();
        async move {
            check_config(&config)?;
            let listener = R::bind_tcp(addr).await?;
            Ok(Listener { listener, config })
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        R::local_addr(&self.listener)
    }

    /// The next connection as a server session, and the peer's address. An
    /// error is the listener's (for example too many open files): log it and
    /// keep accepting.
    pub async fn accept(&self) -> io::Result<(Session<R>, SocketAddr)> {
        let (tcp, peer) = R::accept_tcp(&self.listener).await?;
        Ok((Session::server(tcp, self.config.clone())?, peer))
    }
}

impl<R: TcpRuntime> std::fmt::Debug for Listener<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &R::local_addr(&self.listener).ok())
            .finish_non_exhaustive()
    }
}

/// How many links [`Acceptor::serve`] holds at once: reading their opening
/// frame, or started and waiting for the application to take them. Beyond
/// that, connections wait in the listener's backlog.
const MAX_IN_HAND: usize = 256 + 64;

/// What the accept loop and its [`Incoming`] share.
struct Queue<R> {
    /// New sessions, each holding its place among those in hand.
    sessions: VecDeque<(Session<R>, Permit)>,
    /// The `Incoming` was dropped: the loop stops.
    stopped: bool,
    taker: Option<Waker>,
    accept_loop: Option<Waker>,
}

fn lock<R>(queue: &Mutex<Queue<R>>) -> MutexGuard<'_, Queue<R>> {
    // The queue stays consistent whatever panicked while holding the lock.
    queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<R> Acceptor<R, R::TcpStream>
where
    R: TcpRuntime + LinkOf<<R as TcpRuntime>::TcpStream>,
{
    /// Accepts every connection of `listener` (setting `TCP_NODELAY`) and
    /// hands each to [`accept_from`](Acceptor::accept_from) on a task of its
    /// own, bounded by the handshake timeout. New sessions come out of the
    /// returned [`Incoming`]; resumes and refusals are handled here. At most
    /// 320 links are in hand at once (opening, or started and waiting to be
    /// taken); beyond that, connections wait in the listener's backlog.
    /// Listener errors (such as running out of file descriptors) are logged
    /// and retried after 100 ms. Dropping the `Incoming` stops the loop;
    /// sessions already taken go on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use hawser_tokio::{Acceptor, Config, Resumption, RetryPolicy, Session};
    ///
    /// let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let mut incoming = Acceptor::new(config.clone())?.serve(listener);
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
    /// let client = Session::connect_resumable(addr, config, RetryPolicy::default()).await?;
    /// let _stream = client.open_stream().await?;
    /// # Ok(()) }
    /// ```
    pub fn serve(&self, listener: R::TcpListener) -> Incoming<R> {
        let queue = Arc::new(Mutex::new(Queue {
            sessions: VecDeque::new(),
            stopped: false,
            taker: None,
            accept_loop: None,
        }));
        let acceptor = self.clone();
        let shared = queue.clone();
        R::spawn(async move {
            let in_hand = Permits::new(MAX_IN_HAND);
            loop {
                let Some(permit) = until_stopped(&shared, in_hand.acquire()).await else {
                    return;
                };
                let (tcp, peer) = match until_stopped(&shared, R::accept_tcp(&listener)).await {
                    None => return,
                    Some(Ok(accepted)) => accepted,
                    Some(Err(err)) => {
                        tracing::warn!(%err, "accept failed; retrying");
                        drop(permit);
                        sleep::<R>(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let queue = shared.clone();
                R::spawn(async move {
                    match acceptor.accept_from(tcp, peer.ip()).await {
                        Ok(Accepted::New(session)) => {
                            let mut locked = lock(&queue);
                            if !locked.stopped {
                                locked.sessions.push_back((session, permit));
                                if let Some(taker) = locked.taker.take() {
                                    taker.wake();
                                }
                            }
                        }
                        Ok(Accepted::Resumed) => tracing::trace!(%peer, "link resumed a session"),
                        Ok(Accepted::Refused(refusal)) => tracing::trace!(%peer, %refusal, "resume refused"),
                        Err(err) => tracing::trace!(%peer, %err, "link dropped before it opened"),
                    }
                });
            }
        });
        Incoming { queue }
    }
}

/// `future`'s output, or `None` once the `Incoming` of `queue` is dropped.
async fn until_stopped<R, F: Future>(queue: &Mutex<Queue<R>>, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        {
            let mut locked = lock(queue);
            if locked.stopped {
                return Poll::Ready(None);
            }
            locked.accept_loop = Some(cx.waker().clone());
        }
        future.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The new sessions of [`Acceptor::serve`]'s loop.
pub struct Incoming<R> {
    queue: Arc<Mutex<Queue<R>>>,
}

impl<R> Incoming<R> {
    /// The next new session. Cancel-safe: a session is taken only when
    /// returned.
    pub async fn next(&mut self) -> Option<Session<R>> {
        poll_fn(|cx| {
            let mut locked = lock(&self.queue);
            match locked.sessions.pop_front() {
                Some((session, permit)) => {
                    drop(locked);
                    // Its place among those in hand is free again.
                    drop(permit);
                    Poll::Ready(Some(session))
                }
                None => {
                    locked.taker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl<R> std::fmt::Debug for Incoming<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("waiting", &lock(&self.queue).sessions.len())
            .finish()
    }
}

impl<R> Drop for Incoming<R> {
    fn drop(&mut self) {
        let (waiting, accept_loop) = {
            let mut locked = lock(&self.queue);
            locked.stopped = true;
            (std::mem::take(&mut locked.sessions), locked.accept_loop.take())
        };
        // Sessions nobody took go away; dropped outside the lock, as they
        // take their own.
        drop(waiting);
        if let Some(accept_loop) = accept_loop {
            accept_loop.wake();
        }
    }
}

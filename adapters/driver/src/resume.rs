//! What the adapters share for resumable sessions: the retry policy of a
//! reconnecting client and its redial loop. The server's side is in `registry`;
//! the link events an application watches are in `events`.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::link::{Link, LinkSource, Timer};
use crate::pump::LinkSide;
use crate::runtime::{timeout, LinkOf, Runtime, TcpRuntime};
use crate::session::{spawn_driver, Session};
use crate::shared::{Shared, SharedRef};

/// How a client retries after losing its link: exponential backoff with jitter,
/// bounded by a number of attempts and a total time (the session's own
/// `detached_timeout` bounds it too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the second attempt (the first is immediate).
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Give up after this many attempts since the link was lost.
    pub max_attempts: u32,
    /// Give up after this long since the link was lost.
    pub give_up_after: Duration,
    /// Make-before-break: while the link is suspect (`HealthEvent::Suspect`),
    /// a fresh dial starts this often, before the session lets the link go;
    /// the first that connects takes over, and the session resumes on it. If
    /// the suspect link brings input first, the dials are dropped. `None`
    /// waits for the link to be declared lost (keepalive) instead.
    ///
    /// Default: `Some(1 s)`.
    pub suspect_redial_interval: Option<Duration>,
    /// How long one such early dial may take before it is dropped; at most
    /// three are in flight at once.
    ///
    /// Default: 3 s.
    pub suspect_dial_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_attempts: 30,
            give_up_after: Duration::from_secs(30),
            suspect_redial_interval: Some(Duration::from_secs(1)),
            suspect_dial_timeout: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (1 is the first): 0, then doubling from
    /// `initial_backoff` up to `max_backoff`, each scaled by a random factor in
    /// [0.5, 1.0] (`jitter` is a random value) so that many clients do not retry
    /// in lockstep.
    pub fn backoff(&self, attempt: u32, jitter: u64) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let doublings = (attempt - 2).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let fraction = 0.5 + (jitter % 1000) as f64 / 2000.0;
        base.mul_f64(fraction)
    }

    /// Attempt `attempt` (from 1) of a series begun at `started` has failed: the
    /// wait before the next one, with fresh jitter, or `None` once the policy has
    /// run out of attempts or time.
    pub fn retry_after(&self, attempt: u32, started: Instant) -> Option<Duration> {
        if attempt >= self.max_attempts || started.elapsed() >= self.give_up_after {
            return None;
        }
        Some(self.backoff(attempt + 1, jitter()))
    }
}

/// A random value for [`RetryPolicy::backoff`]; 0 if the system has no entropy.
fn jitter() -> u64 {
    entropy().map_or(0, |bytes| u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])))
}

/// A dial in progress.
pub(crate) type Dial<L> = Pin<Box<dyn Future<Output = io::Result<L>> + Send>>;

/// When a client that lost its link dials again, for every adapter: the
/// first attempt of an episode of losses at once, then with backoff and
/// jitter, until the retry policy runs out. It does no I/O and reads no
/// clock: the caller passes the time and the session's resume count.
pub struct RedialSchedule {
    retry: RetryPolicy,
    attempt: u32,
    since: Instant,
    next_at: Option<Instant>,
    resumes_seen: u64,
}

/// What a [`RedialSchedule`] says to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedialStep {
    /// Dial now; this is attempt `n` (from 1) of the episode.
    Dial(u32),
    /// Nothing until this time.
    WaitUntil(Instant),
    /// The policy has run out: the session gives up.
    GiveUp,
}

impl RedialSchedule {
    /// A schedule under `retry`, from `now`.
    pub fn new(retry: RetryPolicy, now: Instant) -> Self {
        RedialSchedule {
            retry,
            attempt: 0,
            since: now,
            next_at: None,
            resumes_seen: 0,
        }
    }

    /// The step at `now`, for a session that has resumed `resumes` times: a
    /// resume since the last dial began a new episode of losses, whose
    /// attempts and time are counted afresh.
    pub fn next(&mut self, now: Instant, resumes: u64) -> RedialStep {
        if resumes != self.resumes_seen || self.attempt == 0 {
            self.resumes_seen = resumes;
            self.attempt = 0;
            self.since = now;
            self.next_at = None;
        }
        if let Some(at) = self.next_at {
            if now < at {
                return RedialStep::WaitUntil(at);
            }
        }
        if self.attempt >= self.retry.max_attempts
            || now.saturating_duration_since(self.since) >= self.retry.give_up_after
        {
            return RedialStep::GiveUp;
        }
        self.attempt += 1;
        self.next_at = None;
        RedialStep::Dial(self.attempt)
    }

    /// The dial of the last [`RedialStep::Dial`] failed at `now`: the next
    /// waits its backoff, until the time returned.
    pub fn failed(&mut self, now: Instant) -> Instant {
        let at = now + self.retry.backoff(self.attempt + 1, jitter());
        self.next_at = Some(at);
        at
    }
}

/// The first dial of a resumable client, retried under its policy in every
/// adapter: [`failed`](FirstDial::failed) says how long to wait before the
/// next attempt, or gives the error to return.
pub struct FirstDial<'a> {
    retry: &'a RetryPolicy,
    started: Instant,
    attempt: u32,
}

impl<'a> FirstDial<'a> {
    /// The first attempt starts now.
    pub fn new(retry: &'a RetryPolicy) -> Self {
        FirstDial {
            retry,
            started: Instant::now(),
            attempt: 1,
        }
    }

    /// An attempt failed with `err`: the wait before the next, or `err` once
    /// the policy has run out, or at once for a handshake or protocol error
    /// (`InvalidData`), which another attempt would not mend.
    pub fn failed(&mut self, err: io::Error) -> io::Result<Duration> {
        if err.kind() == io::ErrorKind::InvalidData {
            return Err(err);
        }
        let Some(wait) = self.retry.retry_after(self.attempt, self.started) else {
            return Err(err);
        };
        tracing::debug!(%err, attempt = self.attempt, "first connection failed; retrying");
        self.attempt += 1;
        Ok(wait)
    }
}

enum RedialState<L> {
    Idle,
    Waiting(Instant),
    Dialling(Dial<L>),
}

/// How many early dials (see [`RetryPolicy::suspect_redial_interval`]) may
/// be in flight at once.
const EARLY_DIALS: usize = 3;

/// Dials made while the link is only suspect: each started at a time, the
/// next due at another.
struct EarlyDials<L> {
    in_flight: Vec<(Instant, Dial<L>)>,
    next_at: Option<Instant>,
    /// Attempts in this suspect episode.
    attempt: u32,
}

impl<L> Default for EarlyDials<L> {
    fn default() -> Self {
        EarlyDials {
            in_flight: Vec::new(),
            next_at: None,
            attempt: 0,
        }
    }
}

/// A client's link source on an async runtime: dials again on the
/// [`RedialSchedule`] until the policy runs out.
pub(crate) struct Redial<L, T> {
    shared: SharedRef,
    dial: Box<dyn FnMut() -> Dial<L> + Send>,
    schedule: RedialSchedule,
    timer: T,
    state: RedialState<L>,
    early: EarlyDials<L>,
    /// Make-before-break (see [`RetryPolicy::suspect_redial_interval`]).
    early_interval: Option<Duration>,
    early_timeout: Duration,
}

impl<L, T: Timer> Redial<L, T> {
    /// Redials for the session in `shared` with `dial`, waiting on `timer`.
    fn new(shared: SharedRef, dial: Box<dyn FnMut() -> Dial<L> + Send>, retry: RetryPolicy, timer: T) -> Self {
        Redial {
            shared,
            dial,
            early_interval: retry.suspect_redial_interval,
            early_timeout: retry.suspect_dial_timeout,
            schedule: RedialSchedule::new(retry, Instant::now()),
            timer,
            state: RedialState::Idle,
            early: EarlyDials::default(),
        }
    }
}

impl<L, T: Timer> LinkSource<L> for Redial<L, T> {
    fn poll_link(&mut self, cx: &mut Context<'_>) -> Poll<Option<L>> {
        loop {
            match &mut self.state {
                RedialState::Idle => {
                    let resumes = Shared::lock(&self.shared).session_ref().stats().resumes;
                    match self.schedule.next(Instant::now(), resumes) {
                        RedialStep::GiveUp => return Poll::Ready(None),
                        RedialStep::WaitUntil(at) => self.state = RedialState::Waiting(at),
                        RedialStep::Dial(attempt) => {
                            Shared::lock(&self.shared).note_reconnect_attempt(attempt);
                            self.state = RedialState::Dialling((self.dial)());
                        }
                    }
                }
                RedialState::Waiting(at) => {
                    if self.timer.poll_until(cx, *at).is_pending() {
                        return Poll::Pending;
                    }
                    self.state = RedialState::Idle;
                }
                RedialState::Dialling(dial) => match dial.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(link)) => {
                        self.state = RedialState::Idle;
                        return Poll::Ready(Some(link));
                    }
                    Poll::Ready(Err(err)) => {
                        tracing::debug!(%err, "reconnect failed");
                        let at = self.schedule.failed(Instant::now());
                        self.state = RedialState::Waiting(at);
                    }
                },
            }
        }
    }

    fn poll_early_link(&mut self, cx: &mut Context<'_>) -> Poll<Option<L>> {
        let Some(interval) = self.early_interval else {
            return Poll::Pending;
        };
        loop {
            let now = Instant::now();
            let timeout = self.early_timeout;
            self.early.in_flight.retain(|(started, _)| now < *started + timeout);
            if self.early.next_at.map_or(true, |at| now >= at) && self.early.in_flight.len() < EARLY_DIALS {
                self.early.attempt += 1;
                Shared::lock(&self.shared).note_reconnect_attempt(self.early.attempt);
                tracing::debug!(attempt = self.early.attempt, "link suspect: dialling ahead");
                self.early.in_flight.push((now, (self.dial)()));
                self.early.next_at = Some(now + interval);
            }
            let mut index = 0;
            while index < self.early.in_flight.len() {
                match self.early.in_flight[index].1.as_mut().poll(cx) {
                    Poll::Pending => index += 1,
                    Poll::Ready(Ok(link)) => {
                        tracing::debug!(attempt = self.early.attempt, "a fresh link is up: taking it over");
                        self.early = EarlyDials::default();
                        return Poll::Ready(Some(link));
                    }
                    Poll::Ready(Err(err)) => {
                        tracing::debug!(%err, "early dial failed");
                        drop(self.early.in_flight.swap_remove(index));
                    }
                }
            }
            let expiry = self.early.in_flight.iter().map(|(started, _)| *started + timeout).min();
            let wake = [self.early.next_at, expiry].into_iter().flatten().min();
            match wake {
                Some(at) if self.timer.poll_until(cx, at).is_ready() => continue,
                _ => return Poll::Pending,
            }
        }
    }

    fn cancel_early(&mut self) {
        if !self.early.in_flight.is_empty() || self.early.next_at.is_some() {
            tracing::debug!("suspect link responsive again: early dials dropped");
        }
        self.early = EarlyDials::default();
    }
}

/// A resumable client session over `link`, and the driver that redials with
/// `dial` under `retry` whenever the link is lost. Each async adapter supplies its
/// link and timer types; the timer type makes both the driver's and the redial
/// loop's timers.
pub(crate) fn resumable_client<L, T>(
    config: hawser_core::Config,
    link: L,
    dial: Box<dyn FnMut() -> Dial<L> + Send>,
    retry: RetryPolicy,
) -> io::Result<(SharedRef, crate::LinkDriver<L, T>)>
where
    L: Link + Unpin + Send + 'static,
    T: Timer + Unpin + Default + Send + 'static,
{
    check_resumable(&config)?;
    let shared = Shared::new(hawser_core::Role::Client, config)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let source = Redial::new(shared.clone(), dial, retry, T::default());
    let driver = crate::LinkDriver::new(LinkSide::from_shared(shared.clone()), link, T::default())
        .with_link_source(Box::new(source));
    Ok((shared, driver))
}

impl<R: Runtime> Session<R> {
    /// A resumable client session (see `hawser_core::resume`) over TCP to
    /// `addr` (`host:port`; names are resolved again at every dial):
    /// [`connect_resumable_with`](Self::connect_resumable_with) with a dial
    /// that sets `TCP_NODELAY`.
    ///
    /// A session that cannot be resumed (the server restarted, or it expired
    /// while detached) ends with `SessionError::ResumeRefused` or
    /// `SessionError::Expired`; build a new one for new work:
    ///
    /// ```
    /// use hawser_tokio::{session_error, Config, Resumption, RetryPolicy, Session, SessionError};
    ///
    /// async fn stay_connected(addr: std::net::SocketAddr) -> std::io::Result<()> {
    ///     let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    ///     loop {
    ///         let session = Session::connect_resumable(addr, config.clone(), RetryPolicy::default()).await?;
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
    pub fn connect_resumable(
        addr: impl std::fmt::Display,
        config: hawser_core::Config,
        retry: RetryPolicy,
    ) -> impl Future<Output = io::Result<Self>> + Send
    where
        R: TcpRuntime + LinkOf<<R as TcpRuntime>::TcpStream>,
    {
        let addr = addr.to_string();
        Self::connect_resumable_with(move || R::connect_tcp(addr.clone()), config, retry)
    }

    /// A resumable client session (see `hawser_core::resume`): `connect` dials
    /// a link, now and again whenever the link is lost, under `retry`. Streams
    /// stay open while it redials; nothing written is lost or repeated.
    /// `config` must have `resumption` set, and so must the server's. A dial
    /// over TCP should tune its socket with [`tune_tcp`](crate::tune_tcp), as
    /// [`connect_resumable`](Self::connect_resumable) does.
    ///
    /// The first dial is retried under `retry` too (a server that is not up
    /// yet, a network that is not there yet), and the session is returned only
    /// once it can survive losing its link: the handshake and the ticket
    /// exchange are done, each attempt bounded by `Config::handshake_timeout`.
    /// It fails with the last attempt's error once the policy runs out, or at
    /// once on a handshake or protocol error (retrying would not help).
    ///
    /// A session that cannot be resumed (the server restarted, or the session
    /// expired while detached) ends with `SessionError::ResumeRefused` or
    /// `SessionError::Expired`, which [`Control::closed`](crate::Control::closed)
    /// returns and the last link event, [`LinkEvent::Ended`](crate::LinkEvent::Ended),
    /// carries. Its streams fail; build a new session for new work.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use hawser_tokio::{Acceptor, Config, Resumption, RetryPolicy, Session};
    ///
    /// let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let _incoming = Acceptor::new(config.clone())?.serve(listener);
    /// // A dial of your own: here TCP with a keepalive of the kernel's too.
    /// let dial = move || async move {
    ///     let tcp = tokio::net::TcpStream::connect(addr).await?;
    ///     tcp.set_nodelay(true)?;
    ///     Ok::<_, std::io::Error>(tcp)
    /// };
    /// let session = Session::connect_resumable_with(dial, config, RetryPolicy::default()).await?;
    /// assert!(session.is_resumable());
    /// # Ok(()) }
    /// ```
    // Not an `async fn`: its future is declared `Send`, so that a caller that
    // spawns it need not prove it through the generic closure types (rustc
    // fails that proof with a "higher-ranked lifetime error" otherwise).
    #[allow(clippy::manual_async_fn)]
    pub fn connect_resumable_with<F, Fut, T>(
        connect: F,
        config: hawser_core::Config,
        retry: RetryPolicy,
    ) -> impl Future<Output = io::Result<Self>> + Send
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
        R: LinkOf<T>,
    {
        async move {
            check_resumable(&config)?;
            let connect = Arc::new(Mutex::new(connect));
            let dial = move || -> Dial<R::Link> {
                let connecting = (connect.lock().unwrap_or_else(|p| p.into_inner()))();
                Box::pin(async move { connecting.await.map(R::link) })
            };
            let dial = Arc::new(Mutex::new(dial));
            let mut first = FirstDial::new(&retry);
            loop {
                match Self::try_resumable(&dial, &config, &retry).await {
                    Ok(session) => return Ok(session),
                    Err(err) => crate::runtime::sleep::<R>(first.failed(err)?).await,
                }
            }
        }
    }

    /// One attempt: dial, start the session, and wait until it is resumable.
    async fn try_resumable<L, D>(
        dial: &Arc<Mutex<D>>,
        config: &hawser_core::Config,
        retry: &RetryPolicy,
    ) -> io::Result<Self>
    where
        L: Link + Unpin + Send + 'static,
        D: FnMut() -> Dial<L> + Send + 'static,
    {
        let first = (dial.lock().unwrap_or_else(|p| p.into_inner()))();
        let link = first.await?;
        let redial = dial.clone();
        let redial = move || (redial.lock().unwrap_or_else(|p| p.into_inner()))();
        let (shared, driver) = resumable_client::<_, R::Timer>(config.clone(), link, Box::new(redial), retry.clone())?;
        spawn_driver::<R, _>(driver);
        let session = Session::from_shared(shared);
        let ready = poll_fn(|cx| session.poll_resumable(cx));
        match timeout::<R, _>(config.handshake_timeout, ready).await {
            Some(Ok(())) => Ok(session),
            Some(Err(err)) => Err(err),
            None => {
                session.close(hawser_core::GoAwayCode::NORMAL);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the server did not complete the handshake in time",
                ))
            }
        }
    }
}

/// Checks that `config` can make resumable sessions.
pub fn check_resumable(config: &hawser_core::Config) -> io::Result<()> {
    if config.resumption.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a resumable session needs Config::resumption",
        ));
    }
    check_config(config)
}

/// Checks `config` up front, as an `io::Error` (`InvalidInput`) naming the field:
/// for helpers that must not fail on it later, once a connection is in hand.
pub fn check_config(config: &hawser_core::Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))
}

/// Fresh entropy for a resume token or a jitter value.
pub fn entropy() -> io::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| io::Error::other(err.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_start_at_once_back_off_and_start_afresh_after_a_resume() {
        let retry = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let start = Instant::now();
        let mut schedule = RedialSchedule::new(retry, start);
        assert_eq!(
            schedule.next(start, 0),
            RedialStep::Dial(1),
            "the first attempt is at once"
        );
        let at = schedule.failed(start);
        assert!((start + Duration::from_millis(50)..=start + Duration::from_millis(100)).contains(&at));
        assert_eq!(schedule.next(start, 0), RedialStep::WaitUntil(at));
        assert_eq!(schedule.next(at, 0), RedialStep::Dial(2));
        let at = schedule.failed(at);
        assert_eq!(schedule.next(at, 0), RedialStep::Dial(3));
        let at = schedule.failed(at);
        assert_eq!(schedule.next(at, 0), RedialStep::GiveUp, "three attempts in all");
        // A resume since: the next loss is a new episode, with attempts anew.
        assert_eq!(schedule.next(at, 1), RedialStep::Dial(1));
        // And time counts too.
        let later = at + RetryPolicy::default().give_up_after;
        schedule.failed(at);
        assert_eq!(schedule.next(later, 1), RedialStep::GiveUp);
    }

    #[test]
    fn the_first_dial_stops_at_once_on_a_protocol_error() {
        let retry = RetryPolicy::default();
        let mut first = FirstDial::new(&retry);
        assert!(first.failed(io::ErrorKind::ConnectionRefused.into()).is_ok());
        let err = first
            .failed(io::Error::new(io::ErrorKind::InvalidData, "bad hello"))
            .expect_err("not retried");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn retry_after_backs_off_then_runs_out() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let started = Instant::now();
        let first = policy.retry_after(1, started).expect("attempts left");
        assert!(
            (Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first),
            "{first:?}"
        );
        let second = policy.retry_after(2, started).expect("attempts left");
        assert!(
            (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&second),
            "{second:?}"
        );
        assert_eq!(policy.retry_after(3, started), None, "three attempts in all");
        let expired = RetryPolicy {
            give_up_after: Duration::ZERO,
            ..policy
        };
        assert_eq!(expired.retry_after(1, started), None, "out of time");
    }
}

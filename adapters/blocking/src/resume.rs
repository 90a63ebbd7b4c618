//! Resumable sessions for synchronous programs: a client that redials after
//! losing its link, and a server acceptor for every accepted link.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hawser_core::resume::{Opening, ResumeRefusal};
use hawser_core::{Config, Role};
use hawser_driver::{
    check_resumable, FirstDial, LinkSide, OpeningReader, OpeningStep, RedialSchedule, Registry, RetryPolicy, SourceAddr,
};

use crate::early::{EarlyDials, SharedDial};
use crate::link::BlockingLink;
use crate::park::ParkingLot;
use crate::session::{Redial, Session, Supply, Writer};

impl Session {
    /// A resumable client session over TCP to `addr` (names are resolved again
    /// at every dial): [`connect_resumable_with`](Session::connect_resumable_with)
    /// with a dial that sets `TCP_NODELAY`.
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use hawser_blocking::{Acceptor, Config, Resumption, RetryPolicy, Session};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # let incoming = Acceptor::<TcpStream>::new(config.clone())?.serve(listener);
    /// let session = Session::connect_resumable(addr, config, RetryPolicy::default())?;
    /// assert!(session.is_resumable());
    /// # drop(incoming);
    /// # Ok(()) }
    /// ```
    ///
    pub fn connect_resumable<A>(addr: A, config: Config, retry: RetryPolicy) -> io::Result<Session>
    where
        A: std::net::ToSocketAddrs + Send + 'static,
    {
        Self::connect_resumable_with(move || crate::net::dial(&addr), config, retry)
    }

    /// A resumable client session: `connect` dials a link now, and again whenever
    /// the link is lost, under `retry`; streams stay open meanwhile and nothing
    /// written is lost or repeated. `config` (and the server's) must enable
    /// `resumption`. A dial over TCP should tune its socket with
    /// [`tune_tcp`](crate::tune_tcp), as [`connect_resumable`](Session::connect_resumable) does.
    ///
    /// The first dial is retried under `retry` too, and the session is returned
    /// only once it can survive losing its link (the handshake and the ticket
    /// exchange are done), each attempt bounded by `Config::handshake_timeout`.
    /// It fails with the last attempt's error once the policy runs out, or at
    /// once on a handshake or protocol error. A session that cannot be resumed
    /// (the server restarted, or it expired while detached) ends with
    /// `SessionError::ResumeRefused` or `SessionError::Expired`, which
    /// [`closed`](Session::closed) and the last link event (`LinkEvent::Ended`)
    /// report; build a new session for new work.
    pub fn connect_resumable_with<L, F>(connect: F, config: Config, retry: RetryPolicy) -> io::Result<Session>
    where
        L: BlockingLink,
        F: FnMut() -> io::Result<L> + Send + 'static,
    {
        check_resumable(&config)?;
        let connect = Arc::new(std::sync::Mutex::new(connect));
        let mut first = FirstDial::new(&retry);
        loop {
            match Self::try_resumable(&connect, &config, &retry) {
                Ok(session) => return Ok(session),
                Err(err) => std::thread::sleep(first.failed(err)?),
            }
        }
    }

    /// One attempt: dial, start the session, and wait until it is resumable.
    fn try_resumable<L, F>(
        connect: &Arc<std::sync::Mutex<F>>,
        config: &Config,
        retry: &RetryPolicy,
    ) -> io::Result<Session>
    where
        L: BlockingLink,
        F: FnMut() -> io::Result<L> + Send + 'static,
    {
        let link = (connect.lock().unwrap_or_else(|p| p.into_inner()))()?;
        let side = LinkSide::new(Role::Client, config.clone())
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let redial = connect.clone();
        let dial: SharedDial<L> = Arc::new(move || (redial.lock().unwrap_or_else(|p| p.into_inner()))());
        let supply = Supply::Dial(Redial {
            early: retry
                .suspect_redial_interval
                .map(|interval| EarlyDials::new(dial.clone(), interval)),
            dial,
            schedule: RedialSchedule::new(retry.clone(), Instant::now()),
        });
        let session = Session::start(side, link, supply)?;
        match session.resumable(Some(config.handshake_timeout)) {
            Ok(()) => Ok(session),
            Err(err) => {
                session.close(hawser_core::GoAwayCode::NORMAL);
                Err(err)
            }
        }
    }
}

/// What [`Acceptor::accept`] did with a link.
pub enum Accepted {
    /// It started a new session.
    New(Session),
    /// It resumed a detached session, which carries on over this link.
    Resumed,
    /// It refused a resume request; the link was answered and closed.
    Refused(ResumeRefusal),
}

/// The server side of resumable sessions: it reads each new link's first frame
/// (within the handshake timeout) and starts a new session, resumes the detached
/// session the link names, or refuses it. `serve` runs the whole accept loop for
/// a TCP listener, a thread per link being opened.
pub struct Acceptor<L> {
    config: Config,
    registry: Arc<Registry<L>>,
    /// Where its detached sessions wait, without a thread each.
    lot: Arc<ParkingLot<Writer<L>>>,
}

impl<L> Clone for Acceptor<L> {
    fn clone(&self) -> Self {
        Acceptor {
            config: self.config.clone(),
            registry: self.registry.clone(),
            lot: self.lot.clone(),
        }
    }
}

impl<L: BlockingLink> Acceptor<L> {
    /// An acceptor whose new sessions use `config` (which must enable resumption).
    pub fn new(config: Config) -> io::Result<Self> {
        Ok(Acceptor {
            registry: Arc::new(Registry::for_config(&config)?),
            config,
            lot: ParkingLot::new(),
        })
    }

    /// What the acceptor holds now (sessions, detached ones and the bytes they
    /// hold) and what its budgets have done (sessions ended, attempts refused).
    pub fn stats(&self) -> hawser_driver::AcceptorStats {
        self.registry.stats()
    }

    /// Reads the link's first frame (waiting at most the handshake timeout) and
    /// starts a new session, resumes the detached one the link's resume request
    /// names, or refuses it (answering and closing the link). Call it on a thread
    /// of its own for each link, or let `serve` do so: one client that sends
    /// nothing must not hold up the others.
    ///
    /// Without the peer's address, only the global budgets apply; prefer
    /// [`accept_from`](Acceptor::accept_from).
    pub fn accept(&self, link: L) -> io::Result<Accepted> {
        self.accept_link(link, None)
    }

    /// [`accept`](Acceptor::accept) for a link from `peer`, whose address the
    /// per-source budgets of `Resumption` (detached sessions, failed resumes)
    /// count against.
    pub fn accept_from(&self, link: L, peer: std::net::IpAddr) -> io::Result<Accepted> {
        self.accept_link(link, Some(SourceAddr::of(peer)))
    }

    fn accept_link(&self, link: L, source: Option<SourceAddr>) -> io::Result<Accepted> {
        link.set_read_timeout(Some(self.config.handshake_timeout))?;
        let opened = self.read_opening(link);
        if let Ok((link, _, _)) = &opened {
            // The session's reader blocks for as long as the link is quiet.
            link.set_read_timeout(None)?;
        }
        let (link, opening, buf) = opened?;
        self.open(link, opening, buf, source)
    }

    fn read_opening(&self, mut link: L) -> io::Result<(L, Opening, Vec<u8>)> {
        let timed_out = |err: io::Error| match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                io::Error::new(io::ErrorKind::TimedOut, "no opening frame in time")
            }
            _ => err,
        };
        let mut reader = OpeningReader::default();
        let mut chunk = [0u8; 64];
        let opening = loop {
            match reader.step() {
                OpeningStep::Read(want) => {
                    link.read_exact(&mut chunk[..want]).map_err(timed_out)?;
                    reader.push(&chunk[..want]);
                }
                OpeningStep::Opened(opening) => break opening,
                OpeningStep::Bad(err) => {
                    let _ = link.write_all(&ResumeRefusal::BadRequest.frame());
                    let _ = link.shutdown();
                    return Err(err);
                }
            }
        };
        let buf = reader.into_bytes();
        Ok((link, opening, buf))
    }

    fn open(&self, link: L, opening: Opening, buf: Vec<u8>, source: Option<SourceAddr>) -> io::Result<Accepted> {
        match opening {
            Opening::Hello => {
                let (side, slot) = self
                    .registry
                    .start_session(self.config.clone(), Bytes::from(buf), source)?;
                Session::start(side, link, Supply::Slot(slot, self.lot.clone())).map(Accepted::New)
            }
            Opening::Resume { request, consumed } => {
                let rest = Bytes::copy_from_slice(&buf[consumed..]);
                match self.registry.resume(&request, link, rest, source) {
                    Ok(()) => Ok(Accepted::Resumed),
                    Err((refusal, mut link)) => {
                        let _ = link.write_all(&refusal.frame());
                        let _ = link.shutdown();
                        Ok(Accepted::Refused(refusal))
                    }
                }
            }
        }
    }
}

/// How many links `serve` reads the first frame of at once, plus the new
/// sessions it keeps for the application to take; beyond that, connections wait
/// in the listener's backlog.
const MAX_PENDING: usize = 256 + 64;

impl Acceptor<std::net::TcpStream> {
    /// Accepts every connection of `listener` (setting `TCP_NODELAY`) and hands
    /// each to [`accept`](Acceptor::accept) on a thread of its own, bounded by
    /// the handshake timeout; new sessions come out of the returned [`Incoming`],
    /// resumes and refusals are handled here. At most 320 links are in hand at
    /// once (opening, or waiting to be taken); beyond that, connections wait in
    /// the listener's backlog. Listener errors are logged and retried after
    /// 100 ms. Once the `Incoming` is dropped, the loop stops at the next
    /// connection; sessions already started go on.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::net::{TcpListener, TcpStream};
    /// use hawser_blocking::{Acceptor, Config, Resumption, RetryPolicy, Session};
    ///
    /// let config = Config { resumption: Some(Resumption::default()), ..Config::default() };
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let incoming = Acceptor::<TcpStream>::new(config.clone())?.serve(listener);
    /// std::thread::spawn(move || {
    ///     for session in incoming {
    ///         std::thread::spawn(move || while let Some(_stream) = session.accept() {});
    ///     }
    /// });
    /// let client = Session::connect_resumable(addr, config, RetryPolicy::default())?;
    /// let _stream = client.open_stream()?;
    /// # Ok(()) }
    /// ```
    pub fn serve(&self, listener: std::net::TcpListener) -> Incoming {
        let (sessions, rx) = std::sync::mpsc::sync_channel(64);
        let in_hand = Arc::new(InHand::default());
        let acceptor = self.clone();
        let spawn_loop = std::thread::Builder::new()
            .name("hawser-acceptor".into())
            .spawn(move || loop {
                in_hand.take();
                let (tcp, peer) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "accept failed; retrying");
                        in_hand.give_back();
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        continue;
                    }
                };
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(%peer, %err, "cannot set TCP_NODELAY");
                }
                let acceptor = acceptor.clone();
                let sessions: std::sync::mpsc::SyncSender<Session> = sessions.clone();
                let this_link = in_hand.clone();
                let spawned = std::thread::Builder::new()
                    .name("hawser-opening".into())
                    .spawn(move || {
                        let stop = match acceptor.accept_from(tcp, peer.ip()) {
                            Ok(Accepted::New(session)) => sessions.send(session).is_err(),
                            Ok(Accepted::Resumed) => {
                                tracing::trace!(%peer, "link resumed a session");
                                false
                            }
                            Ok(Accepted::Refused(refusal)) => {
                                tracing::trace!(%peer, %refusal, "resume refused");
                                false
                            }
                            Err(err) => {
                                tracing::trace!(%peer, %err, "link dropped before it opened");
                                false
                            }
                        };
                        this_link.give_back();
                        if stop {
                            this_link.stop();
                        }
                    });
                if let Err(err) = spawned {
                    tracing::warn!(%peer, %err, "cannot start a thread for the link");
                    in_hand.give_back();
                }
                if in_hand.stopped() {
                    return;
                }
            });
        if let Err(err) = spawn_loop {
            tracing::warn!(%err, "cannot start the accept loop");
        }
        Incoming { sessions: rx }
    }
}

/// Links `serve` has in hand, bounded by `MAX_PENDING`.
#[derive(Default)]
struct InHand {
    count: std::sync::Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
}

impl InHand {
    /// Waits for room for one more link, and takes it.
    fn take(&self) {
        let mut state = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while state.0 >= MAX_PENDING {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.0 += 1;
    }

    fn give_back(&self) {
        let mut state = self.count.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = state.0.saturating_sub(1);
        self.changed.notify_one();
    }

    /// The application dropped the `Incoming`.
    fn stop(&self) {
        self.count.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
    }

    fn stopped(&self) -> bool {
        self.count.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

/// The new sessions of `Acceptor::serve`'s loop; an iterator that blocks for
/// the next one.
pub struct Incoming {
    sessions: std::sync::mpsc::Receiver<Session>,
}

impl Incoming {
    /// Waits at most `timeout` for the next new session; `Ok(None)` once the loop
    /// has stopped, `TimedOut` if none came in time.
    pub fn next_timeout(&self, timeout: std::time::Duration) -> io::Result<Option<Session>> {
        match self.sessions.recv_timeout(timeout) {
            Ok(session) => Ok(Some(session)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "no new session in time"))
            }
        }
    }
}

impl Iterator for Incoming {
    type Item = Session;

    /// Blocks until the next new session; `None` once the loop has stopped.
    fn next(&mut self) -> Option<Session> {
        self.sessions.recv().ok()
    }
}

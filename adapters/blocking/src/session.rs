//! The blocking session: two threads per link, and blocking operations.

use std::io::{self, Write};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hawser_core::{Config, Role};
use hawser_driver::{
    ControlCore, FrameQueue, Input, LinkGeneration, LinkSide, LinkSource, ReadPump, RedialSchedule, RedialStep,
    SessionSlot, StreamCore, LINGER,
};

use crate::direct::{Direct, Outbox, Readers, WriterWake};
use crate::early::{EarlyDials, SharedDial};
use crate::link::BlockingLink;
use crate::park::{Parkable, Parked, ParkingLot};
use crate::stream::Stream;
use crate::wait::{block_on_poll, Signal};

/// How long one link write may block before the writer thread runs the
/// session's timers and tries again: a peer that stops reading must not stop
/// keepalive from noticing it.
const WRITE_STALL: Duration = Duration::from_millis(200);

/// A multiplexed session over one blocking link. It derefs to [`ControlCore`] for
/// go-away, close, ping, health and counters.
pub struct Session {
    control: ControlCore,
    threads: Vec<JoinHandle<()>>,
    /// How the session's streams wake its writer (see `direct`).
    writer_wake: WriterWake,
}

impl Session {
    /// A session as the dialling side (odd stream ids).
    pub fn client<L: BlockingLink>(link: L, config: Config) -> io::Result<Session> {
        Self::new(link, config, Role::Client)
    }

    /// A session as the accepting side (even stream ids).
    pub fn server<L: BlockingLink>(link: L, config: Config) -> io::Result<Session> {
        Self::new(link, config, Role::Server)
    }

    /// A session for `role` over `link`; starts its reader and writer threads.
    pub fn new<L: BlockingLink>(link: L, config: Config, role: Role) -> io::Result<Session> {
        let side = LinkSide::new(role, config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        Self::start(side, link, Supply::None)
    }

    pub(crate) fn start<L: BlockingLink>(side: LinkSide, link: L, supply: Supply<L>) -> io::Result<Session> {
        link.set_write_timeout(Some(WRITE_STALL))?;
        let readers = Arc::new(Readers::default());
        let signal = Arc::new(Signal::default());
        let (reader_thread, current) = spawn_reader(&side, &link, &readers, &signal)?;
        let direct = Direct::new(side.clone(), Some(link), &signal, readers);
        let writer_wake = direct.writer_wake(&signal);
        let control = side.control();
        let writer = Writer {
            direct,
            side,
            supply,
            current,
            signal,
        };
        let writer_thread = thread::Builder::new()
            .name("hawser-writer".into())
            .spawn(move || writer.run())?;
        Ok(Session {
            control,
            threads: vec![reader_thread, writer_thread],
            writer_wake,
        })
    }

    /// A stream handle of this session.
    pub(crate) fn stream(&self, core: StreamCore) -> Stream {
        Stream::new(core, self.writer_wake.clone())
    }

    /// Opens a stream, blocking while a limit is reached (max streams, opens the
    /// peer has not acknowledged).
    pub fn open_stream(&self) -> io::Result<Stream> {
        self.open_stream_timeout(None)
    }

    /// Like [`open_stream`](Self::open_stream), giving up with `TimedOut` after
    /// `timeout`. A stream is opened only when it returns `Ok`.
    pub fn open_stream_timeout(&self, timeout: Option<Duration>) -> io::Result<Stream> {
        let mut wait = self.control.open_wait();
        block_on_poll(timeout, |cx| wait.poll(cx)).map(|core| self.stream(core))
    }

    /// The next inbound stream, blocking until one arrives; `None` once the session
    /// is closed or draining and no more will come.
    pub fn accept(&self) -> Option<Stream> {
        self.accept_timeout(None).ok().flatten()
    }

    /// Like [`accept`](Self::accept), giving up with `TimedOut` after `timeout`.
    pub fn accept_timeout(&self, timeout: Option<Duration>) -> io::Result<Option<Stream>> {
        let core = block_on_poll(timeout, |cx| self.control.poll_accept(cx).map(Ok))?;
        Ok(core.map(|core| self.stream(core)))
    }

    /// Waits at most `timeout` (`None`: forever) for the next health event (pong
    /// with its RTT, missed ping, unhealthy, recovered, go-away received);
    /// `Ok(None)` once the session has ended and none are left, `TimedOut` if
    /// none came in time. See [`HealthEvent`](crate::HealthEvent) for when a
    /// dead peer is noticed with the default keepalive; `status()` gives a
    /// snapshot at any time.
    pub fn next_health_event(&self, timeout: Option<Duration>) -> io::Result<Option<hawser_driver::HealthEvent>> {
        block_on_poll(timeout, |cx| self.control.poll_health_event(cx).map(Ok))
    }

    /// Waits at most `timeout` (`None`: forever) until the session has ended and
    /// its writer has shut the link; returns why it ended (`Ok` for an orderly
    /// end; otherwise an error that [`session_error`](crate::session_error)
    /// reads), or `TimedOut`.
    pub fn closed(&self, timeout: Option<Duration>) -> io::Result<()> {
        match block_on_poll(timeout, |cx| self.control.poll_closed(cx).map(Ok))? {
            None => Ok(()),
            Some(err) => Err(err.into()),
        }
    }

    /// Waits at most `timeout` (`None`: forever) until the session has ended
    /// and its link is let go of: after [`closed`](Self::closed), until the
    /// peer has closed its side too (so it has read everything this side
    /// sent), or [`LINGER`](hawser_driver::LINGER) has passed. A process about
    /// to exit waits for this rather than `closed`: the kernel resets a
    /// socket closed with unread data, and the reset throws away the last
    /// frames the peer has not read yet. Returns as `closed` does.
    pub fn released(&self, timeout: Option<Duration>) -> io::Result<()> {
        match block_on_poll(timeout, |cx| self.control.poll_released(cx).map(Ok))? {
            None => Ok(()),
            Some(err) => Err(err.into()),
        }
    }

    /// Resumable sessions: waits at most `timeout` (`None`: forever) until the
    /// session would survive losing its link (the handshake and the ticket
    /// exchange are done); fails with what ended it first, or `TimedOut`.
    pub fn resumable(&self, timeout: Option<Duration>) -> io::Result<()> {
        block_on_poll(timeout, |cx| self.control.poll_resumable(cx))
    }

    /// Resumable sessions: waits at most `timeout` (`None`: forever) for the next
    /// link event (lost, reconnecting, resumed, gave up, ended); `Ok(None)` once
    /// the session has ended and none are left, `TimedOut` if none came in time.
    pub fn next_link_event(&self, timeout: Option<Duration>) -> io::Result<Option<hawser_driver::LinkEvent>> {
        block_on_poll(timeout, |cx| self.control.poll_link_event(cx).map(Ok))
    }

    /// Waits until the session has ended and its threads have stopped.
    pub fn join(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // A detached server session's writer ends while it waits for a link,
        // and another takes over when one comes: wait for the end itself.
        let _ = self.closed(None);
    }
}

impl std::ops::Deref for Session {
    type Target = ControlCore;

    fn deref(&self) -> &ControlCore {
        &self.control
    }
}

/// Starts the reader thread of `link`, the session's current link; returns
/// it and which link it is.
fn spawn_reader<L: BlockingLink>(
    side: &LinkSide,
    link: &L,
    readers: &Arc<Readers>,
    signal: &Arc<Signal>,
) -> io::Result<(JoinHandle<()>, LinkGeneration)> {
    let reader = link.try_clone()?;
    let side = side.clone();
    let current = side.link_generation();
    // Counted before the thread starts, so that a writer that has just ended
    // the session waits for it.
    let running = ReaderRunning::new(readers.clone(), signal.clone());
    let thread = thread::Builder::new()
        .name("hawser-reader".into())
        .spawn(move || read_loop(side, reader, current, running))?;
    Ok((thread, current))
}

/// A reader thread, counted while it runs; its end wakes the writer, which
/// may be waiting for it to finish lingering.
struct ReaderRunning {
    readers: Arc<Readers>,
    signal: Arc<Signal>,
}

impl ReaderRunning {
    fn new(readers: Arc<Readers>, signal: Arc<Signal>) -> Self {
        readers.started();
        ReaderRunning { readers, signal }
    }
}

impl Drop for ReaderRunning {
    fn drop(&mut self) {
        self.readers.ended();
        self.signal.raise();
    }
}

/// After the session has ended: reads and drops what the peer still sends
/// until it closes its side, or until the writer, done lingering (see
/// [`LINGER`]), shuts the link.
fn drain_until_closed<L: BlockingLink>(link: &mut L) {
    let mut scratch = [0u8; 4096];
    loop {
        match link.read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reads one link (`mine`) into the session until the link ends or the
/// session has left it.
fn read_loop<L: BlockingLink>(side: LinkSide, mut link: L, mine: LinkGeneration, _running: ReaderRunning) {
    let mut reads = ReadPump::default();
    loop {
        let result = reads.read_from(&mut link);
        let input = match result {
            Ok(Some(input)) => input,
            Ok(None) | Err(_) => {
                if let Err(err) = result {
                    tracing::debug!(%err, "link read failed");
                }
                side.lost(mine, side.now());
                return;
            }
        };
        match side.input(mine, side.now(), input) {
            // Most inputs (data for a reader, a window update) leave nothing
            // to send: waking the writer for them would only cost a thread switch.
            Input::Taken { wake_writer } => {
                if wake_writer {
                    side.wake_driver();
                }
            }
            Input::Stale => return,
            Input::Ended => {
                drain_until_closed(&mut link);
                return;
            }
        }
    }
}

/// Shuts the current link (its reader thread then ends) and retires it, with
/// what was waiting to be written to it.
fn retire<L: BlockingLink>(outbox: &mut Outbox<L>) {
    outbox.out.clear();
    if let Some(link) = outbox.link.take() {
        let _ = link.shutdown();
    }
}

/// Where a resumable session's next link comes from.
pub(crate) enum Supply<L> {
    /// Not resumable: the session ends with its link.
    None,
    /// Client: dial again under a retry policy.
    Dial(Redial<L>),
    /// Server: the acceptor puts the link here; while detached, the session
    /// waits in the acceptor's parking lot instead of on a thread of its own.
    Slot(SessionSlot<L>, Arc<ParkingLot<Writer<L>>>),
}

pub(crate) struct Redial<L> {
    pub(crate) dial: SharedDial<L>,
    pub(crate) schedule: RedialSchedule,
    /// Make-before-break while the link is suspect (`None`: off).
    pub(crate) early: Option<EarlyDials<L>>,
}

/// What dialling ahead of a suspect link did.
enum Ahead {
    /// Nothing: the link is not suspect, or the session does not redial.
    Idle,
    /// Dials are under way; look again at this time (or when one connects).
    LookAgain(Instant),
    /// A fresh link took over.
    TookOver,
}

enum Acquire<L> {
    Link(L),
    /// Nothing yet: wait for a wake-up or until this time.
    Wait(Option<Instant>),
    GaveUp,
}

/// The writer thread: sends the session's frames, keeps its timers, and for a
/// resumable session replaces a lost link.
pub(crate) struct Writer<L> {
    side: LinkSide,
    /// The link and the frames waiting for it, shared with callers that
    /// write directly.
    direct: Arc<Direct<L>>,
    supply: Supply<L>,
    /// Which of the session's links the outbox holds.
    current: LinkGeneration,
    signal: Arc<Signal>,
}

impl<L: BlockingLink> Writer<L> {
    pub(crate) fn run(mut self) {
        let waker = self.direct.waker().clone();
        let mut suspect = false;
        loop {
            // A fresh link dialled ahead of a suspect one takes over first.
            let early_wake = match self.dial_ahead(suspect) {
                Ahead::LookAgain(at) => Some(at),
                Ahead::Idle | Ahead::TookOver => None,
            };
            let direct = self.direct.clone();
            let mut outbox = direct.lock();
            let now = self.side.now();
            let plan = self.side.plan(now, &waker);
            suspect = plan.suspect && outbox.link.is_some();
            // Retire a dead link before taking anything to send: once the
            // session is resumed, its output belongs to the new link.
            if plan.drop_link {
                retire(&mut outbox);
            }
            if outbox.link.is_some() {
                self.side.take_transmits(&mut outbox.out, now);
            }
            let (deadline, closed) = (plan.next_timer, plan.closed);
            if closed && (outbox.out.is_empty() || outbox.link.is_none()) {
                let mut link = outbox.link.take();
                drop(outbox);
                if let Some(link) = link.as_mut() {
                    let _ = link.flush();
                    // The reader goes on reading until the peer closes too
                    // (see `drain_until_closed`).
                    let _ = link.shutdown_write();
                }
                self.side.finished();
                if let Some(link) = link {
                    self.linger();
                    // Unblocks a reader still waiting on a peer that never closed.
                    let _ = link.shutdown();
                }
                // Dropping the writer tells those waiting that the link is let go of.
                return;
            }
            if outbox.link.is_none() {
                drop(outbox);
                match self.acquire(&waker) {
                    Acquire::Link(link) => self.attach(link),
                    Acquire::Wait(_) if matches!(self.supply, Supply::Slot(..)) => {
                        // A detached server session: it waits in the lot, and
                        // this thread ends.
                        if let Supply::Slot(_, lot) = &self.supply {
                            let lot = lot.clone();
                            lot.park(self);
                        }
                        return;
                    }
                    Acquire::Wait(until) => {
                        let wake_at = [until, deadline].into_iter().flatten().min();
                        self.signal.wait_until(wake_at);
                    }
                    Acquire::GaveUp => self.side.give_up(),
                }
                continue;
            }
            if !outbox.out.is_empty() {
                let Outbox { link, out, .. } = &mut *outbox;
                let Some(link) = link.as_mut() else {
                    continue;
                };
                if let Err(err) = write_all_vectored(link, out) {
                    if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                        // The peer is not reading. Run the timers (keepalive may
                        // declare it dead), then write the rest; a session that
                        // has ended meanwhile gives up on it.
                        if closed {
                            out.clear();
                        }
                        continue;
                    }
                    tracing::debug!(%err, "link write failed");
                    out.clear();
                    let _ = self.side.lose(self.current, self.side.now());
                    retire(&mut outbox);
                }
                continue;
            }
            drop(outbox);
            // This turn's plan may have just found the link suspect.
            let early_wake = match self.dial_ahead(suspect) {
                Ahead::TookOver => continue,
                Ahead::LookAgain(at) => Some(at),
                Ahead::Idle => early_wake,
            };
            let wake_at = [deadline, early_wake].into_iter().flatten().min();
            self.signal.wait_until(wake_at);
        }
    }

    /// Make-before-break: while the link is `suspect`, dials ahead, and lets
    /// a fresh link that connected take over (the session resumes on it);
    /// stops the dials once the link recovers.
    fn dial_ahead(&mut self, suspect: bool) -> Ahead {
        let Supply::Dial(Redial { early: Some(early), .. }) = &mut self.supply else {
            return Ahead::Idle;
        };
        if !suspect {
            early.cancel();
            return Ahead::Idle;
        }
        match early.poll(&self.side, &self.signal) {
            Err(look_again) => Ahead::LookAgain(look_again),
            Ok(fresh) => {
                // The old link is given up as lost: the session detaches from
                // it (its unacknowledged tail waits for replay).
                if self.side.lose(self.current, self.side.now()) {
                    retire(&mut self.direct.lock());
                }
                if self.direct.lock().link.is_none() {
                    tracing::info!("suspect link replaced by a fresh one");
                    self.attach(fresh);
                }
                Ahead::TookOver
            }
        }
    }
}

impl<L> Drop for Writer<L> {
    fn drop(&mut self) {
        // Done (or dropped from the lot): this writer's link, if it had one,
        // is shut and dropped, so whoever waits for the link's release may go on.
        self.side.released();
    }
}

impl<L: BlockingLink> Parkable for Writer<L> {
    type Link = L;

    fn revive(mut self, link: L) {
        self.attach(link);
        self.run();
    }

    fn check_parked(&mut self, waker: &Waker) -> Parked<L> {
        if self.side.plan(self.side.now(), waker).closed {
            self.side.finished();
            return Parked::Finished;
        }
        match self.acquire(waker) {
            Acquire::Link(link) => Parked::Link(link),
            Acquire::GaveUp => Parked::Finished,
            Acquire::Wait(_) => Parked::Waiting(self.side.next_timer()),
        }
    }
}

impl<L: BlockingLink> Writer<L> {
    /// Waits, at most [`LINGER`], for the reader to see the peer close.
    fn linger(&self) {
        let until = Instant::now() + LINGER;
        while self.direct.readers().running() > 0 && Instant::now() < until {
            self.signal.wait_until(Some(until));
        }
    }

    pub(crate) fn attach(&mut self, link: L) {
        if !self.side.attach(self.side.now()) {
            return;
        }
        if let Err(err) = link.set_write_timeout(Some(WRITE_STALL)) {
            tracing::debug!(%err, "cannot bound the new link's writes");
            return;
        }
        match spawn_reader(&self.side, &link, self.direct.readers(), &self.signal) {
            Ok((_, current)) => {
                self.current = current;
                self.direct.lock().link = Some(link);
            }
            Err(err) => tracing::debug!(%err, "cannot start a reader for the new link"),
        }
    }

    fn acquire(&mut self, waker: &Waker) -> Acquire<L> {
        match &mut self.supply {
            Supply::None => Acquire::Wait(None),
            Supply::Slot(slot, _) => match slot.poll_link(&mut Context::from_waker(waker)) {
                Poll::Ready(Some(link)) => Acquire::Link(link),
                Poll::Ready(None) => Acquire::GaveUp,
                Poll::Pending => Acquire::Wait(None),
            },
            Supply::Dial(redial) => match redial.schedule.next(Instant::now(), self.side.resumes()) {
                RedialStep::GiveUp => Acquire::GaveUp,
                RedialStep::WaitUntil(at) => Acquire::Wait(Some(at)),
                RedialStep::Dial(attempt) => {
                    self.side.reconnecting(attempt);
                    match (redial.dial)() {
                        Ok(link) => Acquire::Link(link),
                        Err(err) => {
                            tracing::debug!(%err, attempt, "reconnect failed");
                            Acquire::Wait(Some(redial.schedule.failed(Instant::now())))
                        }
                    }
                }
            },
        }
    }
}

fn write_all_vectored<W: Write>(link: &mut W, out: &mut FrameQueue) -> io::Result<()> {
    while !out.is_empty() {
        out.write_once(link)?;
    }
    link.flush()
}

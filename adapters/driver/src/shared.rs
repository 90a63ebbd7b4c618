//! The session state every handle of one session shares.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant as StdInstant};

use hawser_core::{Config, Event, IdHasher, Instant, ResetCode, Role, Session, SessionError, StreamId};

use crate::events::{LinkEvent, LinkEvents};
use crate::health::{HealthEvent, HealthLog, Status};
use crate::open_queue::OpenQueue;
use crate::slab::SlabBuf;

/// The shared state behind a mutex.
pub(crate) type SharedRef = Arc<Mutex<Shared>>;

/// Sessions whose state is still in memory, process-wide.
static LIVE_SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// How many sessions of this process still hold their state: every session
/// made by any adapter counts from its creation until its last handle, its
/// driver and every stream of it are gone. A server that has seen its clients
/// come and go should see this fall back; if it keeps growing, something holds
/// sessions that ended (a task waiting forever, a handle stored and forgotten).
pub fn live_sessions() -> usize {
    LIVE_SESSIONS.load(Ordering::Relaxed)
}

/// How much a peer may still send on a stream whose handle was dropped (after
/// the drop) before the stream is reset, once this side's own data is out: a
/// response already in flight is drained, a peer that keeps sending is stopped.
const ABANDONED_DRAIN_BYTES: u64 = 1024 * 1024;
/// How long after its handle was dropped a stream may stay open on the peer's
/// side before it is reset (checked as data arrives; a silent peer meets the
/// session's close timeout instead).
const ABANDONED_GRACE: Duration = Duration::from_secs(10);

/// A stream whose handle was dropped before the peer finished it.
struct Abandoned {
    since: Instant,
    /// Bytes that had arrived before the handle went (they do not count).
    already_here: u64,
    /// Bytes the peer sent after.
    drained: u64,
}

/// What the shared layer keeps for a stream whose handle is alive.
#[derive(Default)]
struct HandleEntry {
    read: Option<Waker>,
    write: Option<Waker>,
    /// How the stream was reset, once either side did: the one record of it
    /// above the core. The session releases a reset stream once the reset is
    /// delivered (and keeps only the last few codes), so every later
    /// operation of the handle reports the reset from here.
    reset: Option<SeenReset>,
}

/// A stream's reset as its handle reports it.
struct SeenReset {
    code: ResetCode,
    /// The reason that came with it (native profile).
    reason: Option<Box<str>>,
}

/// How far the driver has got in letting go of its link, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LinkEnd {
    /// The driver runs (or has not started).
    Driven,
    /// The driver has stopped: the link is shut and nothing more goes out.
    Shut,
    /// The link is let go of after lingering (see `ControlCore::poll_released`).
    Released,
}

/// A core session plus the wakers of everything waiting on it.
pub(crate) struct Shared {
    session: Session,
    epoch: StdInstant,
    /// The streams whose handle is alive (see `adopt`).
    handles_by_id: HashMap<StreamId, HandleEntry, BuildHasherDefault<IdHasher>>,
    accept_wakers: Vec<Waker>,
    pub(crate) open_queue: OpenQueue,
    flush_wakers: Vec<(StreamId, Waker)>,
    driver_waker: Option<Waker>,
    /// When the link's writer next looks at the session's timers without
    /// being woken (`None`: only when woken); see [`writer_needed`](Self::writer_needed).
    driver_plan: Option<StdInstant>,
    /// Streams whose handle was dropped before the peer finished: their inbound
    /// data is read and dropped (so the peer is never stuck on a window nobody
    /// reads), within a byte and time grace, then they are reset.
    abandoned: HashMap<StreamId, Abandoned, BuildHasherDefault<IdHasher>>,
    /// Resumption: link events for the application, and the driver's cue to drop
    /// its link.
    pub(crate) link_events: LinkEvents,
    /// Where the streams' written bytes are copied to (see `slab`).
    write_slab: SlabBuf,
    /// Health events for the application.
    health_log: HealthLog,
    /// Missed pings as of the last `HealthChanged` event.
    missed_before: u32,
    /// Tasks waiting for the session to end (`poll_closed`) or to become
    /// resumable (`poll_resumable`).
    lifecycle_wakers: Vec<Waker>,
    /// How far the driver (or the blocking writer) has got in letting go of
    /// the link; it only moves forward.
    link_end: LinkEnd,
    /// The application's handles (session, control and stream handles) alive:
    /// when the last one goes, the session goes away (see `release_handle`).
    handles: usize,
}

impl Shared {
    /// A new session for `role`, shared.
    pub fn new(role: Role, config: Config) -> Result<SharedRef, hawser_core::ConfigError> {
        let session = Session::new(role, config, Instant::ZERO)?;
        LIVE_SESSIONS.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(Mutex::new(Shared {
            session,
            epoch: StdInstant::now(),
            handles_by_id: HashMap::default(),
            accept_wakers: Vec::new(),
            open_queue: OpenQueue::default(),
            flush_wakers: Vec::new(),
            driver_waker: None,
            driver_plan: None,
            abandoned: HashMap::default(),
            link_events: LinkEvents::default(),
            write_slab: SlabBuf::default(),
            health_log: HealthLog::default(),
            missed_before: 0,
            lifecycle_wakers: Vec::new(),
            link_end: LinkEnd::Driven,
            handles: 0,
        })))
    }

    /// Locks the shared state. A panic in another holder cannot leave the session
    /// half-updated in a way we could detect, so poisoning is ignored.
    pub fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
        shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session's notion of now.
    pub fn now(&self) -> Instant {
        self.to_core(StdInstant::now())
    }

    /// A std instant on the session's clock.
    pub fn to_core(&self, instant: StdInstant) -> Instant {
        shared_clock(self.epoch, instant)
    }

    /// The std instant the session's clock counts from.
    pub fn epoch(&self) -> StdInstant {
        self.epoch
    }

    /// A core instant as a std instant.
    pub fn to_std(&self, instant: Instant) -> StdInstant {
        self.epoch + instant.since_origin()
    }

    /// The core session, for what the crate reads of it through `&mut`
    /// (a stream's room, its buffered bytes) and for the acceptor's admission
    /// of a new link; changes go through [`change`](Self::change) or the link
    /// side's doors.
    pub(crate) fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The one door for the application's changes to the session (open,
    /// accept, write, read, finish, reset, go away, close, ping): runs
    /// `change` on the session at `now`, then delivers the events it caused and
    /// wakes the link driver if it has something new to do (a frame to send,
    /// an end, another timer), so that no caller can forget either.
    pub(crate) fn change<T>(&mut self, change: impl FnOnce(&mut Session, Instant) -> T) -> T {
        let now = self.now();
        self.change_now(|session| change(session, now))
    }

    /// [`change`](Self::change) for a change that needs no time: most stream
    /// operations, which then read no clock.
    pub(crate) fn change_now<T>(&mut self, change: impl FnOnce(&mut Session) -> T) -> T {
        self.change_checking(change, |_| true)
    }

    /// [`change_now`](Self::change_now) for the hot paths whose outcome says
    /// whether the driver has work: `wakes(&outcome)` decides, instead of
    /// comparing the session's timers and output before and after (a stream
    /// write that queued bytes always leaves something to send).
    pub(crate) fn change_waking<T>(
        &mut self,
        change: impl FnOnce(&mut Session) -> T,
        wakes: impl FnOnce(&T) -> bool,
    ) -> T {
        let outcome = change(&mut self.session);
        self.dispatch_events();
        if wakes(&outcome) {
            self.wake_driver();
        }
        outcome
    }

    /// [`change_now`](Self::change_now) whose timers and output are compared
    /// only when `check(&outcome)` says the change may have given the driver
    /// work (a read that found nothing to read cannot have).
    pub(crate) fn change_checking<T>(
        &mut self,
        change: impl FnOnce(&mut Session) -> T,
        check: impl FnOnce(&T) -> bool,
    ) -> T {
        let timer_before = self.session.poll_timeout();
        let outcome = change(&mut self.session);
        self.dispatch_events();
        if check(&outcome) {
            self.wake_driver_if_needed(timer_before);
        }
        outcome
    }

    /// The link side's door: the bytes a link delivered at `now` go into the
    /// session, and the events they cause out to whoever waits.
    pub fn link_input(&mut self, now: Instant, bytes: bytes::Bytes) {
        self.session.handle_input(now, bytes);
        self.dispatch_events();
    }

    /// The link side's door: the link was lost at `now` (a resumable session
    /// detaches, any other ends).
    pub fn link_lost(&mut self, now: Instant) {
        self.session.handle_link_lost(now);
        self.dispatch_events();
    }

    /// The link side's door: runs the session's timers if one is due at
    /// `now`; returns whether one was.
    pub fn run_timers(&mut self, now: Instant) -> bool {
        if !self.session.poll_timeout().is_some_and(|at| at <= now) {
            return false;
        }
        self.session.handle_timeout(now);
        self.dispatch_events();
        true
    }

    /// The link side's door: takes what the session has to send at `now` into
    /// `out`, and wakes those whose flush it completed.
    pub fn take_transmits(&mut self, out: &mut crate::frames::FrameQueue, now: Instant) {
        out.fill(&mut self.session, now);
        self.dispatch_events();
        self.wake_flushed();
    }

    /// The link side's door: a resumable client's new link is in place at
    /// `now`; the session sends its resume request on it.
    pub fn attach_link(&mut self, now: Instant) -> Result<(), hawser_core::AttachError> {
        self.session.attach(now)
    }

    /// The link side's door: no new link will come (the client's retry
    /// policy ran out); the session ends, with `LinkEvent::GaveUp`.
    pub fn give_up(&mut self) {
        self.session.give_up();
        self.note_gave_up();
        self.dispatch_events();
    }

    /// Copies `data` for a stream write into recycled memory.
    pub(crate) fn copy_in(&mut self, data: &[u8]) -> bytes::Bytes {
        self.write_slab.copy(data)
    }

    /// Whether the streams' writes are being copied into a slab (see `slab`).
    pub(crate) fn holds_write_slab(&self) -> bool {
        self.write_slab.holds_slab()
    }

    /// Hands the write slab back to the waiting slabs: the link has been quiet, and an
    /// idle session should not keep 256 KiB for writes that may never come.
    /// The frames still queued keep the pieces they were cut from alive.
    pub(crate) fn release_write_slab(&mut self) {
        self.write_slab = SlabBuf::default();
    }

    /// Read-only access to the core session.
    pub fn session_ref(&self) -> &Session {
        &self.session
    }

    /// A snapshot of the session's health and load.
    pub fn status(&self) -> Status {
        let session = &self.session;
        Status {
            rtt_last: session.stats().rtt_last,
            rtt_smoothed: session.rtt(),
            missed_pings: session.missed_pings(),
            since_last_pong: self.health_log.last_pong.map(|at| at.elapsed()),
            unhealthy_episodes: self.health_log.unhealthy_episodes,
            suspect: session.is_link_suspect(),
            suspect_episodes: self.health_log.suspect_episodes,
            reconnects: self.link_events.reconnects,
            resumes: session.stats().resumes,
            streams_open: session.stream_count(),
            pending_accepts: session.pending_accepts(),
            detached: session.is_detached(),
            draining: session.is_draining(),
            closed: session.is_closed(),
        }
    }

    /// The next health event; `None` once the session has ended and none are left.
    pub fn poll_health_event(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<HealthEvent>> {
        let closed = self.session.is_closed();
        self.health_log.poll_next(cx, closed)
    }

    /// Why the session ended, if it did.
    pub fn closed(&self) -> Option<Option<SessionError>> {
        self.session.is_closed().then(|| self.session.close_reason())
    }

    /// The error every operation reports once the session is closed.
    pub fn closed_error(&self) -> std::io::Error {
        crate::session_closed_error(self.session.close_reason())
    }

    /// Whether stream `id`, whose handle is alive, has been reset by either side.
    pub(crate) fn is_reset(&self, id: StreamId) -> bool {
        self.handles_by_id.get(&id).is_some_and(|entry| entry.reset.is_some())
    }

    /// The error an operation of stream `id` reports once the stream has been
    /// reset: `reported(code)`, with the reset's reason attached.
    pub(crate) fn reset_error<E: Into<std::io::Error>>(
        &self,
        id: StreamId,
        reported: impl FnOnce(ResetCode) -> E,
    ) -> Option<std::io::Error> {
        let reset = self.handles_by_id.get(&id)?.reset.as_ref()?;
        Some(crate::errors::with_reason(reported(reset.code), &reset.reason))
    }

    /// Records that stream `id` was reset with `code` (an operation saw it,
    /// the session announced it, or this side reset it), with the reason
    /// the session knows.
    pub(crate) fn note_reset(&mut self, id: StreamId, code: ResetCode) {
        if let Some(entry) = self.handles_by_id.get_mut(&id) {
            if entry.reset.is_none() {
                let reason = self.session.reset_reason(id).map(Box::from);
                entry.reset = Some(SeenReset { code, reason });
            }
        }
    }

    pub(crate) fn register_read(&mut self, id: StreamId, waker: &Waker) {
        self.handles_by_id.entry(id).or_default().read = Some(waker.clone());
    }

    pub(crate) fn register_write(&mut self, id: StreamId, waker: &Waker) {
        self.handles_by_id.entry(id).or_default().write = Some(waker.clone());
    }

    /// Registers a task waiting for an inbound stream.
    pub fn register_accept(&mut self, waker: &Waker) {
        if !self.accept_wakers.iter().any(|w| w.will_wake(waker)) {
            self.accept_wakers.push(waker.clone());
        }
    }

    /// A stream has one writer, so one waker per stream: a flush polled again
    /// replaces its waker instead of queueing another.
    pub(crate) fn register_flush(&mut self, id: StreamId, waker: &Waker) {
        match self.flush_wakers.iter_mut().find(|(waiting, _)| *waiting == id) {
            Some((_, existing)) => {
                if !existing.will_wake(waker) {
                    existing.clone_from(waker);
                }
            }
            None => self.flush_wakers.push((id, waker.clone())),
        }
    }

    /// Wakes the tasks flushing streams whose written data has all gone out; a
    /// driver calls it after taking frames from the session.
    pub fn wake_flushed(&mut self) {
        if self.flush_wakers.is_empty() {
            return;
        }
        let session = &mut self.session;
        self.flush_wakers.retain(|(id, waker)| {
            let pending = session.stream(*id).buffered_send() > 0 && !session.is_closed();
            if !pending {
                waker.wake_by_ref();
            }
            pending
        });
    }

    /// Registers the driver, woken whenever a command may have produced output.
    pub fn register_driver(&mut self, waker: &Waker) {
        match &self.driver_waker {
            Some(existing) if existing.will_wake(waker) => {}
            _ => self.driver_waker = Some(waker.clone()),
        }
    }

    /// Registers a task waiting for the session to end or to become resumable;
    /// woken on every change that could matter.
    pub fn register_lifecycle(&mut self, waker: &Waker) {
        if !self.lifecycle_wakers.iter().any(|w| w.will_wake(waker)) {
            self.lifecycle_wakers.push(waker.clone());
        }
    }

    /// The driver has stopped for good; `poll_closed` completes.
    pub fn note_driver_finished(&mut self) {
        self.advance_link_end(LinkEnd::Shut);
    }

    /// Whether the session has ended and its driver stopped.
    pub fn is_finished(&self) -> bool {
        self.session.is_closed() && self.link_end >= LinkEnd::Shut
    }

    /// The driver has let go of its link (the peer closed its side, or the
    /// linger ran out, or there was no link); `poll_closed` and
    /// `poll_released` complete.
    pub fn note_link_released(&mut self) {
        self.advance_link_end(LinkEnd::Released);
    }

    /// Whether the session has ended and its driver let go of its link.
    pub fn is_released(&self) -> bool {
        self.session.is_closed() && self.link_end == LinkEnd::Released
    }

    fn advance_link_end(&mut self, to: LinkEnd) {
        self.link_end = self.link_end.max(to);
        wake_all(&mut self.lifecycle_wakers);
    }

    /// An application handle (session, control or stream) was made.
    pub(crate) fn acquire_handle(&mut self) {
        self.handles += 1;
    }

    /// An application handle was dropped. With none left, nobody can open,
    /// accept, read or write any more: the session goes away with `NORMAL`,
    /// lets the streams still draining finish, and closes.
    pub(crate) fn release_handle(&mut self) {
        self.handles = self.handles.saturating_sub(1);
        if self.handles > 0 || self.session.is_closed() || self.session.is_draining() {
            return;
        }
        tracing::debug!("every handle of the session was dropped: going away");
        let now = self.now();
        // Cannot fail: the session is neither closed nor draining.
        let _ = self.session.go_away(now, hawser_core::GoAwayCode::NORMAL);
        self.dispatch_events();
        self.wake_driver();
    }

    /// A handle for stream `id` was made: it owns the stream's entry (wakers
    /// and an announced reset) until it is dropped (`forget` or `abandon`).
    pub(crate) fn adopt(&mut self, id: StreamId) {
        self.handles_by_id.insert(id, HandleEntry::default());
    }

    /// The handle of stream `id` was dropped before the peer finished it.
    pub(crate) fn abandon(&mut self, id: StreamId) {
        self.handles_by_id.remove(&id);
        let since = self.now();
        // What had arrived before the handle went does not count: only what
        // the peer sends after.
        let already_here = self.session.stream(id).buffered_receive();
        self.abandoned.insert(
            id,
            Abandoned {
                since,
                already_here,
                drained: 0,
            },
        );
        self.drain_abandoned(id);
    }

    /// The handle of stream `id` was dropped, and the stream needs nothing more.
    pub(crate) fn forget(&mut self, id: StreamId) {
        self.handles_by_id.remove(&id);
    }

    /// Reads and drops what arrived on a stream nobody holds any more; resets
    /// it once the peer has sent more than [`ABANDONED_DRAIN_BYTES`] or kept
    /// it open past [`ABANDONED_GRACE`] since the handle went.
    fn drain_abandoned(&mut self, id: StreamId) {
        let now = self.now();
        let Some(abandoned) = self.abandoned.get_mut(&id) else {
            return;
        };
        let mut stream = self.session.stream(id);
        loop {
            match stream.read(usize::MAX) {
                Ok(Some(chunk)) => {
                    let len = chunk.len() as u64;
                    let old = len.min(abandoned.already_here);
                    abandoned.already_here -= old;
                    abandoned.drained += len - old;
                }
                Err(hawser_core::ReadError::Blocked) => break,
                Ok(None) | Err(_) => {
                    self.abandoned.remove(&id);
                    return;
                }
            }
        }
        let overdue = now.saturating_duration_since(abandoned.since) >= ABANDONED_GRACE;
        // A reset drops what this side still has to send: past the byte limit
        // the stream is reset only once its own data is out (the time limit
        // holds regardless).
        let over = abandoned.drained > ABANDONED_DRAIN_BYTES && stream.buffered_send() == 0;
        if over || overdue {
            tracing::debug!(
                stream = %id,
                drained = abandoned.drained,
                "the peer kept sending on a stream nobody holds: resetting it"
            );
            let _ = stream.reset(hawser_core::ResetCode::CANCEL);
            self.abandoned.remove(&id);
            self.wake_driver();
        }
    }

    /// Resumption: takes the cue to drop the current link (the session detached,
    /// or a resume attempt on it failed).
    pub fn take_drop_link(&mut self) -> bool {
        let dropped = std::mem::take(&mut self.link_events.drop_link);
        if dropped {
            // Under the same lock as the cue: a reader of the old link can
            // never see neither (see `LinkSide::input`).
            self.link_events.link_generation += 1;
        }
        dropped
    }

    /// Which link is the current one: it changes whenever the driver takes
    /// the cue to drop its link.
    pub(crate) fn link_generation(&self) -> u64 {
        self.link_events.link_generation
    }

    /// Resumption: whether the current link is to be dropped (the session
    /// detached, was resumed over another link, or a resume attempt on it
    /// failed); a reader must not feed it any more.
    pub fn link_dropped(&self) -> bool {
        self.link_events.drop_link
    }

    /// Resumption, client: the retry policy ran out.
    pub fn note_gave_up(&mut self) {
        self.link_events.push(LinkEvent::GaveUp);
    }

    /// Resumption, client: a reconnect attempt is starting.
    pub fn note_reconnect_attempt(&mut self, attempt: u32) {
        self.link_events.reconnects += 1;
        self.link_events.push(LinkEvent::Reconnecting { attempt });
    }

    /// Wakes the driver only if a change made since the session's next timer
    /// was `timer_before` left it something to do: a frame to send, an end,
    /// or a different timer. Most reads change none of these (a window update
    /// is owed only once half a window has been read).
    pub(crate) fn wake_driver_if_needed(&mut self, timer_before: Option<Instant>) {
        let session = &self.session;
        if session.has_transmit() || session.is_closed() || session.poll_timeout() != timer_before {
            self.wake_driver();
        }
    }

    /// The link's writer, with the session locked: it looks at the timers
    /// again by `at` at the latest.
    pub(crate) fn set_driver_plan(&mut self, at: Option<StdInstant>) {
        self.driver_plan = at;
    }

    /// Whether the session needs the link's writer now: something to send,
    /// an end or a link change to act on, or a timer due before the writer
    /// planned to look.
    pub(crate) fn writer_needed(&self) -> bool {
        let session = &self.session;
        if session.has_transmit() || session.is_closed() || self.link_events.drop_link {
            return true;
        }
        match (session.poll_timeout().map(|at| self.to_std(at)), self.driver_plan) {
            (Some(at), Some(planned)) => at < planned,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Takes the link driver's waker, for a caller that wakes the driver its
    /// own way (hawser-blocking writes from the calling thread when its
    /// writer is idle); `None` if the driver is awake already.
    pub(crate) fn take_driver_waker(&mut self) -> Option<Waker> {
        self.driver_waker.take()
    }

    /// Something changed that the driver must act on (new output, a command).
    pub fn wake_driver(&mut self) {
        if let Some(waker) = self.driver_waker.take() {
            waker.wake();
        }
    }

    /// Delivers the session's events to the tasks waiting on them.
    #[inline]
    pub fn dispatch_events(&mut self) {
        // Most operations (every stream read and write) cause no event: they
        // should cost a check, not a call.
        if self.session.has_event() || !self.lifecycle_wakers.is_empty() {
            self.deliver_events();
        }
    }

    fn deliver_events(&mut self) {
        // Rarely non-empty; an empty Vec does not allocate.
        let mut drain: Vec<StreamId> = Vec::new();
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Readable(id) => {
                    if self.abandoned.contains_key(&id) {
                        drain.push(id);
                    }
                    self.wake_stream(id, true, false);
                }
                Event::Writable(id) => self.wake_stream(id, false, true),
                Event::StreamReset { id, code } => {
                    self.abandoned.remove(&id);
                    // Only a live handle has an entry (see `adopt`); nobody
                    // else needs the code.
                    self.note_reset(id, code);
                    self.wake_stream(id, true, true);
                }
                Event::StreamClosed(id) => {
                    self.wake_stream(id, true, true);
                    self.abandoned.remove(&id);
                }
                Event::IncomingStream => {
                    wake_all(&mut self.accept_wakers);
                    self.open_queue.wake_next();
                }
                Event::GoAwayReceived(code) => {
                    self.health_log.push(HealthEvent::GoAwayReceived(code));
                    wake_all(&mut self.accept_wakers);
                    self.open_queue.wake_all();
                }
                // One place (or a few): the first waiting open takes it, and
                // wakes the next if it got one (see `open_queue`).
                Event::CanOpen | Event::StreamAcknowledged(_) | Event::Connected => self.open_queue.wake_next(),
                Event::Closed(reason) => {
                    match reason {
                        Some(err) => tracing::debug!(%err, "session closed"),
                        None => tracing::debug!("session closed"),
                    }
                    self.link_events.push(LinkEvent::Ended { reason });
                    self.wake_everything();
                    self.link_events.wake();
                    self.health_log.wake();
                }
                Event::Pong { rtt } => {
                    tracing::trace!(?rtt, "pong");
                    self.health_log.push(HealthEvent::Pong { rtt });
                }
                Event::Detached => {
                    // A server may see thousands of these a second from clients
                    // that come and go; its acceptor logs summaries instead.
                    if self.session.role() == hawser_core::Role::Client {
                        tracing::info!("link lost; the session waits for a new link");
                    } else {
                        tracing::debug!("link lost; the session waits for a new link");
                    }
                    self.link_events.drop_link = true;
                    self.link_events.push(LinkEvent::Lost);
                    self.wake_driver();
                }
                Event::Resumed { replayed } => {
                    if self.session.role() == hawser_core::Role::Client {
                        tracing::info!(replayed, "session resumed over a new link");
                    } else {
                        tracing::debug!(replayed, "session resumed over a new link");
                    }
                    self.link_events.push(LinkEvent::Resumed { replayed });
                    self.open_queue.wake_next();
                }
                Event::ResumeRefused(code) => {
                    tracing::info!(code = code.0, "resume refused; will retry");
                    self.link_events.drop_link = true;
                    self.wake_driver();
                }
                Event::LinkSuspect { silent_for } => {
                    // Servers log their clients' links at debug, as with `Detached`.
                    if self.session.role() == hawser_core::Role::Client {
                        tracing::info!(?silent_for, "link suspect: the peer stopped answering");
                    } else {
                        tracing::debug!(?silent_for, "link suspect: the peer stopped answering");
                    }
                    self.health_log.push(HealthEvent::Suspect { silent_for });
                }
                Event::LinkResponsive => {
                    tracing::debug!("suspect link responsive again");
                    self.health_log.push(HealthEvent::Responsive);
                }
                Event::HealthChanged { missed_pings } => {
                    let before = self.missed_before;
                    self.missed_before = missed_pings;
                    self.health_log.missed(missed_pings, before);
                    if missed_pings > 0 {
                        tracing::warn!(missed_pings, "link unhealthy: keepalive pings unanswered");
                    } else {
                        tracing::info!("link healthy again");
                    }
                }
            }
        }
        for id in drain {
            self.drain_abandoned(id);
        }
        if !self.lifecycle_wakers.is_empty() && (self.session.is_resumable() || self.session.is_closed()) {
            wake_all(&mut self.lifecycle_wakers);
        }
    }

    fn wake_stream(&mut self, id: StreamId, read: bool, write: bool) {
        if let Some(entry) = self.handles_by_id.get_mut(&id) {
            if read {
                if let Some(waker) = entry.read.take() {
                    waker.wake();
                }
            }
            if write {
                if let Some(waker) = entry.write.take() {
                    waker.wake();
                }
            }
        }
    }

    fn wake_everything(&mut self) {
        // The entries stay: a stream reset before the end still reports its reset.
        for entry in self.handles_by_id.values_mut() {
            for waker in [entry.read.take(), entry.write.take()].into_iter().flatten() {
                waker.wake();
            }
        }
        wake_all(&mut self.accept_wakers);
        self.open_queue.wake_all();
        for (_, waker) in self.flush_wakers.drain(..) {
            waker.wake();
        }
        self.wake_driver();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
}

/// `instant` on the session clock that starts at `epoch`.
pub(crate) fn shared_clock(epoch: StdInstant, instant: StdInstant) -> hawser_core::Instant {
    let nanos = instant.saturating_duration_since(epoch).as_nanos();
    hawser_core::Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_polled_again_and_again_keeps_one_waker() {
        let shared = Shared::new(hawser_core::Role::Client, hawser_core::Config::default()).expect("valid config");
        let mut guard = Shared::lock(&shared);
        let waker = Waker::noop();
        let now = guard.now();
        let first = guard.session().open(now).expect("room for a stream");
        let second = guard.session().open(now).expect("room for a stream");
        for _ in 0..1000 {
            guard.register_flush(first, waker);
        }
        guard.register_flush(second, waker);
        assert_eq!(guard.flush_wakers.len(), 2, "one waker per stream being flushed");
    }
}

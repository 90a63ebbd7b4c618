//! The link pump: the rules of moving one session's bytes over its link,
//! written once for every way of running them. The async [`LinkDriver`]
//! (one task per session) and hawser-blocking (a reader thread, a writer
//! thread, and callers that write directly) both drive a session through
//! [`LinkSide`], read through a [`ReadPump`] and write a [`FrameQueue`]; what
//! they add is only how they wait (polling, or blocking a thread).
//!
//! The rules kept here:
//! - input from a link the session has left (it was resumed over another one
//!   meanwhile, or detached) is dropped, and the failure of such a link says
//!   nothing about the session;
//! - a session that has left its link drops the frames queued for it: its
//!   output belongs to the next link;
//! - reads start tiny and grow only while they come back full (reads zero
//!   their buffer first), and a quiet link gives its buffers back;
//! - the writer is woken by an input only when that input left it work: a
//!   frame to send, an end, or a timer due before it planned to look;
//! - an ended session shuts its sending side and goes on reading, for at most
//!   [`LINGER`], until the peer closes too.
//!
//! [`LinkDriver`]: crate::LinkDriver

use std::io::{self, Read};
use std::task::Waker;
use std::time::{Duration, Instant as StdInstant};

use bytes::{Bytes, BytesMut};
use hawser_core::{Config, ConfigError, Instant, Role, SessionError};

use crate::control::ControlCore;
use crate::frames::FrameQueue;
use crate::shared::{shared_clock, Shared, SharedRef};
use crate::slab::{SlabBuf, SLAB, SMALL_BUF};

/// How long an ended session goes on reading its link, once it has shut its
/// sending side, for the peer to close its side too. Until the peer has read
/// the end of every stream it still sends window updates; a socket closed for
/// reading would answer them with a reset, and a reset throws away what the
/// peer has not read yet.
pub const LINGER: Duration = Duration::from_secs(2);

/// How many bytes one read asks for at most.
const READ_MAX: usize = SLAB;
/// How many bytes one read asks for at least, once the link is no longer idle.
const MIN_READ: usize = SMALL_BUF;

/// One session as the driver of its link sees it: what a link brought, what
/// the session has to send, its timers, and the links it moves between. Every
/// method locks the session once and delivers the events it caused.
#[derive(Clone)]
pub struct LinkSide {
    shared: SharedRef,
    /// The session's clock origin, so that reading the clock takes no lock.
    epoch: StdInstant,
}

/// Which of a session's links something came from (see
/// [`LinkSide::link_generation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkGeneration(u64);

/// What became of bytes a link delivered ([`LinkSide::input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The session took them. `wake_writer`: they left the writer something
    /// to do before it planned to look (see [`LinkSide::plan`]).
    Taken {
        /// Whether the writer must be woken.
        wake_writer: bool,
    },
    /// The session has left this link (resumed over another, or detached):
    /// what it brought no longer counts, and nothing more should be read from it.
    Stale,
    /// The session has ended: read only to let the peer close (see [`LINGER`]).
    Ended,
}

/// The link's state, as a driver with a link source looks at it each turn.
pub(crate) struct LinkState {
    /// The session has left the link.
    pub(crate) dropped: bool,
    /// The session has ended.
    pub(crate) closed: bool,
    /// The link is suspect (see `hawser_core::Liveness`).
    pub(crate) suspect: bool,
}

/// What a link's writer does next, as the session says once per turn
/// ([`LinkSide::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// When the session's next timer is due; the writer runs the timers then
    /// at the latest, and an input that needs them sooner wakes it.
    pub next_timer: Option<StdInstant>,
    /// Whether the session has ended.
    pub closed: bool,
    /// Whether the writer must let go of its link first (see
    /// [`LinkSide::take_drop_link`]): what it queued for it is dropped, and
    /// the session's output belongs to the next link.
    pub drop_link: bool,
    /// Whether the link is suspect and the session would survive losing it:
    /// a resumable client may dial a fresh link to take over.
    pub suspect: bool,
}

impl LinkSide {
    /// A new session for `role`, with no link yet.
    pub fn new(role: Role, config: Config) -> Result<LinkSide, ConfigError> {
        Shared::new(role, config).map(LinkSide::from_shared)
    }

    pub(crate) fn from_shared(shared: SharedRef) -> LinkSide {
        let epoch = Shared::lock(&shared).epoch();
        LinkSide { shared, epoch }
    }

    pub(crate) fn shared(&self) -> &SharedRef {
        &self.shared
    }

    /// A handle for the application's session-wide operations.
    pub fn control(&self) -> ControlCore {
        ControlCore::new(self.shared.clone())
    }

    /// The std instant the session's clock counts from.
    pub fn epoch(&self) -> StdInstant {
        self.epoch
    }

    /// The session's notion of now.
    pub fn now(&self) -> Instant {
        shared_clock(self.epoch, StdInstant::now())
    }

    /// Wakes the link's driver (its task, its writer thread, or whatever
    /// waits for it in an acceptor).
    pub fn wake_driver(&self) {
        Shared::lock(&self.shared).wake_driver();
    }

    /// Which link is the current one: a driver notes it when it starts using
    /// a link, and passes it with what that link brought
    /// ([`input`](Self::input), [`lost`](Self::lost)). It changes whenever the
    /// driver takes the cue to drop its link.
    pub fn link_generation(&self) -> LinkGeneration {
        LinkGeneration(Shared::lock(&self.shared).link_generation())
    }

    /// The bytes that link `link` read at `now` go into the session, unless
    /// the session has left that link or ended.
    pub fn input(&self, link: LinkGeneration, now: Instant, bytes: Bytes) -> Input {
        let mut shared = Shared::lock(&self.shared);
        // Both checked under the lock that takes the cue and moves the
        // generation on: a read that raced a resume is never fed.
        if shared.link_dropped() || shared.link_generation() != link.0 {
            // The client sends again, from the offset it is told, what the
            // old link brought.
            return Input::Stale;
        }
        if shared.session_ref().is_closed() {
            return Input::Ended;
        }
        shared.link_input(now, bytes);
        // A reset can end a flush's wait.
        shared.wake_flushed();
        if shared.session_ref().is_closed() {
            return Input::Ended;
        }
        Input::Taken {
            wake_writer: shared.writer_needed(),
        }
    }

    /// Link `link` failed or the peer closed it, at `now`. A resumable
    /// session detaches (and [`take_drop_link`](Self::take_drop_link) then
    /// says so); any other ends. A link the session had already left says
    /// nothing about the session and changes nothing.
    pub fn lost(&self, link: LinkGeneration, now: Instant) {
        lost_locked(&mut Shared::lock(&self.shared), link, now);
    }

    /// One look at the link's state for a driver with a link source: takes
    /// the cue to let go of the link, and says whether the session has ended
    /// and whether its link is suspect.
    pub(crate) fn link_state(&self) -> LinkState {
        let mut shared = Shared::lock(&self.shared);
        let session = shared.session_ref();
        let closed = session.is_closed();
        // Only a session that would survive losing the link may give it up early.
        let suspect = session.is_link_suspect() && session.is_resumable();
        LinkState {
            dropped: shared.take_drop_link(),
            closed,
            suspect,
        }
    }

    /// Link `link` failed, or the driver gives it up for a fresh one, at
    /// `now`: [`lost`](Self::lost), then [`take_drop_link`](Self::take_drop_link)
    /// under the same lock. Returns whether the driver must let go of the
    /// link now (the session detached from it, or had already left it).
    pub fn lose(&self, link: LinkGeneration, now: Instant) -> bool {
        let mut shared = Shared::lock(&self.shared);
        lost_locked(&mut shared, link, now);
        shared.take_drop_link()
    }

    /// Takes the cue to let go of the current link: the session detached from
    /// it, was resumed over another one, or a resume attempt on it failed.
    pub fn take_drop_link(&self) -> bool {
        Shared::lock(&self.shared).take_drop_link()
    }

    /// Takes what the session has to send at `now` into `out`; returns how
    /// many streams are open, or `None` if the session has left the link
    /// (what it sends is for the next one).
    pub fn take_transmits(&self, out: &mut FrameQueue, now: Instant) -> Option<usize> {
        let mut shared = Shared::lock(&self.shared);
        if shared.link_dropped() {
            return None;
        }
        shared.take_transmits(out, now);
        Some(shared.session_ref().stream_count())
    }

    /// The direct-write path: a caller whose stream operation left frames to
    /// send takes them into `out` to write itself, instead of waking the
    /// writer (`waker`). Returns `false`, having taken nothing or not all, when
    /// the writer must act anyway: the session left its link or ended, there
    /// is more than one batch, or a timer is due before the writer would look.
    pub fn take_for_caller(&self, out: &mut FrameQueue, waker: &Waker) -> bool {
        let mut shared = Shared::lock(&self.shared);
        if shared.link_dropped() || shared.session_ref().is_closed() {
            return false;
        }
        let now = shared.now();
        shared.take_transmits(out, now);
        shared.register_driver(waker);
        !shared.writer_needed()
    }

    /// Runs the session's timers if one is due at `now`; returns whether one was.
    pub fn run_timers(&self, now: Instant) -> bool {
        Shared::lock(&self.shared).run_timers(now)
    }

    /// A writer's turn, at `now`: runs the due timers, takes the cue to drop
    /// the link, registers `waker` for the next change, and says when to look
    /// again.
    pub fn plan(&self, now: Instant, waker: &Waker) -> Plan {
        let mut shared = Shared::lock(&self.shared);
        shared.run_timers(now);
        // Flushes waiting on a session that ended or lost its link end here.
        shared.wake_flushed();
        let drop_link = shared.take_drop_link();
        shared.register_driver(waker);
        let next_timer = shared.session_ref().poll_timeout().map(|at| shared.to_std(at));
        // Set with the session locked: a change after this that needs the
        // timers sooner wakes the writer (see `Shared::writer_needed`).
        shared.set_driver_plan(next_timer);
        let session = shared.session_ref();
        Plan {
            next_timer,
            closed: session.is_closed(),
            drop_link,
            suspect: session.is_link_suspect() && session.is_resumable(),
        }
    }

    /// When the session's next timer is due.
    pub fn next_timer(&self) -> Option<StdInstant> {
        let shared = Shared::lock(&self.shared);
        shared.session_ref().poll_timeout().map(|at| shared.to_std(at))
    }

    /// A new link is in place at `now`. A resumable client's session sends its
    /// resume request on it; returns `false` if it cannot (the session ended
    /// meanwhile), and the link is of no use.
    pub fn attach(&self, now: Instant) -> bool {
        let mut shared = Shared::lock(&self.shared);
        if shared.session_ref().role() == Role::Client {
            if let Err(err) = shared.attach_link(now) {
                tracing::debug!(%err, "cannot attach the new link");
                return false;
            }
        }
        true
    }

    /// A resumable client is about to dial its next link (attempt `attempt`).
    pub fn reconnecting(&self, attempt: u32) {
        Shared::lock(&self.shared).note_reconnect_attempt(attempt);
    }

    /// How many times the session has been resumed.
    pub fn resumes(&self) -> u64 {
        Shared::lock(&self.shared).session_ref().stats().resumes
    }

    /// No new link will come (the client's retry policy ran out, or the
    /// server's slot was closed); the session ends with `LinkEvent::GaveUp`.
    pub fn give_up(&self) {
        Shared::lock(&self.shared).give_up();
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        Shared::lock(&self.shared).session_ref().is_closed()
    }

    /// The driver has stopped for good (its link is shut): whoever waits for
    /// the session's end may go on.
    pub fn finished(&self) {
        Shared::lock(&self.shared).note_driver_finished();
    }

    /// The driver has let go of its link for good: the peer closed its side
    /// (it has read everything sent), the linger ran out, or there was no
    /// link. Implies [`finished`](Self::finished).
    pub fn released(&self) {
        Shared::lock(&self.shared).note_link_released();
    }

    /// Why the session ended (`None`: an orderly end, or not ended).
    pub fn close_reason(&self) -> Option<SessionError> {
        Shared::lock(&self.shared).session_ref().close_reason()
    }

    /// Registers the link driver's `waker`, woken whenever a change may
    /// have given it work.
    pub fn register_driver(&self, waker: &Waker) {
        Shared::lock(&self.shared).register_driver(waker);
    }

    /// The link has been quiet: the streams' write slab goes back to the
    /// waiting slabs.
    pub(crate) fn release_write_slab(&self) {
        Shared::lock(&self.shared).release_write_slab();
    }

    /// When the session's next timer is due, and whether the streams' writes
    /// are being copied into a slab (see `slab`), in one look.
    pub(crate) fn timer_and_write_slab(&self) -> (Option<StdInstant>, bool) {
        let shared = Shared::lock(&self.shared);
        let next_timer = shared.session_ref().poll_timeout().map(|at| shared.to_std(at));
        (next_timer, shared.holds_write_slab())
    }
}

/// [`LinkSide::lost`] with the session locked.
fn lost_locked(shared: &mut Shared, link: LinkGeneration, now: Instant) {
    if !shared.link_dropped() && shared.link_generation() == link.0 {
        shared.link_lost(now);
        shared.wake_driver();
    }
}

/// Where a link's reads land: recycled slabs (see `slab`), cut into the
/// `Bytes` the session keeps until the application reads them. A safe read
/// must zero its buffer first, so the size of each read follows what the
/// last ones brought; a new or quiet link reads into a tiny buffer until
/// real traffic comes.
pub struct ReadPump {
    buf: SlabBuf,
    /// How much the next read asks for.
    size: usize,
    /// Whether the link is idle (new, or quiet): reads wait with a tiny buffer.
    idle: bool,
}

impl Default for ReadPump {
    fn default() -> Self {
        ReadPump {
            buf: SlabBuf::default(),
            size: MIN_READ,
            idle: true,
        }
    }
}

impl ReadPump {
    /// The buffer the next read appends to, and how many bytes it asks for.
    pub fn room(&mut self) -> (&mut BytesMut, usize) {
        let buf = if self.idle {
            self.buf.with_idle_room()
        } else if self.size <= MIN_READ {
            self.buf.with_small_room(MIN_READ)
        } else {
            self.buf.with_room(READ_MAX / 4)
        };
        let want = self.size.min(buf.capacity() - buf.len());
        (buf, want)
    }

    /// A read that asked for `want` bytes appended `got` to the buffer from
    /// [`room`](Self::room): the bytes, or `None` if the link has ended
    /// (`got == 0`).
    pub fn filled(&mut self, want: usize, got: usize) -> Option<Bytes> {
        self.size = next_read_size(want, got);
        if got == 0 {
            return None;
        }
        // Pings, acknowledgements and small requests fit in the idle buffer;
        // a read that fills it is the start of real traffic.
        self.idle &= got < want;
        Some(self.buf.take_filled())
    }

    /// One blocking read from `reader`: the bytes, `None` once the link has
    /// ended. Interrupted reads are retried.
    pub fn read_from(&mut self, reader: &mut impl Read) -> io::Result<Option<Bytes>> {
        loop {
            let (buf, want) = self.room();
            let start = buf.len();
            buf.resize(start + want, 0);
            let result = reader.read(&mut buf[start..]);
            let got = *result.as_ref().unwrap_or(&0);
            buf.truncate(start + got);
            match result {
                Ok(got) => return Ok(self.filled(want, got)),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Whether the reads hold more than an idle link needs.
    pub fn is_grown(&self) -> bool {
        !self.idle || self.buf.holds_slab()
    }

    /// Back to idle reads, the slab to the waiting slabs (the session keeps
    /// the pieces of it it still holds): the link is quiet, or gone.
    pub fn release(&mut self) {
        *self = ReadPump::default();
    }

    /// A scratch buffer for reads whose bytes are dropped (lingering), and
    /// how much one asks for.
    pub(crate) fn scratch(&mut self) -> (&mut BytesMut, usize) {
        let scratch = self.buf.with_small_room(MIN_READ);
        scratch.clear();
        (scratch, MIN_READ)
    }
}

/// The next read's size after one of `asked` bytes returned `got`: a read that
/// came back full asks for twice as much next time, and one that came back
/// mostly empty for half.
fn next_read_size(asked: usize, got: usize) -> usize {
    if got >= asked {
        (asked * 2).min(READ_MAX)
    } else if got < asked / 4 {
        // Shrink gently: a bulk reader that caught up with its writer for one
        // read should not fall back to small reads.
        (asked / 2).max(MIN_READ)
    } else {
        asked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_tiny_and_grow_only_while_they_come_back_full() {
        let mut reads = ReadPump::default();
        let (buf, want) = reads.room();
        assert!(
            buf.capacity() <= crate::slab::IDLE_BUF,
            "an idle link reads into a tiny buffer"
        );
        buf.extend_from_slice(&vec![1; want / 2]);
        assert!(reads.filled(want, want / 2).is_some());
        assert!(
            !reads.is_grown(),
            "a read that did not fill the buffer keeps the link idle"
        );

        let (buf, want) = reads.room();
        buf.extend_from_slice(&vec![1; want]);
        reads.filled(want, want);
        let (_, next) = reads.room();
        assert!(next > want, "a full read asks for more next time");
        assert!(reads.is_grown());
        reads.release();
        assert!(!reads.is_grown(), "released reads are idle again");
    }

    #[test]
    fn a_read_of_nothing_is_the_end_of_the_link() {
        let mut reads = ReadPump::default();
        let mut empty: &[u8] = &[];
        assert_eq!(reads.read_from(&mut empty).expect("a slice never fails"), None);
        let mut some: &[u8] = b"abc";
        assert_eq!(
            reads.read_from(&mut some).expect("a slice never fails").as_deref(),
            Some(&b"abc"[..])
        );
    }

    #[test]
    fn input_for_a_link_the_session_left_is_stale() {
        let side = LinkSide::new(Role::Client, Config::default()).expect("valid config");
        let first = side.link_generation();
        Shared::lock(side.shared()).link_events.drop_link = true;
        assert_eq!(side.input(first, Instant::ZERO, Bytes::from_static(b"x")), Input::Stale);
        assert!(side.take_drop_link());
        assert_eq!(
            side.input(first, Instant::ZERO, Bytes::from_static(b"x")),
            Input::Stale,
            "once the cue is taken, the old link's reads are still stale"
        );
        let second = side.link_generation();
        assert_ne!(first, second);
        assert!(matches!(
            side.input(second, Instant::ZERO, Bytes::from_static(b"")),
            Input::Taken { .. }
        ));
    }
}

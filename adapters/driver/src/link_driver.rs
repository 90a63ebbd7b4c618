//! The link driver: one future per session that reads the link into the session,
//! writes the session's frames to the link (vectored, many frames per call), and
//! runs the session's timers.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use hawser_core::Role;

use crate::frames::{FrameQueue, MAX_SLICES};
use crate::link::{Link, LinkSource, Timer};
use crate::shared::{shared_clock, Shared, SharedRef};
use crate::slab::SlabBuf;

/// How many bytes one read asks for at most.
const READ_BUFFER: usize = crate::slab::SLAB;
/// How many bytes one read asks for at least.
const MIN_READ: usize = crate::slab::SMALL_BUF;
/// Batches smaller than this wait one scheduler turn before they are written.
const COALESCE: usize = 16 * 1024;
/// How many reads or writes one poll does before yielding to other tasks.
const OPS_PER_POLL: usize = 32;
/// A link that brought nothing for this long gives its read and write slabs
/// back (to the process-wide waiting slabs, see `slab`), reads into small buffers again
/// and lets its frame queue shrink: a thousand sessions that moved data once
/// and then sit idle should not each keep half a megabyte.
const QUIET: std::time::Duration = std::time::Duration::from_secs(1);
/// How long an ended session goes on reading its link, once it has shut its
/// sending side, for the peer to close its side too (see
/// [`LinkDriver::poll_linger`]).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Drives one session until it ends, over one link or, for a resumable session,
/// over each new link its [`LinkSource`] provides; resolves to the session's close
/// reason as an `io::Result`.
pub struct LinkDriver<L, T> {
    shared: SharedRef,
    link: Option<L>,
    source: Option<Box<dyn LinkSource<L> + Send>>,
    timer: T,
    read_buf: SlabBuf,
    /// How much the next read asks for: the buffer must be zeroed before a safe
    /// read, so small reads (request/response traffic) zero little, and a read
    /// that fills its slice doubles the next, up to `READ_BUFFER`.
    read_size: usize,
    /// Frames taken from the session and not yet fully written.
    out: FrameQueue,
    read_closed: bool,
    shut_down: bool,
    /// The session has ended and its last frames are out: until this time at
    /// the latest, the driver only reads and drops what the peer still sends.
    linger_until: Option<StdInstant>,
    /// Whether the current small batch already waited one turn for company.
    deferred: bool,
    /// The session's clock origin, so that a turn reads the clock once.
    epoch: StdInstant,
    /// The time at the start of this turn of the poll loop: reads and writes
    /// within one turn share it (a clock read is a measurable part of a round trip).
    turn_now: hawser_core::Instant,
    /// When a read last brought data.
    last_read: hawser_core::Instant,
    /// Whether the link is idle (new, or quiet for [`QUIET`]): its reads then
    /// wait with a tiny buffer (see `slab::IDLE_BUF`) until bytes come.
    idle_reads: bool,
    /// When to look next whether the link has been quiet for [`QUIET`]: set
    /// once per look, not moved by every read, so that a busy session does not
    /// re-arm its timer on each read; never earlier than `QUIET` after the
    /// last release.
    quiet_check: Option<StdInstant>,
}

impl<L: Link + Unpin, T: Timer + Unpin> LinkDriver<L, T> {
    /// A driver for `shared` over `link`.
    pub fn new(shared: SharedRef, link: L, timer: T) -> Self {
        let epoch = Shared::lock(&shared).epoch();
        LinkDriver {
            shared,
            link: Some(link),
            source: None,
            timer,
            read_buf: SlabBuf::default(),
            read_size: MIN_READ,
            out: FrameQueue::default(),
            read_closed: false,
            shut_down: false,
            linger_until: None,
            deferred: false,
            epoch,
            turn_now: hawser_core::Instant::ZERO,
            last_read: hawser_core::Instant::ZERO,
            idle_reads: true,
            quiet_check: None,
        }
    }

    /// A resumable session: when the link is lost, the next one comes from `source`
    /// (a client's reconnect loop, or the slot a server's acceptor fills).
    pub fn with_link_source(mut self, source: Box<dyn LinkSource<L> + Send>) -> Self {
        self.source = Some(source);
        self
    }

    /// Drops the link the session no longer uses, and looks for the next one.
    /// Returns whether the driver has a link to work with.
    fn manage_link(&mut self, cx: &mut Context<'_>) -> bool {
        // A session that cannot resume never swaps links: skip the lock.
        if self.source.is_none() {
            return self.link.is_some();
        }
        {
            let mut shared = Shared::lock(&self.shared);
            let dropped = std::mem::take(&mut shared.link_events.drop_link);
            let closed = shared.session_ref().is_closed();
            drop(shared);
            if dropped {
                self.release_link();
            }
            if self.link.is_some() || closed {
                return self.link.is_some();
            }
        }
        let Some(source) = self.source.as_mut() else {
            return false;
        };
        match source.poll_link(cx) {
            Poll::Pending => false,
            Poll::Ready(Some(link)) => {
                let mut shared = Shared::lock(&self.shared);
                let now = shared.now();
                if shared.session_ref().role() == Role::Client {
                    if let Err(err) = shared.attach_link(now) {
                        tracing::debug!(%err, "cannot attach the new link");
                        return false;
                    }
                }
                self.link = Some(link);
                self.read_closed = false;
                self.shut_down = false;
                true
            }
            Poll::Ready(None) => {
                Shared::lock(&self.shared).give_up();
                false
            }
        }
    }

    fn poll_reads(&mut self, cx: &mut Context<'_>) -> bool {
        for _ in 0..OPS_PER_POLL {
            if self.read_closed {
                return false;
            }
            let Some(link) = self.link.as_mut() else {
                return false;
            };
            // Reads land in recycled slabs (see `slab`), cut into the `Bytes`
            // the session keeps until the application reads them.
            let read_buf = if self.idle_reads {
                self.read_buf.with_idle_room()
            } else if self.read_size <= MIN_READ {
                self.read_buf.with_small_room(MIN_READ)
            } else {
                self.read_buf.with_room(READ_BUFFER / 4)
            };
            let want = self.read_size.min(read_buf.capacity() - read_buf.len());
            let n = match link.poll_read_buf(cx, read_buf, want) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => {
                    tracing::debug!(%err, "link read failed");
                    self.link_lost();
                    return false;
                }
                Poll::Pending => return false,
            };
            self.read_size = next_read_size(want, n);
            if n == 0 {
                tracing::debug!("link closed by the peer");
                self.link_lost();
                return false;
            }
            self.last_read = self.turn_now;
            // Pings, acknowledgements and small requests fit in the idle buffer;
            // a read that fills it is the start of real traffic.
            self.idle_reads &= n < want;
            let input = self.read_buf.take_filled();
            let mut shared = Shared::lock(&self.shared);
            if shared.link_events.drop_link {
                // Another thread resumed the session over a new link while this
                // read was under way: what the old link brought no longer counts
                // (the client sends it again from the offset it was told).
                return false;
            }
            shared.link_input(self.turn_now, input);
        }
        // Still more to read: come back after other tasks had a turn.
        cx.waker().wake_by_ref();
        true
    }

    fn link_lost(&mut self) {
        self.read_size = MIN_READ;
        self.read_closed = true;
        let mut shared = Shared::lock(&self.shared);
        if shared.link_events.drop_link {
            // The session has already left this link: it was resumed over a new
            // one while this read or write was under way (a takeover), or it
            // detached. This link's failure says nothing about the session, and
            // telling the session would detach it from the link it now uses.
            shared.link_events.drop_link = false;
            drop(shared);
            self.release_link();
            return;
        }
        let now = shared.now();
        shared.link_lost(now);
        self.out.clear();
        if shared.session_ref().is_detached() {
            // The session waits for a new link; this one is done.
            shared.link_events.drop_link = false;
            drop(shared);
            self.release_link();
        }
    }

    /// Lets go of the link and of the buffers it used: a detached session
    /// should cost little more than what it holds for its peer.
    fn release_link(&mut self) {
        self.link = None;
        self.out = FrameQueue::default();
        self.read_buf = SlabBuf::default();
        self.read_size = MIN_READ;
        self.idle_reads = true;
        self.read_closed = false;
    }

    /// Takes the session's frames; returns how many streams it has open.
    fn take_transmits(&mut self) -> usize {
        let mut shared = Shared::lock(&self.shared);
        if shared.link_events.drop_link {
            // The session has moved to a new link: its output is for that one.
            return shared.session_ref().stream_count();
        }
        shared.take_transmits(&mut self.out, self.turn_now);
        shared.session_ref().stream_count()
    }

    /// Writes what is queued; returns Ready(Err) when the link failed.
    fn poll_writes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        for _ in 0..OPS_PER_POLL {
            if self.link.is_none() {
                return Poll::Ready(Ok(()));
            }
            let streams = self.take_transmits();
            let Some(link) = self.link.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if self.out.is_empty() {
                return link.poll_flush(cx);
            }
            if !self.deferred && streams > 1 && self.out.len() < COALESCE {
                // A small batch waits one scheduler turn, so that frames the tasks
                // of other streams are about to queue share its system call. With
                // one stream there is nobody to wait for.
                self.deferred = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.deferred = false;
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.out.slices(&mut slices);
            let written = match link.poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            };
            self.out.advance(written);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let (session_deadline, write_slab) = {
            let shared = Shared::lock(&self.shared);
            let deadline = shared.session_ref().poll_timeout().map(|at| shared.to_std(at));
            (deadline, shared.holds_write_slab())
        };
        let grown = write_slab || !self.idle_reads || self.read_buf.holds_slab() || self.out.is_grown();
        let last_read = self.epoch + self.last_read.since_origin();
        let quiet_deadline = grown.then(|| *self.quiet_check.get_or_insert(last_read + QUIET));
        let deadline = match (session_deadline, quiet_deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => return false,
        };
        if self.timer.poll_until(cx, deadline).is_pending() {
            return false;
        }
        let now = StdInstant::now();
        if quiet_deadline.is_some_and(|at| now >= at) {
            let quiet_since = last_read + QUIET;
            self.quiet_check = Some(if now >= quiet_since {
                self.release_idle_buffers();
                // What could not go yet (frames still queued for a full socket)
                // is looked at again a whole `QUIET` later: a check due at once
                // would fire on every turn and spin the driver.
                now + QUIET
            } else {
                // Reads since the check was set move the next one on instead.
                quiet_since
            });
        }
        if session_deadline.is_some_and(|at| now >= at) {
            let mut shared = Shared::lock(&self.shared);
            let now = shared.now();
            shared.run_timers(now);
        }
        true
    }

    /// After the session has ended and the sending side is shut: reads and
    /// drops what the peer still sends until it closes its side, or for
    /// [`LINGER`]. Until the peer has read the end of every stream it still
    /// sends window updates; a socket closed for reading would answer them with
    /// a reset, and a reset throws away what the peer has not read yet.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let until = *self.linger_until.get_or_insert_with(|| StdInstant::now() + LINGER);
        for _ in 0..OPS_PER_POLL {
            if self.read_closed {
                return Poll::Ready(());
            }
            let Some(link) = self.link.as_mut() else {
                return Poll::Ready(());
            };
            let scratch = self.read_buf.with_small_room(MIN_READ);
            scratch.clear();
            match link.poll_read_buf(cx, scratch, MIN_READ) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.read_closed = true;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return self.timer.poll_until(cx, until),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The link has been quiet for [`QUIET`]: back to idle reads, the slabs
    /// to the waiting slabs (the session keeps the pieces of them it still holds), and
    /// an empty frame queue back to its first size.
    fn release_idle_buffers(&mut self) {
        tracing::trace!("quiet link: buffers released");
        self.read_buf = SlabBuf::default();
        self.read_size = MIN_READ;
        self.idle_reads = true;
        self.out.shrink_when_empty();
        Shared::lock(&self.shared).release_write_slab();
        crate::slab::trim_when_quiet();
    }
}

impl<L: Link + Unpin, T: Timer + Unpin> Future for LinkDriver<L, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger_until.is_some() {
            return this.finish_lingering(cx);
        }
        Shared::lock(&this.shared).register_driver(cx.waker());
        loop {
            this.turn_now = shared_clock(this.epoch, StdInstant::now());
            if this.manage_link(cx) {
                this.poll_reads(cx);
                let write_result = this.poll_writes(cx);
                if let Poll::Ready(Err(err)) = write_result {
                    tracing::debug!(%err, "link write failed");
                    this.link_lost();
                }
            }
            // Losing the link may have brought the next one already.
            let relinked = this.link.is_none() && this.manage_link(cx);
            let fired = this.poll_timer(cx);
            let closed = Shared::lock(&this.shared).session_ref().is_closed();
            if closed && this.out.is_empty() && !this.read_closed && this.link.is_some() {
                // A command on another thread may have ended the session after
                // this turn took its frames: its last frames (the go-away) go out
                // before the link is shut.
                this.take_transmits();
                if !this.out.is_empty() {
                    continue;
                }
            }
            if closed && (this.out.is_empty() || this.read_closed || this.link.is_none()) {
                // Everything the session had to say (a final go-away) is out.
                if !this.shut_down && !this.read_closed {
                    if let Some(link) = this.link.as_mut() {
                        match link.poll_shutdown(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(_) => this.shut_down = true,
                        }
                    }
                }
                // The session is over for everyone waiting on it; the link
                // lingers only for the peer's sake.
                Shared::lock(&this.shared).note_driver_finished();
                return this.finish_lingering(cx);
            }
            if !fired && !relinked {
                return Poll::Pending;
            }
        }
    }
}

impl<L: Link + Unpin, T: Timer + Unpin> LinkDriver<L, T> {
    /// Lingers (see [`LinkDriver::poll_linger`]), then lets go of the link and
    /// resolves to why the session ended.
    fn finish_lingering(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.poll_linger(cx).is_pending() {
            return Poll::Pending;
        }
        self.link = None;
        let reason = Shared::lock(&self.shared).session_ref().close_reason();
        Poll::Ready(match reason {
            None => Ok(()),
            Some(err) => Err(err.into()),
        })
    }
}

impl<L, T> Drop for LinkDriver<L, T> {
    fn drop(&mut self) {
        // Dropped unfinished (its task was cancelled): nothing more will go out
        // either way, so whoever waits for the end must not wait forever.
        Shared::lock(&self.shared).note_driver_finished();
    }
}

/// The next read's size after one of `asked` bytes returned `got`: reads must
/// zero their buffer first (no unsafe here), so a read that came back full asks
/// for twice as much next time, and one that came back mostly empty for half.
pub fn next_read_size(asked: usize, got: usize) -> usize {
    if got >= asked {
        (asked * 2).min(READ_BUFFER)
    } else if got < asked / 4 {
        // Shrink gently: a bulk reader that caught up with its writer for one
        // read should not fall back to small reads.
        (asked / 2).max(MIN_READ)
    } else {
        asked
    }
}

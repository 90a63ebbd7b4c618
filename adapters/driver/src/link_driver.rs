//! The link driver: one future per session that reads the link into the session,
//! writes the session's frames to the link (vectored, many frames per call), and
//! runs the session's timers.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use crate::frames::{FrameQueue, MAX_SLICES};
use crate::link::{Link, LinkSource, Timer};
use crate::pump::{Input, LinkGeneration, LinkSide, ReadPump, LINGER};
use crate::shared::shared_clock;

/// Batches smaller than this wait one scheduler turn before they are written.
const COALESCE: usize = 16 * 1024;
/// How many reads or writes one poll does before yielding to other tasks.
const OPS_PER_POLL: usize = 32;
/// A link that brought nothing for this long gives its read and write slabs
/// back (to the process-wide waiting slabs, see `slab`), reads into small buffers again
/// and lets its frame queue shrink: a thousand sessions that moved data once
/// and then sit idle should not each keep half a megabyte.
const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// Drives one session until it ends, over one link or, for a resumable session,
/// over each new link its [`LinkSource`] provides; resolves to the session's close
/// reason as an `io::Result`.
pub struct LinkDriver<L, T> {
    side: LinkSide,
    link: Option<L>,
    /// Which of the session's links `link` is.
    generation: LinkGeneration,
    /// Whether the source is dialling ahead of a suspect link.
    dialling_ahead: bool,
    source: Option<Box<dyn LinkSource<L> + Send>>,
    timer: T,
    reads: ReadPump,
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
    /// When to look next whether the link has been quiet for [`QUIET`]: set
    /// once per look, not moved by every read, so that a busy session does not
    /// re-arm its timer on each read; never earlier than `QUIET` after the
    /// last release.
    quiet_check: Option<StdInstant>,
}

impl<L: Link + Unpin, T: Timer + Unpin> LinkDriver<L, T> {
    /// A driver for `side`'s session over `link`.
    pub(crate) fn new(side: LinkSide, link: L, timer: T) -> Self {
        let epoch = side.epoch();
        let generation = side.link_generation();
        LinkDriver {
            side,
            link: Some(link),
            generation,
            dialling_ahead: false,
            source: None,
            timer,
            reads: ReadPump::default(),
            out: FrameQueue::default(),
            read_closed: false,
            shut_down: false,
            linger_until: None,
            deferred: false,
            epoch,
            turn_now: hawser_core::Instant::ZERO,
            last_read: hawser_core::Instant::ZERO,
            quiet_check: None,
        }
    }

    /// A new session for `role` over `link`, its timers on `timer`: the
    /// driver to poll and the session's control handle. For running a
    /// session without a [`Runtime`](crate::Runtime), inside another
    /// library's poll loop (hawser-libp2p's muxer polls the driver from
    /// `StreamMuxer::poll`). Nothing moves until the driver is polled.
    pub fn with_session(
        link: L,
        timer: T,
        config: hawser_core::Config,
        role: hawser_core::Role,
    ) -> io::Result<(Self, crate::ControlCore)> {
        let shared =
            crate::shared::Shared::new(role, config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let control = crate::ControlCore::new(shared.clone());
        Ok((LinkDriver::new(LinkSide::from_shared(shared), link, timer), control))
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
        let state = self.side.link_state();
        if state.dropped {
            self.release_link();
        }
        if self.link.is_some() {
            self.make_before_break(cx, state.suspect && !state.closed);
            return self.link.is_some();
        }
        if state.closed {
            return false;
        }
        let Some(source) = self.source.as_mut() else {
            return false;
        };
        match source.poll_link(cx) {
            Poll::Pending => false,
            Poll::Ready(Some(link)) => {
                if !self.side.attach(self.turn_now) {
                    return false;
                }
                self.link = Some(link);
                self.generation = self.side.link_generation();
                self.read_closed = false;
                self.shut_down = false;
                true
            }
            Poll::Ready(None) => {
                self.side.give_up();
                false
            }
        }
    }

    /// While the link is suspect, a fresh link from the source takes over
    /// from it: the session lets the old link go and resumes on the new one.
    /// When the link makes progress again, the early dials stop.
    fn make_before_break(&mut self, cx: &mut Context<'_>, suspect: bool) {
        let Some(source) = self.source.as_mut() else {
            return;
        };
        if !suspect {
            if std::mem::take(&mut self.dialling_ahead) {
                source.cancel_early();
            }
            return;
        }
        self.dialling_ahead = true;
        let Poll::Ready(Some(fresh)) = source.poll_early_link(cx) else {
            return;
        };
        self.dialling_ahead = false;
        let now = self.turn_now;
        // The old link is given up as lost: the session detaches from it (its
        // unacknowledged tail waits for replay) and the driver drops it.
        if self.side.lose(self.generation, now) {
            self.release_link();
        }
        if self.link.is_none() && self.side.attach(now) {
            tracing::info!("suspect link replaced by a fresh one");
            self.link = Some(fresh);
            self.generation = self.side.link_generation();
            self.read_closed = false;
            self.shut_down = false;
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
            let (buf, want) = self.reads.room();
            let got = match link.poll_read_buf(cx, buf, want) {
                Poll::Ready(Ok(got)) => got,
                Poll::Ready(Err(err)) => {
                    tracing::debug!(%err, "link read failed");
                    self.link_lost();
                    return false;
                }
                Poll::Pending => return false,
            };
            let Some(input) = self.reads.filled(want, got) else {
                tracing::debug!("link closed by the peer");
                self.link_lost();
                return false;
            };
            self.last_read = self.turn_now;
            match self.side.input(self.generation, self.turn_now, input) {
                // This task is the writer: it looks at the session next anyway.
                Input::Taken { .. } => {}
                // Stale: the session was resumed over a new link while this
                // read was under way. Ended: only lingering reads are left.
                Input::Stale | Input::Ended => return false,
            }
        }
        // Still more to read: come back after other tasks had a turn.
        cx.waker().wake_by_ref();
        true
    }

    fn link_lost(&mut self) {
        self.read_closed = true;
        // A link the session had already left (it was resumed over a new one
        // while this read or write was under way) changes nothing here.
        self.out.clear();
        if self.side.lose(self.generation, self.turn_now) {
            // The session waits for a new link, or has one: this one is done.
            self.release_link();
        }
    }

    /// Lets go of the link and of the buffers it used: a detached session
    /// should cost little more than what it holds for its peer.
    fn release_link(&mut self) {
        self.link = None;
        self.out = FrameQueue::default();
        self.reads.release();
        self.read_closed = false;
    }

    /// Takes the session's frames; returns how many streams it has open.
    fn take_transmits(&mut self) -> usize {
        // `None`: the session has moved to a new link, its output is for that one.
        self.side.take_transmits(&mut self.out, self.turn_now).unwrap_or(0)
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
        let (session_deadline, write_slab) = self.side.timer_and_write_slab();
        let grown = write_slab || self.reads.is_grown() || self.out.is_grown();
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
            self.side.run_timers(shared_clock(self.epoch, now));
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
            let (scratch, want) = self.reads.scratch();
            match link.poll_read_buf(cx, scratch, want) {
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
        self.reads.release();
        self.out.shrink_when_empty();
        self.side.release_write_slab();
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
        this.side.register_driver(cx.waker());
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
            let closed = this.side.is_closed();
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
                this.side.finished();
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
        self.side.released();
        let reason = self.side.close_reason();
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
        self.side.released();
    }
}

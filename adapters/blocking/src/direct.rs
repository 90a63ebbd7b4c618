//! Writes from the calling thread: when a stream operation queues frames and
//! the session's writer thread is idle, the caller writes them to the link
//! itself, instead of waking the writer and waiting for it to be scheduled.
//! A request/response round trip then crosses one thread hand-off per
//! direction (the reader waking the caller) instead of two.
//!
//! Every write to the link goes through one [`Outbox`] behind a mutex, so
//! frames leave in the order the session produced them whoever writes them.
//! The lock order is outbox first, then the session: nothing locks the outbox
//! while holding the session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

use hawser_driver::{FrameQueue, LinkSide};

use crate::link::BlockingLink;
use crate::wait::Signal;

/// The most a caller writes itself. More than this is left to the writer
/// thread, so that a caller's write does not wait on a full link for long.
const DIRECT_MAX: usize = 64 * 1024;

/// The link's write side and what waits to be written to it.
pub(crate) struct Outbox<L> {
    /// The current link; `None` while a resumable session has none.
    pub(crate) link: Option<L>,
    /// Frames taken from the session and not yet written.
    pub(crate) out: FrameQueue,
}

/// How many reader threads a session runs: at most one, but for a moment
/// while a resumed session's old reader notices it has been replaced. An
/// ended session's writer waits for them to finish lingering.
#[derive(Default)]
pub(crate) struct Readers {
    running: AtomicUsize,
}

impl Readers {
    pub(crate) fn started(&self) {
        self.running.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn ended(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
}

/// A session's outbox, shared by its writer thread and by callers.
pub(crate) struct Direct<L> {
    outbox: Mutex<Outbox<L>>,
    side: LinkSide,
    readers: Arc<Readers>,
    /// The writer thread's waker, registered again after a direct write took
    /// the session's driver waker.
    waker: Waker,
}

impl<L: BlockingLink> Direct<L> {
    /// An outbox for `link`, whose writer waits on `signal`.
    pub(crate) fn new(side: LinkSide, link: Option<L>, signal: &Arc<Signal>, readers: Arc<Readers>) -> Arc<Self> {
        Arc::new(Direct {
            outbox: Mutex::new(Outbox {
                link,
                out: FrameQueue::default(),
            }),
            side,
            readers,
            waker: Waker::from(signal.clone()),
        })
    }

    /// What a stream of this session needs to wake the writer its own way.
    pub(crate) fn writer_wake(self: &Arc<Self>, signal: &Arc<Signal>) -> WriterWake {
        let direct: Arc<dyn DirectWrite> = self.clone();
        WriterWake {
            direct: Arc::downgrade(&direct),
            signal: signal.clone(),
            waker: self.waker.clone(),
        }
    }

    /// The writer thread's waker.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// The session's reader threads.
    pub(crate) fn readers(&self) -> &Arc<Readers> {
        &self.readers
    }

    /// Locks the outbox, waiting for a caller that is writing.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbox<L>> {
        // A panic while writing leaves at worst a partly written queue, which
        // the link's failure or the next write deals with.
        self.outbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a stream asks of the outbox when its operation gave the writer work.
pub(crate) trait DirectWrite: Send + Sync {
    /// Writes what the session has to send on the calling thread, if the
    /// writer thread is idle and it is little; `true` if the writer thread
    /// need not be woken.
    fn write_now(&self) -> bool;
}

impl<L: BlockingLink> DirectWrite for Direct<L> {
    fn write_now(&self) -> bool {
        let Ok(mut outbox) = self.outbox.try_lock() else {
            // The writer thread (or another caller) is writing: it takes these
            // frames too once woken.
            return false;
        };
        let Outbox { link, out } = &mut *outbox;
        let Some(link) = link.as_mut() else {
            return false;
        };
        if !out.is_empty() {
            // The writer thread is between two writes of a stalled link.
            return false;
        }
        if !self.side.take_for_caller(out, &self.waker) {
            // More than one batch to send, or a timer the writer would sleep
            // past: the writer writes these frames too.
            return false;
        }
        if out.is_empty() {
            return true;
        }
        if out.len() > DIRECT_MAX {
            return false;
        }
        // A failed write: the writer thread retries, and handles a failed link.
        out.write_once(link).is_ok() && out.is_empty() && link.flush().is_ok()
    }
}

/// How a stream's operations wake their session's writer: a write, flush or
/// finish leaves the writer's wake-up to the stream (the session's
/// `StreamCore::defer_driver_wakes`), which then writes the frames itself if
/// the writer is idle, and wakes the writer otherwise. The
/// stream holds this and acts on what its operation handed over.
#[derive(Clone)]
pub(crate) struct WriterWake {
    direct: Weak<dyn DirectWrite>,
    signal: Arc<Signal>,
    /// The writer thread's waker: a wake-up taken from the session is this
    /// one unless the session waits in an acceptor's parking lot.
    waker: Waker,
}

impl WriterWake {
    /// Acts on the driver wake-up `taken` from the session: writes directly
    /// if the writer is idle and the frames are few, otherwise wakes the
    /// writer (or, for a parked session, the parking lot).
    pub(crate) fn act(&self, taken: Waker) {
        if !taken.will_wake(&self.waker) {
            taken.wake();
            return;
        }
        if let Some(direct) = self.direct.upgrade() {
            if direct.write_now() {
                return;
            }
        }
        self.signal.raise();
    }
}

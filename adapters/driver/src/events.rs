//! The events an application can watch: a bounded queue with the waker of the
//! task waiting for the next one (link events and health events both use it),
//! and the link events of a resumable session.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

/// At most this many events wait to be taken; older ones are dropped.
pub(crate) const MAX_EVENTS: usize = 64;

pub(crate) struct EventQueue<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            queue: VecDeque::new(),
            waker: None,
        }
    }
}

impl<T> EventQueue<T> {
    /// Queues `event` (dropping the oldest when full) and wakes the waiter.
    pub(crate) fn push(&mut self, event: T) {
        if self.queue.len() == MAX_EVENTS {
            self.queue.pop_front();
        }
        self.queue.push_back(event);
        self.wake();
    }

    /// The next event; `None` once `closed` and none are left.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>, closed: bool) -> Poll<Option<T>> {
        if let Some(event) = self.queue.pop_front() {
            return Poll::Ready(Some(event));
        }
        if closed {
            return Poll::Ready(None);
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Wakes the waiter, to see that the session ended.
    pub(crate) fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.queue.drain(..)
    }
}

/// What happened to a resumable session's link, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link failed; the session is detached and its streams wait.
    Lost,
    /// Client: dialling a new link, attempt `attempt` (from 1) since the loss.
    Reconnecting {
        /// Which attempt.
        attempt: u32,
    },
    /// The session continues over a new link.
    Resumed {
        /// Bytes this side sent again.
        replayed: u64,
    },
    /// Client: the retry policy is exhausted; the session has ended.
    GaveUp,
    /// The session has ended; the last event. `reason` is why: `None` for an
    /// orderly end (a go-away from either side, or the last handle dropped, and
    /// the streams drained); `SessionError::LocallyClosed(code)` after
    /// `close(code)`, even with `GoAwayCode::NORMAL` (a close cuts the streams
    /// short); `SessionError::Expired` when no new link resumed it within
    /// `detached_timeout`; `SessionError::ResumeRefused` when the server could
    /// not resume it (it restarted, or forgot the session). The same reason
    /// as `closed()` gives. Build a new session for new work.
    Ended {
        /// Why the session ended.
        reason: Option<hawser_core::SessionError>,
    },
}

/// Link events queued for the application, and the driver's cues.
#[derive(Default)]
pub(crate) struct LinkEvents {
    events: EventQueue<LinkEvent>,
    /// The driver must drop its link (the session detached or a resume attempt
    /// on it failed).
    pub(crate) drop_link: bool,
    /// Counts the links the driver has let go of: a link's reads count only
    /// while it is the current one (see `LinkSide::input`).
    pub(crate) link_generation: u64,
    /// Reconnect attempts made, in all.
    pub(crate) reconnects: u64,
}

impl LinkEvents {
    pub(crate) fn push(&mut self, event: LinkEvent) {
        self.events.push(event);
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>, closed: bool) -> Poll<Option<LinkEvent>> {
        self.events.poll_next(cx, closed)
    }

    pub(crate) fn wake(&mut self) {
        self.events.wake();
    }
}

//! A bounded queue of events for the application, with the waker of the task
//! waiting for the next one: link events and health events both use it.

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

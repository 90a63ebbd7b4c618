//! The tasks waiting to open a stream, in the order they started waiting.
//!
//! When a limit frees one place (an acknowledgement, a released stream), only
//! the longest-waiting task is woken; if its open succeeds it wakes the next,
//! so a burst of places is used by as many tasks, while a burst of N waiting
//! opens costs O(N) wakes in all rather than N for every acknowledgement.

use std::collections::{HashMap, VecDeque};
use std::task::Waker;

/// A waiting task's place in the queue: kept by its open future.
pub type Place = Option<u64>;

/// Waiting opens: an order of places and the waker of each place still
/// waiting (a place whose waker is gone was woken, or left).
#[derive(Default)]
pub(crate) struct OpenQueue {
    order: VecDeque<u64>,
    wakers: HashMap<u64, Waker>,
    next: u64,
}

impl OpenQueue {
    /// Queues the task holding `place`, or refreshes its waker if it is
    /// queued already (a task polled again does not queue twice).
    pub(crate) fn register(&mut self, place: &mut Place, waker: &Waker) {
        if let Some(queued) = place.and_then(|t| self.wakers.get_mut(&t)) {
            if !queued.will_wake(waker) {
                queued.clone_from(waker);
            }
            return;
        }
        let t = self.next;
        self.next += 1;
        self.order.push_back(t);
        self.wakers.insert(t, waker.clone());
        *place = Some(t);
        // Tickets that left without being woken stay in the order until they
        // reach its front; keep them from piling up.
        if self.order.len() > 2 * self.wakers.len() + 16 {
            let wakers = &self.wakers;
            self.order.retain(|t| wakers.contains_key(t));
        }
    }

    /// Wakes the longest-waiting task, if any.
    pub(crate) fn wake_next(&mut self) {
        while let Some(t) = self.order.pop_front() {
            if let Some(waker) = self.wakers.remove(&t) {
                waker.wake();
                return;
            }
        }
    }

    /// Wakes every waiting task (the session went away or ended: each learns
    /// it cannot open).
    pub(crate) fn wake_all(&mut self) {
        self.order.clear();
        for (_, waker) in self.wakers.drain() {
            waker.wake();
        }
    }

    /// The task holding `place` opened its stream: it no longer waits.
    pub(crate) fn opened(&mut self, place: &mut Place) {
        if let Some(t) = place.take() {
            self.wakers.remove(&t);
        }
    }

    /// The task holding `place` stopped waiting without opening. If it had
    /// been woken and not yet acted on it, its turn passes to the next.
    pub(crate) fn leave(&mut self, place: &mut Place) {
        if let Some(t) = place.take() {
            if self.wakers.remove(&t).is_none() {
                self.wake_next();
            }
        }
    }

    /// Tasks waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.wakers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::Relaxed)
    }

    /// A queue with two tasks waiting, first `a` then `b`: their wake counts
    /// and places.
    fn two_waiting(queue: &mut OpenQueue) -> (Arc<Count>, Arc<Count>, Place, Place) {
        let (first, first_waker) = waker();
        let (second, second_waker) = waker();
        let (mut a, mut b) = (None, None);
        queue.register(&mut a, &first_waker);
        queue.register(&mut b, &second_waker);
        queue.register(&mut a, &first_waker);
        (first, second, a, b)
    }

    #[test]
    fn one_place_wakes_the_longest_waiting_task_only() {
        let mut queue = OpenQueue::default();
        let (first, second, mut a, _b) = two_waiting(&mut queue);
        assert_eq!(queue.len(), 2, "polled again, queued once");
        queue.wake_next();
        assert_eq!((woken(&first), woken(&second)), (1, 0));
        queue.opened(&mut a);
        queue.wake_next();
        assert_eq!((woken(&first), woken(&second)), (1, 1));
    }

    #[test]
    fn a_woken_task_that_leaves_passes_its_turn_on() {
        let mut queue = OpenQueue::default();
        let (first, second, mut a, _b) = two_waiting(&mut queue);
        queue.wake_next();
        queue.leave(&mut a);
        assert_eq!((woken(&first), woken(&second)), (1, 1));
        // One that leaves before it was woken passes nothing on.
        let (third, third_waker) = waker();
        let mut c = None;
        queue.register(&mut c, &third_waker);
        queue.leave(&mut c);
        assert_eq!(woken(&third), 0);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn tasks_that_come_and_go_do_not_pile_up() {
        let mut queue = OpenQueue::default();
        let (_, waker) = waker();
        for _ in 0..10_000 {
            let mut place = None;
            queue.register(&mut place, &waker);
            queue.leave(&mut place);
        }
        assert!(queue.order.len() <= 16, "{} stale places", queue.order.len());
    }
}

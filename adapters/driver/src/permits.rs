//! A counting semaphore without a runtime: how many tasks of one kind may be
//! in hand at once (requests being served, links being opened).

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

struct Inner {
    free: usize,
    waiting: Vec<Waker>,
}

/// `n` permits; [`acquire`](Permits::acquire) waits while none is free.
#[derive(Clone)]
pub(crate) struct Permits {
    inner: Arc<Mutex<Inner>>,
}

/// One permit, handed back when dropped (however the task holding it ends).
pub(crate) struct Permit {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // The counter stays consistent whatever panicked while holding the lock.
    inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Permits {
    pub(crate) fn new(n: usize) -> Self {
        Permits {
            inner: Arc::new(Mutex::new(Inner {
                free: n.max(1),
                waiting: Vec::new(),
            })),
        }
    }

    /// A permit, once one is free. Cancel-safe: a permit is taken only when
    /// returned.
    pub(crate) async fn acquire(&self) -> Permit {
        poll_fn(|cx| {
            let mut inner = lock(&self.inner);
            if inner.free > 0 {
                inner.free -= 1;
                return Poll::Ready(Permit {
                    inner: self.inner.clone(),
                });
            }
            if !inner.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                inner.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waiting = {
            let mut inner = lock(&self.inner);
            inner.free += 1;
            std::mem::take(&mut inner.waiting)
        };
        // Every waiter looks again; those that find none free wait anew.
        waiting.into_iter().for_each(Waker::wake);
    }
}

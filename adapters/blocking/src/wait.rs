//! Waiting without busy-looping: wakers that unpark a thread or signal a condvar.

use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use std::io;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a poll function on the calling thread until it is ready, parking in
/// between; fails with `TimedOut` once `timeout` has passed.
pub(crate) fn block_on_poll<T>(
    timeout: Option<Duration>,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<io::Result<T>>,
) -> io::Result<T> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if let Poll::Ready(result) = poll(&mut cx) {
            return result;
        }
        match deadline {
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "stream operation timed out"));
                }
                thread::park_timeout(at - now);
            }
            None => thread::park(),
        }
    }
}

/// A flag a waker sets and a thread waits on.
#[derive(Default)]
pub(crate) struct Signal {
    raised: Mutex<bool>,
    condvar: Condvar,
}

impl Signal {
    /// Wakes the thread waiting on this signal.
    pub(crate) fn raise(&self) {
        *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.condvar.notify_one();
    }

    /// Waits until raised or `deadline`, then lowers the flag.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) {
        let mut raised = self.raised.lock().unwrap_or_else(|p| p.into_inner());
        while !*raised {
            match deadline {
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        break;
                    }
                    raised = self
                        .condvar
                        .wait_timeout(raised, at - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None => raised = self.condvar.wait(raised).unwrap_or_else(|p| p.into_inner()),
            }
        }
        *raised = false;
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
    }
}

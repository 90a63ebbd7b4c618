//! Waiting without busy-looping: wakers that unpark a thread or signal a condvar.

use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use std::io;

use crate::direct::{defer, DirectWrite};

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
    /// A writer thread's signal: the outbox a caller may write through
    /// instead of waking it (see `direct`).
    direct: OnceLock<Weak<dyn DirectWrite>>,
}

impl Signal {
    /// Makes this the signal of the writer thread of `direct`'s outbox.
    pub(crate) fn attach_direct(&self, direct: Weak<dyn DirectWrite>) {
        // A signal serves one writer for its whole life: a second call has
        // nothing to change.
        let _ = self.direct.set(direct);
    }

    /// Acts on a wake-up a caller deferred: writes directly if it can,
    /// otherwise wakes the writer thread.
    pub(crate) fn write_or_raise(&self) {
        if let Some(direct) = self.direct.get().and_then(Weak::upgrade) {
            if direct.write_now() {
                return;
            }
        }
        self.raise();
    }

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
        if self.direct.get().is_some() && defer(self) {
            return;
        }
        self.raise();
    }
}

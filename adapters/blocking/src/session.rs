//! The blocking session: two threads per link, and blocking operations.

use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::task::Waker;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::BytesMut;
use hawser_core::{Config, Role};
use hawser_driver::{ControlCore, FrameQueue, Shared, SharedRef, MAX_SLICES};

use crate::link::BlockingLink;
use crate::stream::Stream;
use crate::wait::{block_on_poll, Signal};

const READ_BUFFER: usize = 256 * 1024;

/// A multiplexed session over one blocking link. It derefs to [`ControlCore`] for
/// go-away, close, ping, health and counters.
pub struct Session {
    control: ControlCore,
    threads: Vec<JoinHandle<()>>,
}

impl Session {
    /// A session as the dialling side (odd stream ids).
    pub fn client<L: BlockingLink>(link: L, config: Config) -> io::Result<Session> {
        Self::new(link, config, Role::Client)
    }

    /// A session as the accepting side (even stream ids).
    pub fn server<L: BlockingLink>(link: L, config: Config) -> io::Result<Session> {
        Self::new(link, config, Role::Server)
    }

    /// A session for `role` over `link`; starts its reader and writer threads.
    pub fn new<L: BlockingLink>(link: L, config: Config, role: Role) -> io::Result<Session> {
        let shared = Shared::new(role, config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let reader = link.try_clone()?;
        let signal = Arc::new(Signal::default());
        let reader_thread = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("hawser-reader".into())
                .spawn(move || read_loop(shared, reader))?
        };
        let writer_thread = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("hawser-writer".into())
                .spawn(move || write_loop(shared, link, signal))?
        };
        Ok(Session {
            control: ControlCore::new(shared),
            threads: vec![reader_thread, writer_thread],
        })
    }

    /// Opens a stream, blocking while a limit is reached.
    pub fn open_stream(&self) -> io::Result<Stream> {
        let id = block_on_poll(None, |cx| self.control.poll_open(cx))?;
        Ok(Stream::new(self.control.shared().clone(), id))
    }

    /// The next inbound stream, blocking until one arrives; `None` once the session
    /// is closed or draining and no more will come.
    pub fn accept(&self) -> Option<Stream> {
        self.accept_timeout(None).ok().flatten()
    }

    /// Like [`accept`](Self::accept), giving up with `TimedOut` after `timeout`.
    pub fn accept_timeout(&self, timeout: Option<Duration>) -> io::Result<Option<Stream>> {
        let id = block_on_poll(timeout, |cx| self.control.poll_accept(cx).map(Ok))?;
        Ok(id.map(|id| Stream::new(self.control.shared().clone(), id)))
    }

    /// Waits until the session has ended and both threads have stopped.
    pub fn join(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl std::ops::Deref for Session {
    type Target = ControlCore;

    fn deref(&self) -> &ControlCore {
        &self.control
    }
}

fn read_loop<L: BlockingLink>(shared: SharedRef, mut link: L) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    loop {
        if buf.capacity() < READ_BUFFER / 4 {
            buf = BytesMut::with_capacity(READ_BUFFER);
        }
        let spare = buf.capacity();
        buf.resize(spare, 0);
        let result = link.read(&mut buf);
        let n = match result {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                buf.clear();
                continue;
            }
            Err(err) => {
                tracing::debug!(%err, "link read failed");
                0
            }
        };
        buf.truncate(n);
        let mut guard = Shared::lock(&shared);
        let now = guard.now();
        if n == 0 {
            guard.session().handle_link_lost(now);
            guard.dispatch_events();
            guard.wake_driver();
            return;
        }
        guard.session().handle_input(now, buf.split().freeze());
        guard.dispatch_events();
        guard.wake_driver();
        if guard.session_ref().is_closed() {
            return;
        }
    }
}

fn write_loop<L: BlockingLink>(shared: SharedRef, mut link: L, signal: Arc<Signal>) {
    let waker = Waker::from(signal.clone());
    let mut out = FrameQueue::default();
    loop {
        let (deadline, closed) = {
            let mut guard = Shared::lock(&shared);
            let now = guard.now();
            if guard.session_ref().poll_timeout().is_some_and(|at| at <= now) {
                guard.session().handle_timeout(now);
            }
            out.fill(guard.session(), now);
            guard.dispatch_events();
            guard.wake_flushed();
            guard.register_driver(&waker);
            let deadline = guard.session_ref().poll_timeout().map(|at| guard.to_std(at));
            (deadline, guard.session_ref().is_closed())
        };
        if !out.is_empty() {
            if let Err(err) = write_all_vectored(&mut link, &mut out) {
                tracing::debug!(%err, "link write failed");
                let mut guard = Shared::lock(&shared);
                let now = guard.now();
                guard.session().handle_link_lost(now);
                guard.dispatch_events();
                drop(guard);
                let _ = link.shutdown();
                return;
            }
            continue;
        }
        if closed {
            let _ = link.flush();
            // Unblocks the reader thread too.
            let _ = link.shutdown();
            return;
        }
        signal.wait_until(deadline);
    }
}

fn write_all_vectored<W: Write>(link: &mut W, out: &mut FrameQueue) -> io::Result<()> {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = out.slices(&mut slices);
        match link.write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.advance(n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    link.flush()
}

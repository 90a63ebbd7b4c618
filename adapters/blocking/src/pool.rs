//! A pool of sessions to one service, for threads: the same policy as the
//! async adapters' pools (hawser-driver's `session_pool`), its upkeep and dials
//! on threads of their own, its waits on one timer thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};
use std::thread;
use std::time::Instant;

use hawser_driver::session_pool::{Condition, PoolConfig, PoolHandle, PoolMember, PoolRuntime, PoolStats, StreamSlot};
use hawser_driver::ControlCore;

use crate::session::Session;
use crate::stream::Stream;
use crate::wait::block_on_poll;

/// A pooled session, shared by the pool and its watch.
#[derive(Clone)]
struct Pooled(Arc<Session>);

impl PoolMember for Pooled {
    fn condition(&self) -> Condition {
        PoolMember::condition(&**self.0)
    }
}

type Dial = Arc<dyn Fn() -> io::Result<Session> + Send + Sync>;

#[derive(Clone)]
struct Threads {
    dial: Dial,
}

impl PoolRuntime for Threads {
    type Session = Pooled;
    type Stream = Stream;

    async fn dial(&self) -> io::Result<(Pooled, ControlCore)> {
        // On a thread of its own, so that the pool's dial timeout can give up
        // on a dial that blocks.
        let dial = self.dial.clone();
        let session = on_thread(move || dial()).await?;
        let control = (*session).clone();
        Ok((Pooled(Arc::new(session)), control))
    }

    fn open(session: &Pooled) -> impl Future<Output = io::Result<Stream>> + Send {
        let session = session.0.clone();
        async move {
            let mut wait = session.open_wait();
            poll_fn(|cx| wait.poll(cx)).await.map(|core| session.stream(core))
        }
    }

    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        let spawned = thread::Builder::new().name("hawser-pool".into()).spawn(move || {
            let mut task = pin!(task);
            let _ = block_on_poll(None, |cx| task.as_mut().poll(cx).map(Ok));
        });
        if let Err(err) = spawned {
            tracing::warn!(%err, "pool: cannot start a thread");
        }
    }

    async fn sleep_until(deadline: Instant) {
        let mut armed = false;
        poll_fn(|cx| {
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            if !armed {
                timer().wake_at(deadline, cx.waker().clone());
                armed = true;
            }
            Poll::Pending
        })
        .await
    }
}

/// The result of work on another thread, and the waker of whoever waits for it.
type Handoff<T> = Arc<Mutex<(Option<io::Result<T>>, Option<Waker>)>>;

/// Runs `work` on a new thread; the future is ready with its result.
async fn on_thread<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let done: Handoff<T> = Arc::default();
    let filled = done.clone();
    thread::Builder::new().name("hawser-pool-dial".into()).spawn(move || {
        let result = work();
        let waker = {
            let mut slot = filled.lock().unwrap_or_else(|p| p.into_inner());
            slot.0 = Some(result);
            slot.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    })?;
    poll_fn(|cx| {
        let mut slot = done.lock().unwrap_or_else(|p| p.into_inner());
        match slot.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

/// One thread that wakes wakers at their deadlines, for every pool of the
/// process: a pool's waits come and go with each change, and a thread per
/// wait would pile up sleeping.
struct TimerThread {
    due: Mutex<BinaryHeap<Reverse<Due>>>,
    changed: Condvar,
}

struct Due {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

fn timer() -> &'static TimerThread {
    static TIMER: OnceLock<&'static TimerThread> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static TimerThread = Box::leak(Box::new(TimerThread {
            due: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        if let Err(err) = thread::Builder::new()
            .name("hawser-pool-timer".into())
            .spawn(move || timer.run())
        {
            tracing::warn!(%err, "pool: cannot start the timer thread");
        }
        timer
    })
}

impl TimerThread {
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Due>>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        self.lock().push(Reverse(Due { at, waker }));
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut due = self.lock();
        loop {
            let now = Instant::now();
            while due.peek().is_some_and(|next| next.0.at <= now) {
                if let Some(Reverse(next)) = due.pop() {
                    next.waker.wake();
                }
            }
            due = match due.peek().map(|next| next.0.at) {
                Some(at) => {
                    self.changed
                        .wait_timeout(due, at.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(due).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// A pool of sessions to one service: streams go to the least-loaded healthy
/// session, another session is dialled when all are full (up to
/// `max_sessions`), and sessions that go unhealthy (missed pings), draining
/// (go-away) or closed are taken out at once and replaced in the background,
/// with backoff. Sessions beyond `min_sessions` are closed after
/// `idle_timeout` without streams. The same policy as hawser-tokio's `Pool`;
/// its dials and upkeep run on threads of their own.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use hawser_blocking::{Config, Listener, Pool, PoolConfig, Session};
///
/// # fn main() -> std::io::Result<()> {
/// // An echo service.
/// let listener = Listener::bind("127.0.0.1:0", Config::default())?;
/// let addr = listener.local_addr()?;
/// std::thread::spawn(move || {
///     while let Ok((session, _)) = listener.accept() {
///         std::thread::spawn(move || {
///             while let Some(stream) = session.accept() {
///                 let (mut from, mut to) = stream.split();
///                 std::thread::spawn(move || {
///                     std::io::copy(&mut from, &mut to)?;
///                     to.finish()
///                 });
///             }
///         });
///     }
/// });
///
/// let config = PoolConfig { min_sessions: 2, max_sessions: 4, open_timeout: Duration::from_secs(5), ..PoolConfig::default() };
/// let pool = Pool::new(config, move || Session::connect(addr, Config::default()))?;
/// pool.warmup()?; // two sessions dialled
/// let mut stream = pool.open_stream()?;
/// stream.write_all(b"pooled")?;
/// stream.finish()?;
/// let mut reply = Vec::new();
/// stream.read_to_end(&mut reply)?;
/// assert_eq!(reply, b"pooled");
/// assert_eq!(pool.stats().live, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pool {
    handle: Arc<PoolHandle<Threads>>,
}

impl Pool {
    /// A pool that dials its sessions with `dial` (for example
    /// `move || Session::connect(addr, config.clone())`). Its upkeep starts at
    /// once, on a thread of its own, dialling up to `min_sessions` in the
    /// background; [`warmup`](Self::warmup) waits for them. Dropping the last
    /// clone of the pool lets its sessions go: each ends once the streams
    /// opened on it are done.
    pub fn new<F>(config: PoolConfig, dial: F) -> io::Result<Pool>
    where
        F: Fn() -> io::Result<Session> + Send + Sync + 'static,
    {
        let runtime = Threads { dial: Arc::new(dial) };
        Ok(Pool {
            handle: Arc::new(PoolHandle::new(config, runtime)?),
        })
    }

    /// Blocks until the pool holds `min_sessions`; fails with the error of the
    /// first dial that fails on the way.
    pub fn warmup(&self) -> io::Result<()> {
        let mut warming = pin!(self.handle.warmup());
        block_on_poll(None, |cx| warming.as_mut().poll(cx))
    }

    /// Opens a stream on the least-loaded healthy session with room, dialling
    /// another when all are full, or blocking (at most `open_timeout`, then
    /// `TimedOut`) beyond `max_sessions`. While no session is usable and the
    /// last dial failed, fails at once with that dial's error until its backoff
    /// has passed.
    pub fn open_stream(&self) -> io::Result<PoolStream> {
        let mut opening = pin!(self.handle.open_stream());
        let (stream, slot) = block_on_poll(None, |cx| opening.as_mut().poll(cx))?;
        Ok(PoolStream { stream, _slot: slot })
    }

    /// The pool's counters: sessions dialled, failed, evicted, trimmed and
    /// live, streams opened and held, opens that waited and for how long.
    pub fn stats(&self) -> PoolStats {
        self.handle.stats()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("stats", &self.stats()).finish()
    }
}

/// A stream opened through a [`Pool`]: a [`Stream`] (it derefs to one) that
/// holds its place on its session until dropped.
pub struct PoolStream {
    stream: Stream,
    _slot: StreamSlot<Pooled>,
}

impl std::ops::Deref for PoolStream {
    type Target = Stream;

    fn deref(&self) -> &Stream {
        &self.stream
    }
}

impl std::ops::DerefMut for PoolStream {
    fn deref_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

impl std::fmt::Debug for PoolStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolStream")
            .field("id", &self.stream.id())
            .finish_non_exhaustive()
    }
}

impl Read for PoolStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for PoolStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

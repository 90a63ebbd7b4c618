//! The pool's asynchronous steps, written once for every runtime: an adapter
//! says how to dial, open, spawn and sleep ([`PoolRuntime`]), and gets opens,
//! warm-up and the background upkeep.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

use super::{watch_member, Change, Pick, PoolCore, PoolMember, StreamSlot};
use crate::control::ControlCore;

/// What a pool needs of a runtime and an adapter.
pub trait PoolRuntime: Clone + Send + Sync + 'static {
    /// The adapter's session handle the pool keeps and opens streams on.
    type Session: PoolMember + Send + Sync + 'static;
    /// The adapter's stream.
    type Stream: Send;

    /// Dials a new session: the handle the pool keeps, and its control core
    /// for the watch.
    fn dial(&self) -> impl Future<Output = io::Result<(Self::Session, ControlCore)>> + Send;
    /// Opens a stream on `session`.
    fn open(session: &Self::Session) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Runs `task` in the background.
    fn spawn(task: impl Future<Output = ()> + Send + 'static);
    /// Ready at `deadline`.
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send;
}

/// `work`, or `None` if `deadline` comes first.
pub(crate) async fn before<R: PoolRuntime, T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    let mut work = pin!(work);
    let mut sleep = pin!(R::sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Starts one dial in the background (it already counts as dialling); its
/// session joins the pool and gets a watch.
pub(crate) fn spawn_dial<R: PoolRuntime>(pool: &PoolCore<R::Session>, runtime: &R) {
    let pool = pool.clone();
    let runtime = runtime.clone();
    R::spawn(async move {
        let timeout = pool.with(Change::Nothing, |policy| policy.config().dial_timeout);
        let dialled = before::<R, _>(Instant::now() + timeout, runtime.dial())
            .await
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "pool: the dial timed out")));
        match dialled {
            Ok((session, control)) => {
                if pool.is_shut() {
                    return;
                }
                let member = pool.with(Change::Room, |policy| policy.dial_succeeded(session, Instant::now()));
                tracing::debug!(member = member.0, "pool: session dialled");
                R::spawn(watch_member(pool, member, control));
            }
            Err(err) => {
                tracing::warn!(error = %err, "pool: dial failed");
                pool.with(Change::Room, |policy| policy.dial_failed(&err, Instant::now()));
            }
        }
    });
}

/// Opens a stream through the pool: on the least-loaded ready session with
/// room, on a new one when all are full, or once one has room, waiting at most
/// the configured `open_timeout`. Cancel-safe: dropping it mid-way leaves no
/// slot reserved and lets any dial it started finish for the pool.
pub(crate) async fn open_stream<R: PoolRuntime>(
    pool: &PoolCore<R::Session>,
    runtime: &R,
) -> io::Result<(R::Stream, StreamSlot<R::Session>)> {
    let started = Instant::now();
    let deadline = started + pool.with(Change::Nothing, |policy| policy.config().open_timeout);
    let mut waited = false;
    let record = |waited: bool, timed_out: bool| {
        if waited {
            pool.with(Change::Nothing, |policy| {
                policy.record_wait(started.elapsed(), timed_out)
            });
        }
    };
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "pool: no session had room within open_timeout");
    loop {
        if pool.is_shut() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "pool: shut down"));
        }
        let seen = pool.generation();
        let mut evicted = Vec::new();
        let pick = pool.with(Change::Nothing, |policy| policy.pick(Instant::now(), &mut evicted));
        if !evicted.is_empty() {
            // Their watches hold handles of them: wake them to let go.
            pool.changed(Change::Members);
            drop(evicted);
        }
        match pick {
            Pick::Open { member, session } => {
                let slot = pool.slot(member);
                match before::<R, _>(deadline, R::open(&session)).await {
                    Some(Ok(stream)) => {
                        record(waited, false);
                        pool.with(Change::Nothing, |policy| policy.opened());
                        return Ok((stream, slot));
                    }
                    Some(Err(err)) if session.condition() == super::Condition::Ready => {
                        record(waited, false);
                        return Err(err);
                    }
                    // The session went unusable under the open: the next pick
                    // takes it out and tries another.
                    Some(Err(_)) => continue,
                    None => {
                        record(true, true);
                        return Err(timed_out());
                    }
                }
            }
            Pick::Dial => {
                waited = true;
                spawn_dial(pool, runtime);
            }
            Pick::Wait { until } => {
                waited = true;
                if Instant::now() >= deadline {
                    record(true, true);
                    return Err(timed_out());
                }
                let wake_at = until.map_or(deadline, |until| until.min(deadline));
                before::<R, _>(wake_at, pool.wait_changed(seen)).await;
            }
            Pick::Failed(err) => {
                record(waited, false);
                return Err(err);
            }
        }
    }
}

/// Dials until the pool holds `min_sessions`; fails with the first dial error.
pub(crate) async fn warmup<R: PoolRuntime>(pool: &PoolCore<R::Session>, runtime: &R) -> io::Result<()> {
    let failures_before = pool.with(Change::Nothing, |policy| policy.stats().dial_failures);
    loop {
        let seen = pool.generation();
        for _ in 0..pool.with(Change::Nothing, |policy| policy.dials_wanted(Instant::now())) {
            spawn_dial(pool, runtime);
        }
        let (live, min, failures) = pool.with(Change::Nothing, |policy| {
            let stats = policy.stats();
            (stats.live, policy.config().min_sessions, stats.dial_failures)
        });
        if live >= min {
            return Ok(());
        }
        if failures > failures_before {
            let failure = pool.with(Change::Nothing, |policy| policy.last_dial_error());
            return Err(failure.unwrap_or_else(|| io::Error::other("pool: a warm-up dial failed")));
        }
        if pool.is_shut() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "pool: shut down"));
        }
        pool.wait_changed(seen).await;
    }
}

/// The pool's upkeep, until it is shut: takes out sessions that went unusable
/// or idle, and dials replacements up to `min_sessions`, with backoff.
pub(crate) async fn upkeep<R: PoolRuntime>(pool: PoolCore<R::Session>, runtime: R) {
    while !pool.is_shut() {
        let dials = pool.maintain(Instant::now());
        let seen = pool.generation();
        for _ in 0..dials {
            spawn_dial(&pool, &runtime);
        }
        match pool.with(Change::Nothing, |policy| policy.next_deadline()) {
            Some(at) => {
                before::<R, _>(at, pool.wait_changed(seen)).await;
            }
            None => pool.wait_changed(seen).await,
        }
    }
}

/// What an adapter's pool handle wraps: the pool and its runtime, with the
/// upkeep spawned; dropping it shuts the pool (its sessions end once the
/// streams opened on them are done).
pub struct PoolHandle<R: PoolRuntime> {
    pool: PoolCore<R::Session>,
    runtime: R,
}

impl<R: PoolRuntime> PoolHandle<R> {
    /// A pool with `config` on `runtime`; spawns its upkeep, which starts
    /// dialling up to `min_sessions` at once.
    pub fn new(config: super::PoolConfig, runtime: R) -> io::Result<Self> {
        let pool = PoolCore::new(config)?;
        R::spawn(upkeep(pool.clone(), runtime.clone()));
        Ok(PoolHandle { pool, runtime })
    }

    /// Waits until the pool holds `min_sessions`; fails with the first dial error.
    pub async fn warmup(&self) -> io::Result<()> {
        warmup(&self.pool, &self.runtime).await
    }

    /// Opens a stream through the pool, waiting at most `open_timeout`.
    pub async fn open_stream(&self) -> io::Result<(R::Stream, StreamSlot<R::Session>)> {
        open_stream(&self.pool, &self.runtime).await
    }

    /// The pool's counters.
    pub fn stats(&self) -> super::PoolStats {
        self.pool.with(Change::Nothing, |policy| policy.stats())
    }
}

impl<R: PoolRuntime> Drop for PoolHandle<R> {
    fn drop(&mut self) {
        self.pool.shut();
    }
}

//! A pool of sessions to one service: the policy ([`PoolPolicy`]), and what the
//! adapters' pools share around it ([`PoolCore`]): the lock, the wakers of
//! opens waiting for a change, stream slots that hand themselves back, and
//! the watch that takes a session out as soon as it goes unhealthy, draining or
//! closed. The adapters add dialling, spawning and timers.

mod adapter;
mod policy;
mod run;

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

pub use adapter::{RuntimePool, SessionDial};
pub use policy::{Condition, MemberId, Pick, PoolConfig, PoolConfigError, PoolMember, PoolPolicy, PoolStats};
pub use run::{PoolHandle, PoolRuntime};

use crate::control::ControlCore;
use crate::health::HealthEvent;

impl PoolMember for ControlCore {
    fn condition(&self) -> Condition {
        let status = self.status();
        if status.closed {
            Condition::Closed
        } else if status.draining {
            Condition::Draining
        } else if status.detached {
            Condition::Detached
        } else if status.missed_pings > 0 {
            Condition::Unhealthy
        } else {
            Condition::Ready
        }
    }
}

struct PoolState<S> {
    policy: PoolPolicy<S>,
    /// Bumped on every change an open may be waiting for.
    generation: u64,
    /// Bumped when sessions leave the pool, which is what watches wait for.
    membership: u64,
    waiting: Vec<Waker>,
    watching: Vec<Waker>,
    shut: bool,
}

/// What a step did to the pool, and so whom it wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing anyone waits for.
    Nothing,
    /// Room for a stream may have appeared (a slot released, a session dialled
    /// or usable again, a dial failed): waiting opens and the upkeep wake.
    Room,
    /// Sessions left the pool: their watches wake too, to let go of them.
    Members,
}

/// The policy behind a lock, with the wakers of whoever waits for it to change.
/// Clones share the pool.
pub struct PoolCore<S> {
    state: Arc<Mutex<PoolState<S>>>,
}

impl<S> Clone for PoolCore<S> {
    fn clone(&self) -> Self {
        PoolCore {
            state: self.state.clone(),
        }
    }
}

fn register(wakers: &mut Vec<Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

impl<S: PoolMember> PoolCore<S> {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Result<Self, PoolConfigError> {
        Ok(PoolCore {
            state: Arc::new(Mutex::new(PoolState {
                policy: PoolPolicy::new(config)?,
                generation: 0,
                membership: 0,
                waiting: Vec::new(),
                watching: Vec::new(),
                shut: false,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PoolState<S>> {
        // A panic under this lock leaves the policy's numbers consistent (each
        // method updates them before anything that can panic), so carry on.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the policy and wakes whoever waits for `change`. What `f`
    /// returns is dropped after the lock is released, so sessions taken out of
    /// the pool are let go outside it.
    pub fn with<R>(&self, change: Change, f: impl FnOnce(&mut PoolPolicy<S>) -> R) -> R {
        let mut wakers = Vec::new();
        let result = {
            let mut state = self.lock();
            let result = f(&mut state.policy);
            if change != Change::Nothing {
                state.generation += 1;
                wakers = std::mem::take(&mut state.waiting);
            }
            if change == Change::Members {
                state.membership += 1;
                wakers.append(&mut state.watching);
            }
            result
        };
        wakers.into_iter().for_each(Waker::wake);
        result
    }

    /// Wakes whoever waits for `change`.
    pub fn changed(&self, change: Change) {
        self.with(change, |_| ());
    }

    /// The current generation: pass it to [`poll_changed`](Self::poll_changed).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Ready once the pool changed since `seen` (a [`generation`](Self::generation))
    /// or was shut.
    pub fn poll_changed(&self, cx: &mut Context<'_>, seen: u64) -> Poll<()> {
        let mut state = self.lock();
        if state.generation != seen || state.shut {
            return Poll::Ready(());
        }
        register(&mut state.waiting, cx);
        Poll::Pending
    }

    /// Waits until the pool changed since `seen` or was shut.
    pub async fn wait_changed(&self, seen: u64) {
        poll_fn(|cx| self.poll_changed(cx, seen)).await
    }

    /// Shuts the pool: its sessions are let go (each ends once the streams
    /// opened on it are done) and every waiter wakes.
    pub fn shut(&self) {
        let (sessions, mut wakers) = {
            let mut state = self.lock();
            state.shut = true;
            state.generation += 1;
            state.membership += 1;
            let mut wakers = std::mem::take(&mut state.waiting);
            wakers.append(&mut state.watching);
            (state.policy.clear(), wakers)
        };
        wakers.drain(..).for_each(Waker::wake);
        drop(sessions);
    }

    /// Whether [`shut`](Self::shut) was called.
    pub fn is_shut(&self) -> bool {
        self.lock().shut
    }

    /// A slot for a stream opened on `member`: hands itself back when dropped.
    pub fn slot(&self, member: MemberId) -> StreamSlot<S> {
        StreamSlot {
            pool: self.clone(),
            member,
        }
    }

    /// Takes out the sessions that went unusable, and the idle ones past
    /// `idle_timeout`; returns how many dials to start to get back to
    /// `min_sessions` (they count as dialling at once).
    pub fn maintain(&self, now: Instant) -> usize {
        let (evicted, trimmed, dials) = self.with(Change::Nothing, |policy| {
            let evicted = policy.evict_unusable();
            let trimmed = policy.trim_idle(now);
            (evicted, trimmed, policy.dials_wanted(now))
        });
        if !evicted.is_empty() || !trimmed.is_empty() {
            tracing::debug!(
                evicted = evicted.len(),
                trimmed = trimmed.len(),
                dials,
                "pool: sessions taken out"
            );
            self.changed(Change::Members);
        }
        dials
    }

    /// Ready once sessions left the pool since `seen` (a membership
    /// generation) or it was shut.
    fn poll_members_changed(&self, cx: &mut Context<'_>, seen: u64) -> Poll<()> {
        let mut state = self.lock();
        if state.membership != seen || state.shut {
            return Poll::Ready(());
        }
        register(&mut state.watching, cx);
        Poll::Pending
    }

    /// Whether `member` is still in the pool (and it is not shut), with the
    /// membership generation that answer holds for.
    fn still_member(&self, member: MemberId) -> Option<u64> {
        let state = self.lock();
        (!state.shut && state.policy.contains(member)).then_some(state.membership)
    }
}

/// One stream's place on a pool session: released (and waiting opens woken)
/// when dropped.
pub struct StreamSlot<S: PoolMember> {
    pool: PoolCore<S>,
    member: MemberId,
}

impl<S: PoolMember> StreamSlot<S> {
    /// The session the slot is on.
    pub fn member(&self) -> MemberId {
        self.member
    }
}

impl<S: PoolMember> Drop for StreamSlot<S> {
    fn drop(&mut self) {
        let member = self.member;
        self.pool
            .with(Change::Room, |policy| policy.release(member, Instant::now()));
    }
}

/// Watches one pool session and tells the pool when it may have to be taken
/// out (it went unhealthy, draining or closed) or can be used again (it
/// recovered or resumed). Ends once the session is out of the pool or the pool
/// is shut, dropping its handle of the session; spawn it next to each session
/// the pool dials.
pub async fn watch_member<S: PoolMember>(pool: PoolCore<S>, member: MemberId, session: ControlCore) {
    while let Some(seen) = pool.still_member(member) {
        let ended = poll_fn(|cx| {
            if let Poll::Ready(event) = session.poll_health_event(cx) {
                return Poll::Ready(match event {
                    None => true,
                    Some(HealthEvent::Unhealthy | HealthEvent::Recovered | HealthEvent::GoAwayReceived(_)) => {
                        pool.changed(Change::Room);
                        false
                    }
                    Some(_) => false,
                });
            }
            if let Poll::Ready(event) = session.poll_link_event(cx) {
                pool.changed(Change::Room);
                return Poll::Ready(event.is_none());
            }
            if session.poll_closed(cx).is_ready() {
                return Poll::Ready(true);
            }
            pool.poll_members_changed(cx, seen).map(|()| false)
        })
        .await;
        if ended {
            // Closed: out of the pool now, and the watch is over.
            let evicted = pool.with(Change::Members, |policy| policy.evict_unusable());
            drop(evicted);
            return;
        }
    }
}

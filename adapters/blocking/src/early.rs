//! Make-before-break on threads: while a resumable client's link is suspect,
//! fresh links are dialled ahead, each on a thread of its own (a blocking
//! dial cannot be polled), and the first that connects takes over from the
//! suspect link. The writer thread starts them and looks for a winner on
//! every turn; a winner raises the writer's signal.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hawser_driver::LinkSide;

use crate::wait::Signal;

/// How many early dials may be in flight at once.
const IN_FLIGHT: usize = 3;

/// A client's dial, callable from any thread.
pub(crate) type SharedDial<L> = Arc<dyn Fn() -> io::Result<L> + Send + Sync>;

/// The early dials of one session.
pub(crate) struct EarlyDials<L> {
    dial: SharedDial<L>,
    interval: Duration,
    next_at: Option<Instant>,
    /// Attempts in this suspect episode.
    attempt: u32,
    /// Moves on when an episode ends: a dial of an earlier one that connects
    /// late is dropped.
    episode: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    /// The first link of this episode that connected.
    landed: Arc<Mutex<Option<L>>>,
}

impl<L: Send + 'static> EarlyDials<L> {
    /// Early dials with `dial` every `interval` while suspect.
    pub(crate) fn new(dial: SharedDial<L>, interval: Duration) -> Self {
        EarlyDials {
            dial,
            interval,
            next_at: None,
            attempt: 0,
            episode: Arc::default(),
            in_flight: Arc::default(),
            landed: Arc::default(),
        }
    }

    /// The link is suspect: starts a dial if one is due, and returns a link
    /// that connected, or when to look again.
    pub(crate) fn poll(&mut self, side: &LinkSide, signal: &Arc<Signal>) -> Result<L, Instant> {
        let landed = lock(&self.landed).take();
        if let Some(link) = landed {
            tracing::debug!(attempt = self.attempt, "a fresh link is up: taking it over");
            self.cancel();
            return Ok(link);
        }
        let now = Instant::now();
        if self.next_at.map_or(true, |at| now >= at) && self.in_flight.load(Ordering::Acquire) < IN_FLIGHT {
            self.attempt += 1;
            self.next_at = Some(now + self.interval);
            side.reconnecting(self.attempt);
            tracing::debug!(attempt = self.attempt, "link suspect: dialling ahead");
            self.start(signal.clone());
        }
        Err(self.next_at.unwrap_or(now + self.interval))
    }

    fn start(&self, signal: Arc<Signal>) {
        let dial = self.dial.clone();
        let episode = self.episode.clone();
        let mine = episode.load(Ordering::Acquire);
        let in_flight = self.in_flight.clone();
        let landed = self.landed.clone();
        in_flight.fetch_add(1, Ordering::AcqRel);
        let started = thread::Builder::new().name("hawser-dial".into()).spawn(move || {
            match dial() {
                Ok(link) if episode.load(Ordering::Acquire) == mine => {
                    let mut slot = lock(&landed);
                    if slot.is_none() {
                        *slot = Some(link);
                        signal.raise();
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(%err, "early dial failed"),
            }
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(err) = started {
            tracing::debug!(%err, "cannot start an early dial");
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The link made progress again (or a fresh one took over): the dials
    /// under way no longer count.
    pub(crate) fn cancel(&mut self) {
        if self.next_at.take().is_some() {
            self.episode.fetch_add(1, Ordering::AcqRel);
            self.attempt = 0;
            drop(lock(&self.landed).take());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

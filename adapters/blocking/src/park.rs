//! Detached server sessions wait here without a thread of their own. A server
//! session's writer thread that has lost its link parks its state in its
//! acceptor's lot and ends; one thread per acceptor (while anything is parked)
//! runs the parked sessions' timers and, when a session's next link arrives,
//! starts a writer thread for it again. A thousand detached sessions cost one
//! thread, not a thousand.

use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread;
use std::time::Instant;

use crate::wait::Signal;

/// A detached session as the lot keeps it: its writer's state.
pub(crate) trait Parkable: Send + 'static {
    /// The session's link type.
    type Link: Send + 'static;

    /// Runs the session's due timers and says whether its next link has come
    /// or it has ended. `waker` is the lot's.
    fn check_parked(&mut self, waker: &Waker) -> Parked<Self::Link>;

    /// Carries the session on over `link`, on the calling thread (a writer
    /// thread the lot starts for it).
    fn revive(self, link: Self::Link);
}

/// A parked session, as the lot's thread finds it.
pub(crate) enum Parked<L> {
    /// Still waiting; look again at this time (or when woken).
    Waiting(Option<Instant>),
    /// Its next link has come: revive its writer with it.
    Link(L),
    /// It has ended: let it go.
    Finished,
}

/// The parking lot of one acceptor's detached sessions.
pub(crate) struct ParkingLot<P> {
    lot: Mutex<Lot<P>>,
    /// Raised by any parked session's waker (its slot got a link, the
    /// application did something, another thread ended it) and by `park`.
    signal: Arc<Signal>,
}

struct Lot<P> {
    parked: Vec<P>,
    /// Whether the lot's thread is running.
    attended: bool,
}

impl<P: Parkable> ParkingLot<P> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ParkingLot {
            lot: Mutex::new(Lot {
                parked: Vec::new(),
                attended: false,
            }),
            signal: Arc::default(),
        })
    }

    /// Takes a detached session's writer until its next link arrives or it ends.
    pub(crate) fn park(self: &Arc<Self>, writer: P) {
        let mut lot = self.lot.lock().unwrap_or_else(|p| p.into_inner());
        lot.parked.push(writer);
        if !lot.attended {
            let this = self.clone();
            let spawned = thread::Builder::new()
                .name("hawser-parked".into())
                .spawn(move || this.attend());
            match spawned {
                Ok(_) => lot.attended = true,
                Err(err) => tracing::warn!(%err, "cannot start the thread for detached sessions"),
            }
        }
        drop(lot);
        std::task::Wake::wake_by_ref(&self.signal);
    }

    /// The lot's thread: until nothing is parked, runs the parked sessions'
    /// timers, revives those whose link has come, and lets go of those that ended.
    fn attend(self: Arc<Self>) {
        let waker = Waker::from(self.signal.clone());
        loop {
            let mut next: Option<Instant> = None;
            let mut revive = Vec::new();
            let mut finished = Vec::new();
            let empty = {
                let mut lot = self.lot.lock().unwrap_or_else(|p| p.into_inner());
                let mut i = 0;
                while i < lot.parked.len() {
                    match lot.parked[i].check_parked(&waker) {
                        Parked::Waiting(deadline) => {
                            next = [next, deadline].into_iter().flatten().min();
                            i += 1;
                        }
                        Parked::Link(link) => revive.push((lot.parked.swap_remove(i), link)),
                        Parked::Finished => finished.push(lot.parked.swap_remove(i)),
                    }
                }
                if lot.parked.is_empty() {
                    lot.attended = false;
                }
                lot.parked.is_empty()
            };
            // Outside the lot's lock: a finished writer's slot removes itself
            // from the registry as it goes.
            drop(finished);
            for (writer, link) in revive {
                let spawned = thread::Builder::new()
                    .name("hawser-writer".into())
                    .spawn(move || writer.revive(link));
                if let Err(err) = spawned {
                    tracing::warn!(%err, "cannot start a writer for a resumed session");
                }
            }
            if empty {
                return;
            }
            self.signal.wait_until(next);
        }
    }
}

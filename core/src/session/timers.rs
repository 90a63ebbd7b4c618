//! Time: keepalive, the handshake deadline, open/close timeouts and the drain deadline.

use super::{Phase, Session};
use crate::error::{ResetCode, SessionError};
use crate::event::Event;
use crate::settings::HandshakeError;
use crate::time::Instant;

impl Session {
    /// When the session next needs [`handle_timeout`](Self::handle_timeout), or
    /// `None` if no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let keepalive = self
            .pings
            .iter()
            .find(|p| p.keepalive)
            .map_or(self.next_keepalive, |ping| {
                Some(ping.sent_at + self.config.ping_timeout)
            });
        // Called on every turn of a driver and around every stream operation:
        // a plain fold, not an iterator over an array of options.
        let mut due = earliest(keepalive, self.handshake_deadline);
        due = earliest(due, self.drain_deadline);
        due = earliest(due, self.open_deadlines.first().map(|(at, _)| *at));
        due = earliest(due, self.close_deadlines.first().map(|(at, _)| *at));
        due = earliest(due, self.resume_timeout());
        earliest(due, self.liveness_timeout())
    }

    /// Runs every timer due at `now`. Calling it early or often is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.handshake_deadline.is_some_and(|at| at <= now) {
            self.fail_with(
                SessionError::Handshake(HandshakeError::Timeout),
                crate::GoAwayCode::HANDSHAKE_FAILED,
            );
            return;
        }
        self.handle_resume_timeout(now);
        if self.phase == Phase::Closed {
            return;
        }
        self.run_keepalive(now);
        if self.phase == Phase::Closed {
            return;
        }
        self.run_liveness(now);
        while let Some(&(at, id)) = self.open_deadlines.first() {
            if at > now {
                break;
            }
            self.open_deadlines.pop_first();
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.open_deadline = None;
                if !stream.acknowledged {
                    tracing::debug!(stream = id, "open timed out");
                    self.reset_stream(id, ResetCode::OPEN_TIMEOUT, false);
                }
            }
        }
        while let Some(&(at, id)) = self.close_deadlines.first() {
            if at > now {
                break;
            }
            self.close_deadlines.pop_first();
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.close_deadline = None;
                // A peer still sending is not stuck: the timeout counts from its
                // last payload, so a long reply after a request's FIN is not cut.
                let extended = match (stream.last_received, self.config.close_timeout) {
                    (Some(last), Some(timeout)) if last + timeout > now => Some(last + timeout),
                    _ => None,
                };
                if let Some(deadline) = extended {
                    stream.close_deadline = Some(deadline);
                    self.close_deadlines.insert((deadline, id));
                } else if !stream.fin_received {
                    tracing::debug!(stream = id, "close timed out");
                    self.reset_stream(id, ResetCode::CLOSE_TIMEOUT, false);
                }
            }
        }
        if self.drain_deadline.is_some_and(|at| at <= now) {
            self.drain_deadline = None;
            let ids: alloc::vec::Vec<u32> = self.streams.keys().copied().collect();
            for id in ids {
                // The event tells the application; the stream goes with its reset frame.
                if self.streams.get(&id).is_some_and(|s| s.accepted && s.reset.is_none()) {
                    let code = ResetCode::DRAIN_TIMEOUT;
                    self.events.push_back(Event::StreamReset {
                        id: crate::StreamId(id),
                        code,
                    });
                }
                self.reset_stream(id, ResetCode::DRAIN_TIMEOUT, true);
            }
            // Each stream leaves as its reset goes out; the last one ends the session.
            self.check_drained();
        }
    }

    fn run_keepalive(&mut self, now: Instant) {
        let Some(interval) = self.config.keepalive_interval else {
            return;
        };
        if let Some(index) = self
            .pings
            .iter()
            .position(|p| p.keepalive && p.sent_at + self.config.ping_timeout <= now)
        {
            self.pings.swap_remove(index);
            self.missed_pings += 1;
            self.stats.pings_missed += 1;
            tracing::debug!(missed = self.missed_pings, "keepalive ping missed");
            self.events.push_back(Event::HealthChanged {
                missed_pings: self.missed_pings,
            });
            if self.missed_pings >= self.config.max_missed_pings {
                // A dead link: a resumable session waits for a new one instead.
                if self.detach(now) {
                    return;
                }
                self.session_control.clear();
                self.terminate(Some(SessionError::KeepaliveTimeout));
                return;
            }
            // Ask again at once: the next miss is then one ping timeout away.
            self.send_ping(now, true);
            self.next_keepalive = Some(now + interval);
            return;
        }
        let outstanding = self.pings.iter().any(|p| p.keepalive);
        if !outstanding && self.next_keepalive.is_some_and(|at| at <= now) {
            self.send_ping(now, true);
            self.next_keepalive = Some(now + interval);
        }
    }
}

/// The earlier of two optional deadlines.
#[inline]
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

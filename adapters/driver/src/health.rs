//! What an application can watch of a session's health: a bounded queue of
//! [`HealthEvent`]s, and a [`Status`] snapshot.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hawser_core::GoAwayCode;

use crate::events::EventQueue;

/// Something that happened to the link's health, in order.
///
/// With the default keepalive (`Config::keepalive_interval` 30 s, `ping_timeout`
/// 10 s, `max_missed_pings` 3), a peer that freezes is noticed as
/// [`PingMissed`](Self::PingMissed) and [`Unhealthy`](Self::Unhealthy) when the
/// next keepalive ping (sent within 30 s) has gone 10 s unanswered: 10 to 40 s
/// after the freeze. A missed ping is asked again at once, so the session ends
/// with `SessionError::KeepaliveTimeout` (or, if resumable, detaches) 20 s
/// later: 30 to 60 s after the freeze. Lower `keepalive_interval` and
/// `ping_timeout` to notice sooner; a peer frozen for less than the interval
/// plus the timeout may go unnoticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// A ping this side sent (keepalive or [`ping`](crate::ControlCore::ping)) was
    /// answered after `rtt`.
    Pong {
        /// The round trip it measured.
        rtt: Duration,
    },
    /// A keepalive ping went unanswered within the ping timeout; `missed` in a row
    /// so far.
    PingMissed {
        /// Unanswered keepalive pings in a row.
        missed: u32,
    },
    /// The first missed ping of an episode: the link may be dead. Follows the
    /// first [`PingMissed`](Self::PingMissed).
    Unhealthy,
    /// A keepalive ping was answered again after one or more were missed.
    Recovered,
    /// The link stopped answering: something that needs an answer has had
    /// none, and nothing else came, for longer than the silence bound
    /// (`Config::liveness`: 4 of the smallest round trips, at least 1 s). The
    /// session carries on; this comes long before keepalive gives up.
    Suspect {
        /// How long the peer has been silent.
        silent_for: Duration,
    },
    /// A suspect link brought input again.
    Responsive,
    /// The peer went away with this code: no new streams on this session.
    GoAwayReceived(GoAwayCode),
}

/// A snapshot of a session's health and load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The last measured round trip, once a ping was answered.
    pub rtt_last: Option<Duration>,
    /// The smoothed round trip (7/8 old, 1/8 new sample).
    pub rtt_smoothed: Option<Duration>,
    /// Keepalive pings unanswered in a row; 0 is healthy.
    pub missed_pings: u32,
    /// Time since the last answered ping, once one was answered.
    pub since_last_pong: Option<Duration>,
    /// How many times the link went unhealthy (a first missed ping).
    pub unhealthy_episodes: u64,
    /// Whether the link is suspect (see [`HealthEvent::Suspect`]).
    pub suspect: bool,
    /// How many times the link became suspect, in all: on a healthy link
    /// under any load this stays 0.
    pub suspect_episodes: u64,
    /// Resumable client: reconnect attempts made, in all.
    pub reconnects: u64,
    /// Resumable session: how many times it resumed over a new link.
    pub resumes: u64,
    /// Streams open (not yet released).
    pub streams_open: usize,
    /// Inbound streams waiting to be accepted.
    pub pending_accepts: usize,
    /// Whether the session is waiting for a new link (resumption).
    pub detached: bool,
    /// Whether a go-away was sent or received: no new streams on this session.
    pub draining: bool,
    /// Whether the session has ended.
    pub closed: bool,
}

/// Health events queued for the application, and what the status needs that the
/// core does not keep.
#[derive(Default)]
pub(crate) struct HealthLog {
    events: EventQueue<HealthEvent>,
    pub(crate) last_pong: Option<Instant>,
    pub(crate) unhealthy_episodes: u64,
    pub(crate) suspect_episodes: u64,
}

impl HealthLog {
    pub(crate) fn push(&mut self, event: HealthEvent) {
        match event {
            HealthEvent::Pong { .. } => self.last_pong = Some(Instant::now()),
            HealthEvent::Unhealthy => self.unhealthy_episodes += 1,
            HealthEvent::Suspect { .. } => self.suspect_episodes += 1,
            _ => {}
        }
        self.events.push(event);
    }

    /// What the core's `HealthChanged { missed_pings }` means, as events.
    pub(crate) fn missed(&mut self, missed_pings: u32, before: u32) {
        if missed_pings == 0 {
            if before > 0 {
                self.push(HealthEvent::Recovered);
            }
            return;
        }
        self.push(HealthEvent::PingMissed { missed: missed_pings });
        if before == 0 {
            self.push(HealthEvent::Unhealthy);
        }
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>, closed: bool) -> Poll<Option<HealthEvent>> {
        self.events.poll_next(cx, closed)
    }

    pub(crate) fn wake(&mut self) {
        self.events.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_pings_become_an_episode_and_a_recovery() {
        let mut log = HealthLog::default();
        log.missed(1, 0);
        log.missed(2, 1);
        log.missed(0, 2);
        let events: Vec<_> = log.events.drain().collect();
        assert_eq!(
            events,
            vec![
                HealthEvent::PingMissed { missed: 1 },
                HealthEvent::Unhealthy,
                HealthEvent::PingMissed { missed: 2 },
                HealthEvent::Recovered,
            ]
        );
        assert_eq!(log.unhealthy_episodes, 1);
    }

    #[test]
    fn the_queue_keeps_the_newest_events() {
        let mut log = HealthLog::default();
        for rtt in 0..100 {
            log.push(HealthEvent::Pong {
                rtt: Duration::from_millis(rtt),
            });
        }
        let kept: Vec<_> = log.events.drain().collect();
        assert_eq!(kept.len(), crate::events::MAX_EVENTS);
        assert_eq!(
            kept[0],
            HealthEvent::Pong {
                rtt: Duration::from_millis(36)
            }
        );
    }
}

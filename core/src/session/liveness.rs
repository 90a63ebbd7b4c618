//! Liveness from progress: a link that stops answering is suspected within a
//! bound derived from its round trip (see [`Liveness`]), instead of after
//! several keepalive intervals.
//!
//! The timer it arms moves rarely: a busy link (a request and its answer
//! every few microseconds) must not re-arm a timer per frame. The check is
//! armed when a frame leaves after an input and stays put until it fires;
//! only then does it look whether the peer has been silent since.

use core::time::Duration;

use super::{Session, Transmit};
use crate::config::Liveness;
use crate::event::Event;
use crate::time::Instant;

/// What the session tracks of the link's progress.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// When the peer last sent anything.
    last_input: Option<Instant>,
    /// When the first frame that needs an answer left after the last input.
    sent_since_input: Option<Instant>,
    /// When to look whether a probe is due.
    check_at: Option<Instant>,
    /// When the oldest ping sent since the last input goes unanswered too
    /// long (kept, not recomputed at every `poll_timeout`).
    suspect_at: Option<Instant>,
    /// The smallest round trip measured on this link.
    min_rtt: Option<Duration>,
    /// The longest the peer has lately taken to send anything after this
    /// side sent something that needs an answer (decaying): a link whose
    /// answers wait behind long queues, or come in bursts, is not suspected
    /// for the pauses it has always had.
    answer_delay_nanos: u64,
    /// Since when the link is suspect.
    suspect_since: Option<Instant>,
}

impl Progress {
    /// A link that starts at `now` (the first, or one a resumed session
    /// moved to): nothing known of it yet.
    pub(super) fn starting(now: Instant) -> Progress {
        Progress {
            last_input: Some(now),
            ..Progress::default()
        }
    }

    /// Whether the link is suspect.
    pub(super) fn is_suspect(&self) -> bool {
        self.suspect_since.is_some()
    }

    /// A ping was answered after `rtt`.
    pub(super) fn measured(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |min| min.min(rtt)));
    }

    /// The silence bound on this link (see [`Liveness`]): the configured
    /// one, and at least twice the pauses the link has lately shown.
    fn bound(&self, liveness: &Liveness) -> Duration {
        let pauses = Duration::from_nanos(self.answer_delay_nanos.saturating_mul(2));
        liveness.silence_bound(self.min_rtt).max(pauses)
    }
}

impl Session {
    /// The peer sent something at `now`: the link makes progress.
    pub(super) fn note_input(&mut self, now: Instant) {
        let progress = &mut self.progress;
        progress.last_input = Some(now);
        // Every ping still out was sent before this input.
        progress.suspect_at = None;
        if let Some(sent) = progress.sent_since_input.take() {
            // A slow answer counts at once; the memory of it fades by a
            // sixteenth with each answer after.
            let delay = now.as_nanos().saturating_sub(sent.as_nanos());
            let faded = progress.answer_delay_nanos - (progress.answer_delay_nanos >> 4);
            progress.answer_delay_nanos = delay.max(faded);
        }
        if progress.suspect_since.take().is_some() {
            tracing::debug!("suspect link responsive again");
            self.events.push_back(Event::LinkResponsive);
        }
        if progress.check_at.is_none() {
            self.arm_check_if_waiting(now);
        }
    }

    /// Waiting on the peer counts as having sent something it must answer:
    /// frames or data that wait to go out (a driver whose link stopped taking
    /// bytes, because the path went silent and the kernel's buffer is full,
    /// takes nothing more from the session; a stream whose window the peer
    /// no longer opens), and, with resumption, bytes the peer has not
    /// acknowledged. Otherwise nothing would be sent after the last input,
    /// and a silent path would never be suspected.
    fn arm_check_if_waiting(&mut self, now: Instant) {
        let Some(liveness) = &self.config.liveness else {
            return;
        };
        if self.send_buffered_total > 0 || self.replay_buffered() > 0 || self.has_transmit() {
            let progress = &mut self.progress;
            progress.sent_since_input.get_or_insert(now);
            progress.check_at = Some(now + progress.bound(liveness) / 2);
        }
    }

    /// `transmit` left at `now`: if the peer owes an answer to it, the
    /// silence that follows counts.
    #[inline]
    pub(super) fn note_sent(&mut self, now: Instant, transmit: &Transmit) {
        let progress = &mut self.progress;
        if progress.sent_since_input.is_some() {
            return;
        }
        let Some(liveness) = &self.config.liveness else {
            return;
        };
        if !transmit.needs_answer() {
            return;
        }
        progress.sent_since_input = Some(now);
        if progress.check_at.is_none() {
            progress.check_at = Some(now + progress.bound(liveness) / 2);
        }
    }

    /// When the liveness timer next needs to run.
    #[inline]
    pub(super) fn liveness_timeout(&self) -> Option<Instant> {
        let progress = &self.progress;
        let due = match (progress.suspect_at, progress.check_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Both are only ever set with liveness on.
        due.filter(|_| progress.suspect_since.is_none() && self.link_attached())
    }

    /// Runs the liveness timer: suspects the link, or sends a probe.
    pub(super) fn run_liveness(&mut self, now: Instant) {
        let Some(liveness) = self.config.liveness else {
            return;
        };
        if self.progress.suspect_since.is_some() || !self.link_attached() {
            return;
        }
        let bound = self.progress.bound(&liveness);
        let unanswered = self.progress.suspect_at;
        if unanswered.is_some_and(|at| at <= now) {
            let silent_for = self
                .progress
                .last_input
                .map_or(bound, |last| now.saturating_duration_since(last));
            tracing::debug!(?silent_for, "link suspect: no answer within the silence bound");
            self.progress.suspect_since = Some(now);
            self.events.push_back(Event::LinkSuspect { silent_for });
            return;
        }
        if !self.progress.check_at.is_some_and(|at| at <= now) {
            return;
        }
        self.progress.check_at = None;
        let Some(sent) = self.progress.sent_since_input else {
            self.arm_check_if_waiting(now);
            return;
        };
        // A probe asks after half the bound, so that an unanswered one is
        // suspected one and a half bounds after the frame.
        let delay = bound / 2;
        if sent + delay > now {
            // Sent more recently than the check was armed: look again then.
            self.progress.check_at = Some(sent + delay);
        } else if unanswered.is_none() {
            tracing::trace!("silent link: probing");
            self.send_ping(now, false);
        }
    }

    /// A ping left at `now`: the first since the last input must be answered
    /// (or anything else must come) within the bound.
    pub(super) fn note_ping_sent(&mut self, now: Instant) {
        if let Some(liveness) = &self.config.liveness {
            let progress = &mut self.progress;
            if progress.suspect_at.is_none() {
                progress.suspect_at = Some(now + progress.bound(liveness));
            }
        }
    }
}

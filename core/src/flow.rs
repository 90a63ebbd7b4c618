//! Receive-side flow control for one stream: how much the peer may still send, when
//! to grant more, and how far to grow the window.

use core::time::Duration;

use crate::time::Instant;

/// The receive window of one stream, in cumulative byte offsets so that nothing can
/// wrap: the peer may send up to `limit`, has sent `received`, and the application
/// has read `consumed`. Buffered bytes are `received - consumed <= window`.
#[derive(Clone, Debug)]
pub(crate) struct RecvWindow {
    window: u32,
    limit: u64,
    received: u64,
    consumed: u64,
    last_grant: Option<Instant>,
}

impl RecvWindow {
    /// A window of `window` bytes of which the peer already knows `granted`.
    pub(crate) fn new(window: u32, granted: u32) -> Self {
        RecvWindow {
            window,
            limit: u64::from(granted),
            received: 0,
            consumed: 0,
            last_grant: None,
        }
    }

    /// The current window size.
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// How many more bytes the peer may send.
    pub(crate) fn credit(&self) -> u64 {
        self.limit - self.received
    }

    /// Bytes received and not yet read.
    pub(crate) fn buffered(&self) -> u64 {
        self.received - self.consumed
    }

    /// Accounts for `len` bytes announced by a data frame; the caller has checked
    /// `len <= credit()`.
    pub(crate) fn on_received(&mut self, len: u32) {
        debug_assert!(u64::from(len) <= self.credit());
        self.received += u64::from(len);
    }

    /// Accounts for `len` bytes the application read.
    pub(crate) fn on_consumed(&mut self, len: usize) {
        self.consumed += len as u64;
        debug_assert!(self.consumed <= self.received);
    }

    /// Whether enough has been read that a window update is worth a frame: half the
    /// window, as in yamux, so updates stay rare but the pipe never drains.
    pub(crate) fn update_due(&self) -> bool {
        self.pending() >= u64::from(self.window / 2)
    }

    fn pending(&self) -> u64 {
        (self.consumed + u64::from(self.window)).saturating_sub(self.limit)
    }

    /// Takes the window update to send now (0: none), first growing the window when
    /// the reader drains it faster than two round trips, which means the window, not
    /// the reader, limits throughput. Growth doubles up to `max_window` and draws on
    /// `budget_left`, which is reduced by what the window grows.
    ///
    /// A window smaller than `catch_up_to` (the largest another stream of the
    /// session has earned) also grows while its reader keeps up. Without that,
    /// streams that start on a loaded link rarely grow: queueing behind the
    /// others makes their grants look slow against a round trip measured while
    /// the link was quiet, and the streams that started first keep most of it.
    pub(crate) fn take_update(
        &mut self,
        now: Instant,
        rtt: Option<Duration>,
        max_window: u32,
        catch_up_to: u32,
        budget_left: &mut u64,
    ) -> u32 {
        let pending = self.pending();
        if pending == 0 {
            return 0;
        }
        let fast = match (rtt, self.last_grant) {
            (Some(rtt), Some(last)) => now.saturating_duration_since(last) < rtt * 2,
            _ => false,
        };
        // A reader that lets data pile up is not held back by the window.
        let keeping_up = self.buffered() <= u64::from(self.window / 4);
        let behind = keeping_up && self.window < catch_up_to;
        if (fast || behind) && self.window < max_window {
            let grown = self.window.saturating_mul(2).min(max_window);
            let extra = u64::from(grown - self.window).min(*budget_left);
            // `extra` fits in u32: it is at most `grown - window`.
            let extra = u32::try_from(extra).unwrap_or(0);
            self.window += extra;
            *budget_left -= u64::from(extra);
        }
        self.last_grant = Some(now);
        let new_limit = self.consumed + u64::from(self.window);
        // The window never exceeds u32::MAX and `limit >= consumed`, so the delta fits.
        let delta = u32::try_from(new_limit - self.limit).unwrap_or(u32::MAX);
        self.limit += u64::from(delta);
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_comes_after_half_the_window_is_read() {
        let mut flow = RecvWindow::new(1000, 1000);
        flow.on_received(1000);
        assert_eq!(flow.credit(), 0);
        flow.on_consumed(499);
        assert!(!flow.update_due());
        flow.on_consumed(1);
        assert!(flow.update_due());
        let mut budget = 0;
        assert_eq!(flow.take_update(Instant::ZERO, None, 1000, 0, &mut budget), 500);
        assert_eq!(flow.credit(), 500);
        assert_eq!(flow.buffered(), 500);
    }

    /// `rounds` times: the peer sends all the credit it has, the reader reads
    /// `1 / read_divisor` of what arrived, and the window update is taken `gap`
    /// after the previous one, against a 10 ms round trip.
    fn run_rounds(
        flow: &mut RecvWindow,
        rounds: usize,
        gap: Duration,
        read_divisor: usize,
        catch_up_to: u32,
        budget: &mut u64,
    ) {
        let rtt = Some(Duration::from_millis(10));
        let mut now = Instant::ZERO;
        for _ in 0..rounds {
            // The credit never exceeds the window, which is a u32.
            let credit = u32::try_from(flow.credit()).unwrap_or(u32::MAX);
            flow.on_received(credit);
            flow.on_consumed(credit as usize / read_divisor);
            flow.take_update(now, rtt, 8000, catch_up_to, budget);
            now = now + gap;
        }
    }

    #[test]
    fn window_doubles_when_drained_within_two_rtts_and_respects_the_budget() {
        let mut flow = RecvWindow::new(1000, 1000);
        let mut budget = 1500;
        run_rounds(&mut flow, 4, Duration::from_millis(5), 1, 0, &mut budget);
        // 1000 -> 2000 -> 2500 (budget exhausted), never past it.
        assert_eq!(flow.window(), 2500);
        assert_eq!(budget, 0);
        assert!(flow.buffered() <= u64::from(flow.window()));
    }

    #[test]
    fn slow_reader_keeps_the_window() {
        let mut flow = RecvWindow::new(1000, 1000);
        let mut budget = u64::MAX;
        run_rounds(&mut flow, 4, Duration::from_millis(100), 1, 0, &mut budget);
        assert_eq!(flow.window(), 1000);
    }

    #[test]
    fn a_window_behind_the_sessions_largest_catches_up_while_its_reader_keeps_up() {
        // Grants 100 ms apart against a 10 ms round trip: slow, so only the
        // catch-up can grow the window, doubling up to the largest (4000).
        let mut budget = u64::MAX;
        let mut flow = RecvWindow::new(1000, 1000);
        run_rounds(&mut flow, 4, Duration::from_millis(100), 1, 4000, &mut budget);
        assert_eq!(flow.window(), 4000);

        // A reader that leaves half of what arrived unread does not grow its
        // window, however large the others are.
        let mut flow = RecvWindow::new(1000, 1000);
        run_rounds(&mut flow, 4, Duration::from_millis(100), 2, 4000, &mut budget);
        assert_eq!(flow.window(), 1000);
    }
}

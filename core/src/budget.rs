//! Per-second budgets for things a hostile peer could make us do cheaply and endlessly.

use core::time::Duration;

use crate::time::Instant;

/// Counts events in fixed one-second windows of the caller's clock.
#[derive(Clone, Debug)]
pub(crate) struct RateBudget {
    limit: u32,
    window_start: Instant,
    used: u32,
}

impl RateBudget {
    pub(crate) fn new(limit: u32, now: Instant) -> Self {
        RateBudget {
            limit,
            window_start: now,
            used: 0,
        }
    }

    /// Spends one unit; false when the budget of the current second is gone.
    pub(crate) fn spend(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        self.used = self.used.saturating_add(1);
        self.used <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refills_each_second() {
        let start = Instant::ZERO;
        let mut budget = RateBudget::new(2, start);
        assert!(budget.spend(start));
        assert!(budget.spend(start));
        assert!(!budget.spend(start + Duration::from_millis(999)));
        assert!(budget.spend(start + Duration::from_secs(1)));
    }
}

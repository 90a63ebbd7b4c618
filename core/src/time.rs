//! Time as the core sees it: a value the caller passes in, never a clock it reads.

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the caller's monotonic clock, in nanoseconds since an origin of the
/// caller's choosing.
///
/// The core never reads a clock: every method that needs the time takes an
/// `Instant`. Adapters usually count from the moment they created the session:
///
/// ```
/// use hawser_core::Instant;
/// use core::time::Duration;
///
/// let start = Instant::ZERO;
/// let later = start + Duration::from_millis(250);
/// assert_eq!(later.saturating_duration_since(start), Duration::from_millis(250));
/// assert_eq!(start.saturating_duration_since(later), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The origin of the caller's clock.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant { nanos }
    }

    /// The time since the origin, as a [`Duration`].
    pub const fn since_origin(self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// How long after `earlier` this instant is, or zero if it is not later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates at the far end of the clock instead of overflowing, so that a huge
    /// configured timeout means "never" rather than a panic.
    fn add(self, rhs: Duration) -> Instant {
        let add = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant {
            nanos: self.nanos.saturating_add(add),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

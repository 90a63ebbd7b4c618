//! The identifiers and codes every other module speaks of: stream ids, the
//! hasher for maps keyed by them, and the codes carried by resets and
//! go-aways. A leaf: it depends on nothing else in the crate.

use core::fmt;
use core::hash::Hasher;

/// A stream's id: odd for streams the client opened, even for the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub(crate) u32);

impl StreamId {
    /// The id as it appears on the wire.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Whether the client side opened this stream.
    pub const fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Codes carried by go-away frames. yamux defines 0 to 2; the native profile adds
/// the rest. Applications may use their own codes from [`GoAwayCode::APPLICATION_MIN`] up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GoAwayCode(pub u32);

impl GoAwayCode {
    /// Orderly shutdown.
    pub const NORMAL: GoAwayCode = GoAwayCode(0);
    /// The sender saw the receiver break the protocol.
    pub const PROTOCOL_ERROR: GoAwayCode = GoAwayCode(1);
    /// The sender failed for reasons of its own.
    pub const INTERNAL_ERROR: GoAwayCode = GoAwayCode(2);
    /// Native: the hello was missing, malformed or incompatible.
    pub const HANDSHAKE_FAILED: GoAwayCode = GoAwayCode(3);
    /// Native: the receiver exceeded one of the sender's abuse budgets.
    pub const LIMIT_EXCEEDED: GoAwayCode = GoAwayCode(4);
    /// Resume refused: no resumable session with that id and token (unknown,
    /// expired or ended, or a wrong or replaced token; one answer for all).
    pub const RESUME_NO_SUCH_SESSION: GoAwayCode = GoAwayCode(5);
    /// Resume refused: the received offset does not match what was sent.
    pub const RESUME_BAD_OFFSET: GoAwayCode = GoAwayCode(8);
    /// Resume refused without looking: too many failed attempts lately from
    /// this source or for this id. The only refusal worth retrying (later).
    pub const RESUME_RATE_LIMITED: GoAwayCode = GoAwayCode(9);
    /// The first code reserved for applications.
    pub const APPLICATION_MIN: u32 = 0x100;

    /// Whether this code reports a failure rather than an orderly shutdown.
    pub const fn is_error(self) -> bool {
        self.0 != 0
    }
}

/// Codes carried by native stream resets. yamux resets carry no code; see
/// [`ResetCode::REFUSED`] for how they are reported. Applications may use their own
/// codes from [`ResetCode::APPLICATION_MIN`] up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResetCode(pub u32);

impl ResetCode {
    /// Reset without a more specific reason; every yamux reset after the stream was
    /// acknowledged reads as this.
    pub const CANCEL: ResetCode = ResetCode(0);
    /// The peer did not take the stream (limits, full backlog, going away). In the
    /// yamux profile, a reset that arrives before the acknowledgement reads as this.
    pub const REFUSED: ResetCode = ResetCode(1);
    /// The peer did not acknowledge the open within `open_timeout`.
    pub const OPEN_TIMEOUT: ResetCode = ResetCode(2);
    /// The peer did not close its side within `close_timeout`.
    pub const CLOSE_TIMEOUT: ResetCode = ResetCode(3);
    /// The go-away drain deadline passed with the stream still open.
    pub const DRAIN_TIMEOUT: ResetCode = ResetCode(4);
    /// Request/response helpers: a message longer than the receiver's maximum.
    pub const MESSAGE_TOO_LARGE: ResetCode = ResetCode(5);
    /// Request/response helpers: a message cut short, or data after it.
    pub const MALFORMED_MESSAGE: ResetCode = ResetCode(6);
    /// The first code reserved for applications.
    pub const APPLICATION_MIN: u32 = 0x100;
}

impl fmt::Display for ResetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            ResetCode::CANCEL => "cancel",
            ResetCode::REFUSED => "refused",
            ResetCode::OPEN_TIMEOUT => "open timeout",
            ResetCode::CLOSE_TIMEOUT => "close timeout",
            ResetCode::DRAIN_TIMEOUT => "drain timeout",
            ResetCode::MESSAGE_TOO_LARGE => "message too large",
            ResetCode::MALFORMED_MESSAGE => "malformed message",
            _ => return write!(f, "code {}", self.0),
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// A deterministic hasher for stream ids (a multiply-xorshift mix), for maps
/// keyed by them: the session's, and the adapters' wakers per stream (std's
/// SipHash costs more than the rest of a map lookup). Ids are chosen by the
/// peer, so collisions can be forced; the number of live streams is bounded by
/// `max_streams`, which bounds the harm. Not for keys without such a bound.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        let mixed = (self.0 ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = mixed ^ (mixed >> 29);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn id_hasher_spreads_sequential_ids() {
        let hash = |id: u32| {
            let mut hasher = IdHasher::default();
            hasher.write_u32(id);
            hasher.finish()
        };
        let mut low_bits: Vec<u64> = (1..=64).map(|id| hash(id * 2) & 63).collect();
        low_bits.sort_unstable();
        low_bits.dedup();
        assert!(
            low_bits.len() > 32,
            "sequential ids collide too often: {}",
            low_bits.len()
        );
    }
}

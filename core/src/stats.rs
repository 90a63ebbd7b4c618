//! Counters for monitoring.

use core::time::Duration;

/// Counters a session keeps, read with [`Session::stats`](crate::Session::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received from the link.
    pub bytes_in: u64,
    /// Bytes handed to the link through `poll_transmit`.
    pub bytes_out: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Stream payload bytes received.
    pub payload_in: u64,
    /// Stream payload bytes sent.
    pub payload_out: u64,
    /// Received payload bytes copied out of the input because they stayed
    /// unread while much more input arrived (they would have kept the input
    /// buffers they were cut from alive).
    pub bytes_compacted: u64,
    /// Streams this side opened.
    pub streams_opened: u64,
    /// Inbound streams the application accepted.
    pub streams_accepted: u64,
    /// Inbound streams this side refused (limits, backlog, going away).
    pub streams_refused: u64,
    /// Resets this side sent.
    pub resets_sent: u64,
    /// Resets the peer sent.
    pub resets_received: u64,
    /// Pings this side sent (keepalive and explicit).
    pub pings_sent: u64,
    /// Keepalive pings that went unanswered within the ping timeout.
    pub pings_missed: u64,
    /// Pings from the peer that this side answered.
    pub pings_answered: u64,
    /// The most send credit the peer granted any one stream at a time. Above the
    /// initial window (256 KiB) it shows that the peer grew its receive window.
    pub send_window_peak: u64,
    /// Resumption: times the session continued over a new link.
    pub resumes: u64,
    /// Resumption: bytes sent again after a resume because the peer had not
    /// received them.
    pub bytes_replayed: u64,
    /// Resumption: the most unacknowledged bytes the replay buffer held at once.
    pub replay_peak: u64,
    /// The last RTT measured.
    pub rtt_last: Option<Duration>,
    /// The smoothed RTT (7/8 old + 1/8 new).
    pub rtt_smoothed: Option<Duration>,
}

//! Per-stream state.

use alloc::collections::VecDeque;
use bytes::{Bytes, BytesMut};

use crate::flow::RecvWindow;
use crate::ids::ResetCode;
use crate::time::Instant;

pub use crate::ids::StreamId;

/// Everything the session knows about one stream.
#[derive(Debug)]
pub(crate) struct StreamState {
    /// This side opened it.
    pub outbound: bool,
    /// Outbound: always. Inbound: the application took it from the accept queue.
    pub accepted: bool,
    /// Outbound: the peer acknowledged it. Inbound: accepted and the ACK is queued.
    pub acknowledged: bool,
    pub syn_pending: bool,
    pub ack_pending: bool,
    pub rst_pending: Option<ResetCode>,
    pub in_control_queue: bool,
    pub in_send_queue: bool,

    pub send_buf: VecDeque<Bytes>,
    pub send_buffered: usize,
    /// How much more the peer lets us send.
    pub send_window: u64,
    pub fin_queued: bool,
    pub fin_sent: bool,

    pub recv_buf: RecvBuffer,
    pub flow: RecvWindow,
    pub fin_received: bool,
    pub eof_read: bool,

    pub reset: Option<ResetCode>,
    /// The reason that came with the reset, this side's or the peer's
    /// (native profile, at most `MAX_REASON` bytes).
    pub reason: Option<alloc::boxed::Box<str>>,
    pub reset_observed: bool,
    pub want_readable: bool,
    pub want_writable: bool,
    /// Whether the stream waits in the session's list of writers blocked on the
    /// session-wide send buffer (so that it is listed once, however often it polls).
    pub in_write_blocked: bool,
    /// The session's wake round (`write_round`) in which the stream was last
    /// waiting for room in the session-wide send buffer, if it has not written
    /// since: while that is the current round, it counts in `write_waiting`,
    /// which a woken writer keeps seeing until each waiting stream had its turn.
    pub waiting_round: Option<u32>,
    pub open_deadline: Option<Instant>,
    pub close_deadline: Option<Instant>,
    /// When payload last arrived; the close timer counts from here.
    pub last_received: Option<Instant>,
}

impl StreamState {
    pub(crate) fn new(outbound: bool, send_window: u32, flow: RecvWindow) -> Self {
        StreamState {
            outbound,
            accepted: outbound,
            acknowledged: false,
            syn_pending: outbound,
            ack_pending: false,
            rst_pending: None,
            in_control_queue: false,
            in_send_queue: false,
            send_buf: VecDeque::new(),
            send_buffered: 0,
            send_window: u64::from(send_window),
            fin_queued: false,
            fin_sent: false,
            recv_buf: RecvBuffer::default(),
            flow,
            fin_received: false,
            eof_read: false,
            reset: None,
            reason: None,
            reset_observed: false,
            want_readable: true,
            want_writable: false,
            in_write_blocked: false,
            waiting_round: None,
            open_deadline: None,
            close_deadline: None,
            last_received: None,
        }
    }

    /// Whether the data scheduler has something to send for this stream.
    pub(crate) fn has_sendable(&self) -> bool {
        self.reset.is_none()
            && ((self.send_buffered > 0 && self.send_window > 0)
                || (self.fin_queued && !self.fin_sent && self.send_buffered == 0))
    }

    /// Whether the stream is over and the application has seen how: its state can go.
    pub(crate) fn is_finished(&self) -> bool {
        match self.reset {
            // An application that already read to the end and finished has nothing
            // left to learn from the stream; the reset event told it the rest.
            Some(_) => {
                let seen = self.reset_observed || !self.accepted || (self.eof_read && self.fin_queued);
                seen && self.rst_pending.is_none()
            }
            None => self.fin_sent && self.eof_read,
        }
    }

    /// Drops every buffered byte in both directions; returns the unsent bytes dropped.
    pub(crate) fn discard_buffers(&mut self) -> usize {
        self.recv_buf.clear();
        self.send_buf.clear();
        core::mem::take(&mut self.send_buffered)
    }
}

/// Payload slices shorter than this are copied out of the input (and coalesced),
/// so that a tiny frame cannot pin a large input buffer, and a byte stream that
/// arrives in tiny pieces is read back in large ones.
pub(crate) const COPY_BELOW: usize = 512;

/// Received bytes of one stream, in order: zero-copy slices of the input for large
/// pieces, one growing buffer for runs of small ones.
#[derive(Debug, Default)]
pub(crate) struct RecvBuffer {
    /// Pieces in arrival order.
    chunks: VecDeque<Piece>,
    /// Small pieces, copied and coalesced.
    tail: BytesMut,
}

/// A received piece and whether it still shares the input's memory.
#[derive(Debug)]
struct Piece {
    bytes: Bytes,
    /// For a slice of the input (zero-copy): the session's input count when it
    /// arrived. Such a piece keeps its whole input buffer alive, which may be
    /// far larger than the piece; `None` once the piece has memory of its own.
    shared_since: Option<u64>,
}

impl RecvBuffer {
    /// Appends `chunk`, a slice of the input; `input_mark` is the session's
    /// input count now.
    pub(crate) fn push(&mut self, chunk: Bytes, input_mark: u64) {
        if chunk.len() < COPY_BELOW {
            self.tail.extend_from_slice(&chunk);
            return;
        }
        if !self.tail.is_empty() {
            self.chunks.push_back(Piece {
                bytes: self.tail.split().freeze(),
                shared_since: None,
            });
        }
        self.chunks.push_back(Piece {
            bytes: chunk,
            shared_since: Some(input_mark),
        });
    }

    /// Up to `max` (at least 1) bytes from the front, or `None` when empty.
    pub(crate) fn pop(&mut self, max: usize) -> Option<Bytes> {
        if let Some(front) = self.chunks.front_mut() {
            if front.bytes.len() > max {
                return Some(front.bytes.split_to(max));
            }
            let chunk = self.chunks.pop_front().map(|piece| piece.bytes);
            if self.chunks.is_empty() {
                // An idle stream keeps no allocation of its own.
                self.chunks = VecDeque::new();
            }
            return chunk;
        }
        if self.tail.is_empty() {
            return None;
        }
        let take = max.min(self.tail.len());
        let chunk = self.tail.split_to(take).freeze();
        if self.tail.is_empty() {
            self.tail = BytesMut::new();
        }
        Some(chunk)
    }

    /// Copies the pieces that arrived at or before input count `horizon` and
    /// still share the input's memory into memory of their own (a run of them
    /// into one allocation), so that they no longer keep input buffers alive.
    /// Returns the bytes copied. Each piece is copied at most once.
    pub(crate) fn compact_older_than(&mut self, horizon: u64) -> usize {
        let is_old = |piece: &Piece| piece.shared_since.is_some_and(|since| since <= horizon);
        if !self.chunks.iter().any(is_old) {
            return 0;
        }
        // One pass into a new queue: splicing runs in place would shift the
        // rest of the queue once per run.
        let mut copied = 0;
        let mut kept = VecDeque::with_capacity(self.chunks.len());
        let mut run: Option<BytesMut> = None;
        for piece in core::mem::take(&mut self.chunks) {
            if is_old(&piece) {
                copied += piece.bytes.len();
                run.get_or_insert_with(BytesMut::new).extend_from_slice(&piece.bytes);
                continue;
            }
            if let Some(owned) = run.take() {
                kept.push_back(Piece {
                    bytes: owned.freeze(),
                    shared_since: None,
                });
            }
            kept.push_back(piece);
        }
        if let Some(owned) = run.take() {
            kept.push_back(Piece {
                bytes: owned.freeze(),
                shared_since: None,
            });
        }
        self.chunks = kept;
        copied
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.tail = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_receive_buffer_keeps_no_allocation() {
        let mut buf = RecvBuffer::default();
        buf.push(Bytes::from_static(b"small"), 0);
        buf.push(Bytes::from(alloc::vec![1u8; COPY_BELOW * 2]), 0);
        buf.push(Bytes::from_static(b"tail"), 0);
        let mut read = alloc::vec::Vec::new();
        while let Some(chunk) = buf.pop(100) {
            read.extend_from_slice(&chunk);
        }
        assert_eq!(read.len(), 5 + COPY_BELOW * 2 + 4);
        assert!(read.starts_with(b"small") && read.ends_with(b"tail"));
        assert!(buf.is_empty());
        assert_eq!(buf.chunks.capacity(), 0);
        assert_eq!(buf.tail.capacity(), 0);
    }

    #[test]
    fn compaction_copies_old_shared_pieces_once_and_keeps_the_bytes_in_order() {
        let mut buf = RecvBuffer::default();
        let input = Bytes::from(alloc::vec![7u8; COPY_BELOW * 8]);
        buf.push(input.slice(..COPY_BELOW), 10);
        buf.push(Bytes::from_static(b"small"), 20);
        buf.push(input.slice(COPY_BELOW..COPY_BELOW * 3), 30);
        buf.push(input.slice(COPY_BELOW * 3..COPY_BELOW * 4), 40);
        buf.push(input.slice(COPY_BELOW * 4..), 100);
        // Everything up to input count 40 is old; the last piece is not.
        assert_eq!(buf.compact_older_than(40), COPY_BELOW * 4);
        assert_eq!(buf.compact_older_than(40), 0, "copied once");
        let shared: alloc::vec::Vec<_> = buf.chunks.iter().map(|piece| piece.shared_since).collect();
        // The small piece (copied on arrival) stays apart; the two old pieces
        // after it became one.
        assert_eq!(shared, [None, None, None, Some(100)]);
        let mut read = alloc::vec::Vec::new();
        while let Some(chunk) = buf.pop(usize::MAX) {
            read.extend_from_slice(&chunk);
        }
        let mut expected = alloc::vec![7u8; COPY_BELOW];
        expected.extend_from_slice(b"small");
        expected.extend(core::iter::repeat(7u8).take(COPY_BELOW * 7));
        assert_eq!(read, expected);
    }
}

//! Stream identity and per-stream state.

use alloc::collections::VecDeque;
use bytes::{Bytes, BytesMut};
use core::fmt;

use crate::error::ResetCode;
use crate::flow::RecvWindow;
use crate::time::Instant;

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
    pub reset_observed: bool,
    pub want_readable: bool,
    pub want_writable: bool,
    /// Whether the stream waits in the session's list of writers blocked on the
    /// session-wide send buffer (so that it is listed once, however often it polls).
    pub in_write_blocked: bool,
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
            reset_observed: false,
            want_readable: true,
            want_writable: false,
            in_write_blocked: false,
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
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
}

impl RecvBuffer {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if chunk.len() < COPY_BELOW {
            self.tail.extend_from_slice(&chunk);
            return;
        }
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
        self.chunks.push_back(chunk);
    }

    /// Up to `max` (at least 1) bytes from the front, or `None` when empty.
    pub(crate) fn pop(&mut self, max: usize) -> Option<Bytes> {
        if let Some(front) = self.chunks.front_mut() {
            if front.len() > max {
                return Some(front.split_to(max));
            }
            let chunk = self.chunks.pop_front();
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
        buf.push(Bytes::from_static(b"small"));
        buf.push(Bytes::from(alloc::vec![1u8; COPY_BELOW * 2]));
        buf.push(Bytes::from_static(b"tail"));
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
}

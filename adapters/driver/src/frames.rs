//! Frames taken from a session and waiting for the link: one queue that every
//! adapter's writer uses, so that batching, vectoring and partial writes are
//! handled in one place.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use hawser_core::{Instant, Session};

/// How many bytes of frames are taken from the session before they are written.
pub const WRITE_BATCH: usize = 512 * 1024;
/// How many slices one vectored write passes at most.
pub const MAX_SLICES: usize = 64;
/// Headers are carved out of one buffer of this many bytes, so that a frame costs
/// no allocation of its own.
const HEADER_ARENA: usize = 12 * 1024;

/// Encoded frames in order: headers carved from a shared arena, payloads as the
/// application's own `Bytes`.
#[derive(Default)]
pub struct FrameQueue {
    pieces: VecDeque<Bytes>,
    bytes: usize,
    headers: BytesMut,
}

impl FrameQueue {
    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Drops everything queued (the link is gone).
    pub fn clear(&mut self) {
        self.pieces.clear();
        self.bytes = 0;
    }

    /// Takes frames from `session` until [`WRITE_BATCH`] bytes are queued or it has
    /// nothing more to send.
    pub fn fill(&mut self, session: &mut Session, now: Instant) {
        while self.bytes < WRITE_BATCH {
            let Some(transmit) = session.poll_transmit(now) else {
                break;
            };
            let (header, payload) = transmit.into_parts();
            if self.headers.capacity() < header.len() {
                self.headers = BytesMut::with_capacity(HEADER_ARENA);
            }
            self.headers.extend_from_slice(&header);
            self.pieces.push_back(self.headers.split().freeze());
            self.bytes += header.len() + payload.len();
            if !payload.is_empty() {
                self.pieces.push_back(payload);
            }
        }
    }

    /// Fills `slices` with the front of the queue; returns how many were filled.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut count = 0;
        for (slot, piece) in slices.iter_mut().zip(&self.pieces) {
            *slot = IoSlice::new(piece);
            count += 1;
        }
        count
    }

    /// Removes `written` bytes from the front after a (possibly partial) write.
    pub fn advance(&mut self, mut written: usize) {
        self.bytes -= written;
        while written > 0 {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            if front.len() <= written {
                written -= front.len();
                self.pieces.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
}

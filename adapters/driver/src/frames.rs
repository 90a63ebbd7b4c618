//! Frames taken from a session and waiting for the link: one queue that every
//! adapter's writer uses, so that batching, vectoring and partial writes are
//! handled in one place.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes, BytesMut};
use hawser_core::{Instant, Session};

/// How many bytes of frames are taken from the session before they are written.
pub const WRITE_BATCH: usize = 512 * 1024;
/// How many slices one vectored write passes at most.
pub const MAX_SLICES: usize = 64;
/// Headers, and small payloads, are copied into one buffer of up to this many
/// bytes, so that a frame costs no allocation of its own and a run of small
/// frames is one slice of a vectored write.
const ARENA: usize = 16 * 1024;
/// The first arena of a queue: a quiet session (keepalives, a few acks) never
/// needs more, and thousands of idle sessions should not hold 16 KiB each. Each
/// arena that fills up is followed by one twice its size, up to [`ARENA`].
const FIRST_ARENA: usize = 512;
/// A piece list with room for more than this many pieces counts as grown
/// (see [`FrameQueue::is_grown`]).
const QUIET_PIECES: usize = 8;
/// Payloads up to this size are copied next to their header; larger ones are
/// passed to the link as they are.
const INLINE_PAYLOAD: usize = 512;

/// Encoded frames in order: headers and small payloads copied into a shared arena,
/// larger payloads as the application's own `Bytes`.
#[derive(Default)]
pub struct FrameQueue {
    pieces: VecDeque<Bytes>,
    bytes: usize,
    arena: BytesMut,
    /// The size the current arena was made with.
    arena_size: usize,
}

impl FrameQueue {
    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// How many bytes wait to be written.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the queue holds more memory than a quiet session needs: a
    /// grown arena, or room for many pieces.
    pub fn is_grown(&self) -> bool {
        self.arena_size > FIRST_ARENA || self.pieces.capacity() > QUIET_PIECES
    }

    /// Gives back what a busy link made the queue grow, once it is empty: a
    /// session that moved data once and then sits idle should not keep its
    /// 16 KiB arena and a piece list sized for a 512 KiB batch.
    pub fn shrink_when_empty(&mut self) {
        if self.pieces.is_empty() {
            *self = FrameQueue::default();
        }
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
            self.bytes += header.len() + payload.len();
            let inline = payload.len() <= INLINE_PAYLOAD;
            let need = header.len() + if inline { payload.len() } else { 0 };
            if self.arena.capacity() - self.arena.len() < need {
                self.seal();
                self.arena_size = (self.arena_size * 2).clamp(FIRST_ARENA, ARENA).max(need);
                self.arena = BytesMut::with_capacity(self.arena_size);
            }
            self.arena.extend_from_slice(&header);
            if inline {
                self.arena.extend_from_slice(&payload);
            } else {
                self.seal();
                self.pieces.push_back(payload);
            }
        }
        self.seal();
    }

    /// Queues what the arena gathered since the last piece as one piece.
    fn seal(&mut self) {
        if !self.arena.is_empty() {
            self.pieces.push_back(self.arena.split().freeze());
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

    /// One vectored write of the front of the queue to a blocking `writer`;
    /// removes and returns what it took. Interrupted writes are retried, and a
    /// write of nothing is an error (`WriteZero`).
    pub fn write_once(&mut self, writer: &mut impl Write) -> io::Result<usize> {
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.slices(&mut slices);
            match writer.write_vectored(&slices[..count]) {
                Ok(0) if count > 0 => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    self.advance(written);
                    return Ok(written);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use hawser_core::{Config, Role};

    /// Client frames through a queue, written in pieces of `chunk` bytes, must
    /// reach a server intact and in order.
    fn deliver(queue: &mut FrameQueue, server: &mut Session, chunk: usize) {
        while !queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = queue.slices(&mut slices);
            let mut wire = Vec::new();
            for slice in &slices[..count] {
                wire.extend_from_slice(slice);
            }
            let take = wire.len().min(chunk);
            server.handle_input(Instant::ZERO, Bytes::copy_from_slice(&wire[..take]));
            queue.advance(take);
        }
    }

    fn read_all(server: &mut Session, id: hawser_core::StreamId) -> Vec<u8> {
        let mut got = Vec::new();
        while let Ok(Some(chunk)) = server.stream(id).read(usize::MAX) {
            got.extend_from_slice(&chunk);
        }
        got
    }

    /// Thousands of quiet sessions must not hold 16 KiB of frame arena each:
    /// a handshake and a few pings fit in the first, small arena, and a busy
    /// queue grows its arenas step by step.
    #[test]
    fn a_quiet_queue_keeps_a_small_arena_and_a_busy_one_grows_it() {
        let now = Instant::ZERO;
        let mut client = Session::new(Role::Client, Config::default(), now).expect("default config is valid");
        let mut queue = FrameQueue::default();
        queue.fill(&mut client, now);
        assert!(client.ping(now).is_ok());
        queue.fill(&mut client, now);
        assert!(!queue.is_empty());
        assert_eq!(queue.arena_size, FIRST_ARENA);

        let mut server = Session::new(Role::Server, Config::default(), now).expect("default config is valid");
        deliver(&mut queue, &mut server, usize::MAX);
        let ids: Vec<_> = (0..200).map(|_| client.open(now).expect("room to open")).collect();
        for id in &ids {
            assert!(client.stream(*id).write(Bytes::from_static(b"small")).is_ok());
        }
        queue.fill(&mut client, now);
        assert!(queue.arena_size > FIRST_ARENA, "a busy queue grows its arenas");
        assert!(queue.arena_size <= ARENA);
        deliver(&mut queue, &mut server, usize::MAX);
        let inbound: Vec<_> = std::iter::from_fn(|| server.accept()).collect();
        assert_eq!(inbound.len(), ids.len());
        for id in &inbound {
            assert_eq!(read_all(&mut server, *id), b"small");
        }
    }

    #[test]
    fn small_frames_share_a_slice_and_large_payloads_keep_their_own() {
        let now = Instant::ZERO;
        let mut client = Session::new(Role::Client, Config::default(), now).expect("default config is valid");
        let mut server = Session::new(Role::Server, Config::default(), now).expect("default config is valid");
        let mut queue = FrameQueue::default();
        // The handshake first, so that only stream frames are measured below.
        queue.fill(&mut client, now);
        deliver(&mut queue, &mut server, usize::MAX);

        let small = client.open(now).expect("room to open");
        let large = client.open(now).expect("room to open");
        let big = Bytes::from(vec![7u8; 4096]);
        for round in 0..10u8 {
            assert!(client.stream(small).write(Bytes::from(vec![round; 40])).is_ok());
        }
        assert!(client.stream(large).write(big.clone()).is_ok());
        queue.fill(&mut client, now);

        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = queue.slices(&mut slices);
        // The large payload is passed on as it is (the same memory, no copy); the
        // small frames and every header gather into the arena pieces around it.
        let lens: Vec<usize> = slices[..count].iter().map(|s| s.len()).collect();
        // Twelve frames, but few pieces: a run of small frames is one piece, or
        // two where it fills an arena and carries on in the next, larger one.
        assert!(count <= 4, "pieces: {lens:?}");
        let zero_copy = slices[..count].iter().filter(|s| s.as_ptr() == big.as_ptr()).count();
        assert_eq!(zero_copy, 1, "pieces: {lens:?}");

        // Partial writes at awkward sizes still deliver everything in order.
        deliver(&mut queue, &mut server, 7);
        let first = server.accept().expect("the small stream arrived");
        let second = server.accept().expect("the large stream arrived");
        assert_eq!((first, second), (small, large));
        let expected: Vec<u8> = (0..10u8).flat_map(|round| vec![round; 40]).collect();
        assert_eq!(read_all(&mut server, small), expected);
        assert_eq!(read_all(&mut server, large), big.to_vec());
    }
}

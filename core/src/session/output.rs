//! Output: which frame goes next. Session control first (hello, pings, pongs,
//! go-away, refusals), then stream control (opens, acknowledgements, window
//! updates, resets), then data round-robin across streams, so that liveness and
//! flow control are never stuck behind bulk data.

use alloc::collections::VecDeque;
use bytes::Bytes;

use super::{Phase, Session};
use crate::event::Event;
use crate::frame::{Flags, FrameType, Header, Profile, HEADER_LEN};
use crate::stream::StreamId;
use crate::time::Instant;

/// One frame to write to the link: a 12-byte header and a payload that shares
/// memory with what the application wrote (no copy). Write both, in order; with
/// vectored I/O many transmits can go out in one system call.
///
/// After a resume, the first frame sent again may start part-way through (the
/// peer already has its beginning): then the header is shorter than 12 bytes,
/// or empty.
///
/// Its `Debug` output shows the header and the payload's length, never the
/// payload: application data, or a resume ticket, must not end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    header: [u8; HEADER_LEN],
    header_len: u8,
    payload: Bytes,
}

impl core::fmt::Debug for Transmit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transmit")
            .field("header", &self.header())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Transmit {
    /// Whether the peer answers this frame: data (with window updates or
    /// acknowledgements), a window update (with data, or an open's
    /// acknowledgement), a ping request. Ping replies, acknowledgements,
    /// go-aways and handshake frames are not answered.
    pub(crate) fn needs_answer(&self) -> bool {
        if usize::from(self.header_len) != HEADER_LEN {
            return false;
        }
        let ty = self.header[1];
        if ty == FrameType::Data.to_u8() || ty == FrameType::WindowUpdate.to_u8() {
            return true;
        }
        // A ping: a request (SYN) is answered, a reply (ACK) is not.
        let flags = u16::from_be_bytes([self.header[2], self.header[3]]);
        ty == FrameType::Ping.to_u8() && flags & Flags::SYN.bits() != 0
    }

    pub(crate) fn new(header: Header, profile: Profile, payload: Bytes) -> Self {
        Transmit {
            header: header.encode(profile),
            header_len: HEADER_LEN as u8,
            payload,
        }
    }

    /// Bytes that are already a whole encoded frame (or several).
    pub(crate) fn raw(bytes: Bytes) -> Self {
        Transmit {
            header: [0; HEADER_LEN],
            header_len: 0,
            payload: bytes,
        }
    }

    /// The same frame without its first `skip` bytes.
    pub(crate) fn suffix(&self, skip: usize) -> Transmit {
        let header_len = usize::from(self.header_len);
        if skip < header_len {
            let mut header = [0u8; HEADER_LEN];
            let rest = &self.header[skip..header_len];
            header[..rest.len()].copy_from_slice(rest);
            Transmit {
                header,
                header_len: rest.len() as u8,
                payload: self.payload.clone(),
            }
        } else {
            let from = (skip - header_len).min(self.payload.len());
            Transmit::raw(self.payload.slice(from..))
        }
    }

    /// The encoded frame header (12 bytes, fewer for a frame resent part-way).
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The frame payload (empty for control frames).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Header plus payload length.
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// Whether there is nothing to write (never for a frame the session returns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the whole frame to `out`, for callers that do not use vectored writes.
    pub fn write_to(&self, out: &mut alloc::vec::Vec<u8>) {
        out.extend_from_slice(self.header());
        out.extend_from_slice(&self.payload);
    }

    /// Splits into header and payload.
    pub fn into_parts(self) -> (TransmitHeader, Bytes) {
        (
            TransmitHeader {
                bytes: self.header,
                len: self.header_len,
            },
            self.payload,
        )
    }
}

/// The header part of a [`Transmit`]; derefs to its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransmitHeader {
    bytes: [u8; HEADER_LEN],
    len: u8,
}

impl core::ops::Deref for TransmitHeader {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Session {
    /// The next frame to send, or `None` when there is nothing to send now. Call it
    /// until it returns `None` after every input, timeout and command.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let transmit = if let Some(preamble) = self.preamble.take() {
            preamble
        } else if !self.link_attached() {
            return None;
        } else if let Some(again) = self.next_resend() {
            again
        } else {
            let transmit = self.next_transmit(now)?;
            self.record_sent(&transmit);
            transmit
        };
        self.note_sent(now, &transmit);
        self.stats.frames_out += 1;
        self.stats.bytes_out += transmit.len() as u64;
        Some(transmit)
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) may have a frame now.
    /// `false` means it has none until the next input, timeout or command, so
    /// an embedder whose writer runs apart from its reader need not wake the
    /// writer after an input that left nothing to send; `true` may still find
    /// nothing (a stream queued for data whose window is closed).
    pub fn has_transmit(&self) -> bool {
        if self.preamble.is_some() {
            return true;
        }
        if !self.link_attached() {
            return false;
        }
        if self.has_resend() || !self.session_control.is_empty() {
            return true;
        }
        self.phase != Phase::Closed && !(self.stream_control.is_empty() && self.send_queue.is_empty())
    }

    fn next_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(transmit) = self.session_control.pop_front() {
            return Some(transmit);
        }
        if self.phase == Phase::Closed {
            return None;
        }
        if let Some(transmit) = self.next_stream_control(now) {
            return Some(transmit);
        }
        self.next_data(now)
    }

    fn take_open_flags(&mut self, id: u32) -> Flags {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Flags::NONE;
        };
        let mut flags = Flags::NONE;
        if core::mem::take(&mut stream.syn_pending) {
            flags |= Flags::SYN;
        }
        if core::mem::take(&mut stream.ack_pending) {
            flags |= Flags::ACK;
        }
        flags
    }

    fn next_stream_control(&mut self, now: Instant) -> Option<Transmit> {
        let profile = self.config.profile;
        while let Some(id) = self.stream_control.pop_front() {
            let srtt = self.srtt;
            let max_window = self.config.max_stream_window;
            let catch_up_to = self.largest_window;
            let mut budget_left = self.config.receive_budget - self.window_total;
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            stream.in_control_queue = false;
            if let Some(code) = stream.rst_pending.take() {
                let (header, payload) = match (profile, stream.reason.as_deref()) {
                    (Profile::Native, Some(reason)) => super::reason_frame(id, code.0, reason),
                    (Profile::Native, None) => (
                        Header::new(FrameType::WindowUpdate, Flags::RST, id, code.0),
                        Bytes::new(),
                    ),
                    (Profile::Yamux, _) => (Header::new(FrameType::WindowUpdate, Flags::RST, id, 0), Bytes::new()),
                };
                self.stats.resets_sent += 1;
                let transmit = Transmit::new(header, profile, payload);
                self.maybe_release(id);
                return Some(transmit);
            }
            if stream.reset.is_some() {
                continue;
            }
            let opening = stream.syn_pending || stream.ack_pending;
            if opening && stream.has_sendable() && !stream.flow.update_due() {
                // The open rides on the stream's first data frame.
                continue;
            }
            let delta = if stream.fin_received {
                0
            } else {
                let before = stream.flow.window();
                let delta = stream
                    .flow
                    .take_update(now, srtt, max_window, catch_up_to, &mut budget_left);
                self.window_total += u64::from(stream.flow.window() - before);
                self.largest_window = self.largest_window.max(stream.flow.window());
                delta
            };
            if !opening && delta == 0 {
                continue;
            }
            let flags = self.take_open_flags(id);
            return Some(Transmit::new(
                Header::new(FrameType::WindowUpdate, flags, id, delta),
                profile,
                Bytes::new(),
            ));
        }
        None
    }

    fn next_data(&mut self, now: Instant) -> Option<Transmit> {
        let profile = self.config.profile;
        // A full replay buffer holds data back until the peer acknowledges.
        let replay_room = self.resume_state.as_ref().map_or(usize::MAX, |c| c.data_room());
        if replay_room == 0 {
            return None;
        }
        let max_frame = (self.peer_max_frame as usize).min(replay_room) as u64;
        while let Some(id) = self.send_queue.pop_front() {
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            stream.in_send_queue = false;
            if !stream.has_sendable() {
                continue;
            }
            let mut flags = Flags::NONE;
            let mut payload = Bytes::new();
            if stream.send_buffered > 0 {
                let limit = stream.send_window.min(max_frame) as usize;
                // has_sendable() with send_buffered > 0 means the queue has a chunk.
                let front = stream.send_buf.front_mut()?;
                payload = if front.len() <= limit {
                    let chunk = stream.send_buf.pop_front()?;
                    if stream.send_buf.is_empty() {
                        // An idle stream keeps no allocation of its own.
                        stream.send_buf = VecDeque::new();
                    }
                    chunk
                } else {
                    front.split_to(limit)
                };
                let len = payload.len();
                stream.send_window -= len as u64;
                stream.send_buffered -= len;
                self.send_buffered_total -= len;
                self.stats.payload_out += len as u64;
            }
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            // hashicorp/yamux (Consul, Nomad, go-plugin) applies a FIN before it
            // copies the payload of the frame that carries it, so a reader racing
            // in sees a closed, empty stream: in the yamux profile the FIN goes on
            // an empty frame of its own, sent next (the stream stays sendable).
            let fin_may_ride = profile == Profile::Native || payload.is_empty();
            let fin_now = stream.fin_queued && stream.send_buffered == 0 && fin_may_ride;
            if fin_now {
                stream.fin_sent = true;
                flags |= Flags::FIN;
            }
            flags |= self.take_open_flags(id);
            let transmit = Transmit::new(
                Header::new(FrameType::Data, flags, id, payload.len() as u32),
                profile,
                payload,
            );
            if fin_now {
                self.arm_close_timer(id, now);
            }
            self.after_data_sent(id);
            return Some(transmit);
        }
        None
    }

    fn after_data_sent(&mut self, id: u32) {
        let stream_limit = self.config.stream_send_buffer;
        let session_has_room = self.send_buffered_total < self.config.session_send_buffer;
        if let Some(stream) = self.streams.get_mut(&id) {
            if stream.want_writable && stream.send_buffered < stream_limit && session_has_room {
                stream.want_writable = false;
                self.events.push_back(Event::Writable(StreamId(id)));
            }
        }
        self.wake_session_writers();
        self.queue_send(id);
        self.maybe_release(id);
    }

    /// How the session-wide send buffer is shared right now (see [`SendSharing`]).
    pub(super) fn send_sharing(&self) -> SendSharing {
        let senders = (self.send_queue.len() + self.write_waiting).max(1);
        SendSharing {
            waiting: self.write_waiting,
            round: self.write_round,
            fair_share: (self.config.session_send_buffer / senders).max(1),
        }
    }

    /// Streams blocked on the session-wide send buffer get `Writable` once it has room.
    pub(super) fn wake_session_writers(&mut self) {
        if self.write_blocked.is_empty() || self.send_buffered_total >= self.config.session_send_buffer {
            return;
        }
        let stream_limit = self.config.stream_send_buffer;
        // A new round: the streams woken now wait until each wrote once (or
        // blocked again); any woken before that did neither count no more.
        self.write_round = self.write_round.wrapping_add(1);
        self.write_waiting = 0;
        for id in core::mem::take(&mut self.write_blocked) {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.in_write_blocked = false;
                if stream.want_writable && stream.send_buffered < stream_limit {
                    stream.want_writable = false;
                    stream.waiting_round = Some(self.write_round);
                    self.write_waiting += 1;
                    self.events.push_back(Event::Writable(StreamId(id)));
                }
            }
        }
    }
}

/// While other streams wait for room in the session's send buffer, a stream
/// that holds its share of it already waits too: otherwise the task that runs
/// first after room frees up takes it all, every time.
pub(super) struct SendSharing {
    /// Streams waiting for room in this wake round.
    waiting: usize,
    /// The current wake round.
    pub(super) round: u32,
    /// What one stream may hold while others wait: the buffer split evenly
    /// between the streams with data to send and those waiting to write.
    fair_share: usize,
}

impl SendSharing {
    /// Whether `stream` holds its share while others wait, so that it may
    /// queue nothing now.
    pub(super) fn over_share(&self, stream: &crate::stream::StreamState) -> bool {
        let counted = stream.waiting_round == Some(self.round);
        self.waiting > usize::from(counted) && stream.send_buffered >= self.fair_share
    }
}

//! Input: the incremental frame decoder and what each frame does to the session.
//!
//! The decoder never buffers stream payload: each Data payload is handed to its
//! stream as `Bytes` slices of the caller's input as they arrive, so a frame split
//! across any number of reads costs no copy and no frame-sized allocation.

use alloc::boxed::Box;
use alloc::vec::Vec;

use bytes::Bytes;

use super::{Phase, Session};
use crate::error::{GoAwayCode, ProtocolError, ResetCode, SessionError};
use crate::event::Event;
use crate::frame::{Flags, FrameType, Header, Profile, HEADER_LEN};
use crate::settings::{HandshakeError, Settings, MAX_HELLO_LEN};
use crate::stream::{StreamId, StreamState};
use crate::time::Instant;

pub(super) struct Decoder {
    profile: Profile,
    state: DecodeState,
}

enum DecodeState {
    Header { buf: [u8; HEADER_LEN], filled: usize },
    Payload { header: Header, remaining: u32, sink: Sink },
}

enum Sink {
    Stream(u32),
    Discard,
    Hello(Vec<u8>),
    /// A Reason frame's code and reason.
    Reason(Vec<u8>),
    /// A small fixed-size control payload (acknowledgement, resume ticket).
    Small {
        buf: [u8; 24],
        filled: usize,
    },
}

impl Decoder {
    pub(super) fn new(profile: Profile) -> Self {
        Decoder {
            profile,
            state: DecodeState::Header {
                buf: [0; HEADER_LEN],
                filled: 0,
            },
        }
    }

    fn header_state() -> DecodeState {
        DecodeState::Header {
            buf: [0; HEADER_LEN],
            filled: 0,
        }
    }
}

impl Session {
    /// Bytes that arrived from the link, in order. Any split is fine: a header or
    /// payload may be cut anywhere between calls.
    ///
    /// Malformed input never panics: it closes the session with a
    /// [`ProtocolError`], queues a go-away for the peer, and emits
    /// [`Event::Closed`]. Input after the session closed is ignored.
    pub fn handle_input(&mut self, now: Instant, mut data: Bytes) {
        if self.phase == Phase::Closed {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        if !self.link_attached() {
            // Detached, input is stale; resuming, the server's answer comes first.
            if !self.is_resuming() {
                return;
            }
            data = self.take_resume_answer(now, data);
            if !self.link_attached() {
                return;
            }
        }
        if !data.is_empty() {
            self.note_input(now);
        }
        while !data.is_empty() && self.phase != Phase::Closed {
            let state = core::mem::replace(&mut self.decoder.state, Decoder::header_state());
            match state {
                DecodeState::Header { mut buf, mut filled } => {
                    let take = (HEADER_LEN - filled).min(data.len());
                    buf[filled..filled + take].copy_from_slice(&data[..take]);
                    data = data.slice(take..);
                    self.count_received(take);
                    filled += take;
                    if filled < HEADER_LEN {
                        self.decoder.state = DecodeState::Header { buf, filled };
                        continue;
                    }
                    match Header::decode(&buf, self.decoder.profile) {
                        Ok(header) => {
                            self.stats.frames_in += 1;
                            if let Err(err) = self.on_header(now, header) {
                                self.fail_input(err);
                            }
                        }
                        Err(err) => self.fail(ProtocolError::Frame(err)),
                    }
                }
                DecodeState::Payload {
                    header,
                    mut remaining,
                    mut sink,
                } => {
                    let take = (remaining as usize).min(data.len());
                    let chunk = data.split_to(take);
                    remaining -= take as u32;
                    self.count_received(take);
                    match &mut sink {
                        Sink::Stream(id) => self.deliver(*id, chunk),
                        Sink::Discard => {}
                        Sink::Hello(buf) | Sink::Reason(buf) => buf.extend_from_slice(&chunk),
                        Sink::Small { buf, filled } => {
                            // The header's length was checked against the buffer,
                            // so nothing is cut off; `get` keeps it panic-free anyway.
                            let end = (*filled + chunk.len()).min(buf.len());
                            if let (Some(slot), Some(piece)) = (buf.get_mut(*filled..end), chunk.get(..end - *filled)) {
                                slot.copy_from_slice(piece);
                            }
                            *filled = end;
                        }
                    }
                    if remaining > 0 {
                        self.decoder.state = DecodeState::Payload {
                            header,
                            remaining,
                            sink,
                        };
                    } else if let Err(err) = self.on_payload_end(now, header, sink) {
                        self.fail_input(err);
                    }
                }
            }
        }
        self.schedule_ack(now);
        self.compact_old_pieces();
    }

    /// Received pieces kept as slices of the input keep the whole buffer they
    /// were cut from alive (a driver's read buffer may be hundreds of times the
    /// piece). Every quarter of [`pin_horizon`](Self::pin_horizon) bytes of
    /// input, the pieces still unread that arrived more than `pin_horizon`
    /// bytes ago are copied into memory of their own: the input buffers kept
    /// alive are then at most those of the last 1.25 × `pin_horizon` bytes of
    /// input, whatever the peer does. A scan of the streams per quarter
    /// horizon costs nothing next to the input it follows.
    fn compact_old_pieces(&mut self) {
        if self.stats.bytes_in < self.next_compaction {
            return;
        }
        let horizon = self.pin_horizon();
        self.next_compaction = self.stats.bytes_in + horizon / 4;
        let Some(old) = self.stats.bytes_in.checked_sub(horizon) else {
            return;
        };
        for stream in self.streams.values_mut() {
            if !stream.recv_buf.is_empty() {
                let copied = stream.recv_buf.compact_older_than(old);
                self.stats.bytes_compacted += copied as u64;
            }
        }
    }

    /// How much input may arrive after an unread zero-copy piece before it is
    /// copied out: twice the largest stream window, so that a reader that
    /// keeps up with its window never pays for the copy.
    fn pin_horizon(&self) -> u64 {
        2 * u64::from(self.config.max_stream_window)
    }

    /// A slice-taking convenience over [`handle_input`](Self::handle_input); it
    /// copies the bytes once.
    pub fn handle_input_slice(&mut self, now: Instant, data: &[u8]) {
        self.handle_input(now, Bytes::copy_from_slice(data));
    }

    fn fail_input(&mut self, err: InputError) {
        match err {
            InputError::Protocol(err) => self.fail(err),
            InputError::Handshake(err) => self.fail_with(SessionError::Handshake(err), GoAwayCode::HANDSHAKE_FAILED),
        }
    }

    fn on_header(&mut self, now: Instant, header: Header) -> Result<(), InputError> {
        let before_hello_ok = matches!(header.ty, FrameType::Hello | FrameType::GoAway)
            || (header.ty == FrameType::Reason && header.stream_id == 0);
        if self.decoder.profile == Profile::Native && self.peer_settings.is_none() && !before_hello_ok {
            return Err(InputError::Handshake(HandshakeError::ExpectedHello));
        }
        match header.ty {
            FrameType::Data => self.on_data_header(now, header),
            FrameType::WindowUpdate => self.on_window_update(now, header),
            FrameType::Ping => self.on_ping(now, header).map_err(InputError::Protocol),
            FrameType::GoAway => {
                self.on_go_away(now, GoAwayCode(header.length));
                Ok(())
            }
            FrameType::Hello => {
                if self.peer_settings.is_some() {
                    return Err(InputError::Handshake(HandshakeError::DuplicateHello));
                }
                if header.length > MAX_HELLO_LEN {
                    return Err(InputError::Handshake(HandshakeError::TooLong(header.length)));
                }
                let buf = Vec::with_capacity(header.length as usize);
                self.expect_payload(header, Sink::Hello(buf));
                if header.length == 0 {
                    return self.on_payload_end(now, header, Sink::Hello(Vec::new()));
                }
                Ok(())
            }
            FrameType::Reason => {
                if header.flags != Flags::NONE {
                    return Err(ProtocolError::BadReason("flags set").into());
                }
                let max = 4 + crate::frame::MAX_REASON as u32;
                if !(4..=max).contains(&header.length) {
                    return Err(ProtocolError::BadReason("length outside 4 ..= 260").into());
                }
                self.expect_payload(header, Sink::Reason(Vec::with_capacity(header.length as usize)));
                Ok(())
            }
            FrameType::Ack => {
                let expected = header.flags == Flags::NONE && header.length == 8 && self.resume_state.is_some();
                self.expect_small(header, expected, "unexpected acknowledgement frame")
            }
            FrameType::Resume => {
                // In the sequence, only the server's ticket to the client; requests
                // and answers open a link and never reach the decoder.
                let expected = header.flags == Flags::NONE
                    && header.length == 24
                    && self.role == crate::Role::Client
                    && self.resume_state.is_some();
                self.expect_small(header, expected, "unexpected resume frame")
            }
        }
    }

    /// A small resumption payload follows, if the frame is one that may come now.
    fn expect_small(&mut self, header: Header, expected: bool, otherwise: &'static str) -> Result<(), InputError> {
        if !expected {
            return Err(ProtocolError::Resumption(otherwise).into());
        }
        let sink = Sink::Small {
            buf: [0; 24],
            filled: 0,
        };
        self.expect_payload(header, sink);
        Ok(())
    }

    fn expect_payload(&mut self, header: Header, sink: Sink) {
        if header.length > 0 {
            self.decoder.state = DecodeState::Payload {
                header,
                remaining: header.length,
                sink,
            };
        }
    }

    fn on_payload_end(&mut self, now: Instant, header: Header, sink: Sink) -> Result<(), InputError> {
        match sink {
            Sink::Hello(payload) => {
                let settings = Settings::decode(&payload).map_err(InputError::Handshake)?;
                self.on_hello(settings);
                Ok(())
            }
            Sink::Stream(id) => {
                if header.flags.contains(Flags::FIN) {
                    self.on_fin(id);
                }
                Ok(())
            }
            Sink::Discard => Ok(()),
            Sink::Reason(payload) => self.on_reason(now, header.stream_id, &payload),
            Sink::Small { buf, .. } => match header.ty {
                FrameType::Ack => {
                    let offset = u64::from_be_bytes(
                        *buf.first_chunk::<8>()
                            .ok_or(InputError::Protocol(ProtocolError::Resumption("short acknowledgement")))?,
                    );
                    let frame_len = (HEADER_LEN + 8) as u64;
                    self.on_ack_received(offset, frame_len).map_err(InputError::Protocol)
                }
                _ => {
                    let ticket = crate::resume::Ticket::decode(&buf).ok_or(InputError::Protocol(
                        ProtocolError::Resumption("malformed resume ticket"),
                    ))?;
                    self.on_ticket(ticket);
                    Ok(())
                }
            },
        }
    }

    fn on_hello(&mut self, settings: Settings) {
        tracing::debug!(?settings, "peer hello");
        let extra = settings.initial_window.saturating_sub(self.peer_initial_window);
        self.peer_initial_window = settings.initial_window;
        self.peer_max_frame = settings.max_frame_size.min(self.config.max_frame_size);
        self.peer_settings = Some(settings);
        self.handshake_deadline = None;
        self.on_peer_capabilities(settings.capabilities);
        if extra > 0 {
            let ids: Vec<u32> = self.streams.keys().copied().collect();
            for id in ids {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.send_window += u64::from(extra);
                }
                self.queue_send(id);
            }
        }
        self.events.push_back(Event::Connected);
    }

    /// Opening, acknowledging and resetting flags, common to Data and WindowUpdate.
    /// Returns whether the stream exists and takes the frame's payload.
    fn on_stream_flags(&mut self, now: Instant, header: Header) -> Result<bool, InputError> {
        let id = header.stream_id;
        if header.flags.contains(Flags::SYN) && !self.on_syn(now, id)? {
            return Ok(false);
        }
        if !self.streams.contains_key(&id) {
            self.check_unknown_stream(id)?;
            return Ok(false);
        }
        // Judged before this frame's own ACK: tokio-yamux refuses with ACK|RST.
        let acknowledged_before = self.streams.get(&id).is_some_and(|s| s.acknowledged);
        if header.flags.contains(Flags::ACK) {
            self.on_ack(id);
        }
        if header.flags.contains(Flags::RST) {
            let code = match self.decoder.profile {
                Profile::Native if header.ty == FrameType::WindowUpdate => ResetCode(header.length),
                _ => {
                    if acknowledged_before {
                        ResetCode::CANCEL
                    } else {
                        ResetCode::REFUSED
                    }
                }
            };
            self.on_peer_reset(now, id, code)?;
            return Ok(false);
        }
        Ok(true)
    }

    fn on_data_header(&mut self, now: Instant, header: Header) -> Result<(), InputError> {
        let len = header.length;
        if self.decoder.profile == Profile::Native && len > self.config.max_frame_size {
            return Err(InputError::Protocol(ProtocolError::FrameTooLarge {
                length: len,
                max: self.config.max_frame_size,
            }));
        }
        let effects = self.input_effects;
        let result = self.on_data_frame(now, header);
        if len == 0 && self.input_effects == effects {
            self.spend_empty_frame(now)?;
        }
        result
    }

    /// Frames that change nothing (no payload, no flag or delta with an effect)
    /// cost the peer nothing to send; they are budgeted.
    fn spend_empty_frame(&mut self, now: Instant) -> Result<(), InputError> {
        if !self.empty_frame_budget.spend(now) {
            return Err(ProtocolError::LimitExceeded("empty frames").into());
        }
        Ok(())
    }

    fn on_data_frame(&mut self, now: Instant, header: Header) -> Result<(), InputError> {
        let len = header.length;
        let id = header.stream_id;
        if !self.on_stream_flags(now, header)? {
            self.expect_payload(header, Sink::Discard);
            return Ok(());
        }
        // on_stream_flags returned true: the stream exists.
        let Some(stream) = self.streams.get_mut(&id) else {
            self.expect_payload(header, Sink::Discard);
            return Ok(());
        };
        if len > 0 {
            if stream.fin_received {
                return Err(ProtocolError::DataAfterFin(StreamId(id)).into());
            }
            if u64::from(len) > stream.flow.credit() {
                return Err(ProtocolError::FlowControl {
                    stream: StreamId(id),
                    length: len,
                    window: stream.flow.credit(),
                }
                .into());
            }
            stream.flow.on_received(len);
            stream.last_received = Some(now);
            self.stats.payload_in += u64::from(len);
            self.expect_payload(header, Sink::Stream(id));
        } else if header.flags.contains(Flags::FIN) {
            self.on_fin(id);
        }
        Ok(())
    }

    fn on_window_update(&mut self, now: Instant, header: Header) -> Result<(), InputError> {
        let effects = self.input_effects;
        let result = self.on_window_update_frame(now, header);
        if self.input_effects == effects {
            // A delta for a stream that is gone changes nothing either; a few
            // such updates per released stream are what a peer that reads
            // this side's last data sends, and cost nothing.
            let late = header.length > 0 && !self.streams.contains_key(&header.stream_id);
            if late && self.late_updates > 0 {
                self.late_updates -= 1;
            } else {
                self.spend_empty_frame(now)?;
            }
        }
        result
    }

    fn on_window_update_frame(&mut self, now: Instant, header: Header) -> Result<(), InputError> {
        let id = header.stream_id;
        if !self.on_stream_flags(now, header)? {
            return Ok(());
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            let window = stream.send_window + u64::from(header.length);
            if window > u64::from(u32::MAX) {
                return Err(ProtocolError::WindowOverflow(StreamId(id)).into());
            }
            stream.send_window = window;
            self.stats.send_window_peak = self.stats.send_window_peak.max(window);
            if header.length > 0 {
                self.input_effects += 1;
            }
            self.queue_send(id);
        }
        if header.flags.contains(Flags::FIN) {
            self.on_fin(id);
        }
        Ok(())
    }

    /// A SYN from the peer. Returns whether a stream now exists for it.
    fn on_syn(&mut self, now: Instant, id: u32) -> Result<bool, InputError> {
        self.input_effects += 1;
        let peer_parity = match self.role {
            crate::Role::Client => 0,
            crate::Role::Server => 1,
        };
        if id % 2 != peer_parity {
            return Err(ProtocolError::WrongParity(StreamId(id)).into());
        }
        // Ids need not arrive in order: an idle open's SYN (a window update) may
        // overtake the SYN of an earlier stream that rides on its first data frame.
        // A stream released when its reset was announced may still be named by
        // the application's handle: its id is not free yet either.
        if self.streams.contains_key(&id) || self.tombstone(id).is_some() {
            return Err(ProtocolError::StreamReuse(StreamId(id)).into());
        }
        // The yamux spec does not forbid it, and some yamux peers keep opening after
        // their own go-away: refuse the stream there; in native it is an error.
        if self.goaway_received.is_some() && self.decoder.profile == Profile::Native {
            return Err(ProtocolError::OpenAfterGoAway(StreamId(id)).into());
        }
        self.max_inbound_id = self.max_inbound_id.max(id);
        let initial = u64::from(self.config.initial_window);
        let refuse = self.phase != Phase::Open
            || self.goaway_received.is_some()
            || self.streams.len() >= self.config.max_streams
            || self.accept_queue.len() >= self.config.accept_backlog
            || self.window_total + initial > self.config.receive_budget;
        if refuse {
            self.refuse(now, id)?;
            return Ok(false);
        }
        let stream = StreamState::new(false, self.peer_initial_window, self.new_recv_window());
        self.window_total += initial;
        self.streams.insert(id, Box::new(stream));
        self.accept_queue.push_back(StreamId(id));
        if self.want_incoming_event {
            self.want_incoming_event = false;
            self.events.push_back(Event::IncomingStream);
        }
        tracing::trace!(stream = id, "inbound stream");
        Ok(true)
    }

    fn refuse(&mut self, now: Instant, id: u32) -> Result<(), InputError> {
        self.stats.streams_refused += 1;
        if !self.reset_budget.spend(now) {
            return Err(ProtocolError::LimitExceeded("refused and reset streams").into());
        }
        let code = match self.decoder.profile {
            Profile::Native => ResetCode::REFUSED.0,
            Profile::Yamux => 0,
        };
        self.stats.resets_sent += 1;
        tracing::debug!(stream = id, "refusing inbound stream");
        self.push_reply(Header::new(FrameType::WindowUpdate, Flags::RST, id, code))?;
        Ok(())
    }

    /// A frame for a stream that does not exist. Late frames for closed streams
    /// are normal (they crossed our reset on the wire); in the native profile a
    /// frame for an id never opened is a protocol error.
    fn check_unknown_stream(&self, id: u32) -> Result<(), InputError> {
        if self.decoder.profile == Profile::Yamux {
            return Ok(());
        }
        let ours = (id % 2 == 1) == (self.role == crate::Role::Client);
        let never_opened = if ours {
            u64::from(id) >= self.next_outbound_id
        } else {
            id > self.max_inbound_id
        };
        if never_opened {
            return Err(ProtocolError::UnknownStream(StreamId(id)).into());
        }
        Ok(())
    }

    fn on_ack(&mut self, id: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if !stream.outbound || stream.acknowledged {
            return;
        }
        stream.acknowledged = true;
        self.input_effects += 1;
        self.unacknowledged_opens -= 1;
        if let Some(deadline) = stream.open_deadline.take() {
            self.open_deadlines.remove(&(deadline, id));
        }
        self.events.push_back(Event::StreamAcknowledged(StreamId(id)));
        self.notify_can_open();
    }

    fn on_peer_reset(&mut self, now: Instant, id: u32, code: ResetCode) -> Result<(), InputError> {
        self.stats.resets_received += 1;
        self.input_effects += 1;
        if !self.reset_budget.spend(now) {
            return Err(ProtocolError::LimitExceeded("refused and reset streams").into());
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if stream.reset.is_some() {
            return Ok(());
        }
        let dropped = stream.discard_buffers();
        self.send_buffered_total -= dropped;
        stream.reset = Some(code);
        stream.syn_pending = false;
        stream.ack_pending = false;
        if stream.accepted {
            self.events.push_back(Event::StreamReset { id: StreamId(id), code });
        }
        self.wake_session_writers();
        self.maybe_release(id);
        Ok(())
    }

    fn on_fin(&mut self, id: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.fin_received || stream.reset.is_some() {
            return;
        }
        stream.fin_received = true;
        self.input_effects += 1;
        if let Some(deadline) = stream.close_deadline.take() {
            self.close_deadlines.remove(&(deadline, id));
        }
        self.notify_readable(id);
    }

    fn deliver(&mut self, id: u32, chunk: Bytes) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.reset.is_some() {
            return;
        }
        stream.recv_buf.push(chunk, self.stats.bytes_in);
        self.notify_readable(id);
    }

    pub(super) fn notify_readable(&mut self, id: u32) {
        if let Some(stream) = self.streams.get_mut(&id) {
            if stream.want_readable && stream.accepted {
                stream.want_readable = false;
                self.events.push_back(Event::Readable(StreamId(id)));
            }
        }
    }

    fn on_ping(&mut self, now: Instant, header: Header) -> Result<(), ProtocolError> {
        if header.flags.contains(Flags::SYN) {
            if !self.ping_budget.spend(now) {
                return Err(ProtocolError::LimitExceeded("pings"));
            }
            self.stats.pings_answered += 1;
            return self.push_reply(Header::new(FrameType::Ping, Flags::ACK, 0, header.length));
        }
        // A reply: match it to a ping we sent; unsolicited replies are ignored.
        let Some(index) = self.pings.iter().position(|p| p.opaque == header.length) else {
            return Ok(());
        };
        let ping = self.pings.swap_remove(index);
        let rtt = now.saturating_duration_since(ping.sent_at);
        self.srtt = Some(match self.srtt {
            Some(srtt) => (srtt * 7 + rtt) / 8,
            None => rtt,
        });
        self.stats.rtt_last = Some(rtt);
        self.progress.measured(rtt);
        if ping.keepalive && self.missed_pings > 0 {
            self.missed_pings = 0;
            self.events.push_back(Event::HealthChanged { missed_pings: 0 });
        }
        self.events.push_back(Event::Pong { rtt });
        Ok(())
    }

    /// A reset (stream id ≠ 0) or a go-away (0) with a reason: handled as the
    /// plain frame would be, the reason kept for the application.
    fn on_reason(&mut self, now: Instant, id: u32, payload: &[u8]) -> Result<(), InputError> {
        let (Some(code), Some(text)) = (payload.first_chunk::<4>(), payload.get(4..)) else {
            return Err(ProtocolError::BadReason("shorter than its code").into());
        };
        let code = u32::from_be_bytes(*code);
        let reason = core::str::from_utf8(text).map_err(|_| ProtocolError::BadReason("not UTF-8"))?;
        let reason = super::fit_reason(reason);
        if id == 0 {
            if self.goaway_received.is_some() {
                // Changes nothing, and carries a payload the peer chose.
                return self.spend_empty_frame(now);
            }
            self.peer_go_away_reason = reason;
            self.on_go_away(now, GoAwayCode(code));
            return Ok(());
        }
        if !self.streams.contains_key(&id) {
            self.check_unknown_stream(id)?;
            return self.spend_empty_frame(now);
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            if stream.reset.is_none() {
                stream.reason = reason;
            }
        }
        self.on_peer_reset(now, id, ResetCode(code))
    }

    fn on_go_away(&mut self, now: Instant, code: GoAwayCode) {
        if self.goaway_received.is_some() {
            return;
        }
        tracing::debug!(code = code.0, "peer go-away");
        self.goaway_received = Some(code);
        self.events.push_back(Event::GoAwayReceived(code));
        if code.is_error() {
            // The peer is failing; it will not serve the live streams.
            self.session_control.clear();
            self.terminate(Some(SessionError::PeerGoAway(code)));
        } else {
            self.start_drain(now, false);
        }
    }
}

/// What can go wrong while reading input: the peer broke the protocol, or the
/// native handshake failed.
enum InputError {
    Protocol(ProtocolError),
    Handshake(HandshakeError),
}

impl From<ProtocolError> for InputError {
    fn from(err: ProtocolError) -> Self {
        InputError::Protocol(err)
    }
}

//! Resumption: the numbered outbound sequence and its replay buffer, cumulative
//! acknowledgements, detaching from a lost link and attaching to a new one.
//!
//! Everything a side sends after its hello is one byte sequence; offsets count its
//! bytes from 0. The sender keeps the frames the peer has not acknowledged; the
//! receiver counts what it has fed to its decoder. On a new link each side replays
//! from the other's received offset, the first frame cut to start at exactly that
//! byte, so that the peer's decoder continues where it stopped, even mid-frame.

use alloc::collections::VecDeque;

use bytes::Bytes;

use super::output::Transmit;
use super::{liveness, Phase, Session};
use crate::config::Resumption;
use crate::error::{GoAwayCode, ProtocolError, SessionError};
use crate::event::Event;
use crate::frame::{Flags, FrameType, Header, Profile, HEADER_LEN};
use crate::resume::{ResumeRefusal, ResumeRequest, ResumeToken, Ticket};
use crate::time::Instant;
use core::time::Duration;

/// Capability bit in the hello: this side can resume. Both must set it.
pub(crate) const CAPABILITY_RESUME: u32 = 0x1;

/// How many bytes of the peer's Acks (20 bytes each) may go unacknowledged
/// before they are acknowledged: a small part of the smallest replay buffer
/// (16 KiB), and enough Acks that answering them cannot turn into ping-pong.
const UNANSWERED_ACKS: u64 = 1024;

/// The server's answer to a resume request: its received offset and the new token.
const ANSWER_LEN: usize = 8 + 16;

/// How far past `replay_buffer` control frames may take the unacknowledged
/// tail before the peer counts as one that never acknowledges.
const CONTROL_SLACK: u64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LinkState {
    Attached,
    Detached,
    /// Client: the resume request is out; waiting for the server's answer.
    Resuming {
        deadline: Instant,
    },
}

pub(super) struct ResumeState {
    pub(super) config: Resumption,
    /// Whether the peer's hello said it can resume too (unknown until it arrives).
    pub(super) peer_capable: Option<bool>,
    pub(super) ticket: Option<Ticket>,
    /// Server: the token the client held before the last resume, still accepted
    /// until the client shows (by sending anything) that the answer with the new
    /// one reached it. A cut that loses the answer must not lock the client out.
    /// Presenting it again gets the current token again, never a new one: whoever
    /// else holds the old token cannot lock out the client that has the new one.
    unconfirmed_token: Option<ResumeToken>,
    pub(super) link: LinkState,
    pub(super) expires: Option<Instant>,
    /// Time spent detached, paid back at the same rate while attached: a resume
    /// does not restart the detached clock, so brief reconnects cannot keep a
    /// session that is mostly detached alive forever.
    detached_debt: Duration,
    /// When the link last changed state (the debt is accounted up to then).
    debt_since: Instant,

    /// Bytes of the outbound sequence handed out so far.
    sent: u64,
    /// What the peer has acknowledged of it.
    peer_acked: u64,
    /// Frames not yet wholly acknowledged; the first starts at `replay_start`.
    replay: VecDeque<Transmit>,
    replay_start: u64,
    /// Frames to send again on a new link before anything new.
    resend: VecDeque<Transmit>,

    /// Bytes of the peer's sequence fed to the decoder.
    pub(super) received: u64,
    /// Counting starts after the peer's hello.
    pub(super) counting: bool,
    /// The offset last acknowledged to the peer.
    acked: u64,
    /// Bytes of the peer's Acks let go unacknowledged since this side last
    /// sent an Ack (see `on_ack_received`).
    unanswered_acks: u64,
    ack_deadline: Option<Instant>,
    /// Client, while resuming: the server's answer as it arrives.
    answer: [u8; HEADER_LEN + ANSWER_LEN],
    answer_filled: usize,
}

impl ResumeState {
    pub(super) fn new(config: Resumption) -> Self {
        ResumeState {
            config,
            peer_capable: None,
            ticket: None,
            unconfirmed_token: None,
            link: LinkState::Attached,
            expires: None,
            detached_debt: Duration::ZERO,
            debt_since: Instant::ZERO,
            sent: 0,
            peer_acked: 0,
            replay: VecDeque::new(),
            replay_start: 0,
            resend: VecDeque::new(),
            received: 0,
            counting: false,
            acked: 0,
            unanswered_acks: 0,
            ack_deadline: None,
            answer: [0; HEADER_LEN + ANSWER_LEN],
            answer_filled: 0,
        }
    }

    fn unacknowledged(&self) -> u64 {
        self.sent - self.peer_acked
    }

    /// Payload bytes a new data frame may carry without overfilling the replay
    /// buffer. A sixteenth of the buffer is kept for control frames, which are
    /// never held back, so that the whole stays within the bound.
    pub(super) fn data_room(&self) -> usize {
        let bound = self.config.replay_buffer as u64;
        let for_data = bound - bound / 16;
        let free = for_data.saturating_sub(self.unacknowledged());
        usize::try_from(free).unwrap_or(usize::MAX).saturating_sub(HEADER_LEN)
    }

    /// Records a frame of the outbound sequence as sent; returns the new
    /// unacknowledged total.
    fn record(&mut self, transmit: &Transmit) -> u64 {
        self.sent += transmit.len() as u64;
        self.replay.push_back(transmit.clone());
        self.unacknowledged()
    }

    /// The most unacknowledged bytes a peer may leave us holding: the replay
    /// buffer and some slack for control frames. Data alone never gets there;
    /// control frames do only if the peer provokes replies and never
    /// acknowledges them.
    fn hard_bound(&self) -> u64 {
        self.config.replay_buffer as u64 + CONTROL_SLACK
    }

    fn on_ack(&mut self, offset: u64) -> Result<(), ProtocolError> {
        if offset > self.sent {
            return Err(ProtocolError::Resumption("acknowledged bytes that were never sent"));
        }
        if offset <= self.peer_acked {
            return Ok(());
        }
        self.peer_acked = offset;
        while let Some(front) = self.replay.front() {
            let end = self.replay_start + front.len() as u64;
            if end > offset {
                break;
            }
            self.replay_start = end;
            self.replay.pop_front();
        }
        Ok(())
    }

    /// Whether `offset` is a place the replay can restart from.
    fn can_replay_from(&self, offset: u64) -> bool {
        offset >= self.peer_acked && offset <= self.sent
    }

    /// Queues everything from `offset` on for sending again; returns its length.
    fn prepare_replay(&mut self, offset: u64) -> u64 {
        // The peer has everything before `offset`: that acknowledges it.
        let _ = self.on_ack(offset);
        self.resend.clear();
        let mut start = self.replay_start;
        for transmit in &self.replay {
            let len = transmit.len() as u64;
            if start + len > offset {
                let skip = offset.saturating_sub(start) as usize;
                self.resend.push_back(transmit.suffix(skip));
            }
            start += len;
        }
        self.sent - offset
    }

    fn attached(&mut self, now: Instant) {
        if self.link != LinkState::Attached {
            self.detached_debt += now.saturating_duration_since(self.debt_since);
            self.debt_since = now;
        }
        self.link = LinkState::Attached;
        self.expires = None;
        self.answer_filled = 0;
        // Nothing to do for acknowledgements: the client sends an Ack right
        // after the answer, and the server's timer runs on its next input.
    }
}

impl Session {
    /// Server, resumption: the ticket the client will need to resume this session,
    /// made by the caller from 128 bits of entropy and an id it can look the
    /// session up by. Call it right after [`Session::new`]; the ticket is sent
    /// once the client's hello shows that it can resume (a client that cannot
    /// would take the frame for a protocol error), and never otherwise. Ignored
    /// without [`Config::resumption`](crate::Config::resumption) or on a client.
    pub fn set_resume_ticket(&mut self, ticket: Ticket) {
        if self.role != crate::Role::Server {
            return;
        }
        let Some(resume_state) = self.resume_state.as_mut() else {
            return;
        };
        resume_state.ticket = Some(ticket);
        if resume_state.peer_capable == Some(true) {
            self.send_ticket(ticket);
        }
    }

    fn send_ticket(&mut self, ticket: Ticket) {
        let header = Header::new(FrameType::Resume, Flags::NONE, 0, Ticket::ENCODED_LEN as u32);
        self.push_control(header, Bytes::copy_from_slice(&ticket.encode()));
    }

    /// Resumption: the ticket that resumes this session (the client has it once
    /// the server's ticket frame has arrived).
    pub fn resume_ticket(&self) -> Option<Ticket> {
        self.resume_state.as_ref().and_then(|c| c.ticket)
    }

    /// Resumption: whether the session has lost its link and waits for a new one.
    pub fn is_detached(&self) -> bool {
        self.resume_state
            .as_ref()
            .is_some_and(|c| c.link != LinkState::Attached)
    }

    /// Resumption: stop waiting for a new link (the caller gave up reconnecting).
    /// A detached session ends at once with [`SessionError::Expired`], as if its
    /// `detached_timeout` had passed; an attached one is not affected.
    pub fn give_up(&mut self) {
        if self.is_detached() && self.phase != Phase::Closed {
            self.session_control.clear();
            self.terminate(Some(SessionError::Expired));
        }
    }

    /// Resumption: whether losing the link now would leave the session able to
    /// resume (both sides enabled it and the client has its ticket). A link lost
    /// before that, during the handshake, ends the session.
    pub fn is_resumable(&self) -> bool {
        self.phase != Phase::Closed
            && self.peer_settings.is_some()
            && self
                .resume_state
                .as_ref()
                .is_some_and(|c| c.peer_capable == Some(true) && c.ticket.is_some())
    }

    /// Detaches from a lost link if the session can resume; `false` if it cannot.
    pub(super) fn detach(&mut self, now: Instant) -> bool {
        if !self.is_resumable() {
            return false;
        }
        let Some(resume_state) = self.resume_state.as_mut() else {
            return false;
        };
        let was_attached = resume_state.link == LinkState::Attached;
        resume_state.link = LinkState::Detached;
        resume_state.ack_deadline = None;
        resume_state.resend.clear();
        resume_state.answer_filled = 0;
        if was_attached {
            let attached_for = now.saturating_duration_since(resume_state.debt_since);
            resume_state.detached_debt = resume_state.detached_debt.saturating_sub(attached_for);
            resume_state.debt_since = now;
        }
        if resume_state.expires.is_none() {
            let left = resume_state
                .config
                .detached_timeout
                .saturating_sub(resume_state.detached_debt);
            resume_state.expires = Some(now + left);
        }
        // Everything queued is part of the sequence, kept for replay, except what
        // is not sequenced (a pending resume request or answer).
        self.preamble = None;
        self.pings.clear();
        self.missed_pings = 0;
        self.next_keepalive = None;
        self.progress = Default::default();
        if was_attached {
            tracing::debug!("link lost; session detached");
        }
        self.events.push_back(Event::Detached);
        true
    }

    /// Client, resumption: starts resuming over a new link. The resume request is
    /// the next thing [`poll_transmit`](Self::poll_transmit) returns; then feed the
    /// new link's bytes to [`handle_input`](Self::handle_input) as usual. The
    /// outcome is [`Event::Resumed`], [`Event::ResumeRefused`] (try again later) or
    /// the end of the session.
    pub fn attach(&mut self, now: Instant) -> Result<(), AttachError> {
        if self.role != crate::Role::Client {
            return Err(AttachError::NotClient);
        }
        if self.phase == Phase::Closed {
            return Err(AttachError::SessionClosed);
        }
        let timeout = self.config.handshake_timeout;
        let Some(resume_state) = self.resume_state.as_mut() else {
            return Err(AttachError::NotDetached);
        };
        if resume_state.link == LinkState::Attached {
            return Err(AttachError::NotDetached);
        }
        let Some(ticket) = resume_state.ticket else {
            return Err(AttachError::NotDetached);
        };
        resume_state.link = LinkState::Resuming {
            deadline: now + timeout,
        };
        resume_state.answer_filled = 0;
        let request = ResumeRequest {
            ticket,
            received: resume_state.received,
        };
        self.preamble = Some(Transmit::raw(Bytes::from(request.encode())));
        Ok(())
    }

    /// Server, resumption: the client asks to resume this session over a new link
    /// (the acceptor found the session by `request.ticket.id`). On success the
    /// token is replaced by `next_token`, the answer and the replay are queued for
    /// [`poll_transmit`](Self::poll_transmit), and the new link's bytes after the
    /// request go to [`handle_input`](Self::handle_input). On refusal nothing about
    /// the session changes: write [`ResumeRefusal::frame`] to the new link and close it.
    ///
    /// The right token wins even while the session still has a link: the client
    /// has lost that link, though this side has not noticed yet. The session
    /// detaches from the old link ([`Event::Detached`]: drop it, and feed nothing
    /// more read from it) and carries on over the new one. A wrong token, an id
    /// that is not this session's, and a closed session all get the same
    /// [`ResumeRefusal::NoSuchSession`], so that a refusal tells a guesser nothing.
    pub fn handle_resume(
        &mut self,
        now: Instant,
        request: &ResumeRequest,
        next_token: ResumeToken,
    ) -> Result<(), ResumeRefusal> {
        if self.role != crate::Role::Server || self.phase == Phase::Closed {
            return Err(ResumeRefusal::NoSuchSession);
        }
        let Some(resume_state) = self.resume_state.as_ref() else {
            return Err(ResumeRefusal::NoSuchSession);
        };
        let Some(ticket) = resume_state.ticket else {
            return Err(ResumeRefusal::NoSuchSession);
        };
        let presented = request.ticket.token;
        let current = ticket.token.ct_eq(&presented);
        let previous = resume_state.unconfirmed_token.is_some_and(|t| t.ct_eq(&presented));
        if ticket.id != request.ticket.id || !(current | previous) {
            tracing::debug!("resume refused: no session with that id and token");
            return Err(ResumeRefusal::NoSuchSession);
        }
        if !resume_state.can_replay_from(request.received) {
            tracing::debug!(session = ticket.id, "resume refused: bad offset");
            return Err(ResumeRefusal::BadOffset);
        }
        if resume_state.link == LinkState::Attached {
            tracing::debug!(session = ticket.id, "resume takes over from a link this side still had");
            self.detach(now);
        }
        let Some(resume_state) = self.resume_state.as_mut() else {
            return Err(ResumeRefusal::NoSuchSession);
        };
        // The current token is replaced; the one just presented stays valid until
        // the client confirms the answer. A previous token presented again (the
        // answer was lost) gets the current token again.
        let issued = if current {
            resume_state.unconfirmed_token = Some(presented);
            next_token
        } else {
            ticket.token
        };
        let new_ticket = Ticket {
            id: ticket.id,
            token: issued,
        };
        resume_state.ticket = Some(new_ticket);
        let replayed = resume_state.prepare_replay(request.received);
        let mut answer = [0u8; ANSWER_LEN];
        answer[..8].copy_from_slice(&resume_state.received.to_be_bytes());
        answer[8..].copy_from_slice(new_ticket.token.as_bytes());
        resume_state.attached(now);
        let header = Header::new(FrameType::Resume, Flags::ACK, 0, answer.len() as u32);
        self.preamble = Some(Transmit::new(header, Profile::Native, Bytes::copy_from_slice(&answer)));
        self.after_resume(now, replayed);
        Ok(())
    }

    fn after_resume(&mut self, now: Instant, replayed: u64) {
        self.stats.resumes += 1;
        self.stats.bytes_replayed += replayed;
        self.progress = liveness::Progress::starting(now);
        if self.config.keepalive_interval.is_some() {
            self.next_keepalive = Some(now);
        }
        tracing::debug!(replayed, "session resumed");
        self.events.push_back(Event::Resumed { replayed });
    }

    /// Client, while resuming: takes the server's answer from the front of `data`;
    /// returns what is left for the decoder (nothing until the answer is whole).
    pub(super) fn take_resume_answer(&mut self, now: Instant, mut data: Bytes) -> Bytes {
        let Some(resume_state) = self.resume_state.as_mut() else {
            return data;
        };
        // The answer is a go-away (a bare header) or a Resume ACK frame (header and
        // 24 bytes); how much to wait for is known once the header is in.
        loop {
            let is_resume = resume_state.answer.get(1) == Some(&FrameType::Resume.to_u8());
            let needed = if resume_state.answer_filled >= HEADER_LEN && is_resume {
                resume_state.answer.len()
            } else {
                HEADER_LEN
            };
            let filled = resume_state.answer_filled;
            let take = needed.saturating_sub(filled).min(data.len());
            if take == 0 {
                if filled < needed {
                    return data;
                }
                break;
            }
            let piece = data.split_to(take);
            // `filled + take <= needed <= answer.len()`: the range is in bounds.
            if let Some(slot) = resume_state.answer.get_mut(filled..filled + take) {
                slot.copy_from_slice(&piece);
            }
            resume_state.answer_filled += take;
        }
        let answer = resume_state.answer;
        let (Some(head), Some(offset), Some(token)) = (
            answer.first_chunk::<HEADER_LEN>(),
            answer
                .get(HEADER_LEN..HEADER_LEN + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok()),
            answer.get(HEADER_LEN + 8..).and_then(|b| <[u8; 16]>::try_from(b).ok()),
        ) else {
            // The buffer is a header plus 8 + 16 bytes by construction.
            self.fail(ProtocolError::Resumption("the resume answer buffer is malformed"));
            return Bytes::new();
        };
        let header = match Header::decode(head, Profile::Native) {
            Ok(header) => header,
            Err(err) => {
                self.fail(ProtocolError::Frame(err));
                return Bytes::new();
            }
        };
        match (header.ty, header.flags) {
            (FrameType::GoAway, _) => {
                self.on_resume_refused(GoAwayCode(header.length));
                Bytes::new()
            }
            (FrameType::Resume, Flags::ACK) if header.length as usize == ANSWER_LEN => {
                let offset = u64::from_be_bytes(offset);
                let token = ResumeToken::from_bytes(token);
                if !resume_state.can_replay_from(offset) {
                    self.fail(ProtocolError::Resumption(
                        "the server's received offset does not match what was sent",
                    ));
                    return Bytes::new();
                }
                if let Some(ticket) = resume_state.ticket.as_mut() {
                    ticket.token = token;
                }
                let replayed = resume_state.prepare_replay(offset);
                resume_state.attached(now);
                self.after_resume(now, replayed);
                // The first frame of our sequence on the new link tells the server
                // that its answer arrived, which retires the token it replaced:
                // send it now, not whenever there is something else to say.
                self.send_ack();
                data
            }
            _ => {
                self.fail(ProtocolError::Resumption(
                    "the server's answer to a resume request is malformed",
                ));
                Bytes::new()
            }
        }
    }

    fn on_resume_refused(&mut self, code: GoAwayCode) {
        tracing::debug!(code = code.0, "resume refused");
        if code == GoAwayCode::RESUME_RATE_LIMITED {
            if let Some(resume_state) = self.resume_state.as_mut() {
                resume_state.link = LinkState::Detached;
                resume_state.answer_filled = 0;
            }
            self.events.push_back(Event::ResumeRefused(code));
        } else {
            self.session_control.clear();
            self.terminate(Some(SessionError::ResumeRefused(code)));
        }
    }

    /// Numbers a frame of the outbound sequence and keeps it for replay.
    pub(super) fn record_sent(&mut self, transmit: &Transmit) {
        if let Some(resume_state) = self.resume_state.as_mut() {
            let unacknowledged = resume_state.record(transmit);
            self.stats.replay_peak = self.stats.replay_peak.max(unacknowledged);
            if unacknowledged > resume_state.hard_bound() {
                self.fail(ProtocolError::LimitExceeded("unacknowledged frames"));
            }
        }
    }

    /// The next frame to send again after a resume, if any.
    pub(super) fn next_resend(&mut self) -> Option<Transmit> {
        self.resume_state.as_mut()?.resend.pop_front()
    }

    /// Whether frames wait to be sent again on a new link.
    pub(super) fn has_resend(&self) -> bool {
        self.resume_state.as_ref().is_some_and(|c| !c.resend.is_empty())
    }

    /// Resumption: bytes of the outbound sequence kept for replay because the
    /// peer has not acknowledged them yet (0 once the session has ended).
    pub fn replay_buffered(&self) -> u64 {
        self.resume_state.as_ref().map_or(0, |c| c.unacknowledged())
    }

    /// Client: the server's ticket arrived.
    pub(super) fn on_ticket(&mut self, ticket: Ticket) {
        if let Some(resume_state) = self.resume_state.as_mut() {
            resume_state.ticket = Some(ticket);
        }
    }

    /// Client: whether a resume request is out and the answer awaited.
    pub(super) fn is_resuming(&self) -> bool {
        self.resume_state
            .as_ref()
            .is_some_and(|c| matches!(c.link, LinkState::Resuming { .. }))
    }

    /// Whether the session has a link to send on.
    pub(super) fn link_attached(&self) -> bool {
        self.resume_state
            .as_ref()
            .map_or(true, |c| c.link == LinkState::Attached)
    }

    /// Counts `len` bytes of the peer's sequence as received.
    pub(super) fn count_received(&mut self, len: usize) {
        if let Some(resume_state) = self.resume_state.as_mut() {
            if resume_state.counting && len > 0 {
                resume_state.received += len as u64;
                // The client sends nothing of the sequence before it has the answer.
                resume_state.unconfirmed_token = None;
            }
        }
    }

    /// An acknowledgement frame of `frame_len` bytes was received whole.
    /// One Ack alone does not call for an Ack, or the two sides would trade
    /// acknowledgements forever; but Acks are part of the peer's sequence, kept
    /// for replay until acknowledged, so once [`UNANSWERED_ACKS`] bytes of
    /// them have piled up they are acknowledged like anything else (a peer
    /// whose only frames are Acks would otherwise fill its replay buffer).
    pub(super) fn on_ack_received(&mut self, offset: u64, frame_len: u64) -> Result<(), ProtocolError> {
        let Some(resume_state) = self.resume_state.as_mut() else {
            return Err(ProtocolError::Resumption("an acknowledgement without resumption"));
        };
        if resume_state.acked + frame_len == resume_state.received && resume_state.unanswered_acks < UNANSWERED_ACKS {
            resume_state.unanswered_acks += frame_len;
            resume_state.acked = resume_state.received;
        }
        resume_state.on_ack(offset)
    }

    /// After input: acknowledge now if enough arrived, or arm the delay.
    pub(super) fn schedule_ack(&mut self, now: Instant) {
        let Some(resume_state) = self.resume_state.as_mut() else {
            return;
        };
        if resume_state.link != LinkState::Attached || resume_state.peer_capable != Some(true) {
            return;
        }
        let pending = resume_state.received - resume_state.acked;
        if pending == 0 {
            return;
        }
        if pending >= u64::from(resume_state.config.ack_bytes) {
            self.send_ack();
        } else if resume_state.ack_deadline.is_none() {
            resume_state.ack_deadline = Some(now + resume_state.config.ack_delay);
        }
    }

    fn send_ack(&mut self) {
        let Some(resume_state) = self.resume_state.as_mut() else {
            return;
        };
        resume_state.acked = resume_state.received;
        resume_state.unanswered_acks = 0;
        resume_state.ack_deadline = None;
        let payload = Bytes::copy_from_slice(&resume_state.received.to_be_bytes());
        self.push_control(Header::new(FrameType::Ack, Flags::NONE, 0, 8), payload);
    }

    /// The earliest resumption deadline: acknowledgement, resume answer, expiry.
    pub(super) fn resume_timeout(&self) -> Option<Instant> {
        let resume_state = self.resume_state.as_ref()?;
        let resuming = match resume_state.link {
            LinkState::Resuming { deadline } => Some(deadline),
            _ => None,
        };
        [resume_state.ack_deadline, resuming, resume_state.expires]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn handle_resume_timeout(&mut self, now: Instant) {
        let Some(resume_state) = self.resume_state.as_mut() else {
            return;
        };
        if resume_state.expires.is_some_and(|at| at <= now) {
            tracing::debug!("detached session expired");
            self.session_control.clear();
            self.terminate(Some(SessionError::Expired));
            return;
        }
        if let LinkState::Resuming { deadline } = resume_state.link {
            if deadline <= now {
                // No answer: that link is no good either.
                self.detach(now);
                return;
            }
        }
        if resume_state.ack_deadline.is_some_and(|at| at <= now) {
            self.send_ack();
        }
    }

    /// The peer's hello arrived: resumption holds only if it can resume too.
    pub(super) fn on_peer_capabilities(&mut self, capabilities: u32) {
        let Some(resume_state) = self.resume_state.as_mut() else {
            return;
        };
        let capable = capabilities & CAPABILITY_RESUME != 0;
        resume_state.peer_capable = Some(capable);
        resume_state.counting = capable;
        if !capable {
            tracing::debug!("the peer cannot resume; resumption is off for this session");
            self.resume_state = None;
            return;
        }
        if self.role == crate::Role::Server {
            if let Some(ticket) = resume_state.ticket {
                self.send_ticket(ticket);
            }
        }
    }
}

/// Why [`Session::attach`] could not start resuming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Only the client attaches; the server uses [`Session::handle_resume`].
    NotClient,
    /// The session is not detached (it has a link, or cannot resume at all).
    NotDetached,
    /// The session has ended.
    SessionClosed,
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AttachError::NotClient => "only a client session attaches to a new link",
            AttachError::NotDetached => "the session is not waiting for a new link",
            AttachError::SessionClosed => "the session has ended",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AttachError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Transmit {
        Transmit::new(
            Header::new(FrameType::Data, Flags::NONE, 1, len as u32),
            Profile::Native,
            Bytes::from(alloc::vec![0xab; len]),
        )
    }

    #[test]
    fn offsets_past_four_gibibytes_do_not_wrap() {
        let mut resume_state = ResumeState::new(Resumption::default());
        // As if 5 GiB had already gone out and been acknowledged.
        let base = 5u64 << 30;
        resume_state.sent = base;
        resume_state.peer_acked = base;
        resume_state.replay_start = base;
        for _ in 0..3 {
            resume_state.record(&frame(1000));
        }
        assert_eq!(resume_state.unacknowledged(), 3036);
        assert_eq!(resume_state.on_ack(base + 1012 + 500), Ok(()));
        assert_eq!(resume_state.replay.len(), 2);
        assert_eq!(resume_state.replay_start, base + 1012);
        let replayed = resume_state.prepare_replay(base + 1012 + 500);
        assert_eq!(replayed, 3036 - 1512);
        // The first frame is sent again from its 501st byte: header already gone.
        assert_eq!(resume_state.resend[0].header().len(), 0);
        assert_eq!(resume_state.resend[0].len(), 512);
        assert!(resume_state.on_ack(base + 10_000).is_err(), "more than was sent");
        assert!(
            !resume_state.can_replay_from(base + 1000),
            "before what was acknowledged"
        );
    }

    #[test]
    fn a_cut_inside_a_header_resends_the_rest_of_it() {
        let sent = frame(100);
        let rest = sent.suffix(5);
        assert_eq!(rest.header(), &sent.header()[5..]);
        assert_eq!(rest.payload(), sent.payload());
        assert_eq!(rest.len(), sent.len() - 5);
    }
}

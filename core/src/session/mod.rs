//! The session: one multiplexed link's protocol state machine.

mod handle;
mod input;
mod liveness;
mod output;
mod resume_state;
mod timers;

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::hash::BuildHasherDefault;
use core::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::budget::RateBudget;
use crate::config::{Config, ConfigError, Role, YAMUX_INITIAL_WINDOW};
use crate::error::{ClosedError, GoAwayCode, OpenError, PingError, ProtocolError, ResetCode, SessionError};
use crate::event::Event;
use crate::flow::RecvWindow;
use crate::frame::{Flags, FrameType, Header, Profile};
use crate::ids::IdHasher;
use crate::settings::{Settings, MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE};
use crate::stats::Stats;
use crate::stream::{StreamId, StreamState};
use crate::time::Instant;

pub use handle::Stream;
use input::Decoder;
pub use output::{Transmit, TransmitHeader};
pub use resume_state::AttachError;
use resume_state::{ResumeState, CAPABILITY_RESUME};

/// How many explicit pings may be in flight at once.
const MAX_USER_PINGS: usize = 8;

/// How many streams released on the delivery of their reset keep their code
/// for later operations: 8 bytes each at most.
const RESET_TOMBSTONES: usize = 256;

/// The most window updates for released streams let through unbudgeted.
const LATE_UPDATES: u32 = 4096;

/// Streams by id. Boxed: the table has room for up to twice the streams it
/// holds, and an empty slot then costs a pointer rather than a whole state.
type StreamMap = HashMap<u32, Box<StreamState>, BuildHasherDefault<IdHasher>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Draining,
    Closed,
}

#[derive(Clone, Copy, Debug)]
struct PendingPing {
    opaque: u32,
    sent_at: Instant,
    keepalive: bool,
}

/// One end of a multiplexed link, as a pure state machine.
///
/// Feed it what arrives ([`handle_input`](Self::handle_input)), the passing of time
/// ([`handle_timeout`](Self::handle_timeout)) and the loss of the link
/// ([`handle_link_lost`](Self::handle_link_lost)); drain what it wants to send
/// ([`poll_transmit`](Self::poll_transmit)), when it next needs the time
/// ([`poll_timeout`](Self::poll_timeout)) and what happened
/// ([`poll_event`](Self::poll_event)). Streams are driven through
/// [`open`](Self::open), [`accept`](Self::accept) and the [`Stream`] handle from
/// [`stream`](Self::stream). The crate documentation shows the whole loop.
pub struct Session {
    role: Role,
    config: Config,
    phase: Phase,
    close_reason: Option<SessionError>,

    /// Native: what the peer announced; `None` until its hello arrives.
    peer_settings: Option<Settings>,
    /// The initial window we assume the peer gives each of our streams until told.
    peer_initial_window: u32,
    /// The largest Data payload we may send.
    peer_max_frame: u32,
    handshake_deadline: Option<Instant>,

    streams: StreamMap,
    next_outbound_id: u64,
    max_inbound_id: u32,
    outbound_live: usize,
    unacknowledged_opens: usize,
    accept_queue: VecDeque<StreamId>,
    /// Sum of all streams' receive windows, bounded by `config.receive_budget`.
    window_total: u64,
    /// The largest receive window a stream of this session has grown to:
    /// streams whose readers keep up grow toward it (see `RecvWindow::take_update`).
    largest_window: u32,
    send_buffered_total: usize,

    session_control: VecDeque<Transmit>,
    stream_control: VecDeque<u32>,
    send_queue: VecDeque<u32>,
    write_blocked: Vec<u32>,
    /// How many streams wait for room in the session-wide send buffer and have
    /// not written since, counted per wake round (see `StreamState::waiting_round`).
    write_waiting: usize,
    /// Which wake of the streams blocked on the session-wide send buffer this
    /// is: a stream woken in an earlier round that never wrote again no longer
    /// counts as waiting.
    write_round: u32,

    events: VecDeque<Event>,
    /// Streams released when their reset was delivered as an event, with the
    /// code, so that an operation on one afterwards still reports the reset
    /// (bounded: the oldest are forgotten first).
    reset_tombstones: VecDeque<(u32, ResetCode, Option<Box<str>>)>,
    /// The input count at which old received pieces are next looked at (see
    /// `compact_old_pieces`).
    next_compaction: u64,
    /// Window updates a well-behaved peer may still send for streams already
    /// released (it grants window as it reads what this side sent last) before
    /// such updates count against the empty-frame budget: two per released
    /// stream, at most `LATE_UPDATES`.
    late_updates: u32,
    want_incoming_event: bool,
    want_can_open_event: bool,

    pings: SmallVec<[PendingPing; 4]>,
    next_ping_opaque: u32,
    next_keepalive: Option<Instant>,
    missed_pings: u32,
    srtt: Option<Duration>,
    /// The link's progress, for liveness (see `liveness`).
    progress: liveness::Progress,

    ping_budget: RateBudget,
    empty_frame_budget: RateBudget,
    reset_budget: RateBudget,

    open_deadlines: BTreeSet<(Instant, u32)>,
    close_deadlines: BTreeSet<(Instant, u32)>,
    drain_deadline: Option<Instant>,
    goaway_sent: bool,
    goaway_received: Option<GoAwayCode>,
    /// The reason the peer's go-away came with (native profile).
    peer_go_away_reason: Option<Box<str>>,
    /// The reason this side's go-away goes out with (native profile).
    go_away_reason: Option<Box<str>>,

    /// What goes out before anything else on the current link and is not part of
    /// the numbered sequence: the hello, a resume request or its answer.
    preamble: Option<Transmit>,
    /// Resumption state; `None` when resumption is off.
    resume_state: Option<ResumeState>,

    decoder: Decoder,
    /// Counts input that changed state; frames that leave it unchanged are budgeted.
    input_effects: u64,
    stats: Stats,
}

impl Session {
    /// A new session for `role`, starting at `now`.
    ///
    /// In the native profile the hello is queued at once: it is the first thing
    /// `poll_transmit` returns.
    pub fn new(role: Role, config: Config, now: Instant) -> Result<Session, ConfigError> {
        config.validate()?;
        let (peer_initial_window, peer_max_frame) = match config.profile {
            Profile::Yamux => (YAMUX_INITIAL_WINDOW, config.max_frame_size),
            // Until the peer's hello says more, assume the least it may announce.
            Profile::Native => (MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE.min(config.max_frame_size)),
        };
        let limits = config.limits.clone();
        let mut session = Session {
            role,
            phase: Phase::Open,
            close_reason: None,
            peer_settings: None,
            peer_initial_window,
            peer_max_frame,
            handshake_deadline: None,
            streams: StreamMap::default(),
            next_outbound_id: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            max_inbound_id: 0,
            outbound_live: 0,
            unacknowledged_opens: 0,
            accept_queue: VecDeque::new(),
            window_total: 0,
            largest_window: 0,
            send_buffered_total: 0,
            session_control: VecDeque::new(),
            stream_control: VecDeque::new(),
            send_queue: VecDeque::new(),
            write_blocked: Vec::new(),
            write_waiting: 0,
            write_round: 0,
            events: VecDeque::new(),
            reset_tombstones: VecDeque::new(),
            next_compaction: 0,
            late_updates: 0,
            want_incoming_event: true,
            want_can_open_event: false,
            pings: SmallVec::new(),
            next_ping_opaque: 1,
            next_keepalive: config.keepalive_interval.map(|_| now),
            missed_pings: 0,
            srtt: None,
            progress: liveness::Progress::starting(now),
            ping_budget: RateBudget::new(limits.pings_per_second, now),
            empty_frame_budget: RateBudget::new(limits.empty_frames_per_second, now),
            reset_budget: RateBudget::new(limits.resets_per_second, now),
            open_deadlines: BTreeSet::new(),
            close_deadlines: BTreeSet::new(),
            drain_deadline: None,
            goaway_sent: false,
            goaway_received: None,
            peer_go_away_reason: None,
            go_away_reason: None,
            preamble: None,
            resume_state: config.resumption.clone().map(ResumeState::new),
            decoder: Decoder::new(config.profile),
            input_effects: 0,
            stats: Stats::default(),
            config,
        };
        if session.config.profile == Profile::Native {
            let hello = session.local_settings().encode();
            let header = Header::new(FrameType::Hello, Flags::NONE, 0, hello.len() as u32);
            session.preamble = Some(Transmit::new(header, Profile::Native, Bytes::from(hello)));
            session.handshake_deadline = Some(now + session.config.handshake_timeout);
        }
        Ok(session)
    }

    fn local_settings(&self) -> Settings {
        let keepalive_ms = self
            .config
            .keepalive_interval
            .map_or(0, |interval| u32::try_from(interval.as_millis()).unwrap_or(u32::MAX));
        Settings {
            initial_window: self.config.initial_window,
            max_frame_size: self.config.max_frame_size,
            max_streams: u32::try_from(self.config.max_streams).unwrap_or(u32::MAX),
            keepalive_ms,
            capabilities: if self.resume_state.is_some() {
                CAPABILITY_RESUME
            } else {
                0
            },
        }
    }

    // ----- commands -------------------------------------------------------------

    /// Opens a stream. The SYN goes out with the stream's first frame: write before
    /// the next `poll_transmit` and the open costs no extra frame.
    pub fn open(&mut self, now: Instant) -> Result<StreamId, OpenError> {
        match self.phase {
            Phase::Closed => return Err(OpenError::SessionClosed),
            Phase::Draining => return Err(OpenError::GoingAway),
            Phase::Open => {}
        }
        if self.goaway_received.is_some() {
            return Err(OpenError::GoingAway);
        }
        let raw = u32::try_from(self.next_outbound_id).map_err(|_| OpenError::IdsExhausted)?;
        let peer_max_streams = self.peer_settings.map_or(usize::MAX, |s| s.max_streams as usize);
        let initial = u64::from(self.config.initial_window);
        if self.streams.len() >= self.config.max_streams
            || self.unacknowledged_opens >= self.config.max_unacknowledged_opens
            || self.outbound_live >= peer_max_streams
            || self.window_total + initial > self.config.receive_budget
        {
            self.want_can_open_event = true;
            return Err(OpenError::Blocked);
        }
        self.next_outbound_id += 2;
        let mut stream = StreamState::new(true, self.peer_initial_window, self.new_recv_window());
        if let Some(timeout) = self.config.open_timeout {
            let deadline = now + timeout;
            stream.open_deadline = Some(deadline);
            self.open_deadlines.insert((deadline, raw));
        }
        self.window_total += initial;
        self.streams.insert(raw, Box::new(stream));
        self.outbound_live += 1;
        self.unacknowledged_opens += 1;
        self.stats.streams_opened += 1;
        self.queue_control(raw);
        tracing::trace!(stream = raw, "opened stream");
        Ok(StreamId(raw))
    }

    /// Takes the next inbound stream from the accept queue, acknowledging it to the
    /// peer. Call it until it returns `None`; an [`Event::IncomingStream`] follows
    /// when more arrive.
    pub fn accept(&mut self) -> Option<StreamId> {
        let Some(id) = self.accept_queue.pop_front() else {
            self.want_incoming_event = true;
            return None;
        };
        // Streams leave the queue when reset or released, so the id is live.
        let stream = self.streams.get_mut(&id.0)?;
        stream.accepted = true;
        stream.acknowledged = true;
        stream.ack_pending = true;
        // What arrived before the accept raised no event (the stream was not the
        // application's yet): announce it now, as if it had just arrived.
        if stream.want_readable && (!stream.recv_buf.is_empty() || stream.fin_received) {
            stream.want_readable = false;
            self.events.push_back(Event::Readable(id));
        }
        self.stats.streams_accepted += 1;
        self.queue_control(id.0);
        Some(id)
    }

    /// A handle for operations on one stream. The id is checked by each operation.
    pub fn stream(&mut self, id: StreamId) -> Stream<'_> {
        Stream::new(self, id)
    }

    /// Sends a ping; the answer arrives as [`Event::Pong`] with the round-trip time.
    pub fn ping(&mut self, now: Instant) -> Result<(), PingError> {
        if self.phase == Phase::Closed {
            return Err(PingError::SessionClosed);
        }
        let timeout = self.config.ping_timeout;
        // Unanswered explicit pings are forgotten after the ping timeout.
        self.pings.retain(|p| p.keepalive || p.sent_at + timeout > now);
        if self.pings.iter().filter(|p| !p.keepalive).count() >= MAX_USER_PINGS {
            return Err(PingError::Blocked);
        }
        self.send_ping(now, false);
        Ok(())
    }

    /// Starts a graceful shutdown: a go-away with `code` is sent, no new streams are
    /// opened or accepted, live streams carry on, and the session closes when the
    /// last one finishes or `drain_timeout` passes (then the rest are reset).
    ///
    /// Use [`GoAwayCode::NORMAL`] to drain: a peer that receives an error code
    /// (anything else) ends the session at once, as yamux peers do for every code.
    /// It fails only with [`ClosedError::SessionClosed`], once the session has ended.
    pub fn go_away(&mut self, now: Instant, code: GoAwayCode) -> Result<(), ClosedError> {
        if self.phase == Phase::Closed {
            return Err(ClosedError::SessionClosed);
        }
        if !self.goaway_sent {
            self.announce_pending_opens();
        }
        self.send_go_away(code);
        self.start_drain(now, true);
        Ok(())
    }

    /// [`go_away`](Self::go_away) with a reason the peer can show (native
    /// profile; up to [`MAX_REASON`](crate::frame::MAX_REASON) bytes, a longer
    /// one is cut at a character boundary; the yamux profile sends the code
    /// alone). Only the first go-away's reason is sent.
    pub fn go_away_with_reason(&mut self, now: Instant, code: GoAwayCode, reason: &str) -> Result<(), ClosedError> {
        if !self.goaway_sent {
            self.go_away_reason = fit_reason(reason);
        }
        self.go_away(now, code)
    }

    /// Ends a drain now, as if `drain_timeout` had passed: every stream still
    /// open is reset with `DRAIN_TIMEOUT` (the resets go out, so the peer's
    /// side of each stream ends at once too, instead of waiting for its own
    /// drain timeout), and the session closes as the last reset goes out. For
    /// an application whose own shutdown deadline ran out. Does nothing
    /// unless the session is draining.
    pub fn end_drain(&mut self, now: Instant) {
        if self.phase == Phase::Draining {
            self.drain_deadline = Some(now);
            self.handle_timeout(now);
        }
    }

    /// [`close`](Self::close) with a reason, as for
    /// [`go_away_with_reason`](Self::go_away_with_reason).
    pub fn close_with_reason(&mut self, code: GoAwayCode, reason: &str) {
        if !self.goaway_sent {
            self.go_away_reason = fit_reason(reason);
        }
        self.close(code);
    }

    /// Closes the session at once: a go-away with `code` is sent, every stream stops
    /// (writes return `SessionClosed`; reads return what had already arrived, then
    /// `SessionClosed`), and only the go-away is left to transmit.
    pub fn close(&mut self, code: GoAwayCode) {
        if self.phase == Phase::Closed {
            return;
        }
        self.send_go_away(code);
        self.terminate(Some(SessionError::LocallyClosed(code)));
    }

    /// The link is gone. A resumable session (see [`crate::resume`]) detaches:
    /// streams stay open, writes are accepted up to the send buffers, timers keep
    /// running, and [`Event::Detached`] says to find a new link. Otherwise the
    /// session closes with [`SessionError::LinkLost`]: every operation fails from
    /// now on, and nothing is left to transmit.
    pub fn handle_link_lost(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.detach(now) {
            return;
        }
        self.session_control.clear();
        self.preamble = None;
        self.terminate(Some(SessionError::LinkLost));
    }

    // ----- outputs ----------------------------------------------------------------

    /// Whether [`poll_event`](Self::poll_event) has an event to give: a
    /// cheap check for callers that look after every operation.
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::StreamReset { id, code } = event {
            self.reset_delivered(id.0, code);
        }
        Some(event)
    }

    /// The application has been told of a stream's reset: that is all it needs
    /// to know, so the stream's slot is released now rather than when the
    /// application next touches it (an embedder that forgets the stream on
    /// this event would otherwise leak the slot).
    fn reset_delivered(&mut self, id: u32, code: ResetCode) {
        let mut reason = None;
        if let Some(stream) = self.streams.get_mut(&id) {
            if stream.reset.is_none() {
                // Not the stream this event was about.
                return;
            }
            stream.reset_observed = true;
            reason = stream.reason.clone();
        }
        // Kept even when the stream is gone already (a drain timeout releases
        // it as its RST goes out): later operations still report the code.
        if self.reset_tombstones.len() >= RESET_TOMBSTONES {
            self.reset_tombstones.pop_front();
        }
        self.reset_tombstones.push_back((id, code, reason));
        self.maybe_release(id);
    }

    /// The code of a stream released when its reset was delivered, if it is
    /// among the last [`RESET_TOMBSTONES`] such streams.
    pub(super) fn tombstone(&self, id: u32) -> Option<ResetCode> {
        self.reset_tombstones
            .iter()
            .rev()
            .find(|(released, ..)| *released == id)
            .map(|(_, code, _)| *code)
    }

    /// The reason a stream was reset with, by either side (native profile):
    /// while the stream is live, and for the last `RESET_TOMBSTONES` streams
    /// released on delivering their reset, as with their codes.
    pub fn reset_reason(&self, id: StreamId) -> Option<&str> {
        if let Some(stream) = self.streams.get(&id.0) {
            return stream.reason.as_deref();
        }
        self.reset_tombstones
            .iter()
            .rev()
            .find(|(released, ..)| *released == id.0)
            .and_then(|(_, _, reason)| reason.as_deref())
    }

    /// The reason the peer gave with its go-away (native profile), if any.
    pub fn peer_go_away_reason(&self) -> Option<&str> {
        self.peer_go_away_reason.as_deref()
    }

    // ----- getters ------------------------------------------------------------------

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The wire profile.
    pub fn profile(&self) -> Profile {
        self.config.profile
    }

    /// The configuration the session was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Native: the settings the peer announced, once its hello has arrived.
    pub fn peer_settings(&self) -> Option<&Settings> {
        self.peer_settings.as_ref()
    }

    /// Whether the session has ended. What is left in `poll_transmit` (a final
    /// go-away) should still be sent before the link is closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a go-away was sent or received and the session is draining.
    pub fn is_draining(&self) -> bool {
        self.phase == Phase::Draining
    }

    /// Why the session ended, if it ended abnormally.
    pub fn close_reason(&self) -> Option<SessionError> {
        self.close_reason
    }

    /// The go-away code the peer sent, if any.
    pub fn peer_go_away(&self) -> Option<GoAwayCode> {
        self.goaway_received
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        stats.rtt_smoothed = self.srtt;
        stats
    }

    /// The smoothed round-trip time, once a ping has been answered.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Keepalive pings missed in a row; 0 when the link is healthy.
    pub fn missed_pings(&self) -> u32 {
        self.missed_pings
    }

    /// Whether the link is suspect (see [`Event::LinkSuspect`]): it has not
    /// answered within the silence bound, and nothing has come since.
    pub fn is_link_suspect(&self) -> bool {
        self.progress.is_suspect()
    }

    /// Streams currently open (both directions, including ones waiting to be
    /// accepted); after the session closed, streams with received data still unread.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Inbound streams waiting in the accept queue.
    pub fn pending_accepts(&self) -> usize {
        self.accept_queue.len()
    }

    /// Bytes received on all streams and not yet read by the application.
    pub fn buffered_receive(&self) -> u64 {
        self.streams.values().map(|s| s.flow.buffered()).sum()
    }

    /// Bytes written on all streams and not yet handed to `poll_transmit`.
    pub fn buffered_send(&self) -> usize {
        self.send_buffered_total
    }

    /// The sum of all streams' receive windows; never above `config.receive_budget`.
    pub fn receive_windows_total(&self) -> u64 {
        self.window_total
    }

    // ----- internals shared by the submodules ----------------------------------------

    fn new_recv_window(&self) -> RecvWindow {
        let granted = match self.config.profile {
            Profile::Yamux => YAMUX_INITIAL_WINDOW,
            Profile::Native => self.config.initial_window,
        };
        RecvWindow::new(self.config.initial_window, granted)
    }

    fn push_control(&mut self, header: Header, payload: Bytes) {
        self.session_control
            .push_back(Transmit::new(header, self.config.profile, payload));
    }

    /// Queues a control reply the peer asked for, within the pending-control budget.
    fn push_reply(&mut self, header: Header) -> Result<(), ProtocolError> {
        if self.session_control.len() >= self.config.limits.max_pending_control {
            return Err(ProtocolError::LimitExceeded("unsent control replies"));
        }
        self.push_control(header, Bytes::new());
        Ok(())
    }

    fn queue_control(&mut self, id: u32) {
        if let Some(stream) = self.streams.get_mut(&id) {
            if !stream.in_control_queue {
                stream.in_control_queue = true;
                self.stream_control.push_back(id);
            }
        }
    }

    fn queue_send(&mut self, id: u32) {
        if let Some(stream) = self.streams.get_mut(&id) {
            if !stream.in_send_queue && stream.has_sendable() {
                stream.in_send_queue = true;
                self.send_queue.push_back(id);
            }
        }
    }

    fn send_ping(&mut self, now: Instant, keepalive: bool) {
        let opaque = self.next_ping_opaque;
        self.next_ping_opaque = self.next_ping_opaque.wrapping_add(1);
        self.pings.push(PendingPing {
            opaque,
            sent_at: now,
            keepalive,
        });
        self.note_ping_sent(now);
        self.stats.pings_sent += 1;
        self.push_control(Header::new(FrameType::Ping, Flags::SYN, 0, opaque), Bytes::new());
    }

    fn send_go_away(&mut self, code: GoAwayCode) {
        if !self.goaway_sent {
            self.goaway_sent = true;
            match (self.profile(), self.go_away_reason.take()) {
                (Profile::Native, Some(reason)) => {
                    let (header, payload) = reason_frame(0, code.0, &reason);
                    self.go_away_reason = Some(reason);
                    self.push_control(header, payload);
                }
                _ => self.push_control(Header::new(FrameType::GoAway, Flags::NONE, 0, code.0), Bytes::new()),
            }
        }
    }

    /// Streams opened before a go-away must reach the peer before it: a peer that
    /// has seen the go-away refuses every stream it has not seen opened. The
    /// go-away jumps ahead of stream frames, so the opens that have not gone out
    /// yet go ahead of it, as window updates with SYN (their data follows later).
    fn announce_pending_opens(&mut self) {
        let mut pending: SmallVec<[u32; 8]> = self
            .streams
            .iter_mut()
            .filter_map(|(&id, stream)| core::mem::take(&mut stream.syn_pending).then_some(id))
            .collect();
        pending.sort_unstable();
        for id in pending {
            self.push_control(Header::new(FrameType::WindowUpdate, Flags::SYN, id, 0), Bytes::new());
        }
    }

    /// No new streams from now on. `refuse_backlog`: our own go-away refuses the
    /// inbound streams nobody accepted yet (the peer opened them before it saw
    /// the go-away, and learns they were not served); after the peer's go-away
    /// they stay acceptable, since the peer opened them and will serve them.
    fn start_drain(&mut self, now: Instant, refuse_backlog: bool) {
        if self.phase == Phase::Open {
            self.phase = Phase::Draining;
            self.drain_deadline = Some(now + self.config.drain_timeout);
        }
        if refuse_backlog {
            while let Some(id) = self.accept_queue.pop_front() {
                self.reset_stream(id.0, ResetCode::REFUSED, false);
            }
        }
        self.check_drained();
    }

    fn check_drained(&mut self) {
        if self.phase == Phase::Draining && self.streams.is_empty() {
            tracing::debug!("session drained");
            self.terminate(None);
        }
    }

    /// Ends the session: streams and queued stream frames are dropped; only session
    /// control frames (a final go-away) remain to transmit.
    fn terminate(&mut self, reason: Option<SessionError>) {
        if self.phase == Phase::Closed {
            return;
        }
        match &reason {
            Some(err) => tracing::debug!(%err, "session closed"),
            None => tracing::debug!("session closed"),
        }
        self.phase = Phase::Closed;
        self.close_reason = reason;
        // Nothing will be resumed: the replay buffer (up to `replay_buffer`
        // bytes) goes now, not when the application drops its last handle.
        self.resume_state = None;
        // Received data stays readable (and a received FIN still reads as the end of
        // the stream); everything else about the streams is gone.
        self.streams.retain(|_, s| {
            s.accepted && s.reset.is_none() && (!s.recv_buf.is_empty() || (s.fin_received && !s.eof_read))
        });
        for stream in self.streams.values_mut() {
            stream.send_buf.clear();
            stream.send_buffered = 0;
            stream.in_write_blocked = false;
            stream.waiting_round = None;
        }
        self.write_waiting = 0;
        self.accept_queue.clear();
        self.stream_control.clear();
        self.send_queue.clear();
        self.write_blocked.clear();
        self.open_deadlines.clear();
        self.close_deadlines.clear();
        self.pings.clear();
        self.window_total = self.streams.values().map(|s| u64::from(s.flow.window())).sum();
        self.send_buffered_total = 0;
        self.outbound_live = 0;
        self.unacknowledged_opens = 0;
        self.events.push_back(Event::Closed(reason));
    }

    /// The peer broke the protocol: tell it why, then end.
    fn fail(&mut self, err: ProtocolError) {
        if self.phase == Phase::Closed {
            return;
        }
        let code = match (err, self.config.profile) {
            (ProtocolError::LimitExceeded(_), Profile::Native) => GoAwayCode::LIMIT_EXCEEDED,
            _ => GoAwayCode::PROTOCOL_ERROR,
        };
        self.fail_with(SessionError::Protocol(err), code);
    }

    fn fail_with(&mut self, err: SessionError, code: GoAwayCode) {
        // What is queued (our hello among it) still goes out first, so that the peer
        // can decode the go-away that explains the failure.
        self.goaway_sent = false;
        self.send_go_away(code);
        self.terminate(Some(err));
    }

    /// Resets a stream from this side (application, timers, drain, refusal of an
    /// unaccepted stream). `observed` says whether the application already knows.
    fn reset_stream(&mut self, id: u32, code: ResetCode, observed: bool) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.reset.is_some() {
            stream.reset_observed |= observed;
            self.maybe_release(id);
            return;
        }
        let dropped = stream.discard_buffers();
        self.send_buffered_total -= dropped;
        stream.reset = Some(code);
        stream.reset_observed = observed;
        // A stream the peer never heard of needs no RST.
        if !(stream.outbound && stream.syn_pending) {
            stream.rst_pending = Some(code);
        }
        stream.syn_pending = false;
        stream.ack_pending = false;
        let notify = stream.accepted && !observed;
        if notify {
            self.events.push_back(Event::StreamReset { id: StreamId(id), code });
        }
        self.queue_control(id);
        self.maybe_release(id);
    }

    /// Releases a stream whose story is over.
    fn maybe_release(&mut self, id: u32) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if !stream.is_finished() {
            return;
        }
        let Some(stream) = self.streams.remove(&id) else {
            return;
        };
        self.window_total -= u64::from(stream.flow.window());
        self.send_buffered_total -= stream.send_buffered;
        if stream.waiting_round == Some(self.write_round) {
            self.write_waiting = self.write_waiting.saturating_sub(1);
        }
        if stream.outbound {
            self.outbound_live -= 1;
            if !stream.acknowledged {
                self.unacknowledged_opens -= 1;
            }
        }
        if let Some(deadline) = stream.open_deadline {
            self.open_deadlines.remove(&(deadline, id));
        }
        if let Some(deadline) = stream.close_deadline {
            self.close_deadlines.remove(&(deadline, id));
        }
        if !stream.accepted {
            self.accept_queue.retain(|queued| queued.0 != id);
        } else {
            self.events.push_back(Event::StreamClosed(StreamId(id)));
        }
        self.late_updates = (self.late_updates + 2).min(LATE_UPDATES);
        tracing::trace!(stream = id, "released stream");
        self.notify_can_open();
        self.check_drained();
    }

    fn notify_can_open(&mut self) {
        if self.want_can_open_event && self.phase == Phase::Open {
            self.want_can_open_event = false;
            self.events.push_back(Event::CanOpen);
        }
    }

    /// Starts the close timer once this side is done sending and the peer is not.
    fn arm_close_timer(&mut self, id: u32, now: Instant) {
        let Some(timeout) = self.config.close_timeout else {
            return;
        };
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.close_deadline.is_none() && !stream.fin_received && stream.reset.is_none() {
            let deadline = now + timeout;
            stream.close_deadline = Some(deadline);
            self.close_deadlines.insert((deadline, id));
        }
    }
}

/// `reason` cut to at most [`MAX_REASON`](crate::frame::MAX_REASON) bytes at a
/// character boundary; `None` when empty.
pub(super) fn fit_reason(reason: &str) -> Option<Box<str>> {
    let mut end = reason.len().min(crate::frame::MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let fitted = reason.get(..end).unwrap_or_default();
    (!fitted.is_empty()).then(|| fitted.into())
}

/// A Reason frame: the code, then the reason's bytes.
pub(super) fn reason_frame(stream_id: u32, code: u32, reason: &str) -> (Header, Bytes) {
    let mut payload = Vec::with_capacity(4 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    // At most 4 + MAX_REASON bytes: the reason was fitted when it was set.
    let length = payload.len() as u32;
    (
        Header::new(FrameType::Reason, Flags::NONE, stream_id, length),
        Bytes::from(payload),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_blocked_on_the_session_buffer_is_queued_once_however_often_it_polls() {
        let config = Config {
            stream_send_buffer: 64 * 1024,
            session_send_buffer: 64 * 1024,
            keepalive_interval: None,
            ..Config::yamux()
        };
        // Test code, not peer input: the config is valid and a new session has
        // room for two streams, so these cannot fail.
        let mut session = Session::new(Role::Client, config, Instant::ZERO).expect("valid config");
        let full = session.open(Instant::ZERO).expect("room for a stream");
        let blocked = session.open(Instant::ZERO).expect("room for a stream");
        let written = session.stream(full).write(Bytes::from(alloc::vec![0u8; 64 * 1024]));
        assert_eq!(written, Ok(64 * 1024));
        for _ in 0..1000 {
            let again = session.stream(blocked).write(Bytes::from_static(b"x"));
            assert_eq!(again, Err(crate::error::WriteError::Blocked));
        }
        assert_eq!(session.write_blocked.len(), 1, "one entry per blocked stream");
    }
}

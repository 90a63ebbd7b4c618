//! A deterministic two-party simulator for [`Session`]s.
//!
//! ```
//! use hawser_conformance::sim::{Pair, Side, SimConfig};
//! use hawser_core::{Config, Event};
//!
//! let mut pair = Pair::new(Config::default(), Config::default(), SimConfig::default());
//! let id = pair.client.open(pair.now).unwrap();
//! pair.client.stream(id).write_slice(b"ping").unwrap();
//! pair.drive();
//! assert!(pair.events(Side::Server).contains(&Event::IncomingStream));
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal, ResumeToken};
use hawser_core::{Config, Event, Instant, Role, Session};

use crate::rng::Rng;

/// One end of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The session created with [`Role::Client`].
    Client,
    /// The session created with [`Role::Server`].
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// The simulated link, the same in both directions.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// One-way delay of every byte.
    pub latency: Duration,
    /// Bytes per second, or `None` for infinitely fast.
    pub bandwidth: Option<u64>,
    /// The largest piece the byte stream is cut into; pieces are 1 to this many
    /// bytes, at random. `None` delivers each frame whole.
    pub max_chunk: Option<usize>,
    /// Seed of the splitting and of anything else random in the run.
    pub seed: u64,
    /// Under limited bandwidth: how many bytes may wait to be serialised
    /// before a side takes no more frames from its session, as a kernel
    /// with `TCP_NOTSENT_LOWAT` keeps its unsent queue small. `None`: the
    /// queue has no bound (every frame is taken at once, and a ping waits
    /// behind all of them).
    pub send_queue: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::from_millis(1),
            bandwidth: None,
            max_chunk: None,
            seed: 1,
            send_queue: None,
        }
    }
}

#[derive(Debug, Default)]
struct Link {
    /// Bytes in flight, with the time each piece arrives (non-decreasing).
    in_flight: VecDeque<(Instant, Bytes)>,
    /// When the sender's last byte finishes serialising, under limited bandwidth.
    busy_until: Instant,
    bytes_carried: u64,
}

/// Two sessions joined by a simulated link, on simulated time.
pub struct Pair {
    /// The client session.
    pub client: Session,
    /// The server session.
    pub server: Session,
    /// The simulated current time.
    pub now: Instant,
    config: SimConfig,
    links: [Link; 2],
    events: [VecDeque<Event>; 2],
    rng: Rng,
    link_up: bool,
    /// A silent outage: nothing arrives, nothing is lost (bytes wait in
    /// flight, as in TCP's queues, and arrive when it ends).
    blackhole: bool,
    /// Cut the link once this many bytes (both directions together) have arrived.
    cut_at: Option<u64>,
    delivered: u64,
    cuts: u64,
    /// After a reconnect, the server side reads the new link's opening here, as an
    /// acceptor would, until the resume request is whole.
    accepting: Option<BytesMut>,
    refusals: Vec<ResumeRefusal>,
    /// The acceptor refused the current link: the server session does not own it,
    /// so nothing of the session's goes on it.
    refused_link: bool,
}

impl Pair {
    /// Two sessions with the given configurations, at time zero.
    ///
    /// # Panics
    /// If either configuration is invalid: this is test scaffolding.
    pub fn new(client: Config, server: Config, config: SimConfig) -> Pair {
        let now = Instant::ZERO;
        Pair {
            client: Session::new(Role::Client, client, now).expect("valid client config"),
            server: Session::new(Role::Server, server, now).expect("valid server config"),
            now,
            rng: Rng::new(config.seed),
            config,
            links: Default::default(),
            events: Default::default(),
            link_up: true,
            blackhole: false,
            cut_at: None,
            delivered: 0,
            cuts: 0,
            accepting: None,
            refusals: Vec::new(),
            refused_link: false,
        }
    }

    /// Starts (`true`) or ends a silent outage: while it lasts nothing
    /// arrives in either direction, and nothing is lost; what was sent
    /// arrives once it ends (a path that drops packets for a while, under
    /// TCP).
    pub fn blackhole(&mut self, on: bool) {
        self.blackhole = on;
    }

    /// The session on `side`.
    pub fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// The run's random generator (seeded from [`SimConfig::seed`]).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Events `side` has emitted and the test has not taken yet.
    pub fn events(&self, side: Side) -> &VecDeque<Event> {
        &self.events[side.index()]
    }

    /// Takes the events `side` has emitted so far.
    pub fn take_events(&mut self, side: Side) -> Vec<Event> {
        self.events[side.index()].drain(..).collect()
    }

    /// Bytes the link has carried from `side` to its peer.
    pub fn bytes_carried(&self, from: Side) -> u64 {
        self.links[from.index()].bytes_carried
    }

    /// Bytes sent by `side` that have not yet arrived.
    pub fn in_flight(&self, from: Side) -> usize {
        self.links[from.index()].in_flight.iter().map(|(_, b)| b.len()).sum()
    }

    /// Cuts the link: bytes in flight are lost and each side is told
    /// [`Session::handle_link_lost`].
    pub fn cut_link(&mut self) {
        self.link_up = false;
        for link in &mut self.links {
            link.in_flight.clear();
        }
        let now = self.now;
        self.client.handle_link_lost(now);
        self.server.handle_link_lost(now);
        self.collect_events();
    }

    /// Whether the link is up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Bytes that have arrived so far, both directions together.
    pub fn bytes_delivered(&self) -> u64 {
        self.delivered
    }

    /// How many times the link was cut.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    /// Cuts the link once `total` bytes (both directions together, counted from
    /// the start of the run) have arrived: the piece that crosses the mark is
    /// delivered only up to it.
    pub fn cut_at(&mut self, total: u64) {
        self.cut_at = Some(total);
    }

    /// Brings up a new link after a cut and resumes over it: the client
    /// [attaches](Session::attach) and its resume request travels the link like
    /// any bytes; at the server end an acceptor reads it and calls
    /// [`Session::handle_resume`] with a fresh token from the run's generator. A
    /// refusal goes back to the client as the acceptor would send it (see
    /// [`refusals`](Self::refusals)).
    pub fn reconnect(&mut self) -> Result<(), hawser_core::AttachError> {
        self.link_up = true;
        for link in &mut self.links {
            link.in_flight.clear();
        }
        self.accepting = Some(BytesMut::new());
        self.refused_link = false;
        let now = self.now;
        self.client.attach(now)
    }

    /// Refusals the simulated acceptor sent.
    pub fn refusals(&self) -> &[ResumeRefusal] {
        &self.refusals
    }

    /// Moves every queued frame onto the link and every due piece off it, and runs
    /// due timers, until nothing moves at the current time. Returns whether anything
    /// moved.
    pub fn step_now(&mut self) -> bool {
        let mut moved = false;
        let mut rounds = 0u32;
        loop {
            // A session that keeps asking for a timer it never clears would spin here.
            rounds += 1;
            assert!(
                rounds < 1_000_000,
                "livelock at {:?}: timers {:?} / {:?}",
                self.now,
                self.client.poll_timeout(),
                self.server.poll_timeout()
            );
            let mut progress = false;
            for side in [Side::Client, Side::Server] {
                progress |= self.flush(side);
            }
            for side in [Side::Client, Side::Server] {
                progress |= self.deliver_due(side);
            }
            let now = self.now;
            for side in [Side::Client, Side::Server] {
                let session = self.session(side);
                if session.poll_timeout().is_some_and(|at| at <= now) {
                    session.handle_timeout(now);
                    progress = true;
                }
            }
            self.collect_events();
            if !progress {
                return moved;
            }
            moved = true;
        }
    }

    /// Runs until the link is empty and nothing is queued, advancing time only to
    /// deliver bytes in flight (timers that fall due on the way run too, but the
    /// clock never jumps ahead just for a timer).
    pub fn drive(&mut self) {
        loop {
            self.step_now();
            match self.next_arrival() {
                Some(at) => self.advance_to(at),
                None => return,
            }
        }
    }

    /// Like [`drive`](Self::drive), then lets simulated time pass for `duration`,
    /// running every timer and delivery on the way.
    pub fn drive_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        loop {
            self.step_now();
            match self.next_event().filter(|at| *at <= end) {
                Some(at) => self.advance_to(at.max(self.now)),
                None => break,
            }
        }
        self.advance_to(end);
        self.step_now();
    }

    /// Advances one delivery or timer, whichever is first; returns false when
    /// nothing is pending at all.
    pub fn step(&mut self) -> bool {
        self.step_within(Duration::MAX)
    }

    /// Like [`step`](Self::step), but lets at most `max_advance` of simulated time
    /// pass: an application that is still busy (reading slowly, opening later) is
    /// not jumped over by an idle link straight to the next keepalive.
    pub fn step_within(&mut self, max_advance: Duration) -> bool {
        if self.step_now() {
            return true;
        }
        let limit = self.now + max_advance;
        match self.next_event() {
            Some(at) => {
                self.advance_to(at.min(limit).max(self.now));
                self.step_now();
                true
            }
            None => false,
        }
    }

    fn advance_to(&mut self, at: Instant) {
        if at > self.now {
            self.now = at;
        }
    }

    /// The earliest delivery or timer of either side.
    fn next_event(&self) -> Option<Instant> {
        [
            self.next_arrival(),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn next_arrival(&self) -> Option<Instant> {
        if self.blackhole {
            return None;
        }
        self.links
            .iter()
            .filter_map(|l| l.in_flight.front().map(|(at, _)| *at))
            .min()
    }

    fn collect_events(&mut self) {
        for side in [Side::Client, Side::Server] {
            while let Some(event) = self.session(side).poll_event() {
                self.events[side.index()].push_back(event);
            }
        }
    }

    /// Moves `side`'s queued frames onto the link, cut into pieces.
    fn flush(&mut self, side: Side) -> bool {
        let now = self.now;
        // The room left in a bounded send queue: once it is full, the
        // session keeps its frames (and can still put a ping before its
        // data) until the queue drains.
        let room = match (self.config.bandwidth, self.config.send_queue) {
            (Some(rate), Some(limit)) => {
                let waiting = self.links[side.index()].busy_until.saturating_duration_since(now);
                let queued = (waiting.as_secs_f64() * rate as f64) as usize;
                if queued >= limit {
                    return false;
                }
                limit - queued
            }
            _ => usize::MAX,
        };
        let mut bytes = BytesMut::new();
        let nothing_promised = !self.session(side).has_transmit();
        while bytes.len() < room {
            let Some(transmit) = self.session(side).poll_transmit(now) else {
                break;
            };
            // Embedders skip waking a writer on this promise: every simulated
            // run checks it.
            assert!(
                !nothing_promised,
                "has_transmit() said nothing to send, then poll_transmit gave {:?}",
                transmit.header()
            );
            bytes.extend_from_slice(transmit.header());
            bytes.extend_from_slice(transmit.payload());
        }
        if bytes.is_empty() {
            return false;
        }
        if !self.link_up || (side == Side::Server && (self.refused_link || self.accepting.is_some())) {
            return true;
        }
        let mut bytes = bytes.freeze();
        while !bytes.is_empty() {
            let take = match self.config.max_chunk {
                Some(max) => (self.rng.range(1, max.max(1) as u64) as usize).min(bytes.len()),
                None => bytes.len(),
            };
            let piece = bytes.split_to(take);
            let link = &mut self.links[side.index()];
            let start = link.busy_until.max(now);
            let serialise = match self.config.bandwidth {
                Some(bps) => Duration::from_nanos((piece.len() as u64).saturating_mul(1_000_000_000) / bps.max(1)),
                None => Duration::ZERO,
            };
            link.busy_until = start + serialise;
            let arrive = link.busy_until + self.config.latency;
            link.bytes_carried += piece.len() as u64;
            link.in_flight.push_back((arrive, piece));
        }
        true
    }

    /// Delivers the pieces that have arrived at the peer of `side`.
    fn deliver_due(&mut self, from: Side) -> bool {
        let now = self.now;
        let mut delivered = false;
        while let Some((at, _)) = self.links[from.index()].in_flight.front() {
            if *at > now || !self.link_up || self.blackhole {
                break;
            }
            let Some((_, mut piece)) = self.links[from.index()].in_flight.pop_front() else {
                break;
            };
            let mut cut_now = false;
            if let Some(mark) = self.cut_at {
                let room = mark.saturating_sub(self.delivered);
                if piece.len() as u64 >= room {
                    piece.truncate(room as usize);
                    self.cut_at = None;
                    cut_now = true;
                }
            }
            self.delivered += piece.len() as u64;
            if from == Side::Client && self.accepting.is_some() {
                self.accept(piece);
            } else if !piece.is_empty() {
                self.session(from.peer()).handle_input(now, piece);
            }
            delivered = true;
            if cut_now {
                self.cuts += 1;
                self.cut_link();
                break;
            }
        }
        delivered
    }

    /// The server's acceptor: collects the new link's first bytes until the resume
    /// request is whole, then hands the session the request and the rest.
    fn accept(&mut self, piece: Bytes) {
        let Some(buf) = self.accepting.as_mut() else {
            return;
        };
        buf.extend_from_slice(&piece);
        let opening = match parse_opening(buf) {
            Ok(None) => return,
            Ok(Some(opening)) => Ok(opening),
            Err(_) => Err(ResumeRefusal::BadRequest),
        };
        let mut buf = self.accepting.take().expect("checked above").freeze();
        let now = self.now;
        let result = match opening {
            Ok(Opening::Resume { request, consumed }) => {
                let mut token = [0u8; 16];
                self.rng.fill(&mut token);
                let result = self.server.handle_resume(now, &request, ResumeToken::from_bytes(token));
                if result.is_ok() {
                    let rest = buf.split_off(consumed);
                    if !rest.is_empty() {
                        self.server.handle_input(now, rest);
                    }
                }
                result
            }
            Ok(Opening::Hello) => Err(ResumeRefusal::BadRequest),
            Err(refusal) => Err(refusal),
        };
        if let Err(refusal) = result {
            self.refusals.push(refusal);
            self.refused_link = true;
            let link = &mut self.links[Side::Server.index()];
            let arrive = now + self.config.latency;
            link.in_flight
                .push_back((arrive, Bytes::copy_from_slice(&refusal.frame())));
        }
    }
}

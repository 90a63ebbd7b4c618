//! Two sessions wired back to back, driven by a fuzzer-chosen sequence of
//! operations: open, write, read, finish, reset, go-away, ping, deliver part of
//! what is in flight, let time pass, cut the link, resume, and inject hostile
//! bytes. Checks, after every step: no panic, every bound kept, and (until
//! bytes are injected) every byte a stream delivers is the next byte its peer
//! wrote, exactly once, in order, across cuts and resumes.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use hawser_core::resume::{parse_opening, Opening, ResumeToken, Ticket};
use hawser_core::{GoAwayCode, Instant, Profile, ResetCode, Role, Session, StreamId};

#[derive(Arbitrary, Debug)]
struct Plan {
    native: bool,
    resumable: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        server: bool,
    },
    Write {
        server: bool,
        stream: u8,
        len: u16,
    },
    Read {
        server: bool,
        stream: u8,
        max: u16,
    },
    Finish {
        server: bool,
        stream: u8,
    },
    Reset {
        server: bool,
        stream: u8,
        code: u16,
        reason: Option<u16>,
    },
    GoAway {
        server: bool,
        reason: Option<u16>,
    },
    Ping {
        server: bool,
    },
    Deliver {
        to_server: bool,
        max: u16,
    },
    Advance {
        ms: u16,
    },
    Cut,
    Resume,
    Inject {
        to_server: bool,
        bytes: Vec<u8>,
    },
}

/// A reason of about `len` bytes (up to 600, past the 256 a frame carries),
/// with two-byte characters so that cutting it must find a boundary.
fn reason_of(len: u16) -> String {
    "aé".repeat(usize::from(len % 200))
}

/// The byte `from` writes at `offset` of stream `id`: the reader can check
/// what it gets without a copy of what was sent. Every bit of the offset
/// counts, so a loss or a repeat of any length shows.
fn pattern(id: StreamId, from: usize, offset: u64) -> u8 {
    let key = offset ^ (u64::from(id.raw()) << 40) ^ ((from as u64) << 63);
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

#[derive(Default)]
struct Side {
    /// Streams this side holds, in the order it got them.
    streams: Vec<StreamId>,
    written: HashMap<StreamId, u64>,
    read: HashMap<StreamId, u64>,
}

struct World {
    sessions: [Session; 2],
    sides: [Side; 2],
    /// Bytes in flight towards `[client, server]`.
    in_flight: [VecDeque<u8>; 2],
    link_up: bool,
    injected: bool,
    now: Instant,
    tokens: u8,
}

impl World {
    fn flush(&mut self) {
        for from in 0..2 {
            let mut bytes = Vec::new();
            while let Some(frame) = self.sessions[from].poll_transmit(self.now) {
                frame.write_to(&mut bytes);
            }
            if self.link_up {
                self.in_flight[1 - from].extend(bytes);
            }
        }
    }

    fn deliver(&mut self, to: usize, max: usize) {
        let take = max.clamp(1, 64 * 1024).min(self.in_flight[to].len());
        if take == 0 {
            return;
        }
        let piece: Vec<u8> = self.in_flight[to].drain(..take).collect();
        self.sessions[to].handle_input(self.now, Bytes::from(piece));
    }

    fn accept_all(&mut self) {
        for side in 0..2 {
            while let Some(id) = self.sessions[side].accept() {
                self.sides[side].streams.push(id);
            }
            while self.sessions[side].poll_event().is_some() {}
        }
    }

    fn pick(&self, side: usize, stream: u8) -> Option<StreamId> {
        let streams = &self.sides[side].streams;
        (!streams.is_empty()).then(|| streams[usize::from(stream) % streams.len()])
    }

    fn write(&mut self, side: usize, stream: u8, len: u16) {
        let Some(id) = self.pick(side, stream) else {
            return;
        };
        let offset = self.sides[side].written.get(&id).copied().unwrap_or(0);
        let data: Vec<u8> = (0..u64::from(len)).map(|i| pattern(id, side, offset + i)).collect();
        if let Ok(n) = self.sessions[side].stream(id).write(Bytes::from(data)) {
            *self.sides[side].written.entry(id).or_default() += n as u64;
        }
    }

    fn read(&mut self, side: usize, stream: u8, max: u16) {
        let Some(id) = self.pick(side, stream) else {
            return;
        };
        loop {
            let chunk = match self.sessions[side].stream(id).read(usize::from(max).max(1)) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    // The peer finished: everything it wrote before has come.
                    let read = self.sides[side].read.get(&id).copied().unwrap_or(0);
                    let peer_written = self.sides[1 - side].written.get(&id).copied().unwrap_or(0);
                    assert!(
                        self.injected || read == peer_written,
                        "stream {id}: the end came after {read} of the {peer_written} bytes written"
                    );
                    return;
                }
                Err(_) => return,
            };
            let offset = self.sides[side].read.get(&id).copied().unwrap_or(0);
            if !self.injected {
                let peer_written = self.sides[1 - side].written.get(&id).copied().unwrap_or(0);
                assert!(
                    offset + chunk.len() as u64 <= peer_written,
                    "stream {id}: read past what the peer wrote ({} > {peer_written})",
                    offset + chunk.len() as u64
                );
                for (i, byte) in chunk.iter().enumerate() {
                    assert_eq!(
                        *byte,
                        pattern(id, 1 - side, offset + i as u64),
                        "stream {id} at {}",
                        offset + i as u64
                    );
                }
            }
            *self.sides[side].read.entry(id).or_default() += chunk.len() as u64;
        }
    }

    fn cut(&mut self) {
        self.link_up = false;
        self.in_flight = Default::default();
        for session in &mut self.sessions {
            session.handle_link_lost(self.now);
        }
    }

    /// A new link: the client attaches, the server's acceptor reads its resume
    /// request and resumes the session or answers with a refusal.
    fn resume(&mut self) {
        if self.link_up {
            return;
        }
        self.link_up = true;
        if self.sessions[0].attach(self.now).is_err() {
            return;
        }
        let mut opening = Vec::new();
        while let Some(frame) = self.sessions[0].poll_transmit(self.now) {
            frame.write_to(&mut opening);
        }
        let Ok(Some(Opening::Resume { request, consumed })) = parse_opening(&opening) else {
            return;
        };
        self.tokens = self.tokens.wrapping_add(1);
        let token = ResumeToken::from_bytes([self.tokens; 16]);
        match self.sessions[1].handle_resume(self.now, &request, token) {
            Ok(()) => {
                let rest = Bytes::copy_from_slice(&opening[consumed..]);
                if !rest.is_empty() {
                    self.sessions[1].handle_input(self.now, rest);
                }
            }
            Err(refusal) => self.in_flight[0].extend(refusal.frame()),
        }
    }
}

/// Runs one input: the operations `arbitrary` builds from `data`.
pub fn run(data: &[u8]) {
    let Ok(plan) = Plan::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let profile = if plan.native { Profile::Native } else { Profile::Yamux };
    let config = crate::common::tight_config(profile, plan.resumable);
    let now = Instant::ZERO;
    let client = Session::new(Role::Client, config.clone(), now).expect("the config is valid");
    let mut server = Session::new(Role::Server, config.clone(), now).expect("the config is valid");
    server.set_resume_ticket(Ticket {
        id: 1,
        token: ResumeToken::from_bytes([0; 16]),
    });
    let mut world = World {
        sessions: [client, server],
        sides: Default::default(),
        in_flight: Default::default(),
        link_up: true,
        injected: false,
        now,
        tokens: 0,
    };
    for op in plan.ops.into_iter().take(512) {
        match op {
            Op::Open { server } => {
                let side = usize::from(server);
                if let Ok(id) = world.sessions[side].open(world.now) {
                    world.sides[side].streams.push(id);
                }
            }
            Op::Write { server, stream, len } => world.write(usize::from(server), stream, len),
            Op::Read { server, stream, max } => world.read(usize::from(server), stream, max),
            Op::Finish { server, stream } => {
                let side = usize::from(server);
                if let Some(id) = world.pick(side, stream) {
                    let _ = world.sessions[side].stream(id).finish();
                }
            }
            Op::Reset {
                server,
                stream,
                code,
                reason,
            } => {
                let side = usize::from(server);
                if let Some(id) = world.pick(side, stream) {
                    let code = ResetCode(u32::from(code));
                    let mut stream = world.sessions[side].stream(id);
                    let _ = match reason {
                        Some(len) => stream.reset_with_reason(code, &reason_of(len)),
                        None => stream.reset(code),
                    };
                }
            }
            Op::GoAway { server, reason } => {
                let now = world.now;
                let session = &mut world.sessions[usize::from(server)];
                let _ = match reason {
                    Some(len) => session.go_away_with_reason(now, GoAwayCode::NORMAL, &reason_of(len)),
                    None => session.go_away(now, GoAwayCode::NORMAL),
                };
            }
            Op::Ping { server } => {
                let now = world.now;
                let _ = world.sessions[usize::from(server)].ping(now);
            }
            Op::Deliver { to_server, max } => world.deliver(usize::from(to_server), usize::from(max)),
            Op::Advance { ms } => {
                world.now = world.now + Duration::from_millis(u64::from(ms));
                for session in &mut world.sessions {
                    if session.poll_timeout().is_some_and(|at| at <= world.now) {
                        session.handle_timeout(world.now);
                    }
                }
            }
            Op::Cut => world.cut(),
            Op::Resume => world.resume(),
            Op::Inject { to_server, bytes } => {
                if !bytes.is_empty() && world.link_up {
                    world.injected = true;
                    world.in_flight[usize::from(to_server)].extend(bytes);
                }
            }
        }
        world.flush();
        world.accept_all();
        for session in &world.sessions {
            crate::common::assert_bounded(session, &config);
        }
    }
}

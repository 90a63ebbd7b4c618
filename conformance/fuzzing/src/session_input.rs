//! `Session::handle_input` for each profile and role, with and without
//! resumption, fed fuzzer bytes cut at fuzzer-chosen points with timeouts in
//! between: never a panic, never past a bound.
//!
//! Input: one byte of mode bits (profile, role, resumption, a valid peer hello
//! first), then records of one control byte (how much to feed next, and how far
//! the clock moves) followed by that many bytes of input.

use std::time::Duration;

use bytes::Bytes;
use hawser_core::resume::{ResumeToken, Ticket};
use hawser_core::{Instant, Profile, Role, Session};

/// How many bytes of input one record carries, for its control byte.
pub fn record_len(control: u8) -> usize {
    usize::from(control >> 3) * 37 + 1
}

/// The mode byte's bits: the session's profile, role, and whether it resumes.
pub mod mode {
    /// Native profile (else yamux).
    pub const NATIVE: u8 = 1;
    /// The session is the server (else the client).
    pub const SERVER: u8 = 2;
    /// Resumption on (native only).
    pub const RESUMABLE: u8 = 4;
    /// A real peer's hello is fed first.
    pub const PEER_HELLO: u8 = 8;
    /// A client opens a stream before any input.
    pub const OPEN: u8 = 16;
}

/// The peer's ticket, when the session is a resumable server.
pub const TICKET: Ticket = Ticket {
    id: 7,
    token: ResumeToken::from_bytes([9; 16]),
};

/// Runs one input: a mode byte (see [`mode`]), then records of a control byte
/// (how many bytes follow, see [`record_len`]; the clock moves 9 ms times its
/// low three bits, and 7 there loses the link) and that many bytes of input.
pub fn run(data: &[u8]) {
    let Some((&bits, mut rest)) = data.split_first() else {
        return;
    };
    let profile = if bits & mode::NATIVE != 0 {
        Profile::Native
    } else {
        Profile::Yamux
    };
    let role = if bits & mode::SERVER != 0 {
        Role::Server
    } else {
        Role::Client
    };
    let config = crate::common::tight_config(profile, bits & mode::RESUMABLE != 0);
    let mut session = Session::new(role, config.clone(), Instant::ZERO).expect("the config is valid");
    if role == Role::Server {
        session.set_resume_ticket(TICKET);
    }
    let mut now = Instant::ZERO;
    if bits & mode::PEER_HELLO != 0 && profile == Profile::Native {
        // A real peer's hello first, so that the rest reaches the session proper.
        let peer_role = if role == Role::Server {
            Role::Client
        } else {
            Role::Server
        };
        let mut peer = Session::new(peer_role, config.clone(), now).expect("the config is valid");
        let mut hello = Vec::new();
        if let Some(frame) = peer.poll_transmit(now) {
            frame.write_to(&mut hello);
        }
        session.handle_input(now, Bytes::from(hello));
    }
    if role == Role::Client && bits & mode::OPEN != 0 {
        let _ = session.open(now);
    }
    while let Some((&control, tail)) = rest.split_first() {
        let take = record_len(control).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        rest = tail;
        session.handle_input(now, Bytes::copy_from_slice(piece));
        crate::common::react(&mut session, now, 1000);
        crate::common::assert_bounded(&session, &config);
        now = now + Duration::from_millis(u64::from(control & 7) * 9);
        if session.poll_timeout().is_some_and(|at| at <= now) {
            session.handle_timeout(now);
        }
        if control & 7 == 7 {
            session.handle_link_lost(now);
        }
    }
}

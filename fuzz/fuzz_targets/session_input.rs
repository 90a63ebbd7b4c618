//! `Session::handle_input` for each profile and role, with and without
//! resumption, fed fuzzer bytes cut at fuzzer-chosen points with timeouts in
//! between: never a panic, never past a bound.
//!
//! Input: one byte of mode bits (profile, role, resumption, a valid peer hello
//! first), then records of one control byte (how much to feed next, and how far
//! the clock moves) followed by that many bytes of input.
#![no_main]

mod common;

use std::time::Duration;

use bytes::Bytes;
use hawser_core::resume::{ResumeToken, Ticket};
use hawser_core::{Instant, Profile, Role, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let profile = if mode & 1 != 0 { Profile::Native } else { Profile::Yamux };
    let role = if mode & 2 != 0 { Role::Server } else { Role::Client };
    let config = common::tight_config(profile, mode & 4 != 0);
    let mut session = Session::new(role, config.clone(), Instant::ZERO).expect("the config is valid");
    if role == Role::Server {
        session.set_resume_ticket(Ticket {
            id: 7,
            token: ResumeToken::from_bytes([9; 16]),
        });
    }
    let mut now = Instant::ZERO;
    if mode & 8 != 0 && profile == Profile::Native {
        // A real peer's hello first, so that the rest reaches the session proper.
        let peer_role = if role == Role::Server { Role::Client } else { Role::Server };
        let mut peer = Session::new(peer_role, config.clone(), now).expect("the config is valid");
        let mut hello = Vec::new();
        if let Some(frame) = peer.poll_transmit(now) {
            frame.write_to(&mut hello);
        }
        session.handle_input(now, Bytes::from(hello));
    }
    if role == Role::Client && mode & 16 != 0 {
        let _ = session.open(now);
    }
    while let Some((&control, tail)) = rest.split_first() {
        let take = (usize::from(control >> 3) * 37 + 1).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        rest = tail;
        session.handle_input(now, Bytes::copy_from_slice(piece));
        common::react(&mut session, now, 1000);
        common::assert_bounded(&session, &config);
        now = now + Duration::from_millis(u64::from(control & 7) * 9);
        if session.poll_timeout().is_some_and(|at| at <= now) {
            session.handle_timeout(now);
        }
        if control & 7 == 7 {
            session.handle_link_lost(now);
        }
    }
});

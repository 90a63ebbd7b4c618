//! A resuming client reading the server's answer (and whatever follows it) on
//! its new link: fuzzer bytes, cut at fuzzer-chosen points. Never a panic,
//! never past a bound; a bad answer ends the session or leaves it detached.
#![no_main]

mod common;

use std::time::Duration;

use bytes::Bytes;
use hawser_core::resume::{ResumeToken, Ticket};
use hawser_core::{Instant, Profile, Role, Session};
use libfuzzer_sys::fuzz_target;

/// Moves every frame each side has to the other until neither has any.
fn settle(client: &mut Session, server: &mut Session, now: Instant) {
    for _ in 0..64 {
        let to_server = pass(client, server, now);
        let to_client = pass(server, client, now);
        if !to_server && !to_client {
            return;
        }
    }
}

/// Hands everything `from` has to send to `to`; says whether there was any.
fn pass(from: &mut Session, to: &mut Session, now: Instant) -> bool {
    let mut bytes = Vec::new();
    while let Some(frame) = from.poll_transmit(now) {
        frame.write_to(&mut bytes);
    }
    if bytes.is_empty() {
        return false;
    }
    to.handle_input(now, Bytes::from(bytes));
    true
}

fuzz_target!(|data: &[u8]| {
    let config = common::tight_config(Profile::Native, true);
    let mut now = Instant::ZERO;
    let mut client = Session::new(Role::Client, config.clone(), now).expect("the config is valid");
    let mut server = Session::new(Role::Server, config.clone(), now).expect("the config is valid");
    server.set_resume_ticket(Ticket {
        id: 7,
        token: ResumeToken::from_bytes([9; 16]),
    });
    // Some history, so that there is something to replay: a stream each way.
    let opened = client.open(now).expect("a fresh session can open");
    let _ = client.stream(opened).write(Bytes::from_static(b"request"));
    settle(&mut client, &mut server, now);
    if let Some(accepted) = server.accept() {
        let _ = server.stream(accepted).write(Bytes::from_static(b"response"));
    }
    settle(&mut client, &mut server, now);
    assert!(client.is_resumable(), "the client has its ticket");

    client.handle_link_lost(now);
    client.attach(now).expect("a detached client attaches");
    while client.poll_transmit(now).is_some() {}
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let take = (usize::from(control >> 3) * 3 + 1).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        rest = tail;
        client.handle_input(now, Bytes::copy_from_slice(piece));
        common::react(&mut client, now, 1000);
        common::assert_bounded(&client, &config);
        now = now + Duration::from_millis(u64::from(control & 7) * 11);
        if client.poll_timeout().is_some_and(|at| at <= now) {
            client.handle_timeout(now);
        }
    }
});

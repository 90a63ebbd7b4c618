//! A resuming client reading the server's answer (and whatever follows it) on
//! its new link: fuzzer bytes, cut at fuzzer-chosen points. Never a panic,
//! never past a bound, whatever the answer.

use std::time::Duration;

use bytes::Bytes;
use hawser_core::resume::{ResumeToken, Ticket};
use hawser_core::{Instant, Profile, Role, Session};

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

/// The target's starting point: a client and a server (same config) that
/// exchanged a stream each way; the client lost its link and sent its resume
/// request, returned here, on a new one. The server is left as it was, for
/// whoever wants its real answer.
pub fn detached_client() -> (Session, Session, Vec<u8>) {
    let config = crate::common::tight_config(Profile::Native, true);
    let now = Instant::ZERO;
    let mut client = Session::new(Role::Client, config.clone(), now).expect("the config is valid");
    let mut server = Session::new(Role::Server, config, now).expect("the config is valid");
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
    let mut request = Vec::new();
    while let Some(frame) = client.poll_transmit(now) {
        frame.write_to(&mut request);
    }
    (client, server, request)
}

/// How many bytes of input one record of the target's input carries, for
/// its control byte: the record is the control byte, then that many bytes.
pub fn record_len(control: u8) -> usize {
    usize::from(control >> 3) * 3 + 1
}

/// Runs one input: records of a control byte (how many bytes follow, see
/// [`record_len`], and how far the clock moves) and the bytes the client reads.
pub fn run(data: &[u8]) {
    let config = crate::common::tight_config(Profile::Native, true);
    let (mut client, _server, _request) = detached_client();
    let mut now = Instant::ZERO;
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let take = record_len(control).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        rest = tail;
        client.handle_input(now, Bytes::copy_from_slice(piece));
        crate::common::react(&mut client, now, 1000);
        crate::common::assert_bounded(&client, &config);
        now = now + Duration::from_millis(u64::from(control & 7) * 11);
        if client.poll_timeout().is_some_and(|at| at <= now) {
            client.handle_timeout(now);
        }
    }
}

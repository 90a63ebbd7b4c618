//! Session resumption, through the simulator: cuts at every byte, refusals,
//! expiry, the replay bound.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use hawser_conformance::sim::{Pair, Side, SimConfig};
use hawser_core::resume::{parse_opening, Opening, ResumeRefusal, ResumeRequest, ResumeToken, Ticket};
use hawser_core::{
    AttachError, Config, Event, GoAwayCode, ReadError, Resumption, Session, SessionError, StreamId, WriteError,
};

fn resumable(replay_buffer: usize) -> Config {
    Config {
        resumption: Some(Resumption {
            replay_buffer,
            ack_bytes: (replay_buffer / 4) as u32,
            ..Resumption::default()
        }),
        ..Config::default()
    }
}

const TICKET: Ticket = Ticket {
    id: 7,
    token: ResumeToken::from_bytes([0x5a; 16]),
};

/// Whether two tickets name the same session with the same token (tickets have
/// no `==`: tokens compare in constant time).
fn same_ticket(a: Option<Ticket>, b: Option<Ticket>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.id == b.id && a.token.ct_eq(&b.token),
        (None, None) => true,
        _ => false,
    }
}

/// A client and server that can resume, handshake done and ticket delivered.
fn resumable_pair(replay_buffer: usize, sim: SimConfig) -> Pair {
    let mut pair = Pair::new(resumable(replay_buffer), resumable(replay_buffer), sim);
    pair.server.set_resume_ticket(TICKET);
    pair.drive();
    assert!(same_ticket(pair.client.resume_ticket(), Some(TICKET)));
    pair
}

/// One stream, opened by the client; each side sends its data and finishes, and
/// reads the other's to the end.
struct Exchange {
    client_data: Vec<u8>,
    server_data: Vec<u8>,
    client_id: Option<StreamId>,
    server_id: Option<StreamId>,
    client_sent: usize,
    server_sent: usize,
    client_got: Vec<u8>,
    server_got: Vec<u8>,
    client_eof: bool,
    server_eof: bool,
}

impl Exchange {
    fn new(client_len: usize, server_len: usize) -> Self {
        Exchange {
            client_data: pattern(client_len, 1),
            server_data: pattern(server_len, 2),
            client_id: None,
            server_id: None,
            client_sent: 0,
            server_sent: 0,
            client_got: Vec::new(),
            server_got: Vec::new(),
            client_eof: false,
            server_eof: false,
        }
    }

    fn done(&self) -> bool {
        self.client_eof
            && self.server_eof
            && self.client_sent == self.client_data.len()
            && self.server_sent == self.server_data.len()
    }

    /// Does whatever the applications can do now.
    fn pump(&mut self, pair: &mut Pair) {
        let now = pair.now;
        if self.client_id.is_none() {
            self.client_id = pair.client.open(now).ok();
        }
        if let Some(id) = self.client_id {
            send(&mut pair.client, id, &self.client_data, &mut self.client_sent);
            if !self.client_eof {
                let (data, eof) = read_available(&mut pair.client, id);
                self.client_got.extend(data);
                self.client_eof = eof;
            }
        }
        if self.server_id.is_none() {
            self.server_id = pair.server.accept();
        }
        if let Some(id) = self.server_id {
            send(&mut pair.server, id, &self.server_data, &mut self.server_sent);
            if !self.server_eof {
                let (data, eof) = read_available(&mut pair.server, id);
                self.server_got.extend(data);
                self.server_eof = eof;
            }
        }
    }

    fn check(&self) {
        assert!(self.done(), "the exchange did not finish");
        assert_eq!(self.server_got, self.client_data, "what the server received");
        assert_eq!(self.client_got, self.server_data, "what the client received");
    }
}

/// Writes as much of `data` as the stream takes; finishes once all is written.
fn send(session: &mut Session, id: StreamId, data: &[u8], sent: &mut usize) {
    if *sent < data.len() {
        match session.stream(id).write(Bytes::copy_from_slice(&data[*sent..])) {
            Ok(n) => *sent += n,
            Err(WriteError::Blocked) => {}
            Err(err) => panic!("write failed: {err}"),
        }
        if *sent == data.len() {
            session.stream(id).finish().expect("finish");
        }
    }
}

/// Runs `exchange` to the end, reconnecting whenever the link is cut.
fn run(pair: &mut Pair, exchange: &mut Exchange) {
    for _ in 0..200_000 {
        exchange.pump(pair);
        if exchange.done() {
            return;
        }
        if !pair.link_up() {
            pair.reconnect().expect("the client can attach");
        }
        assert!(
            !pair.client.is_closed(),
            "client closed: {:?}",
            pair.client.close_reason()
        );
        assert!(
            !pair.server.is_closed(),
            "server closed: {:?}",
            pair.server.close_reason()
        );
        pair.step_within(Duration::from_millis(5));
    }
    panic!("the exchange stalled");
}

#[test]
fn a_cut_at_every_byte_loses_and_repeats_nothing() {
    let sim = SimConfig {
        max_chunk: Some(700),
        ..SimConfig::default()
    };
    // The run without a cut says how many bytes the exchange puts on the link.
    let mut pair = resumable_pair(64 * 1024, sim.clone());
    let start = pair.bytes_delivered();
    let mut exchange = Exchange::new(3000, 2500);
    run(&mut pair, &mut exchange);
    exchange.check();
    let end = pair.bytes_delivered();
    assert!(end - start > 5500);

    let mut replayed = 0;
    for cut in start..end {
        let mut pair = resumable_pair(64 * 1024, sim.clone());
        assert_eq!(pair.bytes_delivered(), start);
        pair.cut_at(cut);
        let mut exchange = Exchange::new(3000, 2500);
        run(&mut pair, &mut exchange);
        exchange.check();
        assert_eq!(pair.cuts(), 1, "cut at byte {cut}");
        assert_eq!(pair.client.stats().resumes, 1);
        assert_eq!(pair.server.stats().resumes, 1);
        replayed += pair.client.stats().bytes_replayed + pair.server.stats().bytes_replayed;
    }
    assert!(replayed > 0);
    eprintln!(
        "{} cut points, each resumed intact; {replayed} bytes replayed in all",
        end - start
    );
}

#[test]
fn several_cuts_in_a_longer_transfer_including_during_replay() {
    let sim = SimConfig {
        latency: Duration::from_millis(5),
        bandwidth: Some(10_000_000),
        max_chunk: Some(4000),
        seed: 3,
        send_queue: None,
    };
    let mut pair = resumable_pair(32 * 1024, sim);
    let mut exchange = Exchange::new(400_000, 300_000);
    let mut next_cut = pair.bytes_delivered() + 20_000;
    for _ in 0..400_000 {
        exchange.pump(&mut pair);
        if exchange.done() {
            break;
        }
        if !pair.link_up() {
            pair.reconnect().unwrap();
            // The next cut falls soon after, often during the replay.
            next_cut = pair.bytes_delivered() + 3_000 + pair.cuts() * 7_919 % 40_000;
            pair.cut_at(next_cut);
        } else if pair.cuts() == 0 {
            pair.cut_at(next_cut);
        }
        if pair.cuts() >= 12 {
            pair.cut_at(u64::MAX);
        }
        pair.step_within(Duration::from_millis(5));
    }
    exchange.check();
    assert!(pair.cuts() >= 10, "only {} cuts", pair.cuts());
    for side in [Side::Client, Side::Server] {
        let stats = pair.session(side).stats();
        assert_eq!(stats.resumes, pair.cuts());
        assert!(stats.replay_peak <= 32 * 1024, "replay peak {}", stats.replay_peak);
    }
}

#[test]
fn a_detached_session_accepts_writes_until_its_buffers_fill() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"first");
    pair.drive();
    pair.cut_link();
    assert!(pair.client.is_detached() && pair.server.is_detached());
    assert!(has_event(&pair, Side::Client, &Event::Detached));
    let now = pair.now;
    assert!(
        pair.client.poll_transmit(now).is_none(),
        "nothing goes out without a link"
    );
    let mut accepted = 0;
    loop {
        match pair.client.stream(id).write(Bytes::from(vec![1u8; 64 * 1024])) {
            Ok(n) => accepted += n,
            Err(WriteError::Blocked) => break,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(accepted, pair.client.config().stream_send_buffer);
    // Time passes; the session waits.
    pair.drive_for(Duration::from_secs(5));
    assert!(!pair.client.is_closed());
    pair.reconnect().unwrap();
    pair.drive();
    assert!(!pair.client.is_detached());
    assert!(pair
        .events(Side::Client)
        .iter()
        .any(|e| matches!(e, Event::Resumed { .. })));
}

#[test]
fn a_detached_session_expires_and_its_streams_fail_clearly() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"hello");
    pair.drive();
    let inbound = pair.server.accept().unwrap();
    pair.cut_link();
    pair.drive_for(Duration::from_secs(31));
    assert_eq!(pair.client.close_reason(), Some(SessionError::Expired));
    assert_eq!(pair.server.close_reason(), Some(SessionError::Expired));
    assert_eq!(
        pair.client.stream(id).write(Bytes::from_static(b"x")),
        Err(WriteError::SessionClosed)
    );
    // What had arrived stays readable, then the error.
    assert_eq!(
        pair.server.stream(inbound).read(10),
        Ok(Some(Bytes::from_static(b"hello")))
    );
    assert_eq!(pair.server.stream(inbound).read(10), Err(ReadError::SessionClosed));
    assert_eq!(pair.client.attach(pair.now), Err(AttachError::SessionClosed));
}

fn request(token: ResumeToken, received: u64) -> ResumeRequest {
    ResumeRequest {
        ticket: Ticket { id: TICKET.id, token },
        received,
    }
}

/// The resume request the client sends on its next link (it must be detached).
fn client_request(pair: &mut Pair) -> ResumeRequest {
    let now = pair.now;
    pair.client.attach(now).unwrap();
    let frame = pair.client.poll_transmit(now).expect("the resume request");
    let bytes = [frame.header(), frame.payload()].concat();
    match parse_opening(&bytes) {
        Ok(Some(Opening::Resume { request, .. })) => request,
        other => panic!("not a resume request: {other:?}"),
    }
}

#[test]
fn a_wrong_token_is_refused_and_the_real_session_carries_on() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    let now = pair.now;
    let wrong = ResumeToken::from_bytes([1; 16]);
    let fresh = ResumeToken::from_bytes([2; 16]);
    assert_eq!(
        pair.server.handle_resume(now, &request(wrong, 0), fresh),
        Err(ResumeRefusal::NoSuchSession)
    );
    assert!(pair.server.is_detached());
    assert!(
        same_ticket(pair.server.resume_ticket(), Some(TICKET)),
        "a refusal changes nothing"
    );
    // The real client still resumes.
    pair.reconnect().unwrap();
    pair.drive();
    assert!(!pair.client.is_detached() && !pair.server.is_detached());
}

#[test]
fn a_wrong_token_and_an_unknown_id_get_the_same_answer() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    let now = pair.now;
    let fresh = ResumeToken::from_bytes([2; 16]);
    let wrong_token = pair
        .server
        .handle_resume(now, &request(ResumeToken::from_bytes([1; 16]), 0), fresh);
    let mut other_id = request(TICKET.token, 0);
    other_id.ticket.id = TICKET.id + 1;
    let unknown_id = pair.server.handle_resume(now, &other_id, fresh);
    assert_eq!(wrong_token, Err(ResumeRefusal::NoSuchSession));
    assert_eq!(unknown_id, wrong_token);
    assert_eq!(
        ResumeRefusal::NoSuchSession.frame(),
        hawser_core::frame::Header::new(
            hawser_core::frame::FrameType::GoAway,
            hawser_core::frame::Flags::NONE,
            0,
            GoAwayCode::RESUME_NO_SUCH_SESSION.0
        )
        .encode(hawser_core::Profile::Native),
        "one frame for every refusal of that kind"
    );
    // A closed session answers the same, even to its own token.
    pair.server.give_up();
    assert_eq!(
        pair.server.handle_resume(now, &request(TICKET.token, 0), fresh),
        Err(ResumeRefusal::NoSuchSession)
    );
}

#[test]
fn a_token_used_once_is_refused_the_second_time() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    pair.reconnect().unwrap();
    pair.drive();
    let rotated = pair.client.resume_ticket().unwrap();
    assert!(same_ticket(pair.server.resume_ticket(), Some(rotated)));
    assert!(!rotated.token.ct_eq(&TICKET.token), "the token rotates on every resume");
    pair.cut_link();
    let now = pair.now;
    let stale = request(TICKET.token, 0);
    let refusal = pair.server.handle_resume(now, &stale, ResumeToken::from_bytes([3; 16]));
    assert_eq!(refusal, Err(ResumeRefusal::NoSuchSession));
}

#[test]
fn the_client_confirms_its_new_token_at_once_even_with_nothing_to_send() {
    let config = Config {
        keepalive_interval: None,
        ..resumable(64 * 1024)
    };
    let mut pair = Pair::new(config.clone(), config, SimConfig::default());
    pair.server.set_resume_ticket(TICKET);
    pair.drive();
    pair.cut_link();
    pair.reconnect().unwrap();
    pair.drive();
    assert!(!pair.server.is_detached());
    // No keepalive, no streams: only the client's confirmation has crossed. The
    // token it replaced no longer works.
    pair.cut_link();
    let now = pair.now;
    let stale = request(TICKET.token, 0);
    assert_eq!(
        pair.server.handle_resume(now, &stale, ResumeToken::from_bytes([3; 16])),
        Err(ResumeRefusal::NoSuchSession)
    );
}

#[test]
fn a_replaced_token_presented_again_gets_the_current_token_not_a_new_one() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    let request = client_request(&mut pair);
    let now = pair.now;
    let second = ResumeToken::from_bytes([2; 16]);
    assert_eq!(pair.server.handle_resume(now, &request, second), Ok(()));
    // The answer is lost with the link, before the client confirmed it.
    pair.server.handle_link_lost(now);
    // Someone presents the replaced token again (the client, or anyone who
    // holds that token): the session resumes, but the token stays the one
    // already issued, so whoever holds it is not locked out.
    let third = ResumeToken::from_bytes([3; 16]);
    assert_eq!(pair.server.handle_resume(now, &request, third), Ok(()));
    let ticket = pair.server.resume_ticket().unwrap();
    assert!(ticket.token.ct_eq(&second), "the current token was issued again");
    assert!(!ticket.token.ct_eq(&third));
}

#[test]
fn the_right_token_takes_over_from_a_link_the_server_still_has() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"before");
    pair.drive();
    let inbound = pair.server.accept().unwrap();
    // Only the client notices the loss; the server still thinks it is attached.
    let now = pair.now;
    pair.client.handle_link_lost(now);
    write_all_now(&mut pair.client, id, b" after");
    pair.take_events(Side::Server);
    pair.reconnect().unwrap();
    pair.drive();
    assert!(pair.refusals().is_empty(), "refused: {:?}", pair.refusals());
    let events = pair.take_events(Side::Server);
    assert!(events.contains(&Event::Detached), "the old link is dropped: {events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Resumed { .. })), "{events:?}");
    assert!(!pair.client.is_detached() && !pair.server.is_detached());
    let (got, _) = read_available(&mut pair.server, inbound);
    assert_eq!(got, b"before after");
}

#[test]
fn resumes_do_not_restart_the_detached_clock() {
    // Detached 20 s, attached 2 s, detached again: 30 s of detached time allows
    // only about 12 s more, not a fresh 30 s.
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    pair.drive_for(Duration::from_secs(20));
    pair.reconnect().unwrap();
    pair.drive_for(Duration::from_secs(2));
    assert!(!pair.server.is_detached() && !pair.server.is_closed());
    pair.cut_link();
    pair.drive_for(Duration::from_secs(11));
    assert!(!pair.server.is_closed(), "still within the detached budget");
    pair.drive_for(Duration::from_secs(2));
    assert_eq!(pair.server.close_reason(), Some(SessionError::Expired));
}

#[test]
fn time_attached_pays_back_time_detached() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    pair.drive_for(Duration::from_secs(20));
    pair.reconnect().unwrap();
    pair.drive_for(Duration::from_secs(60));
    pair.cut_link();
    pair.drive_for(Duration::from_secs(29));
    assert!(
        !pair.server.is_closed(),
        "a long attached spell restores the full budget"
    );
    pair.drive_for(Duration::from_secs(2));
    assert_eq!(pair.server.close_reason(), Some(SessionError::Expired));
}

#[test]
fn an_offset_beyond_what_was_sent_is_refused() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    let now = pair.now;
    let greedy = request(TICKET.token, 1 << 40);
    let result = pair
        .server
        .handle_resume(now, &greedy, ResumeToken::from_bytes([5; 16]));
    assert_eq!(result, Err(ResumeRefusal::BadOffset));
    assert!(pair.server.is_detached());
}

#[test]
fn a_refusal_ends_the_client_with_a_clear_error() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    pair.cut_link();
    // The server forgot the session (expired, restarted): a new server answers.
    pair.server = Session::new(hawser_core::Role::Server, resumable(64 * 1024), pair.now).unwrap();
    let now = pair.now;
    while pair.server.poll_transmit(now).is_some() {}
    pair.reconnect().unwrap();
    pair.drive();
    assert_eq!(
        pair.client.close_reason(),
        Some(SessionError::ResumeRefused(GoAwayCode::RESUME_NO_SUCH_SESSION))
    );
    assert_eq!(
        pair.client.stream(id).write(Bytes::from_static(b"x")),
        Err(WriteError::SessionClosed)
    );
}

#[test]
fn without_resumption_on_both_sides_a_lost_link_ends_the_session() {
    let mut pair = Pair::new(resumable(64 * 1024), Config::default(), SimConfig::default());
    pair.drive();
    pair.cut_link();
    assert_eq!(pair.client.close_reason(), Some(SessionError::LinkLost));
    assert_eq!(pair.server.close_reason(), Some(SessionError::LinkLost));
}

#[test]
fn a_resumable_server_serves_a_client_that_cannot_resume() {
    // The ticket is set at once, as an acceptor does, before the client's hello
    // has said whether it can resume: it must not reach a client that cannot.
    let mut pair = Pair::new(Config::default(), resumable(64 * 1024), SimConfig::default());
    pair.server.set_resume_ticket(TICKET);
    pair.drive();
    let id = pair.client.open(pair.now).unwrap();
    let mut sent = 0;
    send(&mut pair.client, id, b"hello", &mut sent);
    pair.drive();
    let accepted = pair.server.accept().expect("the stream arrives");
    assert_eq!(
        pair.server.stream(accepted).read(64).unwrap(),
        Some(Bytes::from_static(b"hello"))
    );
    assert_eq!(pair.client.close_reason(), None);
    assert_eq!(pair.server.close_reason(), None);
    assert!(!pair.server.is_resumable());
    assert!(pair.client.resume_ticket().is_none());
}

#[test]
fn a_ticket_set_after_the_clients_hello_still_reaches_it() {
    let mut pair = Pair::new(resumable(64 * 1024), resumable(64 * 1024), SimConfig::default());
    pair.drive();
    assert!(pair.client.resume_ticket().is_none());
    pair.server.set_resume_ticket(TICKET);
    pair.drive();
    assert!(same_ticket(pair.client.resume_ticket(), Some(TICKET)));
    assert!(pair.client.is_resumable() && pair.server.is_resumable());
}

#[test]
fn a_one_way_trickle_does_not_grow_the_receivers_tail_with_acks() {
    // The receiver's application never reads (so it sends no window updates)
    // and keepalive is off: the receiver's only frames are Acks, which are part
    // of its sequence too. They must get acknowledged now and then, or its
    // unacknowledged tail grows by one Ack per trickle until the session fails.
    let config = Config {
        keepalive_interval: None,
        ..resumable(16 * 1024)
    };
    let mut pair = Pair::new(config.clone(), config, SimConfig::default());
    pair.server.set_resume_ticket(TICKET);
    pair.drive();
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    // Accepted (or the open would time out), never read.
    assert_eq!(pair.server.accept(), Some(id));
    let ack_delay = Resumption::default().ack_delay;
    let mut tail_peak = 0;
    for round in 0..6000 {
        if let Err(err) = pair.client.stream(id).write(Bytes::from_static(b"x")) {
            panic!(
                "round {round}: {err}; the server ended with {:?}",
                pair.server.close_reason()
            );
        }
        pair.drive_for(ack_delay * 2);
        tail_peak = tail_peak.max(pair.server.replay_buffered());
    }
    assert_eq!(pair.server.close_reason(), None);
    assert_eq!(pair.client.close_reason(), None);
    assert!(
        tail_peak < 2048,
        "the receiver kept {tail_peak} bytes of Acks unacknowledged"
    );
}

#[test]
fn a_dead_link_found_by_keepalive_detaches_instead_of_closing() {
    let config = Config {
        keepalive_interval: Some(Duration::from_secs(1)),
        ping_timeout: Duration::from_millis(500),
        max_missed_pings: 2,
        ..resumable(64 * 1024)
    };
    let mut pair = Pair::new(config.clone(), config, SimConfig::default());
    pair.server.set_resume_ticket(TICKET);
    pair.drive();
    // The server stops hearing anything, as if the link silently died.
    let mut now = pair.now;
    for _ in 0..20 {
        while pair.server.poll_transmit(now).is_some() {}
        if let Some(at) = pair.server.poll_timeout() {
            now = at;
            pair.server.handle_timeout(now);
        }
        if pair.server.is_detached() {
            break;
        }
    }
    assert!(pair.server.is_detached());
    assert!(!pair.server.is_closed());
}

#[test]
fn a_ticket_in_flight_never_shows_in_debug_output() {
    let mut server = Session::new(
        hawser_core::Role::Server,
        resumable(64 * 1024),
        hawser_core::Instant::ZERO,
    )
    .unwrap();
    server.set_resume_ticket(TICKET);
    let mut printed = String::new();
    while let Some(transmit) = server.poll_transmit(hawser_core::Instant::ZERO) {
        printed.push_str(&format!("{transmit:?}"));
    }
    assert!(!printed.is_empty());
    // The token is sixteen 0x5a bytes: "Z" in a byte string, 90 in a list.
    assert!(
        !printed.contains("ZZZZZZZZ") && !printed.contains("90, 90, 90, 90"),
        "a transmit's Debug output shows the token: {printed}"
    );
    assert!(printed.contains("payload_len"));
}

#[test]
fn a_session_that_ends_lets_go_of_its_replay_buffer() {
    let mut pair = resumable_pair(1 << 20, SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    let written = pair
        .client
        .stream(id)
        .write(bytes::Bytes::from(vec![3u8; 200_000]))
        .unwrap();
    assert!(written > 0);
    // Sent, but never delivered: all of it waits for an acknowledgement.
    while pair.client.poll_transmit(pair.now).is_some() {}
    assert!(
        pair.client.replay_buffered() > 100_000,
        "{}",
        pair.client.replay_buffered()
    );
    pair.client.close(GoAwayCode::NORMAL);
    assert!(pair.client.is_closed());
    assert_eq!(
        pair.client.replay_buffered(),
        0,
        "a closed session keeps no replay bytes"
    );
}

#[test]
fn a_peer_that_never_acknowledges_is_cut_off_at_the_replay_bound() {
    use hawser_core::frame::{Flags, FrameType, Header};
    use hawser_core::{Instant, Profile, ProtocolError, Role};
    let replay_buffer = 16 * 1024;
    let config = Config {
        keepalive_interval: None,
        ..resumable(replay_buffer)
    };
    let mut server = Session::new(Role::Server, config.clone(), Instant::ZERO).unwrap();
    server.set_resume_ticket(TICKET);
    // A real client's hello, so that the server knows the peer can resume.
    let mut client = Session::new(Role::Client, config, Instant::ZERO).unwrap();
    let mut hello = Vec::new();
    while let Some(transmit) = client.poll_transmit(Instant::ZERO) {
        hello.extend_from_slice(transmit.header());
        hello.extend_from_slice(transmit.payload());
    }
    server.handle_input_slice(Instant::ZERO, &hello);
    let mut peak = 0;
    let mut opaque = 0u32;
    // Then 100 pings a second, within the ping budget, and never an Ack: every
    // pong stays unacknowledged.
    for second in 1..=200u64 {
        let now = Instant::from_nanos(second * 1_000_000_000);
        let mut pings = Vec::new();
        for _ in 0..100 {
            opaque += 1;
            pings.extend_from_slice(&Header::new(FrameType::Ping, Flags::SYN, 0, opaque).encode(Profile::Native));
        }
        server.handle_input_slice(now, &pings);
        while server.poll_transmit(now).is_some() {
            peak = peak.max(server.replay_buffered());
        }
        if server.is_closed() {
            break;
        }
    }
    assert_eq!(
        server.close_reason(),
        Some(SessionError::Protocol(ProtocolError::LimitExceeded(
            "unacknowledged frames"
        )))
    );
    assert!(
        peak <= replay_buffer as u64 + 64 * 1024 + 64,
        "held {peak} unacknowledged bytes"
    );
}

#[test]
fn a_rate_limited_refusal_leaves_the_client_detached_to_try_again_later() {
    let mut pair = resumable_pair(64 * 1024, SimConfig::default());
    pair.cut_link();
    let now = pair.now;
    pair.client.attach(now).unwrap();
    while pair.client.poll_transmit(now).is_some() {}
    pair.client.handle_input_slice(now, &ResumeRefusal::RateLimited.frame());
    let events: Vec<Event> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        events.contains(&Event::ResumeRefused(GoAwayCode::RESUME_RATE_LIMITED)),
        "{events:?}"
    );
    assert!(pair.client.is_detached() && !pair.client.is_closed());
    // A later attempt goes through.
    pair.reconnect().unwrap();
    pair.drive();
    assert!(!pair.client.is_detached() && !pair.server.is_detached());
}

//! Hostile peers: each abuse has a budget, and exceeding it ends the session with
//! a clear error instead of unbounded work or memory.

use hawser_core::frame::{Flags, FrameType, Header};
use hawser_core::{Config, GoAwayCode, Instant, Limits, Profile, ProtocolError, Role, Session, SessionError};

fn frame(ty: FrameType, flags: Flags, stream: u32, length: u32, profile: Profile) -> Vec<u8> {
    Header::new(ty, flags, stream, length).encode(profile).to_vec()
}

fn yamux_server(limits: Limits) -> Session {
    let config = Config {
        limits,
        keepalive_interval: None,
        ..Config::yamux()
    };
    Session::new(Role::Server, config, Instant::ZERO).unwrap()
}

fn protocol_error(session: &Session) -> Option<ProtocolError> {
    match session.close_reason() {
        Some(SessionError::Protocol(err)) => Some(err),
        _ => None,
    }
}

fn sent_go_away(session: &mut Session) -> Option<u32> {
    let mut code = None;
    while let Some(frame) = session.poll_transmit(Instant::ZERO) {
        let header = Header::decode(frame.header().try_into().unwrap(), session.profile()).unwrap();
        if header.ty == FrameType::GoAway {
            code = Some(header.length);
        }
    }
    code
}

#[test]
fn ping_flood_exceeds_the_ping_budget() {
    let mut server = yamux_server(Limits::default());
    let mut input = Vec::new();
    for opaque in 0..200 {
        input.extend(frame(FrameType::Ping, Flags::SYN, 0, opaque, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert_eq!(protocol_error(&server), Some(ProtocolError::LimitExceeded("pings")));
    assert_eq!(sent_go_away(&mut server), Some(GoAwayCode::PROTOCOL_ERROR.0));
}

#[test]
fn pings_within_budget_are_all_answered() {
    let mut server = yamux_server(Limits::default());
    let mut input = Vec::new();
    for opaque in 0..100 {
        input.extend(frame(FrameType::Ping, Flags::SYN, 0, opaque, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(!server.is_closed());
    let mut pongs = Vec::new();
    while let Some(frame) = server.poll_transmit(Instant::ZERO) {
        let header = Header::decode(frame.header().try_into().unwrap(), Profile::Yamux).unwrap();
        assert_eq!((header.ty, header.flags), (FrameType::Ping, Flags::ACK));
        pongs.push(header.length);
    }
    assert_eq!(pongs, (0..100).collect::<Vec<_>>());
}

#[test]
fn peer_that_never_reads_replies_exceeds_the_pending_control_budget() {
    let mut server = yamux_server(Limits {
        max_pending_control: 10,
        ..Limits::default()
    });
    let mut input = Vec::new();
    for opaque in 0..11 {
        input.extend(frame(FrameType::Ping, Flags::SYN, 0, opaque, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert_eq!(
        protocol_error(&server),
        Some(ProtocolError::LimitExceeded("unsent control replies"))
    );
}

#[test]
fn empty_frame_flood_exceeds_its_budget() {
    let mut server = yamux_server(Limits::default());
    let mut input = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    for _ in 0..2000 {
        input.extend(frame(FrameType::Data, Flags::NONE, 1, 0, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert_eq!(
        protocol_error(&server),
        Some(ProtocolError::LimitExceeded("empty frames"))
    );
}

#[test]
fn window_updates_for_streams_that_are_gone_exceed_the_empty_frame_budget() {
    // A non-zero delta for a stream that no longer exists changes nothing: it
    // costs the peer 12 bytes and must be budgeted like an empty frame.
    let mut server = yamux_server(Limits::default());
    let mut input = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    input.extend(frame(FrameType::WindowUpdate, Flags::RST, 1, 0, Profile::Yamux));
    for _ in 0..2000 {
        input.extend(frame(FrameType::WindowUpdate, Flags::NONE, 1, 1000, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert_eq!(
        protocol_error(&server),
        Some(ProtocolError::LimitExceeded("empty frames"))
    );
}

#[test]
fn late_window_updates_for_streams_just_closed_are_not_a_flood() {
    // A peer that reads each stream's last data grants window for it after it
    // was released here: a busy server sees thousands of these a second.
    let mut server = yamux_server(Limits::default());
    let now = Instant::ZERO;
    for i in 0..3000u32 {
        let id = 2 * i + 1;
        let open_and_finish = frame(FrameType::WindowUpdate, Flags::SYN | Flags::FIN, id, 0, Profile::Yamux);
        server.handle_input_slice(now, &open_and_finish);
        let accepted = server.accept().expect("the stream arrives");
        assert_eq!(server.stream(accepted).read(16), Ok(None));
        server.stream(accepted).finish().unwrap();
        while server.poll_transmit(now).is_some() {}
        assert_eq!(server.stream_count(), 0, "released");
        let late = frame(FrameType::WindowUpdate, Flags::NONE, id, 64 * 1024, Profile::Yamux);
        server.handle_input_slice(now, &late);
        assert!(!server.is_closed(), "stream {id}: {:?}", server.close_reason());
    }
}

#[test]
fn window_updates_for_a_live_stream_are_not_budgeted() {
    let mut server = yamux_server(Limits::default());
    let mut input = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    for _ in 0..2000 {
        input.extend(frame(FrameType::WindowUpdate, Flags::NONE, 1, 1000, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(!server.is_closed(), "{:?}", server.close_reason());
}

#[test]
fn open_and_reset_flood_exceeds_the_reset_budget() {
    let mut server = yamux_server(Limits::default());
    let mut input = Vec::new();
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        input.extend(frame(FrameType::WindowUpdate, Flags::SYN, id, 0, Profile::Yamux));
        input.extend(frame(FrameType::WindowUpdate, Flags::RST, id, 0, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert_eq!(
        protocol_error(&server),
        Some(ProtocolError::LimitExceeded("refused and reset streams"))
    );
}

#[test]
fn opened_then_reset_streams_leave_no_state_behind() {
    let mut server = yamux_server(Limits::default());
    let mut input = Vec::new();
    for i in 0..500u32 {
        let id = 2 * i + 1;
        input.extend(frame(FrameType::WindowUpdate, Flags::SYN, id, 0, Profile::Yamux));
        input.extend(frame(FrameType::WindowUpdate, Flags::RST, id, 0, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(!server.is_closed());
    assert_eq!(server.stream_count(), 0);
    assert_eq!(server.pending_accepts(), 0);
    assert_eq!(server.accept(), None);
}

#[test]
fn syn_flood_is_refused_beyond_the_backlog() {
    let mut server = yamux_server(Limits::default());
    let mut input = Vec::new();
    for i in 0..300u32 {
        input.extend(frame(FrameType::WindowUpdate, Flags::SYN, 2 * i + 1, 0, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(!server.is_closed());
    assert_eq!(server.pending_accepts(), 256);
    assert_eq!(server.stats().streams_refused, 44);
    let resets = std::iter::from_fn(|| server.poll_transmit(Instant::ZERO))
        .filter(|t| {
            Header::decode(t.header().try_into().unwrap(), Profile::Yamux)
                .unwrap()
                .flags
                == Flags::RST
        })
        .count();
    assert_eq!(resets, 44);
}

#[test]
fn window_update_overflow_is_an_error() {
    let mut server = yamux_server(Limits::default());
    let mut input = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    input.extend(frame(FrameType::WindowUpdate, Flags::NONE, 1, u32::MAX, Profile::Yamux));
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(matches!(
        protocol_error(&server),
        Some(ProtocolError::WindowOverflow(_))
    ));
}

#[test]
fn oversized_native_frame_is_refused_from_its_header_alone() {
    let mut pair_client = Session::new(Role::Client, Config::default(), Instant::ZERO).unwrap();
    let mut server = Session::new(Role::Server, Config::default(), Instant::ZERO).unwrap();
    while let Some(frame) = pair_client.poll_transmit(Instant::ZERO) {
        let (header, payload) = frame.into_parts();
        server.handle_input_slice(Instant::ZERO, &header);
        server.handle_input(Instant::ZERO, payload);
    }
    // Only the header of a 4 GiB frame: rejected before a byte of payload arrives.
    server.handle_input_slice(
        Instant::ZERO,
        &frame(FrameType::Data, Flags::SYN, 1, u32::MAX, Profile::Native),
    );
    assert_eq!(
        protocol_error(&server),
        Some(ProtocolError::FrameTooLarge {
            length: u32::MAX,
            max: 64 * 1024
        })
    );
}

#[test]
fn oversized_hello_is_refused_from_its_header_alone() {
    let mut server = Session::new(Role::Server, Config::default(), Instant::ZERO).unwrap();
    server.handle_input_slice(
        Instant::ZERO,
        &frame(FrameType::Hello, Flags::NONE, 0, 1 << 30, Profile::Native),
    );
    assert_eq!(
        server.close_reason(),
        Some(SessionError::Handshake(hawser_core::HandshakeError::TooLong(1 << 30)))
    );
}

#[test]
fn wrong_parity_and_reuse_are_errors() {
    let mut server = yamux_server(Limits::default());
    server.handle_input_slice(
        Instant::ZERO,
        &frame(FrameType::WindowUpdate, Flags::SYN, 2, 0, Profile::Yamux),
    );
    assert!(matches!(protocol_error(&server), Some(ProtocolError::WrongParity(_))));

    let mut server = yamux_server(Limits::default());
    let mut input = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    input.extend(frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux));
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(matches!(protocol_error(&server), Some(ProtocolError::StreamReuse(_))));
}

#[test]
fn data_after_fin_is_an_error() {
    let mut server = yamux_server(Limits::default());
    let mut input = frame(
        FrameType::WindowUpdate,
        Flags::SYN.with(Flags::FIN),
        1,
        0,
        Profile::Yamux,
    );
    input.extend(frame(FrameType::Data, Flags::NONE, 1, 1, Profile::Yamux));
    input.push(0);
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(matches!(protocol_error(&server), Some(ProtocolError::DataAfterFin(_))));
}

#[test]
fn peer_opening_after_its_own_go_away_is_refused_in_yamux_and_an_error_in_native() {
    let mut server = yamux_server(Limits::default());
    // A live stream keeps the session draining rather than closed.
    let mut input = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    input.extend(frame(FrameType::GoAway, Flags::NONE, 0, 0, Profile::Yamux));
    input.extend(frame(FrameType::WindowUpdate, Flags::SYN, 3, 0, Profile::Yamux));
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(!server.is_closed());
    assert_eq!(server.stats().streams_refused, 1, "stream 3 is refused");

    let mut client = Session::new(Role::Client, Config::default(), Instant::ZERO).unwrap();
    let mut server = Session::new(Role::Server, Config::default(), Instant::ZERO).unwrap();
    let mut input = Vec::new();
    while let Some(transmit) = client.poll_transmit(Instant::ZERO) {
        transmit.write_to(&mut input);
    }
    input.extend(frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Native));
    input.extend(frame(FrameType::GoAway, Flags::NONE, 0, 0, Profile::Native));
    input.extend(frame(FrameType::WindowUpdate, Flags::SYN, 3, 0, Profile::Native));
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(matches!(
        protocol_error(&server),
        Some(ProtocolError::OpenAfterGoAway(_))
    ));
}

#[test]
fn frames_that_change_nothing_are_budgeted_even_with_flags() {
    let mut server = yamux_server(Limits::default());
    let mut input = frame(
        FrameType::WindowUpdate,
        Flags::SYN.with(Flags::FIN),
        1,
        0,
        Profile::Yamux,
    );
    // A repeated FIN changes nothing, however often it comes.
    for _ in 0..2000 {
        input.extend(frame(FrameType::WindowUpdate, Flags::FIN, 1, 0, Profile::Yamux));
    }
    server.handle_input_slice(Instant::ZERO, &input);
    assert_eq!(
        protocol_error(&server),
        Some(ProtocolError::LimitExceeded("empty frames"))
    );
}

#[test]
fn unread_pieces_do_not_keep_the_input_buffers_they_came_from_alive() {
    // Each input buffer carries a small frame for stream 1, which nobody reads,
    // and a large one for stream 3, which the application reads at once. Kept
    // as slices, the small pieces would keep every whole buffer alive (here
    // 100 times their size; a driver's read slab, 500 times).
    let config = Config {
        max_stream_window: 256 * 1024,
        keepalive_interval: None,
        ..Config::yamux()
    };
    // Input that arrives after an unread piece before it is copied out.
    let horizon = 2 * 256 * 1024;
    let mut server = Session::new(Role::Server, config, Instant::ZERO).unwrap();
    let mut opens = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux);
    opens.extend(frame(FrameType::WindowUpdate, Flags::SYN, 3, 0, Profile::Yamux));
    server.handle_input_slice(Instant::ZERO, &opens);
    let (parked, read) = (server.accept().unwrap(), server.accept().unwrap());
    const INPUT: usize = 64 * 1024;
    const PARKED: usize = 640;
    let mut inputs = Vec::new();
    let mut parked_sent = Vec::new();
    for round in 0..40u8 {
        let mut input = frame(FrameType::Data, Flags::NONE, 1, PARKED as u32, Profile::Yamux);
        input.extend(std::iter::repeat(round).take(PARKED));
        parked_sent.extend(std::iter::repeat(round).take(PARKED));
        let big = INPUT - input.len() - 12;
        input.extend(frame(FrameType::Data, Flags::NONE, 3, big as u32, Profile::Yamux));
        input.resize(INPUT, 0xee);
        let input = bytes::Bytes::from(input);
        inputs.push(input.clone());
        server.handle_input(Instant::ZERO, input);
        while let Ok(Some(_)) = server.stream(read).read(usize::MAX) {}
        while server.poll_transmit(Instant::ZERO).is_some() {}
        assert!(!server.is_closed(), "{:?}", server.close_reason());
    }
    // Only the inputs of the last 1.25 horizons may still be shared.
    let recent = (horizon + horizon / 4) / INPUT + 1;
    let still_shared = inputs.iter().filter(|input| !input.is_unique()).count();
    assert!(
        still_shared <= recent,
        "{still_shared} of {} input buffers kept alive by unread pieces",
        inputs.len()
    );
    assert!(server.stats().bytes_compacted > 0);
    // And the parked stream still reads every byte it was sent, in order.
    let mut parked_read = Vec::new();
    while let Ok(Some(chunk)) = server.stream(parked).read(usize::MAX) {
        parked_read.extend_from_slice(&chunk);
    }
    assert_eq!(parked_read, parked_sent);
}

#[test]
fn a_stream_released_on_announcing_its_reset_cannot_be_reopened_at_once() {
    // The application may still hold a handle naming the id: a new stream
    // under it would receive that handle's operations.
    let mut server = yamux_server(Limits::default());
    let now = Instant::ZERO;
    server.handle_input_slice(now, &frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux));
    let id = server.accept().unwrap();
    server.handle_input_slice(now, &frame(FrameType::WindowUpdate, Flags::RST, 1, 0, Profile::Yamux));
    while server.poll_event().is_some() {}
    assert_eq!(server.stream_count(), 0, "delivering the reset released it");
    server.handle_input_slice(now, &frame(FrameType::WindowUpdate, Flags::SYN, 1, 0, Profile::Yamux));
    assert_eq!(protocol_error(&server), Some(ProtocolError::StreamReuse(id)));
}

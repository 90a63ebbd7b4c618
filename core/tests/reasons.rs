//! Reasons with codes (native profile, PROTOCOL.md 2.2 and 8.2): a reset or a
//! go-away may carry a short UTF-8 reason; the yamux profile sends the code as
//! before and no reason; a hostile reason ends the session with a protocol
//! error, never a panic.

mod common;

use common::*;
use hawser_conformance::sim::Side;
use hawser_core::frame::{Flags, FrameType, Header, MAX_REASON};
use hawser_core::{Event, GoAwayCode, Profile, ProtocolError, ReadError, ResetCode, SessionError};

#[test]
fn a_reset_carries_its_reason_to_the_peer_and_keeps_it_after_release() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"GET /missing");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    let code = ResetCode(0x404);
    pair.server
        .stream(id)
        .reset_with_reason(code, "no such file: /missing")
        .unwrap();
    pair.drive();
    assert!(has_event(&pair, Side::Client, &Event::StreamReset { id, code }));
    assert_eq!(pair.client.reset_reason(id), Some("no such file: /missing"));
    assert_eq!(pair.client.stream(id).read(16), Err(ReadError::Reset(code)));
    // Released on delivering the reset, it still reports code and reason.
    assert_eq!(pair.client.stream_count(), 0);
    assert_eq!(pair.client.reset_reason(id), Some("no such file: /missing"));
}

#[test]
fn a_go_away_carries_its_reason() {
    let mut pair = pair(Profile::Native);
    pair.drive();
    pair.server
        .go_away_with_reason(pair.now, GoAwayCode::NORMAL, "restarting for maintenance")
        .unwrap();
    pair.drive();
    assert!(has_event(
        &pair,
        Side::Client,
        &Event::GoAwayReceived(GoAwayCode::NORMAL)
    ));
    assert_eq!(pair.client.peer_go_away_reason(), Some("restarting for maintenance"));
    assert!(pair.client.is_closed() || pair.client.is_draining());

    // An error code with a reason ends the peer's session, reason kept.
    let mut pair = common::pair(Profile::Native);
    pair.drive();
    pair.client.close_with_reason(GoAwayCode(0x200), "quota exhausted");
    pair.drive();
    assert_eq!(
        pair.server.close_reason(),
        Some(SessionError::PeerGoAway(GoAwayCode(0x200)))
    );
    assert_eq!(pair.server.peer_go_away_reason(), Some("quota exhausted"));
}

#[test]
fn the_yamux_profile_sends_no_reason() {
    let mut pair = pair(Profile::Yamux);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"x");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.server
        .stream(id)
        .reset_with_reason(ResetCode(0x404), "not sent")
        .unwrap();
    pair.drive();
    // As before reasons existed: yamux resets carry no code (4.6).
    let reset = pair
        .take_events(Side::Client)
        .into_iter()
        .find_map(|event| match event {
            Event::StreamReset { id: reset, code } if reset == id => Some(code),
            _ => None,
        });
    assert!(
        matches!(reset, Some(ResetCode::CANCEL | ResetCode::REFUSED)),
        "{reset:?}"
    );
    assert_eq!(pair.client.reset_reason(id), None);
    pair.server
        .go_away_with_reason(pair.now, GoAwayCode::NORMAL, "not sent")
        .unwrap();
    pair.drive();
    assert_eq!(pair.client.peer_go_away_reason(), None);
}

#[test]
fn an_over_long_reason_is_cut_at_a_character_boundary() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"x");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    // 'é' is two bytes: 300 of them cannot be cut at exactly 256 + 1.
    let long = "é".repeat(300);
    pair.server
        .stream(id)
        .reset_with_reason(ResetCode(0x300), &long)
        .unwrap();
    pair.drive();
    let got = pair.client.reset_reason(id).expect("a reason arrived");
    assert_eq!(got.len(), MAX_REASON);
    assert!(long.starts_with(got));
}

/// A native pair after the handshake, with one stream the client opened and
/// the server accepted; then `frame` arrives at the server as if from the client.
fn server_receives(header: Header, payload: &[u8]) -> Option<ProtocolError> {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"x");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    let header = Header::new(header.ty, header.flags, id.raw(), header.length);
    let mut input = header.encode(Profile::Native).to_vec();
    input.extend_from_slice(payload);
    pair.server.handle_input_slice(pair.now, &input);
    match pair.server.close_reason() {
        Some(SessionError::Protocol(err)) => Some(err),
        _ => None,
    }
}

fn reason_payload(code: u32, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

#[test]
fn hostile_reasons_are_protocol_errors() {
    let reason = |len: u32| Header::new(FrameType::Reason, Flags::NONE, 1, len);
    let too_long = reason_payload(0x300, &[b'a'; MAX_REASON + 1]);
    assert_eq!(
        server_receives(reason(too_long.len() as u32), &too_long),
        Some(ProtocolError::BadReason("length outside 4 ..= 260"))
    );
    assert_eq!(
        server_receives(reason(2), &[0, 0]),
        Some(ProtocolError::BadReason("length outside 4 ..= 260"))
    );
    let invalid = reason_payload(0x300, &[0xff, 0xfe, b'x']);
    assert_eq!(
        server_receives(reason(invalid.len() as u32), &invalid),
        Some(ProtocolError::BadReason("not UTF-8"))
    );
    let flagged = Header::new(FrameType::Reason, Flags::RST, 1, 4);
    assert_eq!(
        server_receives(flagged, &reason_payload(0x300, b"")),
        Some(ProtocolError::BadReason("flags set"))
    );
    // A well-formed one resets the stream, nothing more.
    let fine = reason_payload(0x300, "ça va".as_bytes());
    assert_eq!(server_receives(reason(fine.len() as u32), &fine), None);
}

#[test]
fn a_reason_frame_is_an_unknown_type_in_the_yamux_profile() {
    let bytes = Header::new(FrameType::Reason, Flags::NONE, 1, 4).encode(Profile::Yamux);
    assert!(Header::decode(&bytes, Profile::Yamux).is_err());
}

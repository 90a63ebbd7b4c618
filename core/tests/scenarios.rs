//! Scenario tests of the core, one behaviour each, run through the deterministic
//! simulator. Each reads as: set up, drive, assert what both sides saw.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use hawser_conformance::sim::{Pair, Side, SimConfig};
use hawser_core::frame::{Flags, FrameType, Header, HEADER_LEN};
use hawser_core::{
    Config, Event, GoAwayCode, HandshakeError, Instant, OpenError, Profile, ProtocolError, ReadError, ResetCode, Role,
    Session, SessionError, WriteError,
};

#[test]
fn native_handshake_exchanges_settings() {
    let mut pair = pair(Profile::Native);
    pair.drive();
    assert!(has_event(&pair, Side::Client, &Event::Connected));
    assert!(has_event(&pair, Side::Server, &Event::Connected));
    let settings = pair.client.peer_settings().expect("server hello arrived");
    assert_eq!(settings.max_streams, 512);
    assert_eq!(settings.initial_window, 256 * 1024);
}

#[test]
fn stream_carries_bytes_both_ways_and_half_closes() {
    for profile in profiles() {
        let mut pair = pair(profile);
        let id = pair.client.open(pair.now).unwrap();
        write_all_now(&mut pair.client, id, b"request");
        pair.client.stream(id).finish().unwrap();
        pair.drive();

        let inbound = accept_all(&mut pair, Side::Server);
        assert_eq!(inbound, vec![id]);
        assert_eq!(read_available(&mut pair.server, id), (b"request".to_vec(), true));

        // The client finished its side; the server can still answer.
        write_all_now(&mut pair.server, id, b"response");
        pair.server.stream(id).finish().unwrap();
        pair.drive();
        assert!(has_event(&pair, Side::Client, &Event::StreamAcknowledged(id)));
        assert_eq!(read_available(&mut pair.client, id), (b"response".to_vec(), true));
        pair.drive();
        assert_eq!(pair.client.stream_count(), 0, "{profile:?}: client released the stream");
        assert_eq!(pair.server.stream_count(), 0, "{profile:?}: server released the stream");
        assert!(has_event(&pair, Side::Client, &Event::StreamClosed(id)));
    }
}

#[test]
fn open_rides_on_the_first_data_frame() {
    let mut client = Session::new(Role::Client, Config::yamux(), Instant::ZERO).unwrap();
    let id = client.open(Instant::ZERO).unwrap();
    client.stream(id).write(Bytes::from_static(b"x")).unwrap();
    let frame = client.poll_transmit(Instant::ZERO).unwrap();
    let header = Header::decode(frame.header().try_into().unwrap(), Profile::Yamux).unwrap();
    assert_eq!(header.ty, FrameType::Data);
    assert!(header.flags.contains(Flags::SYN));
    assert_eq!(frame.payload().as_ref(), b"x");
}

/// hashicorp/yamux applies a FIN before it copies the payload of the frame that
/// carries it, so a reader racing in sees a closed, empty stream: in the yamux
/// profile the FIN always travels on a frame of its own.
#[test]
fn yamux_profile_never_puts_fin_on_a_frame_with_payload() {
    let mut client = Session::new(Role::Client, Config::yamux(), Instant::ZERO).unwrap();
    let id = client.open(Instant::ZERO).unwrap();
    client.stream(id).write(Bytes::from(vec![5u8; 4096])).unwrap();
    client.stream(id).finish().unwrap();
    let mut data_frames = Vec::new();
    while let Some(frame) = client.poll_transmit(Instant::ZERO) {
        let header = Header::decode(frame.header().try_into().unwrap(), Profile::Yamux).unwrap();
        if header.ty == FrameType::Data {
            data_frames.push((frame.payload().len(), header.flags.contains(Flags::FIN)));
        }
    }
    assert_eq!(data_frames, vec![(4096, false), (0, true)]);
}

#[test]
fn native_profile_finishes_on_the_last_data_frame() {
    let mut pair = pair(Profile::Native);
    pair.drive();
    let id = pair.client.open(pair.now).unwrap();
    pair.client.stream(id).write(Bytes::from(vec![5u8; 4096])).unwrap();
    pair.client.stream(id).finish().unwrap();
    let mut data_frames = Vec::new();
    while let Some(frame) = pair.client.poll_transmit(pair.now) {
        let header = Header::decode(frame.header().try_into().unwrap(), Profile::Native).unwrap();
        if header.ty == FrameType::Data {
            data_frames.push((frame.payload().len(), header.flags.contains(Flags::FIN)));
        }
    }
    assert_eq!(data_frames, vec![(4096, true)]);
}

/// The go-away jumps ahead of stream frames, but a stream opened before it must
/// still reach the peer: a peer that has seen the go-away refuses new streams.
#[test]
fn streams_opened_before_a_go_away_are_served() {
    for profile in profiles() {
        let mut pair = pair(profile);
        pair.drive();
        let id = pair.client.open(pair.now).unwrap();
        write_all_now(&mut pair.client, id, b"sent before the go-away");
        pair.client.stream(id).finish().unwrap();
        pair.client.go_away(pair.now, GoAwayCode::NORMAL).unwrap();
        pair.drive();
        assert_eq!(accept_all(&mut pair, Side::Server), vec![id], "{profile:?}");
        assert_eq!(
            read_available(&mut pair.server, id),
            (b"sent before the go-away".to_vec(), true),
            "{profile:?}"
        );
    }
}

#[test]
fn idle_open_sends_a_window_update_with_syn() {
    let mut client = Session::new(Role::Client, Config::yamux(), Instant::ZERO).unwrap();
    client.poll_transmit(Instant::ZERO); // the first keepalive ping
    let id = client.open(Instant::ZERO).unwrap();
    let frame = client.poll_transmit(Instant::ZERO).unwrap();
    let header = Header::decode(frame.header().try_into().unwrap(), Profile::Yamux).unwrap();
    assert_eq!(
        (header.ty, header.flags, header.stream_id),
        (FrameType::WindowUpdate, Flags::SYN, id.raw())
    );
}

#[test]
fn writes_are_split_at_the_max_frame_size() {
    let mut client = Session::new(
        Role::Client,
        Config {
            max_frame_size: 16 * 1024,
            ..Config::yamux()
        },
        Instant::ZERO,
    )
    .unwrap();
    let id = client.open(Instant::ZERO).unwrap();
    client.stream(id).write(Bytes::from(vec![7u8; 40_000])).unwrap();
    let mut sizes = Vec::new();
    while let Some(frame) = client.poll_transmit(Instant::ZERO) {
        let header = Header::decode(frame.header().try_into().unwrap(), Profile::Yamux).unwrap();
        if header.ty == FrameType::Data {
            sizes.push(frame.payload().len());
        }
    }
    assert_eq!(sizes, vec![16384, 16384, 7232]);
}

#[test]
fn received_payload_is_a_slice_of_the_input_not_a_copy() {
    let mut pair = pair(Profile::Yamux);
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    accept_all(&mut pair, Side::Server);
    // Hand the server one frame by hand so that we know the input buffer.
    let payload = vec![9u8; 4000];
    let header = Header::new(FrameType::Data, Flags::NONE, id.raw(), 4000).encode(Profile::Yamux);
    let mut input = header.to_vec();
    input.extend_from_slice(&payload);
    let input = Bytes::from(input);
    let input_range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    pair.server.handle_input(pair.now, input);
    let chunk = pair.server.stream(id).read(usize::MAX).unwrap().unwrap();
    assert_eq!(chunk.len(), 4000);
    assert!(input_range.contains(&(chunk.as_ptr() as usize)), "payload was copied");
}

#[test]
fn reset_with_code_is_seen_by_the_peer() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"abc");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.server.stream(id).reset(ResetCode(0x1234)).unwrap();
    pair.drive();
    let code = ResetCode(0x1234);
    assert!(has_event(&pair, Side::Client, &Event::StreamReset { id, code }));
    assert_eq!(pair.client.stream(id).read(10), Err(ReadError::Reset(code)));
    assert_eq!(pair.client.stream_count(), 0, "observing the reset released the stream");
    assert_eq!(pair.server.stream_count(), 0);
}

#[test]
fn yamux_reset_reads_as_cancel() {
    let mut pair = pair(Profile::Yamux);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"abc");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.drive();
    pair.server.stream(id).reset(ResetCode(77)).unwrap();
    pair.drive();
    assert_eq!(
        pair.client.stream(id).write(Bytes::from_static(b"more")),
        Err(WriteError::Reset(ResetCode::CANCEL))
    );
}

#[test]
fn full_accept_backlog_refuses_and_the_opener_sees_refused() {
    for profile in profiles() {
        let server_config = Config {
            accept_backlog: 2,
            ..config(profile)
        };
        let mut pair = Pair::new(config(profile), server_config, SimConfig::default());
        let ids: Vec<_> = (0..3).map(|_| pair.client.open(pair.now).unwrap()).collect();
        pair.drive();
        assert_eq!(pair.server.pending_accepts(), 2);
        assert_eq!(pair.server.stats().streams_refused, 1);
        let refused = ids[2];
        assert!(has_event(
            &pair,
            Side::Client,
            &Event::StreamReset {
                id: refused,
                code: ResetCode::REFUSED
            }
        ));
        assert_eq!(
            pair.client.stream(refused).read(1),
            Err(ReadError::Reset(ResetCode::REFUSED)),
            "{profile:?}"
        );
    }
}

#[test]
fn max_streams_blocks_local_opens_until_one_closes() {
    let client_config = Config {
        max_streams: 2,
        ..Config::default()
    };
    let mut pair = Pair::new(client_config, Config::default(), SimConfig::default());
    let a = pair.client.open(pair.now).unwrap();
    let _b = pair.client.open(pair.now).unwrap();
    assert_eq!(pair.client.open(pair.now), Err(OpenError::Blocked));
    pair.client.stream(a).reset(ResetCode::CANCEL).unwrap();
    pair.drive();
    assert!(has_event(&pair, Side::Client, &Event::CanOpen));
    assert!(pair.client.open(pair.now).is_ok());
}

#[test]
fn peer_over_max_streams_is_refused() {
    let server_config = Config {
        max_streams: 1,
        ..Config::default()
    };
    let mut pair = Pair::new(Config::default(), server_config, SimConfig::default());
    pair.drive(); // the hello tells the client the server's limit...
    let first = pair.client.open(pair.now).unwrap();
    assert_eq!(
        pair.client.open(pair.now),
        Err(OpenError::Blocked),
        "...so it does not even try"
    );
    pair.drive();
    assert_eq!(accept_all(&mut pair, Side::Server), vec![first]);

    // A yamux peer has no hello: the server refuses the excess stream instead.
    let server_config = Config {
        max_streams: 1,
        ..Config::yamux()
    };
    let mut pair = Pair::new(Config::yamux(), server_config, SimConfig::default());
    pair.client.open(pair.now).unwrap();
    let second = pair.client.open(pair.now).unwrap();
    pair.drive();
    assert_eq!(pair.server.stats().streams_refused, 1);
    assert_eq!(
        pair.client.stream(second).read(1),
        Err(ReadError::Reset(ResetCode::REFUSED))
    );
}

#[test]
fn unacknowledged_opens_are_capped() {
    let client_config = Config {
        max_unacknowledged_opens: 3,
        ..Config::yamux()
    };
    let mut pair = Pair::new(client_config, Config::yamux(), SimConfig::default());
    for _ in 0..3 {
        pair.client.open(pair.now).unwrap();
    }
    assert_eq!(pair.client.open(pair.now), Err(OpenError::Blocked));
    pair.drive();
    accept_all(&mut pair, Side::Server); // accepting sends the ACKs
    pair.drive();
    assert!(has_event(&pair, Side::Client, &Event::CanOpen));
    assert!(pair.client.open(pair.now).is_ok());
}

#[test]
fn writer_waits_for_window_and_resumes_after_update() {
    for profile in profiles() {
        let mut pair = pair(profile);
        let id = pair.client.open(pair.now).unwrap();
        let data = pattern(600 * 1024, 3);
        write_all_now(&mut pair.client, id, &data);
        pair.drive();
        accept_all(&mut pair, Side::Server);
        // Only the initial window crossed; the rest waits for the reader.
        assert_eq!(pair.server.stream(id).buffered_receive(), 256 * 1024);
        assert!(pair.client.stream(id).buffered_send() > 0);
        let mut received = Vec::new();
        for _ in 0..10 {
            received.extend(read_available(&mut pair.server, id).0);
            pair.drive();
        }
        assert_eq!(received, data, "{profile:?}");
    }
}

#[test]
fn data_beyond_the_window_is_a_protocol_error() {
    let mut server = Session::new(Role::Server, Config::yamux(), Instant::ZERO).unwrap();
    let too_much = 256 * 1024 + 1;
    let header = Header::new(FrameType::Data, Flags::SYN, 1, too_much).encode(Profile::Yamux);
    server.handle_input_slice(Instant::ZERO, &header);
    assert!(server.is_closed());
    assert!(matches!(
        server.close_reason(),
        Some(SessionError::Protocol(ProtocolError::FlowControl { .. }))
    ));
    // The peer is told why: a go-away with the protocol error code is queued.
    let goaway = drain_frames(&mut server)
        .into_iter()
        .find(|h| h.ty == FrameType::GoAway)
        .expect("go-away sent");
    assert_eq!(goaway.length, GoAwayCode::PROTOCOL_ERROR.0);
}

fn drain_frames(session: &mut Session) -> Vec<Header> {
    let mut headers = Vec::new();
    while let Some(frame) = session.poll_transmit(Instant::ZERO) {
        headers.push(Header::decode(frame.header().try_into().unwrap(), session.profile()).unwrap());
    }
    headers
}

#[test]
fn window_auto_tunes_up_on_a_fast_reader_with_latency() {
    let sim = SimConfig {
        latency: Duration::from_millis(20),
        bandwidth: Some(100_000_000),
        ..SimConfig::default()
    };
    let mut pair = Pair::new(Config::default(), Config::default(), sim);
    pair.drive(); // handshake and the first pings give an RTT
    let id = pair.client.open(pair.now).unwrap();
    let data = pattern(8 * 1024 * 1024, 1);
    let mut offset = 0;
    let mut received = 0;
    let mut accepted = false;
    let start = pair.now;
    while received < data.len() {
        if offset < data.len() {
            if let Ok(n) = pair.client.stream(id).write(Bytes::copy_from_slice(&data[offset..])) {
                offset += n;
            }
        }
        accepted |= !accept_all(&mut pair, Side::Server).is_empty();
        if accepted {
            received += read_available(&mut pair.server, id).0.len();
        }
        if received == data.len() {
            break;
        }
        assert!(pair.step(), "stalled at {received}");
    }
    let window = pair.server.stream(id).receive_window();
    assert!(window > 256 * 1024, "window stayed at {window}");
    let peak = pair.client.stats().send_window_peak;
    assert!(
        peak > 256 * 1024 && peak <= u64::from(window),
        "peak credit {peak}, window {window}"
    );
    assert!(window <= 16 * 1024 * 1024);
    // 8 MiB over a 40 ms round trip: a fixed 256 KiB window would need 32 round
    // trips (1.3 s); the grown window needs far fewer.
    let elapsed = pair.now.saturating_duration_since(start);
    assert!(elapsed < Duration::from_millis(800), "took {elapsed:?}");
}

#[test]
fn receive_budget_bounds_the_sum_of_windows() {
    let server_config = Config {
        receive_budget: 3 * 256 * 1024,
        ..Config::yamux()
    };
    let mut pair = Pair::new(Config::yamux(), server_config, SimConfig::default());
    for _ in 0..4 {
        pair.client.open(pair.now).unwrap();
    }
    pair.drive();
    assert_eq!(
        pair.server.stream_count(),
        3,
        "the fourth stream did not fit the budget"
    );
    assert_eq!(pair.server.stats().streams_refused, 1);
    assert!(pair.server.receive_windows_total() <= 3 * 256 * 1024);
}

#[test]
fn keepalive_measures_rtt() {
    let sim = SimConfig {
        latency: Duration::from_millis(25),
        ..SimConfig::default()
    };
    let mut pair = Pair::new(Config::default(), Config::default(), sim);
    pair.drive();
    let rtt = pair.client.rtt().expect("the first keepalive ping was answered");
    assert_eq!(rtt, Duration::from_millis(50));
    assert!(pair
        .events(Side::Client)
        .iter()
        .any(|e| matches!(e, Event::Pong { .. })));
    pair.client.ping(pair.now).unwrap();
    pair.drive();
    assert_eq!(pair.client.stats().pings_sent, 2);
    assert_eq!(pair.client.stats().rtt_last, Some(Duration::from_millis(50)));
}

#[test]
fn silent_peer_is_declared_dead_after_missed_pings() {
    let client_config = Config {
        keepalive_interval: Some(Duration::from_secs(5)),
        ping_timeout: Duration::from_secs(2),
        max_missed_pings: 3,
        ..Config::default()
    };
    let mut pair = Pair::new(client_config, Config::default(), SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    // The server stops reading: nothing it would send reaches the client any more.
    let mut client = pair.client;
    let start = pair.now;
    let mut now = start;
    let mut health = Vec::new();
    while !client.is_closed() {
        while client.poll_transmit(now).is_some() {}
        now = client.poll_timeout().expect("keepalive armed");
        client.handle_timeout(now);
        while let Some(event) = client.poll_event() {
            if let Event::HealthChanged { missed_pings } = event {
                health.push(missed_pings);
            }
        }
        assert!(
            now.saturating_duration_since(start) < Duration::from_secs(60),
            "never gave up"
        );
    }
    assert_eq!(health, vec![1, 2, 3]);
    assert_eq!(client.close_reason(), Some(SessionError::KeepaliveTimeout));
    // Detection time: interval to the first ping + 3 ping timeouts at most.
    assert!(now.saturating_duration_since(start) <= Duration::from_secs(5 + 3 * 2));
    assert_eq!(client.stream(id).read(1), Err(ReadError::SessionClosed));
}

#[test]
fn health_recovers_when_pongs_return() {
    let sim = SimConfig {
        latency: Duration::from_millis(1500),
        ..SimConfig::default()
    };
    let client_config = Config {
        ping_timeout: Duration::from_secs(1),
        max_missed_pings: 5,
        ..Config::default()
    };
    let mut pair = Pair::new(client_config, Config::default(), sim);
    pair.drive_for(Duration::from_secs(4));
    let health: Vec<u32> = pair
        .events(Side::Client)
        .iter()
        .filter_map(|e| match e {
            Event::HealthChanged { missed_pings } => Some(*missed_pings),
            _ => None,
        })
        .collect();
    assert_eq!(health.first(), Some(&1), "a 3 s round trip misses a 1 s ping timeout");
    assert!(!pair.client.is_closed());
}

#[test]
fn pings_go_out_ahead_of_queued_data() {
    let mut client = Session::new(Role::Client, Config::yamux(), Instant::ZERO).unwrap();
    client.poll_transmit(Instant::ZERO); // the first keepalive ping
    let id = client.open(Instant::ZERO).unwrap();
    client.stream(id).write(Bytes::from(vec![0u8; 200_000])).unwrap();
    let first = client.poll_transmit(Instant::ZERO).unwrap();
    assert_eq!(
        Header::decode(first.header().try_into().unwrap(), Profile::Yamux)
            .unwrap()
            .ty,
        FrameType::Data
    );
    client.ping(Instant::ZERO).unwrap();
    let next = client.poll_transmit(Instant::ZERO).unwrap();
    assert_eq!(
        Header::decode(next.header().try_into().unwrap(), Profile::Yamux)
            .unwrap()
            .ty,
        FrameType::Ping
    );
}

#[test]
fn go_away_drains_live_streams_then_closes() {
    for profile in profiles() {
        let mut pair = pair(profile);
        let id = pair.client.open(pair.now).unwrap();
        write_all_now(&mut pair.client, id, b"in flight");
        pair.drive();
        accept_all(&mut pair, Side::Server);
        pair.server.go_away(pair.now, GoAwayCode::NORMAL).unwrap();
        pair.drive();
        assert!(has_event(
            &pair,
            Side::Client,
            &Event::GoAwayReceived(GoAwayCode::NORMAL)
        ));
        assert_eq!(pair.client.open(pair.now), Err(OpenError::GoingAway));
        assert_eq!(pair.server.open(pair.now), Err(OpenError::GoingAway));
        // The live stream still works both ways.
        assert_eq!(read_available(&mut pair.server, id).0, b"in flight");
        write_all_now(&mut pair.server, id, b"reply");
        pair.server.stream(id).finish().unwrap();
        pair.client.stream(id).finish().unwrap();
        pair.drive();
        assert_eq!(read_available(&mut pair.client, id), (b"reply".to_vec(), true));
        assert_eq!(read_available(&mut pair.server, id), (Vec::new(), true));
        pair.drive();
        assert!(pair.server.is_closed() && pair.client.is_closed(), "{profile:?}");
        assert_eq!(pair.server.close_reason(), None, "orderly end");
        assert!(has_event(&pair, Side::Server, &Event::Closed(None)));
    }
}

#[test]
fn drain_deadline_resets_stragglers() {
    let server_config = Config {
        drain_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut pair = Pair::new(Config::default(), server_config, SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.server.go_away(pair.now, GoAwayCode::NORMAL).unwrap();
    pair.drive_for(Duration::from_secs(4));
    assert!(pair.server.is_closed());
    let code = ResetCode::DRAIN_TIMEOUT;
    assert!(has_event(&pair, Side::Client, &Event::StreamReset { id, code }));
}

#[test]
fn ending_a_drain_resets_the_stragglers_on_both_sides_at_once() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.server.go_away(pair.now, GoAwayCode::NORMAL).unwrap();
    pair.drive();
    assert!(!pair.server.is_closed(), "the stream keeps the drain going");
    pair.server.end_drain(pair.now);
    // Well within the 30 s drain timeout either side would otherwise wait.
    pair.drive_for(Duration::from_secs(1));
    assert!(pair.server.is_closed());
    assert_eq!(pair.server.close_reason(), None, "an orderly end");
    let code = ResetCode::DRAIN_TIMEOUT;
    assert!(has_event(&pair, Side::Client, &Event::StreamReset { id, code }));
    assert!(has_event(&pair, Side::Server, &Event::StreamReset { id, code }));
}

#[test]
fn ending_a_drain_that_never_began_changes_nothing() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    pair.server.end_drain(pair.now);
    pair.drive();
    assert!(!pair.server.is_closed() && !pair.client.is_closed());
    assert_eq!(
        pair.client.stream(id).write(bytes::Bytes::from_static(b"still open")),
        Ok(10)
    );
}

#[test]
fn go_away_with_an_error_code_ends_the_peer_at_once() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    pair.drive();
    pair.server.close(GoAwayCode(0x200));
    pair.drive();
    assert_eq!(
        pair.client.close_reason(),
        Some(SessionError::PeerGoAway(GoAwayCode(0x200)))
    );
    assert_eq!(pair.client.stream(id).read(1), Err(ReadError::SessionClosed));
    assert_eq!(
        pair.server.close_reason(),
        Some(SessionError::LocallyClosed(GoAwayCode(0x200)))
    );
}

#[test]
fn unacknowledged_open_times_out() {
    let client_config = Config {
        open_timeout: Some(Duration::from_secs(2)),
        ..Config::default()
    };
    let mut pair = Pair::new(client_config, Config::default(), SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    pair.drive_for(Duration::from_secs(3)); // the server never accepts
    let code = ResetCode::OPEN_TIMEOUT;
    assert!(has_event(&pair, Side::Client, &Event::StreamReset { id, code }));
    // The server hears the reset and drops the stream it never accepted.
    assert_eq!(pair.server.pending_accepts(), 0);
    assert_eq!(pair.server.stream_count(), 0);
}

/// A stream the client opened and finished at once (close timeout 2 s), accepted
/// by the server.
fn finished_by_the_client_with_a_2s_close_timeout() -> (Pair, hawser_core::StreamId) {
    let client_config = Config {
        close_timeout: Some(Duration::from_secs(2)),
        ..Config::default()
    };
    let mut pair = Pair::new(client_config, Config::default(), SimConfig::default());
    let id = pair.client.open(pair.now).unwrap();
    pair.client.stream(id).finish().unwrap();
    pair.drive();
    accept_all(&mut pair, Side::Server);
    (pair, id)
}

#[test]
fn peer_that_never_finishes_is_reset_after_the_close_timeout() {
    let (mut pair, id) = finished_by_the_client_with_a_2s_close_timeout();
    pair.drive_for(Duration::from_secs(3)); // the server never finishes its side
    let code = ResetCode::CLOSE_TIMEOUT;
    assert!(has_event(&pair, Side::Server, &Event::StreamReset { id, code }));
}

#[test]
fn a_peer_still_sending_is_not_cut_off_by_the_close_timeout() {
    let (mut pair, id) = finished_by_the_client_with_a_2s_close_timeout();
    // The reply trickles for 5 s, well past the 2 s timeout, a piece every second.
    let mut received = Vec::new();
    for second in 0..5u8 {
        write_all_now(&mut pair.server, id, &[second; 100]);
        pair.drive_for(Duration::from_secs(1));
        received.extend(read_available(&mut pair.client, id).0);
    }
    pair.server.stream(id).finish().unwrap();
    pair.drive();
    received.extend(read_available(&mut pair.client, id).0);
    assert_eq!(received.len(), 500);
    assert!(!has_event(
        &pair,
        Side::Server,
        &Event::StreamReset {
            id,
            code: ResetCode::CLOSE_TIMEOUT
        }
    ));
}

#[test]
fn version_mismatch_is_a_clear_error() {
    let mut pair = Pair::new(Config::default(), Config::yamux(), SimConfig::default());
    pair.drive();
    let reason = pair
        .server
        .close_reason()
        .expect("yamux server rejects the native hello");
    let text = reason.to_string();
    assert!(text.contains("hawser native profile"), "{text}");
    let reason = pair
        .client
        .close_reason()
        .expect("native client rejects the yamux go-away");
    assert!(reason.to_string().contains("yamux profile"), "{reason}");
}

#[test]
fn native_session_requires_a_hello_first() {
    let mut server = Session::new(Role::Server, Config::default(), Instant::ZERO).unwrap();
    let ping = Header::new(FrameType::Ping, Flags::SYN, 0, 1).encode(Profile::Native);
    server.handle_input_slice(Instant::ZERO, &ping);
    assert_eq!(
        server.close_reason(),
        Some(SessionError::Handshake(HandshakeError::ExpectedHello))
    );
    let goaway = drain_frames(&mut server)
        .into_iter()
        .find(|h| h.ty == FrameType::GoAway);
    assert_eq!(goaway.map(|h| h.length), Some(GoAwayCode::HANDSHAKE_FAILED.0));
}

#[test]
fn incompatible_settings_fail_the_handshake() {
    let mut server = Session::new(Role::Server, Config::default(), Instant::ZERO).unwrap();
    let mut payload = hawser_core::Settings {
        initial_window: 256 * 1024,
        max_frame_size: 100, // below the 16 KiB minimum
        max_streams: 10,
        keepalive_ms: 0,
        capabilities: 0,
    }
    .encode();
    let mut input = Header::new(FrameType::Hello, Flags::NONE, 0, payload.len() as u32)
        .encode(Profile::Native)
        .to_vec();
    input.append(&mut payload);
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(matches!(
        server.close_reason(),
        Some(SessionError::Handshake(HandshakeError::SettingOutOfRange {
            setting: "max_frame_size",
            ..
        }))
    ));
}

#[test]
fn missing_hello_times_out() {
    let config = Config {
        handshake_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let mut server = Session::new(Role::Server, config, Instant::ZERO).unwrap();
    let at = server.poll_timeout().unwrap();
    assert!(at <= Instant::ZERO + Duration::from_secs(1));
    server.handle_timeout(Instant::ZERO + Duration::from_secs(1));
    assert_eq!(
        server.close_reason(),
        Some(SessionError::Handshake(HandshakeError::Timeout))
    );
}

#[test]
fn counters_add_up() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, &[1u8; 1000]);
    pair.client.stream(id).finish().unwrap();
    pair.drive();
    accept_all(&mut pair, Side::Server);
    read_available(&mut pair.server, id);
    pair.drive();
    let client = pair.client.stats();
    let server = pair.server.stats();
    assert_eq!(client.streams_opened, 1);
    assert_eq!(server.streams_accepted, 1);
    assert_eq!(client.payload_out, 1000);
    assert_eq!(server.payload_in, 1000);
    assert_eq!(client.bytes_out, server.bytes_in);
    assert_eq!(server.bytes_out, client.bytes_in);
    assert_eq!(client.frames_out, server.frames_in);
    assert_eq!(client.bytes_out, pair.bytes_carried(Side::Client));
    assert!(client.pings_sent >= 1 && client.rtt_smoothed.is_some());
    assert_eq!(server.pings_answered, client.pings_sent);
}

#[test]
fn a_slow_reader_does_not_stop_other_streams() {
    let mut pair = pair(Profile::Yamux);
    let slow = pair.client.open(pair.now).unwrap();
    let fast = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, slow, &vec![1u8; 1024 * 1024]);
    let data = pattern(2 * 1024 * 1024, 9);
    let mut offset = 0;
    let mut received = Vec::new();
    let mut steps = 0;
    while received.len() < data.len() {
        if let Ok(n) = pair.client.stream(fast).write(Bytes::copy_from_slice(&data[offset..])) {
            offset += n;
        }
        accept_all(&mut pair, Side::Server);
        if pair.server.stream(fast).buffered_receive() > 0 {
            received.extend(read_available(&mut pair.server, fast).0);
        }
        pair.step();
        steps += 1;
        assert!(steps < 100_000, "fast stream stalled at {}", received.len());
    }
    assert_eq!(received, data);
    // The slow stream holds exactly its window and no more.
    assert_eq!(pair.server.stream(slow).buffered_receive(), 256 * 1024);
}

#[test]
fn frames_for_closed_streams_are_ignored_in_yamux() {
    let mut server = Session::new(Role::Server, Config::yamux(), Instant::ZERO).unwrap();
    let mut input = Header::new(FrameType::Data, Flags::NONE, 41, 3)
        .encode(Profile::Yamux)
        .to_vec();
    input.extend_from_slice(b"abc");
    input.extend_from_slice(&Header::new(FrameType::WindowUpdate, Flags::NONE, 41, 9).encode(Profile::Yamux));
    server.handle_input_slice(Instant::ZERO, &input);
    assert!(!server.is_closed());
    assert_eq!(server.stats().frames_in, 2);
    assert_eq!(HEADER_LEN, 12);
}

#[test]
fn frames_for_never_opened_streams_fail_native() {
    let mut pair = pair(Profile::Native);
    pair.drive();
    let data = Header::new(FrameType::Data, Flags::NONE, 99, 0).encode(Profile::Native);
    pair.server.handle_input_slice(pair.now, &data);
    assert!(matches!(
        pair.server.close_reason(),
        Some(SessionError::Protocol(ProtocolError::UnknownStream(_)))
    ));
}

#[test]
fn tokio_yamux_style_ack_rst_reads_as_refused() {
    let mut client = Session::new(Role::Client, Config::yamux(), Instant::ZERO).unwrap();
    let id = client.open(Instant::ZERO).unwrap();
    while client.poll_transmit(Instant::ZERO).is_some() {}
    let refusal = Header::new(FrameType::WindowUpdate, Flags::ACK.with(Flags::RST), id.raw(), 0).encode(Profile::Yamux);
    client.handle_input_slice(Instant::ZERO, &refusal);
    assert_eq!(client.stream(id).read(1), Err(ReadError::Reset(ResetCode::REFUSED)));
}

#[test]
fn handshake_failure_reaches_the_peer_as_a_go_away_after_our_hello() {
    // A native server refusing a bad hello still sends its own hello first, so the
    // client can decode the go-away and report the code.
    let mut server = Session::new(Role::Server, Config::default(), Instant::ZERO).unwrap();
    let mut bad = Header::new(FrameType::Hello, Flags::NONE, 0, 4)
        .encode(Profile::Native)
        .to_vec();
    bad.extend_from_slice(b"NOPE");
    server.handle_input_slice(Instant::ZERO, &bad);
    assert_eq!(
        server.close_reason(),
        Some(SessionError::Handshake(HandshakeError::BadMagic))
    );
    let mut client = Session::new(Role::Client, Config::default(), Instant::ZERO).unwrap();
    while let Some(transmit) = server.poll_transmit(Instant::ZERO) {
        let (header, payload) = transmit.into_parts();
        client.handle_input_slice(Instant::ZERO, &header);
        client.handle_input(Instant::ZERO, payload);
    }
    assert_eq!(
        client.close_reason(),
        Some(SessionError::PeerGoAway(GoAwayCode::HANDSHAKE_FAILED))
    );
}

#[test]
fn data_that_arrived_before_the_link_was_lost_can_still_be_read() {
    let mut pair = pair(Profile::Yamux);
    let finished = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, finished, b"complete");
    pair.client.stream(finished).finish().unwrap();
    let cut_short = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, cut_short, b"partial");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.cut_link();
    assert_eq!(pair.server.close_reason(), Some(SessionError::LinkLost));
    // A finished stream reads to its end; an unfinished one reads what came, then fails.
    assert_eq!(read_available(&mut pair.server, finished), (b"complete".to_vec(), true));
    assert_eq!(
        pair.server.stream(cut_short).read(100).unwrap().unwrap().as_ref(),
        b"partial"
    );
    assert_eq!(pair.server.stream(cut_short).read(100), Err(ReadError::SessionClosed));
    assert_eq!(
        pair.server.stream(cut_short).write(Bytes::from_static(b"x")),
        Err(WriteError::SessionClosed)
    );
}

#[test]
fn delivering_a_reset_is_enough_to_release_the_stream() {
    // An embedder that forgets a stream on `StreamReset` and never touches it
    // again: the slot must still come back, or after `max_streams` such resets
    // every open would be refused.
    for profile in profiles() {
        let server_config = Config {
            max_streams: 4,
            ..config(profile)
        };
        let mut pair = Pair::new(config(profile), server_config, SimConfig::default());
        for round in 0..20u32 {
            let id = pair.client.open(pair.now).unwrap();
            write_all_now(&mut pair.client, id, b"request");
            pair.drive();
            let accepted = accept_all(&mut pair, Side::Server);
            assert_eq!(accepted, vec![id], "{profile:?} round {round}: the open got through");
            pair.client.stream(id).reset(ResetCode(0x300)).unwrap();
            pair.drive();
            let code = match profile {
                Profile::Native => ResetCode(0x300),
                Profile::Yamux => ResetCode::CANCEL,
            };
            assert!(has_event(&pair, Side::Server, &Event::StreamReset { id, code }));
            assert!(has_event(&pair, Side::Server, &Event::StreamClosed(id)));
            assert_eq!(pair.server.stream_count(), 0, "{profile:?} round {round}");
            pair.take_events(Side::Server);
        }
        assert_eq!(pair.server.stats().streams_refused, 0);
    }
}

#[test]
fn a_released_reset_stream_still_reports_its_code() {
    let mut pair = pair(Profile::Native);
    let id = pair.client.open(pair.now).unwrap();
    write_all_now(&mut pair.client, id, b"abc");
    pair.drive();
    accept_all(&mut pair, Side::Server);
    pair.server.stream(id).reset(ResetCode(0x1234)).unwrap();
    pair.drive();
    let code = ResetCode(0x1234);
    assert!(has_event(&pair, Side::Client, &Event::StreamReset { id, code }));
    assert_eq!(
        pair.client.stream_count(),
        0,
        "delivering the reset released the stream"
    );
    assert_eq!(pair.client.stream(id).read(10), Err(ReadError::Reset(code)));
    assert_eq!(
        pair.client.stream(id).write(Bytes::from_static(b"x")),
        Err(WriteError::Reset(code))
    );
    assert_eq!(
        pair.client.stream(id).finish(),
        Err(hawser_core::FinishError::Reset(code))
    );
    assert_eq!(pair.client.stream(id).reset(ResetCode(1)), Ok(()));
}

#[test]
fn data_and_fin_that_arrived_before_the_accept_raise_readable_after_it() {
    for profile in profiles() {
        let mut pair = pair(profile);
        // Data and FIN before the accept.
        let early = pair.client.open(pair.now).unwrap();
        write_all_now(&mut pair.client, early, b"early");
        pair.client.stream(early).finish().unwrap();
        // Only a FIN before the accept.
        let empty = pair.client.open(pair.now).unwrap();
        pair.client.stream(empty).finish().unwrap();
        pair.drive();
        assert!(!has_event(&pair, Side::Server, &Event::Readable(early)));
        assert_eq!(accept_all(&mut pair, Side::Server), vec![early, empty]);
        pair.drive();
        assert!(has_event(&pair, Side::Server, &Event::Readable(early)), "{profile:?}");
        assert!(has_event(&pair, Side::Server, &Event::Readable(empty)), "{profile:?}");
        assert_eq!(read_available(&mut pair.server, early), (b"early".to_vec(), true));
        assert_eq!(read_available(&mut pair.server, empty), (Vec::new(), true));
    }
}

#[test]
fn data_after_the_accept_raises_readable_and_so_does_each_blocked_read() {
    for profile in profiles() {
        let mut pair = pair(profile);
        let id = pair.client.open(pair.now).unwrap();
        pair.drive();
        assert_eq!(accept_all(&mut pair, Side::Server), vec![id]);
        pair.drive();
        assert_eq!(pair.server.stream(id).read(10), Err(ReadError::Blocked));
        pair.take_events(Side::Server);
        write_all_now(&mut pair.client, id, b"first");
        pair.drive();
        assert!(has_event(&pair, Side::Server, &Event::Readable(id)), "{profile:?}");
        assert_eq!(read_available(&mut pair.server, id), (b"first".to_vec(), false));
        pair.take_events(Side::Server);
        pair.client.stream(id).finish().unwrap();
        pair.drive();
        assert!(
            has_event(&pair, Side::Server, &Event::Readable(id)),
            "{profile:?}: the FIN wakes the reader"
        );
        assert_eq!(read_available(&mut pair.server, id), (Vec::new(), true));
    }
}

//! A session's life as a program sees it: a server that has seen its clients
//! come and go holds nothing for them, and a session whose handles are all
//! dropped ends. The live-session count is process-wide, so these tests run one
//! at a time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use hawser_blocking::{live_sessions, Config, Session};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Waits up to 5 s for the live-session count to fall to 0; returns the count it
/// saw last.
fn sessions_fall_to_zero() -> usize {
    for _ in 0..500 {
        if live_sessions() == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    live_sessions()
}

#[test]
fn connections_that_connect_and_close_leave_no_session_behind() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for config in [Config::yamux(), Config::default()] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_config = config.clone();
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let session = Session::server(tcp, server_config.clone()).expect("valid config");
                thread::spawn(move || while session.accept().is_some() {});
            }
        });
        for _round in 0..3 {
            let links: Vec<_> = (0..100).map(|_| TcpStream::connect(addr).unwrap()).collect();
            thread::sleep(Duration::from_millis(200));
            assert!(live_sessions() > 0, "the server made no sessions");
            drop(links);
            assert_eq!(sessions_fall_to_zero(), 0, "sessions outlived their closed links");
        }
    }
}

#[test]
fn dropping_every_handle_ends_the_session_after_its_streams_drain() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for config in [Config::yamux(), Config::default()] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let server = Session::server(accepted, config.clone()).unwrap();
        let client = Session::client(tcp, config).unwrap();

        let mut stream = client.open_stream().unwrap();
        stream.write_all(&[7u8; 100_000]).unwrap();
        drop(client);
        drop(stream);

        let mut inbound = server
            .accept_timeout(Some(Duration::from_secs(10)))
            .expect("the stream arrives in time")
            .expect("the session is open");
        let mut got = Vec::new();
        inbound.read_to_end(&mut got).unwrap();
        assert_eq!(got, vec![7u8; 100_000]);
        let next = server.accept_timeout(Some(Duration::from_secs(10)));
        assert!(
            matches!(next, Ok(None)),
            "the server saw the client go away: {:?}",
            next.map(|s| s.map(|s| s.id()))
        );
        drop((inbound, server));
        assert_eq!(sessions_fall_to_zero(), 0, "both ends let go of their sessions");
    }
}

#[test]
fn closed_and_the_last_link_event_say_how_the_session_ended() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let server = Session::server(accepted, Config::default()).unwrap();
    let client = Session::client(tcp, Config::default()).unwrap();
    assert!(matches!(
        client.closed(Some(Duration::from_millis(50))),
        Err(err) if err.kind() == std::io::ErrorKind::TimedOut
    ));
    server.close(hawser_blocking::GoAwayCode(0x222));
    let err = client
        .closed(Some(Duration::from_secs(10)))
        .expect_err("the server closed it with an error code");
    assert_eq!(
        hawser_blocking::session_error(&err),
        Some(hawser_blocking::SessionError::PeerGoAway(hawser_blocking::GoAwayCode(
            0x222
        )))
    );
    let mut last = None;
    while let Some(event) = client.next_link_event(Some(Duration::from_secs(10))).unwrap() {
        last = Some(event);
    }
    assert_eq!(
        last,
        Some(hawser_blocking::LinkEvent::Ended {
            reason: Some(hawser_blocking::SessionError::PeerGoAway(hawser_blocking::GoAwayCode(
                0x222
            )))
        })
    );
}

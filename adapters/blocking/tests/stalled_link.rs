//! A peer that stops reading: the writer thread must keep the session's timers
//! running, so that keepalive declares the peer dead instead of the session
//! hanging in a socket write.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use hawser_blocking::{session_error, Config, Session, SessionError};
use hawser_core::frame::{Flags, FrameType, Header};
use hawser_core::Profile;

#[test]
fn keepalive_fires_while_a_write_is_blocked_on_a_peer_that_does_not_read() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut raw, _) = listener.accept().unwrap();
    let config = Config {
        keepalive_interval: Some(Duration::from_millis(100)),
        ping_timeout: Duration::from_millis(200),
        max_missed_pings: 2,
        ..Config::yamux()
    };
    let session = Session::client(tcp, config).unwrap();
    let mut stream = session.open_stream().unwrap();
    stream.write_all(b"x").unwrap();
    // Read the SYN, then grant far more window than any socket buffer holds and
    // never read again.
    let mut first = [0u8; 13];
    raw.read_exact(&mut first).unwrap();
    let grant = Header::new(FrameType::WindowUpdate, Flags::NONE, stream.id().raw(), 256 << 20).encode(Profile::Yamux);
    raw.write_all(&grant).unwrap();

    stream.set_write_timeout(Some(Duration::from_secs(20)));
    let writer = std::thread::spawn(move || {
        let chunk = vec![9u8; 1 << 20];
        loop {
            if let Err(err) = stream.write_all(&chunk) {
                return err;
            }
        }
    });
    let outcome = session.closed(Some(Duration::from_secs(20)));
    let err = outcome.expect_err("the session ends with an error");
    assert_eq!(session_error(&err), Some(SessionError::KeepaliveTimeout), "{err:?}");
    let write_error = writer.join().unwrap();
    assert_eq!(session_error(&write_error), Some(SessionError::KeepaliveTimeout));
    drop(raw);
}

//! The resumable server's accept loop: one bad client delays nobody.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use hawser_blocking::{Acceptor, Config, Resumption, RetryPolicy, Session};

fn resumable() -> Config {
    Config {
        resumption: Some(Resumption::default()),
        // Far longer than the test: a serial accept loop would sit on the
        // silent client for all of it.
        handshake_timeout: Duration::from_secs(120),
        ..Config::default()
    }
}

#[test]
fn a_silent_and_a_garbage_client_do_not_delay_a_good_one() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = Acceptor::<TcpStream>::new(resumable()).unwrap().serve(listener);

    let mut silent = TcpStream::connect(addr).unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap();
    garbage.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Refused and closed: a go-away, then end-of-file or a reset.
    let mut answer = Vec::new();
    match garbage.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }

    let client = Session::connect_resumable(addr, resumable(), RetryPolicy::default()).unwrap();
    let mut stream = client.open_stream().unwrap();
    stream.write_all(b"hello").unwrap();
    stream.finish().unwrap();
    let session = incoming
        .next_timeout(Duration::from_secs(10))
        .expect("the good client is served")
        .expect("the loop runs");
    let mut inbound = session
        .accept_timeout(Some(Duration::from_secs(10)))
        .unwrap()
        .expect("the stream arrives");
    let mut got = Vec::new();
    inbound.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello");

    // The silent client's link is still waiting for its handshake.
    silent.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut byte = [0u8; 1];
    let still_open = silent.read(&mut byte);
    assert!(
        matches!(&still_open, Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the silent link was closed: {still_open:?}"
    );
}

#[test]
fn a_client_that_sends_nothing_times_out() {
    let config = Config {
        handshake_timeout: Duration::from_millis(200),
        ..resumable()
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (link, _) = listener.accept().unwrap();
    let acceptor = Acceptor::new(config).unwrap();
    let outcome = acceptor.accept(link);
    assert_eq!(outcome.err().map(|err| err.kind()), Some(std::io::ErrorKind::TimedOut));
}

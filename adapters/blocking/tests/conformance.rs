//! Every conformance scenario over hawser-blocking and loopback TCP.

mod common;

use std::io::{self, Read, Write};
use std::time::Duration;

use common::*;
use hawser_blocking::Config;

hawser_conformance::conformance_tests!(Blocking, run);

#[test]
fn timeouts_work_like_tcp_streams() {
    let (a, b) = loopback().unwrap();
    let client = hawser_blocking::Session::client(a, Config::default()).unwrap();
    let server = hawser_blocking::Session::server(b, Config::default()).unwrap();
    let mut stream = client.open_stream().unwrap();
    stream.write_all(b"x").unwrap();
    let _inbound = server.accept().unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50)));
    let err = stream.read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(server.accept_timeout(Some(Duration::from_millis(50))).is_err());
}

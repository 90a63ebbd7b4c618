//! The emulated path does what its spec says: it delays, it limits the rate,
//! it goes silent on demand and comes back, and a client that moves loses its
//! old connections but can make new ones. Bounds here are lower bounds a path
//! cannot beat, or generous timeouts; exact figures come from the benchmark.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hawser_conformance::path::{EmulatedPath, PathSpec, Side};

fn path(spec: PathSpec) -> Option<EmulatedPath> {
    match EmulatedPath::new(spec) {
        Ok(path) => Some(path),
        Err(unavailable) => {
            eprintln!("skipped: {unavailable}");
            None
        }
    }
}

/// An echo server inside the server's namespace, one thread per connection.
fn echo_server(path: &EmulatedPath) -> SocketAddr {
    let listener = path.listen(Side::Server, 7000).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = socket.read(&mut buf) {
                    if socket.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn connect_from_client(path: &EmulatedPath, addr: SocketAddr) -> std::io::Result<TcpStream> {
    path.connect(Side::Client, addr, Duration::from_secs(5))
}

fn round_trip(socket: &mut TcpStream) -> std::io::Result<Duration> {
    let start = Instant::now();
    socket.write_all(b"x")?;
    let mut byte = [0u8; 1];
    socket.read_exact(&mut byte)?;
    Ok(start.elapsed())
}

#[test]
fn a_round_trip_takes_at_least_twice_the_one_way_delay() {
    let Some(path) = path(PathSpec {
        one_way_delay: Duration::from_millis(40),
        ..PathSpec::lan()
    }) else {
        return;
    };
    let addr = echo_server(&path);
    let mut socket = connect_from_client(&path, addr).unwrap();
    socket.set_nodelay(true).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        let rtt = round_trip(&mut socket).unwrap();
        assert!(rtt >= Duration::from_millis(80), "a round trip took only {rtt:?}");
    }
    assert!(path.stats().delivered >= 6);
}

#[test]
fn a_transfer_is_no_faster_than_the_bottleneck() {
    let Some(path) = path(PathSpec {
        rate_bits_per_sec: Some(16_000_000),
        ..PathSpec::lan()
    }) else {
        return;
    };
    let addr = echo_server(&path);
    let mut socket = connect_from_client(&path, addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = socket.try_clone().unwrap();
    const TOTAL: usize = 2 << 20;
    let start = Instant::now();
    let writer = std::thread::spawn(move || socket.write_all(&vec![7u8; TOTAL]));
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < TOTAL {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0);
        assert!(buf[..n].iter().all(|&b| b == 7));
        got += n;
    }
    writer.join().unwrap().unwrap();
    // 2 MiB at 2 MB/s (16 Mbit/s) takes at least a second, less the bytes a
    // queue could hold at the start.
    let floor = Duration::from_secs_f64((TOTAL - (1 << 20)) as f64 / 2_000_000.0);
    assert!(
        start.elapsed() >= floor,
        "{TOTAL} bytes crossed in {:?}",
        start.elapsed()
    );
}

#[test]
fn a_blackhole_silences_both_ways_until_the_path_returns() {
    let Some(path) = path(PathSpec::lan()) else {
        return;
    };
    let addr = echo_server(&path);
    let mut socket = connect_from_client(&path, addr).unwrap();
    socket.set_nodelay(true).unwrap();
    round_trip(&mut socket).unwrap();

    path.blackhole(true);
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    socket.write_all(b"y").unwrap();
    let mut byte = [0u8; 1];
    let silent = socket.read(&mut byte).unwrap_err();
    assert!(
        matches!(
            silent.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "nothing came back through the blackhole: {silent}"
    );
    assert!(path.stats().dropped_silent > 0);

    path.blackhole(false);
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    socket.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"y", "TCP retransmitted once the path came back");
}

#[test]
fn a_client_that_moves_loses_its_old_connection_and_makes_new_ones() {
    let Some(path) = path(PathSpec::lan()) else {
        return;
    };
    let addr = echo_server(&path);
    let before = path.client_ip();
    let mut old = connect_from_client(&path, addr).unwrap();
    old.set_nodelay(true).unwrap();
    round_trip(&mut old).unwrap();
    assert_eq!(old.local_addr().unwrap().ip(), before);

    let after = path.change_client_address().unwrap();
    assert_ne!(after, before);
    assert_eq!(path.client_ip(), after);

    old.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let _ = old.write_all(b"z");
    let mut byte = [0u8; 1];
    assert!(old.read(&mut byte).is_err(), "the old connection delivers nothing");

    let mut new = connect_from_client(&path, addr).unwrap();
    new.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(new.local_addr().unwrap().ip(), after);
    round_trip(&mut new).unwrap();
    assert_eq!(after, Ipv4Addr::new(10, 201, 0, 3));
}

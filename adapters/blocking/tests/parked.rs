//! Detached server sessions wait without a thread each: a thousand clients that
//! vanish must not leave a thousand writer threads behind. (A test binary of its
//! own, so that the process's thread count is this test's.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hawser_blocking::{Acceptor, Config, Resumption};
use hawser_core::{Instant as CoreInstant, Role, Session as CoreSession};

fn config() -> Config {
    Config {
        resumption: Some(Resumption::default()),
        ..Config::default()
    }
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("Threads:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A client that completes the handshake, takes its ticket and vanishes.
fn handshake_and_vanish(addr: std::net::SocketAddr) {
    let mut client = CoreSession::new(Role::Client, config(), CoreInstant::ZERO).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    while let Some(transmit) = client.poll_transmit(CoreInstant::ZERO) {
        tcp.write_all(transmit.header()).unwrap();
        tcp.write_all(transmit.payload()).unwrap();
    }
    let mut buf = [0u8; 4096];
    while client.resume_ticket().is_none() {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the link before the ticket");
        client.handle_input_slice(CoreInstant::ZERO, &buf[..n]);
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg(target_os = "linux")]
fn detached_sessions_wait_without_a_thread_each() {
    const CLIENTS: usize = 60;
    let acceptor = Acceptor::<TcpStream>::new(config()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = acceptor.serve(listener);
    // The application holds every session it is given.
    let holder = std::thread::spawn(move || incoming.take(CLIENTS).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(100));
    let before = threads();
    for _ in 0..CLIENTS {
        handshake_and_vanish(addr);
    }
    let sessions = holder.join().unwrap();
    wait_for("every session to detach", || acceptor.stats().detached == CLIENTS);
    // Each attached session had a reader and a writer thread; detached, they
    // wait in one shared thread.
    wait_for("the link threads to end", || threads() <= before + 3);
    assert!(sessions.iter().all(|session| !session.is_closed()));
    let after = threads();
    eprintln!("{CLIENTS} detached sessions: {before} threads before, {after} after");
    // They still expire or end as they should: closing one ends it.
    sessions[0].close(hawser_blocking::GoAwayCode::NORMAL);
    wait_for("the closed session to leave the registry", || {
        acceptor.stats().sessions == CLIENTS - 1
    });
}

//! The real `hawser` binary on a packet-level emulated path (two network
//! namespaces, kernel TCP at both ends; Linux and root, skipped with a reason
//! elsewhere): a `-L` and a `-R` connection carry transfers through 10 s of
//! silence and then through the client moving to another address, and
//! neither end of either notices.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::*;
use hawser_conformance::interop::link::Pattern;
use hawser_conformance::path::{EmulatedPath, Outage, PathSpec, Side};

const BYTES: u64 = 32 * 1024 * 1024;

/// An echo service on `side`'s loopback, a thread per connection.
fn echo_inside(path: &EmulatedPath, side: Side) -> SocketAddr {
    let listener = path
        .spawn_in(side, || TcpListener::bind("127.0.0.1:0"))
        .join()
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            thread::spawn(move || {
                let mut back = tcp.try_clone().unwrap();
                let _ = std::io::copy(&mut tcp, &mut back);
                let _ = back.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn a_forwarded_connection_rides_through_silence_and_a_move() {
    let path = match EmulatedPath::new(PathSpec::lan()) {
        Ok(path) => Arc::new(path),
        Err(unavailable) => {
            eprintln!("skipped: {unavailable}");
            return;
        }
    };
    let dir = scratch("emulated");
    let fingerprint = keygen(&dir);
    let (cert, key, token) = files(&dir);
    let echo = echo_inside(&path, Side::Server).to_string();
    let client_echo = echo_inside(&path, Side::Client).to_string();
    let reverse = SocketAddr::from((path.server_ip(), 7100));
    let allow_reverse = reverse.to_string();
    let listen = SocketAddr::from((path.server_ip(), 0)).to_string();

    let mut command = path.command_in(Side::Server, HAWSER);
    command.args(["server", "--listen", &listen, "--token-file", &token]);
    command.args(["--cert", &cert, "--key", &key, "--allow", &echo]);
    command.args(["--allow-reverse", &allow_reverse]);
    let server = Process::spawn(command, dir.join("server.log"));
    let server_addr = server.line("listening on ");

    let local = format!("0:{echo}");
    let remote = format!("{reverse}:{client_echo}");
    let mut command = path.command_in(Side::Client, HAWSER);
    command.args(["client", "--connect", &server_addr, "--token-file", &token]);
    command.args(["--fingerprint", &fingerprint, "-L", &local, "-R", &remote]);
    let client = Process::spawn(command, dir.join("client.log"));
    let local_addr = forwarded(&client);
    client.line("reverse ");

    let progress = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for (side, addr, seed) in [(Side::Client, local_addr, 6), (Side::Server, reverse, 7)] {
        let (path, progress, done_tx) = (path.clone(), progress.clone(), done_tx.clone());
        thread::spawn(move || {
            let _ = done_tx.send(echo_through(&path, side, addr, seed, progress));
        });
    }
    let mut gaps = Vec::new();
    for (outage, at) in [
        (Outage::Silence(Duration::from_secs(10)), BYTES / 2),
        (Outage::ClientMoves, BYTES),
    ] {
        while progress.load(Ordering::Relaxed) < at {
            thread::sleep(Duration::from_millis(5));
        }
        let usable = path.impose(outage).join().unwrap();
        let resumed_at = progress.load(Ordering::Relaxed);
        while progress.load(Ordering::Relaxed) == resumed_at {
            assert!(
                usable.elapsed() < Duration::from_secs(60),
                "no byte came back within 60 s of {outage:?}:\n{}",
                client.stderr()
            );
            thread::sleep(Duration::from_millis(5));
        }
        gaps.push((outage, usable.elapsed()));
    }
    for _ in 0..2 {
        let checked = done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the transfers finished in time (or panicked)");
        assert_eq!(checked, BYTES, "every byte came back, in order, and no more");
    }
    for (outage, gap) in gaps {
        eprintln!("{outage:?}: bytes flowed again {gap:?} after the path was usable");
    }

    let log = client.stderr();
    assert!(log.contains("suspect link replaced by a fresh one"), "{log}");
    assert!(!log.contains("reconnecting"), "the session had to be rebuilt:\n{log}");
    assert!(path.stats().dropped_silent > 0, "the outages did silence the path");
}

/// Sends `BYTES` of a pattern through the forward at `addr` (inside `side`'s
/// namespace) and checks all of it as it echoes back; counts checked bytes
/// into `progress`, and returns their total.
fn echo_through(path: &EmulatedPath, side: Side, addr: SocketAddr, seed: u64, progress: Arc<AtomicU64>) -> u64 {
    let mut tcp = path.connect(side, addr, Duration::from_secs(5)).unwrap();
    let mut back = tcp.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut pattern = Pattern::new(seed);
        while pattern.position() < BYTES {
            tcp.write_all(&pattern.take(64 * 1024)).unwrap();
        }
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut check = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = back.read(&mut buf).expect("no reset: nothing may be lost");
        if n == 0 {
            break;
        }
        check.check(&buf[..n]).unwrap();
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    writer.join().unwrap();
    check.position()
}

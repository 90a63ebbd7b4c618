//! A path that goes silent mid-transfer over hawser-blocking: the resumable
//! client suspects the link, dials a fresh one on a thread while the old one
//! still stands, resumes on it, and the transfer completes with every byte
//! in order, before keepalive would have declared the old link dead.
//!
//! The same transfer then crosses a packet-level emulated path (Linux, root:
//! skipped with a reason elsewhere) through a 10 s silent outage and through
//! the client moving to another address.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hawser_blocking::{Acceptor, Config, HealthEvent, LinkEvent, Resumption, RetryPolicy, Session, Stream};
use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;

const TOTAL: u64 = 8 * 1024 * 1024;

/// Keepalive pings only every 10 minutes: the link must be suspected and
/// replaced by liveness from progress alone, or the scenario times out.
fn config() -> Config {
    Config {
        resumption: Some(Resumption::default()),
        keepalive_interval: Some(Duration::from_secs(600)),
        ..Config::default()
    }
}

#[test]
fn a_path_that_goes_silent_is_replaced_before_keepalive_notices() {
    // `RUST_LOG=hawser_blocking=debug,hawser_core=debug` shows the suspicion,
    // the early dials and the takeover.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        scenario();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the scenario finished in time (or panicked)");
}

fn scenario() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    echo_every_stream(listener, config());
    let proxy = KillProxy::start(server_addr).unwrap();
    let session = Session::connect_resumable(proxy.addr(), config(), RetryPolicy::default()).unwrap();
    let (writer, reader) = echo_transfer(session.open_stream().unwrap(), TOTAL, 3);
    while session.stats().bytes_in < TOTAL / 4 {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(proxy.blackhole_all(), 1, "the session's one link went silent");

    writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), TOTAL, "every byte came back, in order");

    let mut suspected = false;
    let mut missed = false;
    while let Ok(Some(event)) = session.next_health_event(Some(Duration::ZERO)) {
        suspected |= matches!(event, HealthEvent::Suspect { .. });
        missed |= matches!(event, HealthEvent::PingMissed { .. });
    }
    let mut resumed = false;
    while let Ok(Some(event)) = session.next_link_event(Some(Duration::ZERO)) {
        resumed |= matches!(event, LinkEvent::Resumed { .. });
    }
    assert!(suspected, "the silent link was suspected");
    assert!(resumed, "the session resumed on a fresh link");
    assert!(!missed, "keepalive never had to declare the link dead");
    assert!(proxy.connections() >= 2, "a fresh link was dialled");
    assert_eq!(session.status().resumes, 1);
}

/// Accepts sessions on `listener`, on threads, and echoes every stream they open.
fn echo_every_stream(listener: TcpListener, config: Config) {
    let incoming = Acceptor::<TcpStream>::new(config).unwrap().serve(listener);
    thread::spawn(move || {
        for session in incoming {
            thread::spawn(move || {
                while let Some(stream) = session.accept() {
                    let (mut from, mut to) = stream.split();
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.finish();
                    });
                }
            });
        }
    });
}

/// Writes `total` patterned bytes into an echo stream and checks every byte
/// that comes back: the writer's thread, and the reader's, which ends with the
/// count of bytes that came back in order.
fn echo_transfer(stream: Stream, total: u64, seed: u64) -> (JoinHandle<()>, JoinHandle<u64>) {
    let (mut from, mut to) = stream.split();
    let writer = thread::spawn(move || {
        let mut pattern = Pattern::new(seed);
        while pattern.position() < total {
            to.write_all(&pattern.take(16 * 1024)).unwrap();
        }
        to.finish().unwrap();
    });
    let reader = thread::spawn(move || {
        let mut check = Pattern::new(seed);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap();
            if n == 0 {
                return check.position();
            }
            check.check(&buf[..n]).unwrap();
        }
    });
    (writer, reader)
}

/// The packet-level scenarios: Linux only, like the emulated path.
#[cfg(target_os = "linux")]
mod emulated_path {
    use super::*;
    use hawser_conformance::path::{EmulatedPath, Outage, PathSpec, Side};
    use std::sync::Arc;

    const EMULATED_TOTAL: u64 = 16 * 1024 * 1024;

    /// A 10 s silent outage on a packet-level path: the transfer carries on
    /// once the path returns.
    #[test]
    fn a_transfer_rides_through_ten_silent_seconds_on_an_emulated_path() {
        ride_through(Outage::Silence(Duration::from_secs(10)));
    }

    /// The client's address changes mid-transfer on a packet-level path: the
    /// session resumes on a link from the new address, every byte in order.
    #[test]
    fn a_transfer_rides_through_the_client_moving_on_an_emulated_path() {
        ride_through(Outage::ClientMoves);
    }

    /// The defaults a user gets, with resumption on.
    fn emulated_config() -> Config {
        Config {
            resumption: Some(Resumption::default()),
            ..Config::default()
        }
    }

    fn ride_through(outage: Outage) {
        let path = match EmulatedPath::new(PathSpec::lan()) {
            Ok(path) => Arc::new(path),
            Err(unavailable) => {
                eprintln!("skipped: {unavailable}");
                return;
            }
        };
        let listener = path.listen(Side::Server, 7000).unwrap();
        let server_addr = listener.local_addr().unwrap();
        echo_every_stream(listener, emulated_config());
        let (done_tx, done_rx) = mpsc::channel();
        let client_path = path.clone();
        thread::spawn(move || {
            let _ = done_tx.send(upload_through(server_addr, &client_path, outage));
        });
        let gap = done_rx
            .recv_timeout(Duration::from_secs(90))
            .expect("the transfer finished in time (or panicked)");
        eprintln!("{outage:?}: the transfer finished {gap:?} after the path was usable again");
    }

    /// The echo transfer, with `outage` imposed a quarter of the way in.
    /// Returns how long after the path was usable again it finished.
    fn upload_through(server_addr: std::net::SocketAddr, path: &Arc<EmulatedPath>, outage: Outage) -> Duration {
        let dialer = path.clone();
        // Each link is made inside the client's namespace.
        let dial = move || {
            let tcp = dialer.connect(Side::Client, server_addr, Duration::from_secs(3))?;
            hawser_blocking::tune_tcp(&tcp)?;
            Ok(tcp)
        };
        let session = Session::connect_resumable_with(dial, emulated_config(), RetryPolicy::default()).unwrap();
        let (writer, reader) = echo_transfer(session.open_stream().unwrap(), EMULATED_TOTAL, 5);
        while session.stats().bytes_in < EMULATED_TOTAL / 4 {
            thread::sleep(Duration::from_millis(10));
        }
        let usable = path.impose(outage);
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), EMULATED_TOTAL, "every byte came back, in order");
        let usable = usable.join().unwrap();
        if matches!(outage, Outage::ClientMoves) {
            assert!(
                session.status().resumes >= 1,
                "the session resumed from the new address"
            );
        }
        assert!(path.stats().dropped_silent > 0, "the outage did silence the path");
        usable.elapsed()
    }
}

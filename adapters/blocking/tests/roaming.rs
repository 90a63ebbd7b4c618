//! A path that goes silent mid-transfer over hawser-blocking: the resumable
//! client suspects the link, dials a fresh one on a thread while the old one
//! still stands, resumes on it, and the transfer completes with every byte
//! in order, before keepalive would have declared the old link dead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hawser_blocking::{Acceptor, Config, HealthEvent, LinkEvent, Resumption, RetryPolicy, Session};
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
    let incoming = Acceptor::<TcpStream>::new(config()).unwrap().serve(listener);
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
    let proxy = KillProxy::start(server_addr).unwrap();
    let session = Session::connect_resumable(proxy.addr(), config(), RetryPolicy::default()).unwrap();
    let stream = session.open_stream().unwrap();
    let (mut from, mut to) = stream.split();
    let writer = thread::spawn(move || {
        let mut pattern = Pattern::new(3);
        while pattern.position() < TOTAL {
            to.write_all(&pattern.take(16 * 1024)).unwrap();
        }
        to.finish().unwrap();
    });
    let reader = thread::spawn(move || {
        let mut check = Pattern::new(3);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap();
            if n == 0 {
                return check.position();
            }
            check.check(&buf[..n]).unwrap();
        }
    });
    while session.stats().bytes_out <= TOTAL / 4 {
        thread::sleep(Duration::from_millis(20));
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

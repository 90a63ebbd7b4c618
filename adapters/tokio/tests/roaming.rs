//! A path that goes silent mid-transfer, as when a client moves to another
//! network: the old connection neither ends nor delivers. The resumable
//! client suspects it within seconds (liveness from progress), dials a fresh
//! link while the old one still stands, resumes on it, and the transfer
//! completes with every byte in order; keepalive never has to declare the
//! old link dead.
//!
//! The same transfer then crosses a packet-level emulated path (Linux, root:
//! skipped with a reason elsewhere) through a 10 s silent outage and through
//! the client moving to another address.

use std::time::Duration;

use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;
use hawser_tokio::{Acceptor, Config, HealthEvent, LinkEvent, Resumption, RetryPolicy, Session, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_goes_silent_is_replaced_before_keepalive_notices() {
    // `RUST_LOG=hawser_driver=debug` shows the suspicion, the early dials and the takeover.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("the scenario finished in time");
}

async fn scenario() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    tokio::spawn(echo_every_stream(listener, config()));
    let proxy = KillProxy::start(server_addr).unwrap();
    let session = Session::connect_resumable(proxy.addr(), config(), RetryPolicy::default())
        .await
        .unwrap();
    let control = session.control();
    let (writer, reader) = echo_transfer(control.open_stream().await.unwrap(), TOTAL, 1);
    // Let a good part of the transfer go, then silence the path.
    while control.stats().bytes_in < TOTAL / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.blackhole_all(), 1, "the session's one link went silent");
    let silenced = std::time::Instant::now();

    writer.await.unwrap();
    assert_eq!(reader.await.unwrap(), TOTAL, "every byte came back, in order");
    eprintln!(
        "transfer done {:?} after the path went silent ({} bytes replayed)",
        silenced.elapsed(),
        control.stats().bytes_replayed
    );

    let mut suspected = false;
    let mut missed = false;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, session.next_health_event()).await {
        suspected |= matches!(event, HealthEvent::Suspect { .. });
        missed |= matches!(event, HealthEvent::PingMissed { .. });
    }
    let mut resumed = false;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, session.next_link_event()).await {
        resumed |= matches!(event, LinkEvent::Resumed { .. });
    }
    assert!(suspected, "the silent link was suspected");
    assert!(resumed, "the session resumed on a fresh link");
    assert!(!missed, "keepalive never had to declare the link dead");
    assert!(proxy.connections() >= 2, "a fresh link was dialled");
    assert_eq!(session.status().resumes, 1);
}

/// Accepts sessions on `listener` and echoes every stream they open.
async fn echo_every_stream(listener: TcpListener, config: Config) {
    let mut incoming = Acceptor::<TcpStream>::new(config).unwrap().serve(listener);
    while let Some(session) = incoming.next().await {
        tokio::spawn(async move {
            while let Some(stream) = session.accept().await {
                tokio::spawn(async move {
                    let (mut from, mut to) = tokio::io::split(stream);
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                    let _ = to.shutdown().await;
                });
            }
        });
    }
}

/// Writes `total` patterned bytes into an echo stream and checks every byte
/// that comes back: the writer's task, and the reader's, which ends with the
/// count of bytes that came back in order.
fn echo_transfer(stream: Stream, total: u64, seed: u64) -> (JoinHandle<()>, JoinHandle<u64>) {
    let (mut from, mut to) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let mut pattern = Pattern::new(seed);
        while pattern.position() < total {
            to.write_all(&pattern.take(16 * 1024)).await.unwrap();
        }
        to.shutdown().await.unwrap();
    });
    let reader = tokio::spawn(async move {
        let mut check = Pattern::new(seed);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap();
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
    use std::net::SocketAddr;
    use std::sync::Arc;

    const EMULATED_TOTAL: u64 = 16 * 1024 * 1024;

    /// A 10 s silent outage on a packet-level path (kernel TCP at both ends,
    /// nothing told to either): the transfer carries on once the path returns.
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
        let server_addr = SocketAddr::from((path.server_ip(), 7000));
        // Each runtime starts inside its side's namespace, so the sockets its
        // tasks make (the listener, every dial) are there.
        let server = path
            .spawn_in(Side::Server, move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                let listener = runtime.block_on(TcpListener::bind(server_addr)).unwrap();
                runtime.spawn(echo_every_stream(listener, emulated_config()));
                runtime
            })
            .join()
            .unwrap();
        let client_path = path.clone();
        let gap = path
            .spawn_in(Side::Client, move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    tokio::time::timeout(
                        Duration::from_secs(90),
                        upload_through(server_addr, &client_path, outage),
                    )
                    .await
                    .expect("the transfer finished in time")
                })
            })
            .join()
            .unwrap();
        eprintln!("{outage:?}: the transfer finished {gap:?} after the path was usable again");
        drop(server);
    }

    /// The echo transfer, with `outage` imposed a quarter of the way in.
    /// Returns how long after the path was usable again it finished.
    async fn upload_through(server_addr: SocketAddr, path: &Arc<EmulatedPath>, outage: Outage) -> Duration {
        let session = Session::connect_resumable(server_addr, emulated_config(), RetryPolicy::default())
            .await
            .unwrap();
        let control = session.control();
        let (writer, reader) = echo_transfer(control.open_stream().await.unwrap(), EMULATED_TOTAL, 2);
        while control.stats().bytes_in < EMULATED_TOTAL / 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let usable = path.impose(outage);
        writer.await.unwrap();
        assert_eq!(reader.await.unwrap(), EMULATED_TOTAL, "every byte came back, in order");
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

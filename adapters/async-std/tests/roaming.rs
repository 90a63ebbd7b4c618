//! A path that goes silent mid-transfer over hawser-async-std: the resumable
//! client suspects the link, dials a fresh one while the old one still
//! stands, resumes on it, and the transfer completes with every byte in
//! order, before keepalive would have declared the old link dead.
//!
//! The same transfer then crosses a packet-level emulated path (Linux, root:
//! skipped with a reason elsewhere) through a 10 s silent outage and through
//! the client moving to another address. Its links are dialled and accepted
//! inside the path's namespaces; the executor runs wherever it runs.
#![cfg(feature = "async-std")]

use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use async_std::task::JoinHandle;
use futures::{AsyncReadExt, AsyncWriteExt};
use hawser_async_std::{Acceptor, Config, HealthEvent, LinkEvent, Resumption, RetryPolicy, Session, Stream};
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

#[async_std::test]
async fn a_path_that_goes_silent_is_replaced_before_keepalive_notices() {
    async_std::future::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("the scenario finished in time");
}

async fn scenario() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    async_std::task::spawn(echo_every_stream(listener, config()));
    let proxy = KillProxy::start(server_addr).unwrap();
    let session = Session::connect_resumable(proxy.addr(), config(), RetryPolicy::default())
        .await
        .unwrap();
    let control = session.control();
    let (writer, reader) = echo_transfer(control.open_stream().await.unwrap(), TOTAL, 2);
    while control.stats().bytes_in < TOTAL / 4 {
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.blackhole_all(), 1, "the session's one link went silent");

    writer.await;
    assert_eq!(reader.await, TOTAL, "every byte came back, in order");

    let mut suspected = false;
    let mut missed = false;
    while let Ok(Some(event)) = async_std::future::timeout(Duration::ZERO, session.next_health_event()).await {
        suspected |= matches!(event, HealthEvent::Suspect { .. });
        missed |= matches!(event, HealthEvent::PingMissed { .. });
    }
    let mut resumed = false;
    while let Ok(Some(event)) = async_std::future::timeout(Duration::ZERO, session.next_link_event()).await {
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
        async_std::task::spawn(async move {
            while let Some(stream) = session.accept().await {
                async_std::task::spawn(async move {
                    let (from, mut to) = stream.split();
                    let _ = futures::io::copy(from, &mut to).await;
                    let _ = to.close().await;
                });
            }
        });
    }
}

/// Writes `total` patterned bytes into an echo stream and checks every byte
/// that comes back: the writer's task, and the reader's, which ends with the
/// count of bytes that came back in order.
fn echo_transfer(stream: Stream, total: u64, seed: u64) -> (JoinHandle<()>, JoinHandle<u64>) {
    let (mut from, mut to) = stream.split();
    let writer = async_std::task::spawn(async move {
        let mut pattern = Pattern::new(seed);
        while pattern.position() < total {
            to.write_all(&pattern.take(16 * 1024)).await.unwrap();
        }
        to.close().await.unwrap();
    });
    let reader = async_std::task::spawn(async move {
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

    /// A 10 s silent outage on a packet-level path: the transfer carries on
    /// once the path returns.
    #[async_std::test]
    async fn a_transfer_rides_through_ten_silent_seconds_on_an_emulated_path() {
        ride_through(Outage::Silence(Duration::from_secs(10))).await;
    }

    /// The client's address changes mid-transfer on a packet-level path: the
    /// session resumes on a link from the new address, every byte in order.
    #[async_std::test]
    async fn a_transfer_rides_through_the_client_moving_on_an_emulated_path() {
        ride_through(Outage::ClientMoves).await;
    }

    /// The defaults a user gets, with resumption on.
    fn emulated_config() -> Config {
        Config {
            resumption: Some(Resumption::default()),
            ..Config::default()
        }
    }

    async fn ride_through(outage: Outage) {
        let path = match EmulatedPath::new(PathSpec::lan()) {
            Ok(path) => Arc::new(path),
            Err(unavailable) => {
                eprintln!("skipped: {unavailable}");
                return;
            }
        };
        let listener = path.listen(Side::Server, 7000).unwrap();
        let server_addr = listener.local_addr().unwrap();
        async_std::task::spawn(echo_every_stream(TcpListener::from(listener), emulated_config()));
        let gap = async_std::future::timeout(Duration::from_secs(90), upload_through(server_addr, &path, outage))
            .await
            .expect("the transfer finished in time");
        eprintln!("{outage:?}: the transfer finished {gap:?} after the path was usable again");
    }

    /// The echo transfer, with `outage` imposed a quarter of the way in.
    /// Returns how long after the path was usable again it finished.
    async fn upload_through(server_addr: SocketAddr, path: &Arc<EmulatedPath>, outage: Outage) -> Duration {
        let dialer = path.clone();
        // Each link is made inside the client's namespace, on a blocking thread.
        let dial = move || {
            let path = dialer.clone();
            async move {
                let tcp = async_std::task::spawn_blocking(move || {
                    path.connect(Side::Client, server_addr, Duration::from_secs(3))
                })
                .await?;
                hawser_async_std::tune_tcp(&tcp)?;
                Ok::<_, std::io::Error>(TcpStream::from(tcp))
            }
        };
        let session = Session::connect_resumable_with(dial, emulated_config(), RetryPolicy::default())
            .await
            .unwrap();
        let control = session.control();
        let (writer, reader) = echo_transfer(control.open_stream().await.unwrap(), EMULATED_TOTAL, 4);
        while control.stats().bytes_in < EMULATED_TOTAL / 4 {
            async_std::task::sleep(Duration::from_millis(10)).await;
        }
        let usable = path.impose(outage);
        writer.await;
        assert_eq!(reader.await, EMULATED_TOTAL, "every byte came back, in order");
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

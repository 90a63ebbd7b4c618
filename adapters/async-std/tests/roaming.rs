//! A path that goes silent mid-transfer over hawser-async-std: the resumable
//! client suspects the link, dials a fresh one while the old one still
//! stands, resumes on it, and the transfer completes with every byte in
//! order, before keepalive would have declared the old link dead.
#![cfg(feature = "async-std")]

use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use futures::{AsyncReadExt, AsyncWriteExt};
use hawser_async_std::{Acceptor, Config, HealthEvent, LinkEvent, Resumption, RetryPolicy, Session};
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
    let mut incoming = Acceptor::<TcpStream>::new(config()).unwrap().serve(listener);
    async_std::task::spawn(async move {
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
    });
    let proxy = KillProxy::start(server_addr).unwrap();
    let session = Session::connect_resumable(proxy.addr(), config(), RetryPolicy::default())
        .await
        .unwrap();
    let control = session.control();
    let stream = control.open_stream().await.unwrap();
    let (mut from, mut to) = stream.split();
    let writer = async_std::task::spawn(async move {
        let mut pattern = Pattern::new(2);
        while pattern.position() < TOTAL {
            to.write_all(&pattern.take(16 * 1024)).await.unwrap();
        }
        to.close().await.unwrap();
    });
    let reader = async_std::task::spawn(async move {
        let mut check = Pattern::new(2);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap();
            if n == 0 {
                return check.position();
            }
            check.check(&buf[..n]).unwrap();
        }
    });
    while control.stats().bytes_out <= TOTAL / 4 {
        async_std::task::sleep(Duration::from_millis(20)).await;
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

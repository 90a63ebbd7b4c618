//! A path that goes silent mid-transfer, as when a client moves to another
//! network: the old connection neither ends nor delivers. The resumable
//! client suspects it within seconds (liveness from progress), dials a fresh
//! link while the old one still stands, resumes on it, and the transfer
//! completes with every byte in order; keepalive never has to declare the
//! old link dead.

use std::time::Duration;

use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;
use hawser_tokio::{Acceptor, Config, HealthEvent, LinkEvent, Resumption, RetryPolicy, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    let mut incoming = Acceptor::<TcpStream>::new(config()).unwrap().serve(listener);
    tokio::spawn(async move {
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
    });
    let proxy = KillProxy::start(server_addr).unwrap();
    let session = Session::connect_resumable(proxy.addr(), config(), RetryPolicy::default())
        .await
        .unwrap();
    let control = session.control();
    let stream = control.open_stream().await.unwrap();
    let (mut from, mut to) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let mut pattern = Pattern::new(1);
        while pattern.position() < TOTAL {
            to.write_all(&pattern.take(16 * 1024)).await.unwrap();
        }
        to.shutdown().await.unwrap();
    });
    let reader = tokio::spawn(async move {
        let mut check = Pattern::new(1);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap();
            if n == 0 {
                return check.position();
            }
            check.check(&buf[..n]).unwrap();
        }
    });
    // Let a good part of the transfer go, then silence the path.
    while session.status().streams_open > 0 && proxy.connections() == 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if control.stats().bytes_out > TOTAL / 4 {
            break;
        }
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

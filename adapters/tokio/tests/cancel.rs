//! Reads, writes, opens and accepts are cancel-safe: when a timeout drops one of
//! them mid-way, no byte is lost or delivered twice and no stream is lost or
//! opened twice. Every test checks that cancellations really happened.

use std::time::Duration;

use hawser_conformance::interop::link::Pattern;
use hawser_tokio::{Config, Listener, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const TINY: Duration = Duration::from_micros(20);

/// A connected pair whose client has the server's hello (and with it the
/// server's stream limit: before it, opens beyond the limit are refused, as
/// PROTOCOL.md 3.3 says).
async fn pair(client: Config, server: Config) -> (Session, Session) {
    let listener = Listener::bind("127.0.0.1:0", server).await.unwrap();
    let client = Session::connect(listener.local_addr().unwrap(), client).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.ping().unwrap();
    while !matches!(
        client.next_health_event().await,
        Some(hawser_tokio::HealthEvent::Pong { .. })
    ) {}
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cut_short_by_a_timeout_lose_nothing() {
    let (client, server) = pair(Config::default(), Config::default()).await;
    const LEN: usize = 8 << 20;
    let writer = tokio::spawn(async move {
        let mut stream = client.open_stream().await.unwrap();
        let mut pattern = Pattern::new(1);
        while pattern.position() < LEN as u64 {
            stream.write_all(&pattern.take(64 * 1024)).await.unwrap();
            // Now and then the reader must wait, so that timeouts cut reads short.
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        stream.shutdown().await.unwrap();
        client
    });
    let mut stream = server.accept().await.unwrap();
    let mut check = Pattern::new(1);
    let mut buf = vec![0u8; 16 * 1024];
    let mut cancelled = 0;
    loop {
        match timeout(TINY, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => check.check(&buf[..n]).unwrap(),
            Ok(Err(err)) => panic!("read failed: {err}"),
            Err(_) => {
                cancelled += 1;
                // A timer that fired at once cancels without yielding.
                tokio::task::yield_now().await;
            }
        }
    }
    assert_eq!(check.position(), LEN as u64);
    assert!(cancelled > 0, "no read was cancelled");
    drop(writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_cut_short_by_a_timeout_send_exactly_what_they_report() {
    // A small window and a slow reader, so that writes wait and get cancelled.
    let config = Config {
        stream_send_buffer: 64 * 1024,
        ..Config::default()
    };
    let (client, server) = pair(config, Config::default()).await;
    const LEN: usize = 4 << 20;
    let data = Pattern::new(2).take(LEN);
    let reader = tokio::spawn(async move {
        let mut stream = server.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        (got, server)
    });
    let mut stream = client.open_stream().await.unwrap();
    let mut sent = 0;
    let mut cancelled = 0;
    while sent < LEN {
        match timeout(TINY, stream.write(&data[sent..])).await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(err)) => panic!("write failed: {err}"),
            Err(_) => {
                cancelled += 1;
                // A timer that fired at once cancels without yielding.
                tokio::task::yield_now().await;
            }
        }
    }
    stream.shutdown().await.unwrap();
    let (got, _server) = reader.await.unwrap();
    assert!(got == data, "received {} bytes, sent {}", got.len(), data.len());
    assert!(cancelled > 0, "no write was cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_and_opens_cut_short_by_a_timeout_lose_no_stream() {
    // Two streams at a time: opens beyond that wait, and get cancelled.
    let server_config = Config {
        max_streams: 2,
        ..Config::default()
    };
    let (client, server) = pair(Config::default(), server_config).await;
    const STREAMS: u32 = 100;
    let acceptor = tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut cancelled = 0;
        while ids.len() < STREAMS as usize {
            match timeout(TINY, server.accept()).await {
                Ok(Some(mut stream)) => {
                    let mut byte = Vec::new();
                    stream.read_to_end(&mut byte).await.unwrap();
                    assert_eq!(byte, [7]);
                    ids.push(stream.id());
                    if ids.len() == 2 {
                        // Hold both of the server's stream slots for a while,
                        // so that the client's next opens must wait.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(None) => panic!("the session ended"),
                Err(_) => {
                    cancelled += 1;
                    // A timer that fired at once cancels without yielding.
                    tokio::task::yield_now().await;
                }
            }
        }
        (ids, cancelled, server)
    });
    // Accepts wait (and some time out) until the first open.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut opened = Vec::new();
    let mut cancelled = 0;
    while opened.len() < STREAMS as usize {
        match timeout(TINY, client.open_stream()).await {
            Ok(Ok(mut stream)) => {
                stream.write_all(&[7]).await.unwrap();
                stream.shutdown().await.unwrap();
                opened.push(stream.id());
            }
            Ok(Err(err)) => panic!("open failed: {err}"),
            Err(_) => {
                cancelled += 1;
                // A timer that fired at once cancels without yielding.
                tokio::task::yield_now().await;
            }
        }
    }
    let (mut accepted, accept_cancelled, _server) = timeout(Duration::from_secs(30), acceptor).await.unwrap().unwrap();
    accepted.sort();
    let mut expected = opened.clone();
    expected.sort();
    assert_eq!(accepted, expected, "every opened stream was accepted once");
    assert!(
        cancelled > 0 && accept_cancelled > 0,
        "opens cancelled {cancelled}, accepts {accept_cancelled}"
    );
}

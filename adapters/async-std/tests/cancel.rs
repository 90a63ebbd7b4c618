//! Reads, writes, opens and accepts are cancel-safe: when a timeout drops one of
//! them mid-way, no byte is lost or delivered twice and no stream is lost or
//! opened twice. Every test checks that cancellations really happened.
#![cfg(feature = "async-std")]

use std::time::Duration;

use async_std::future::timeout;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use hawser_async_std::{Config, Listener, Session};
use hawser_conformance::interop::link::Pattern;

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
        Some(hawser_async_std::HealthEvent::Pong { .. })
    ) {}
    (client, server)
}

#[test]
fn reads_and_writes_cut_short_by_a_timeout_lose_nothing() {
    // Whether a 20 µs timeout cuts a read or a write short depends on how the
    // threads are scheduled; on a loaded machine one transfer may see no cut of
    // one kind. Every transfer must arrive intact, and within a few transfers
    // both kinds of cut must have happened.
    let (mut reads_cut, mut writes_cut) = (0, 0);
    for _ in 0..5 {
        let (reads, writes) = transfer_with_cuts();
        reads_cut += reads;
        writes_cut += writes;
        if reads_cut > 0 && writes_cut > 0 {
            return;
        }
    }
    panic!("reads cancelled {reads_cut}, writes {writes_cut} in five transfers");
}

/// 4 MiB through a stream whose every read and write races a tiny timeout;
/// checks the bytes and returns how many reads and writes were cut short.
fn transfer_with_cuts() -> (usize, usize) {
    async_std::task::block_on(async {
        let config = Config {
            stream_send_buffer: 64 * 1024,
            ..Config::default()
        };
        let (client, server) = pair(config, Config::default()).await;
        const LEN: usize = 4 << 20;
        let data = Pattern::new(3).take(LEN);
        let sent_data = data.clone();
        let writer = async_std::task::spawn(async move {
            let mut stream = client.open_stream().await.unwrap();
            let mut sent = 0;
            let mut cancelled = 0;
            while sent < LEN {
                match timeout(TINY, stream.write(&sent_data[sent..])).await {
                    Ok(Ok(n)) => sent += n,
                    Ok(Err(err)) => panic!("write failed: {err}"),
                    Err(_) => {
                        cancelled += 1;
                        // A timer that fired at once cancels without yielding.
                        async_std::task::yield_now().await;
                    }
                }
            }
            stream.close().await.unwrap();
            (cancelled, client)
        });
        let mut stream = server.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut cancelled = 0;
        loop {
            match timeout(TINY, stream.read(&mut buf)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(err)) => panic!("read failed: {err}"),
                Err(_) => {
                    cancelled += 1;
                    // A timer that fired at once cancels without yielding.
                    async_std::task::yield_now().await;
                }
            }
        }
        let (write_cancelled, _client) = writer.await;
        assert!(got == data, "received {} bytes, sent {}", got.len(), data.len());
        (cancelled, write_cancelled)
    })
}

#[test]
fn accepts_and_opens_cut_short_by_a_timeout_lose_no_stream() {
    async_std::task::block_on(async {
        let server_config = Config {
            max_streams: 2,
            ..Config::default()
        };
        let (client, server) = pair(Config::default(), server_config).await;
        const STREAMS: usize = 100;
        let acceptor = async_std::task::spawn(async move {
            let mut ids = Vec::new();
            let mut cancelled = 0;
            while ids.len() < STREAMS {
                match timeout(TINY, server.accept()).await {
                    Ok(Some(mut stream)) => {
                        let mut byte = Vec::new();
                        stream.read_to_end(&mut byte).await.unwrap();
                        assert_eq!(byte, [7]);
                        ids.push(stream.id());
                        if ids.len() == 2 {
                            // Hold both of the server's stream slots for a
                            // while, so that the client's next opens must wait.
                            async_std::task::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Ok(None) => panic!("the session ended"),
                    Err(_) => {
                        cancelled += 1;
                        // A timer that fired at once cancels without yielding.
                        async_std::task::yield_now().await;
                    }
                }
            }
            (ids, cancelled, server)
        });
        // Accepts wait (and some time out) until the first open.
        async_std::task::sleep(Duration::from_millis(20)).await;
        let mut opened = Vec::new();
        let mut cancelled = 0;
        while opened.len() < STREAMS {
            match timeout(TINY, client.open_stream()).await {
                Ok(Ok(mut stream)) => {
                    stream.write_all(&[7]).await.unwrap();
                    stream.close().await.unwrap();
                    opened.push(stream.id());
                }
                Ok(Err(err)) => panic!("open failed: {err}"),
                Err(_) => {
                    cancelled += 1;
                    // A timer that fired at once cancels without yielding.
                    async_std::task::yield_now().await;
                }
            }
        }
        let (mut accepted, accept_cancelled, _server) = timeout(Duration::from_secs(30), acceptor)
            .await
            .expect("every opened stream is accepted");
        accepted.sort();
        opened.sort();
        assert_eq!(accepted, opened, "every opened stream was accepted once");
        assert!(
            cancelled > 0 && accept_cancelled > 0,
            "opens cancelled {cancelled}, accepts {accept_cancelled}"
        );
    });
}

//! A session's life as a program sees it: a server that has seen its clients
//! come and go holds nothing for them, and a session whose handles are all
//! dropped ends. The live-session count is process-wide, so these tests run one
//! at a time.
#![cfg(feature = "async-std")]

use std::sync::Mutex;
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use futures_io::AsyncRead;
use hawser_async_std::{live_sessions, Config, Session};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

async fn sessions_fall_to_zero() -> usize {
    for _ in 0..500 {
        if live_sessions() == 0 {
            break;
        }
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    live_sessions()
}

async fn read_to_end(mut stream: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_read(cx, &mut buf)).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn connections_that_connect_and_close_leave_no_session_behind() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    async_std::task::block_on(async {
        for config in [Config::yamux(), Config::default()] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = async_std::task::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let session = Session::server(tcp, config.clone()).expect("valid config");
                    async_std::task::spawn(async move { while session.accept().await.is_some() {} });
                }
            });
            for _round in 0..3 {
                let mut links = Vec::new();
                for _ in 0..200 {
                    links.push(TcpStream::connect(addr).await.unwrap());
                }
                async_std::task::sleep(Duration::from_millis(100)).await;
                assert!(live_sessions() > 0, "the server made no sessions");
                drop(links);
                assert_eq!(sessions_fall_to_zero().await, 0, "sessions outlived their closed links");
            }
            server.cancel().await;
        }
    });
}

#[test]
fn dropping_every_handle_ends_the_session_after_its_streams_drain() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    async_std::task::block_on(async {
        for config in [Config::yamux(), Config::default()] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let server = Session::server(accepted, config.clone()).unwrap();
            let client = Session::client(tcp, config).unwrap();

            let mut stream = client.open_stream().await.unwrap();
            let data = vec![7u8; 100_000];
            let mut written = 0;
            while written < data.len() {
                written += std::future::poll_fn(|cx| {
                    futures_io::AsyncWrite::poll_write(std::pin::Pin::new(&mut stream), cx, &data[written..])
                })
                .await
                .unwrap();
            }
            drop(client);
            drop(stream);

            let inbound = async_std::future::timeout(Duration::from_secs(10), server.accept())
                .await
                .expect("the stream arrives in time")
                .expect("the session is open");
            assert_eq!(read_to_end(inbound).await.unwrap(), data);
            let next = async_std::future::timeout(Duration::from_secs(10), server.accept()).await;
            assert!(matches!(next, Ok(None)), "the server saw the client go away");
            drop(server);
            assert_eq!(sessions_fall_to_zero().await, 0, "both ends let go of their sessions");
        }
    });
}

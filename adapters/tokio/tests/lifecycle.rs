//! A session's life as a program sees it: a server that has seen its clients
//! come and go holds nothing for them, and a session whose handles are all
//! dropped ends. The live-session count is process-wide, so these tests run one
//! at a time.

use std::sync::Mutex;
use std::time::Duration;

use hawser_tokio::{live_sessions, Config, Session};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Serves sessions the way the echo example does: a task per link that accepts
/// streams until the session ends.
async fn serve(listener: TcpListener, config: Config) {
    while let Ok((tcp, _)) = listener.accept().await {
        let session = Session::server(tcp, config.clone()).expect("valid config");
        tokio::spawn(async move { while session.accept().await.is_some() {} });
    }
}

/// Waits up to 5 s for the live-session count to fall to `expected`; returns
/// the count it saw last.
async fn sessions_fall_to(expected: usize) -> usize {
    for _ in 0..500 {
        if live_sessions() <= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live_sessions()
}

/// Runs `test` on a runtime of its own, one test at a time.
fn serially(test: impl std::future::Future<Output = ()>) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(test);
}

#[test]
fn connections_that_connect_and_close_leave_no_session_behind() {
    serially(connect_and_close());
}

async fn connect_and_close() {
    for config in [Config::yamux(), Config::default()] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, config));
        for _round in 0..3 {
            let mut links = Vec::new();
            for _ in 0..200 {
                links.push(TcpStream::connect(addr).await.unwrap());
            }
            // Let the server make its sessions before the links go.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(live_sessions() > 0, "the server made no sessions");
            drop(links);
            assert_eq!(sessions_fall_to(0).await, 0, "sessions outlived their closed links");
        }
        server.abort();
    }
}

#[test]
fn dropping_every_handle_ends_the_session_after_its_streams_drain() {
    serially(drop_every_handle());
}

async fn drop_every_handle() {
    for config in [Config::yamux(), Config::default()] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let server = Session::server(accepted, config.clone()).unwrap();
        let client = Session::client(tcp, config).unwrap();

        // The last handles to go are a control handle and a stream with data
        // still to deliver: the data arrives, then the session ends.
        let control = client.control();
        drop(client);
        let mut stream = control.open_stream().await.unwrap();
        stream.write_all(&[7u8; 100_000]).await.unwrap();
        drop(control);
        drop(stream);

        let mut inbound = tokio::time::timeout(Duration::from_secs(10), server.accept())
            .await
            .expect("the stream arrives")
            .expect("the session is open");
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut inbound, &mut got)
            .await
            .unwrap();
        assert_eq!(got, vec![7u8; 100_000]);
        let next = tokio::time::timeout(Duration::from_secs(10), server.accept()).await;
        assert!(matches!(next, Ok(None)), "the server saw the client go away");
        drop((inbound, server));
        assert_eq!(sessions_fall_to(0).await, 0, "both ends let go of their sessions");
    }
}

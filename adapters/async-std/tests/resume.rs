//! Resumable sessions over hawser-async-std, through a proxy that kills the
//! connection again and again.
#![cfg(feature = "async-std")]

use std::sync::Arc;
use std::time::Duration;

use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use hawser_async_std::{Accepted, Acceptor, Config, Resumption, RetryPolicy, Session};
use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;

const STREAMS: u64 = 100;
const PER_STREAM: usize = 256 * 1024;
const KILLS: u64 = 20;
const REPLAY_BUFFER: usize = 1024 * 1024;

fn config() -> Config {
    Config {
        resumption: Some(Resumption {
            replay_buffer: REPLAY_BUFFER,
            ..Resumption::default()
        }),
        ..Config::default()
    }
}

async fn finish(stream: &mut hawser_async_std::Stream) -> std::io::Result<()> {
    std::future::poll_fn(|cx| futures_io::AsyncWrite::poll_close(std::pin::Pin::new(&mut *stream), cx)).await
}

async fn serve(listener: TcpListener, acceptor: Acceptor<TcpStream>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        async_std::task::spawn(async move {
            if let Ok(Accepted::New(session)) = acceptor.accept(tcp).await {
                while let Some(mut stream) = session.accept().await {
                    async_std::task::spawn(async move {
                        let mut buf = vec![0u8; 32 * 1024];
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) => break,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                                Err(_) => return,
                            }
                        }
                        let _ = finish(&mut stream).await;
                    });
                }
            }
        });
    }
}

#[async_std::test]
async fn a_hundred_streams_survive_twenty_link_kills() {
    async_std::future::timeout(Duration::from_secs(90), scenario())
        .await
        .expect("the scenario finished in time");
}

async fn scenario() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    async_std::task::spawn(serve(listener, Acceptor::new(config()).unwrap()));
    let proxy = Arc::new(KillProxy::start(server_addr).unwrap());
    let proxy_addr = proxy.addr();
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let session = Session::connect_resumable(proxy_addr, config(), retry).await.unwrap();
    assert!(session.is_resumable(), "connect_resumable returned before the ticket");
    let killer = {
        let proxy = proxy.clone();
        async_std::task::spawn(async move {
            let mut step = 0u64;
            loop {
                step += 1;
                async_std::task::sleep(Duration::from_millis(20 + (step * 37) % 40)).await;
                proxy.kill_all();
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let mut stream = session.open_stream().await.unwrap();
        let proxy = proxy.clone();
        let control = session.control();
        tasks.push(async_std::task::spawn(async move {
            let mut pattern = Pattern::new(i);
            while pattern.position() < PER_STREAM as u64 {
                if pattern.position() + 16 * 1024 >= PER_STREAM as u64 {
                    // The last piece waits until the link has been killed often enough.
                    while proxy.kills() < KILLS && !control.is_closed() {
                        async_std::task::sleep(Duration::from_millis(10)).await;
                    }
                }
                stream.write_all(&pattern.take(16 * 1024)).await.unwrap();
            }
            finish(&mut stream).await.unwrap();
            let mut check = Pattern::new(i);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                check.check(&buf[..n]).unwrap_or_else(|why| panic!("stream {i}: {why}"));
            }
            assert_eq!(check.position(), PER_STREAM as u64, "stream {i}");
        }));
    }
    for task in tasks {
        task.await;
    }
    killer.cancel().await;
    let stats = session.stats();
    let kills = proxy.kills();
    assert!(kills >= KILLS, "{kills} kills");
    assert!(
        stats.resumes >= 1 && stats.resumes <= kills,
        "{} resumes after {kills} kills",
        stats.resumes
    );
    assert!(
        stats.replay_peak <= REPLAY_BUFFER as u64,
        "replay peak {} over the bound {REPLAY_BUFFER}",
        stats.replay_peak
    );
    eprintln!(
        "kills {kills}, resumes {}, reconnect attempts {}, bytes replayed {}, replay peak {} of {REPLAY_BUFFER}",
        stats.resumes,
        session.reconnects(),
        stats.bytes_replayed,
        stats.replay_peak
    );
    session.close(hawser_async_std::GoAwayCode::NORMAL);
}

#[async_std::test]
async fn a_loss_only_the_client_sees_is_resumed_at_once_by_taking_over() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new(config()).unwrap();
    async_std::task::spawn(serve(listener, acceptor.clone()));
    let proxy = KillProxy::start(server_addr).unwrap();
    let proxy_addr = proxy.addr();
    let session = Session::connect_resumable(proxy_addr, config(), RetryPolicy::default())
        .await
        .unwrap();
    assert!(session.is_resumable(), "connect_resumable returned before the ticket");
    let mut stream = session.open_stream().await.unwrap();
    let mut pattern = Pattern::new(7);
    let mut check = Pattern::new(7);
    let mut buf = vec![0u8; 16 * 1024];
    for round in 0..6 {
        if round % 2 == 1 {
            // The server's side of the link stays open and silent: it would
            // notice only when keepalive fails, a minute or more from now.
            assert_eq!(proxy.cut_client_sides(), 1);
        }
        stream.write_all(&pattern.take(16 * 1024)).await.unwrap();
        async_std::future::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
            .await
            .expect("the session resumed without waiting for the server's keepalive")
            .unwrap();
        check.check(&buf).unwrap();
    }
    assert_eq!(session.stats().resumes, 3);
    let stats = acceptor.stats();
    assert_eq!((stats.sessions, stats.detached, stats.refused), (1, 0, 0), "{stats:?}");
    session.close(hawser_async_std::GoAwayCode::NORMAL);
}

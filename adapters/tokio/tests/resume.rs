//! Resumable sessions over hawser-tokio, through a proxy that kills the
//! connection again and again.

use std::sync::Arc;
use std::time::Duration;

use hawser_conformance::faults::KillProxy;
use hawser_conformance::interop::link::Pattern;
use hawser_tokio::{Accepted, Acceptor, Config, LinkEvent, Resumption, RetryPolicy, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// Serves every stream of every session: echoes until the end.
async fn serve(listener: TcpListener, acceptor: Acceptor<TcpStream>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(Accepted::New(session)) = acceptor.accept(tcp).await {
                while let Some(stream) = session.accept().await {
                    tokio::spawn(async move {
                        let (mut reader, mut writer) = tokio::io::split(stream);
                        if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                            let _ = writer.shutdown().await;
                        }
                    });
                }
            }
        });
    }
}

#[test]
fn a_hundred_streams_survive_twenty_link_kills() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), scenario())
            .await
            .expect("the scenario finished in time");
    });
}

async fn scenario() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Acceptor::new(config()).unwrap()));
    let proxy = Arc::new(KillProxy::start(server_addr).unwrap());
    let proxy_addr = proxy.addr();
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let session = Session::connect_resumable(move || TcpStream::connect(proxy_addr), config(), retry)
        .await
        .unwrap();

    // A link lost during the handshake ends the session; connect_resumable
    // returns only once the client has its ticket, so cutting may start at once.
    assert!(session.is_resumable(), "connect_resumable returned before the ticket");
    // The killer: every 20-60 ms, while the transfer runs.
    let killer_proxy = proxy.clone();
    let killer = tokio::spawn(async move {
        let mut step = 0u64;
        loop {
            step += 1;
            tokio::time::sleep(Duration::from_millis(20 + (step * 37) % 40)).await;
            killer_proxy.kill_all();
        }
    });

    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let mut stream = session.open_stream().await.unwrap();
        let proxy = proxy.clone();
        let control = session.control();
        tasks.push(tokio::spawn(async move {
            let (mut reader, mut writer) = tokio::io::split(&mut stream);
            let writing = async {
                let mut pattern = Pattern::new(i);
                while pattern.position() < PER_STREAM as u64 {
                    // The last piece waits until the link has been killed often enough.
                    if pattern.position() + 16 * 1024 >= PER_STREAM as u64 {
                        while proxy.kills() < KILLS && !control.is_closed() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    writer.write_all(&pattern.take(16 * 1024)).await?;
                }
                writer.shutdown().await
            };
            let reading = async {
                let mut pattern = Pattern::new(i);
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<u64, std::io::Error>(pattern.position());
                    }
                    pattern
                        .check(&buf[..n])
                        .map_err(|why| std::io::Error::other(format!("stream {i}: {why}")))?;
                }
            };
            let (written, read) = tokio::join!(writing, reading);
            written.unwrap();
            let read = read.unwrap();
            assert_eq!(read, PER_STREAM as u64, "stream {i} echoed {read} bytes");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    killer.abort();

    let stats = session.stats();
    let kills = proxy.kills();
    assert!(kills >= KILLS, "{kills} kills");
    // A kill that lands during a resume handshake costs that attempt, not a resume.
    assert!(
        stats.resumes >= 1 && stats.resumes <= kills,
        "{} resumes after {kills} kills",
        stats.resumes
    );
    assert!(session.reconnects() >= stats.resumes);
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
    let mut saw_lost = false;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(1), session.next_link_event()).await {
        saw_lost |= event == LinkEvent::Lost;
    }
    assert!(saw_lost);
    session.close(hawser_tokio::GoAwayCode::NORMAL);
}

/// Sends `request` as a new link's opening to `addr`; returns the go-away code
/// the acceptor answers with.
async fn refused_with(addr: std::net::SocketAddr, opening: &[u8]) -> u32 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(opening).await.unwrap();
    let mut answer = [0u8; 12];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[1], 3, "a go-away");
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the refused link is closed after the go-away");
    u32::from_be_bytes(answer[8..12].try_into().unwrap())
}

#[test]
fn bad_resume_attempts_are_refused_and_do_not_disturb_the_session() {
    use hawser_core::resume::{ResumeRequest, ResumeToken, Ticket};
    use hawser_tokio::GoAwayCode;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = outcomes.clone();
        let acceptor = Acceptor::new(config()).unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(Accepted::New(session)) => {
                            while let Some(mut stream) = session.accept().await {
                                let mut buf = Vec::new();
                                let _ = stream.read_to_end(&mut buf).await;
                                let _ = stream.write_all(&buf).await;
                                let _ = stream.shutdown().await;
                            }
                        }
                        Ok(other) => seen.lock().unwrap().push(format!("{other:?}")),
                        Err(err) => seen.lock().unwrap().push(format!("error {:?}", err.kind())),
                    }
                });
            }
        });
        let client = Session::connect_resumable(move || TcpStream::connect(addr), config(), RetryPolicy::default())
            .await
            .unwrap();
        assert!(client.is_resumable(), "connect_resumable returned before the ticket");
        let guess = |id: u64, token: [u8; 16]| {
            ResumeRequest {
                ticket: Ticket {
                    id,
                    token: ResumeToken::from_bytes(token),
                },
                received: 0,
            }
            .encode()
        };
        // Ids are random and every miss gets the same answer.
        assert_eq!(
            refused_with(addr, &guess(1, [0; 16])).await,
            GoAwayCode::RESUME_NO_SUCH_SESSION.0
        );
        assert_eq!(
            refused_with(addr, &guess(99, [0; 16])).await,
            GoAwayCode::RESUME_NO_SUCH_SESSION.0
        );
        let mut other_revision = guess(1, [0; 16]);
        other_revision[12 + 5] = 2;
        assert_eq!(
            refused_with(addr, &other_revision).await,
            GoAwayCode::HANDSHAKE_FAILED.0
        );

        // The real session never noticed.
        let mut stream = client.open_stream().await.unwrap();
        stream.write_all(b"still mine").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"still mine");
        assert_eq!(client.stats().resumes, 0);
        assert!(!client.is_detached());
        let outcomes = outcomes.lock().unwrap().clone();
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    });
}

#[test]
fn a_loss_only_the_client_sees_is_resumed_at_once_by_taking_over() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(config()).unwrap();
        tokio::spawn(serve(listener, acceptor.clone()));
        let proxy = KillProxy::start(server_addr).unwrap();
        let proxy_addr = proxy.addr();
        let session =
            Session::connect_resumable(move || TcpStream::connect(proxy_addr), config(), RetryPolicy::default())
                .await
                .unwrap();
        let stream = session.open_stream().await.unwrap();
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut pattern = Pattern::new(7);
        let mut check = Pattern::new(7);
        let mut buf = vec![0u8; 16 * 1024];
        for round in 0..6 {
            if round % 2 == 1 {
                // The server's side of the link stays open and silent: it would
                // notice only when keepalive fails, a minute or more from now.
                assert_eq!(proxy.cut_client_sides(), 1);
            }
            writer.write_all(&pattern.take(16 * 1024)).await.unwrap();
            let echoed = async {
                let mut got = 0;
                while got < buf.len() {
                    let n = reader.read(&mut buf[got..]).await?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                    }
                    got += n;
                }
                Ok(())
            };
            tokio::time::timeout(Duration::from_secs(10), echoed)
                .await
                .expect("the session resumed without waiting for the server's keepalive")
                .unwrap();
            check.check(&buf).unwrap();
        }
        assert_eq!(session.stats().resumes, 3);
        let stats = acceptor.stats();
        assert_eq!((stats.sessions, stats.detached, stats.refused), (1, 0, 0), "{stats:?}");
        session.close(hawser_tokio::GoAwayCode::NORMAL);
    });
}

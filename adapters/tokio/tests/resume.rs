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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
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
    let runtime = runtime();
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
    let session = Session::connect_resumable(proxy_addr, config(), retry).await.unwrap();

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

    let runtime = runtime();
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
        let client = Session::connect_resumable(addr, config(), RetryPolicy::default())
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
    let runtime = runtime();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(config()).unwrap();
        tokio::spawn(serve(listener, acceptor.clone()));
        let proxy = KillProxy::start(server_addr).unwrap();
        let proxy_addr = proxy.addr();
        let session = Session::connect_resumable(proxy_addr, config(), RetryPolicy::default())
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

/// A link for the takeover race below: one end of an in-memory pipe whose
/// reads and writes the test can hold (pending), fail, or precede with a step
/// of its own, run inside the driver's poll.
struct GatedLink {
    prefix: Vec<u8>,
    inner: tokio::io::DuplexStream,
    gate: Arc<std::sync::Mutex<Gate>>,
}

#[derive(Default)]
struct Gate {
    hold: bool,
    fail: bool,
    waker: Option<std::task::Waker>,
    before_next_io: Option<Box<dyn FnOnce() + Send>>,
}

impl Gate {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl GatedLink {
    fn pair() -> (GatedLink, GatedLink) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let link = |inner| GatedLink {
            prefix: Vec::new(),
            inner,
            gate: Arc::default(),
        };
        (link(a), link(b))
    }

    /// Held: pending. Failed: an error. Otherwise the step the test set runs
    /// first, and the I/O goes ahead.
    fn check(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let mut gate = self.gate.lock().unwrap();
        if gate.fail {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        if gate.hold {
            gate.waker = Some(cx.waker().clone());
            return std::task::Poll::Pending;
        }
        let step = gate.before_next_io.take();
        drop(gate);
        if let Some(step) = step {
            step();
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncRead for GatedLink {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.check(cx))?;
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for GatedLink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.check(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn echo_round(
    writer: &mut (impl AsyncWriteExt + Unpin),
    reader: &mut (impl AsyncReadExt + Unpin),
    chunk: &[u8],
    buf: &mut [u8],
) -> std::io::Result<()> {
    writer.write_all(chunk).await?;
    reader.read_exact(buf).await?;
    Ok(())
}

/// Polls `future` once, outside any executor: for a step that must complete
/// at once (everything it reads is already there).
fn complete_now<F: std::future::Future>(future: F) -> F::Output {
    struct NoWake;
    impl std::task::Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(NoWake));
    let mut cx = std::task::Context::from_waker(&waker);
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the step could not complete at once"),
    }
}

/// The race the attack soak once hit: the server has not yet noticed that a
/// link died when the client's resume takes the session over onto a new link;
/// the old link's failure then shows up in a read already under way. That
/// failure must not detach the session from the link it now uses.
#[test]
fn an_old_link_failing_after_a_takeover_leaves_the_resumed_session_alone() {
    let runtime = runtime();
    runtime.block_on(async {
        let acceptor = Acceptor::<GatedLink>::new(config()).unwrap();
        // Each dial makes a pipe; the server's ends (and the client's gates) come here.
        let (dialled_tx, mut dialled) =
            tokio::sync::mpsc::unbounded_channel::<(GatedLink, Arc<std::sync::Mutex<Gate>>)>();
        let dial = move || {
            let (client_end, server_end) = GatedLink::pair();
            let _ = dialled_tx.send((server_end, client_end.gate.clone()));
            async move { Ok(client_end) }
        };
        let connecting = tokio::spawn(Session::connect_resumable_with(dial, config(), RetryPolicy::default()));
        let (first_link, first_client_gate) = dialled.recv().await.unwrap();
        let first_server_gate = first_link.gate.clone();
        let Ok(Accepted::New(server)) = acceptor.accept(first_link).await else {
            panic!("the first link starts a session");
        };
        tokio::spawn(async move {
            while let Some(stream) = server.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = tokio::io::split(stream);
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        let client = connecting.await.unwrap().unwrap();
        let stream = client.open_stream().await.unwrap();
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut pattern = Pattern::new(3);
        let mut check = Pattern::new(3);
        let mut buf = vec![0u8; 4096];
        echo_round(&mut writer, &mut reader, &pattern.take(buf.len()), &mut buf)
            .await
            .unwrap();
        check.check(&buf).unwrap();

        // The server's end of the first link goes quiet; the client's fails.
        first_server_gate.lock().unwrap().hold = true;
        {
            let mut gate = first_client_gate.lock().unwrap();
            gate.fail = true;
            gate.wake();
        }
        // The client redials and asks to resume; the request is read here, so
        // that the acceptor can take it in one step.
        let (mut second_link, _) = dialled.recv().await.unwrap();
        let mut request = vec![0u8; 12];
        second_link.inner.read_exact(&mut request).await.unwrap();
        let payload = u32::from_be_bytes(request[8..12].try_into().unwrap()) as usize;
        request.resize(12 + payload, 0);
        second_link.inner.read_exact(&mut request[12..]).await.unwrap();
        second_link.prefix = request;

        // The server's driver is about to read the first link when the resume
        // takes the session over; then that read finds the link dead.
        {
            let mut gate = first_server_gate.lock().unwrap();
            let acceptor = acceptor.clone();
            gate.before_next_io = Some(Box::new(move || {
                let accepted = complete_now(acceptor.accept(second_link)).unwrap();
                assert!(matches!(accepted, Accepted::Resumed));
            }));
            gate.hold = false;
            gate.wake();
        }
        let chunk = pattern.take(buf.len());
        let round = echo_round(&mut writer, &mut reader, &chunk, &mut buf);
        tokio::time::timeout(Duration::from_secs(20), round)
            .await
            .expect("the resumed session carries on")
            .unwrap();
        check.check(&buf).unwrap();
        assert_eq!(client.stats().resumes, 1);
        assert_eq!(client.reconnects(), 1, "one redial was enough");
        let stats = acceptor.stats();
        assert_eq!((stats.sessions, stats.detached), (1, 0), "{stats:?}");
        client.close(hawser_tokio::GoAwayCode::NORMAL);
    });
}

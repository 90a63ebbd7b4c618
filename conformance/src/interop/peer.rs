//! Another yamux implementation at the far end of the link: the `yamux` crate
//! (rust-yamux, used by libp2p) or `tokio-yamux` (tentacle). Each runs on a tokio
//! runtime of its own, so that the hawser side may use any adapter.
//!
//! The peer serves the [stream commands](super#stream-commands) on every stream
//! hawser opens, and can run the client half of each command itself.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use super::link::{Digest, Pattern};
use super::Command;
use crate::rng::Rng;

/// Which implementation plays the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// The `yamux` crate, default configuration (its auto-tuned windows start at
    /// 256 KiB).
    Yamux,
    /// `tokio-yamux` with a 16 MiB maximum stream window and a keepalive ping
    /// every 250 ms.
    TokioYamux,
}

/// The peer's side of a role: which end dialled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// The peer dialled; hawser is the server.
    Client,
    /// The peer accepted; hawser is the client.
    Server,
}

/// What a stream served by the peer reports to the scenario.
#[derive(Debug)]
pub struct PeerReport {
    /// The command the stream carried.
    pub command: u8,
    /// Bytes written (for `W`) or read (for `X`) before the stream ended, or the
    /// error that ended it.
    pub result: io::Result<u64>,
}

/// A byte stream with tokio's I/O traits.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

/// A stream of either peer implementation. Dropping it without `shutdown` makes
/// both implementations send RST.
pub type PeerStream = Box<dyn PeerIo>;

/// A `yamux` or `tokio-yamux` session running on the current tokio runtime, for
/// benchmarks and tools that want the other implementations as plain endpoints.
pub struct Endpoint {
    opener: Arc<Opener>,
    inbound: mpsc::UnboundedReceiver<PeerStream>,
}

impl Endpoint {
    /// A `yamux` crate connection over `link` with `config`; must be called within
    /// a tokio runtime (its driver task is spawned).
    pub fn yamux(link: tokio::net::TcpStream, role: PeerRole, config: yamux::Config) -> Endpoint {
        let mode = match role {
            PeerRole::Client => yamux::Mode::Client,
            PeerRole::Server => yamux::Mode::Server,
        };
        let connection = yamux::Connection::new(link.compat(), config, mode);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let (ended_tx, _) = watch::channel(None);
        tokio::spawn(drive_yamux(connection, commands_rx, inbound_tx, ended_tx));
        Endpoint {
            opener: Arc::new(Opener::Yamux(commands_tx)),
            inbound,
        }
    }

    /// A `tokio-yamux` session over `link` with `config`; must be called within a
    /// tokio runtime.
    pub fn tokio_yamux(link: tokio::net::TcpStream, role: PeerRole, config: tokio_yamux::Config) -> Endpoint {
        let session = match role {
            PeerRole::Client => tokio_yamux::Session::new_client(link, config),
            PeerRole::Server => tokio_yamux::Session::new_server(link, config),
        };
        let control = session.control();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let (ended_tx, _) = watch::channel(None);
        tokio::spawn(drive_tokio_yamux(session, inbound_tx, ended_tx));
        Endpoint {
            opener: Arc::new(Opener::TokioYamux(Arc::new(tokio::sync::Mutex::new(control)))),
            inbound,
        }
    }

    /// Opens a stream.
    pub async fn open(&self) -> io::Result<PeerStream> {
        open(&self.opener).await
    }

    /// The next inbound stream; `None` once the session has ended.
    pub async fn accept(&mut self) -> Option<PeerStream> {
        self.inbound.recv().await
    }
}

enum Opener {
    Yamux(mpsc::UnboundedSender<YamuxCommand>),
    TokioYamux(Arc<tokio::sync::Mutex<tokio_yamux::Control>>),
}

enum YamuxCommand {
    Open(oneshot::Sender<io::Result<PeerStream>>),
    Close(oneshot::Sender<()>),
}

/// A running peer session.
pub struct Peer {
    kind: PeerKind,
    runtime: Option<Runtime>,
    opener: Arc<Opener>,
    reports: mpsc::UnboundedReceiver<PeerReport>,
    ended: watch::Receiver<Option<Result<(), String>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // The scenario may be running inside another runtime, where a blocking
            // shutdown is not allowed.
            runtime.shutdown_background();
        }
    }
}

fn other(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(err.to_string())
}

impl Peer {
    /// A runtime for a peer and the relays in front of it.
    pub fn runtime() -> io::Result<Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
    }

    /// Starts a `kind` peer over `link` on `runtime` (which it then owns).
    pub fn start(kind: PeerKind, role: PeerRole, link: TcpStream, runtime: Runtime) -> io::Result<Peer> {
        link.set_nonblocking(true)?;
        let handle = runtime.handle().clone();
        // Registering the socket, and tokio-yamux's timers, need the runtime current.
        let _guard = handle.enter();
        let link = tokio::net::TcpStream::from_std(link)?;
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel::<PeerStream>();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (ended_tx, ended) = watch::channel(None);
        let opener = match kind {
            PeerKind::Yamux => {
                let mode = match role {
                    PeerRole::Client => yamux::Mode::Client,
                    PeerRole::Server => yamux::Mode::Server,
                };
                let connection = yamux::Connection::new(link.compat(), yamux::Config::default(), mode);
                let (commands_tx, commands_rx) = mpsc::unbounded_channel();
                handle.spawn(drive_yamux(connection, commands_rx, inbound_tx, ended_tx));
                Opener::Yamux(commands_tx)
            }
            PeerKind::TokioYamux => {
                let config = tokio_yamux::Config {
                    max_stream_window_size: 16 << 20,
                    keepalive_interval: Duration::from_millis(250),
                    ..tokio_yamux::Config::default()
                };
                let session = match role {
                    PeerRole::Client => tokio_yamux::Session::new_client(link, config),
                    PeerRole::Server => tokio_yamux::Session::new_server(link, config),
                };
                let control = session.control();
                handle.spawn(drive_tokio_yamux(session, inbound_tx, ended_tx));
                Opener::TokioYamux(Arc::new(tokio::sync::Mutex::new(control)))
            }
        };
        handle.spawn(serve_all(inbound_rx, reports_tx));
        Ok(Peer {
            kind,
            runtime: Some(runtime),
            opener: Arc::new(opener),
            reports,
            ended,
        })
    }

    /// Which implementation this is.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    fn handle(&self) -> Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
            .clone()
    }

    /// Runs `task` on the peer's runtime; the returned future waits for it from
    /// any executor.
    fn run<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> impl Future<Output = T> {
        let task = self.handle().spawn(task);
        async move {
            match task.await {
                Ok(value) => value,
                Err(err) => std::panic::resume_unwind(err.into_panic()),
            }
        }
    }

    /// Opens a stream, sends command `E` with `payload` in random-sized writes,
    /// and returns the echo.
    pub fn echo(&self, payload: Vec<u8>, seed: u64) -> impl Future<Output = io::Result<Vec<u8>>> {
        let opener = self.opener.clone();
        self.run(async move {
            let stream = open(&opener).await?;
            let (mut reader, mut writer) = tokio::io::split(stream);
            let writing = async move {
                writer.write_all(&[Command::ECHO]).await?;
                write_pieces(&mut writer, &payload, &mut Rng::new(seed)).await?;
                writer.shutdown().await
            };
            let mut back = Vec::new();
            let (written, read) = tokio::join!(writing, reader.read_to_end(&mut back));
            written?;
            read?;
            Ok(back)
        })
    }

    /// Opens a stream, sends command `S` and `len` bytes of `Pattern(seed)`,
    /// finishes, and returns the digest the other side replied with, next to the
    /// digest of what was sent.
    pub fn sum(&self, len: u64, seed: u64) -> impl Future<Output = io::Result<(Digest, Digest)>> {
        let opener = self.opener.clone();
        self.run(async move {
            let stream = open(&opener).await?;
            let (mut reader, mut writer) = tokio::io::split(stream);
            let writing = async move {
                writer.write_all(&[Command::SUM]).await?;
                let mut pattern = Pattern::new(seed);
                let mut sent = Digest::default();
                let mut rng = Rng::new(seed);
                while pattern.position() < len {
                    let piece = rng.range(1, 256 * 1024).min(len - pattern.position()) as usize;
                    let chunk = pattern.take(piece);
                    sent.update(&chunk);
                    writer.write_all(&chunk).await?;
                }
                writer.shutdown().await?;
                Ok::<_, io::Error>(sent)
            };
            let mut reply = Vec::new();
            let (sent, read) = tokio::join!(writing, reader.read_to_end(&mut reply));
            let sent = sent?;
            read?;
            let replied =
                Digest::from_bytes(&reply).ok_or_else(|| other(format!("a {}-byte sum reply", reply.len())))?;
            Ok((replied, sent))
        })
    }

    /// Opens a stream, sends command `G` for `len` bytes of `Pattern(seed)`, and
    /// checks what arrives. Returns the byte count.
    pub fn fetch(&self, len: u64, seed: u64) -> impl Future<Output = io::Result<u64>> {
        let opener = self.opener.clone();
        self.run(async move {
            let mut stream = open(&opener).await?;
            let mut request = vec![Command::GENERATE];
            request.extend_from_slice(&len.to_be_bytes());
            request.extend_from_slice(&seed.to_be_bytes());
            stream.write_all(&request).await?;
            let mut pattern = Pattern::new(seed);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                pattern.check(&buf[..n]).map_err(other)?;
            }
            stream.shutdown().await?;
            Ok(pattern.position())
        })
    }

    /// Sends a go-away and closes the connection, the only way either
    /// implementation offers to end a session.
    pub fn close(&self) -> impl Future<Output = ()> {
        let opener = self.opener.clone();
        self.run(async move {
            match &*opener {
                Opener::Yamux(commands) => {
                    let (done_tx, done_rx) = oneshot::channel();
                    if commands.send(YamuxCommand::Close(done_tx)).is_ok() {
                        let _ = done_rx.await;
                    }
                }
                Opener::TokioYamux(control) => control.lock().await.close().await,
            }
        })
    }

    /// Waits until the peer's session has ended; `Err` says why if it failed.
    pub fn ended(&self) -> impl Future<Output = Result<(), String>> {
        let mut ended = self.ended.clone();
        self.run(async move {
            match ended.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone().expect("waited for Some"),
                Err(_) => Err("the peer's driver is gone".into()),
            }
        })
    }

    /// Whether the peer's session has ended.
    pub fn has_ended(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// The next report from a stream the peer served (`W` and `X` commands).
    pub fn next_report(&mut self) -> impl Future<Output = Option<PeerReport>> + '_ {
        self.reports.recv()
    }
}

async fn open(opener: &Opener) -> io::Result<PeerStream> {
    match opener {
        Opener::Yamux(commands) => {
            let (stream_tx, stream_rx) = oneshot::channel();
            commands
                .send(YamuxCommand::Open(stream_tx))
                .map_err(|_| other("the yamux connection has ended"))?;
            stream_rx.await.map_err(|_| other("the yamux connection has ended"))?
        }
        Opener::TokioYamux(control) => {
            let stream = control
                .lock()
                .await
                .open_stream()
                .await
                .map_err(|err| other(format!("{err:?}")))?;
            Ok(Box::new(stream))
        }
    }
}

/// Owns a `yamux::Connection`, which must be polled continuously for any of its
/// streams to make progress; opens and closes on request.
async fn drive_yamux(
    mut connection: yamux::Connection<tokio_util::compat::Compat<tokio::net::TcpStream>>,
    mut commands: mpsc::UnboundedReceiver<YamuxCommand>,
    inbound: mpsc::UnboundedSender<PeerStream>,
    ended: watch::Sender<Option<Result<(), String>>>,
) {
    let mut opens: VecDeque<oneshot::Sender<io::Result<PeerStream>>> = VecDeque::new();
    let mut closing: Option<oneshot::Sender<()>> = None;
    let mut commands_open = true;
    let outcome = poll_fn(|cx: &mut Context<'_>| loop {
        while commands_open {
            match commands.poll_recv(cx) {
                Poll::Ready(Some(YamuxCommand::Open(reply))) => opens.push_back(reply),
                Poll::Ready(Some(YamuxCommand::Close(done))) => closing = Some(done),
                Poll::Ready(None) => commands_open = false,
                Poll::Pending => break,
            }
        }
        if closing.is_some() {
            return match connection.poll_close(cx) {
                Poll::Ready(result) => Poll::Ready(result.map_err(|err| err.to_string())),
                Poll::Pending => Poll::Pending,
            };
        }
        while !opens.is_empty() {
            match connection.poll_new_outbound(cx) {
                Poll::Ready(result) => {
                    let reply = opens.pop_front().expect("checked non-empty");
                    let _ = reply.send(result.map(|s| Box::new(s.compat()) as PeerStream).map_err(other));
                }
                Poll::Pending => break,
            }
        }
        match connection.poll_next_inbound(cx) {
            Poll::Ready(Some(Ok(stream))) => {
                let _ = inbound.send(Box::new(stream.compat()));
            }
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(err.to_string())),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    for reply in opens {
        let _ = reply.send(Err(other("the yamux connection has ended")));
    }
    let _ = ended.send(Some(outcome));
    if let Some(done) = closing {
        let _ = done.send(());
    }
    // Streams still held elsewhere see the connection gone once it is dropped.
    drop(connection);
}

/// Polls a `tokio_yamux::Session`, which drives its I/O and yields inbound streams.
async fn drive_tokio_yamux(
    mut session: tokio_yamux::Session<tokio::net::TcpStream>,
    inbound: mpsc::UnboundedSender<PeerStream>,
    ended: watch::Sender<Option<Result<(), String>>>,
) {
    use futures::StreamExt;
    let outcome = loop {
        match session.next().await {
            Some(Ok(stream)) => {
                let _ = inbound.send(Box::new(stream));
            }
            Some(Err(err)) => break Err(err.to_string()),
            None => break Ok(()),
        }
    };
    let _ = ended.send(Some(outcome));
}

/// Serves every inbound stream, each on a task of its own.
async fn serve_all(mut inbound: mpsc::UnboundedReceiver<PeerStream>, reports: mpsc::UnboundedSender<PeerReport>) {
    let serial = Arc::new(Mutex::new(0u64));
    while let Some(stream) = inbound.recv().await {
        let seed = {
            let mut serial = serial.lock().expect("never poisoned: no panics while held");
            *serial += 1;
            *serial
        };
        tokio::spawn(serve(stream, reports.clone(), seed));
    }
}

async fn serve(mut stream: PeerStream, reports: mpsc::UnboundedSender<PeerReport>, seed: u64) {
    let mut command = [0u8; 1];
    if stream.read_exact(&mut command).await.is_err() {
        return;
    }
    let mut rng = Rng::new(seed);
    match command[0] {
        Command::ECHO => {
            let mut data = Vec::new();
            if stream.read_to_end(&mut data).await.is_ok() && write_pieces(&mut stream, &data, &mut rng).await.is_ok() {
                let _ = stream.shutdown().await;
            }
        }
        Command::SUM => {
            let mut digest = Digest::default();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => digest.update(&buf[..n]),
                    Err(_) => return,
                }
            }
            if stream.write_all(&digest.to_bytes()).await.is_ok() {
                let _ = stream.shutdown().await;
            }
        }
        Command::GENERATE => {
            let mut args = [0u8; 16];
            if stream.read_exact(&mut args).await.is_err() {
                return;
            }
            let len = u64::from_be_bytes(args[..8].try_into().expect("8 bytes"));
            let pattern_seed = u64::from_be_bytes(args[8..].try_into().expect("8 bytes"));
            let (mut reader, mut writer) = tokio::io::split(stream);
            let writing = async move {
                let mut pattern = Pattern::new(pattern_seed);
                while pattern.position() < len {
                    let piece = rng.range(1, 1 << 20).min(len - pattern.position()) as usize;
                    writer.write_all(&pattern.take(piece)).await?;
                }
                writer.shutdown().await
            };
            // The requester finishes once it has read everything; reading until
            // then also lets tokio-yamux see the requester's window updates.
            let _ = tokio::join!(writing, drain(&mut reader));
        }
        Command::WRITE_UNTIL_FAILURE => {
            let (mut reader, mut writer) = tokio::io::split(stream);
            let written = AtomicU64::new(0);
            let writing = async {
                let chunk = vec![0x5a; 16 * 1024];
                loop {
                    match writer.write(&chunk).await {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(n) => written.fetch_add(n as u64, Ordering::Relaxed),
                    };
                    if written.load(Ordering::Relaxed) > 1 << 30 {
                        return Err(other("wrote 1 GiB and the stream is still open"));
                    }
                }
            };
            // tokio-yamux applies a received RST to its read side only: a writer
            // waiting for credit is not woken, so the reader's end stops the writer.
            let outcome = tokio::select! {
                outcome = writing => outcome,
                _ = drain(&mut reader) => Ok(()),
            };
            let _ = reports.send(PeerReport {
                command: Command::WRITE_UNTIL_FAILURE,
                result: outcome.map(|()| written.load(Ordering::Relaxed)),
            });
        }
        Command::READ_THEN_RESET => {
            let mut args = [0u8; 8];
            if stream.read_exact(&mut args).await.is_err() {
                return;
            }
            let wanted = u64::from_be_bytes(args);
            let mut buf = vec![0u8; wanted as usize];
            let result = stream.read_exact(&mut buf).await.map(|_| wanted);
            // Dropped without shutdown: both implementations send RST.
            drop(stream);
            let _ = reports.send(PeerReport {
                command: Command::READ_THEN_RESET,
                result,
            });
        }
        _ => {}
    }
}

/// Reads and discards until the end of the stream or an error.
async fn drain(reader: &mut (impl AsyncRead + Unpin)) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Writes `data` in pieces of 1 byte to 1 MiB, flushing after each.
async fn write_pieces(stream: &mut (impl AsyncWrite + Unpin), data: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let piece = (rng.range(1, 1 << 20) as usize).min(rest.len());
        stream.write_all(&rest[..piece]).await?;
        stream.flush().await?;
        rest = &rest[piece..];
    }
    Ok(())
}

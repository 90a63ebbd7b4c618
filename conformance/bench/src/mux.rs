//! The implementations under test that run on tokio, behind one interface: a
//! client that opens streams, and a server that serves each stream by its first
//! byte (see [`serve`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hawser_conformance::interop::link::Pattern;

use hawser_conformance::interop::peer::{Endpoint, PeerRole, PeerStream};
use hawser_tokio::{Accepted, Acceptor, Config, Resumption, RetryPolicy, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How many hold streams this process's servers have answered.
pub static HELD: AtomicUsize = AtomicUsize::new(0);

/// What the server side of `COUNT` streams has received: the bench measures
/// a flow where it arrives, and the server runs in the same process.
pub static ARRIVALS: Mutex<Arrivals> = Mutex::new(Arrivals::NONE);

/// See [`ARRIVALS`]; one `COUNT` stream at a time.
pub struct Arrivals {
    /// When the last byte arrived.
    pub last_byte: Option<Instant>,
    /// The longest time between two arrivals.
    pub longest_gap: Duration,
    /// Bytes arrived, each checked against the pattern.
    pub bytes: u64,
    /// Why the flow broke: it ended, failed, or brought wrong bytes.
    pub broken: Option<String>,
}

impl Arrivals {
    /// Nothing arrived yet.
    pub const NONE: Arrivals = Arrivals {
        last_byte: None,
        longest_gap: Duration::ZERO,
        bytes: 0,
        broken: None,
    };
}

/// The pattern `COUNT` streams carry.
pub const COUNT_SEED: u64 = 9;

/// Stream commands: the first byte of every stream.
pub const SINK: u8 = b'S';
pub const ECHO: u8 = b'E';
pub const HOLD: u8 = b'H';
/// Reads a pattern to the end, checking it and recording arrivals in [`ARRIVALS`].
pub const COUNT: u8 = b'C';

/// An implementation that runs on tokio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokioImpl {
    RawTcp,
    HawserNative,
    HawserYamux,
    HawserResume,
    Yamux,
    YamuxTuned,
    TokioYamux,
}

impl TokioImpl {
    /// Tunes a socket as the implementation's own helpers would: hawser's
    /// with `tune_tcp` (`TCP_NODELAY` and `TCP_NOTSENT_LOWAT`), the others
    /// with `TCP_NODELAY`. `HAWSER_BENCH_TCP=nodelay` gives hawser only
    /// `TCP_NODELAY` too, and `HAWSER_BENCH_TCP=lowat:BYTES` another bound on
    /// the unsent queue, to measure what the bound costs or saves.
    fn tune(self, tcp: &TcpStream) -> io::Result<()> {
        let hawser = matches!(
            self,
            TokioImpl::HawserNative | TokioImpl::HawserYamux | TokioImpl::HawserResume
        );
        if !hawser {
            return tcp.set_nodelay(true);
        }
        let setting = std::env::var("HAWSER_BENCH_TCP").unwrap_or_default();
        if setting == "nodelay" {
            return tcp.set_nodelay(true);
        }
        hawser_tokio::tune_tcp(tcp)?;
        // `lowat:BYTES`: another bound on the unsent queue, to compare.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(bytes) = setting.strip_prefix("lowat:").and_then(|n| n.parse().ok()) {
            socket2::SockRef::from(tcp).set_tcp_notsent_lowat(bytes)?;
        }
        Ok(())
    }

    pub const ALL: [TokioImpl; 7] = [
        TokioImpl::RawTcp,
        TokioImpl::HawserNative,
        TokioImpl::HawserYamux,
        TokioImpl::HawserResume,
        TokioImpl::Yamux,
        TokioImpl::YamuxTuned,
        TokioImpl::TokioYamux,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TokioImpl::RawTcp => "raw-tcp",
            TokioImpl::HawserNative => "hawser-tokio",
            TokioImpl::HawserYamux => "hawser-tokio-yamux",
            TokioImpl::HawserResume => "hawser-tokio-resume",
            TokioImpl::Yamux => "yamux",
            TokioImpl::YamuxTuned => "yamux-256k-split",
            TokioImpl::TokioYamux => "tokio-yamux",
        }
    }

    /// The defaults, with room for `streams` streams at once.
    fn hawser_config(self, streams: usize) -> Config {
        let base = match self {
            TokioImpl::HawserYamux => Config::yamux(),
            TokioImpl::HawserResume => Config {
                resumption: Some(Resumption::default()),
                ..Config::default()
            },
            _ => Config::default(),
        };
        let streams = streams + 16;
        Config {
            max_streams: base.max_streams.max(streams),
            receive_budget: base.receive_budget.max(streams as u64 * u64::from(base.initial_window)),
            ..base
        }
    }

    fn yamux_config(self, streams: usize) -> yamux::Config {
        let mut config = yamux::Config::default();
        if self == TokioImpl::YamuxTuned {
            config.set_split_send_size(256 * 1024);
        }
        if streams + 16 > 512 {
            config.set_max_connection_receive_window(None);
            config.set_max_num_streams(streams + 16);
        }
        config
    }

    fn tokio_yamux_config() -> tokio_yamux::Config {
        tokio_yamux::Config {
            max_stream_window_size: 16 << 20,
            max_stream_count: 65_535,
            ..tokio_yamux::Config::default()
        }
    }
}

/// The client side of one connection (or, for raw TCP, of a connection per stream).
pub enum Client {
    Raw(SocketAddr),
    Hawser(Session),
    Other(Endpoint),
}

impl Client {
    pub async fn open(&self) -> io::Result<PeerStream> {
        match self {
            Client::Raw(addr) => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Ok(Box::new(tcp))
            }
            Client::Hawser(session) => Ok(Box::new(session.open_stream().await?)),
            Client::Other(endpoint) => endpoint.open().await,
        }
    }

    pub fn close(&self) {
        if let Client::Hawser(session) = self {
            session.close(hawser_tokio::GoAwayCode::NORMAL);
        }
    }
}

/// Starts a server for `which` on loopback and connects a client to it, both with
/// room for `streams` streams at once.
pub async fn connect(which: TokioImpl, streams: usize) -> io::Result<Client> {
    let addr = listen(which, streams).await?;
    connect_to(which, addr, streams).await
}

/// Starts a server for `which` on loopback; returns its address.
pub async fn listen(which: TokioImpl, streams: usize) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    serve_on(which, listener, streams);
    Ok(addr)
}

/// Serves `which` on `listener`, in a task of the current runtime.
pub fn serve_on(which: TokioImpl, listener: TcpListener, streams: usize) {
    tokio::spawn(run_server(which, listener, streams));
}

/// Connects a client for `which` to the server at `addr`.
pub async fn connect_to(which: TokioImpl, addr: SocketAddr, streams: usize) -> io::Result<Client> {
    if which == TokioImpl::RawTcp {
        return Ok(Client::Raw(addr));
    }
    let tcp = TcpStream::connect(addr).await?;
    which.tune(&tcp)?;
    Ok(match which {
        TokioImpl::RawTcp => unreachable!("handled above"),
        TokioImpl::HawserNative | TokioImpl::HawserYamux => {
            Client::Hawser(Session::client(tcp, which.hawser_config(streams))?)
        }
        TokioImpl::HawserResume => {
            drop(tcp);
            let session = Session::connect_resumable_with(
                move || async move {
                    let tcp = TcpStream::connect(addr).await?;
                    which.tune(&tcp)?;
                    Ok(tcp)
                },
                which.hawser_config(streams),
                RetryPolicy::default(),
            )
            .await?;
            while !session.is_resumable() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Client::Hawser(session)
        }
        TokioImpl::Yamux | TokioImpl::YamuxTuned => {
            Client::Other(Endpoint::yamux(tcp, PeerRole::Client, which.yamux_config(streams)))
        }
        TokioImpl::TokioYamux => Client::Other(Endpoint::tokio_yamux(
            tcp,
            PeerRole::Client,
            TokioImpl::tokio_yamux_config(),
        )),
    })
}

async fn run_server(which: TokioImpl, listener: TcpListener, streams: usize) {
    let acceptor = if which == TokioImpl::HawserResume {
        Acceptor::new(which.hawser_config(streams)).ok().map(Arc::new)
    } else {
        None
    };
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = which.tune(&tcp);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match which {
                TokioImpl::RawTcp => serve(Box::new(tcp)).await,
                TokioImpl::HawserNative | TokioImpl::HawserYamux => {
                    let Ok(session) = Session::server(tcp, which.hawser_config(streams)) else {
                        return;
                    };
                    serve_hawser(session).await;
                }
                TokioImpl::HawserResume => {
                    let Some(acceptor) = acceptor else { return };
                    if let Ok(Accepted::New(session)) = acceptor.accept(tcp).await {
                        serve_hawser(session).await;
                    }
                }
                TokioImpl::Yamux | TokioImpl::YamuxTuned => {
                    serve_endpoint(Endpoint::yamux(tcp, PeerRole::Server, which.yamux_config(streams))).await
                }
                TokioImpl::TokioYamux => {
                    serve_endpoint(Endpoint::tokio_yamux(
                        tcp,
                        PeerRole::Server,
                        TokioImpl::tokio_yamux_config(),
                    ))
                    .await
                }
            }
        });
    }
}

async fn serve_hawser(session: Session) {
    while let Some(stream) = session.accept().await {
        tokio::spawn(serve(Box::new(stream)));
    }
}

async fn serve_endpoint(mut endpoint: Endpoint) {
    while let Some(stream) = endpoint.accept().await {
        tokio::spawn(serve(stream));
    }
}

/// Serves one stream by its first byte: sink (read to the end, then answer one
/// byte), echo (as it arrives), or hold (answer one byte, then wait for the end:
/// idle streams).
pub async fn serve(mut stream: PeerStream) {
    let mut command = [0u8; 1];
    if stream.read_exact(&mut command).await.is_err() {
        return;
    }
    match command[0] {
        SINK => {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            let _ = stream.write_all(b"k").await;
            let _ = stream.shutdown().await;
        }
        COUNT => {
            let mut check = Pattern::new(COUNT_SEED);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let result = stream.read(&mut buf).await;
                let now = Instant::now();
                let mut arrivals = ARRIVALS.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(0) => arrivals.broken = Some("the stream ended".into()),
                    Err(e) => arrivals.broken = Some(format!("the stream failed: {e}")),
                    Ok(n) => match check.check(&buf[..n]) {
                        Err(e) => arrivals.broken = Some(format!("bytes arrived wrong: {e}")),
                        Ok(()) => {
                            if let Some(last) = arrivals.last_byte {
                                arrivals.longest_gap = arrivals.longest_gap.max(now - last);
                            }
                            arrivals.last_byte = Some(now);
                            arrivals.bytes += n as u64;
                            continue;
                        }
                    },
                }
                return;
            }
        }
        ECHO => {
            // Small, and on the heap: echo streams carry requests of up to 64
            // bytes, and a big buffer per stream (zeroed, or moved with the task)
            // would dominate the open workload.
            let mut buf = vec![0u8; 1024];
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
            let _ = stream.shutdown().await;
        }
        HOLD => {
            // One byte back, so that lazily acknowledging muxes see the stream open.
            if stream.write_all(b"h").await.is_err() {
                return;
            }
            HELD.fetch_add(1, Ordering::Relaxed);
            let mut buf = [0u8; 64];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        _ => {}
    }
}

//! libp2p-yamux against hawser-libp2p inside real swarms, side by side in
//! one run: request streams opened per second (each request a fresh stream,
//! 64 in flight: open, protocol negotiation, a 16-byte request, an 8-byte
//! answer) and one stream's bulk throughput (an upload whose byte count is
//! checked where it lands). Both swarms of a pair mux the same way, over TCP
//! with libp2p's plaintext security, so the muxer is what differs.
//!
//! ```text
//! cargo run --release -p hawser-libp2p --example swarm_bench              # loopback and the emulated WAN
//! cargo run --release -p hawser-libp2p --example swarm_bench -- --quick   # small sizes, one repetition
//! cargo run --release -p hawser-libp2p --example swarm_bench -- --path loopback --reps 3
//! ```
//!
//! The WAN case runs on hawser-conformance's emulated path (100 ms round
//! trip, 500 Mbit/s; Linux and root); where it cannot be made, the reason is
//! printed and it is skipped. Each figure is the median of the repetitions,
//! with the range; the muxers alternate within each repetition.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::StreamExt;
use hawser_conformance::path::{EmulatedPath, PathSpec, Side};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{plaintext, tcp, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/hawser-bench/upload/1");
const IN_FLIGHT: usize = 64;
const REQUEST: u64 = 16;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Muxer {
    Yamux,
    Hawser,
}

impl Muxer {
    fn name(self) -> &'static str {
        match self {
            Muxer::Yamux => "libp2p-yamux",
            Muxer::Hawser => "hawser-libp2p",
        }
    }
}

/// A request is a byte count: the requester writes that many bytes and
/// closes; the responder counts what arrives and answers with the count.
#[derive(Clone, Default)]
struct Upload;

static CHUNK: [u8; 64 * 1024] = [0x5a; 64 * 1024];

impl request_response::Codec for Upload {
    type Protocol = StreamProtocol;
    type Request = u64;
    type Response = u64;

    async fn read_request<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut count = 0u64;
        loop {
            match io.read(&mut buf).await? {
                0 => return Ok(count),
                n => count += n as u64,
            }
        }
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<u64> {
        let mut count = [0u8; 8];
        io.read_exact(&mut count).await?;
        Ok(u64::from_le_bytes(count))
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        len: u64,
    ) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            let piece = left.min(CHUNK.len() as u64) as usize;
            io.write_all(&CHUNK[..piece]).await?;
            left -= piece as u64;
        }
        Ok(())
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        count: u64,
    ) -> io::Result<()> {
        io.write_all(&count.to_le_bytes()).await
    }
}

type Behaviour = request_response::Behaviour<Upload>;

fn swarm(muxer: Muxer) -> Swarm<Behaviour> {
    macro_rules! build {
        ($muxer:expr) => {
            libp2p::SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    |key: &Keypair| Ok::<_, Infallible>(plaintext::Config::new(key)),
                    $muxer,
                )
                .expect("tcp transport")
                .with_behaviour(|_| {
                    request_response::Behaviour::new(
                        [(PROTOCOL, ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(600))
                            .with_max_concurrent_streams(4 * IN_FLIGHT),
                    )
                })
                .expect("behaviour")
                .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(600)))
                .build()
        };
    }
    match muxer {
        Muxer::Yamux => build!(libp2p::yamux::Config::default),
        Muxer::Hawser => build!(hawser_libp2p::Config::default),
    }
}

type Reply = oneshot::Sender<Result<u64, String>>;

/// Runs `swarm` until the requests' sender is dropped: answers requests,
/// sends the ones asked for; `connected` hears of the first connection.
async fn run(
    mut swarm: Swarm<Behaviour>,
    mut asks: mpsc::UnboundedReceiver<(PeerId, u64, Reply)>,
    connected: oneshot::Sender<()>,
) {
    let mut connected = Some(connected);
    let mut pending: HashMap<OutboundRequestId, Reply> = HashMap::new();
    loop {
        tokio::select! {
            ask = asks.recv() => {
                let Some((peer, len, reply)) = ask else { return };
                pending.insert(swarm.behaviour_mut().send_request(&peer, len), reply);
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { .. } => {
                    if let Some(connected) = connected.take() {
                        let _ = connected.send(());
                    }
                }
                SwarmEvent::Behaviour(request_response::Event::Message { message, .. }) => match message {
                    request_response::Message::Request { request, channel, .. } => {
                        let _ = swarm.behaviour_mut().send_response(channel, request);
                    }
                    request_response::Message::Response { request_id, response } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                },
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Two runtimes, each with its threads where its swarm's sockets must be:
/// on loopback both here, on the emulated path each in its namespace.
struct Ends {
    listener: Runtime,
    dialler: Runtime,
    listen_ip: Ipv4Addr,
    _path: Option<EmulatedPath>,
}

fn runtime() -> io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

impl Ends {
    fn loopback() -> io::Result<Ends> {
        Ok(Ends {
            listener: runtime()?,
            dialler: runtime()?,
            listen_ip: Ipv4Addr::LOCALHOST,
            _path: None,
        })
    }

    fn wan() -> Result<Ends, String> {
        let path = EmulatedPath::new(PathSpec::wan()).map_err(|unavailable| unavailable.to_string())?;
        let runtime_in = |side| {
            path.spawn_in(side, runtime)
                .join()
                .map_err(|_| "a namespace thread panicked".to_string())?
                .map_err(|err| err.to_string())
        };
        Ok(Ends {
            listener: runtime_in(Side::Server)?,
            dialler: runtime_in(Side::Client)?,
            listen_ip: path.server_ip(),
            _path: Some(path),
        })
    }
}

/// A connected pair of swarms muxing with `muxer`: a way to ask the
/// dialler's swarm for uploads to the listener.
struct Pair {
    asks: mpsc::UnboundedSender<(PeerId, u64, Reply)>,
    listener: PeerId,
    _listener_asks: mpsc::UnboundedSender<(PeerId, u64, Reply)>,
}

fn on<T: Send + 'static>(runtime: &Runtime, task: impl Future<Output = T> + Send + 'static) -> T {
    runtime.block_on(runtime.spawn(task)).expect("task ran")
}

fn pair(ends: &Ends, muxer: Muxer) -> Pair {
    let listen_ip = ends.listen_ip;
    let (listener_asks, asks_in) = mpsc::unbounded_channel();
    let (listener, address) = on(&ends.listener, async move {
        let mut swarm = swarm(muxer);
        let listener = *swarm.local_peer_id();
        swarm
            .listen_on(format!("/ip4/{listen_ip}/tcp/0").parse().expect("valid"))
            .expect("listen");
        let address: Multiaddr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let (connected, _) = oneshot::channel();
        tokio::spawn(run(swarm, asks_in, connected));
        (listener, address)
    });
    let (asks, asks_in) = mpsc::unbounded_channel();
    on(&ends.dialler, async move {
        let mut swarm = swarm(muxer);
        swarm.dial(address).expect("dial");
        let (connected, is_connected) = oneshot::channel();
        tokio::spawn(run(swarm, asks_in, connected));
        is_connected.await.expect("connected");
    });
    Pair {
        asks,
        listener,
        _listener_asks: listener_asks,
    }
}

async fn upload(asks: &mpsc::UnboundedSender<(PeerId, u64, Reply)>, to: PeerId, len: u64) {
    let (reply, answer) = oneshot::channel();
    asks.send((to, len, reply)).expect("swarm running");
    let count = answer.await.expect("swarm running").expect("the request succeeded");
    assert_eq!(count, len, "every byte arrived");
}

/// Requests per second, each on a fresh stream, `IN_FLIGHT` at a time.
fn opens_per_second(ends: &Ends, pair: &Pair, count: usize) -> f64 {
    let (asks, to) = (pair.asks.clone(), pair.listener);
    on(&ends.dialler, async move {
        // One round first, so that connection set-up is not timed.
        upload(&asks, to, REQUEST).await;
        let started = Instant::now();
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|worker| {
                let asks = asks.clone();
                let share = count / IN_FLIGHT + usize::from(worker < count % IN_FLIGHT);
                tokio::spawn(async move {
                    for _ in 0..share {
                        upload(&asks, to, REQUEST).await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("worker ran");
        }
        count as f64 / started.elapsed().as_secs_f64()
    })
}

/// One stream's upload, in Mbit/s.
fn bulk_mbit(ends: &Ends, pair: &Pair, bytes: u64) -> f64 {
    let (asks, to) = (pair.asks.clone(), pair.listener);
    on(&ends.dialler, async move {
        let started = Instant::now();
        upload(&asks, to, bytes).await;
        bytes as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e6
    })
}

struct Sizes {
    opens: usize,
    bulk: u64,
}

fn median_and_range(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!("{median:>9.1} ({:.1}–{:.1})", values[0], values[values.len() - 1])
}

fn measure(label: &str, ends: impl Fn() -> Result<Ends, String>, sizes: Sizes, reps: usize) {
    let muxers = [Muxer::Yamux, Muxer::Hawser];
    let mut opens: [Vec<f64>; 2] = Default::default();
    let mut bulk: [Vec<f64>; 2] = Default::default();
    for _ in 0..reps {
        let ends = match ends() {
            Ok(ends) => ends,
            Err(reason) => {
                println!("{label}: skipped ({reason})");
                return;
            }
        };
        for (i, muxer) in muxers.into_iter().enumerate() {
            let pair = pair(&ends, muxer);
            opens[i].push(opens_per_second(&ends, &pair, sizes.opens));
            bulk[i].push(bulk_mbit(&ends, &pair, sizes.bulk));
        }
    }
    println!(
        "{label}: {} request streams ({IN_FLIGHT} in flight), one stream uploading {} MiB; {reps} repetition(s)",
        sizes.opens,
        sizes.bulk >> 20
    );
    for (i, muxer) in muxers.into_iter().enumerate() {
        println!(
            "  {:<14} streams/s {}   bulk Mbit/s {}",
            muxer.name(),
            median_and_range(opens[i].clone()),
            median_and_range(bulk[i].clone())
        );
    }
    let ratio = |values: &[Vec<f64>; 2]| {
        let median = |v: &Vec<f64>| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        median(&values[1]) / median(&values[0])
    };
    println!(
        "  hawser-libp2p / libp2p-yamux: streams/s {:.2}x, bulk {:.2}x",
        ratio(&opens),
        ratio(&bulk)
    );
}

fn main() {
    let mut quick = false;
    let mut reps = None;
    let mut path = "both".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--reps" => reps = args.next().and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0),
            "--path" => path = args.next().unwrap_or_default(),
            _ => {
                eprintln!("usage: swarm_bench [--quick] [--reps N] [--path loopback|wan|both]");
                std::process::exit(2);
            }
        }
    }
    if !["loopback", "wan", "both"].contains(&path.as_str()) {
        eprintln!("--path takes loopback, wan or both");
        std::process::exit(2);
    }
    let reps = reps.unwrap_or(if quick { 1 } else { 3 });
    if path != "wan" {
        let sizes = if quick {
            Sizes {
                opens: 1_000,
                bulk: 64 << 20,
            }
        } else {
            Sizes {
                opens: 10_000,
                bulk: 1 << 30,
            }
        };
        measure(
            "loopback",
            || Ends::loopback().map_err(|err| err.to_string()),
            sizes,
            reps,
        );
    }
    if path != "loopback" {
        let sizes = if quick {
            Sizes {
                opens: 300,
                bulk: 8 << 20,
            }
        } else {
            Sizes {
                opens: 2_000,
                bulk: 64 << 20,
            }
        };
        measure("emulated WAN, 100 ms round trip, 500 Mbit/s", Ends::wan, sizes, reps);
    }
}

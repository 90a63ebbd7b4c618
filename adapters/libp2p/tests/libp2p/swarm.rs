//! Real swarms over TCP on loopback: one muxes with libp2p-yamux and one
//! with hawser-libp2p, dialling each way. Ping and identify must succeed,
//! 300 concurrent request streams each way (past yamux's 256-stream
//! backlogs) and an 8 MiB transfer must come back intact, and the
//! connection must stay up throughout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::time::Duration;

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, plaintext, tcp, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};

/// Longer than a run takes on a loaded debug build, short enough to fail fast.
const LIMIT: Duration = Duration::from_secs(120);
const ECHO: StreamProtocol = StreamProtocol::new("/hawser-test/echo/1");
const CONCURRENT: usize = 300;
const BULK: usize = 8 << 20;

#[derive(Clone, Copy, Debug)]
enum Muxer {
    Hawser,
    Yamux,
}

#[derive(Clone, Copy, Debug)]
enum Security {
    Noise,
    Plaintext,
}

/// Requests are read to the end (the requester closes its side after
/// writing), replies likewise.
#[derive(Clone, Default)]
struct Echo;

async fn read_all<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    io.take(2 * BULK as u64).read_to_end(&mut all).await?;
    Ok(all)
}

impl request_response::Codec for Echo {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_all(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_all(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&response).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    identify: identify::Behaviour,
    echo: request_response::Behaviour<Echo>,
}

fn behaviour(key: &Keypair) -> Behaviour {
    Behaviour {
        ping: ping::Behaviour::default(),
        identify: identify::Behaviour::new(identify::Config::new("/hawser-test/1".into(), key.public())),
        echo: request_response::Behaviour::new(
            [(ECHO, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(LIMIT)
                .with_max_concurrent_streams(2 * CONCURRENT),
        ),
    }
}

fn swarm(muxer: Muxer, security: Security) -> Swarm<Behaviour> {
    /// The builder's types differ with each upgrade; the rest is the same.
    macro_rules! build {
        ($security:expr, $muxer:expr) => {
            libp2p::SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(tcp::Config::default().nodelay(true), $security, $muxer)
                .expect("tcp transport")
                .with_behaviour(|key| behaviour(key))
                .expect("behaviour")
                .with_swarm_config(|config| config.with_idle_connection_timeout(LIMIT))
                .build()
        };
    }
    let plaintext = |key: &Keypair| Ok::<_, Infallible>(plaintext::Config::new(key));
    match (muxer, security) {
        (Muxer::Hawser, Security::Noise) => build!(noise::Config::new, hawser_libp2p::Config::default),
        (Muxer::Hawser, Security::Plaintext) => build!(plaintext, hawser_libp2p::Config::default),
        (Muxer::Yamux, Security::Noise) => build!(noise::Config::new, libp2p::yamux::Config::default),
        (Muxer::Yamux, Security::Plaintext) => build!(plaintext, libp2p::yamux::Config::default),
    }
}

/// What a node's event loop reports to the test.
#[derive(Debug)]
enum Note {
    Pinged,
    Identified,
    /// Anything that must not happen: a failed inbound request, a closed
    /// connection, a ping failure.
    Trouble(String),
}

type Reply = oneshot::Sender<Result<Vec<u8>, String>>;

/// A swarm in a task of its own: it answers every request with its bytes,
/// sends the test's requests, and reports what happens.
struct Node {
    peer: PeerId,
    requests: mpsc::UnboundedSender<(PeerId, Vec<u8>, Reply)>,
    notes: mpsc::UnboundedReceiver<Note>,
}

impl Node {
    fn run(mut swarm: Swarm<Behaviour>) -> Node {
        let peer = *swarm.local_peer_id();
        let (requests, mut incoming) = mpsc::unbounded_channel::<(PeerId, Vec<u8>, Reply)>();
        let (note, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut pending: HashMap<OutboundRequestId, Reply> = HashMap::new();
            loop {
                tokio::select! {
                    request = incoming.recv() => {
                        let Some((to, data, reply)) = request else { return };
                        pending.insert(swarm.behaviour_mut().echo.send_request(&to, data), reply);
                    }
                    event = swarm.select_next_some() => {
                        let said = match event {
                            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { result, .. })) => match result {
                                Ok(_) => Some(Note::Pinged),
                                Err(err) => Some(Note::Trouble(format!("ping: {err}"))),
                            },
                            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { .. })) => {
                                Some(Note::Identified)
                            }
                            SwarmEvent::Behaviour(BehaviourEvent::Echo(event)) => match event {
                                request_response::Event::Message { message, .. } => match message {
                                    request_response::Message::Request { request, channel, .. } => {
                                        let _ = swarm.behaviour_mut().echo.send_response(channel, request);
                                        None
                                    }
                                    request_response::Message::Response { request_id, response } => {
                                        if let Some(reply) = pending.remove(&request_id) {
                                            let _ = reply.send(Ok(response));
                                        }
                                        None
                                    }
                                },
                                request_response::Event::OutboundFailure { request_id, error, .. } => {
                                    if let Some(reply) = pending.remove(&request_id) {
                                        let _ = reply.send(Err(error.to_string()));
                                    }
                                    None
                                }
                                request_response::Event::InboundFailure { error, .. } => {
                                    Some(Note::Trouble(format!("inbound request failed: {error}")))
                                }
                                request_response::Event::ResponseSent { .. } => None,
                            },
                            SwarmEvent::ConnectionClosed { cause, .. } => {
                                Some(Note::Trouble(format!("connection closed: {cause:?}")))
                            }
                            _ => None,
                        };
                        if let Some(said) = said {
                            let _ = note.send(said);
                        }
                    }
                }
            }
        });
        Node { peer, requests, notes }
    }

    async fn request(&self, to: PeerId, data: Vec<u8>) -> Vec<u8> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((to, data, reply)).expect("node running");
        answer.await.expect("node running").expect("the request succeeded")
    }

    /// Waits until ping and identify have both succeeded; fails on trouble.
    async fn pinged_and_identified(&mut self) {
        let (mut pinged, mut identified) = (false, false);
        while !(pinged && identified) {
            match self.notes.recv().await.expect("node running") {
                Note::Pinged => pinged = true,
                Note::Identified => identified = true,
                Note::Trouble(trouble) => panic!("{trouble}"),
            }
        }
    }

    /// Nothing went wrong so far.
    fn untroubled(&mut self) {
        while let Ok(note) = self.notes.try_recv() {
            if let Note::Trouble(trouble) = note {
                panic!("{trouble}");
            }
        }
    }
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(131) ^ seed) as u8).collect()
}

/// `CONCURRENT` requests at once from `from` to `to`, each echoed intact.
async fn many_streams(from: &Node, to: PeerId) {
    let requests = (0..CONCURRENT).map(|i| async move {
        let sent = pattern(i, 1000 + i);
        let echoed = from.request(to, sent.clone()).await;
        assert!(echoed == sent, "request {i} came back changed");
    });
    futures::future::join_all(requests).await;
}

async fn listening(swarm: &mut Swarm<Behaviour>) -> Multiaddr {
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("valid"))
        .expect("listen");
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            return address;
        }
    }
}

async fn interoperate(dialler: Muxer, listener: Muxer, security: Security) {
    let mut listening_swarm = swarm(listener, security);
    let address = listening(&mut listening_swarm).await;
    let mut dialling_swarm = swarm(dialler, security);
    dialling_swarm.dial(address).expect("dial");
    let mut a = Node::run(dialling_swarm);
    let mut b = Node::run(listening_swarm);

    a.pinged_and_identified().await;
    b.pinged_and_identified().await;

    many_streams(&a, b.peer).await;
    many_streams(&b, a.peer).await;

    let bulk = pattern(99, BULK);
    let echoed = a.request(b.peer, bulk.clone()).await;
    assert_eq!(echoed.len(), BULK);
    assert!(echoed == bulk, "the 8 MiB came back changed");

    a.untroubled();
    b.untroubled();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yamux_dials_hawser() {
    tokio::time::timeout(LIMIT, interoperate(Muxer::Yamux, Muxer::Hawser, Security::Plaintext))
        .await
        .expect("done in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hawser_dials_yamux() {
    tokio::time::timeout(LIMIT, interoperate(Muxer::Hawser, Muxer::Yamux, Security::Noise))
        .await
        .expect("done in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hawser_dials_hawser() {
    tokio::time::timeout(LIMIT, interoperate(Muxer::Hawser, Muxer::Hawser, Security::Noise))
        .await
        .expect("done in time");
}

//! Interop scenarios: hawser's yamux profile against other yamux implementations.
//!
//! The peer is the `yamux` crate (rust-yamux, as used by libp2p) or `tokio-yamux`
//! (tentacle), running on a tokio runtime of its own, at the far end of a loopback
//! TCP connection. hawser runs through any adapter that implements
//! [`InteropHarness`]; [`interop_tests!`](crate::interop_tests) instantiates every
//! scenario for both peers and both roles as tests named
//! `interop::<peer>::<hawser role>::<scenario>`.
//!
//! # Stream commands
//! Whoever opens a stream sends one command byte first; the other side serves it.
//! Both sides serve `E`, `S` and `G`; only the peer serves `W` and `X`.
//!
//! | command | arguments | the serving side |
//! |---|---|---|
//! | `E` echo | | reads to the end, writes it all back in pieces of random size, finishes |
//! | `S` sum | | reads to the end, replies with the [`Digest`](link::Digest) of what it read, finishes |
//! | `G` generate | length, seed (u64 BE) | writes `length` bytes of [`Pattern`](link::Pattern) `seed` in pieces of random size, finishes; the opener finishes only after reading it all |
//! | `W` write | | writes until a write fails (the opener resets), reports the count |
//! | `X` reset | count (u64 BE) | reads `count` bytes, then resets the stream, reports |

pub mod hashicorp;
pub mod link;
pub mod peer;

use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_core::{Config, GoAwayCode, ResetCode, Role};

use crate::harness::{Harness, HarnessSession, HarnessStream};
use crate::rng::Rng;
use crate::scenarios::{fail, race};
use link::{Digest, Path, Pattern};
use peer::{Peer, PeerKind, PeerRole};

#[doc(hidden)]
pub mod __macro {
    pub use super::peer::PeerKind;
    pub use hawser_core::Role;
}

/// An adapter that can run a session over an already connected TCP stream.
pub trait InteropHarness: Harness {
    /// A session with `role` over `link` (a connected, blocking std socket). Called
    /// from within a scenario, so a runtime the adapter needs is current.
    fn session_over(link: TcpStream, role: Role, config: Config) -> io::Result<Self::Session>;
}

/// The stream command bytes.
pub(crate) struct Command;

impl Command {
    pub(crate) const ECHO: u8 = b'E';
    pub(crate) const SUM: u8 = b'S';
    pub(crate) const GENERATE: u8 = b'G';
    pub(crate) const WRITE_UNTIL_FAILURE: u8 = b'W';
    pub(crate) const READ_THEN_RESET: u8 = b'X';
}

type Outcome = Result<(), String>;

/// A hawser session and a peer session, connected.
struct Setup<H: Harness> {
    session: H::Session,
    peer: Peer,
    serving: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// hawser's configuration against `kind`: `Config::yamux()`, except that against
/// tokio-yamux each stream starts with an 8 MiB window. tokio-yamux applies window
/// updates only while its application reads, and never after it has received the
/// FIN, so a reply sent after the request's FIN must fit in what was granted at open.
pub fn hawser_config(kind: PeerKind) -> Config {
    match kind {
        PeerKind::Yamux => Config::yamux(),
        PeerKind::TokioYamux => Config {
            initial_window: 8 << 20,
            receive_budget: 4 << 30,
            ..Config::yamux()
        },
    }
}

async fn connect<H: InteropHarness>(kind: PeerKind, role: Role, path: Path) -> Result<Setup<H>, String> {
    let runtime = Peer::runtime().map_err(fail("peer runtime"))?;
    let (hawser_end, peer_end) = link::connect(path, runtime.handle()).map_err(fail("loopback"))?;
    let peer_role = match role {
        Role::Client => PeerRole::Server,
        Role::Server => PeerRole::Client,
    };
    let peer = Peer::start(kind, peer_role, peer_end, runtime).map_err(fail("peer"))?;
    let session = H::session_over(hawser_end, role, hawser_config(kind)).map_err(fail("hawser session"))?;
    let serving = Box::pin(H::spawn(serve_all::<H>(session.clone())));
    Ok(Setup {
        session,
        peer,
        serving: Some(serving),
    })
}

impl<H: Harness> Setup<H> {
    /// Checks that neither side has ended on its own, then closes hawser's side
    /// and waits for both to wind down.
    async fn finish(mut self) -> Outcome {
        if self.session.is_closed() {
            return Err(format!(
                "the hawser session ended early: {:?}",
                self.session.close_reason()
            ));
        }
        if self.peer.has_ended() {
            return Err(format!("the peer ended early: {:?}", self.peer.ended().await));
        }
        self.session.close(GoAwayCode::NORMAL);
        let ended = within::<H, _>(Duration::from_secs(10), self.peer.ended(), "the peer to see the close").await?;
        if let Err(why) = ended {
            // tokio-yamux answers a go-away with its own; when hawser has already
            // shut the link, that write fails and tokio-yamux reports the broken
            // pipe as its session's error (PROTOCOL.md 11.1). Anything else fails.
            if !(self.peer.kind() == PeerKind::TokioYamux && closed_under_it(&why)) {
                return Err(format!("the peer ended with an error: {why}"));
            }
        }
        if let Some(serving) = self.serving.take() {
            within::<H, _>(Duration::from_secs(10), serving, "hawser's accept loop to end").await?;
        }
        Ok(())
    }
}

/// Whether a peer's error says its last write met a link hawser had closed.
fn closed_under_it(why: &str) -> bool {
    why.contains("Broken pipe") || why.contains("reset by peer")
}

/// `future`'s output, or an error naming `what` if `limit` passes first.
async fn within<H: Harness, F: std::future::Future>(
    limit: Duration,
    future: F,
    what: &str,
) -> Result<F::Output, String> {
    race(future, H::sleep(limit))
        .await
        .ok_or_else(|| format!("timed out after {limit:?} waiting for {what}"))
}

/// Waits until `check` holds, testing every 10 ms, for at most `limit`.
async fn eventually<H: Harness>(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Outcome {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while !check() {
        if waited >= limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        H::sleep(step).await;
        waited += step;
    }
    Ok(())
}

// ---- hawser's side of the stream commands ----

async fn read_exact<S: HarnessStream>(stream: &mut S, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(())
}

/// Reads to the end with read buffers of random size (1 byte to 256 KiB).
async fn read_to_end_random<S: HarnessStream>(stream: &mut S, rng: &mut Rng) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let size = rng.range(1, buf.len() as u64) as usize;
        let n = stream.read(&mut buf[..size]).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Writes `data` in pieces of 1 byte to 1 MiB.
async fn write_pieces<S: HarnessStream>(stream: &mut S, data: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let piece = (rng.range(1, 1 << 20) as usize).min(rest.len());
        stream.write_all(&rest[..piece]).await?;
        rest = &rest[piece..];
    }
    Ok(())
}

async fn serve_all<H: Harness>(session: H::Session) {
    let mut tasks = Vec::new();
    let mut serial = 0u64;
    while let Some(stream) = session.accept().await {
        serial += 1;
        tasks.push(H::spawn(serve(stream, serial)));
    }
    for task in tasks {
        task.await;
    }
}

async fn serve<S: HarnessStream>(mut stream: S, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut command = [0u8; 1];
    if read_exact(&mut stream, &mut command).await.is_err() {
        return;
    }
    match command[0] {
        Command::ECHO => {
            if let Ok(data) = read_to_end_random(&mut stream, &mut rng).await {
                if write_pieces(&mut stream, &data, &mut rng).await.is_ok() {
                    let _ = stream.finish().await;
                }
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
                let _ = stream.finish().await;
            }
        }
        Command::GENERATE => {
            let mut args = [0u8; 16];
            if read_exact(&mut stream, &mut args).await.is_err() {
                return;
            }
            let len = u64::from_be_bytes(args[..8].try_into().expect("8 bytes"));
            let mut pattern = Pattern::new(u64::from_be_bytes(args[8..].try_into().expect("8 bytes")));
            while pattern.position() < len {
                let piece = rng.range(1, 1 << 20).min(len - pattern.position()) as usize;
                if stream.write_all(&pattern.take(piece)).await.is_err() {
                    return;
                }
            }
            let _ = stream.finish().await;
        }
        _ => stream.reset(ResetCode::CANCEL),
    }
}

/// hawser opens an `E` stream, writes `payload` in random pieces, reads the echo.
async fn echo<S: HarnessSession>(session: &S, payload: &[u8], seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut stream = session.open().await.map_err(fail("open"))?;
    stream.write_all(&[Command::ECHO]).await.map_err(fail("write"))?;
    write_pieces(&mut stream, payload, &mut rng)
        .await
        .map_err(fail("write"))?;
    stream.finish().await.map_err(fail("finish"))?;
    let back = read_to_end_random(&mut stream, &mut rng)
        .await
        .map_err(fail("read the echo"))?;
    if back != payload {
        return Err(format!(
            "hawser sent {} bytes, the echo was {} different bytes",
            payload.len(),
            back.len()
        ));
    }
    Ok(())
}

/// The peer opens an `E` stream to hawser.
async fn peer_echo(peer: &Peer, payload: Vec<u8>, seed: u64) -> Outcome {
    let back = peer.echo(payload.clone(), seed).await.map_err(fail("peer echo"))?;
    if back != payload {
        return Err(format!(
            "the peer sent {} bytes, hawser echoed {} different bytes",
            payload.len(),
            back.len()
        ));
    }
    Ok(())
}

/// hawser opens an `S` stream, sends `len` pattern bytes, finishes, and checks the
/// digest the peer replies with after the FIN.
async fn sum<S: HarnessSession>(session: &S, len: u64, seed: u64) -> Outcome {
    let mut stream = session.open().await.map_err(fail("open"))?;
    stream.write_all(&[Command::SUM]).await.map_err(fail("write"))?;
    let mut pattern = Pattern::new(seed);
    let mut sent = Digest::default();
    while pattern.position() < len {
        let chunk = pattern.take((len - pattern.position()).min(64 * 1024) as usize);
        sent.update(&chunk);
        stream.write_all(&chunk).await.map_err(fail("write"))?;
    }
    stream.finish().await.map_err(fail("finish"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = stream.read(&mut buf).await.map_err(fail("read the sum"))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    match Digest::from_bytes(&reply) {
        Some(digest) if digest == sent => Ok(()),
        Some(digest) => Err(format!("hawser sent {sent:?}, the peer received {digest:?}")),
        None => Err(format!("a {}-byte sum reply", reply.len())),
    }
}

/// The peer opens an `S` stream to hawser.
async fn peer_sum(peer: &Peer, len: u64, seed: u64) -> Outcome {
    let (replied, sent) = peer.sum(len, seed).await.map_err(fail("peer sum"))?;
    if replied != sent {
        return Err(format!("the peer sent {sent:?}, hawser received {replied:?}"));
    }
    Ok(())
}

/// hawser opens a `G` stream for `len` pattern bytes and checks them.
async fn fetch<S: HarnessSession>(session: &S, len: u64, seed: u64) -> Outcome {
    let mut stream = session.open().await.map_err(fail("open"))?;
    let mut request = vec![Command::GENERATE];
    request.extend_from_slice(&len.to_be_bytes());
    request.extend_from_slice(&seed.to_be_bytes());
    stream.write_all(&request).await.map_err(fail("write"))?;
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(fail("read"))?;
        if n == 0 {
            break;
        }
        pattern.check(&buf[..n])?;
    }
    if pattern.position() != len {
        return Err(format!("asked for {len} bytes, got {}", pattern.position()));
    }
    stream.finish().await.map_err(fail("finish"))
}

/// The peer opens a `G` stream to hawser.
async fn peer_fetch(peer: &Peer, len: u64, seed: u64) -> Outcome {
    let got = peer.fetch(len, seed).await.map_err(fail("peer fetch"))?;
    if got != len {
        return Err(format!("the peer asked for {len} bytes, got {got}"));
    }
    Ok(())
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Rng::new(seed).fill(&mut out);
    out
}

// ---- the scenarios ----

/// One stream each way, a few bytes and then 1 MiB, echoed.
pub async fn echo_both_ways<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let setup = connect::<H>(kind, role, Path::Direct).await?;
    echo(&setup.session, b"hello, yamux", 1).await?;
    echo(&setup.session, &random(2, 1 << 20), 2).await?;
    peer_echo(&setup.peer, b"hello, hawser".to_vec(), 3).await?;
    peer_echo(&setup.peer, random(4, 1 << 20), 4).await?;
    setup.finish().await
}

/// 100 streams opened by hawser and 100 by the peer, all at once, each echoing
/// 64 KiB of its own data.
pub async fn hundred_streams_with_checksums<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let setup = connect::<H>(kind, role, Path::Direct).await?;
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let session = setup.session.clone();
        let results = results.clone();
        tasks.push(H::spawn(async move {
            let outcome = echo(&session, &random(100 + i, 64 * 1024), i).await;
            results.lock().expect("not poisoned").push(outcome);
        }));
    }
    let peer_echoes: Vec<_> = (0..100u64)
        .map(|i| setup.peer.echo(random(1000 + i, 64 * 1024), i))
        .collect();
    for (i, echoed) in peer_echoes.into_iter().enumerate() {
        let back = echoed.await.map_err(fail("peer echo"))?;
        if back != random(1000 + i as u64, 64 * 1024) {
            return Err(format!("peer stream {i}: the echo differs"));
        }
    }
    for task in tasks {
        task.await;
    }
    let results = std::mem::take(&mut *results.lock().expect("not poisoned"));
    if results.len() != 100 {
        return Err(format!("{} of 100 hawser streams reported", results.len()));
    }
    results.into_iter().collect::<Outcome>()?;
    setup.finish().await
}

/// hawser opens as many streams as the ACK backlog allows (256) and writes on
/// each without finishing. rust-yamux acknowledges a stream only when it first
/// writes on it (here: once it has read the stream to its end), so the 257th
/// open must wait, and go through once earlier streams are answered. tokio-yamux
/// acknowledges at once, so there the 257th open goes straight through.
pub async fn opens_beyond_the_ack_backlog<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let setup = connect::<H>(kind, role, Path::Direct).await?;
    let mut streams = Vec::new();
    for i in 0..256u64 {
        let mut stream = setup.session.open().await.map_err(fail("open"))?;
        stream.write_all(&[Command::ECHO]).await.map_err(fail("write"))?;
        stream.write_all(&random(5000 + i, 1024)).await.map_err(fail("write"))?;
        streams.push(stream);
    }
    let waited = race(setup.session.open(), H::sleep(Duration::from_millis(300))).await;
    match (kind, waited) {
        (PeerKind::Yamux, None) => {}
        (PeerKind::Yamux, Some(_)) => return Err("a 257th open went through with 256 unacknowledged".into()),
        (PeerKind::TokioYamux, Some(Ok(_))) => {}
        (PeerKind::TokioYamux, other) => {
            return Err(format!(
                "tokio-yamux acknowledges at once, yet the 257th open gave {:?}",
                other.map(|r| r.map(|_| ()))
            ))
        }
    }
    for (i, mut stream) in streams.into_iter().enumerate() {
        stream.finish().await.map_err(fail("finish"))?;
        let back = read_to_end_random(&mut stream, &mut Rng::new(i as u64))
            .await
            .map_err(fail("read"))?;
        if back != random(5000 + i as u64, 1024) {
            return Err(format!("stream {i}: the echo differs"));
        }
    }
    within::<H, _>(
        Duration::from_secs(10),
        echo(&setup.session, b"one more", 20),
        "an open after the backlog cleared",
    )
    .await??;
    setup.finish().await
}

/// The opener finishes its side, then reads the reply that the other side writes
/// only after it has seen the FIN; both ways.
pub async fn half_close<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let setup = connect::<H>(kind, role, Path::Direct).await?;
    sum(&setup.session, 300 * 1024, 5).await?;
    peer_sum(&setup.peer, 300 * 1024, 6).await?;
    setup.finish().await
}

/// hawser resets a stream the peer is writing to, and the peer resets a stream
/// hawser is writing to; each side sees its writes fail, and the session carries on.
pub async fn resets_both_ways<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let mut setup = connect::<H>(kind, role, Path::Direct).await?;

    // hawser resets.
    let mut stream = setup.session.open().await.map_err(fail("open"))?;
    stream
        .write_all(&[Command::WRITE_UNTIL_FAILURE])
        .await
        .map_err(fail("write"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0;
    while read < 64 * 1024 {
        let n = stream.read(&mut buf).await.map_err(fail("read"))?;
        if n == 0 {
            return Err("the peer finished a stream it should write to until reset".into());
        }
        read += n;
    }
    stream.reset(ResetCode::CANCEL);
    let report = within::<H, _>(
        Duration::from_secs(10),
        setup.peer.next_report(),
        "the peer to see the reset",
    )
    .await?
    .ok_or("the peer stopped reporting")?;
    if report.command != Command::WRITE_UNTIL_FAILURE || report.result.is_err() {
        return Err(format!("the peer reported {report:?}"));
    }

    // The peer resets.
    let mut stream = setup.session.open().await.map_err(fail("open"))?;
    let mut request = vec![Command::READ_THEN_RESET];
    request.extend_from_slice(&(64u64 * 1024).to_be_bytes());
    stream.write_all(&request).await.map_err(fail("write"))?;
    let chunk = vec![0xa5u8; 16 * 1024];
    let mut written = 0u64;
    let write_error = loop {
        match stream.write_all(&chunk).await {
            Ok(()) => written += chunk.len() as u64,
            Err(err) => break err,
        }
        if written > 256 << 20 {
            return Err("wrote 256 MiB to a stream the peer reset after 64 KiB".into());
        }
    };
    // rust-yamux acknowledges a stream only when it first sends on it, so its RST on
    // a stream it only read from is the frame Go peers use to refuse one.
    let expected = match kind {
        PeerKind::Yamux => io::ErrorKind::ConnectionRefused,
        PeerKind::TokioYamux => io::ErrorKind::ConnectionReset,
    };
    if write_error.kind() != expected {
        return Err(format!(
            "a write after the peer's reset failed with {write_error} ({:?})",
            write_error.kind()
        ));
    }
    let report = within::<H, _>(Duration::from_secs(10), setup.peer.next_report(), "the peer's report")
        .await?
        .ok_or("the peer stopped reporting")?;
    if report.command != Command::READ_THEN_RESET || report.result.as_ref().ok() != Some(&(64 * 1024)) {
        return Err(format!("the peer reported {report:?}"));
    }
    let stats = setup.session.control().stats();
    if stats.resets_sent < 1 || stats.resets_received < 1 {
        return Err(format!(
            "counters say {} resets sent, {} received",
            stats.resets_sent, stats.resets_received
        ));
    }

    echo(&setup.session, b"still here", 7).await?;
    peer_echo(&setup.peer, b"still here".to_vec(), 8).await?;
    setup.finish().await
}

/// One stream moves 64 MiB each way over a link with a 4 ms round trip. The peer
/// must grow its window past the initial 256 KiB, and hawser must use the larger
/// window without ever overrunning it (the peer would end the session).
pub async fn sixty_four_mib_on_one_stream<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    const LEN: u64 = 64 << 20;
    let setup = connect::<H>(kind, role, Path::Delayed(Duration::from_millis(2))).await?;
    fetch(&setup.session, LEN, 9).await?;
    sum(&setup.session, LEN, 10).await?;
    let peak = setup.session.control().stats().send_window_peak;
    if peak <= 256 * 1024 {
        return Err(format!(
            "the most credit the peer granted was {peak} bytes: its window never grew"
        ));
    }
    setup.finish().await
}

/// Each side pings the other and gets its answer: hawser measures an RTT, and
/// answers the peer's pings (rust-yamux pings once at the start to measure its
/// RTT; tokio-yamux is set to ping every 250 ms).
pub async fn pings<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let setup = connect::<H>(kind, role, Path::Direct).await?;
    setup.session.control().ping().map_err(fail("ping"))?;
    let control = setup.session.control();
    eventually::<H>(Duration::from_secs(5), "an RTT sample", || {
        control.stats().rtt_last.is_some()
    })
    .await?;
    eventually::<H>(Duration::from_secs(5), "a ping from the peer", || {
        control.stats().pings_answered >= 1
    })
    .await?;
    if kind == PeerKind::TokioYamux {
        // A keepalive that went unanswered would have ended the session.
        H::sleep(Duration::from_millis(600)).await;
        let answered = control.stats().pings_answered;
        if answered < 2 {
            return Err(format!("answered {answered} keepalive pings in about a second"));
        }
    }
    echo(&setup.session, b"after pings", 11).await?;
    setup.finish().await
}

/// hawser goes away. The peer implementations end the session on any go-away
/// (rust-yamux at once; tokio-yamux answers with its own go-away), and hawser
/// opens no new streams.
pub async fn go_away_from_hawser<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let mut setup = connect::<H>(kind, role, Path::Direct).await?;
    echo(&setup.session, b"before the go-away", 12).await?;
    setup.session.go_away(GoAwayCode::NORMAL).map_err(fail("go away"))?;
    if setup.session.open().await.is_ok() {
        return Err("hawser opened a stream after its own go-away".into());
    }
    let ended = within::<H, _>(Duration::from_secs(10), setup.peer.ended(), "the peer to end").await?;
    // With no streams left, hawser's drain ends at once and it closes the link;
    // tokio-yamux's answering go-away may then meet a closed socket, which it
    // reports as an error. Any other error is a failure.
    if let Err(why) = ended {
        if !(kind == PeerKind::TokioYamux && closed_under_it(&why)) {
            return Err(format!("the peer ended with an error: {why}"));
        }
    }
    let session = setup.session.clone();
    eventually::<H>(Duration::from_secs(10), "the hawser session to end", || {
        session.is_closed()
    })
    .await?;
    if let Some(serving) = setup.serving.take() {
        within::<H, _>(Duration::from_secs(10), serving, "hawser's accept loop to end").await?;
    }
    Ok(())
}

/// The peer goes away and closes. hawser's session ends, saying the peer went
/// away, and refuses new opens.
pub async fn go_away_from_peer<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let mut setup = connect::<H>(kind, role, Path::Direct).await?;
    echo(&setup.session, b"before the go-away", 13).await?;
    peer_echo(&setup.peer, b"before the go-away".to_vec(), 14).await?;
    within::<H, _>(Duration::from_secs(10), setup.peer.close(), "the peer to close").await?;
    let session = setup.session.clone();
    eventually::<H>(Duration::from_secs(10), "the hawser session to end", || {
        session.is_closed()
    })
    .await?;
    if let Some(reason) = setup.session.close_reason() {
        return Err(format!(
            "a normal go-away from the peer ended the session with {reason}"
        ));
    }
    if setup.session.open().await.is_ok() {
        return Err("hawser opened a stream after the peer went away".into());
    }
    if let Some(serving) = setup.serving.take() {
        within::<H, _>(Duration::from_secs(10), serving, "hawser's accept loop to end").await?;
    }
    Ok(())
}

/// Writes of random sizes (1 byte to 1 MiB), reads of random sizes, and a link
/// that delivers the byte stream in pieces of 1 to 1500 bytes, so that frame
/// headers and payloads arrive cut at random points; both ways.
pub async fn random_sizes_and_split_points<H: InteropHarness>(kind: PeerKind, role: Role) -> Outcome {
    let setup = connect::<H>(kind, role, Path::Split { max: 1500, seed: 15 }).await?;
    echo(&setup.session, &random(16, 4 << 20), 16).await?;
    peer_echo(&setup.peer, random(17, 4 << 20), 17).await?;
    fetch(&setup.session, 4 << 20, 18).await?;
    peer_fetch(&setup.peer, 4 << 20, 19).await?;
    setup.finish().await
}

/// Instantiates every interop scenario as a `#[test]`, for both peers and both
/// roles, in a module named `interop`, for harness `$harness` (an
/// [`InteropHarness`]), each run by `$run` (an expression that takes a future
/// and blocks on it, with a time limit).
#[macro_export]
macro_rules! interop_tests {
    ($harness:ty, $run:expr) => {
        mod interop {
            use super::*;
            $crate::interop_tests!(@peer $harness, $run; yamux, Yamux);
            $crate::interop_tests!(@peer $harness, $run; tokio_yamux, TokioYamux);
        }
    };
    (@peer $harness:ty, $run:expr; $module:ident, $kind:ident) => {
        mod $module {
            use super::*;
            $crate::interop_tests!(@role $harness, $run; $kind, hawser_client, Client);
            $crate::interop_tests!(@role $harness, $run; $kind, hawser_server, Server);
        }
    };
    (@role $harness:ty, $run:expr; $kind:ident, $module:ident, $role:ident) => {
        mod $module {
            use super::*;
            $crate::interop_tests!(@each $harness, $run, $kind, $role;
                echo_both_ways, hundred_streams_with_checksums, opens_beyond_the_ack_backlog, half_close, resets_both_ways,
                sixty_four_mib_on_one_stream, pings, go_away_from_hawser, go_away_from_peer,
                random_sizes_and_split_points);
        }
    };
    (@each $harness:ty, $run:expr, $kind:ident, $role:ident; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let outcome: Result<(), String> = ($run)($crate::interop::$name::<$harness>(
                    $crate::interop::__macro::PeerKind::$kind,
                    $crate::interop::__macro::Role::$role,
                ));
                if let Err(why) = outcome {
                    panic!("interop scenario {} failed: {why}", stringify!($name));
                }
            }
        )*
    };
}

//! Loopback links for the interop scenarios: a plain TCP pair, and relays that
//! add latency or cut the byte stream into random pieces on its way through.

use std::collections::VecDeque;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::rng::Rng;

/// What sits between hawser and the peer.
#[derive(Clone, Copy, Debug)]
pub enum Path {
    /// A direct loopback TCP connection.
    Direct,
    /// A relay that holds every byte for this long in each direction, so that a
    /// round trip takes about twice as long. Throughput is not limited.
    Delayed(Duration),
    /// A relay that forwards the bytes in pieces of 1 byte to `max` bytes, each
    /// written (and pushed out with `TCP_NODELAY`) separately, so that frames
    /// arrive cut at random points. The seed makes the cuts repeatable.
    Split {
        /// The largest piece.
        max: usize,
        /// Seed for the piece sizes.
        seed: u64,
    },
}

/// A connected loopback TCP pair (dialled end, accepted end).
pub fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let dialled = TcpStream::connect(listener.local_addr()?)?;
    let (accepted, _) = listener.accept()?;
    dialled.set_nodelay(true)?;
    accepted.set_nodelay(true)?;
    Ok((dialled, accepted))
}

/// Two TCP streams joined by `path`: bytes written to one come out of the other.
/// Relays run as tasks on `runtime` and end when either side closes.
pub fn connect(path: Path, runtime: &Handle) -> io::Result<(TcpStream, TcpStream)> {
    if let Path::Direct = path {
        return tcp_pair();
    }
    let (near, relay_near) = tcp_pair()?;
    let (relay_far, far) = tcp_pair()?;
    relay_near.set_nonblocking(true)?;
    relay_far.set_nonblocking(true)?;
    let _guard = runtime.enter();
    let relay_near = tokio::net::TcpStream::from_std(relay_near)?;
    let relay_far = tokio::net::TcpStream::from_std(relay_far)?;
    let (near_read, near_write) = relay_near.into_split();
    let (far_read, far_write) = relay_far.into_split();
    match path {
        Path::Direct => unreachable!("handled above"),
        Path::Delayed(delay) => {
            runtime.spawn(delayed(near_read, far_write, delay));
            runtime.spawn(delayed(far_read, near_write, delay));
        }
        Path::Split { max, seed } => {
            runtime.spawn(split(near_read, far_write, max, Rng::new(seed)));
            runtime.spawn(split(far_read, near_write, max, Rng::new(seed.wrapping_add(1))));
        }
    }
    Ok((near, far))
}

/// Forwards `from` to `to`, each chunk held back until `delay` after it was read.
/// The reader never waits for the writer, so the delay adds latency, not a
/// throughput limit.
async fn delayed(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, delay: Duration) {
    let (chunks_tx, mut chunks_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if chunks_tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    while let Some((due, chunk)) = chunks_rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    reader.abort();
    let _ = to.shutdown().await;
}

/// Forwards `from` to `to` in pieces of random size.
async fn split(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    max: usize,
    mut rng: Rng,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: VecDeque<u8> = VecDeque::new();
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => pending.extend(&buf[..n]),
        }
        while !pending.is_empty() {
            let piece = (rng.range(1, max as u64) as usize).min(pending.len());
            let bytes: Vec<u8> = pending.drain(..piece).collect();
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            if rng.chance(1, 4) {
                tokio::task::yield_now().await;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A byte stream that depends only on a seed and the position, so that a receiver
/// can check any slice of it without holding the whole, and a piece delivered
/// twice, lost or out of place shows up.
#[derive(Clone, Debug)]
pub struct Pattern {
    seed: u64,
    position: u64,
}

impl Pattern {
    /// The stream for `seed`, from its first byte.
    pub fn new(seed: u64) -> Self {
        Pattern { seed, position: 0 }
    }

    /// How many bytes have been produced or checked.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn byte_at(&self, position: u64) -> u8 {
        let word = mix(self.seed ^ mix(position / 8));
        (word >> (8 * (position % 8))) as u8
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = self.byte_at(self.position + i as u64);
        }
        self.position += buf.len() as u64;
    }

    /// The next `len` bytes of the stream.
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.fill(&mut out);
        out
    }

    /// Checks that `data` is the next part of the stream; on a mismatch, the
    /// error names the first wrong byte's position.
    pub fn check(&mut self, data: &[u8]) -> Result<(), String> {
        for (i, &byte) in data.iter().enumerate() {
            let at = self.position + i as u64;
            if byte != self.byte_at(at) {
                return Err(format!("byte {at} of the stream is wrong"));
            }
        }
        self.position += data.len() as u64;
        Ok(())
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed function of a word.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A running FNV-1a checksum over everything fed to it, with the byte count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Bytes fed.
    pub len: u64,
    /// The FNV-1a 64 hash of those bytes.
    pub hash: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Digest {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        for &byte in data {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.len += data.len() as u64;
    }

    /// The 16-byte wire form: length then hash, big-endian.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.len.to_be_bytes());
        out[8..].copy_from_slice(&self.hash.to_be_bytes());
        out
    }

    /// Parses the 16-byte wire form.
    pub fn from_bytes(bytes: &[u8]) -> Option<Digest> {
        if bytes.len() != 16 {
            return None;
        }
        let len = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let hash = u64::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(Digest { len, hash })
    }
}

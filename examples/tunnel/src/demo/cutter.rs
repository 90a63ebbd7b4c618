//! What the demo needs of a flaky network, on the demo's own runtime: a
//! relay that can cut every connection through it at once, and a byte
//! pattern that tells a lost, repeated or reordered byte from a good one.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP relay on loopback to one target.
pub(super) struct LinkCutter {
    addr: SocketAddr,
    relays: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
    cuts: AtomicU64,
}

impl LinkCutter {
    /// Relays every connection to its address on to `target`.
    pub(super) async fn start(target: SocketAddr) -> io::Result<LinkCutter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let relays: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let live = relays.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut near, _)) = listener.accept().await {
                let Ok(mut far) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = (near.set_nodelay(true), far.set_nodelay(true));
                let relay = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut near, &mut far).await;
                });
                let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
                live.retain(|relay| !relay.is_finished());
                live.push(relay.abort_handle());
            }
        })
        .abort_handle();
        Ok(LinkCutter {
            addr,
            relays,
            accepting,
            cuts: AtomicU64::new(0),
        })
    }

    /// Where clients connect.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every connection through the relay: what it held in flight is
    /// lost and both ends see their connection end, as when a path dies.
    pub(super) fn cut(&self) {
        let mut live = self.relays.lock().unwrap_or_else(|p| p.into_inner());
        if live.iter().any(|relay| !relay.is_finished()) {
            self.cuts.fetch_add(1, Ordering::Relaxed);
        }
        live.drain(..).for_each(|relay| relay.abort());
    }

    /// How many cuts found a connection to cut.
    pub(super) fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for LinkCutter {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// A pseudo-random byte sequence per seed (a 64-bit LCG's top byte), so that
/// the bytes a connection sends can be told apart from any other position.
pub(super) struct Pattern {
    state: u64,
    position: u64,
}

impl Pattern {
    pub(super) fn new(seed: u64) -> Pattern {
        Pattern {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            position: 0,
        }
    }

    /// Bytes produced or checked so far.
    pub(super) fn position(&self) -> u64 {
        self.position
    }

    fn next_byte(&mut self) -> u8 {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.position += 1;
        (self.state >> 56) as u8
    }

    /// The next `len` bytes.
    pub(super) fn take(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_byte()).collect()
    }

    /// Checks that `data` is what comes next; names the first wrong byte.
    pub(super) fn check(&mut self, data: &[u8]) -> Result<(), String> {
        for &byte in data {
            let at = self.position;
            if self.next_byte() != byte {
                return Err(format!("byte {at} differs from what was sent"));
            }
        }
        Ok(())
    }
}

//! A fault-injecting TCP proxy on loopback: it forwards every connection to a
//! target and kills all of them on demand, as a flaky network would.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

/// A proxy between a client and `target`; see [`kill_all`](Self::kill_all).
pub struct KillProxy {
    addr: SocketAddr,
    runtime: Option<Runtime>,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    kills: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Drop for KillProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl KillProxy {
    /// Listens on an ephemeral loopback port and forwards to `target`, on a
    /// runtime of its own.
    pub fn start(target: SocketAddr) -> io::Result<KillProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std_listener.set_nonblocking(true)?;
            TcpListener::from_std(std_listener)?
        };
        let addr = listener.local_addr()?;
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = live.clone();
        let counted = connections.clone();
        runtime.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                counted.fetch_add(1, Ordering::Relaxed);
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                });
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                });
                let mut live = accepted.lock().unwrap_or_else(|p| p.into_inner());
                live.retain(|handle| !handle.is_finished());
                live.push(up.abort_handle());
                live.push(down.abort_handle());
            }
        });
        Ok(KillProxy {
            addr,
            runtime: Some(runtime),
            live,
            kills: Arc::default(),
            connections,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills every connection through the proxy at once: bytes in flight in the
    /// proxy are lost, and both ends see their connection end. Returns how many
    /// forwarding directions were cut (0 if nothing was connected).
    pub fn kill_all(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let cut = live.iter().filter(|handle| !handle.is_finished()).count();
        for handle in live.drain(..) {
            handle.abort();
        }
        if cut > 0 {
            self.kills.fetch_add(1, Ordering::Relaxed);
        }
        cut
    }

    /// How many times [`kill_all`](Self::kill_all) cut something.
    pub fn kills(&self) -> u64 {
        self.kills.load(Ordering::Relaxed)
    }

    /// Connections the proxy has carried.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

//! A fault-injecting TCP proxy on loopback: it forwards every connection to a
//! target and kills all of them on demand, as a flaky network would.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// One forwarded connection: its task, the cue to cut only its client side,
/// and the cue to stop forwarding with both sides kept open.
struct Forwarded {
    task: AbortHandle,
    cut_client: Arc<Notify>,
    blackhole: Arc<Notify>,
}

/// How a forwarded connection stopped.
enum Stop {
    /// Either side ended it.
    Ended,
    /// The client side was closed; the server side stays, silent.
    ClientCut,
    /// Nothing is forwarded any more; both sides stay open, silent.
    Blackholed,
}

/// A proxy between a client and `target`; see [`kill_all`](Self::kill_all).
pub struct KillProxy {
    addr: SocketAddr,
    runtime: Option<Runtime>,
    live: Arc<Mutex<Vec<Forwarded>>>,
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
        let live: Arc<Mutex<Vec<Forwarded>>> = Arc::default();
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = live.clone();
        let counted = connections.clone();
        // Server sides whose client side was cut: kept open (and silent) until
        // the proxy goes, so that the server never learns of the loss.
        let silent: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        runtime.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                counted.fetch_add(1, Ordering::Relaxed);
                let cut_client = Arc::new(Notify::new());
                let cue = cut_client.clone();
                let blackhole = Arc::new(Notify::new());
                let hole = blackhole.clone();
                let silent = silent.clone();
                let task = tokio::spawn(async move {
                    let cut = {
                        let (mut in_read, mut in_write) = inbound.split();
                        let (mut out_read, mut out_write) = outbound.split();
                        let up = async {
                            let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut out_write).await;
                        };
                        let down = async {
                            let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut in_write).await;
                        };
                        tokio::select! {
                            _ = async { tokio::join!(up, down) } => Stop::Ended,
                            _ = cue.notified() => Stop::ClientCut,
                            _ = hole.notified() => Stop::Blackholed,
                        }
                    };
                    let mut silent = silent.lock().unwrap_or_else(|p| p.into_inner());
                    match cut {
                        Stop::Ended => {}
                        Stop::ClientCut => {
                            drop(inbound);
                            silent.push(outbound);
                        }
                        Stop::Blackholed => {
                            silent.push(inbound);
                            silent.push(outbound);
                        }
                    }
                });
                let mut live = accepted.lock().unwrap_or_else(|p| p.into_inner());
                live.retain(|forwarded| !forwarded.task.is_finished());
                live.push(Forwarded {
                    task: task.abort_handle(),
                    cut_client,
                    blackhole,
                });
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
    /// connections were cut (0 if nothing was connected).
    pub fn kill_all(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let cut = live.iter().filter(|forwarded| !forwarded.task.is_finished()).count();
        for forwarded in live.drain(..) {
            forwarded.task.abort();
        }
        if cut > 0 {
            self.kills.fetch_add(1, Ordering::Relaxed);
        }
        cut
    }

    /// Closes the client side of every connection and leaves the server side
    /// open and silent, as when a middlebox forgets a connection: the client
    /// sees its link end, the server sees nothing. Returns how many
    /// connections were cut.
    pub fn cut_client_sides(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let cut = live.iter().filter(|forwarded| !forwarded.task.is_finished()).count();
        for forwarded in live.drain(..) {
            forwarded.cut_client.notify_one();
        }
        if cut > 0 {
            self.kills.fetch_add(1, Ordering::Relaxed);
        }
        cut
    }

    /// Stops forwarding on every connection through the proxy, keeping both
    /// sides open: neither end sees its connection end, and nothing it sends
    /// arrives any more, as when a client moves to another network and its
    /// old path goes silent. New connections are forwarded as before. Needs
    /// no privileges. Returns how many connections went silent.
    pub fn blackhole_all(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let silenced = live.iter().filter(|forwarded| !forwarded.task.is_finished()).count();
        for forwarded in live.drain(..) {
            forwarded.blackhole.notify_one();
        }
        silenced
    }

    /// How many times [`kill_all`](Self::kill_all) cut something.
    pub fn kills(&self) -> u64 {
        self.kills.load(Ordering::Relaxed)
    }

    /// Connections through the proxy now (dialled through to the target, and
    /// not ended).
    pub fn open_connections(&self) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter().filter(|forwarded| !forwarded.task.is_finished()).count()
    }

    /// Connections the proxy has carried.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

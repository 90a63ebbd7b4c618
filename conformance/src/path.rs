//! A packet-level network path between two network namespaces, for tests and
//! the benchmark: kernel TCP at both ends, and in between a userspace path
//! with one-way delay, a bottleneck rate, a drop-tail queue, random loss, a
//! blackhole switch, and a client that can move to another address.
//!
//! [`EmulatedPath::new`] makes two namespaces (`client` and `server`), a TUN
//! device in each, and a forwarder thread that carries IPv4 packets between
//! the two devices according to a [`PathSpec`]. Nothing it makes is reachable
//! from, or reaches, any other network: the only addresses are the two ends'
//! addresses inside their namespaces, and the namespaces are deleted when the
//! path is dropped.
//!
//! It needs Linux, root (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), `/dev/net/tun`
//! and the `ip` command; where any of them is missing, `new` returns
//! [`Unavailable`] with the reason, and tests print it and skip.
//!
//! Code runs inside a namespace on a thread of its own
//! ([`EmulatedPath::spawn_in`]); a socket made there stays in that namespace
//! wherever it is used later. Programs run inside with
//! [`EmulatedPath::command_in`].
//!
//! ```
//! use std::io::{Read, Write};
//! use hawser_conformance::path::{EmulatedPath, PathSpec, Side};
//!
//! let path = match EmulatedPath::new(PathSpec::lan()) {
//!     Ok(path) => path,
//!     Err(unavailable) => {
//!         eprintln!("skipped: {unavailable}");
//!         return;
//!     }
//! };
//! let server = path.server_ip();
//! let listener = path.listen(Side::Server, 7000).unwrap();
//! let echo = std::thread::spawn(move || {
//!     let (mut socket, _) = listener.accept().unwrap();
//!     let mut byte = [0u8; 1];
//!     socket.read_exact(&mut byte).unwrap();
//!     socket.write_all(&byte).unwrap();
//! });
//! let reply = path
//!     .spawn_in(Side::Client, move || {
//!         let mut socket = std::net::TcpStream::connect((server, 7000)).unwrap();
//!         socket.write_all(b"h").unwrap();
//!         let mut byte = [0u8; 1];
//!         socket.read_exact(&mut byte).unwrap();
//!         byte[0]
//!     })
//!     .join()
//!     .unwrap();
//! assert_eq!(reply, b'h');
//! echo.join().unwrap();
//! ```

use std::fmt;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::rng::Rng;

/// The device's name inside each namespace: the namespaces are the path's own,
/// so the name never meets another.
const DEVICE: &str = "hawser0";

/// The addresses' network: private, and only ever inside the path's namespaces.
const PREFIX_LEN: u8 = 24;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const FIRST_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);

/// What the path between the two ends is like, in each direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathSpec {
    /// Time from leaving the bottleneck to arriving at the other end.
    /// The round trip is twice this, plus queueing.
    pub one_way_delay: Duration,
    /// The bottleneck's rate, in bits per second; `None`: no limit but the
    /// forwarder's own speed.
    pub rate_bits_per_sec: Option<u64>,
    /// Bytes the bottleneck queues before it drops arriving packets (drop-tail).
    pub queue_bytes: usize,
    /// The chance that a packet is lost, in parts per million.
    pub loss_per_million: u32,
    /// The devices' MTU.
    pub mtu: u16,
    /// Seed for the loss pattern.
    pub seed: u64,
}

impl PathSpec {
    /// A long fat path: 100 ms round trip, 500 Mbit/s, a 4 MiB drop-tail
    /// queue, no random loss, Ethernet's MTU.
    pub fn wan() -> PathSpec {
        PathSpec {
            one_way_delay: Duration::from_millis(50),
            rate_bits_per_sec: Some(500_000_000),
            queue_bytes: 4 << 20,
            loss_per_million: 0,
            mtu: 1500,
            seed: 1,
        }
    }

    /// A short path: 10 ms round trip, 100 Mbit/s, a 1 MiB queue: quick to
    /// cross, for tests whose subject is an outage rather than the path.
    pub fn lan() -> PathSpec {
        PathSpec {
            one_way_delay: Duration::from_millis(5),
            rate_bits_per_sec: Some(100_000_000),
            queue_bytes: 1 << 20,
            loss_per_million: 0,
            mtu: 1500,
            seed: 1,
        }
    }
}

/// Which end of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that dials; its address can change.
    Client,
    /// The end that listens.
    Server,
}

/// Something that happens to the path, for [`EmulatedPath::impose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Every packet vanishes for this long; then the path returns.
    Silence(Duration),
    /// The client moves to another address: connections from the old one
    /// never deliver again ([`EmulatedPath::change_client_address`]).
    ClientMoves,
}

/// Why no path could be made here: tests print it and skip.
#[derive(Debug)]
pub struct Unavailable {
    reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no emulated path: {}", self.reason)
    }
}

impl std::error::Error for Unavailable {}

fn unavailable(reason: impl Into<String>) -> Unavailable {
    Unavailable { reason: reason.into() }
}

/// What the path did with the packets it was given, counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Packets delivered to the other end.
    pub delivered: u64,
    /// Packets dropped because the bottleneck's queue was full.
    pub dropped_queue_full: u64,
    /// Packets dropped at random ([`PathSpec::loss_per_million`]).
    pub dropped_lost: u64,
    /// Packets dropped while the path was a blackhole, or to or from an
    /// address the client has left.
    pub dropped_silent: u64,
}

/// The switches the forwarder reads for every packet.
#[derive(Default)]
struct Switches {
    blackhole: AtomicBool,
    /// Addresses the client has moved away from: packets to or from them vanish,
    /// as they would after a move to another network.
    left: Mutex<Vec<Ipv4Addr>>,
    delivered: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_lost: AtomicU64,
    dropped_silent: AtomicU64,
}

impl Switches {
    fn silences(&self, packet: &[u8]) -> bool {
        if self.blackhole.load(Ordering::Relaxed) {
            return true;
        }
        let (Some(source), Some(destination)) = (ipv4_field(packet, 12), ipv4_field(packet, 16)) else {
            return true;
        };
        let left = self.left.lock().expect("no code panics while holding the list");
        left.contains(&source) || left.contains(&destination)
    }
}

fn ipv4_field(packet: &[u8], at: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

/// Two network namespaces joined by an emulated path; see the [module docs](self).
pub struct EmulatedPath {
    names: [String; 2],
    spec: PathSpec,
    client_ip: Mutex<Ipv4Addr>,
    switches: Arc<Switches>,
    stop: Option<watch::Sender<bool>>,
    forwarder: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for EmulatedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatedPath")
            .field("namespaces", &self.names)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl EmulatedPath {
    /// Makes the namespaces, their devices and the forwarder between them.
    pub fn new(spec: PathSpec) -> Result<EmulatedPath, Unavailable> {
        if !cfg!(target_os = "linux") {
            return Err(unavailable("network namespaces need Linux"));
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err(unavailable("/dev/net/tun is missing"));
        }
        remove_leftovers();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stem = format!("hawser-{}-{n}", std::process::id());
        let names = [format!("{stem}-client"), format!("{stem}-server")];
        // The path owns what it made from here on: dropping it deletes both.
        let mut path = EmulatedPath {
            names,
            spec,
            client_ip: Mutex::new(FIRST_CLIENT_IP),
            switches: Arc::default(),
            stop: None,
            forwarder: None,
        };
        for name in &path.names {
            ip(&["netns", "add", name]).map_err(|e| unavailable(format!("`ip netns add`: {e}")))?;
        }
        let client = path.make_device(Side::Client, FIRST_CLIENT_IP)?;
        let server = path.make_device(Side::Server, SERVER_IP)?;
        let (stop, stopped) = watch::channel(false);
        let switches = path.switches.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("the forwarder's runtime: {e}")))?;
        let (client, server) = {
            let _inside = runtime.enter();
            let pollable =
                |device| tun::AsyncDevice::new(device).map_err(|e| unavailable(format!("polling a TUN device: {e}")));
            (Arc::new(pollable(client)?), Arc::new(pollable(server)?))
        };
        let forwarder = thread::Builder::new()
            .name("hawser-path".into())
            .spawn(move || runtime.block_on(forward(client, server, spec, switches, stopped)))
            .map_err(|e| unavailable(format!("the forwarder's thread: {e}")))?;
        path.stop = Some(stop);
        path.forwarder = Some(forwarder);
        Ok(path)
    }

    fn namespace(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.names[0],
            Side::Server => &self.names[1],
        }
    }

    fn make_device(&self, side: Side, address: Ipv4Addr) -> Result<tun::Device, Unavailable> {
        let namespace = self.namespace(side).to_owned();
        let mtu = self.spec.mtu;
        let device = self
            .spawn_in(side, move || {
                let mut config = tun::Configuration::default();
                config.tun_name(DEVICE).mtu(mtu);
                config.platform_config(|linux| {
                    // Addresses and state are set with `ip` below, in the namespace.
                    linux.ensure_root_privileges(false);
                });
                tun::Device::new(&config)
            })
            .join()
            .map_err(|_| unavailable("the namespace thread panicked"))?
            .map_err(|e| unavailable(format!("a TUN device in {namespace}: {e}")))?;
        let configure = |args: &[&str]| {
            let mut full = vec!["-n", &namespace];
            full.extend_from_slice(args);
            ip(&full).map_err(|e| unavailable(format!("`ip {}`: {e}", full.join(" "))))
        };
        let mtu = mtu.to_string();
        let cidr = format!("{address}/{PREFIX_LEN}");
        configure(&["link", "set", "lo", "up"])?;
        configure(&["link", "set", DEVICE, "mtu", &mtu, "up"])?;
        configure(&["addr", "add", &cidr, "dev", DEVICE])?;
        Ok(device)
    }

    /// The server's address, inside the server's namespace.
    pub fn server_ip(&self) -> Ipv4Addr {
        SERVER_IP
    }

    /// The client's address now, inside the client's namespace.
    pub fn client_ip(&self) -> Ipv4Addr {
        *self.client_ip.lock().expect("no code panics while holding the address")
    }

    /// What the path is like.
    pub fn spec(&self) -> PathSpec {
        self.spec
    }

    /// Silences the path (`true`): every packet, either way, vanishes,
    /// including those already on their way; no end is told. `false` brings
    /// the path back.
    pub fn blackhole(&self, silent: bool) {
        self.switches.blackhole.store(silent, Ordering::Relaxed);
    }

    /// Moves the client to another address, as when a laptop joins another
    /// network: connections made from the old address never deliver another
    /// packet (neither end is told), new ones are made from the new address.
    /// Returns the new address.
    pub fn change_client_address(&self) -> io::Result<Ipv4Addr> {
        let mut current = self.client_ip.lock().expect("no code panics while holding the address");
        let old = *current;
        let new = Ipv4Addr::from(u32::from(old) + 1);
        self.switches
            .left
            .lock()
            .expect("no code panics while holding the list")
            .push(old);
        let namespace = self.namespace(Side::Client);
        let old_cidr = format!("{old}/{PREFIX_LEN}");
        let new_cidr = format!("{new}/{PREFIX_LEN}");
        ip(&["-n", namespace, "addr", "del", &old_cidr, "dev", DEVICE])?;
        ip(&["-n", namespace, "addr", "add", &new_cidr, "dev", DEVICE])?;
        *current = new;
        Ok(new)
    }

    /// Imposes `outage` on a thread of its own, and returns it: it ends with
    /// the moment the path is usable again (the silence is over, or the client
    /// has its new address).
    pub fn impose(self: &Arc<Self>, outage: Outage) -> thread::JoinHandle<std::time::Instant> {
        let path = self.clone();
        thread::spawn(move || {
            match outage {
                Outage::Silence(length) => {
                    path.blackhole(true);
                    thread::sleep(length);
                    path.blackhole(false);
                }
                Outage::ClientMoves => {
                    path.change_client_address()
                        .unwrap_or_else(|e| panic!("moving the client: {e}"));
                }
            }
            std::time::Instant::now()
        })
    }

    /// Counts of what the path did with packets so far.
    pub fn stats(&self) -> PathStats {
        let s = &self.switches;
        PathStats {
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped_queue_full: s.dropped_queue_full.load(Ordering::Relaxed),
            dropped_lost: s.dropped_lost.load(Ordering::Relaxed),
            dropped_silent: s.dropped_silent.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` on a new thread inside `side`'s namespace. Sockets it makes
    /// belong to that namespace, wherever they are used afterwards; so do
    /// runtimes' threads it starts.
    pub fn spawn_in<F, R>(&self, side: Side, f: F) -> thread::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let handle = format!("/run/netns/{}", self.namespace(side));
        thread::spawn(move || {
            let namespace =
                File::open(&handle).unwrap_or_else(|e| panic!("the namespace made by this path ({handle}): {e}"));
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("entering {handle}: {e}"));
            f()
        })
    }

    /// A TCP listener bound to `port` on `side`'s address, inside its
    /// namespace (as a std listener: convert it for any runtime).
    pub fn listen(&self, side: Side, port: u16) -> io::Result<std::net::TcpListener> {
        let ip = match side {
            Side::Client => self.client_ip(),
            Side::Server => self.server_ip(),
        };
        self.spawn_in(side, move || std::net::TcpListener::bind((ip, port)))
            .join()
            .map_err(|_| io::Error::other("the namespace thread panicked"))?
    }

    /// A TCP connection made from inside `side`'s namespace to `addr`, within
    /// `timeout` (as a std stream: convert it for any runtime). It blocks: an
    /// async caller runs it where blocking is allowed.
    pub fn connect(
        &self,
        side: Side,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> io::Result<std::net::TcpStream> {
        self.spawn_in(side, move || std::net::TcpStream::connect_timeout(&addr, timeout))
            .join()
            .map_err(|_| io::Error::other("the namespace thread panicked"))?
    }

    /// A command that runs `program` inside `side`'s namespace.
    pub fn command_in(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.namespace(side)]).arg(program);
        command
    }
}

impl Drop for EmulatedPath {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(forwarder) = self.forwarder.take() {
            let _ = forwarder.join();
        }
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Deletes namespaces that paths of processes no longer running left behind
/// (a test killed before its path was dropped).
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("hawser-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    let output = Command::new("ip").args(args).stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

/// One direction's bottleneck: when it is next free, and what that means for
/// an arriving packet.
struct Bottleneck {
    bytes_per_sec: Option<f64>,
    queue_bytes: usize,
    delay: Duration,
    free_at: Instant,
}

impl Bottleneck {
    fn new(spec: &PathSpec) -> Bottleneck {
        Bottleneck {
            bytes_per_sec: spec.rate_bits_per_sec.map(|bits| bits as f64 / 8.0),
            queue_bytes: spec.queue_bytes,
            delay: spec.one_way_delay,
            free_at: Instant::now(),
        }
    }

    /// When a packet of `len` bytes arriving `now` reaches the other end, or
    /// `None` if the queue has no room for it.
    fn admit(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let Some(rate) = self.bytes_per_sec else {
            return Some(now + self.delay);
        };
        let start = self.free_at.max(now);
        let queued = (start - now).as_secs_f64() * rate;
        if queued + len as f64 > self.queue_bytes as f64 {
            return None;
        }
        self.free_at = start + Duration::from_secs_f64(len as f64 / rate);
        Some(self.free_at + self.delay)
    }
}

type Device = Arc<tun::AsyncDevice>;

async fn forward(
    client: Device,
    server: Device,
    spec: PathSpec,
    switches: Arc<Switches>,
    mut stop: watch::Receiver<bool>,
) {
    let upstream = one_way(client.clone(), server.clone(), spec, switches.clone(), spec.seed);
    let downstream = one_way(server, client, spec, switches, spec.seed.wrapping_add(1));
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

/// Carries packets read from `from` to `to`, through a [`Bottleneck`].
async fn one_way(from: Device, to: Device, spec: PathSpec, switches: Arc<Switches>, seed: u64) {
    // Unbounded, but only ever holding what the bottleneck admitted: its queue
    // plus one delay's worth at its rate.
    let (on_the_way, mut arriving) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let deliver = {
        let switches = switches.clone();
        async move {
            while let Some((due, packet)) = arriving.recv().await {
                tokio::time::sleep_until(due).await;
                if switches.silences(&packet) {
                    switches.dropped_silent.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if to.send(&packet).await.is_err() {
                    return;
                }
                switches.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let admit = async move {
        let mut bottleneck = Bottleneck::new(&spec);
        let mut rng = Rng::new(seed);
        let mut buf = vec![0u8; usize::from(spec.mtu) + 64];
        loop {
            let Ok(len) = from.recv(&mut buf).await else {
                return;
            };
            let packet = &buf[..len];
            // Only IPv4 crosses; the kernel's IPv6 chatter stays home.
            if packet.first().map(|b| b >> 4) != Some(4) {
                continue;
            }
            if switches.silences(packet) {
                switches.dropped_silent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if spec.loss_per_million > 0 && rng.chance(u64::from(spec.loss_per_million), 1_000_000) {
                switches.dropped_lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(due) = bottleneck.admit(len, Instant::now()) else {
                switches.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if on_the_way.send((due, packet.to_vec())).is_err() {
                return;
            }
        }
    };
    tokio::join!(deliver, admit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bottleneck_spaces_packets_at_its_rate_and_drops_at_the_tail() {
        let spec = PathSpec {
            one_way_delay: Duration::from_millis(10),
            rate_bits_per_sec: Some(8_000),
            queue_bytes: 2_500,
            ..PathSpec::lan()
        };
        let mut bottleneck = Bottleneck::new(&spec);
        let now = Instant::now();
        // 1,000 bytes take 1 s at 1,000 bytes/s.
        let first = bottleneck.admit(1_000, now).unwrap();
        assert_eq!(first - now, Duration::from_millis(1_010));
        let second = bottleneck.admit(1_000, now).unwrap();
        assert_eq!(second - first, Duration::from_secs(1));
        // 2,000 bytes are queued ahead: 1,000 more would pass the 2,500 limit.
        assert_eq!(bottleneck.admit(1_000, now), None);
        assert!(bottleneck.admit(500, now).is_some(), "a packet that fits is queued");
        // Once the queue has drained, packets pass at once again.
        let later = now + Duration::from_secs(10);
        assert_eq!(
            bottleneck.admit(1_000, later).unwrap() - later,
            Duration::from_millis(1_010)
        );
    }

    #[test]
    fn only_packets_to_and_from_an_address_left_behind_are_silenced() {
        let switches = Switches::default();
        let mut packet = [0u8; 20];
        packet[0] = 0x45;
        packet[12..16].copy_from_slice(&FIRST_CLIENT_IP.octets());
        packet[16..20].copy_from_slice(&SERVER_IP.octets());
        assert!(!switches.silences(&packet));
        switches.left.lock().unwrap().push(FIRST_CLIENT_IP);
        assert!(switches.silences(&packet));
        packet[12..16].copy_from_slice(&Ipv4Addr::new(10, 201, 0, 3).octets());
        assert!(!switches.silences(&packet));
        switches.blackhole.store(true, Ordering::Relaxed);
        assert!(switches.silences(&packet));
        assert!(switches.silences(&[0x45, 0, 0]), "a truncated packet goes nowhere");
    }
}

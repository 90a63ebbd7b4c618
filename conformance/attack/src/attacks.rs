//! The attackers: raw clients built on hawser-core over blocking sockets, each
//! doing one thing a hostile client would, as fast as it can.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use hawser_core::frame::{FrameType, Header, HEADER_LEN};
use hawser_core::resume::{ResumeRequest, ResumeToken, Ticket};
use hawser_core::{Config, Instant, Profile, Role, Session};

/// What the attackers did, in all.
#[derive(Default)]
pub struct Tally {
    /// Download-and-drop sessions left detached with full buffers.
    pub downloads: AtomicU64,
    /// Payload bytes those sessions sent before the client dropped them.
    pub downloaded: AtomicU64,
    /// Handshake-and-drop sessions.
    pub handshakes: AtomicU64,
    /// Wrong-token resume attempts, and how each was answered.
    pub guesses: AtomicU64,
    pub refused: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Attempts that failed in some other way (connection errors).
    pub errors: AtomicU64,
}

/// A client session that acknowledges nothing: it drops every Ack frame the
/// core would send, so the server's replay buffer only fills.
struct Unacknowledging {
    session: Session,
    tcp: TcpStream,
    started: StdInstant,
}

impl Unacknowledging {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let config = Config {
            // A large window, so that the server can send all the replay buffer
            // will take without waiting for window updates.
            initial_window: 16 * 1024 * 1024,
            ..crate::server::config()
        };
        let session = Session::new(Role::Client, config, Instant::ZERO)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_millis(300)))?;
        let mut client = Unacknowledging {
            session,
            tcp,
            started: StdInstant::now(),
        };
        client.flush()?;
        Ok(client)
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(self.started.elapsed().as_nanos() as u64)
    }

    fn flush(&mut self) -> io::Result<()> {
        let now = self.now();
        let mut out = Vec::new();
        while let Some(transmit) = self.session.poll_transmit(now) {
            let is_ack = <&[u8; HEADER_LEN]>::try_from(transmit.header())
                .ok()
                .and_then(|head| Header::decode(head, Profile::Native).ok())
                .is_some_and(|header| header.ty == FrameType::Ack);
            if !is_ack {
                out.extend_from_slice(transmit.header());
                out.extend_from_slice(transmit.payload());
            }
        }
        self.tcp.write_all(&out)
    }

    /// Reads once; `Ok(false)` when nothing came within the read timeout.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        match self.tcp.read(buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                let now = self.now();
                self.session.handle_input_slice(now, &buf[..n]);
                Ok(true)
            }
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// Opens a download, takes what the server sends until it stalls for want of
/// acknowledgements, and drops the link: the server's session detaches
/// holding a full replay buffer and send buffer.
pub fn download_and_drop(addr: SocketAddr, stop: &AtomicBool, tally: &Tally) {
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let outcome = (|| -> io::Result<u64> {
            let mut client = Unacknowledging::connect(addr)?;
            let now = client.now();
            let id = client
                .session
                .open(now)
                .map_err(|err| io::Error::other(err.to_string()))?;
            client
                .session
                .stream(id)
                .write(Bytes::from_static(b"D"))
                .map_err(|err| io::Error::other(err.to_string()))?;
            client.flush()?;
            let mut got = 0u64;
            // Until nothing more comes: the server has all it may hold.
            while client.read(&mut buf)? {
                while let Ok(Some(data)) = client.session.stream(id).read(usize::MAX) {
                    got += data.len() as u64;
                }
                client.flush()?;
            }
            Ok(got)
        })();
        match outcome {
            Ok(got) => {
                tally.downloads.fetch_add(1, Ordering::Relaxed);
                tally.downloaded.fetch_add(got, Ordering::Relaxed);
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Completes the handshake, waits for the ticket and drops the link: the
/// cheapest way to make the server keep a detached session. Leaves the last
/// ticket in `ticket` for the token guesser.
pub fn handshake_and_drop(addr: SocketAddr, stop: &AtomicBool, tally: &Tally, ticket: &Mutex<Option<Ticket>>) {
    while !stop.load(Ordering::Relaxed) {
        handshake_and_drop_once(addr, tally, ticket);
    }
}

/// One handshake-and-drop.
pub fn handshake_and_drop_once(addr: SocketAddr, tally: &Tally, ticket: &Mutex<Option<Ticket>>) {
    let mut buf = [0u8; 4096];
    let outcome = (|| -> io::Result<Ticket> {
        let mut client = Unacknowledging::connect(addr)?;
        loop {
            if let Some(ticket) = client.session.resume_ticket() {
                return Ok(ticket);
            }
            if !client.read(&mut buf)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
    })();
    match outcome {
        Ok(got) => {
            tally.handshakes.fetch_add(1, Ordering::Relaxed);
            *ticket.lock().unwrap_or_else(|p| p.into_inner()) = Some(got);
        }
        Err(_) => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Resume requests for a real session id with random tokens, one connection
/// each: a token guesser. Counts how each is answered.
pub fn guess_tokens(addr: SocketAddr, stop: &AtomicBool, tally: &Tally, ticket: &Mutex<Option<Ticket>>) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(known) = *ticket.lock().unwrap_or_else(|p| p.into_inner()) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let mut token = [0u8; 16];
        for byte in &mut token {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        let request = ResumeRequest {
            ticket: Ticket {
                id: known.id,
                token: ResumeToken::from_bytes(token),
            },
            received: 0,
        };
        let outcome = (|| -> io::Result<u32> {
            let mut tcp = TcpStream::connect(addr)?;
            tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
            tcp.write_all(&request.encode())?;
            let mut answer = [0u8; HEADER_LEN];
            tcp.read_exact(&mut answer)?;
            let header = Header::decode(&answer, Profile::Native).map_err(|err| io::Error::other(err.to_string()))?;
            if header.ty != FrameType::GoAway {
                return Err(io::Error::other("a wrong token was not refused"));
            }
            Ok(header.length)
        })();
        tally.guesses.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(code) if code == hawser_core::GoAwayCode::RESUME_RATE_LIMITED.0 => {
                tally.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

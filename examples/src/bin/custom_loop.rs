//! Driving hawser-core from your own event loop: one thread, non-blocking sockets
//! (mio), several sessions at once, no runtime. The loop serves echo; it is what an
//! embedder with a poll loop of its own would write.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin custom_loop                     # self-test
//! cargo run --release -p hawser-examples --bin custom_loop -- --listen 127.0.0.1:7000
//! ```
//!
//! Without flags it listens on an ephemeral loopback port, lets three client
//! sessions (hawser-blocking, in other threads) echo through it, and exits.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use bytes::{Buf, Bytes};
use hawser_core::{Config, Event, Instant, ReadError, Role, Session, StreamId, WriteError};
use hawser_examples::{blocking_round_trip, checksum, payload};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);

/// Echo state of one stream: bytes read and not yet written back.
#[derive(Default)]
struct Echo {
    pending: VecDeque<Bytes>,
    peer_finished: bool,
}

struct Connection {
    tcp: TcpStream,
    session: Session,
    /// Frames taken from the session, not yet written to the socket.
    out: VecDeque<Bytes>,
    echoes: HashMap<StreamId, Echo>,
}

impl Connection {
    /// Reads until the socket would block, feeding the session.
    fn read_link(&mut self, now: Instant, buf: &mut [u8]) {
        loop {
            match self.tcp.read(buf) {
                Ok(0) => return self.session.handle_link_lost(now),
                Ok(n) => self.session.handle_input_slice(now, &buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.session.handle_link_lost(now),
            }
        }
    }

    /// The application: echo every stream.
    fn serve(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::IncomingStream => {
                    while let Some(id) = self.session.accept() {
                        self.echoes.insert(id, Echo::default());
                        self.pump(id);
                    }
                }
                Event::Readable(id) | Event::Writable(id) => self.pump(id),
                Event::StreamReset { id, .. } | Event::StreamClosed(id) => {
                    self.echoes.remove(&id);
                }
                _ => {}
            }
        }
    }

    /// Moves what arrived on a stream back out, as far as the buffers allow.
    fn pump(&mut self, id: StreamId) {
        let Some(echo) = self.echoes.get_mut(&id) else { return };
        let mut stream = self.session.stream(id);
        while !echo.peer_finished {
            match stream.read(usize::MAX) {
                Ok(Some(chunk)) => echo.pending.push_back(chunk),
                Ok(None) => echo.peer_finished = true,
                Err(ReadError::Blocked) => break,
                Err(_) => return,
            }
        }
        while let Some(chunk) = echo.pending.pop_front() {
            match stream.write(chunk.clone()) {
                Ok(n) if n == chunk.len() => {}
                Ok(n) => {
                    echo.pending.push_front(chunk.slice(n..));
                    return;
                }
                Err(WriteError::Blocked) => {
                    echo.pending.push_front(chunk);
                    return;
                }
                Err(_) => return,
            }
        }
        if echo.peer_finished {
            let _ = stream.finish();
            self.echoes.remove(&id);
        }
    }

    /// Writes queued frames until the socket would block.
    fn write_link(&mut self, now: Instant) {
        loop {
            while self.out.len() < 64 {
                let Some(transmit) = self.session.poll_transmit(now) else {
                    break;
                };
                let (header, payload) = transmit.into_parts();
                self.out.push_back(Bytes::copy_from_slice(&header));
                if !payload.is_empty() {
                    self.out.push_back(payload);
                }
            }
            if self.out.is_empty() {
                return;
            }
            let slices: Vec<IoSlice<'_>> = self.out.iter().map(|b| IoSlice::new(b)).collect();
            match self.tcp.write_vectored(&slices) {
                Ok(mut written) => {
                    while written > 0 {
                        let Some(front) = self.out.front_mut() else { break };
                        if front.len() <= written {
                            written -= front.len();
                            self.out.pop_front();
                        } else {
                            front.advance(written);
                            written = 0;
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.out.clear();
                    return self.session.handle_link_lost(now);
                }
            }
        }
    }
}

fn run_loop(listener: &mut TcpListener, stop_after: Option<usize>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry().register(listener, LISTENER, Interest::READABLE)?;
    let epoch = StdInstant::now();
    let clock = || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
    let mut connections: HashMap<Token, Connection> = HashMap::new();
    let mut next_token = 1;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut served = 0;
    loop {
        let now = clock();
        let next_deadline = connections.values().filter_map(|c| c.session.poll_timeout()).min();
        let timeout = next_deadline.map(|at| at.saturating_duration_since(now));
        poll.poll(&mut events, timeout)?;
        let now = clock();
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut tcp, _)) => {
                            let token = Token(next_token);
                            next_token += 1;
                            poll.registry()
                                .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)?;
                            let session = Session::new(Role::Server, Config::default(), now)
                                .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
                            connections.insert(
                                token,
                                Connection {
                                    tcp,
                                    session,
                                    out: VecDeque::new(),
                                    echoes: HashMap::new(),
                                },
                            );
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) => return Err(err),
                    }
                }
            } else if let Some(connection) = connections.get_mut(&event.token()) {
                if event.is_readable() || event.is_read_closed() {
                    connection.read_link(now, &mut buf);
                }
            }
        }
        for connection in connections.values_mut() {
            if connection.session.poll_timeout().is_some_and(|at| at <= now) {
                connection.session.handle_timeout(now);
            }
            connection.serve();
            connection.write_link(now);
        }
        let before = connections.len();
        connections.retain(|_, c| !(c.session.is_closed() && c.out.is_empty()));
        served += before - connections.len();
        if let Some(limit) = stop_after {
            if served >= limit {
                println!("custom_loop: served {served} sessions on one thread");
                return Ok(());
            }
        }
    }
}

fn self_test() -> io::Result<()> {
    let mut listener = TcpListener::bind("127.0.0.1:0".parse::<SocketAddr>().expect("a valid address"))?;
    let addr = listener.local_addr()?;
    let clients: Vec<_> = (0..3)
        .map(|session_index| {
            std::thread::spawn(move || -> io::Result<usize> {
                let tcp = std::net::TcpStream::connect(addr)?;
                let session = hawser_blocking::Session::client(tcp, Config::default())?;
                let mut intact = 0;
                for index in 0..8 {
                    let data = payload(session_index * 100 + index, 300_000);
                    let mut stream = session.open_stream()?;
                    stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let (sent, back) = blocking_round_trip(stream, data)?;
                    if checksum(&back) == checksum(&sent) && back == sent {
                        intact += 1;
                    }
                }
                session.go_away(hawser_blocking::GoAwayCode::NORMAL)?;
                Ok(intact)
            })
        })
        .collect();
    let served = std::thread::spawn(move || run_loop(&mut listener, Some(3)));
    let mut intact = 0;
    for client in clients {
        intact += client.join().map_err(|_| io::Error::other("client panicked"))??;
    }
    served.join().map_err(|_| io::Error::other("loop panicked"))??;
    println!("custom_loop: {intact}/24 streams echoed intact through the hand-written loop");
    if intact == 24 {
        Ok(())
    } else {
        Err(io::Error::other("corrupted echo"))
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => self_test(),
        (Some("--listen"), Some(addr)) => {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad --listen address"))?;
            let mut listener = TcpListener::bind(addr)?;
            println!("custom_loop: serving echo on {}", listener.local_addr()?);
            run_loop(&mut listener, None)
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: custom_loop [--listen ADDR]",
        )),
    }
}

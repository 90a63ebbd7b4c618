//! Driving hawser-core from your own event loop: one thread, non-blocking sockets
//! (mio), several sessions at once, no runtime. The loop serves echo; it is what an
//! embedder with a poll loop of its own would write. It touches only the sessions
//! that have something to do: those whose socket is ready, and those whose timer
//! is due (a heap of deadlines, so a wake costs nothing per idle session). Frames
//! go out as the session hands them over, header and payload in one vectored
//! write, with no copy or allocation per frame.
//!
//! ```text
//! cargo run --release -p hawser-examples --bin custom_loop                     # self-test
//! cargo run --release -p hawser-examples --bin custom_loop -- --listen 127.0.0.1:7000
//! ```
//!
//! Without flags it listens on an ephemeral loopback port, lets three client
//! sessions (hawser-blocking, in other threads) echo through it, and exits.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use hawser_core::{Config, Event, Instant, ReadError, Role, Session, StreamId, Transmit, WriteError};
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
    /// Frames taken from the session, not yet wholly written to the socket...
    out: VecDeque<Transmit>,
    /// ...of which the first has this many bytes out already.
    written: usize,
    /// The deadline this connection has in the timer heap, if any.
    armed: Option<Instant>,
    echoes: HashMap<StreamId, Echo>,
}

/// Frames a vectored write takes at most (two slices each).
const WRITE_FRAMES: usize = 64;

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

    /// The application: echo every stream. Returns whether there was anything
    /// to do.
    fn serve(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.session.poll_event() {
            any = true;
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
        any
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
                // Part of it fit: try the rest, until the stream says Blocked
                // (only that promises a Writable event later).
                Ok(n) => echo.pending.push_front(chunk.slice(n..)),
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
            while self.out.len() < WRITE_FRAMES {
                let Some(transmit) = self.session.poll_transmit(now) else {
                    break;
                };
                self.out.push_back(transmit);
            }
            if self.out.is_empty() {
                return;
            }
            let mut slices = [IoSlice::new(&[]); 2 * WRITE_FRAMES];
            let mut count = 0;
            for (index, frame) in self.out.iter().enumerate() {
                let skip = if index == 0 { self.written } else { 0 };
                let header = frame.header();
                let payload = frame.payload();
                let parts: [&[u8]; 2] = if skip < header.len() {
                    [&header[skip..], payload]
                } else {
                    [&[], &payload[skip - header.len()..]]
                };
                for part in parts.into_iter().filter(|part| !part.is_empty()) {
                    slices[count] = IoSlice::new(part);
                    count += 1;
                }
            }
            match self.tcp.write_vectored(&slices[..count]) {
                Ok(0) => {
                    self.out.clear();
                    self.written = 0;
                    return self.session.handle_link_lost(now);
                }
                Ok(written) => self.advance(written),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.out.clear();
                    self.written = 0;
                    return self.session.handle_link_lost(now);
                }
            }
        }
    }

    /// Drops what the socket took from the front of the queue.
    fn advance(&mut self, mut written: usize) {
        while let Some(front) = self.out.front() {
            let left = front.len() - self.written;
            if written < left {
                self.written += written;
                return;
            }
            written -= left;
            self.written = 0;
            self.out.pop_front();
        }
    }

    /// Puts the session's next deadline in the heap, unless an earlier entry for
    /// this connection is there already (it will find the real deadline when it
    /// comes due, and come back here): each connection has one or two entries.
    fn arm(&mut self, token: Token, timers: &mut BinaryHeap<Reverse<(Instant, Token)>>) {
        let Some(at) = self.session.poll_timeout() else {
            return;
        };
        if self.armed.map_or(true, |armed| at < armed) {
            timers.push(Reverse((at, token)));
            self.armed = Some(at);
        }
    }
}

fn run_loop(listener: &mut TcpListener, stop_after: Option<usize>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry().register(listener, LISTENER, Interest::READABLE)?;
    let epoch = StdInstant::now();
    let clock = || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
    let mut connections: HashMap<Token, Connection> = HashMap::new();
    let mut timers: BinaryHeap<Reverse<(Instant, Token)>> = BinaryHeap::new();
    let mut touched: Vec<Token> = Vec::new();
    let mut next_token = 1;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut served = 0;
    loop {
        let now = clock();
        let timeout = timers.peek().map(|Reverse((at, _))| at.saturating_duration_since(now));
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
                                    written: 0,
                                    armed: None,
                                    echoes: HashMap::new(),
                                },
                            );
                            // Its hello goes out, its handshake timer starts.
                            touched.push(token);
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) => return Err(err),
                    }
                }
            } else if let Some(connection) = connections.get_mut(&event.token()) {
                if event.is_readable() || event.is_read_closed() {
                    connection.read_link(now, &mut buf);
                }
                touched.push(event.token());
            }
        }
        while let Some(&Reverse((at, token))) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            if let Some(connection) = connections.get_mut(&token) {
                connection.armed = None;
                if connection.session.poll_timeout().is_some_and(|due| due <= now) {
                    connection.session.handle_timeout(now);
                }
                touched.push(token);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for token in touched.drain(..) {
            let Some(connection) = connections.get_mut(&token) else {
                continue;
            };
            connection.serve();
            // Handing frames to the socket frees send buffers, which makes
            // streams writable again: serve those too, until nothing is left.
            loop {
                connection.write_link(now);
                if !connection.serve() {
                    break;
                }
            }
            if connection.session.is_closed() && connection.out.is_empty() {
                connections.remove(&token);
                served += 1;
            } else {
                connection.arm(token, &mut timers);
            }
        }
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
